"""Compare stage-2 backbones and training recipes on phrasings they never trained on.

    .venv/bin/python bench/mllm_recipes.py --work DIR [--stage2 llm|minilm] [--seeds 0 1]
        [--text-items 3000] [--epochs 1] [--lr 5e-4] [--batch-size 16] [--lora-r 32 --lora-alpha 64]
        [--fusion late|early] [--out bench/results/mllm_recipes]

`--stage2 llm` is the pretrained decoder LLM (COEFVQ_LLM_PATH, default var/models/...): with
`--epochs 0` it is scored as its prompt makes it (no training, so one "seed"), otherwise its LoRA
is fine-tuned as `manage.py retrain --benchmark` does. `--stage2 minilm` is the older MiniLM
classifier, trained as `manage.py train mllm --stage2 minilm` does.

DIR is a finished `bench/generalize.py --work DIR` folder: it holds the first run's rendered
120-video benchmark with its feature cache (`var/bench/train-120-seed0`), the Whisper checkpoints
(base transcribes, as in the product; tiny.en is stage 2's audio tower) and the 40 hand-written videos. Each seed trains the MLLM the way `manage.py train mllm` does
(the rendered train split plus `--text-items` text-only examples, validation on the rendered
val split) and scores it on four sets:

- **dev**: `--dev-items` text-only items drawn by the generator (seed 4242) from its held-out
  templates, slot values and voices only, with the training mix of kinds, roughened like the
  text-only training examples. Never trained on, and the largest held-out set here, so a
  comparison of recipes should lean on it;
- **40 videos**: `written40` of `bench/video_cases.py`, hand-written, extracted as ingest extracts
  them (beam-5 Whisper; cached in DIR/recipes/). Earlier choices were checked on them;
- **held-out 40**: `heldout40`, written later from the policy alone; no choice was made on them
  (rendered into DIR when missing);
- **own test**: the first run's own test split (24 videos).

Writes `<out>/<name>.json` and appends a row per seed to `<out>/results.md`. Binary F1 decides
"violating" by the argmax; ROC AUC ranks by p(violation) = 1 - p(ok).
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
from sklearn.metrics import f1_score, roc_auc_score

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from generalize import render_all  # noqa: E402
from video_cases import HELDOUT_40, WRITTEN_40, VideoSet  # noqa: E402
from run_cascade import git_commit, load_split, machine_description  # noqa: E402

from inference.benchmark import BenchmarkItem, GeneratorConfig, load_manifest  # noqa: E402
from inference.benchmark.text_only import held_out_text_only, text_only_split  # noqa: E402
from inference.features import FeatureExtractor, FeatureExtractorConfig  # noqa: E402
from inference.llm import LLM_LORA_LR, LLMClassifier, LLMConfig, stage2_probabilities  # noqa: E402
from inference.mllm import MLLMConfig  # noqa: E402
from inference.train_mllm import MLLM_LR, TrainConfig, train_mllm  # noqa: E402
from inference.types import VideoFeatures  # noqa: E402

FIRST_RUN_BENCHMARK = Path("var/bench/train-120-seed0")  # manage.py train all --videos 120, seed 0
DEV_SEED = 4242
Scored = tuple[list[VideoFeatures], list[str], list[str]]  # features, policy labels, kinds


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--work", type=Path, required=True, help="A finished bench/generalize.py work folder.")
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "results" / "mllm_recipes")
    parser.add_argument("--name", default=None, help="Results file name (default: from the recipe).")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1])
    parser.add_argument("--text-items", type=int, default=3000)
    parser.add_argument("--epochs", type=int, default=1)
    parser.add_argument("--stage2", choices=["llm", "minilm"], default="llm")
    parser.add_argument("--llm-path", type=Path, default=ROOT / "var" / "models" / "qwen2.5-coder-1.5b-instruct")
    parser.add_argument("--lr", type=float, default=None,
                        help=f"default {LLM_LORA_LR:g} for the LLM, {MLLM_LR:g} for MiniLM (as manage.py train)")
    parser.add_argument("--scratch-lr", type=float, default=0.0,
                        help="the ViT, projectors, gates and heads (TrainConfig.scratch_lr; 0: --lr)")
    parser.add_argument("--batch-size", type=int, default=None, help="default 4 for the LLM, 16 for MiniLM")
    parser.add_argument("--lora-r", type=int, default=32)
    parser.add_argument("--lora-alpha", type=int, default=64)
    parser.add_argument("--lora-targets", nargs="+", default=None,
                        help="the LLM's modules LoRA adapts (default: LLMConfig's, the attention projections)")
    parser.add_argument("--fusion", choices=["late", "early"], default="late")
    parser.add_argument("--adapt-prefix", action="store_true",
                        help="LoRA on the prompt's shared prefix too (LLMConfig.adapt_prefix; slower to train)")
    parser.add_argument("--slot-layout", choices=["words", "times"], default="words",
                        help="how the prompt lists the frames (LLMConfig.slot_layout): a word or a time each")
    parser.add_argument("--dev-items", type=int, default=800)
    parser.add_argument("--threads", type=int, default=2, help="torch threads")
    parser.add_argument("--timed-videos", type=int, default=10,
                        help="hand-written videos timed through predict(explain=True), as the gpu worker runs it")
    args = parser.parse_args(argv)
    llm = args.stage2 == "llm"
    args.lr = args.lr if args.lr is not None else (LLM_LORA_LR if llm else MLLM_LR)
    args.batch_size = args.batch_size or (4 if llm else TrainConfig.batch_size)
    return args


def dev_set(n: int) -> Scored:
    """Held-out phrasings only, the training mix of kinds, text-only like the training examples."""
    pairs = held_out_text_only(DEV_SEED, n)
    return [features for _, features in pairs], [row["label"] for row, _ in pairs], [row["kind"] for row, _ in pairs]


def hand_written_set(work: Path, asr_checkpoint: Path, videos: VideoSet) -> Scored:
    """A set of bench/video_cases.py, rendered and extracted once as ingest extracts them."""
    config = FeatureExtractorConfig(whisper_checkpoint=str(asr_checkpoint))
    cache = work / "recipes" / f"{videos.name}-features-{config.version}.pt"
    if not cache.is_file():
        folder = work / videos.folder
        render_all(videos, folder)
        extractor = FeatureExtractor(config)
        features = [extractor.extract(folder / f"{case.id}.{case.container}", case.caption) for case in videos.cases]
        cache.parent.mkdir(parents=True, exist_ok=True)
        torch.save(features, cache)
    return (torch.load(cache, weights_only=False), [c.label for c in videos.cases],
            [c.kind for c in videos.cases])


def score(model, scored: Scored) -> dict:
    features, labels, kinds = scored
    start = time.perf_counter()
    probs = stage2_probabilities(model, features, progress=True)  # (N, n_labels)
    seconds_per_video = (time.perf_counter() - start) / max(1, len(features))
    predicted = [model.labels[i] for i in probs.argmax(-1)]
    truth = np.array([label != "ok" for label in labels])
    p_violation = 1.0 - probs[:, model.labels.index("ok")]  # (N,)
    per_kind = {kind: f"{sum(p == t for p, t, k in zip(predicted, labels, kinds) if k == kind)}/{kinds.count(kind)}"
                for kind in sorted(set(kinds))}  # fmt: skip
    return {
        "f1": float(f1_score(truth, [p != "ok" for p in predicted])),
        "roc_auc": float(roc_auc_score(truth, p_violation)) if 0 < truth.sum() < len(truth) else None,
        "accuracy": float(np.mean([p == t for p, t in zip(predicted, labels)])),
        "per_kind": per_kind,
        "seconds_per_video": round(seconds_per_video, 3),  # probabilities only, no explanation
        "predicted": predicted,
        "p_violation": [round(float(p), 4) for p in p_violation],
    }


def gate_values(model) -> dict:
    """The LLM's gate openings (LLMClassifier.gate_openings); the MiniLM classifier has none."""
    if not isinstance(model, LLMClassifier):
        return {}
    return {"gates": {name: round(opening, 4) for name, opening in model.gate_openings().items()}}


