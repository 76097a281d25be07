"""The synthetic benchmark: policy-labeled videos for training and evaluating every model.

    items = generate_specs(GeneratorConfig(seed=0))         # pure, deterministic
    manifest = render_dataset(items, Path("var/bench"))    # videos + manifest.jsonl, resumable
    build_feature_cache(manifest, Path("var/cache"), extract, "asr-ocr-v1")
    pairs = load_cached(manifest, Path("var/cache"), "asr-ocr-v1", split="train")

`render_dataset` needs espeak-ng and FFmpeg's encoders (through inference.synth); it and the
cache are imported lazily so that generating specs needs neither.
"""

from inference.benchmark.generate import (
    EVAL_MIX,
    SPLITS,
    TRAIN_MIX,
    BenchmarkItem,
    GeneratorConfig,
    generate_specs,
    hard_fraction,
    mix_report,
    policy_label,
    template_counts,
)

__all__ = [
    "EVAL_MIX", "SPLITS", "TRAIN_MIX", "BenchmarkItem", "GeneratorConfig", "generate_specs", "hard_fraction",
    "mix_report", "policy_label", "template_counts", "render_dataset", "load_manifest", "load_items",
    "build_feature_cache", "load_cached",
]


def __getattr__(name: str):
    if name in ("render_dataset", "load_manifest", "load_items", "item_to_spec"):
        from inference.benchmark import render

        return getattr(render, name)
    if name in ("build_feature_cache", "load_cached", "cache_path"):
        from inference.benchmark import cache

        return getattr(cache, name)
    raise AttributeError(name)
