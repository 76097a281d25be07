"""`manage.py train baseline|mllm|all`: train on the synthetic policy benchmark, evaluate on its
test split, register the result as a model version and (with --activate) put it in service.

The data is generated and rendered once into a folder (deterministic by seed) and its features
are cached, so a second run only trains.
"""

from __future__ import annotations

from datetime import datetime, timezone
from pathlib import Path

import numpy as np
import torch
from django.conf import settings
from django.core.management.base import BaseCommand, CommandError

from inference.baseline import (BaselineConfig, entropy, evaluate_baseline, featurize_rows,
                                train_baseline_on_features)
from inference.benchmark import BenchmarkItem, GeneratorConfig, load_manifest
from inference.benchmark.text_only import (BASELINE_TEXT_ITEMS, MLLM_TEXT_ITEMS, as_baseline_rows, baseline_fit_rows,
                                           text_only_split)
from inference.llm import LLM_LORA_LR, LLMClassifier, LLMConfig, available_device, stage2_probabilities
from inference.llm_import import ensure_llm
from inference.metrics import evaluation_report
from inference.mllm import MLLMConfig
from inference.text_encoder import TextEncoder
from inference.train_mllm import MLLM_LR, TrainConfig, train_mllm
from inference.training_set import NO_VIDEO, TrainingSet, save_training_set
from moderation import retraining, scoring
from moderation.actions.ingest import check_policy
from moderation.actions.model_registry import (DEFAULT_MLLM_BUDGET, do_activate_models, do_register_model,
                                               do_set_reference_entropies)
from moderation.actions.validation import ActionError
from moderation.benchmark import (extractor_for_training, finetune_source, load_splits, prepare_dataset,
                                  save_replay_sources)
from moderation.models import CascadeConfig, ModelVersion


# prepare_dataset puts max(videos // 5, 4) videos in val and in test; 12 leaves 4 to train on.
MIN_VIDEOS = 12


def check_videos(videos: int) -> None:
    if videos < MIN_VIDEOS:
        raise CommandError(f"--videos {videos} is too few: the benchmark needs at least {MIN_VIDEOS} "
                           "(4 each for val and test, the rest to train on).")


def check_training_options(options) -> None:
    check_videos(options["videos"])
    for name in ("lora_r", "lora_alpha"):
        if options[name] < 1:
            raise CommandError(f"--{name.replace('_', '-')} must be at least 1, not {options[name]}.")
    # The LLM works from its prompt untrained (0 epochs); the MiniLM classifier has to learn.
    least_epochs = 0 if options["stage2"] == "llm" else 1
    if options["epochs"] < least_epochs:
        raise CommandError(f"--epochs must be at least {least_epochs} for --stage2 {options['stage2']}, "
                           f"not {options['epochs']}.")
    if options["lr"] is None:
        options["lr"] = LLM_LORA_LR if options["stage2"] == "llm" else MLLM_LR
    if not options["lr"] > 0:
        raise CommandError(f"--lr must be more than 0, not {options['lr']}.")
    if options["text_items"] is not None and options["text_items"] < 0:
        raise CommandError(f"--text-items must be 0 or more, not {options['text_items']}.")


def text_item_counts(text_items: int | None) -> dict[str, int]:
    """Text-only examples per model: --text-items for both, or each model's default."""
    if text_items is None:
        return {"baseline": BASELINE_TEXT_ITEMS, "mllm": MLLM_TEXT_ITEMS}
    return {"baseline": text_items, "mllm": text_items}


def version_name(kind: str) -> str:
    return f"{kind}-{datetime.now(timezone.utc):%Y%m%d-%H%M%S}"


def judge_routing(policy, trained: dict[str, ModelVersion], test,
                  stage2_test: retraining.Scored | None) -> retraining.RoutingJudgment | None:
    """Whether the stage 2 trained here should decide what stage 1 routes, judged on the test
    split (stage2_test: its probabilities there) as retraining judges it; None when no stage 2 was
    trained or no stage 1 exists."""
    current = scoring.active_config(policy.pk)
    baseline = trained.get("baseline") or (current.baseline_version if current else None)
    if "mllm" not in trained or baseline is None:
        return None
    config = current or CascadeConfig(policy=policy, mllm_budget=DEFAULT_MLLM_BUDGET)
    return retraining.judge_stage2_routing([row["label"] for row, _ in test],
                                           retraining.baseline_scored(baseline.pk, [f for _, f in test]),
                                           stage2_test, config, tuple(policy.violating_labels), seed=0)