def product_seconds(model, features: list[VideoFeatures]) -> dict:
    """Seconds per video of what the gpu worker runs for a routed video (scoring.score_mllm):
    `predict(explain=True)`, i.e. probabilities, modality contributions and the explanation."""
    model.predict(features[:1], explain=True)  # warm: the prompt prefix is cached once per process
    times = []
    for feature in features:
        start = time.perf_counter()
        model.predict([feature], explain=True)
        times.append(time.perf_counter() - start)
    return {"videos": len(times), "mean_s": round(float(np.mean(times)), 2), "max_s": round(float(np.max(times)), 2)}


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    torch.set_num_threads(args.threads)
    commit = git_commit()
    checkpoint = args.work / "var" / "models" / "whisper-tiny.en.pt"  # stage 2's audio tower
    asr_checkpoint = args.work / "var" / "models" / "whisper-base.pt"  # the transcriber (COEFVQ_ASR_CHECKPOINT)
    benchmark = args.work / FIRST_RUN_BENCHMARK
    manifest = benchmark / "manifest.jsonl"
    version = FeatureExtractorConfig(whisper_checkpoint=str(asr_checkpoint), beam_size=1).version  # as manage.py train
    splits = {split: load_split(manifest, benchmark / "features", version, split) for split in ("train", "val", "test")}
    rendered = {BenchmarkItem.from_dict(row).triple() for row in load_manifest(manifest)}
    text_only = text_only_split(GeneratorConfig(seed=0), args.text_items, rendered)
    sets = {
        "dev": dev_set(args.dev_items),
        "hand_written_40": hand_written_set(args.work, asr_checkpoint, WRITTEN_40),
        "heldout_40": hand_written_set(args.work, asr_checkpoint, HELDOUT_40),
        "own_test": ([f for _, f in splits["test"]], [r["label"] for r, _ in splits["test"]],
                     [r["kind"] for r, _ in splits["test"]]),
    }  # fmt: skip

    def items(pairs):
        return [(features, row["label"]) for row, features in pairs]

    if args.stage2 == "llm":
        targets = {"lora_target_modules": tuple(args.lora_targets)} if args.lora_targets else {}
        model_config = LLMConfig(audio_checkpoint=str(checkpoint), backbone_path=str(args.llm_path),
                                 fusion=args.fusion, lora_r=args.lora_r, lora_alpha=args.lora_alpha,
                                 adapt_prefix=args.adapt_prefix, slot_layout=args.slot_layout, **targets)
    else:
        model_config = MLLMConfig(audio_checkpoint=str(checkpoint), fusion=args.fusion, lora_r=args.lora_r,
                                  lora_alpha=args.lora_alpha)
    name = args.name or (f"{args.stage2}-{args.fusion}-r{args.lora_r}a{args.lora_alpha}-text{args.text_items}"
                         f"-ep{args.epochs}-lr{args.lr:g}-b{args.batch_size}"
                         + (f"-scratch{args.scratch_lr:g}" if args.scratch_lr else "")
                         + ("-adapt-prefix" if args.stage2 == "llm" and args.adapt_prefix else "")
                         + ("-slots-times" if args.stage2 == "llm" and args.slot_layout == "times" else "")
                         + (f"-lora-{'+'.join(args.lora_targets)}" if args.stage2 == "llm" and args.lora_targets else ""))
    runs = []
    for seed in (args.seeds if args.epochs else [0]):  # an untrained LLM has no seed to vary
        start = time.perf_counter()
        if args.epochs:
            result = train_mllm(items(splits["train"]) + items(text_only), items(splits["val"]), model_config,
                                TrainConfig(epochs=args.epochs, lr=args.lr, scratch_lr=args.scratch_lr,
                                            batch_size=args.batch_size, seed=seed),
                                out_dir=args.work / "recipes" / name / f"seed{seed}")  # fmt: skip
            model, steps = result.model, result.steps
        else:
            model, steps = LLMClassifier(model_config).eval(), 0
        train_s = time.perf_counter() - start
        runs.append({"seed": seed, "train_s": round(train_s, 1), "steps": steps, **gate_values(model),
                     **{set_name: score(model, scored) for set_name, scored in sets.items()},
                     "product_seconds": product_seconds(model, sets["hand_written_40"][0][:args.timed_videos])})
        print(markdown_row(name, runs[-1]), flush=True)

    args.out.mkdir(parents=True, exist_ok=True)
    record = {"name": name, "command": " ".join(["bench/mllm_recipes.py", *(argv or sys.argv[1:])]), "commit": commit,
              "machine": machine_description(), "date": f"{datetime.now(timezone.utc):%Y-%m-%d %H:%M} UTC",
              "recipe": {"stage2": args.stage2, "fusion": args.fusion, "lora_r": args.lora_r,
                         "lora_alpha": args.lora_alpha, "text_items": args.text_items, "epochs": args.epochs,
                         "lr": args.lr, "scratch_lr": args.scratch_lr, "batch_size": args.batch_size,
                         "dev_items": args.dev_items, "threads": args.threads, "adapt_prefix": args.adapt_prefix,
                         "slot_layout": args.slot_layout if args.stage2 == "llm" else None,
                         "lora_targets": list(model_config.lora_target_modules) if args.stage2 == "llm" else None},
              "runs": runs}  # fmt: skip
    (args.out / f"{name}.json").write_text(json.dumps(record, indent=1) + "\n")
    table = args.out / "results.md"
    if not table.exists():
        table.write_text(MARKDOWN_HEAD)
    with table.open("a") as f:
        f.write(f"<!-- {record['date']}, commit {commit}: {record['command']} -->\n")
        f.writelines(markdown_row(name, run) + "\n" for run in runs)
    return 0


