"""Stage 1 on phrasings it never trained on: variants of its shared text scorer and of what
calibrates it, and how many of its mistakes an entropy router could still catch.

    .venv/bin/python bench/stage1_heldout.py --work DIR [--dev-items 400] [--calibration-items 400]
        [--variants NAME ...] [--out bench/results/stage1_heldout]

DIR is a finished `bench/generalize.py --work DIR` folder, or any folder with what this script
reads from one: the first-run 120-video benchmark under DIR/var (`manage.py train baseline --videos
120` with COEFVQ_VAR_DIR=DIR/var). The hand-written sets of bench/video_cases.py are rendered into
DIR when missing. Each variant is trained the way `manage.py train baseline` trains stage 1 (the
rendered training videos plus the default text-only examples, its regularisation picked by
calibrated validation NLL), differing in BaselineConfig.text_scorer_C and text_scorer_rounds, or in
the rows that pick the regularisation and fit the temperatures: the rendered validation videos
(as the product does), or those plus --calibration-items text-only items in the generator's
held-out phrasings (another draw than dev's), given the media of a rendered training video with
the same label as training's text-only rows are. Scored on:

- **dev**: --dev-items text-only items from the generator's held-out templates, slot values and
  voices (bench/mllm_recipes.py's dev set), each given the frames and audio of a rendered
  `easy_ok` training video, so whatever violates is in the words only;
- **own test**: the first run's own test split (24 rendered videos);
- **written40** and **heldout40**: the hand-written videos, extracted as ingest extracts them
  (shared with bench/mllm_recipes.py's cache). Reported beside the held-out sets, not tuned on.

Besides accuracy, F1 and ROC AUC: of stage 1's wrong labels on a set, how many are among the 30 %
of that set with the highest entropy, which is all an entropy router at that budget could send
to stage 2. Writes results.json and results.md.
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
from video_cases import VIDEO_SETS  # noqa: E402

from inference.baseline import BaselineConfig, entropy, featurize_rows, train_baseline_on_features  # noqa: E402
from inference.benchmark import BenchmarkItem, GeneratorConfig, load_manifest  # noqa: E402
from inference.cascade import threshold_for_budget  # noqa: E402
from inference.benchmark.text_only import (BASELINE_TEXT_ITEMS, as_baseline_rows, baseline_fit_rows,  # noqa: E402
                                           baseline_rows, held_out_text_only, text_only_split)
from inference.features import FeatureExtractorConfig  # noqa: E402
from inference.text_encoder import TextEncoder  # noqa: E402

HIDDEN_KINDS = ("speech_only", "onscreen_only")
BUDGET = 0.3  # the bound on the share of traffic stage 2 may see
CALIBRATION_SEED = 3_331  # held-out phrasings for calibration: not DEV_SEED's draw
# name: (BaselineConfig overrides, the rows whose NLL picks its regularisation, the rows its
# temperatures are fit on)
VARIANTS = {
    "without the text scorer": ({"text_scorer_C": 0.0}, "val", "val"),
    "text scorer, every text labelled with its video's label (before)": ({"text_scorer_rounds": 0}, "val", "val"),
    "text scorer, multiple-instance (now)": ({}, "val", "val"),
    "multiple-instance, picked and calibrated on validation videos + held-out phrasings": ({}, "val+heldout",
                                                                                            "val+heldout"),
    "multiple-instance, picked on validation videos, calibrated on them + held-out phrasings": ({}, "val",
                                                                                               "val+heldout"),
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
        "errors_in_top_entropy": errors_in_top_entropy(entropies, np.array(predicted) == np.array(labels), BUDGET),
    }


def errors_in_top_entropy(entropies: np.ndarray, right: np.ndarray, budget: float) -> str:
    """'k/m': of stage 1's m wrong labels, how many the product's entropy router, given the set as
    its history and `budget`, would send to stage 2 (inference.cascade.threshold_for_budget)."""
    routed = entropies >= threshold_for_budget(entropies, budget)  # (N,)
    return f"{int((routed & ~right).sum())}/{int((~right).sum())}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--work", type=Path, required=True, help="A finished bench/generalize.py work folder.")
    parser.add_argument("--dev-items", type=int, default=400)
    parser.add_argument("--calibration-items", type=int, default=400,
                        help="held-out-phrasing text-only items the 'val+heldout' variants pick or calibrate on")
    parser.add_argument("--variants", nargs="+", choices=sorted(VARIANTS), default=None,
                        help="run only these variants (default: all)")
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
    calibration_items = baseline_rows(held_out_text_only(CALIBRATION_SEED, args.calibration_items),
                                      as_baseline_rows(splits["train"]))

    config = BaselineConfig()
    encoder = TextEncoder(config.text_encoder)

    def rows(videos):
        return featurize_rows(videos, encoder, progress=True, prior_config=config.policy_prior)

    X_fit, X_val = rows([f for f, _ in fit_rows]), rows([f for f, _ in val_rows])
    y_val = [label for _, label in val_rows]
    calibration = {"val": (X_val, y_val),
                   "val+heldout": (np.concatenate([X_val, rows([f for f, _ in calibration_items])]),
                                   y_val + [label for _, label in calibration_items])}
    sets = {
        "dev (held-out phrasings)": (rows(dev_features), dev_labels, dev_kinds),
        "own test (24 videos)": (rows([f for _, f in splits["test"]]), [r["label"] for r, _ in splits["test"]],
                                 [r["kind"] for r, _ in splits["test"]]),
    }
    for video_set in VIDEO_SETS.values():
        features, labels, kinds = hand_written_set(args.work, asr_checkpoint, video_set)
        sets[video_set.name] = (rows(features), labels, kinds)
    results = []
    for name, (overrides, picked_on, calibrated_on) in VARIANTS.items():
        if args.variants and name not in args.variants:
            continue
        began = time.perf_counter()
        model = train_baseline_on_features(X_fit, [label for _, label in fit_rows], *calibration[picked_on],
                                           replace(config, **overrides), encoder)
        if calibrated_on != picked_on:
            model.calibrate(*calibration[calibrated_on])
        results.append({"variant": name, "overrides": overrides, "picked_on": picked_on, "calibrated_on": calibrated_on,
                        "train_s": round(time.perf_counter() - began, 1),
                        "temperature": round(model.temperature_, 3), "C": model.config.C,
                        "category_temperature": round(model.category_temperature_, 3),
                        "category_C": model.config.category_C,
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
             f"(rendered + text-only), calibrated on {len(val_rows)} rendered validation videos ('val') or on "
             f"those and {len(calibration_items)} text-only items in held-out phrasings (seed {CALIBRATION_SEED}, "
             f"'val+heldout'). The budget column: of stage 1's wrong labels, how many an entropy router at "
             f"{BUDGET:.0%} of the set could send to stage 2.", "",
             f"| stage 1 | set | accuracy | binary F1 | ROC AUC | speech_only | onscreen_only | median entropy, hidden kinds "
             f"| errors in the top {BUDGET:.0%} by entropy |",
             "| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |"]
    for result in results:
        for set_name, s in result["sets"].items():
            lines.append(f"| {result['variant']} | {set_name} | {s['accuracy']:.3f} | {s['binary_f1']} | {s['roc_auc']} | "
                         f"{s['per_kind'].get('speech_only', '-')} | {s['per_kind'].get('onscreen_only', '-')} | "
                         f"{s['hidden_median_entropy']} | {s['errors_in_top_entropy']} |")
    lines += ["", "Per kind:", ""]
    for result in results:
        for set_name, s in result["sets"].items():
            lines.append(f"- {result['variant']}, {set_name}: {s['per_kind']}")
    (args.out / "results.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
