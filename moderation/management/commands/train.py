"""`manage.py train baseline|mllm|all`: train on the synthetic policy benchmark, evaluate on its
test split, register the result as a model version and (with --activate) put it in service.

The data is generated and rendered once into a folder (deterministic by seed) and its features
are cached, so a second run only trains.
"""

from __future__ import annotations

import json
from datetime import datetime, timezone
from pathlib import Path

import numpy as np
import torch
from django.conf import settings
from django.core.management.base import BaseCommand, CommandError

from inference.baseline import (BaselineConfig, entropy, evaluate_baseline, featurize_rows,
                                train_baseline_on_features)
from inference.benchmark import (BenchmarkItem, GeneratorConfig, build_feature_cache, generate_specs, load_cached,
                                 load_manifest, render_dataset)
from inference.benchmark.text_only import (BASELINE_TEXT_ITEMS, MLLM_TEXT_ITEMS, as_baseline_rows, baseline_fit_rows,
                                           text_only_split)
from inference.features import FeatureExtractor, FeatureExtractorConfig, features_from_cache_dict
from inference.metrics import evaluation_report
from inference.mllm import MLLMConfig
from inference.policy import LABELS
from inference.text_encoder import TextEncoder
from inference.train_mllm import MLLM_LR, TrainConfig, train_mllm
from inference.training_set import NO_VIDEO, TrainingSet, save_training_set
from moderation import actions
from moderation.models import CascadeConfig, ModelVersion


DEMO_MANIFEST = "demo.jsonl"
# prepare_dataset puts max(videos // 5, 4) videos in val and in test; 12 leaves 4 to train on.
MIN_VIDEOS = 12


def check_videos(videos: int) -> None:
    if videos < MIN_VIDEOS:
        raise CommandError(f"--videos {videos} is too few: the benchmark needs at least {MIN_VIDEOS} "
                           "(4 each for val and test, the rest to train on).")


def check_training_options(options) -> None:
    check_videos(options["videos"])
    for name in ("epochs", "lora_r", "lora_alpha"):
        if options[name] < 1:
            raise CommandError(f"--{name.replace('_', '-')} must be at least 1, not {options[name]}.")
    if not options["lr"] > 0:
        raise CommandError(f"--lr must be more than 0, not {options['lr']}.")
    if options["text_items"] is not None and options["text_items"] < 0:
        raise CommandError(f"--text-items must be 0 or more, not {options['text_items']}.")


def text_item_counts(text_items: int | None) -> dict[str, int]:
    """Text-only examples per model: --text-items for both, or each model's default."""
    if text_items is None:
        return {"baseline": BASELINE_TEXT_ITEMS, "mllm": MLLM_TEXT_ITEMS}
    return {"baseline": text_items, "mllm": text_items}