MARKDOWN_HEAD = """# Stage-2 backbones and recipes on held-out phrasings (`bench/mllm_recipes.py`)

Binary F1 (argmax), ROC AUC of p(violation), accuracy; per kind: correct labels / videos.
Train seconds include the one-off pass (frozen Whisper, tokens, policy prior). Rows before the LLM
rows are the MiniLM classifier (recipe names without a backbone prefix).

| recipe | seed | train s | dev F1 | dev AUC | dev acc | dev speech_only | dev onscreen_only | 40 videos F1 | 40 AUC | 40 speech_only | 40 onscreen_only | own test F1 | accuracy: 40 / held-out 40 |
| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | --- |
"""


def markdown_row(name: str, run: dict) -> str:
    dev, hand, own = run["dev"], run["hand_written_40"], run["own_test"]
    number = lambda x: "-" if x is None else f"{x:.3f}"  # noqa: E731 - AUC is None with one class only
    cells = [name, run["seed"], f"{run['train_s']:.0f}", number(dev["f1"]), number(dev["roc_auc"]),
             number(dev["accuracy"]), dev["per_kind"].get("speech_only", "-"), dev["per_kind"].get("onscreen_only", "-"),
             number(hand["f1"]), number(hand["roc_auc"]), hand["per_kind"]["speech_only"],
             hand["per_kind"]["onscreen_only"], number(own["f1"])]  # fmt: skip
    if "heldout_40" in run:  # a column added in session 33: older rows end before it
        cells.append(f"acc {number(hand['accuracy'])} / {number(run['heldout_40']['accuracy'])}")
    return "| " + " | ".join(str(c) for c in cells) + " |"


if __name__ == "__main__":
    raise SystemExit(main())
