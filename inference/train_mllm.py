"""Fine-tune a stage-2 classifier: LoRA on the backbone, plus the ViT, projectors and heads.

Either class trains here: the decoder-LLM classifier (inference.llm, `LLMConfig`) or the older
MiniLM classifier (inference.mllm, `MLLMConfig`); the config passed decides. One loop for every
scale, through accelerate's Accelerator: a plain call runs it in one process (CPU or one GPU);
launched on several GPUs the same code runs data-parallel under FSDP with SHARD_GRAD_OP
(gradients and optimizer state sharded across the GPUs, like DeepSpeed ZeRO-2):

    accelerate launch --config_file inference/accelerate/fsdp_shard_grad_op.yaml --num_processes 8 \
        -m inference.train_mllm --backbone-kind llm --llm-path var/models/qwen2.5-coder-1.5b-instruct \
        --audio-checkpoint var/models/whisper-tiny.en.pt --text-items 3000 --epochs 1 --out var/models/llm-lora

The command builds its own data from the synthetic policy benchmark (inference.benchmark):
`--text-items` examples drawn by the generator as the feature extractor would read them (no
rendering needed), plus, with `--benchmark DIR`, the rendered videos and cached features that
`manage.py train` leaves in var/bench/train-N-seedS. `--batch-size` is per process.

The frozen Whisper encoder, the frame resizing and the tokenisation run once per video before
the first epoch; epochs only run the parts that train. The cross-entropy can be class-weighted
("balanced"; the default) or not ("none": the probabilities then follow the training labels'
own mix, which flags fewer ok videos), and the epoch with the best validation macro-F1 is the
one kept (saved to out_dir).
"""

from __future__ import annotations

import argparse
import functools
import math
import random
import time
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Callable, Union

import numpy as np
import torch
import torch.nn.functional as F
from sklearn.metrics import f1_score
from sklearn.utils.class_weight import compute_class_weight
from torch import nn
from torch.utils.data import DataLoader
from tqdm.auto import tqdm

from inference.llm import LLMClassifier, LLMConfig, LLMInputs, LLMPrepared
from inference.mllm import MLLMConfig, MLLMInputs, MultimodalClassifier, PreparedVideo
from inference.types import VideoFeatures

Stage2 = Union[MultimodalClassifier, LLMClassifier]
Stage2Config = Union[MLLMConfig, LLMConfig]
Prepared = Union[PreparedVideo, LLMPrepared]
# What each class's collate returns: batches cross the DataLoader as dicts of tensors (so
# accelerate can move them to the device) and are rebuilt into this dataclass.
INPUTS = {MultimodalClassifier: MLLMInputs, LLMClassifier: LLMInputs}

CLASS_WEIGHTINGS = ("balanced", "none")
# `manage.py train`'s MLLM rate, twice TrainConfig's default: over one epoch of 3,000 text-only
# examples it did better on held-out phrasings in 3 of 4 seeds (bench/GENERALIZATION.md).
MLLM_LR = 1e-3


@dataclass(frozen=True)
class TrainConfig:
    epochs: int = 3
    batch_size: int = 16  # per process
    lr: float = 5e-4  # the LoRA adapters' rate
    # The parts trained from scratch (ViT, projectors, tanh gates, heads) at their own rate; 0: lr.
    # Adam moves a parameter by about its rate per step: in one CPU epoch (~120 steps) at the LLM's
    # LoRA rate a gate that starts at 0 cannot pass ~0.02. At ten times the rate they still stayed
    # shut after one epoch (bench/GENERALIZATION.md), so 0 by default; it is for longer runs.
    scratch_lr: float = 0.0
    weight_decay: float = 0.01
    warmup_ratio: float = 0.05
    max_steps: int = 0  # optimizer steps; 0 = run all epochs
    grad_clip: float = 1.0
    gradient_accumulation_steps: int = 1
    mixed_precision: str | None = None  # None: what `accelerate launch` says ("no" in a plain call)
    seed: int = 0
    eval_batch_size: int = 32
    prepare_batch_size: int = 16  # videos per call to the frozen audio encoder
    # "balanced": rare labels weigh more in the loss (n / (k * count)); "none": plain
    # cross-entropy. Balanced weights also act as a prior that moves doubtful videos away
    # from the majority label, which is "ok" here: more recall, more false flags.
    class_weighting: str = "balanced"

    def __post_init__(self):
        if self.class_weighting not in CLASS_WEIGHTINGS:
            raise ValueError(f"class_weighting must be one of {CLASS_WEIGHTINGS}, not {self.class_weighting!r}")


