"""End-to-end cascade benchmark: synthetic videos -> features -> baseline + MLLM -> cascade.

    python bench/run_cascade.py --out bench/results [--small]

Steps (every expensive one is cached under var/bench/<config>/ and resumes):
generate the policy-labeled specs -> render the videos -> decode + ASR + OCR each video once
(inference.features, with a progress bar) -> train the stage-1 baseline -> train the MLLM with
late and with early audio fusion -> a LoRA rank/alpha sweep -> evaluate every model on the test
split -> replay the cascade at several budgets with the entropy, random and oracle routers ->
the same with other stage-1 baselines (a Platt bias; oracle evidence columns, the router's
ceiling) -> measure the compute per video of each stage -> write results.json, results.md and
f1_vs_budget.png to <out>/<config>/.

Heavy imports (torch, the models) happen inside main(): the decode sandbox's fork server
preloads __main__, and with torch imported at module level every isolated decode costs
about a second more (measured: 0.1 s -> 1.3 s per video).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shlex
import subprocess
import sys
import time
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # the models are imported inside main(): see the module docstring
    from inference.types import VideoFeatures

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

BUDGETS: tuple[float, ...] = (0.05, 0.10, 0.20, 0.30)
LORA_SWEEP: tuple[tuple[int, int], ...] = ((8, 16), (16, 32), (32, 64), (64, 128))


@dataclass(frozen=True)
class RunConfig:
    name: str
    n_train: int
    n_val: int
    n_test: int
    epochs: int  # the late- and early-fusion models
    sweep_epochs: int  # each LoRA sweep point
    batch_size: int = 16
    seed: int = 0


CONFIGS = {
    # Each epoch also passes over the text-only examples (1500 by default), so few are needed.
    "small": RunConfig("small", n_train=240, n_val=60, n_test=150, epochs=2, sweep_epochs=1),
    "full": RunConfig("full", n_train=800, n_val=150, n_test=300, epochs=3, sweep_epochs=1),
}


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description="COEF-VQ cascade benchmark (CPU, offline).")
    parser.add_argument("--out", type=Path, default=REPO / "bench" / "results")
    parser.add_argument("--small", action="store_true", help="240/60/150 videos, 2 epochs (sweep: 1)")
    parser.add_argument("--work", type=Path, default=REPO / "var" / "bench", help="videos, feature cache, models")
    parser.add_argument("--whisper", type=Path, default=REPO / "var" / "models" / "whisper-tiny.en.pt")
    parser.add_argument("--threads", type=int, default=1, help="torch CPU threads (1 measured best on the shared 2-core box)")
    parser.add_argument("--asr-beam", type=int, default=1,
                        help="Whisper beam size; 1 (greedy) halves the ASR time on CPU, production uses 5")  # fmt: skip
    parser.add_argument("--text-items", type=int, default=None,
                        help="text-only training examples on top of the rendered train split, for both models "
                             "(inference/benchmark/text_only.py; default: DEFAULT_TEXT_ITEMS, 1500, where "
                             "manage.py train gives the MLLM 3000)")
    parser.add_argument("--mllm-from", type=Path, default=None,
                        help="a results folder of an earlier run on the same split (its test_probs.npz and "
                             "results.json): reuse its MLLM's test probabilities and timings instead of training "
                             "the seven MLLMs again, to measure a new stage 1 in front of the same stage 2")
    parser.add_argument("--stop-after", choices=("features", "all"), default="all",
                        help="'features': only render and fill the feature cache")  # fmt: skip
    return parser.parse_args(argv)


def machine_description() -> str:
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return f"{platform.system()} {platform.machine()}, {cpu}, {os.cpu_count()} logical CPUs, Python {platform.python_version()}"


def git_commit() -> str:
    """HEAD's short hash, with " (+ uncommitted changes)" when inference/ or bench/ differ from it.

    Taken when the run starts: the code is imported then, and others may commit while it runs."""
    try:
        head = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=REPO, capture_output=True, text=True,
                              check=True).stdout.strip()  # fmt: skip
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no", "--", "inference", "bench"],
                               cwd=REPO, capture_output=True, text=True, check=True).stdout.strip()  # fmt: skip
    except (OSError, subprocess.CalledProcessError):
        return "unknown"
    return f"{head} (+ uncommitted changes)" if dirty else head


def prepare_data(cfg: RunConfig, args: argparse.Namespace):
    """-> (items, manifest path, cache dir, extractor version). Renders and extracts what is missing."""
    from inference.benchmark import GeneratorConfig, build_feature_cache, generate_specs, render_dataset
    from inference.features import FeatureExtractor, FeatureExtractorConfig
    from inference.whisper_import import ensure_checkpoint

    ensure_checkpoint(args.whisper)
    items = generate_specs(GeneratorConfig(seed=cfg.seed, n_train=cfg.n_train, n_val=cfg.n_val, n_test=cfg.n_test))
    root = args.work / cfg.name
    manifest = render_dataset(items, root / "videos", workers=2)
    extractor = FeatureExtractor(FeatureExtractorConfig(whisper_checkpoint=str(args.whisper), beam_size=args.asr_beam))
    build_feature_cache(manifest, root / "cache", extractor, extractor.version)
    return items, manifest, root / "cache", extractor.version


def load_split(manifest: Path, cache_dir: Path, version: str, split: str) -> list[tuple[dict, "VideoFeatures"]]:
    from inference.benchmark import load_cached
    from inference.features import features_from_cache_dict

    return [(row, features_from_cache_dict(entry)) for row, entry in load_cached(manifest, cache_dir, version, split)]


def baseline_features(splits: dict) -> dict:
    """The baseline's feature rows for fit (train + text-only rows, with a same-label training
    video's frames and audio), val and test, made once for the shipped baseline and its variants."""
    from inference.baseline import BaselineConfig, featurize_rows
    from inference.benchmark.text_only import as_baseline_rows, baseline_fit_rows
    from inference.text_encoder import TextEncoder

    config = BaselineConfig()
    encoder = TextEncoder(config.text_encoder)
    rows = {"fit": baseline_fit_rows(splits["train"], splits["text_only"]),
            "val": as_baseline_rows(splits["val"]), "test": as_baseline_rows(splits["test"])}  # fmt: skip
    t0 = time.perf_counter()
    X = {split: featurize_rows([video for video, _ in r], encoder, progress=True, prior_config=config.policy_prior)
         for split, r in rows.items()}
    return {"X": X, "y": {split: [label for _, label in r] for split, r in rows.items()}, "config": config,
            "encoder": encoder, "featurize_s": time.perf_counter() - t0}  # fmt: skip


