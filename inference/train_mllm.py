"""Fine-tune the multimodal classifier: LoRA on the backbone, the ViT, projectors and head.

One loop for every scale, through accelerate's Accelerator: a plain call runs it in one process
on the CPU; on GPUs the same code runs data-parallel with DeepSpeed ZeRO-2, as in the paper:

    accelerate launch --config_file inference/accelerate/zero2.yaml -m inference.train_mllm \
        --train var/train.pkl --val var/val.pkl --audio-checkpoint var/models/whisper-tiny.en.pt \
        --out var/models/mllm

(the .pkl files hold lists of (VideoFeatures, label) pairs). The frozen Whisper encoder, the
frame resizing and the tokenisation run once per video before the first epoch; epochs only
run the parts that train. The cross-entropy can be class-weighted ("balanced"; the default)
or not ("none": the probabilities then follow the training labels' own mix, which flags fewer
ok videos), and the epoch with the best validation macro-F1 is the one kept (saved to out_dir).
"""

from __future__ import annotations

import argparse
import math
import pickle
import time
from dataclasses import dataclass, field, fields
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from sklearn.metrics import f1_score
from sklearn.utils.class_weight import compute_class_weight
from torch.utils.data import DataLoader
from tqdm.auto import tqdm

from inference.mllm import MLLMConfig, MLLMInputs, MultimodalClassifier, PreparedVideo
from inference.types import VideoFeatures


CLASS_WEIGHTINGS = ("balanced", "none")
# `manage.py train`'s MLLM rate, twice TrainConfig's default: over one epoch of 3,000 text-only
# examples it did better on held-out phrasings in 3 of 4 seeds (bench/GENERALIZATION.md).
MLLM_LR = 1e-3


@dataclass(frozen=True)
class TrainConfig:
    epochs: int = 3
    batch_size: int = 16
    lr: float = 5e-4  # LoRA and the parts trained from scratch share it
    weight_decay: float = 0.01
    warmup_ratio: float = 0.05
    max_steps: int = 0  # optimizer steps; 0 = run all epochs
    grad_clip: float = 1.0
    gradient_accumulation_steps: int = 1
    mixed_precision: str = "no"  # "bf16" on GPUs (accelerate launch may set it)
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
    model: MultimodalClassifier  # the best epoch's weights
    out_dir: Path
    best_epoch: int
    best_val_macro_f1: float
    steps: int
    prepare_seconds: float  # the one-off pass: Whisper features, frames, tokens
    history: list[EpochStats] = field(default_factory=list)


def prepare_items(
    model: MultimodalClassifier, items: list[tuple[VideoFeatures, str]], batch_size: int, progress: bool, desc: str
) -> tuple[list[PreparedVideo], np.ndarray]:
    """The frozen parts, once per video: -> (prepared videos, (N,) label indices)."""
    index = {label: i for i, label in enumerate(model.labels)}
    unknown = {label for _, label in items} - set(index)
    if unknown:
        raise ValueError(f"labels {sorted(unknown)} are not in the model's labels {model.labels}")
    prepared: list[PreparedVideo] = []
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


def batch_to_dict(model: MultimodalClassifier, prepared: list[PreparedVideo], labels: np.ndarray) -> dict:
    inputs = model.collate(prepared)
    return {**{f.name: getattr(inputs, f.name) for f in fields(inputs)}, "labels": torch.from_numpy(labels)}


def inputs_from_dict(batch: dict) -> MLLMInputs:
    return MLLMInputs(**{f.name: batch[f.name] for f in fields(MLLMInputs)})


@torch.no_grad()
def predict_probabilities(model: MultimodalClassifier, prepared: list[PreparedVideo], batch_size: int) -> np.ndarray:
    """(N, n_labels) class probabilities, without the rationale `predict` adds (many more passes)."""
    model.eval()
    out = [
        model.probabilities(model.collate(prepared[start : start + batch_size]), batch_size).numpy()
        for start in range(0, len(prepared), batch_size)
    ]
    return np.concatenate(out) if out else np.zeros((0, len(model.labels)), dtype=np.float32)