@dataclass
class EpochStats:
    epoch: int
    train_loss: float
    val_macro_f1: float
    seconds: float


@dataclass
class TrainResult:
    model: Stage2  # the best epoch's weights
    out_dir: Path
    best_epoch: int
    best_val_macro_f1: float
    steps: int
    prepare_seconds: float  # the one-off pass: Whisper features, frames, tokens
    history: list[EpochStats] = field(default_factory=list)
    losses: list[float] = field(default_factory=list)  # this process's loss at every batch
    rank: int = 0
    world_size: int = 1
    distributed: str = "NO"  # accelerate's DistributedType: NO, FSDP, MULTI_GPU, DEEPSPEED, ...
    train_seconds: float = 0.0  # the epochs, validation included; not the one-off pass


# ---------------------------------------------------------------------------------------
# Either class


def build_model(model_config: Stage2Config, init_from: str | Path | None = None) -> Stage2:
    """A fresh classifier of the config's class, or the one saved in init_from (its own config,
    except where the frozen parts live on this machine: model_config's audio_checkpoint and
    backbone_path)."""
    cls = LLMClassifier if isinstance(model_config, LLMConfig) else MultimodalClassifier
    if init_from is None:
        return cls(model_config)
    return cls.load(init_from, audio_checkpoint=model_config.audio_checkpoint,
                    backbone_path=model_config.backbone_path)


def inputs_class(model: Stage2) -> type:
    """The inputs dataclass `model.collate` builds (MLLMInputs or LLMInputs)."""
    return INPUTS[type(model)]


def prepare_items(
    model: Stage2, items: list[tuple[VideoFeatures, str]], batch_size: int, progress: bool, desc: str
) -> tuple[list[Prepared], np.ndarray]:
    """The frozen parts, once per video: -> (prepared videos, (N,) label indices)."""
    index = {label: i for i, label in enumerate(model.labels)}
    unknown = {label for _, label in items} - set(index)
    if unknown:
        raise ValueError(f"labels {sorted(unknown)} are not in the model's labels {model.labels}")
    prepared: list[Prepared] = []
    for start in tqdm(range(0, len(items), batch_size), desc=desc, disable=not progress, leave=False):
        prepared += model.prepare([features for features, _ in items[start : start + batch_size]])
    return prepared, np.array([index[label] for _, label in items], dtype=np.int64)


def class_weights(labels: np.ndarray, n_classes: int, weighting: str = "balanced") -> torch.Tensor:
    """'balanced' weights (n / (k * count)) for the classes present, 1.0 for absent ones;
    all 1.0 for weighting 'none'."""
    present = np.unique(labels)
    weights = np.ones(n_classes, dtype=np.float32)
    if weighting == "none":
        return torch.from_numpy(weights)
    weights[present] = compute_class_weight("balanced", classes=present, y=labels)
    return torch.from_numpy(weights)


def batch_to_dict(model: Stage2, prepared: list[Prepared], labels: np.ndarray) -> dict:
    inputs = model.collate(prepared)
    return {**{f.name: getattr(inputs, f.name) for f in fields(inputs)}, "labels": torch.from_numpy(labels)}


def inputs_from_dict(batch: dict, cls: type = MLLMInputs):
    """Rebuild the `cls` inputs (inputs_class(model)) from a batch_to_dict batch."""
    return cls(**{f.name: batch[f.name] for f in fields(cls)})


@torch.no_grad()
def predict_probabilities(model: Stage2, prepared: list[Prepared], batch_size: int,
                          forward: Callable[[object], torch.Tensor] | None = None) -> np.ndarray:
    """(N, n_labels) class probabilities, without the rationale `predict` adds (many more passes).

    forward: what runs a batch of inputs to logits; the model itself by default. Training passes
    the accelerate-prepared model: under FSDP only the wrapper can gather the sharded weights
    (and then every process must run the same batches)."""
    run = forward if forward is not None else model
    run.eval()
    out = []
    for start in range(0, len(prepared), batch_size):
        inputs = model.collate(prepared[start : start + batch_size]).to(model.device)
        out.append(F.softmax(run(inputs).float(), dim=-1).cpu().numpy())  # (b, n_labels)
    return np.concatenate(out) if out else np.zeros((0, len(model.labels)), dtype=np.float32)


def predict_labels(model: Stage2, prepared: list[Prepared], batch_size: int, forward=None) -> np.ndarray:
    return predict_probabilities(model, prepared, batch_size, forward).argmax(-1)