def run_baseline(splits: dict, features: dict) -> dict:
    """Train + calibrate on the fit and val rows of baseline_features; score test one video at a
    time, timing the cheap features + baseline."""
    import numpy as np

    from inference.baseline import cheap_features, train_baseline_on_features

    X, y = features["X"], features["y"]
    t0 = time.perf_counter()
    model = train_baseline_on_features(X["fit"], y["fit"], X["val"], y["val"], features["config"], features["encoder"])
    train_s = time.perf_counter() - t0
    model.encoder.encode(["warm up"])  # load MiniLM before timing
    probs, seconds = [], []
    for _, f in splits["test"]:
        t = time.perf_counter()
        probs.append(model.predict_proba(cheap_features(f, model.encoder))[0])  # (K,)
        seconds.append(time.perf_counter() - t)
    return {"probs": np.array(probs), "seconds": seconds, "featurize_s": features["featurize_s"], "train_s": train_s,
            "estimator": model.config.estimator, "C": model.config.C, "category_C": model.config.category_C,
            "calibration": model.calibration_}  # fmt: skip


# Where the hard kinds hide their evidence, for the stage-1 ceiling below.
HIDDEN_MODALITIES: dict[str, tuple[str, ...]] = {"speech": ("speech",), "speech_and_onscreen": ("speech", "onscreen")}


