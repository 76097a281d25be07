"""Stage 1 on phrasings it never trained on: the baseline without its shared text scorer, with it
fit on every text under its video's label, and with it fit multiple-instance (the default).

    .venv/bin/python bench/stage1_heldout.py --work DIR [--dev-items 400] [--out bench/results/stage1_heldout]

DIR is a finished `bench/generalize.py --work DIR` folder, or any folder with what this script
reads from one: the first-run 120-video benchmark under DIR/var (`manage.py train baseline --videos
120` with COEFVQ_VAR_DIR=DIR/var) and the 40 hand-written videos under DIR/videos
(generalize.render_all). Each variant is trained the way `manage.py train baseline` trains stage 1
(the rendered training videos plus the default text-only examples, calibrated on the rendered
validation videos), differing only in BaselineConfig.text_scorer_C and text_scorer_rounds, and
scored on:

- **dev**: --dev-items text-only items from the generator's held-out templates, slot values and
  voices (bench/mllm_recipes.py's dev set), each given the frames and audio of a rendered
  `easy_ok` training video, so whatever violates is in the words only;
- **own test**: the first run's own test split (24 rendered videos);
- **40 videos**: bench/generalize.py's hand-written videos, extracted as ingest extracts them
  (shared with bench/mllm_recipes.py's cache). Reported beside the held-out sets, not tuned on.

Writes results.json and results.md.
"""

from __future__ import annotations

import argparse
import json
import random
import sys
import time
from dataclasses import replace
from datetime import datetime, timezone
from pathlib import Path

import numpy as np
import torch
from sklearn.metrics import roc_auc_score

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from mllm_recipes import FIRST_RUN_BENCHMARK, dev_set, hand_written_set  # noqa: E402
from run_cascade import git_commit, load_split, machine_description  # noqa: E402

from inference.baseline import BaselineConfig, entropy, featurize_rows, train_baseline_on_features  # noqa: E402
from inference.benchmark import BenchmarkItem, GeneratorConfig, load_manifest  # noqa: E402
from inference.benchmark.text_only import BASELINE_TEXT_ITEMS, as_baseline_rows, baseline_fit_rows, text_only_split  # noqa: E402
from inference.features import FeatureExtractorConfig  # noqa: E402
from inference.text_encoder import TextEncoder  # noqa: E402

HIDDEN_KINDS = ("speech_only", "onscreen_only")
VARIANTS = {  # name: BaselineConfig overrides
    "without the text scorer": {"text_scorer_C": 0.0},
    "text scorer, every text labelled with its video's label (before)": {"text_scorer_rounds": 0},
    "text scorer, multiple-instance (now)": {},
}