def macro_f1(model: Stage2, prepared: list[Prepared], labels: np.ndarray, batch_size: int, forward=None) -> float:
    predicted = predict_labels(model, prepared, batch_size, forward)
    return float(f1_score(labels, predicted, labels=list(range(len(model.labels))), average="macro", zero_division=0))


def _trained_key(model: Stage2, key: str) -> bool:
    """State dict entries that training changes: LoRA weights and the modules trained here."""
    return "lora_" in key or key.split(".")[0] in model.trained_module_names()


def load_trained_state(model: Stage2, state: dict[str, torch.Tensor]) -> None:
    """Load LoRA + trained-module weights."""
    model.load_state_dict(state, strict=False)


def parameter_groups(model: nn.Module, train_config: TrainConfig) -> list[dict]:
    """The optimizer's groups: the LoRA adapters (peft names them lora_A/lora_B) at lr, everything
    else that trains (it starts from zero or at random) at scratch_lr."""
    adapters, scratch = [], []
    for name, parameter in model.named_parameters():
        if parameter.requires_grad:
            (adapters if "lora_" in name else scratch).append(parameter)
    scratch_lr = train_config.scratch_lr or train_config.lr
    return [group for group in ({"params": adapters, "lr": train_config.lr}, {"params": scratch, "lr": scratch_lr})
            if group["params"]]


def _shardable(model: nn.Module) -> nn.Module:
    """Make a model FSDP can wrap. FSDP flattens each unit's parameters into one 1-d tensor of one
    dtype and shards it, so a unit may not mix dtypes: a bf16 backbone beside the fp32 ViT and
    heads goes fp32. FSDP's mixed-precision policy (bf16 in the launch config) still computes in
    bf16, and the optimizer keeps fp32 master weights, as it should for training anyway."""
    return model.float()


# ---------------------------------------------------------------------------------------
# The loop