def stage1_variants(splits: dict, features: dict, mllm_probs, labels: list[str], kinds: list[str]) -> dict:
    """The entropy cascade with other stage-1 baselines in front of the same MLLM, trained on
    the rows of baseline_features.

    - prior_shift: the shipped baseline with BaselineConfig.shift_prior (a Platt bias fitted on
      val), which is off by default;
    - speech, speech_and_onscreen (the ceiling): the baseline retrained with one more column,
      1 when the video promotes a violation in those modalities. The column is read from the
      generator's evidence tags, which no deployed model has: an upper bound on what a cheap
      speech or on-screen cue could give the router, not a model. Text-only rows get their own
      item's tag (their frames and audio are a donor's).
    """
    import numpy as np

    from inference.baseline import BaselineConfig, train_baseline_on_features
    from inference.evaluate import evaluate_split

    X, y, config = features["X"], features["y"], features["config"]
    pairs = {"fit": splits["train"] + splits["text_only"], "val": splits["val"], "test": splits["test"]}

    def evaluated(X_variant: dict, variant: BaselineConfig) -> dict:
        model = train_baseline_on_features(X_variant["fit"], y["fit"], X_variant["val"], y["val"], variant)
        report = evaluate_split(model.predict_proba(X_variant["test"]), mllm_probs, labels, kinds)
        return {"baseline_f1": report["baseline"]["binary"]["f1"],
                "entropy": [{"budget": p["budget"], "f1": p["f1"]} for p in report["cascade"]["entropy"]],
                "budget_to_match_mllm": report["budget_to_match_mllm"]["budget"]}  # fmt: skip

    out = {"prior_shift": evaluated(X, replace(config, shift_prior=True))}
    for name, modalities in HIDDEN_MODALITIES.items():
        def column(split_pairs):
            return np.array([[any(m in modalities and role == "promotion" for m, role, _ in row["evidence"])]
                             for row, _ in split_pairs], dtype=np.float32)  # (N, 1)

        out[name] = evaluated({split: np.hstack([X[split], column(pairs[split])]) for split in X}, config)
    return out


def mllm_test_probs(model, features: list, timed: bool, batch_size: int = 16):
    """(N, K) probabilities on test; timed: one video at a time (prepare incl. Whisper encoder + forward)."""
    import numpy as np

    model.eval()
    if timed:
        model.probabilities(model.collate(model.prepare(features[:1])))  # warm up
        probs, seconds = [], []
        for f in features:
            t = time.perf_counter()
            probs.append(model.probabilities(model.collate(model.prepare([f])))[0].numpy())  # (K,)
            seconds.append(time.perf_counter() - t)
        return np.array(probs), seconds
    chunks = [model.probabilities(model.collate(model.prepare(features[i : i + batch_size]))).numpy()
              for i in range(0, len(features), batch_size)]  # fmt: skip
    return np.concatenate(chunks), None


def run_mllm(name: str, fusion: str, r: int, alpha: int, epochs: int, splits: dict, cfg: RunConfig,
             args: argparse.Namespace, root: Path, timed: bool, class_weighting: str = "balanced") -> dict:  # fmt: skip
    from inference.mllm import MLLMConfig
    from inference.train_mllm import TrainConfig, train_mllm

    def items(pairs):
        return [(f, row["label"]) for row, f in pairs]

    print(f"== MLLM {name}: fusion={fusion} LoRA r={r} alpha={alpha}, {epochs} epoch(s), {class_weighting} class weights",
          flush=True)  # fmt: skip
    model_config = MLLMConfig(audio_checkpoint=str(args.whisper), fusion=fusion, lora_r=r, lora_alpha=alpha)
    train_config = TrainConfig(epochs=epochs, batch_size=cfg.batch_size, seed=cfg.seed, class_weighting=class_weighting)
    t0 = time.perf_counter()
    result = train_mllm(items(splits["train"]) + items(splits["text_only"]), items(splits["val"]), model_config,
                        train_config,
                        out_dir=root / "models" / name, progress=True)  # fmt: skip
    train_s = time.perf_counter() - t0
    probs, seconds = mllm_test_probs(result.model, [f for _, f in splits["test"]], timed)
    return {
        "name": name, "fusion": fusion, "lora_r": r, "lora_alpha": alpha, "epochs": epochs,
        "class_weighting": class_weighting,
        "best_epoch": result.best_epoch, "best_val_macro_f1": result.best_val_macro_f1,
        "train_s": train_s, "prepare_s": result.prepare_seconds,
        "trainable_parameters": result.model.parameter_counts(),
        "history": [vars(h) for h in result.history],
        "probs": probs, "seconds": seconds,
    }  # fmt: skip