def score(model, X: np.ndarray, labels: list[str], kinds: list[str]) -> dict:
    probs = model.predict_proba(X)  # (N, K)
    predicted = [model.config.labels[i] for i in probs.argmax(1)]
    truth = np.array([label != "ok" for label in labels])
    flagged = np.array([label != "ok" for label in predicted])
    tp, fp, fn = int((truth & flagged).sum()), int((~truth & flagged).sum()), int((truth & ~flagged).sum())
    p_violation = 1.0 - probs[:, model.config.labels.index("ok")]
    entropies = entropy(probs)
    hidden = [e for e, kind in zip(entropies, kinds) if kind in HIDDEN_KINDS]
    return {
        "n": len(labels),
        "accuracy": round(float(np.mean([p == t for p, t in zip(predicted, labels)])), 3),
        "binary_f1": round(2 * tp / (2 * tp + fp + fn), 3) if tp + fp + fn else None,
        "roc_auc": round(float(roc_auc_score(truth, p_violation)), 3) if 0 < truth.sum() < len(truth) else None,
        "per_kind": {kind: f"{sum(p == t for p, t, k in zip(predicted, labels, kinds) if k == kind)}/{kinds.count(kind)}"
                     for kind in sorted(set(kinds))},
        "hidden_median_entropy": round(float(np.median(hidden)), 3) if hidden else None,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--work", type=Path, required=True, help="A finished bench/generalize.py work folder.")
    parser.add_argument("--dev-items", type=int, default=400)
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "results" / "stage1_heldout")
    args = parser.parse_args()
    torch.set_num_threads(1)
    started = time.perf_counter()
    asr_checkpoint = args.work / "var" / "models" / "whisper-base.pt"
    benchmark = args.work / FIRST_RUN_BENCHMARK
    manifest = benchmark / "manifest.jsonl"
    version = FeatureExtractorConfig(whisper_checkpoint=str(asr_checkpoint), beam_size=1).version  # as manage.py train
    splits = {split: load_split(manifest, benchmark / "features", version, split) for split in ("train", "val", "test")}
    rendered = {BenchmarkItem.from_dict(row).triple() for row in load_manifest(manifest)}
    fit_rows = baseline_fit_rows(splits["train"], text_only_split(GeneratorConfig(seed=0), BASELINE_TEXT_ITEMS, rendered))
    val_rows = as_baseline_rows(splits["val"])

    dev_features, dev_labels, dev_kinds = dev_set(args.dev_items)
    benign = [features for row, features in splits["train"] if row["kind"] == "easy_ok"]
    rng = random.Random("stage1-dev-media")
    dev_features = [replace(f, frames=m.frames, audio=m.audio) for f, m in ((f, rng.choice(benign)) for f in dev_features)]
    hand_features, hand_labels, hand_kinds = hand_written_set(args.work, asr_checkpoint)

    config = BaselineConfig()
    encoder = TextEncoder(config.text_encoder)

    def rows(videos):
        return featurize_rows(videos, encoder, progress=True, prior_config=config.policy_prior)

    X_fit, X_val = rows([f for f, _ in fit_rows]), rows([f for f, _ in val_rows])
    sets = {
        "dev (held-out phrasings)": (rows(dev_features), dev_labels, dev_kinds),
        "own test (24 videos)": (rows([f for _, f in splits["test"]]), [r["label"] for r, _ in splits["test"]],
                                 [r["kind"] for r, _ in splits["test"]]),
        "40 hand-written videos": (rows(hand_features), hand_labels, hand_kinds),
    }
    results = []
    for name, overrides in VARIANTS.items():
        began = time.perf_counter()
        model = train_baseline_on_features(X_fit, [label for _, label in fit_rows], X_val,
                                           [label for _, label in val_rows], replace(config, **overrides), encoder)
        results.append({"variant": name, "overrides": overrides, "train_s": round(time.perf_counter() - began, 1),
                        "temperature": round(model.temperature_, 3), "C": model.config.C,
                        "prior_weight": model.config.prior_weight,
                        "sets": {set_name: score(model, *data) for set_name, data in sets.items()}})
        print(json.dumps(results[-1]), flush=True)

    command = " ".join([".venv/bin/python", "bench/stage1_heldout.py", *sys.argv[1:]])
    record = {"command": command, "commit": git_commit(), "machine": machine_description(),
              "date": f"{datetime.now(timezone.utc):%Y-%m-%d %H:%M} UTC", "fit_rows": len(fit_rows),
              "wall_s": round(time.perf_counter() - started, 1), "results": results}
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "results.json").write_text(json.dumps(record, indent=1) + "\n")
    lines = ["# Stage 1 on phrasings it never trained on", "", f"`{command}`", "",
             f"{record['date']}, commit {record['commit']}, {record['machine']}; {len(fit_rows)} training rows "
             f"(rendered + text-only), calibrated on {len(val_rows)} rendered validation videos.", "",
             "| stage 1 | set | accuracy | binary F1 | ROC AUC | speech_only | onscreen_only | median entropy, hidden kinds |",
             "| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: |"]
    for result in results:
        for set_name, s in result["sets"].items():
            lines.append(f"| {result['variant']} | {set_name} | {s['accuracy']:.3f} | {s['binary_f1']} | {s['roc_auc']} | "
                         f"{s['per_kind'].get('speech_only', '-')} | {s['per_kind'].get('onscreen_only', '-')} | "
                         f"{s['hidden_median_entropy']} |")
    lines += ["", "Per kind:", ""]
    for result in results:
        for set_name, s in result["sets"].items():
            lines.append(f"- {result['variant']}, {set_name}: {s['per_kind']}")
    (args.out / "results.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