class Command(BaseCommand):
    help = "Train the baseline and/or the MLLM on the synthetic policy benchmark and register them."

    def add_arguments(self, parser):
        parser.add_argument("kind", choices=["baseline", "mllm", "all"])
        parser.add_argument("--policy", default=None)
        parser.add_argument("--videos", type=int, default=400, help="Benchmark videos to render (all splits).")
        parser.add_argument("--seed", type=int, default=0)
        parser.add_argument("--data", type=Path, default=None,
                            help="Benchmark folder (default var/bench/train-VIDEOS-seedSEED).")
        parser.add_argument("--stage2", choices=["llm", "minilm"], default="llm",
                            help="llm: the pretrained decoder LLM (COEFVQ_LLM_PATH) with LoRA; minilm: the older "
                                 "MiniLM-backbone classifier.")
        parser.add_argument("--epochs", type=int, default=3,
                            help="Training epochs of stage 2; 0 puts the LLM in service as its prompt makes it "
                                 "(LoRA untrained), to be fine-tuned later by `manage.py retrain --benchmark`.")
        parser.add_argument("--lr", type=float, default=None,
                            help=f"Stage 2's learning rate (default {LLM_LORA_LR:g} for the LLM, {MLLM_LR:g} for MiniLM).")
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
            policy = check_policy(options["policy"])
        except ActionError as error:
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

        trained, stage2_test = {}, None
        if "baseline" in kinds:
            trained["baseline"] = self.train_baseline(policy, splits, text_only[counts["baseline"]])
        if "mllm" in kinds:
            train_stage2 = self.train_llm if options["stage2"] == "llm" else self.train_mllm
            source = finetune_source(data_dir, options["seed"], counts["mllm"])
            trained["mllm"], stage2_test = train_stage2(policy, splits, text_only[counts["mllm"]], options, source)
        for version in trained.values():
            test = version.metrics["test"]
            self.stdout.write(f"{version}: test accuracy {test['accuracy']:.3f}, binary F1 {test['binary']['f1']:.3f}"
                              f" -> {version.artifact_path}")
        if options["activate"]:
            routing = judge_routing(policy, trained, splits["test"], stage2_test)
            if routing is not None:
                self.stdout.write(routing.sentence())
            config = do_activate_models(policy, note=f"manage.py train {options['kind']}", **trained,
                                        stage2_decides=routing.stage2_decides if routing is not None else None)
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
        registered = do_register_model(policy, kind="baseline", version=version, artifact_path=str(folder),
                                       config={"temperature": float(model.temperature_)}, metrics=metrics)
        # The router's history until the baseline has scored traffic of its own: its entropies on
        # the validation videos, which it calibrated on but never fit.
        do_set_reference_entropies(registered, entropy(model.predict_proba(X_val)))
        return registered

    def train_llm(self, policy, splits, text_only, options, source: dict) -> tuple[ModelVersion, retraining.Scored]:
        """The LLM classifier: from its prompt (--epochs 0) or LoRA fine-tuned here."""
        llm_path = Path(settings.COEFVQ_LLM_PATH)
        if not (llm_path / "config.json").is_file():
            ensure_llm(llm_path, progress=True)
        version = version_name("mllm")
        folder = Path(settings.COEFVQ_MODEL_DIR) / "mllm" / version
        model_config = LLMConfig(audio_checkpoint=str(settings.COEFVQ_WHISPER_CHECKPOINT), backbone_path=str(llm_path),
                                 policy_text=policy.description or LLMConfig.policy_text,
                                 labels=tuple(policy.labels), violating=tuple(policy.violating_labels),
                                 fusion=options["fusion"], lora_r=options["lora_r"], lora_alpha=options["lora_alpha"])
        extra = {"fine_tuned": options["epochs"] > 0}
        if options["epochs"] == 0:
            model = LLMClassifier(model_config, device=available_device(settings.COEFVQ_STAGE2_DEVICE)).eval()
            # The LLM as its prompt makes it, with one bias per label fit on the rendered training
            # and validation videos (it leans towards "ok" otherwise); the test split stays unseen.
            seen = splits["train"] + splits["val"]
            bias = model.calibrate_label_bias([f for _, f in seen], [row["label"] for row, _ in seen], progress=True)
            extra["label_bias"] = dict(zip(model.labels, (round(float(b), 4) for b in bias)))
            model.save(folder)
        else:
            result = train_mllm(_items(splits["train"]) + _items(text_only), _items(splits["val"]), model_config,
                                TrainConfig(epochs=options["epochs"], lr=options["lr"], batch_size=4), out_dir=folder,
                                progress=True)
            save_replay_sources(folder, [source])  # fine-tunes on reviewer labels replay some of it
            model = result.model
            extra.update(best_val_macro_f1=result.best_val_macro_f1, best_epoch=result.best_epoch,
                         text_only_items=len(text_only), lr=options["lr"])
        return self.register_stage2(policy, version, folder, model, splits["test"], extra)

    def register_stage2(self, policy, version: str, folder: Path, model, test,
                        extra: dict) -> tuple[ModelVersion, retraining.Scored]:
        """The registered version, and its probabilities on the test split (for the routing judgment)."""
        probs = stage2_probabilities(model, [f for _, f in test], progress=True)  # (N, K)
        metrics = {"test": evaluation_report([row["label"] for row, _ in test], probs,
                                             kinds=[row["kind"] for row, _ in test], label_names=model.labels),
                   **extra}
        registered = do_register_model(policy, kind="mllm", version=version, artifact_path=str(folder),
                                       config=model.config.to_dict(), metrics=metrics)
        return registered, retraining.Scored(probs, tuple(model.labels))

    def train_mllm(self, policy, splits, text_only, options, source: dict) -> tuple[ModelVersion, retraining.Scored]:
        items = _items

        version = version_name("mllm")
        folder = Path(settings.COEFVQ_MODEL_DIR) / "mllm" / version
        model_config = MLLMConfig(audio_checkpoint=str(settings.COEFVQ_WHISPER_CHECKPOINT), fusion=options["fusion"],
                                  lora_r=options["lora_r"], lora_alpha=options["lora_alpha"])
        result = train_mllm(items(splits["train"]) + items(text_only), items(splits["val"]), model_config,
                            TrainConfig(epochs=options["epochs"], lr=options["lr"]), out_dir=folder, progress=True)
        save_replay_sources(folder, [source])  # fine-tunes on reviewer labels replay some of it
        return self.register_stage2(policy, version, folder, result.model, splits["test"], {
            "best_val_macro_f1": result.best_val_macro_f1, "best_epoch": result.best_epoch,
            "text_only_items": len(text_only), "lr": options["lr"]})


def _items(pairs) -> list[tuple[object, str]]:
    return [(f, row["label"]) for row, f in pairs]