def mean(values) -> float:
    values = list(values)
    return float(sum(values) / len(values)) if values else 0.0


def compute_report(splits: dict, baseline: dict, mllm: dict, cascade: dict) -> dict:
    """Wall seconds per video of each stage on the test split, and each cascade's total vs MLLM on
    everything, charged as the product pays them.

    Extraction (isolated decode + ASR + OCR) runs on every video, since stage 1 reads the
    transcript and the on-screen text; stage 1 = extraction + cheap features + baseline; stage 2 =
    the MLLM (its Whisper encoder included). MLLM on everything = extraction + stage 2 for every
    video. Timings of the benchmark's process (ASR at the benchmark's beam); bench/worker_cost.py
    measures the same inside a Celery worker with the production settings."""
    timings = splits["test_timings"]
    decode_s = mean(t["decode_s"] for t in timings)
    asr_s = mean(t["asr_s"] for t in timings)
    ocr_s = mean(t["ocr_s"] for t in timings)
    cheap_s = mean(baseline["seconds"])
    mllm_s = mean(mllm["seconds"])
    extraction = decode_s + asr_s + ocr_s
    stage1 = extraction + cheap_s
    stage2 = mllm_s
    everything = extraction + stage2
    per_budget = []
    for point in cascade["entropy"]:
        total = stage1 + point["routed_fraction"] * stage2
        per_budget.append({"budget": point["budget"], "routed_fraction": point["routed_fraction"],
                           "seconds_per_video": total, "relative_to_mllm_on_everything": total / everything})  # fmt: skip
    return {
        "decode_s": decode_s, "cheap_features_and_baseline_s": cheap_s, "asr_s": asr_s, "ocr_s": ocr_s,
        "extraction_s": extraction, "mllm_s": mllm_s, "stage1_s": stage1, "stage2_s": stage2,
        "mllm_on_everything_s": everything, "entropy_cascade": per_budget,
    }  # fmt: skip


def strip_arrays(run: dict) -> dict:
    return {k: v for k, v in run.items() if k not in ("probs", "seconds")}


