"""A prepared check of stage 2 as an LLM on a GPU machine: LoRA training and inference speed,
peak memory, and (optionally) the multi-GPU training command itself. At most ~10 minutes.

    .venv/bin/python bench/gpu_check.py --out bench/results/gpu_check            # CUDA, bf16
    .venv/bin/python bench/gpu_check.py --device cpu --hidden 64 --layers 2 --steps 2 \\
        --infer-batches 2 --batch-size 2 --out /tmp/gpu_check                     # smoke test here
    .venv/bin/python bench/gpu_check.py --fsdp-smoke ...                          # + accelerate launch

The LLM is a random Qwen2 built here (--hidden 512, --layers 8 by default; a byte-level BPE
tokenizer trained on the policy's and the benchmark's words, ChatML template, <|image_pad|>), or
the folder given by --llm-path (e.g. the imported Qwen2.5-Coder-1.5B). The Whisper encoder is a
random one of tiny.en's size unless --audio-checkpoint says otherwise: its weights do not change
the cost. Videos are the synthetic benchmark's texts (inference.benchmark) with random frames
and 5 s of noise as audio, so every path of the model runs.

Writes <out>/gpu_check.json and <out>/gpu_check.md: device, torch version, parameter counts,
train and inference tokens/second, videos/second and peak memory (torch.cuda.max_memory_allocated).
Tokens are counted per video as the model reads them: the prompt prefix (policy, examples; run
once per step while training, cached in inference) plus the video's own part (evidence, frame
placeholders, 'Label:').
"""

from __future__ import annotations

import argparse
import json
import math
import os
import random
import re
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from inference.benchmark import GeneratorConfig, generate_specs  # noqa: E402
from inference.benchmark.text_only import text_only_features  # noqa: E402
from inference.llm import DEMO_EXAMPLES, DEMO_POLICY_TEXT, LLMClassifier, LLMConfig  # noqa: E402
from inference.types import SAMPLE_RATE, Frame, VideoFeatures  # noqa: E402

SPECIAL_TOKENS = ["<|endoftext|>", "<|im_start|>", "<|im_end|>", "<|image_pad|>"]
CHATML = ("{% for m in messages %}<|im_start|>{{ m['role'] }}\n{{ m['content'] }}<|im_end|>\n{% endfor %}"
          "{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}")
# openai-whisper tiny.en's encoder and decoder sizes (the decoder is dropped by the encoder wrapper)
WHISPER_TINY_EN = dict(n_mels=80, n_audio_ctx=1500, n_audio_state=384, n_audio_head=6, n_audio_layer=4,
                       n_vocab=51864, n_text_ctx=448, n_text_state=384, n_text_head=6, n_text_layer=4)


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--device", default="auto", help="auto (CUDA when present), cuda, cuda:1, cpu")
    parser.add_argument("--dtype", default="bfloat16", help="the LLM's weights")
    parser.add_argument("--llm-path", default=None, help="a local HF causal-LM folder instead of a random Qwen2")
    parser.add_argument("--audio-checkpoint", default=None, help="an openai-whisper checkpoint instead of a random one")
    parser.add_argument("--hidden", type=int, default=512)
    parser.add_argument("--layers", type=int, default=8)
    parser.add_argument("--heads", type=int, default=8)
    parser.add_argument("--kv-heads", type=int, default=2)
    parser.add_argument("--vocab", type=int, default=4000, help="the random model's BPE vocabulary")
    parser.add_argument("--steps", type=int, default=30, help="timed LoRA training steps")
    parser.add_argument("--infer-batches", type=int, default=30, help="timed inference batches")
    parser.add_argument("--warmup", type=int, default=3, help="untimed steps/batches first (CUDA kernels, caches)")
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--n-frames", type=int, default=LLMConfig.n_frames)
    parser.add_argument("--image-size", type=int, default=LLMConfig.image_size)
    parser.add_argument("--fusion", choices=("late", "early"), default="late")
    parser.add_argument("--fsdp-smoke", action="store_true",
                        help="also run `accelerate launch` with the FSDP config over every GPU for a few steps")
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "results" / "gpu_check")
    parser.add_argument("--seed", type=int, default=0)
    return parser.parse_args(argv)


# ---------------------------------------------------------------------------------------
# Random stand-ins, saved as real checkpoints are