def train_mllm(
    train_items: list[tuple[VideoFeatures, str]],
    val_items: list[tuple[VideoFeatures, str]],
    model_config: Stage2Config,
    train_config: TrainConfig = TrainConfig(),
    out_dir: str | Path = "var/models/mllm",
    progress: bool = True,
    init_from: str | Path | None = None,
    on_step: Callable[[int, int], None] | None = None,
) -> TrainResult:
    """Train and save the best epoch to out_dir.

    model_config: an LLMConfig trains the decoder-LLM classifier, an MLLMConfig the MiniLM one.
    init_from: a folder written by the class's `save` to go on training from (its LoRA adapter,
    ViT, projectors and heads) instead of fresh weights. Its own config then applies, except
    `audio_checkpoint` and `backbone_path` from model_config: where the frozen parts live on
    this machine.
    on_step: called (steps done, steps in all) after every optimizer step, on the main process.
    """
    from accelerate import Accelerator, DistributedDataParallelKwargs
    from accelerate.utils import DistributedType, set_seed
    from transformers import get_linear_schedule_with_warmup

    accelerator = Accelerator(
        gradient_accumulation_steps=train_config.gradient_accumulation_steps,
        mixed_precision=train_config.mixed_precision,
        # Plain DDP (--multi_gpu) must be told that a batch may leave parts unused: text-only
        # examples never reach the ViT. FSDP and one process ignore this.
        kwargs_handlers=[DistributedDataParallelKwargs(find_unused_parameters=True)],
    )
    show = progress and accelerator.is_local_main_process
    sharded = accelerator.distributed_type == DistributedType.FSDP  # params live in shards across processes
    set_seed(train_config.seed)
    out_dir = Path(out_dir)

    model = build_model(model_config, init_from)
    config = model.config  # with init_from: the saved one (and the LLM's Whisper sha256)
    t0 = time.perf_counter()
    # Every process prepares all items: the audio encoder is small next to the training.
    train_prepared, train_labels = prepare_items(model, train_items, train_config.prepare_batch_size, show, "audio+frames")
    val_prepared, val_labels = prepare_items(model, val_items, train_config.prepare_batch_size, show, "audio+frames val")
    prepare_seconds = time.perf_counter() - t0

    loader = DataLoader(
        list(range(len(train_prepared))),
        batch_size=train_config.batch_size,
        shuffle=True,
        # bound to the model itself: after prepare, `model` is the wrapper
        collate_fn=functools.partial(_collate_indices, model, train_prepared, train_labels),
        generator=torch.Generator().manual_seed(train_config.seed),
    )
    # Counted on the whole loader: accelerate steps a prepared scheduler once per process.
    total_steps = math.ceil(len(loader) / train_config.gradient_accumulation_steps) * train_config.epochs
    if train_config.max_steps:
        total_steps = min(total_steps, train_config.max_steps)
    if sharded:
        model = _shardable(model)
    inputs_cls = inputs_class(model)
    optimizer = torch.optim.AdamW(parameter_groups(model, train_config), weight_decay=train_config.weight_decay)
    scheduler = get_linear_schedule_with_warmup(
        optimizer, int(train_config.warmup_ratio * total_steps), max(1, total_steps)
    )
    weights = class_weights(train_labels, len(model.labels), train_config.class_weighting).to(accelerator.device)
    model, optimizer, loader, scheduler = accelerator.prepare(model, optimizer, loader, scheduler)
    unwrapped: Stage2 = accelerator.unwrap_model(model)

    history: list[EpochStats] = []
    all_losses: list[float] = []
    best_f1, best_epoch, best_state = -1.0, -1, None
    step = 0
    train_start = time.perf_counter()
    for epoch in range(train_config.epochs):
        if train_config.max_steps and step >= train_config.max_steps:
            break
        model.train()
        start, losses = time.perf_counter(), []
        bar = tqdm(loader, desc=f"epoch {epoch + 1}/{train_config.epochs}", disable=not show)
        for batch in bar:
            with accelerator.accumulate(model):
                logits = model(inputs_from_dict(batch, inputs_cls))  # (B, n_labels)
                loss = F.cross_entropy(logits.float(), batch["labels"], weight=weights)
                accelerator.backward(loss)
                if accelerator.sync_gradients:
                    # all of the wrapper's parameters: FSDP then clips by the norm over every shard
                    accelerator.clip_grad_norm_(model.parameters(), train_config.grad_clip)
                optimizer.step()
                scheduler.step()
                optimizer.zero_grad()
            if accelerator.sync_gradients:
                step += 1
                if on_step is not None and accelerator.is_main_process:
                    on_step(step, total_steps)
            losses.append(loss.item())
            bar.set_postfix(loss=f"{np.mean(losses[-20:]):.4f}")
            if train_config.max_steps and step >= train_config.max_steps:
                break
        all_losses += losses
        # Every process scores all validation items (through the wrapper, which FSDP needs).
        val_f1 = (macro_f1(unwrapped, val_prepared, val_labels, train_config.eval_batch_size, forward=model)
                  if val_items else math.nan)
        history.append(EpochStats(epoch + 1, float(np.mean(losses)), val_f1, time.perf_counter() - start))
        if show:
            tqdm.write(f"epoch {epoch + 1}: train loss {np.mean(losses):.4f}, val macro-F1 {val_f1:.4f}")
        # Without validation items the last epoch is the one kept.
        if not val_items or val_f1 > best_f1:
            best_f1, best_epoch = val_f1, epoch + 1
            best_state = _trained_state(model, unwrapped, sharded)
    train_seconds = time.perf_counter() - train_start
    if best_epoch < 0:  # no epoch ran (epochs 0): what was loaded is what gets saved
        best_state = _trained_state(model, unwrapped, sharded)

    accelerator.wait_for_everyone()
    best = _save_best(accelerator, unwrapped, config, best_state, out_dir, sharded, model_config)
    return TrainResult(
        model=best,
        out_dir=out_dir,
        best_epoch=best_epoch,
        best_val_macro_f1=best_f1,
        steps=step,
        prepare_seconds=prepare_seconds,
        history=history,
        losses=all_losses,
        rank=accelerator.process_index,
        world_size=accelerator.num_processes,
        distributed=accelerator.distributed_type.value,
        train_seconds=train_seconds,
    )


def _collate_indices(model: Stage2, prepared: list[Prepared], labels: np.ndarray, indices: list[int]) -> dict:
    return batch_to_dict(model, [prepared[i] for i in indices], labels[indices])


