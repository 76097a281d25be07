"""Seconds per LoRA training step of the stage-2 LLM on this machine, with LoRA on the prompt's
shared prefix (LLMConfig.adapt_prefix, how models were trained before) and without (the default:
the prefix's keys and values stay the pretrained model's, computed once).

    .venv/bin/python bench/llm_train_step.py [--steps 6] [--batch-size 4] [--threads 1]
        [--llm-path DIR] [--out bench/results/llm_train_step]

Each setting trains the real backbone (COEFVQ_LLM_PATH's default folder) through
inference.train_mllm.train_mllm, as `manage.py retrain --benchmark` does, on text-only examples
drawn by the benchmark generator, for --steps optimizer steps; the first step (warm-up) is not
counted. The first-run fine-tune's wall time is about its step count times these seconds.
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from inference.benchmark import GeneratorConfig  # noqa: E402
from inference.benchmark.text_only import as_baseline_rows, text_only_split  # noqa: E402
from inference.llm import LLM_LORA_LR, LLMConfig  # noqa: E402
from inference.train_mllm import TrainConfig, train_mllm  # noqa: E402
from llm_cpu_dtype import write_results  # noqa: E402


def step_seconds(config: LLMConfig, items, steps: int, batch_size: int) -> dict:
    stamps: list[float] = []
    with tempfile.TemporaryDirectory() as out:
        train_mllm(items, [], config, TrainConfig(epochs=1, batch_size=batch_size, lr=LLM_LORA_LR, max_steps=steps),
                   out, progress=False, on_step=lambda done, total: stamps.append(time.perf_counter()))
    per_step = np.diff(stamps)  # the first step (warm-up, and the prefix computed once) is left out
    return {"adapt_prefix": config.adapt_prefix, "steps_timed": len(per_step),
            "mean_s": round(float(per_step.mean()), 2), "max_s": round(float(per_step.max()), 2)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--llm-path", type=Path, default=ROOT / "var" / "models" / "qwen2.5-coder-1.5b-instruct")
    parser.add_argument("--audio-checkpoint", type=Path, default=ROOT / "var" / "models" / "whisper-tiny.en.pt")
    parser.add_argument("--steps", type=int, default=6)
    parser.add_argument("--batch-size", type=int, default=4)
    parser.add_argument("--threads", type=int, default=1, help="torch threads (the gpu worker's on 2 cores: 1)")
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "results" / "llm_train_step")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    items = as_baseline_rows(text_only_split(GeneratorConfig(seed=0), args.steps * args.batch_size))
    rows = []
    for adapt_prefix in (True, False):
        config = LLMConfig(audio_checkpoint=str(args.audio_checkpoint), backbone_path=str(args.llm_path),
                           adapt_prefix=adapt_prefix)
        rows.append(step_seconds(config, items, args.steps, args.batch_size))
        print(rows[-1], flush=True)
    from inference.llm import LLMClassifier

    model = LLMClassifier(LLMConfig(audio_checkpoint=str(args.audio_checkpoint), backbone_path=str(args.llm_path)))
    prepared = model.prepare([features for features, _ in items])
    tokens = [len(model._suffix(video)[0]) for video in prepared]
    load = ", ".join(f"{x:.1f}" for x in os.getloadavg())
    result = {"command": " ".join([".venv/bin/python", *sys.argv]), "machine": f"{platform.machine()}, {os.cpu_count()} CPUs",
              "torch": torch.__version__, "cpu_capability": torch.backends.cpu.get_cpu_capability(),
              "amx": torch.cpu._is_amx_tile_supported(), "threads": args.threads, "batch_size": args.batch_size,
              "prefix_tokens": len(model.prefix_ids), "video_tokens_mean": round(float(np.mean(tokens)), 1),
              "load_average_after": load, "rows": rows}
    speedup = rows[0]["mean_s"] / rows[1]["mean_s"]
    lines = ["# Seconds per LoRA training step of the stage-2 LLM", "", f"`{result['command']}`", "",
             f"{result['machine']}, torch {result['torch']}, CPU capability {result['cpu_capability']}, AMX "
             f"{result['amx']}; {args.threads} torch threads; batch {args.batch_size} text-only examples; prompt prefix "
             f"{result['prefix_tokens']} tokens, a video's own tokens {result['video_tokens_mean']} on average; load "
             f"average after the run {load}.", "",
             "| LoRA on the prefix | steps timed | mean s per step | max s |", "| --- | ---: | ---: | ---: |",
             *(f"| {'yes (adapt_prefix)' if r['adapt_prefix'] else 'no (default)'} | {r['steps_timed']} | "
               f"{r['mean_s']:.2f} | {r['max_s']:.2f} |" for r in rows),
             "", f"Without LoRA on the prefix a step is {speedup:.1f}x faster."]
    write_results(args.out, result, lines)


if __name__ == "__main__":
    main()