def corpus_lines(n_items: int = 400) -> list[str]:
    """Text like what the prompt holds: the policy, its examples and benchmark videos' words."""
    items = generate_specs(GeneratorConfig(seed=12345, n_train=n_items, n_val=0, n_test=0))
    lines = [DEMO_POLICY_TEXT, *(part for example in DEMO_EXAMPLES for part in example),
             "Label: ok scam drugs weapons Reason: Caption: Speech: On-screen text: Frames: Audio: (none)"]
    lines += [" ".join([item.caption, item.speech_text or "", item.onscreen_joined]) for item in items]
    return lines * 3


def save_random_qwen2(folder: Path, hidden: int, layers: int, heads: int, kv_heads: int, vocab: int) -> Path:
    """A random Qwen2 of the given size with a byte-level BPE tokenizer trained here (what
    tests/tiny_llm.py makes, larger): loads through the path the imported Qwen2.5 folder does."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast, Qwen2Config, Qwen2ForCausalLM

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    tok.train_from_iterator(corpus_lines(), trainers.BpeTrainer(vocab_size=vocab, special_tokens=SPECIAL_TOKENS,
                                                                initial_alphabet=pre_tokenizers.ByteLevel.alphabet()))
    tokenizer = PreTrainedTokenizerFast(tokenizer_object=tok, eos_token="<|im_end|>", pad_token="<|endoftext|>",
                                        additional_special_tokens=["<|im_start|>", "<|image_pad|>"])
    tokenizer.chat_template = CHATML
    config = Qwen2Config(vocab_size=len(tokenizer), hidden_size=hidden, intermediate_size=int(hidden * 2.75) // 64 * 64,
                         num_hidden_layers=layers, num_attention_heads=heads, num_key_value_heads=kv_heads,
                         max_position_embeddings=8192, pad_token_id=0, eos_token_id=2, tie_word_embeddings=False)
    torch.manual_seed(0)
    Qwen2ForCausalLM(config).save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return folder


def save_random_whisper(path: Path) -> Path:
    from whisper.model import ModelDimensions, Whisper

    torch.manual_seed(0)
    dims = ModelDimensions(**WHISPER_TINY_EN)
    torch.save({"dims": asdict(dims), "model_state_dict": Whisper(dims).state_dict()}, path)
    return path


def synthetic_videos(n: int, n_frames: int, seed: int) -> tuple[list[VideoFeatures], list[str]]:
    """Benchmark texts as the extractor reads them, with random frames and 5 s of noise."""
    items = generate_specs(GeneratorConfig(seed=seed, n_train=n, n_val=0, n_test=0))
    rng, np_rng = random.Random(seed), np.random.default_rng(seed)
    videos = []
    for item in items:
        features = text_only_features(item, rng)
        frames = [Frame(t_s=float(t), image=np_rng.integers(0, 256, (240, 320, 3), dtype=np.uint8))
                  for t in range(n_frames)]
        audio = (0.1 * np_rng.standard_normal(5 * SAMPLE_RATE)).astype(np.float32)
        videos.append(VideoFeatures(info=features.info, caption=features.caption, frames=frames, audio=audio,
                                    transcript=features.transcript, ocr=features.ocr))
    return videos, [item.label for item in items]


# ---------------------------------------------------------------------------------------
# Measurements


def synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def reset_peak(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)


def peak_gib(device: torch.device) -> float | None:
    return torch.cuda.max_memory_allocated(device) / 2**30 if device.type == "cuda" else None


def batch_tokens(model: LLMClassifier, inputs) -> tuple[int, int]:
    """(tokens the batch's videos read, prefix included; the videos' own tokens)."""
    own = int(inputs.suffix_mask.sum())
    return own + len(model.prefix_ids) * inputs.suffix_ids.shape[0], own


def time_training(model: LLMClassifier, batches: list, labels: list[torch.Tensor], steps: int, warmup: int,
                  device: torch.device) -> dict:
    """LoRA steps (AdamW over everything trainable), the prefix recomputed with grad each step."""
    optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-4)
    model.train()
    losses, seconds, tokens, own_tokens, videos = [], 0.0, 0, 0, 0
    for step in range(warmup + steps):
        inputs, y = batches[step % len(batches)], labels[step % len(batches)]
        synchronize(device)
        start = time.perf_counter()
        loss = F.cross_entropy(model(inputs).float(), y)  # (B, K) logits
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        synchronize(device)
        if step >= warmup:  # the first steps pay for kernel selection and allocator growth
            seconds += time.perf_counter() - start
            total, own = batch_tokens(model, inputs)
            tokens, own_tokens, videos = tokens + total, own_tokens + own, videos + inputs.suffix_ids.shape[0]
            losses.append(loss.item())
    return {"steps": steps, "seconds": seconds, "tokens_per_s": tokens / seconds,
            "video_tokens_per_s": own_tokens / seconds, "videos_per_s": videos / seconds,
            "loss_first": losses[0], "loss_last": losses[-1], "losses_finite": all(map(math.isfinite, losses))}


@torch.no_grad()
def time_inference(model: LLMClassifier, batches: list, n_batches: int, warmup: int, device: torch.device) -> dict:
    """Label probabilities over the cached prefix, as stage 2 scores videos."""
    model.eval()
    seconds, tokens, own_tokens, videos = 0.0, 0, 0, 0
    for i in range(warmup + n_batches):
        inputs = batches[i % len(batches)]
        synchronize(device)
        start = time.perf_counter()
        probs = F.softmax(model(inputs).float(), dim=-1)  # (B, K)
        synchronize(device)
        if i >= warmup:
            seconds += time.perf_counter() - start
            total, own = batch_tokens(model, inputs)
            tokens, own_tokens, videos = tokens + total, own_tokens + own, videos + inputs.suffix_ids.shape[0]
    assert bool(torch.isfinite(probs).all())
    return {"batches": n_batches, "seconds": seconds, "tokens_per_s": tokens / seconds,
            "video_tokens_per_s": own_tokens / seconds, "videos_per_s": videos / seconds}


def fsdp_smoke(llm_path: str, audio_checkpoint: str, out_dir: Path, image_size: int) -> dict:
    """The multi-GPU command as documented (inference/train_mllm.py), over every GPU, 4 steps."""
    n_gpus = max(1, torch.cuda.device_count())
    command = [sys.executable, "-m", "accelerate.commands.launch", "--config_file",
               str(ROOT / "inference/accelerate/fsdp_shard_grad_op.yaml"), "--num_processes", str(n_gpus),
               "--main_process_port", "0", "-m", "inference.train_mllm", "--llm-path", llm_path,
               "--audio-checkpoint", audio_checkpoint, "--image-size", str(image_size), "--text-items", "64",
               "--val-items", "16", "--epochs", "1", "--max-steps", "4", "--batch-size", "4", "--no-progress",
               "--out", str(out_dir / "fsdp-smoke-model")]  # fmt: skip
    start = time.perf_counter()
    try:
        done = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=300,
                              env={**os.environ, "PYTHONPATH": str(ROOT)})
    except subprocess.TimeoutExpired:
        return {"ok": False, "processes": n_gpus, "error": "timed out after 300 s"}
    log = done.stdout + done.stderr
    (out_dir / "fsdp_smoke.log").write_text(log)
    ranks = re.findall(r"^rank \d+/\d+ \(\w+\): .*$", log, flags=re.M)
    return {"ok": done.returncode == 0 and len(ranks) == n_gpus, "returncode": done.returncode,
            "processes": n_gpus, "rank_lines": ranks, "seconds": round(time.perf_counter() - start, 1),
            "log": "fsdp_smoke.log"}


def markdown(report: dict) -> str:
    train, infer = report["train"], report["inference"]

    def mem(key):
        value = report[key]
        return f"{value:.2f} GiB" if value is not None else "n/a (CPU)"

    lines = [
        f"# Stage-2 LLM check on {report['device_name']}", "",
        f"torch {report['torch']}, transformers {report['transformers']}, {report['dtype']}; "
        f"LLM {report['llm']} ({report['parameters']['backbone'] / 1e6:.1f} M parameters, "
        f"{report['parameters']['trainable'] / 1e6:.2f} M trainable); prefix {report['prefix_tokens']} tokens, "
        f"batch {report['batch_size']}.", "",
        "| | tokens/s (prefix included) | video tokens/s | videos/s | peak memory |",
        "|---|---:|---:|---:|---:|",
        f"| LoRA training ({train['steps']} steps) | {train['tokens_per_s']:,.0f} | {train['video_tokens_per_s']:,.0f} "
        f"| {train['videos_per_s']:.1f} | {mem('train_peak_gib')} |",
        f"| inference ({infer['batches']} batches) | {infer['tokens_per_s']:,.0f} | {infer['video_tokens_per_s']:,.0f} "
        f"| {infer['videos_per_s']:.1f} | {mem('inference_peak_gib')} |", "",
        f"Training loss {train['loss_first']:.4f} -> {train['loss_last']:.4f} (finite: {train['losses_finite']}).",
    ]
    if "fsdp_smoke" in report:
        smoke = report["fsdp_smoke"]
        verdict = {True: "ok", False: "FAILED", None: "skipped"}[smoke["ok"]]
        lines += ["", f"FSDP SHARD_GRAD_OP launch over {smoke['processes']} process(es): {verdict} "
                      f"{smoke.get('error') or smoke.get('skipped') or ''}".rstrip()
                  + "".join(f"\n- `{line}`" for line in smoke.get("rank_lines", []))]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    device = torch.device("cuda" if args.device == "auto" and torch.cuda.is_available() else
                          "cpu" if args.device == "auto" else args.device)
    torch.manual_seed(args.seed)
    args.out.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="gpu_check-") as tmp:
        llm_path = args.llm_path or str(save_random_qwen2(Path(tmp) / "qwen2", args.hidden, args.layers, args.heads,
                                                          args.kv_heads, args.vocab))
        audio_checkpoint = args.audio_checkpoint or str(save_random_whisper(Path(tmp) / "whisper-random.pt"))
        config = LLMConfig(audio_checkpoint=audio_checkpoint, backbone_path=llm_path, dtype=args.dtype,
                           fusion=args.fusion, n_frames=args.n_frames, image_size=args.image_size)
        start = time.perf_counter()
        model = LLMClassifier(config, device=device)
        load_s = time.perf_counter() - start

        n_videos = args.batch_size * 4  # batches cycle: the cost does not depend on which video
        videos, labels = synthetic_videos(n_videos, args.n_frames, args.seed)
        start = time.perf_counter()
        prepared = model.prepare(videos)  # Whisper, frames, tokens: once per video, as train_mllm does
        prepare_s = time.perf_counter() - start
        index = {label: i for i, label in enumerate(model.labels)}
        batches, targets = [], []
        for s in range(0, n_videos, args.batch_size):
            batches.append(model.collate(prepared[s : s + args.batch_size]).to(device))
            targets.append(torch.tensor([index[label] for label in labels[s : s + args.batch_size]], device=device))

        reset_peak(device)
        train = time_training(model, batches, targets, args.steps, args.warmup, device)
        train_peak = peak_gib(device)
        reset_peak(device)
        inference = time_inference(model, batches, args.infer_batches, args.warmup, device)
        inference_peak = peak_gib(device)

        import transformers

        report = {
            "device": str(device),
            "device_name": torch.cuda.get_device_name(device) if device.type == "cuda" else "CPU",
            "torch": torch.__version__, "cuda": torch.version.cuda, "transformers": transformers.__version__,
            "dtype": args.dtype, "llm": args.llm_path or f"random Qwen2 {args.hidden}x{args.layers}",
            "parameters": model.parameter_counts(), "prefix_tokens": len(model.prefix_ids),
            "batch_size": args.batch_size, "n_frames": args.n_frames, "image_size": args.image_size,
            "load_seconds": round(load_s, 2), "prepare_seconds_per_video": round(prepare_s / n_videos, 4),
            "train": train, "train_peak_gib": train_peak, "inference": inference, "inference_peak_gib": inference_peak,
        }  # fmt: skip
        del model, batches
        if args.fsdp_smoke:
            if device.type == "cuda":
                report["fsdp_smoke"] = fsdp_smoke(llm_path, audio_checkpoint, args.out, args.image_size)
            else:  # accelerate only takes its FSDP path on accelerators
                report["fsdp_smoke"] = {"ok": None, "processes": 0, "skipped": "needs CUDA"}
    (args.out / "gpu_check.json").write_text(json.dumps(report, indent=2))
    (args.out / "gpu_check.md").write_text(markdown(report))
    print(markdown(report))
    return 0 if train["losses_finite"] and report.get("fsdp_smoke", {}).get("ok") is not False else 1


if __name__ == "__main__":
    raise SystemExit(main())
