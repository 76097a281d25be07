"""Does stage 2's written reason name the field that carries the violation?

    .venv/bin/python bench/explanation_fields.py [--items 40] [--seed 4242] [--threads 2]
        [--llm-path DIR] [--out bench/results/explanation_fields]

The prompted LLM (the stage 2 a first run puts in service: LLMConfig's defaults on the packaged
Qwen2.5 folder) reads text-only violations drawn by the benchmark generator from its held-out
templates, slot values and voices (`held_out_text_only`), each with the violation in one field
(caption, speech or on-screen text) and small talk or nothing in the others. For each video it
labels as a violation, it writes its reason twice from the same scoring pass: free (how reasons
were written before) and opened with the field whose removal lowers p(violation) most (how
`LLMClassifier.explain` writes them now). The prompted model calls many held-out violations ok, so
it also writes both reasons for the item's true label on every item (as a fine-tuned model that
got the label right would). Each sentence is read for the field it names ("caption"; "speaker",
"says", "voice"; "on-screen", "screen") and compared with the item's field.
Writes results.json and results.md to --out.
"""

from __future__ import annotations

import argparse
import json
import platform
import re
import sys
import time
from collections import Counter
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from inference.benchmark.text_only import held_out_text_only  # noqa: E402
from inference.llm import TEXT_MODALITIES, LLMClassifier, LLMConfig  # noqa: E402

NAMES = {  # how a sentence names each field
    "caption": re.compile(r"\bcaption|\btitle\b"),
    "speech": re.compile(r"\bspeaker|\bsays\b|\bsaid\b|\bvoice|\bspoken|\bspeech|\btalks?\b"),
    "onscreen": re.compile(r"on-screen|on screen|\bscreen\b|\boverlay"),
}


def named_field(sentence: str) -> str:
    """The field a sentence names first ("none" when it names none)."""
    found = [(match.start(), field) for field, pattern in NAMES.items() if (match := pattern.search(sentence.lower()))]
    return min(found)[1] if found else "none"


def carrying_field(row: dict) -> str | None:
    """The one field that promotes the violation, or None when it is not exactly one."""
    fields = {modality for modality, role, _ in row["evidence"] if role == "promotion"}
    return fields.pop() if len(fields) == 1 else None


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--items", type=int, default=40, help="violations with one carrying field to read")
    parser.add_argument("--seed", type=int, default=4242)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--llm-path", type=Path, default=ROOT / "var" / "models" / "qwen2.5-coder-1.5b-instruct")
    parser.add_argument("--audio-checkpoint", type=Path, default=ROOT / "var" / "models" / "whisper-tiny.en.pt")
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "results" / "explanation_fields")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    pool = held_out_text_only(args.seed, args.items * 6)
    items = [(row, features) for row, features in pool
             if row["label"] != "ok" and carrying_field(row) in TEXT_MODALITIES][:args.items]
    model = LLMClassifier(LLMConfig(audio_checkpoint=str(args.audio_checkpoint), backbone_path=str(args.llm_path))).eval()
    rows, began = [], time.perf_counter()
    for n, (row, features) in enumerate(items, 1):
        prepared = model.prepare([features])[0]
        out = model.predict_prepared([prepared], explain=True)[0]
        record = {"label": row["label"], "kind": row["kind"], "field": carrying_field(row), "predicted": out.label,
                  "contributions": {m: round(out.modality_contributions[m], 3) for m in TEXT_MODALITIES}}
        if out.label != "ok":
            free = model.generate_reason(prepared, out.label)
            opened = out.rationale.explanation.split(" Evidence: ")[0]
            record.update(free=free, opened=opened, free_names=named_field(free), opened_names=named_field(opened))
        true_free = model.generate_reason(prepared, row["label"])
        true_opened = model.generate_reason(prepared, row["label"],
                                            opening=model.opening(row["label"], out.modality_contributions))
        record.update(true_free=true_free, true_opened=true_opened, true_free_names=named_field(true_free),
                      true_opened_names=named_field(true_opened))
        rows.append(record)
        print(f"{n}/{len(items)} {record['field']:8s} {out.label:8s} "
              f"free={record.get('free_names', '-'):8s} opened={record.get('opened_names', '-')}", flush=True)
    write_results(args, rows, time.perf_counter() - began)


def write_results(args, rows: list[dict], seconds: float) -> None:
    flagged = [r for r in rows if r["predicted"] != "ok"]
    ways = {"free": flagged, "opened": flagged, "true_free": rows, "true_opened": rows}
    summary = {}
    for way, among in ways.items():
        named = Counter("right" if r[f"{way}_names"] == r["field"] else "none" if r[f"{way}_names"] == "none"
                        else "wrong" for r in among)
        summary[way] = {"n": len(among), "right": named["right"], "wrong": named["wrong"], "none": named["none"]}
    per_field = {field: {way: sum(r[f"{way}_names"] == field for r in among if r["field"] == field)
                         for way, among in ways.items()}
                 | {"n_flagged": sum(r["field"] == field for r in flagged), "n": sum(r["field"] == field for r in rows)}
                 for field in TEXT_MODALITIES}
    command = " ".join([".venv/bin/python", "bench/explanation_fields.py", *sys.argv[1:]])
    report = {"command": command, "machine": {"cpu": platform.processor() or platform.machine(),
                                              "torch_threads": args.threads},
              "items": len(rows), "flagged": len(flagged), "seconds": round(seconds, 1), "summary": summary,
              "per_field": per_field, "rows": rows}
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "results.json").write_text(json.dumps(report, indent=2) + "\n")
    lines = [
        "# Does the written reason name the field that carries the violation?", "",
        f"Command: `{command}`", "",
        f"{len(rows)} held-out text-only violations (one carrying field each), the prompted LLM; "
        f"{len(flagged)} labelled a violation ({seconds:.0f} s in all).", "",
        "| reason | for | n | names the carrying field | names another field | names none |",
        "| --- | --- | ---: | ---: | ---: | ---: |",
        *[f"| {way.removeprefix('true_')} | {'the true label' if way.startswith('true') else 'its own label'} | "
          f"{summary[way]['n']} | {summary[way]['right']} | {summary[way]['wrong']} | {summary[way]['none']} |"
          for way in ways], "",
        "| carrying field | n | true label, free: named | true label, opened: named |", "| --- | ---: | ---: | ---: |",
        *[f"| {field} | {c['n']} | {c['true_free']} | {c['true_opened']} |" for field, c in per_field.items()], "",
        "Examples (the first six items, reasons for the true label):", "",
        *[f"- {r['field']} ({r['label']}, called {r['predicted']}): free \"{r['true_free']}\"; "
          f"opened \"{r['true_opened']}\"" for r in rows[:6]],
    ]
    (args.out / "results.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines[6:12]))


if __name__ == "__main__":
    main()
