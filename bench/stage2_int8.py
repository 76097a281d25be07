"""Stage 2 served from int8 weights on a CPU against the float model it was loaded from: the same
saved model, loaded as the gpu worker loads it (`load_stage2`, with and without `cpu_int8`), scored
on the same items and timed through the same call.

    .venv/bin/python bench/stage2_int8.py --work DIR --model DIR [--llm-path DIR] [--dev-items 160]
        [--videos 8] [--threads 1 2] [--out bench/results/stage2_int8]

DIR (--work) is a finished `bench/generalize.py --work DIR` folder (its 40 hand-written videos and
its Whisper checkpoints); --model a saved stage-2 folder (the first run's prompted LLM or a
fine-tune); --llm-path the LLM folder (default: this checkout's var/models). Each weight form
runs in its own process, so its memory is its own:

- accuracy: `stage2_probabilities` (what the gate and `bench/mllm_recipes.py` score with) on
  --dev-items text-only items in the generator's held-out phrasings and on the 40 hand-written
  videos; how many labels the two forms share;
- seconds: `predict(explain=True)`, the gpu worker's call for a routed video, on the first
  --videos of the 40 after a warm-up video, split into its parts (bench/stage2_seconds.py), at
  each --threads; whether the explanations are the same words;
- the seconds to load and the process's peak resident memory.

Writes results.json and results.md.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import resource
import sys
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from mllm_recipes import dev_set, gate_values, hand_written_set, score  # noqa: E402
from run_cascade import git_commit  # noqa: E402
from stage2_seconds import measure, run_record, save_record  # noqa: E402

from inference.llm import load_stage2  # noqa: E402

FORMS = ("float", "int8")


def run_form(form: str, args: argparse.Namespace) -> dict:
    """One weight form, start to end, in this (fresh) process."""
    torch.set_num_threads(args.threads[0])
    models = args.work / "var" / "models"
    start = time.perf_counter()
    model = load_stage2(args.model, audio_checkpoint=str(models / "whisper-tiny.en.pt"),
                        llm_path=str(args.llm_path), cpu_int8=form == "int8")
    load_s = time.perf_counter() - start
    hand_written = hand_written_set(args.work, models / "whisper-base.pt")
    sets = {"dev": dev_set(args.dev_items), "hand_written_40": hand_written}
    scores = {name: score(model, scored) for name, scored in sets.items()}
    timings = [measure(model, hand_written[0][: args.videos + 1], threads) for threads in args.threads]
    return {"form": form, "load_s": round(load_s, 1), **gate_values(model),
            "peak_rss_gb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20, 2),
            **scores, "timings": timings}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--work", type=Path, required=True)
    parser.add_argument("--model", type=Path, required=True, help="A saved stage-2 (LLM) folder.")
    parser.add_argument("--llm-path", type=Path, default=ROOT / "var" / "models" / "qwen2.5-coder-1.5b-instruct")
    parser.add_argument("--dev-items", type=int, default=160)
    parser.add_argument("--videos", type=int, default=8, help="Of the 40, the first N timed (one more warms up).")
    parser.add_argument("--threads", type=int, nargs="+", default=[1])
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "results" / "stage2_int8")
    args = parser.parse_args()
    commit = git_commit()
    context = multiprocessing.get_context("spawn")
    runs = {}
    for form in FORMS:
        with context.Pool(1) as pool:
            runs[form] = pool.apply(run_form, (form, args))
        print(json.dumps({k: v for k, v in runs[form].items() if k not in ("dev", "hand_written_40", "timings")}),
              flush=True)
    float_run, int8_run = runs["float"], runs["int8"]
    agreement = {name: sum(a == b for a, b in zip(float_run[name]["predicted"], int8_run[name]["predicted"]))
                 for name in ("dev", "hand_written_40")}
    same_words = [sum(a == b for a, b in zip(f["explanations"], q["explanations"]))
                  for f, q in zip(float_run["timings"], int8_run["timings"])]

    record = {**run_record("bench/stage2_int8.py", commit), "model": args.model.name, "labels_shared": agreement,
              "explanations_word_for_word": same_words, "runs": runs}
    command = record["command"]
    lines = ["# Stage 2 from int8 weights on a CPU", "", f"`{command}`", "",
             f"{save_record(args.out, record)}; model {record['model']}; \"float\" is the backbone in the dtype "
             "`backbone_dtype('auto')` picks on this CPU.", "",
             "| weights | load s | peak RSS GB | dev acc | dev F1 | dev AUC | 40 acc | 40 F1 | 40 AUC | 40 speech_only "
             "| 40 onscreen_only |", "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |"]
    for form, run in runs.items():
        dev, hw = run["dev"], run["hand_written_40"]
        lines.append(f"| {form} | {run['load_s']} | {run['peak_rss_gb']} | {dev['accuracy']:.3f} | {dev['f1']:.3f} | "
                     f"{dev['roc_auc']:.3f} | {hw['accuracy']:.3f} | {hw['f1']:.3f} | {hw['roc_auc']:.3f} | "
                     f"{hw['per_kind'].get('speech_only', '-')} | {hw['per_kind'].get('onscreen_only', '-')} |")
    lines += ["", f"Labels the two forms share: {agreement['dev']} of {args.dev_items} dev items, "
              f"{agreement['hand_written_40']} of 40 videos.", "",
              "`predict(explain=True)` per video (contributions and the written explanation included):", "",
              "| weights | torch threads | videos | mean s | max s | scoring passes s | explanation s | decode passes |",
              "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |"]
    for form, run in runs.items():
        lines += [f"| {form} | {t['threads']} | {t['videos']} | {t['mean_s']} | {t['max_s']} | "
                  f"{t['logits_and_cache_s']} | {t['generate_reason_s']} | {t['decode_passes']} |" for t in run["timings"]]
    lines += ["", "Explanations the same word for word: "
              + ", ".join(f"{n} of {t['videos']} at {t['threads']} thread(s)"
                          for n, t in zip(same_words, float_run["timings"])) + "."]
    (args.out / "results.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
