"""Does stage 1's shared text scorer miss hidden offers because they drown in small talk?

    .venv/bin/python bench/text_scorer_instances.py [--train-items 1500 3000] [--dev-items 400]
        [--out bench/results/text_scorer_instances]

Stage 1's text scorer (inference.baseline.ModalityTextScorer) reads one MiniLM embedding per text
modality: the whole transcript, all on-screen lines, the caption. A spoken offer is one segment
among several, so its embedding is diluted by the rest; the scorer's multiple-instance fit only
chooses among whole modalities. This script runs stage 1's own multiple-instance fit
(`ModalityTextScorer._fit`: C 1, two refits, as the default) on three choices of instance:

- **modality** (what stage 1 does): one text per present modality;
- **pieces**: every caption sentence, transcript segment and on-screen line on its own;
- **both**: the pieces and the whole modality texts.

It is trained on --train-items text-only examples of the default generator (the examples stage 1
trains on) and judged on --dev-items text-only items in the generator's held-out phrasings
(bench/mllm_recipes.py's dev set). A video's p(violation) is the best over its instances, its
label the best violating category when that is above 0.5. The heads, the frame and waveform statistics
and the calibration of the full stage 1 are left out, so the numbers are the scorer's alone: a
comparison of instance choices, not of stage 1 (bench/stage1_heldout.py measures stage 1).

Writes results.json and results.md.
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
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import roc_auc_score

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from mllm_recipes import dev_set  # noqa: E402
from run_cascade import git_commit, machine_description  # noqa: E402

from inference.baseline import ModalityTextScorer, _embedding_text, modality_pieces  # noqa: E402
from inference.benchmark import GeneratorConfig  # noqa: E402
from inference.benchmark.text_only import text_only_split  # noqa: E402
from inference.policy import LABELS  # noqa: E402
from inference.text_encoder import TextEncoder  # noqa: E402

INSTANCES = ("modality", "pieces", "both")
HIDDEN_KINDS = ("speech_only", "onscreen_only")


class Embeddings:
    """MiniLM embeddings, each distinct text encoded once."""

    def __init__(self) -> None:
        self.encoder = TextEncoder()
        self.table: dict[str, np.ndarray] = {}

    def __call__(self, texts: list[str]) -> np.ndarray:
        new = [t for t in dict.fromkeys(texts) if t not in self.table]
        for start in range(0, len(new), 256):
            batch = new[start:start + 256]
            self.table.update(zip(batch, self.encoder.encode(batch)))  # (B, 384)
        return np.array([self.table[t] for t in texts])  # (M, 384)


def instances(videos: list, choice: str, embed: Embeddings) -> tuple[np.ndarray, np.ndarray]:
    """(video index per instance (M,), embeddings (M, 384))."""
    owners, texts = [], []
    for v, features in enumerate(videos):
        for modality, pieces in modality_pieces(features).items():
            if not pieces:
                continue
            whole = [_embedding_text(modality, pieces)]
            chosen = {"modality": whole, "pieces": list(pieces), "both": list(pieces) + whole}[choice]
            for text in dict.fromkeys(chosen):
                owners.append(v)
                texts.append(text)
    return np.array(owners), embed(texts)


def judge(model: LogisticRegression, owners: np.ndarray, X: np.ndarray, labels: list[str], kinds: list[str]) -> dict:
    classes = list(model.classes_)
    ok = classes.index("ok")
    probs = model.predict_proba(X)  # (M, K)
    best = np.zeros((len(labels), len(classes)))  # (N, K): each class's best instance
    for i, v in enumerate(owners):
        best[v] = np.maximum(best[v], probs[i])
    p_violation = 1.0 - np.array([min(probs[owners == v, ok], default=1.0) for v in range(len(labels))])  # (N,)
    violating = [c for c in classes if c != "ok"]
    category = [violating[int(np.argmax([best[v, classes.index(c)] for c in violating]))] for v in range(len(labels))]
    predicted = [c if p > 0.5 else "ok" for c, p in zip(category, p_violation)]
    truth = np.array([label != "ok" for label in labels])
    right = [p == t for p, t in zip(predicted, labels)]
    return {
        "accuracy": round(float(np.mean(right)), 3),
        "roc_auc": round(float(roc_auc_score(truth, p_violation)), 3),
        "per_kind": {k: f"{sum(r for r, kk in zip(right, kinds) if kk == k)}/{kinds.count(k)}" for k in sorted(set(kinds))},
        "hidden_kinds_accuracy": round(float(np.mean([r for r, k in zip(right, kinds) if k in HIDDEN_KINDS])), 3),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--train-items", type=int, nargs="+", default=[1500, 3000])
    parser.add_argument("--dev-items", type=int, default=400)
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "results" / "text_scorer_instances")
    args = parser.parse_args()
    torch.set_num_threads(1)
    started = time.perf_counter()
    embed = Embeddings()
    dev_features, dev_labels, dev_kinds = dev_set(args.dev_items)
    rows = []
    for n in args.train_items:
        train = text_only_split(GeneratorConfig(seed=0), n)
        train_features, train_labels = [f for _, f in train], [row["label"] for row, _ in train]
        for choice in INSTANCES:
            owners, X = instances(train_features, choice, embed)
            labels = np.array([train_labels[v] for v in owners], dtype=object)
            model = ModalityTextScorer()._fit(X, labels, owners)  # stage 1's own multiple-instance fit
            dev_owners, dev_X = instances(dev_features, choice, embed)
            rows.append({"train_items": n, "instances": choice, "train_instances": len(owners),
                         **judge(model, dev_owners, dev_X, dev_labels, dev_kinds)})
            print(rows[-1], flush=True)
    command = " ".join([".venv/bin/python", "bench/text_scorer_instances.py", *sys.argv[1:]])
    results = {"command": command, "date": datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
               "commit": git_commit(), "machine": machine_description(), "labels": list(LABELS),
               "dev_items": args.dev_items, "wall_s": round(time.perf_counter() - started, 1), "rows": rows}
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "results.json").write_text(json.dumps(results, indent=2) + "\n")
    lines = ["# Stage 1's text scorer: whole modalities or their pieces as instances", "", f"`{command}`", "",
             f"{results['date']}, commit {results['commit']}, {results['machine']}; judged on {args.dev_items} "
             "text-only items in the generator's held-out phrasings. The scorer alone (no heads, no media "
             "statistics, no calibration).", "",
             "| training items | instances | training instances | accuracy | ROC AUC | speech_only + onscreen_only |",
             "| ---: | --- | ---: | ---: | ---: | ---: |"]
    lines += [f"| {r['train_items']} | {r['instances']} | {r['train_instances']} | {r['accuracy']} | {r['roc_auc']} "
              f"| {r['hidden_kinds_accuracy']} |" for r in rows]
    lines += ["", "Per kind:", ""] + [f"- {r['train_items']} items, {r['instances']}: {r['per_kind']}" for r in rows]
    (args.out / "results.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