def prepare_dataset(data_dir: Path, videos: int, seed: int) -> Path:
    """Render the benchmark once (60/20/20 train/val/test) and return its manifest. The test
    split also goes into demo.jsonl, an `ingest --manifest` file of videos no model trained on."""
    manifest = data_dir / "manifest.jsonl"
    if not manifest.exists():
        n_val = n_test = max(videos // 5, 4)
        config = GeneratorConfig(seed=seed, n_train=videos - n_val - n_test, n_val=n_val, n_test=n_test)
        manifest = render_dataset(generate_specs(config), data_dir, progress=True)
    demo = [json.dumps({"path": row["path"], "caption": row["caption"]})
            for row in load_manifest(manifest) if row["split"] == "test"]
    (data_dir / DEMO_MANIFEST).write_text("\n".join(demo) + "\n")
    return manifest


def load_splits(manifest: Path, extractor: FeatureExtractor) -> dict[str, list[tuple[dict, object]]]:
    cache_dir = manifest.parent / "features"
    build_feature_cache(manifest, cache_dir, extractor, extractor_version=extractor.version, progress=True)
    return {
        split: [(row, features_from_cache_dict(data))
                for row, data in load_cached(manifest, cache_dir, extractor.version, split=split)]
        for split in ("train", "val", "test")
    }


def extractor_for_training() -> FeatureExtractor:
    # Greedy Whisper decoding for benchmark data: several times faster than beam 5 on a CPU for
    # a few points of word accuracy (bench/run_cascade.py uses the same setting).
    return FeatureExtractor(FeatureExtractorConfig(whisper_checkpoint=str(settings.COEFVQ_WHISPER_CHECKPOINT),
                                                   beam_size=1))


def version_name(kind: str) -> str:
    return f"{kind}-{datetime.now(timezone.utc):%Y%m%d-%H%M%S}"


class Command(BaseCommand):
    help = "Train the baseline and/or the MLLM on the synthetic policy benchmark and register them."

    def add_arguments(self, parser):
        parser.add_argument("kind", choices=["baseline", "mllm", "all"])
        parser.add_argument("--policy", default=None)
        parser.add_argument("--videos", type=int, default=400, help="Benchmark videos to render (all splits).")
        parser.add_argument("--seed", type=int, default=0)
        parser.add_argument("--data", type=Path, default=None,
                            help="Benchmark folder (default var/bench/train-VIDEOS-seedSEED).")
        parser.add_argument("--epochs", type=int, default=3)
        parser.add_argument("--lr", type=float, default=MLLM_LR, help=f"The MLLM's learning rate (default {MLLM_LR:g}).")
        parser.add_argument("--text-items", type=int, default=None,
                            help="Text-only training examples drawn on top of the rendered videos, for both models "
                                 f"(0: none; default: {BASELINE_TEXT_ITEMS} for the baseline, {MLLM_TEXT_ITEMS} for "
                                 "the MLLM).")
        parser.add_argument("--fusion", choices=["late", "early"], default="late")
        parser.add_argument("--lora-r", type=int, default=32)
        parser.add_argument("--lora-alpha", type=int, default=64)
        parser.add_argument("--activate", action="store_true", help="Put the new versions in service.")
        parser.add_argument("--if-none-active", action="store_true",
                            help="Do nothing when the policy already has active models (first-run setup).")

    def handle(self, *args, **options):
        try:
            policy = actions.check_policy(options["policy"])
        except actions.ActionError as error:
            raise CommandError(error.message) from None
        check_training_options(options)
        if options["if_none_active"] and CascadeConfig.objects.filter(
                policy=policy, is_active=True, baseline_version__isnull=False).exists():
            self.stdout.write("Active models exist; nothing to train.")
            return
        torch.set_num_threads(max(1, min(2, torch.get_num_threads())))
        data_dir = options["data"] or settings.VAR_DIR / "bench" / f"train-{options['videos']}-seed{options['seed']}"
        manifest = prepare_dataset(data_dir, options["videos"], options["seed"])
        splits = load_splits(manifest, extractor_for_training())
        rendered = {BenchmarkItem.from_dict(row).triple() for row in load_manifest(manifest)}
        kinds = ["baseline", "mllm"] if options["kind"] == "all" else [options["kind"]]
        counts = {kind: n for kind, n in text_item_counts(options["text_items"]).items() if kind in kinds}
        text_only = {n: text_only_split(GeneratorConfig(seed=options["seed"]), n, rendered) for n in set(counts.values())}
        self.stderr.write(f"Benchmark: {', '.join(f'{k} {len(v)}' for k, v in splits.items())} videos in {data_dir}; "
                          + ", ".join(f"{len(text_only[n])} text-only training examples for the {kind}"
                                      for kind, n in counts.items()))

        trained = {}
        if "baseline" in kinds:
            trained["baseline"] = self.train_baseline(policy, splits, text_only[counts["baseline"]])
        if "mllm" in kinds:
            trained["mllm"] = self.train_mllm(policy, splits, text_only[counts["mllm"]], options)
        for version in trained.values():
            test = version.metrics["test"]
            self.stdout.write(f"{version}: test accuracy {test['accuracy']:.3f}, binary F1 {test['binary']['f1']:.3f}"
                              f" -> {version.artifact_path}")
        if options["activate"]:
            config = actions.do_activate_models(policy, note=f"manage.py train {options['kind']}", **trained)
            self.stdout.write(self.style.SUCCESS(f"Active: cascade configuration v{config.version}."))

    def train_baseline(self, policy, splits, text_only) -> ModelVersion:
        config = BaselineConfig()
        encoder = TextEncoder(config.text_encoder)
        fit_rows, val_rows = baseline_fit_rows(splits["train"], text_only), as_baseline_rows(splits["val"])
        X_fit = featurize_rows([video for video, _ in fit_rows], encoder, progress=True,
                               prior_config=config.policy_prior)  # (N, D)
        X_val = featurize_rows([video for video, _ in val_rows], encoder, prior_config=config.policy_prior)  # (V, D)
        y_fit, y_val = [label for _, label in fit_rows], [label for _, label in val_rows]
        model = train_baseline_on_features(X_fit, y_fit, X_val, y_val, config, encoder)
        kinds = [row["kind"] for row, _ in splits["test"]]
        metrics = {"test": evaluate_baseline(model, as_baseline_rows(splits["test"]), kinds=kinds),
                   "text_only_rows": len(fit_rows) - len(splits["train"])}
        version = version_name("baseline")
        folder = Path(settings.COEFVQ_MODEL_DIR) / "baseline" / version
        model.save(folder)
        # Kept beside the model, so retraining from reviewer labels still learns from the benchmark too.
        save_training_set(folder, TrainingSet(np.concatenate([X_fit, X_val]), np.array(y_fit + y_val, dtype=str),
                                              np.full(len(y_fit) + len(y_val), NO_VIDEO, dtype=np.int64)))
        registered = actions.do_register_model(policy, kind="baseline", version=version, artifact_path=str(folder),
                                               config={"temperature": float(model.temperature_)}, metrics=metrics)
        # The router's history until the baseline has scored traffic of its own: its entropies on
        # the validation videos, which it calibrated on but never fit.
        actions.do_set_reference_entropies(registered, entropy(model.predict_proba(X_val)))
        return registered

    def train_mllm(self, policy, splits, text_only, options) -> ModelVersion:
        def items(pairs):
            return [(f, row["label"]) for row, f in pairs]

        version = version_name("mllm")
        folder = Path(settings.COEFVQ_MODEL_DIR) / "mllm" / version
        model_config = MLLMConfig(audio_checkpoint=str(settings.COEFVQ_WHISPER_CHECKPOINT), fusion=options["fusion"],
                                  lora_r=options["lora_r"], lora_alpha=options["lora_alpha"])
        result = train_mllm(items(splits["train"]) + items(text_only), items(splits["val"]), model_config,
                            TrainConfig(epochs=options["epochs"], lr=options["lr"]), out_dir=folder, progress=True)
        test = splits["test"]
        outputs = result.model.predict([f for _, f in test])
        probs = np.array([[o.probabilities[label] for label in LABELS] for o in outputs])  # (N, K)
        metrics = {"test": evaluation_report([row["label"] for row, _ in test], probs,
                                             kinds=[row["kind"] for row, _ in test]),
                   "best_val_macro_f1": result.best_val_macro_f1, "best_epoch": result.best_epoch,
                   "text_only_items": len(text_only), "lr": options["lr"]}
        return actions.do_register_model(policy, kind="mllm", version=version, artifact_path=str(folder),
                                         config=model_config.to_dict(), metrics=metrics)
