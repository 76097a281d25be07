"""`manage.py evaluate`: the active baseline and MLLM of a policy on the benchmark's test split:
each model's F1, R@P and per-kind accuracy, and the cascade at several MLLM budgets with the
entropy, random and oracle routers. The report goes to stdout as JSON, and to --out when given."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
from django.conf import settings
from django.core.management.base import BaseCommand, CommandError

from inference.evaluate import evaluate_split
from inference.policy import HARD_KINDS, LABELS
from moderation import scoring
from moderation.actions.ingest import check_policy
from moderation.actions.validation import ActionError

from moderation.benchmark import extractor_for_training, load_splits, prepare_dataset

from .train import check_videos


class Command(BaseCommand):
    help = "Evaluate the active models and the cascade on the synthetic benchmark's test split."

    def add_arguments(self, parser):
        parser.add_argument("--policy", default=None)
        parser.add_argument("--videos", type=int, default=400)
        parser.add_argument("--seed", type=int, default=0)
        parser.add_argument("--data", type=Path, default=None)
        parser.add_argument("--split", choices=["val", "test"], default="test")
        parser.add_argument("--out", type=Path, default=None, help="Also write the JSON report to this file.")

    def handle(self, *args, **options):
        try:
            policy = check_policy(options["policy"])
        except ActionError as error:
            raise CommandError(error.message) from None
        check_videos(options["videos"])
        config = scoring.active_config(policy.pk)
        if config is None or config.baseline_version is None or config.mllm_version is None:
            raise CommandError("The policy needs an active baseline and MLLM; run `manage.py train all --activate`.")
        data_dir = options["data"] or settings.VAR_DIR / "bench" / f"train-{options['videos']}-seed{options['seed']}"
        manifest = prepare_dataset(data_dir, options["videos"], options["seed"])
        rows = load_splits(manifest, extractor_for_training())[options["split"]]
        if not any(row["kind"] in HARD_KINDS for row, _ in rows):
            raise CommandError(f"The {options['split']} split of {data_dir} has no hard cases to measure the "
                               "cascade on; use more --videos.")
        baseline = scoring.load_baseline(config.baseline_version_id)
        mllm = scoring.load_mllm(config.mllm_version_id)
        features = [f for _, f in rows]
        baseline_probs = np.array([[baseline.score(f).probs[label] for label in LABELS]
                                   for f in features])  # (N, K)
        mllm_probs = np.array([[o.probabilities[label] for label in LABELS]
                               for o in mllm.predict(features)])  # (N, K)
        report = evaluate_split(baseline_probs, mllm_probs, [row["label"] for row, _ in rows],
                                [row["kind"] for row, _ in rows])
        report["models"] = {"baseline": str(config.baseline_version), "mllm": str(config.mllm_version),
                            "cascade_config": config.version, "data": str(data_dir), "split": options["split"]}
        text = json.dumps(report, indent=2)
        self.stdout.write(text)
        if options["out"]:
            options["out"].parent.mkdir(parents=True, exist_ok=True)
            options["out"].write_text(text + "\n", encoding="utf-8")
