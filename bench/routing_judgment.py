"""Whether an instance's stage 2 in service should decide the videos its stage 1 routes, judged
with the current rule (moderation.retraining.judge_stage2_routing) on the test split of the
instance's first-run benchmark, as `manage.py train ... --activate` judges it.

    COEFVQ_VAR_DIR=/tmp/gw/var .venv/bin/python bench/routing_judgment.py [--videos 120] [--seed 0]

Useful on an instance trained before the rule changed (bench/generalize.py's work folder): it
prints the judgment the first run would make now. Reads the active configuration; changes nothing.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--videos", type=int, default=120, help="the first run's --videos (COEFVQ_DEMO_VIDEOS)")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "coefvq_site.settings")
    import django

    django.setup()
    import torch
    from django.conf import settings

    from inference.llm import stage2_probabilities
    from moderation import benchmark, retraining, scoring
    from moderation.models import CascadeConfig

    torch.set_num_threads(1)
    config = CascadeConfig.objects.select_related("policy").get(is_active=True, policy__is_default=True)
    data = Path(settings.VAR_DIR) / "bench" / f"train-{args.videos}-seed{args.seed}"
    test = benchmark.load_splits(benchmark.prepare_dataset(data, args.videos, args.seed),
                                 benchmark.extractor_for_training())["test"]
    features, labels = [f for _, f in test], [row["label"] for row, _ in test]
    model = scoring.load_mllm(config.mllm_version_id)
    judgment = retraining.judge_stage2_routing(
        labels, retraining.baseline_scored(config.baseline_version_id, features),
        retraining.Scored(stage2_probabilities(model, features), tuple(model.labels)), config,
        tuple(config.policy.violating_labels), seed=0)
    print(f"{config} ({config.baseline_version}, {config.mllm_version}), stage2_decides now {config.stage2_decides}")
    print(judgment.sentence())


if __name__ == "__main__":
    main()