def _trained_state(model: nn.Module, unwrapped: Stage2, sharded: bool) -> dict[str, torch.Tensor]:
    """A CPU copy of the trained weights (LoRA, ViT, projectors, heads, gates). Under FSDP
    gathering them is collective: every process calls this and gets them."""
    if not sharded:  # one process, DDP or ZeRO-2: every process holds all the weights
        return {k: v.detach().cpu().clone() for k, v in unwrapped.state_dict().items() if _trained_key(unwrapped, k)}
    from torch.distributed.fsdp import FullyShardedDataParallel as FSDP

    # Not accelerator.get_state_dict: after a no-grad forward (validation) under SHARD_GRAD_OP
    # with use_orig_params, torch 2.13's FULL_STATE_DICT returns the root unit's parameters as
    # this process's empty shards. summon_full_params restores the views first. (offload_to_cpu
    # and rank0_only crashed it on the CPU; the full model fits one GPU while it is gathered.)
    with FSDP.summon_full_params(model, writeback=False, rank0_only=False, offload_to_cpu=False):
        named = ((name.replace("_fsdp_wrapped_module.", ""), p) for name, p in model.named_parameters())
        return {name: p.detach().cpu().clone() for name, p in named if _trained_key(unwrapped, name)}


def _save_best(accelerator, unwrapped: Stage2, config: Stage2Config, best_state: dict, out_dir: Path,
               sharded: bool, model_config: Stage2Config) -> Stage2:
    """Save the best epoch's weights to out_dir (main process) and return them as a model."""
    if not sharded:
        load_trained_state(unwrapped, best_state)
        unwrapped.eval()
        if accelerator.is_main_process:
            unwrapped.save(out_dir)
        accelerator.wait_for_everyone()
        return unwrapped
    # Under FSDP the wrapped model holds only this process's shards: the main process puts the
    # gathered weights into a fresh copy and saves that; then every process loads the folder.
    if accelerator.is_main_process:
        fresh = type(unwrapped)(config)
        load_trained_state(fresh, best_state)
        fresh.save(out_dir)
        del fresh
    accelerator.wait_for_everyone()
    best = build_model(model_config, init_from=out_dir)
    return best.to(accelerator.device).eval()


# ---------------------------------------------------------------------------------------
# The command: data from the synthetic benchmark


def synthetic_items(seed: int, text_items: int, val_items: int, benchmark: Path | None = None,
                    extractor_version: str | None = None) -> dict[str, list[tuple[VideoFeatures, str]]]:
    """{"train": ..., "val": ...} (features, label) pairs from the synthetic policy benchmark.

    text_items training examples drawn by its generator as the extractor would read them (caption,
    a roughened transcript, OCR lines; no frames or audio: nothing to render). With `benchmark`, a
    folder `manage.py train` rendered (manifest.jsonl + features/<extractor_version>/), its train
    videos come first and its val split validates; without, val_items more drawn items do, from
    the generator's validation mix, none repeating a training example."""
    from inference.benchmark import BenchmarkItem, GeneratorConfig, generate_specs
    from inference.benchmark.text_only import text_only_examples, text_only_features

    splits: dict[str, list[tuple[VideoFeatures, str]]] = {"train": [], "val": []}
    seen: set[tuple[str, str, str]] = set()  # caption + speech + on-screen triples already used
    if benchmark is not None:
        from inference.benchmark import load_cached, load_manifest
        from inference.features import features_from_cache_dict

        manifest, cache = Path(benchmark) / "manifest.jsonl", Path(benchmark) / "features"
        seen = {BenchmarkItem.from_dict(row).triple() for row in load_manifest(manifest)}
        for split in splits:
            splits[split] = [(features_from_cache_dict(data), row["label"])
                             for row, data in load_cached(manifest, cache, extractor_version, split)]
    drawn = text_only_examples(GeneratorConfig(seed=seed), text_items, seen)
    splits["train"] += [(features, item.label) for item, features in drawn]
    if benchmark is None and val_items > 0:
        seen |= {item.triple() for item, _ in drawn}
        rng = random.Random(f"{seed}:val")
        items = generate_specs(GeneratorConfig(seed=seed, n_train=0, n_val=val_items, n_test=0))
        splits["val"] = [(text_only_features(item, rng), item.label) for item in items if item.triple() not in seen]
    return splits


