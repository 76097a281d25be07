"""The cascade on the small benchmark's test split with a saved stage-2 model, such as the LLM a
first run puts in service.

    .venv/bin/python bench/cascade_stage2.py --stage2 FOLDER [--name NAME] [--threads 2]

FOLDER is a saved stage-2 model (`LLMClassifier.save`, or the older MiniLM classifier), e.g. the
active MLLM version's folder of an instance. Stage 1 is the one `bench/run_cascade.py --small`
trained last: its test probabilities are read from bench/results/small/test_probs.npz, and the
test split's features from that run's cache (var/bench/small, Whisper base at beam 1 as `manage.py
train` extracts). The stage-2 model scores every test video as the product's stage-2 task does
(`stage2_probabilities`, no retraining here), and inference.evaluate replays the cascade at each
budget with the entropy, random and oracle routers. Writes results.json, results.md and
test_probs.npz under bench/results/small_stage2/NAME/.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from datetime import datetime, timezone
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from run_cascade import CONFIGS, git_commit, load_split, machine_description  # noqa: E402

from inference.evaluate import evaluate_split  # noqa: E402
from inference.features import FeatureExtractorConfig  # noqa: E402
from inference.llm import load_stage2, stage2_probabilities  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--stage2", type=Path, required=True, help="a saved stage-2 model folder")
    parser.add_argument("--name", default=None, help="results subfolder (default: the folder's name)")
    parser.add_argument("--work", type=Path, default=ROOT / "var" / "bench" / "small")
    parser.add_argument("--baseline", type=Path, default=ROOT / "bench" / "results" / "small")
    parser.add_argument("--whisper", type=Path, default=ROOT / "var" / "models" / "whisper-base.pt",
                        help="the ASR checkpoint the feature cache was made with")
    parser.add_argument("--audio-checkpoint", type=Path, default=ROOT / "var" / "models" / "whisper-tiny.en.pt",
                        help="stage 2's audio tower, as COEFVQ_WHISPER_CHECKPOINT")
    parser.add_argument("--llm-path", type=Path, default=ROOT / "var" / "models" / "qwen2.5-coder-1.5b-instruct")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "results" / "small_stage2")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    started = time.perf_counter()
    commit = git_commit()

    version = FeatureExtractorConfig(whisper_checkpoint=str(args.whisper), beam_size=1).version
    test = load_split(args.work / "videos" / "manifest.jsonl", args.work / "cache", version, "test")
    labels, kinds = [row["label"] for row, _ in test], [row["kind"] for row, _ in test]
    stage1 = np.load(args.baseline / "test_probs.npz")
    if stage1["labels"].tolist() != labels or stage1["kinds"].tolist() != kinds:
        raise SystemExit(f"{args.baseline} was run on another test split")

    model = load_stage2(args.stage2, audio_checkpoint=str(args.audio_checkpoint), llm_path=str(args.llm_path))
    began = time.perf_counter()
    stage2 = stage2_probabilities(model, [features for _, features in test], progress=True)  # (N, K)
    stage2_s = (time.perf_counter() - began) / len(test)
    report = evaluate_split(stage1["baseline"], stage2, labels, kinds)

    name = args.name or args.stage2.name
    out = args.out / name
    out.mkdir(parents=True, exist_ok=True)
    command = " ".join([".venv/bin/python", "bench/cascade_stage2.py", *sys.argv[1:]])
    record = {"command": command, "commit": commit, "machine": machine_description(), "threads": args.threads,
              "date": f"{datetime.now(timezone.utc):%Y-%m-%d %H:%M} UTC", "stage2_folder": str(args.stage2),
              "stage2_class": type(model).__name__, "stage2_seconds_per_video": stage2_s,
              "features": version, "split": vars(CONFIGS["small"]), "evaluation": report,
              "wall_s": time.perf_counter() - started}
    (out / "results.json").write_text(json.dumps(record, indent=1, allow_nan=False) + "\n")
    np.savez(out / "test_probs.npz", baseline=stage1["baseline"], stage2=stage2, labels=np.array(labels),
             kinds=np.array(kinds))
    (out / "results.md").write_text(markdown(record))
    print((out / "results.md").read_text())


def markdown(record: dict) -> str:
    report = record["evaluation"]
    base, stage2 = report["baseline"], report["mllm"]
    lines = ["# The cascade with a saved stage-2 model: small benchmark, test split", "",
             f"`{record['command']}`", "",
             f"{record['date']}, commit {record['commit']}, {record['machine']}, {record['threads']} torch threads. "
             f"Stage 2: `{record['stage2_class']}` from `{record['stage2_folder']}`, "
             f"{record['stage2_seconds_per_video']:.2f} s per video (probabilities only, batches of 8). Stage 1: "
             f"bench/results/small's. {report['n']} test videos, hard fraction {report['hard_fraction']:.3f}.", "",
             "| model | binary F1 | accuracy | hard-kind F1 | R@P90 |", "| --- | ---: | ---: | ---: | ---: |"]
    for label, r in (("stage 1", base), ("stage 2 on every video", stage2)):
        lines.append(f"| {label} | {r['binary']['f1']:.3f} | {r['accuracy']:.3f} | {fmt(r['hard']['f1'])} | "
                     f"{fmt(r['binary']['R@P90'])} |")
    kinds = list(base["per_kind"])
    lines += ["", "Accuracy per kind (n):", "",
              "| model | " + " | ".join(f"{kind} ({base['per_kind'][kind]['n']})" for kind in kinds) + " |",
              "| --- |" + " ---: |" * len(kinds)]
    for label, r in (("stage 1", base), ("stage 2", stage2)):
        lines.append(f"| {label} | " + " | ".join(fmt(r["per_kind"][kind]["accuracy"]) for kind in kinds) + " |")
    lines += ["", "| budget | entropy F1 | routed | random F1 | oracle F1 |", "| ---: | ---: | ---: | ---: | ---: |"]
    curves = report["cascade"]
    for entropy, random, oracle in zip(curves["entropy"], curves["random"], curves["oracle"]):
        lines.append(f"| {entropy['budget']:.0%} | {entropy['f1']:.3f} | {entropy['routed_fraction']:.3f} | "
                     f"{random['f1']:.3f} | {oracle['f1']:.3f} |")
    match = report["budget_to_match_mllm"]
    lines += ["", f"Smallest budget (1% grid) where the entropy cascade is within {match['tolerance']} binary F1 of "
              f"stage 2 on every video: {fmt(match['budget'])}.", ""]
    return "\n".join(lines)


def fmt(value) -> str:
    return "-" if value is None else f"{value:.3f}"


if __name__ == "__main__":
    main()