def predict_labels(model: MultimodalClassifier, prepared: list[PreparedVideo], batch_size: int) -> np.ndarray:
    return predict_probabilities(model, prepared, batch_size).argmax(-1)


def macro_f1(model: MultimodalClassifier, prepared: list[PreparedVideo], labels: np.ndarray, batch_size: int) -> float:
    predicted = predict_labels(model, prepared, batch_size)
    return float(f1_score(labels, predicted, labels=list(range(len(model.labels))), average="macro", zero_division=0))


def train_mllm(
    train_items: list[tuple[VideoFeatures, str]],
    val_items: list[tuple[VideoFeatures, str]],
    model_config: MLLMConfig,
    train_config: TrainConfig = TrainConfig(),
    out_dir: str | Path = "var/models/mllm",
    progress: bool = True,
    init_from: str | Path | None = None,
) -> TrainResult:
    """Train and save the best epoch to out_dir.

    init_from: a folder written by `MultimodalClassifier.save` to go on training from (its LoRA
    adapter, ViT, projectors and head) instead of fresh weights. Its own config then applies,
    except `audio_checkpoint` and `backbone_path` from model_config: where the frozen parts
    live on this machine.
    """
    from accelerate import Accelerator
    from accelerate.utils import set_seed
    from transformers import get_linear_schedule_with_warmup

    accelerator = Accelerator(
        gradient_accumulation_steps=train_config.gradient_accumulation_steps,
        mixed_precision=train_config.mixed_precision,
    )
    show = progress and accelerator.is_local_main_process
    set_seed(train_config.seed)
    out_dir = Path(out_dir)

    model = (MultimodalClassifier(model_config) if init_from is None else MultimodalClassifier.load(
        init_from, audio_checkpoint=model_config.audio_checkpoint, backbone_path=model_config.backbone_path))
    t0 = time.perf_counter()
    # Every process prepares all items: the audio encoder is small next to the training.
    train_prepared, train_labels = prepare_items(model, train_items, train_config.prepare_batch_size, show, "audio+frames")
    val_prepared, val_labels = prepare_items(model, val_items, train_config.prepare_batch_size, show, "audio+frames val")
    prepare_seconds = time.perf_counter() - t0

    loader = DataLoader(
        list(range(len(train_prepared))),
        batch_size=train_config.batch_size,
        shuffle=True,
        collate_fn=lambda idx: batch_to_dict(model, [train_prepared[i] for i in idx], train_labels[idx]),
        generator=torch.Generator().manual_seed(train_config.seed),
    )
    steps_per_epoch = math.ceil(len(loader) / train_config.gradient_accumulation_steps)
    total_steps = steps_per_epoch * train_config.epochs
    if train_config.max_steps:
        total_steps = min(total_steps, train_config.max_steps)
    trainable = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(trainable, lr=train_config.lr, weight_decay=train_config.weight_decay)
    scheduler = get_linear_schedule_with_warmup(
        optimizer, int(train_config.warmup_ratio * total_steps), max(1, total_steps)
    )
    weights = class_weights(train_labels, len(model.labels), train_config.class_weighting).to(accelerator.device)
    model, optimizer, loader, scheduler = accelerator.prepare(model, optimizer, loader, scheduler)
    unwrapped: MultimodalClassifier = accelerator.unwrap_model(model)

    history: list[EpochStats] = []
    best_f1, best_epoch, best_state = -1.0, -1, None
    step = 0
    for epoch in range(train_config.epochs):
        if train_config.max_steps and step >= train_config.max_steps:
            break
        model.train()
        start, losses = time.perf_counter(), []
        bar = tqdm(loader, desc=f"epoch {epoch + 1}/{train_config.epochs}", disable=not show)
        for batch in bar:
            with accelerator.accumulate(model):
                logits = model(inputs_from_dict(batch))  # (B, n_labels)
                loss = F.cross_entropy(logits.float(), batch["labels"], weight=weights)
                accelerator.backward(loss)
                if accelerator.sync_gradients:
                    accelerator.clip_grad_norm_(trainable, train_config.grad_clip)
                optimizer.step()
                scheduler.step()
                optimizer.zero_grad()
            if accelerator.sync_gradients:
                step += 1
            losses.append(loss.item())
            bar.set_postfix(loss=f"{np.mean(losses[-20:]):.4f}")
            if train_config.max_steps and step >= train_config.max_steps:
                break
        val_f1 = macro_f1(unwrapped, val_prepared, val_labels, train_config.eval_batch_size) if val_items else math.nan
        history.append(EpochStats(epoch + 1, float(np.mean(losses)), val_f1, time.perf_counter() - start))
        if show:
            tqdm.write(f"epoch {epoch + 1}: train loss {np.mean(losses):.4f}, val macro-F1 {val_f1:.4f}")
        # Without validation items the last epoch is the one kept.
        if not val_items or val_f1 > best_f1:
            best_f1, best_epoch = val_f1, epoch + 1
            best_state = {k: v.detach().clone() for k, v in unwrapped.state_dict().items() if _trained_key(unwrapped, k)}

    accelerator.wait_for_everyone()
    if best_state is not None:
        unwrapped.load_state_dict(best_state, strict=False)
    unwrapped.eval()
    if accelerator.is_main_process:
        unwrapped.save(out_dir)
    accelerator.wait_for_everyone()
    return TrainResult(
        model=unwrapped,
        out_dir=out_dir,
        best_epoch=best_epoch,
        best_val_macro_f1=best_f1,
        steps=step,
        prepare_seconds=prepare_seconds,
        history=history,
    )