def main(argv: list[str] | None = None) -> int:
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    args = parse_args(argv)
    import numpy as np
    import torch

    from inference.benchmark import hard_fraction, mix_report
    from inference.benchmark import GeneratorConfig
    from inference.benchmark.text_only import DEFAULT_TEXT_ITEMS, text_only_split
    from inference.evaluate import BUDGETS as EVAL_BUDGETS
    from inference.evaluate import evaluate_split, model_report

    assert tuple(EVAL_BUDGETS) == BUDGETS
    torch.set_num_threads(args.threads)
    cfg = CONFIGS["small" if args.small else "full"]
    command = "python bench/run_cascade.py " + " ".join(shlex.quote(a) for a in (argv if argv is not None else sys.argv[1:]))
    started = time.perf_counter()
    commit = git_commit()
    items, manifest, cache_dir, version = prepare_data(cfg, args)
    if args.stop_after == "features":
        print(f"features cached in {cache_dir / version} ({time.perf_counter() - started:.0f} s)")
        return 0

    from inference.benchmark import load_cached

    splits = {split: load_split(manifest, cache_dir, version, split) for split in ("train", "val", "test")}
    splits["test_timings"] = [entry["timings"] for _, entry in load_cached(manifest, cache_dir, version, "test")]
    n_text = DEFAULT_TEXT_ITEMS if args.text_items is None else args.text_items
    splits["text_only"] = text_only_split(GeneratorConfig(seed=cfg.seed), n_text, {item.triple() for item in items})
    labels = [row["label"] for row, _ in splits["test"]]
    kinds = [row["kind"] for row, _ in splits["test"]]
    root = args.work / cfg.name

    print("== baseline", flush=True)
    features = baseline_features(splits)
    baseline = run_baseline(splits, features)
    if args.mllm_from is not None:
        runs, sweep, chosen = earlier_mllm(args.mllm_from, labels, kinds)
    else:
        runs, sweep, chosen = train_mllms(splits, cfg, args, root)
    report = evaluate_split(baseline["probs"], chosen["probs"], labels, kinds)
    compute = compute_report(splits, baseline, chosen, report["cascade"])
    print("== stage-1 variants", flush=True)
    variants = stage1_variants(splits, features, chosen["probs"], labels, kinds)
    results = {
        "command": command,
        "machine": machine_description(),
        "torch_threads": args.threads,
        "git_commit": commit,
        "config": vars(cfg),
        "text_only_items": len(splits["text_only"]),
        "feature_extractor": version,
        "asr_beam_size": args.asr_beam,
        "asr_checkpoint": args.whisper.stem,
        "mix": mix_report(items),
        "test_hard_fraction": hard_fraction([it for it in items if it.split == "test"]),
        "baseline": strip_arrays(baseline),
        "mllm_runs": {name: {**strip_arrays(run), "test": model_report(run["probs"], labels, kinds)}
                      for name, run in {**runs, **sweep}.items()},  # fmt: skip
        "cascade_mllm": chosen["name"],
        "mllm_from": chosen.get("from"),
        "evaluation": report,
        "compute": compute,
        "stage1_variants": variants,
        "wall_s": time.perf_counter() - started,
    }
    out = args.out / cfg.name
    out.mkdir(parents=True, exist_ok=True)
    (out / "results.json").write_text(json.dumps(results, indent=2, allow_nan=False))
    np.savez(out / "test_probs.npz", baseline=baseline["probs"], mllm=chosen["probs"], labels=np.array(labels),
             kinds=np.array(kinds))  # fmt: skip
    chart = write_chart(report, out / "f1_vs_budget.png")
    (out / "results.md").write_text(render_markdown(results, chart))
    print((out / "results.md").read_text())
    return 0


def train_mllms(splits: dict, cfg: RunConfig, args: argparse.Namespace, root: Path) -> tuple[dict, dict, dict]:
    """The three main MLLM runs, the LoRA sweep, and the one the cascade uses (best on val)."""
    runs = {
        "late_r32": run_mllm("late_r32", "late", 32, 64, cfg.epochs, splits, cfg, args, root, timed=True),
        "early_r32": run_mllm("early_r32", "early", 32, 64, cfg.epochs, splits, cfg, args, root, timed=True),
        # Balanced class weights push doubtful videos away from "ok" (false flags on easy_ok in
        # the first run); the same late-fusion model with plain cross-entropy competes on val.
        "late_r32_unweighted": run_mllm("late_r32_unweighted", "late", 32, 64, cfg.epochs, splits, cfg, args, root,
                                        timed=True, class_weighting="none"),  # fmt: skip
    }
    sweep = {}
    for r, alpha in LORA_SWEEP:
        name = f"sweep_late_r{r}_a{alpha}"
        sweep[name] = run_mllm(name, "late", r, alpha, cfg.sweep_epochs, splits, cfg, args, root, timed=False)

    # The cascade's stage 2 is the main run with the best validation macro-F1 (chosen on val, not test).
    return runs, sweep, max(runs.values(), key=lambda run: run["best_val_macro_f1"])