def model_config_from_args(args: argparse.Namespace) -> Stage2Config:
    """The config of --backbone-kind; options left out keep that class's defaults."""
    given = {name: getattr(args, name) for name in ("n_frames", "image_size", "vision_d_model", "vision_layers",
                                                     "vision_heads") if getattr(args, name) is not None}
    shared = dict(audio_checkpoint=args.audio_checkpoint, fusion=args.fusion, lora_r=args.lora_r,
                  lora_alpha=args.lora_alpha, **given)
    if args.backbone_kind == "llm":
        if args.max_evidence_tokens is not None:
            shared["max_evidence_tokens"] = args.max_evidence_tokens
        return LLMConfig(backbone_path=args.llm_path, dtype=args.dtype, **shared)
    return MLLMConfig(backbone_path=args.backbone, **shared)


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description="Fine-tune a COEF-VQ stage-2 classifier (LoRA) on the synthetic "
                                                 "policy benchmark; run it under `accelerate launch` for many GPUs.")
    parser.add_argument("--backbone-kind", choices=("llm", "minilm"), default="llm",
                        help="llm: the decoder-LLM classifier (inference.llm); minilm: the older MultimodalClassifier")
    parser.add_argument("--llm-path", default="var/models/qwen2.5-coder-1.5b-instruct",
                        help="local HF causal-LM folder (python -m inference.llm_import writes the default)")
    parser.add_argument("--backbone", default="", help="--backbone-kind minilm: local HF folder (default MiniLM)")
    parser.add_argument("--audio-checkpoint", default="var/models/whisper-tiny.en.pt",
                        help="openai-whisper checkpoint file")
    parser.add_argument("--out", default="var/models/llm-lora")
    parser.add_argument("--init-from", default=None, help="a saved folder to go on training from")
    data = parser.add_argument_group("data")
    data.add_argument("--text-items", type=int, default=3000, help="generated text-only training examples")
    data.add_argument("--val-items", type=int, default=200, help="generated validation items (without --benchmark)")
    data.add_argument("--benchmark", type=Path, default=None,
                      help="a rendered benchmark folder (manifest.jsonl, features/): its train and val videos")
    data.add_argument("--extractor-version", default=None,
                      help="its feature cache's version (default: manage.py train's, greedy Whisper)")
    model = parser.add_argument_group("model")
    model.add_argument("--fusion", choices=("late", "early"), default="late")
    model.add_argument("--lora-r", type=int, default=32)
    model.add_argument("--lora-alpha", type=int, default=64)
    model.add_argument("--dtype", default="bfloat16", help="the LLM's weights (FSDP trains them in fp32 anyway)")
    for name in ("n-frames", "image-size", "vision-d-model", "vision-layers", "vision-heads", "max-evidence-tokens"):
        model.add_argument(f"--{name}", type=int, default=None, help="default: the config class's")
    defaults = TrainConfig()
    train = parser.add_argument_group("training")
    train.add_argument("--epochs", type=int, default=defaults.epochs)
    train.add_argument("--batch-size", type=int, default=4, help="per process")
    train.add_argument("--eval-batch-size", type=int, default=8)
    train.add_argument("--lr", type=float, default=defaults.lr)
    train.add_argument("--scratch-lr", type=float, default=defaults.scratch_lr,
                       help="the parts trained from scratch (0: --lr)")
    train.add_argument("--max-steps", type=int, default=defaults.max_steps)
    train.add_argument("--grad-accum", type=int, default=defaults.gradient_accumulation_steps)
    train.add_argument("--seed", type=int, default=defaults.seed)
    train.add_argument("--class-weighting", choices=CLASS_WEIGHTINGS, default=defaults.class_weighting)
    train.add_argument("--threads", type=int, default=0, help="torch CPU threads (0: torch's default)")
    train.add_argument("--no-progress", action="store_true")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    model_config = model_config_from_args(args)
    version = args.extractor_version
    if args.benchmark is not None and version is None:
        from inference.features import FeatureExtractorConfig

        version = FeatureExtractorConfig(whisper_checkpoint=args.audio_checkpoint, beam_size=1).version
    data = synthetic_items(args.seed, args.text_items, args.val_items, args.benchmark, version)
    train_config = TrainConfig(
        epochs=args.epochs, batch_size=args.batch_size, eval_batch_size=args.eval_batch_size, lr=args.lr,
        scratch_lr=args.scratch_lr, max_steps=args.max_steps, gradient_accumulation_steps=args.grad_accum,
        seed=args.seed, class_weighting=args.class_weighting,
    )
    result = train_mllm(data["train"], data["val"], model_config, train_config, args.out,
                        progress=not args.no_progress, init_from=args.init_from)
    # One line per process, so a launch shows that every rank trained.
    losses = result.losses
    print(f"rank {result.rank}/{result.world_size} ({result.distributed}): {result.steps} steps on "
          f"{len(data['train'])} items, "
          f"loss {losses[0] if losses else math.nan:.4f} -> {losses[-1] if losses else math.nan:.4f}, "
          f"{result.train_seconds:.1f} s", flush=True)
    if result.rank == 0:
        print(f"best epoch {result.best_epoch}: val macro-F1 {result.best_val_macro_f1:.4f}; saved to {result.out_dir}",
              flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
