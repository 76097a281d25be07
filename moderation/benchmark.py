"""The synthetic benchmark of the demo policy as `train`, `evaluate` and a first-run fine-tune
(moderation.retraining) read it: rendered once into a folder, features cached beside it."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from django.conf import settings

from inference.benchmark import (BenchmarkItem, GeneratorConfig, build_feature_cache, generate_specs, load_cached, load_manifest,
                                 render_dataset)
from inference.benchmark.text_only import held_out_text_only, text_only_split
from inference.features import FeatureExtractor, FeatureExtractorConfig, features_from_cache_dict

DEMO_MANIFEST = "demo.jsonl"
# A first-run fine-tune is judged on the rendered test split and on this many text-only items in
# held-out phrasings: on the 24 test videos alone the paired bootstrap's lower bound is far below
# zero for any gain a fine-tune makes (a +0.042 F1 gain had -0.103 and was refused).
GATE_TEXT_ITEMS = 200
# The held-out items' generator seed, offset from the benchmark's own.
GATE_SEED_OFFSET = 104_729


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
    return FeatureExtractor(FeatureExtractorConfig(whisper_checkpoint=str(settings.COEFVQ_ASR_CHECKPOINT),
                                                   beam_size=1))


def finetune_source(data_dir: Path, seed: int, text_items: int, gate_items: int = GATE_TEXT_ITEMS) -> dict:
    """What a first-run fine-tune (TrainingRun.benchmark) learns from and is judged on, checked
    before it is queued."""
    if not (Path(data_dir) / "manifest.jsonl").is_file():
        raise FileNotFoundError(f"{data_dir} holds no rendered benchmark (manifest.jsonl); run `manage.py train` first")
    if text_items < 0 or gate_items < 0:
        raise ValueError(f"text_items and gate_items must be 0 or more, not {text_items} and {gate_items}")
    return {"dir": str(Path(data_dir).resolve()), "seed": int(seed), "text_items": int(text_items),
            "gate_items": int(gate_items)}


def finetune_data(source: dict) -> tuple[dict[str, list[tuple[dict, object]]], list[tuple[dict, object]]]:
    """(the rendered splits, the text-only examples) of a finetune_source: train and text-only
    to learn from, val to pick the epoch, test to gate on."""
    manifest = Path(source["dir"]) / "manifest.jsonl"
    splits = load_splits(manifest, extractor_for_training())
    rendered = {BenchmarkItem.from_dict(row).triple() for row in load_manifest(manifest)}
    return splits, text_only_split(GeneratorConfig(seed=source["seed"]), source["text_items"], rendered)


def gate_text_items(source: dict) -> list[tuple[dict, object]]:
    """The held-out-phrasing text-only items a first-run fine-tune is also judged on (none for a
    source queued before they existed)."""
    return held_out_text_only(source["seed"] + GATE_SEED_OFFSET, source.get("gate_items", 0))


# Beside each stage-2 model: the benchmarks (finetune_source dicts) it learned from, so that a
# fine-tune on reviewer labels replays some of them, as a retrained baseline keeps its rows.
REPLAY_FILE = "replay.json"


def replay_sources(model_dir: Path) -> list[dict]:
    path = Path(model_dir) / REPLAY_FILE
    return json.loads(path.read_text())["benchmarks"] if path.is_file() else []


def save_replay_sources(model_dir: Path, sources: list[dict]) -> None:
    unique = list({json.dumps(source, sort_keys=True): source for source in sources}.values())
    (Path(model_dir) / REPLAY_FILE).write_text(json.dumps({"benchmarks": unique}, indent=1))


def replay_examples(sources: list[dict], n: int, seed: int) -> tuple[list[tuple[object, str]], list[str]]:
    """(n examples drawn from what the benchmarks taught, seeded; sentences about benchmarks that
    are gone). The training videos and text-only examples are drawn from, never the held-out ones."""
    pool, missing = [], []
    for source in sources:
        if not (Path(source["dir"]) / "manifest.jsonl").is_file():
            missing.append(f"The benchmark in {source['dir']} is gone, so none of it was replayed.")
            continue
        splits, text_only = finetune_data(source)
        pool += [(features, row["label"]) for row, features in splits["train"] + text_only]
    picked = np.random.default_rng(seed).choice(len(pool), size=min(n, len(pool)), replace=False)
    return [pool[i] for i in sorted(picked)], missing