def earlier_mllm(folder: Path, labels: list[str], kinds: list[str]) -> tuple[dict, dict, dict]:
    """An earlier run's MLLMs: their reports, and the chosen one's test probabilities and seconds per
    video. Refused unless that run's test split has the same labels and kinds in the same order."""
    import numpy as np

    earlier = json.loads((folder / "results.json").read_text())
    probs = np.load(folder / "test_probs.npz")
    if probs["labels"].tolist() != labels or probs["kinds"].tolist() != kinds:
        raise SystemExit(f"{folder} was run on another test split; train the MLLMs instead (drop --mllm-from)")
    name = earlier["cascade_mllm"]
    chosen = {**earlier["mllm_runs"][name], "name": name, "probs": probs["mllm"],
              "seconds": [earlier["compute"]["mllm_s"]],
              "from": {"folder": str(folder), "git_commit": earlier["git_commit"]}}
    return {name: chosen}, {}, chosen


def write_chart(report: dict, path: Path) -> str:
    """F1 vs budget per router, with the MLLM and the baseline alone as horizontal lines, as a
    PNG; returns the results.md line that shows it."""
    import matplotlib
    import numpy as np

    matplotlib.use("Agg")  # no display on the benchmark machines
    import matplotlib.pyplot as plt

    styles = {"entropy": ("tab:blue", "o"), "random": ("tab:orange", "s"), "oracle": ("tab:green", "^")}
    fig, ax = plt.subplots(figsize=(6, 4))
    for router, points in report["cascade"].items():
        colour, marker = styles.get(router, (None, "o"))
        budgets = [100 * p["budget"] for p in points]
        f1 = np.array([p["f1"] for p in points])
        label = f"{router} (mean of {points[0]['repeats']} seeds)" if router == "random" else router
        ax.plot(budgets, f1, marker=marker, color=colour, label=label)
        if router == "random":  # the spread of the seeds, so a gap to it can be judged
            spread = np.array([p["f1_std"] for p in points])
            ax.fill_between(budgets, f1 - spread, f1 + spread, color=colour, alpha=0.15, linewidth=0)
    ax.axhline(report["mllm"]["binary"]["f1"], color="grey", linestyle="--", label="MLLM on every video")
    ax.axhline(report["baseline"]["binary"]["f1"], color="black", linestyle=":", label="baseline only")
    ax.set_xlabel("budget: % of videos sent to the MLLM")
    ax.set_ylabel("binary F1 (test)")
    ax.set_title("Cascade F1 vs budget, by router")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return f"![F1 vs budget per router]({path.name})"


def _f(x, digits: int = 3) -> str:
    return "-" if x is None else f"{x:.{digits}f}"


def _quartiles(q: dict) -> str:
    return f"{q['median']:.2f} [{q['q25']:.2f}, {q['q75']:.2f}]"


