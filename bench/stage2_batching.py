"""Seconds for the prompted LLM to score many videos at once, batched in arrival order against
batched by length (`LLMClassifier.label_logits`, what the first run's label-bias calibration,
`manage.py train`'s test scoring and the retraining gate use).

    .venv/bin/python bench/stage2_batching.py --work DIR [--batch-size 8] [--threads 1]
        [--out bench/results/stage2_batching]

DIR is a `bench/generalize.py --work DIR` folder whose first run finished: the videos scored are
its first-run benchmark's training and validation splits, the ones the calibration scores. A batch
is padded to its longest video, so batching by length computes fewer padding tokens; the logits
of each video move only by the rounding of a different batch shape.

Writes results.json and results.md.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from datetime import datetime, timezone
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from mllm_recipes import FIRST_RUN_BENCHMARK  # noqa: E402
from run_cascade import git_commit, load_split, machine_description  # noqa: E402

from inference.features import FeatureExtractorConfig  # noqa: E402
from inference.llm import LLMClassifier, LLMConfig  # noqa: E402


def padded_tokens(lengths: list[int], batch_size: int) -> int:
    """Tokens computed when consecutive videos of these lengths are batched, each batch padded to its longest."""
    batches = [lengths[i:i + batch_size] for i in range(0, len(lengths), batch_size)]
    return sum(max(batch) * len(batch) for batch in batches)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--work", type=Path, required=True)
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "results" / "stage2_batching")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    models, benchmark = args.work / "var" / "models", args.work / FIRST_RUN_BENCHMARK
    version = FeatureExtractorConfig(whisper_checkpoint=str(models / "whisper-base.pt"), beam_size=1).version
    features = [f for split in ("train", "val")
                for _, f in load_split(benchmark / "manifest.jsonl", benchmark / "features", version, split)]
    model = LLMClassifier(LLMConfig(audio_checkpoint=str(models / "whisper-tiny.en.pt"),
                                    backbone_path=str(models / "qwen2.5-coder-1.5b-instruct"))).eval()
    n = args.batch_size
    lengths = [len(model._suffix(video)[0]) for video in model.prepare(features)]
    padded = {"arrival": padded_tokens(lengths, n), "by_length": padded_tokens(sorted(lengths), n)}
    with torch.no_grad():
        model(model.features_to_inputs(features[:1]))  # warm-up: the prompt prefix's keys and values
        start = time.perf_counter()
        arrival = torch.cat([model(model.features_to_inputs(features[i:i + n])).float().cpu()
                             for i in range(0, len(features), n)])  # (N, K)
        arrival_s = time.perf_counter() - start
        start = time.perf_counter()
        by_length = model.label_logits(features, batch_size=n)  # (N, K)
        by_length_s = time.perf_counter() - start
    record = {"command": " ".join([".venv/bin/python", "bench/stage2_batching.py", *sys.argv[1:]]),
              "commit": git_commit(), "machine": machine_description(),
              "date": f"{datetime.now(timezone.utc):%Y-%m-%d %H:%M} UTC", "videos": len(features), "batch_size": n,
              "threads": args.threads, "tokens": sum(lengths), "padded_tokens": padded,
              "seconds": {"arrival": round(arrival_s, 1), "by_length": round(by_length_s, 1)},
              "max_abs_logit_difference": round(float((arrival - by_length).abs().max()), 4),
              "same_label": int((arrival.argmax(-1) == by_length.argmax(-1)).sum())}
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "results.json").write_text(json.dumps(record, indent=1) + "\n")
    lines = ["# The prompted LLM scoring many videos: batched in arrival order or by length", "",
             f"`{record['command']}`", "", f"{record['date']}, commit {record['commit']}, {record['machine']}.", "",
             f"{len(features)} videos (the first run's training and validation splits, {sum(lengths)} tokens of their "
             f"own), batches of {n}, {args.threads} torch thread(s).", "",
             "| batches | padded tokens | seconds |", "| --- | ---: | ---: |",
             f"| in arrival order | {padded['arrival']} | {record['seconds']['arrival']} |",
             f"| by length (`label_logits`) | {padded['by_length']} | {record['seconds']['by_length']} |", "",
             f"Largest difference of a logit between the two: {record['max_abs_logit_difference']}; the same label for "
             f"{record['same_label']} of {len(features)} videos."]
    (args.out / "results.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