def _trained_key(model: MultimodalClassifier, key: str) -> bool:
    """State dict entries that training changes: LoRA weights and the modules trained here."""
    return "lora_" in key or key.split(".")[0] in model.trained_module_names()


def _load_items(path: str) -> list[tuple[VideoFeatures, str]]:
    with open(path, "rb") as f:
        items = pickle.load(f)
    return [(features, str(label)) for features, label in items]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Fine-tune the COEF-VQ multimodal classifier (LoRA).")
    parser.add_argument("--train", required=True, help="pickle of [(VideoFeatures, label), ...]")
    parser.add_argument("--val", required=True, help="pickle of [(VideoFeatures, label), ...]")
    parser.add_argument("--audio-checkpoint", required=True, help="openai-whisper checkpoint file")
    parser.add_argument("--backbone", default="", help="local HF model folder (default: MiniLM)")
    parser.add_argument("--out", default="var/models/mllm")
    parser.add_argument("--fusion", choices=("late", "early"), default="late")
    parser.add_argument("--lora-r", type=int, default=32)
    parser.add_argument("--lora-alpha", type=int, default=64)
    defaults = TrainConfig()
    parser.add_argument("--epochs", type=int, default=defaults.epochs)
    parser.add_argument("--batch-size", type=int, default=defaults.batch_size)
    parser.add_argument("--lr", type=float, default=defaults.lr)
    parser.add_argument("--max-steps", type=int, default=defaults.max_steps)
    parser.add_argument("--seed", type=int, default=defaults.seed)
    parser.add_argument("--class-weighting", choices=CLASS_WEIGHTINGS, default=defaults.class_weighting)
    parser.add_argument("--threads", type=int, default=0, help="torch CPU threads (0: torch's default)")
    args = parser.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    model_config = MLLMConfig(
        audio_checkpoint=args.audio_checkpoint,
        backbone_path=args.backbone,
        fusion=args.fusion,
        lora_r=args.lora_r,
        lora_alpha=args.lora_alpha,
    )
    train_config = TrainConfig(
        epochs=args.epochs, batch_size=args.batch_size, lr=args.lr, max_steps=args.max_steps, seed=args.seed,
        class_weighting=args.class_weighting,
    )
    result = train_mllm(_load_items(args.train), _load_items(args.val), model_config, train_config, args.out)
    print(f"best epoch {result.best_epoch}: val macro-F1 {result.best_val_macro_f1:.4f}; saved to {result.out_dir}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