def render_markdown(results: dict, chart_line: str) -> str:
    ev = results["evaluation"]
    lines = [
        f"# Cascade benchmark: {results['config']['name']}",
        "",
        f"Command: `{results['command']}`  ",
        f"Machine: {results['machine']}; torch threads {results['torch_threads']}; commit {results['git_commit']}  ",
        f"Wall time: {results['wall_s'] / 60:.1f} min (rendering and features included unless the --work "
        "folder already held them; the seconds below are one run's on a shared VM, so they are noisy)  ",
        f"Features: `{results['feature_extractor']}` (Whisper beam {results['asr_beam_size']})  ",
        f"Test: {ev['n']} videos, hard fraction {ev['hard_fraction']:.3f}; "
        f"cascade stage 2 = `{results['cascade_mllm']}` (best validation macro-F1 of the three r=32 runs)"
        + (f"; its test probabilities and timing reused from {results['mllm_from']['folder']} (commit "
           f"{results['mllm_from']['git_commit']}, same split), not trained in this run" if results.get("mllm_from") else ""),
        "",
        "## Models on test",
        "",
        "| model | F1 | precision | recall | R@P60 | R@P70 | R@P80 | R@P90 | accuracy | hard-kind F1 | val macro-F1 |",
        "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |",
    ]

    def row(name, rep, val=None):
        b = rep["binary"]
        return (f"| {name} | {_f(b['f1'])} | {_f(b['precision'])} | {_f(b['recall'])} | {_f(b['R@P60'])} | "
                f"{_f(b['R@P70'])} | {_f(b['R@P80'])} | {_f(b['R@P90'])} | {_f(rep['accuracy'])} | "
                f"{_f(rep['hard']['f1'])} | {_f(val)} |")  # fmt: skip

    lines.append(row("baseline (stage 1)", ev["baseline"]))
    for name, run in results["mllm_runs"].items():
        label = f"MLLM {name} ({run['epochs']} ep)"
        lines.append(row(label, run["test"], run["best_val_macro_f1"]))
    kinds = list(ev["baseline"]["per_kind"])
    lines += ["", "Accuracy per kind (test; n in brackets):", "",
              "| model | " + " | ".join(f"{k} ({ev['baseline']['per_kind'][k]['n']})" for k in kinds) + " |",
              "| --- |" + " --- |" * len(kinds)]  # fmt: skip
    lines.append("| baseline | " + " | ".join(_f(ev["baseline"]["per_kind"][k]["accuracy"], 2) for k in kinds) + " |")
    for name, run in results["mllm_runs"].items():
        per = run["test"]["per_kind"]
        lines.append(f"| {name} | " + " | ".join(_f(per[k]["accuracy"], 2) for k in kinds) + " |")

    b = results["baseline"]
    cal = b["calibration"]
    lines += ["", f"Baseline: `{b['estimator']}`, C {b['C']}"
              + (f", category C {b['category_C']}" if b["estimator"] == "two_head" else "")
              + f"; temperature {cal['temperature']:.2f}"
              + (f", category temperature {cal['category_temperature']:.2f}" if b["estimator"] == "two_head" else "")
              + f" (validation NLL {cal['nll_before']:.3f} -> {cal['nll_after']:.3f}, chosen on val).", "",
              "Baseline entropy per kind (test; nats, median [q25, q75]): what the entropy router sees.", "",
              "| " + " | ".join(kinds) + " |", "|" + " --- |" * len(kinds),
              "| " + " | ".join(_quartiles(ev["baseline"]["entropy_per_kind"][k]) for k in kinds) + " |"]  # fmt: skip

    lines += ["", "## Cascade on test (binary F1; random = mean of 20 seeds)", "",
              "| budget | entropy F1 | random F1 (std) | oracle F1 | entropy hard F1 | entropy routed | hard videos routed (entropy) |",
              "| --- | --- | --- | --- | --- | --- | --- |"]  # fmt: skip
    for e, r, o in zip(ev["cascade"]["entropy"], ev["cascade"]["random"], ev["cascade"]["oracle"]):
        lines.append(f"| {e['budget']:.0%} | {_f(e['f1'])} | {_f(r['f1'])} ({_f(r['f1_std'])}) | {_f(o['f1'])} | "
                     f"{_f(e['hard_f1'])} | {_f(e['routed_fraction'])} | {_f(e['hard_routed_fraction'])} |")  # fmt: skip
    m = ev["budget_to_match_mllm"]
    lines += ["", f"Baseline alone F1 {_f(m['baseline_f1'])}, MLLM on everything F1 {_f(m['mllm_f1'])}. "
              f"Smallest budget (1% grid) where the entropy cascade is within {m['tolerance']} F1 of the MLLM: "
              f"**{_f(m['budget'], 2)}** (routed {_f(m['routed_fraction'], 3)}, F1 {_f(m['f1'])}).", "", chart_line]  # fmt: skip

    lines += ["", "Other stage-1 baselines in front of the same MLLM, routed by their entropy: the shipped one "
              "with a Platt bias fitted on val (`shift_prior`, off by default: see inference/baseline.py), and "
              "the ceiling, the baseline retrained with one oracle column, \"this video promotes a violation in "
              "these modalities\" (the generator's evidence tags; no deployed model has them):", "",
              "| stage 1 | baseline F1 | " + " | ".join(f"{b:.0%}" for b in BUDGETS)
              + " | budget within 0.01 of MLLM |", "| --- | --- |" + " --- |" * len(BUDGETS) + " --- |"]  # fmt: skip
    names = {"prior_shift": "shipped + Platt bias", "speech": "knows: promotion in speech",
             "speech_and_onscreen": "knows: promotion in speech or on screen"}
    for name, v in results["stage1_variants"].items():
        lines.append(f"| {names[name]} | {_f(v['baseline_f1'])} | "
                     + " | ".join(_f(p["f1"]) for p in v["entropy"]) + f" | {_f(v['budget_to_match_mllm'], 2)} |")

    c = results["compute"]
    lines += ["", "## Compute per video (test split, wall seconds, 1 process)", "",
              "Extraction runs on every video (stage 1 reads its transcript and on-screen text), so it is "
              "charged to every video, routed or not. bench/results/worker_cost/ measures the same steps in a "
              "Celery worker with the production settings (ASR at beam 5, stage 2 with its rationale).", "",
              "| stage | seconds |", "| --- | --- |",
              f"| decode (isolated child) | {c['decode_s']:.3f} |",
              f"| ASR ({results.get('asr_checkpoint', 'whisper-tiny.en')}, beam {results['asr_beam_size']}) "
              f"| {c['asr_s']:.3f} |",
              f"| OCR (RapidOCR) | {c['ocr_s']:.3f} |",
              f"| **extraction (every video)** | **{c.get('extraction_s', 0.0):.3f}** |",
              f"| cheap features + baseline | {c['cheap_features_and_baseline_s']:.3f} |",
              f"| **stage 1 (extraction + baseline)** | **{c['stage1_s']:.3f}** |",
              f"| **stage 2: MLLM (Whisper encoder + forward, batch 1)** | **{c['stage2_s']:.3f}** |",
              f"| MLLM on everything (extraction + stage 2) | {c['mllm_on_everything_s']:.3f} |", "",
              "| budget | routed | cascade s/video | vs MLLM on everything |", "| --- | --- | --- | --- |"]  # fmt: skip
    for p in c["entropy_cascade"]:
        lines.append(f"| {p['budget']:.0%} | {p['routed_fraction']:.3f} | {p['seconds_per_video']:.3f} | "
                     f"{p['relative_to_mllm_on_everything']:.1%} |")  # fmt: skip

    t = ev["targets"]
    lines += ["", "## Targets", "",
              f"- MLLM hard-kind F1 >= baseline + 0.10: {_f(t['hard_kind_gain']['mllm_f1'])} vs "
              f"{_f(t['hard_kind_gain']['baseline_f1'])} (gain {_f(t['hard_kind_gain']['gain'])}): "
              f"**{'met' if t['hard_kind_gain']['met'] else 'NOT met'}**",
              f"- entropy cascade within 0.01 F1 of the MLLM at a budget <= 1.5 x hard fraction "
              f"({_f(t['cascade_budget']['limit'], 3)}): budget {_f(t['cascade_budget']['budget'], 2)}: "
              f"**{'met' if t['cascade_budget']['met'] else 'NOT met'}**"
              + (" (trivially: the MLLM is no better than the baseline here)" if t["cascade_budget"]["trivial"] else ""),
              f"- entropy beats random at every budget: "
              f"**{'met' if t['entropy_beats_random']['met'] else 'NOT met'}**", ""]  # fmt: skip
    cfg = results["config"]
    lines += ["## Notes", "",
              f"- Late and early fusion: {cfg['epochs']} epochs each; LoRA sweep points (late fusion): "
              f"{cfg['sweep_epochs']} epoch(s) each, so the sweep compares ranks at a shorter schedule.",
              "- `late_r32_unweighted`: late fusion trained with plain cross-entropy; every other MLLM "
              "uses balanced class weights (train_mllm's default).",
              "- Each MLLM keeps its best epoch by validation macro-F1 (train_mllm).",
              f"- Training also saw {results.get('text_only_items', 0)} text-only examples "
              "(inference/benchmark/text_only.py): drawn by the generator under another seed, never a rendered "
              "item's text; the baseline gets a same-label training video's frames and audio for each.",
              f"- Mix per split: `{json.dumps(results['mix'])}`", ""]  # fmt: skip
    return "\n".join(lines)


if __name__ == "__main__":
    raise SystemExit(main())
