"""Generalization check: the first-run default models on videos the generator never made.

    .venv/bin/python bench/generalize.py [--work DIR] [--videos written40|heldout40] [--fine-tune]
                                         [--out bench/results/generalization]

A set of short videos written by hand (bench/video_cases.py): phrasings, slang, word order and
typos that inference/benchmark/phrases.py never uses, spoken with espeak-ng voices and speeds
that inference/benchmark never draws, covering every kind of shared/POLICY.md with the label the
policy gives. The script then does what a new install does, in a private embedded instance
(COEFVQ_VAR_DIR=<work>/var, no DATABASE_URL, so SQLite and no broker):

1. `migrate`, `import_whisper`, and the first-run training line of scripts/run.sh
   (`train all --videos 120 --epochs 0 --activate --if-none-active`), timed, with torch on the
   threads run.sh gives it (up to 2; every other command on one, as run.sh's workers on 2 cores);
2. `ingest --manifest ... --inline --json` over all videos, once with `--route auto` (the entropy
   router, starting with no history as a new install does) and once with `--route mllm`.

Ingest keeps one video per (policy, sha256): a second pass over the same bytes would only return
the first pass's videos. So each pass runs on its own copy of the trained database (taken with
SQLite's backup API, the database being in WAL mode), with the trained models shared.

Scores each video's final_label against its policy label: accuracy per kind, binary F1
(violating = scam, drugs or weapons), for the cascade, the baseline alone (its probabilities
are in the auto pass) and the MLLM on every video, plus each one's ROC AUC of p(violation) and
the binary F1 of flagging every video (most of these videos violate, so that floor is high);
writes results.json and results.md.

The script imports no torch: every model runs in the manage.py subprocesses.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import platform
import re
import shlex
import shutil
import sqlite3
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from pathlib import Path

from sklearn.metrics import roc_auc_score
from tqdm import tqdm

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from inference.benchmark import phrases as P  # noqa: E402
from inference.policy import KINDS, LABELS, VIOLATING  # noqa: E402
from inference.synth import SynthSpec, render_video  # noqa: E402

from video_cases import VIDEO_SETS, WRITTEN_40, Case, VideoSet  # noqa: E402

# The first-run defaults of scripts/run.sh (COEFVQ_DEMO_VIDEOS unset).
FIRST_RUN_TRAIN = ["train", "all", "--videos", "120", "--epochs", "0", "--activate", "--if-none-active"]
ROUTES = ("auto", "mllm")


def voice_sound(voice: str) -> str:
    """A fingerprint of how espeak-ng speaks with `voice`: two names can be one voice (espeak-ng 1.51
    ignores a variant on en-gb, so "en-gb+m8" is en-gb) and an unknown variant is silently dropped."""
    wav = subprocess.run(["espeak-ng", "-v", voice, "-s", "160", "-p", "50", "--stdout", "one two three"],
                         capture_output=True, check=True).stdout
    return hashlib.sha256(wav).hexdigest()


def check_voices_unused() -> None:
    """No set speaks with a voice or speed the generator draws, nor with another set's. Names must
    differ; sounds too, except where written40 (the first set, kept as its results were measured)
    turned out to speak with the generator's en-gb: that is printed, not fatal."""
    used_voices = set(P.VOICES_TRAIN) | set(P.VOICES_HELDOUT)
    used_speeds = set(P.SPEEDS_TRAIN) | set(P.SPEEDS_HELDOUT)
    used_sounds = {voice_sound(v): v for v in sorted(used_voices)}
    for videos in VIDEO_SETS.values():
        clash = [v for v in videos.voices if v in used_voices] + [s for s in videos.speeds if s in used_speeds]
        if clash:
            raise SystemExit(f"these voices/speeds of {videos.name} are already used: {clash}")
        sounds = {v: voice_sound(v) for v in videos.voices}
        same = {v: used_sounds[sound] for v, sound in sounds.items() if sound in used_sounds}
        if same and videos is not WRITTEN_40:
            raise SystemExit(f"these voices of {videos.name} sound like voices already used: {same}")
        if same:
            print(f"{videos.name}: these voices sound like voices already used: {same}", file=sys.stderr)
        used_voices |= set(videos.voices)
        used_speeds |= set(videos.speeds)
        used_sounds |= {sound: v for v, sound in sounds.items()}


# ---------------------------------------------------------------------------- phrasing overlap

WORD = re.compile(r"[a-z0-9']+")


def _expansions(template: str, limit: int = 2000) -> list[str]:
    """Every way to pick the `[a|b]` alternatives of a template (at most `limit`)."""
    done, todo = [], [template]
    while todo and len(done) + len(todo) <= limit:
        text = todo.pop()
        group = re.search(r"\[([^\[\]]*)\]", text)
        if group is None:
            done.append(text)
            continue
        todo += [text[:group.start()] + choice + text[group.end():] for choice in group.group(1).split("|")]
    return done + todo


def _runs(template: str) -> list[list[str]]:
    """Word runs of each expansion of a template, broken at slots and punctuation."""
    return [WORD.findall(piece) for text in _expansions(template)
            for piece in re.split(r"\{\w+\}|[.,:!?;()\"]| - ", text.lower())]


def _all_templates() -> list[str]:
    pools = [*P.PROMO.values(), *P.PROMO_CTA.values(), *P.BENIGN_CTA.values(), *P.BENIGN.values(),
             *P.MENTION.values(), *P.FRAMING_GENERIC.values(), *P.FRAMING.values(), *P.DISCLAIMER.values(), P.OPENERS]
    return [template.text for pool in pools for template in pool]


def generator_ngrams(n: int = 4) -> set[tuple[str, ...]]:
    grams = set()
    for template in _all_templates():
        for run in _runs(template):
            grams.update(tuple(run[i:i + n]) for i in range(len(run) - n + 1))
    return grams


def shared_ngrams(case: Case, bank: set[tuple[str, ...]], n: int = 4) -> tuple[int, int]:
    """(word n-grams of the case found in the generator's phrase bank, all word n-grams)."""
    total = shared = 0
    for text in (case.caption, case.speech or "", *case.onscreen):
        words = WORD.findall(text.lower())
        grams = [tuple(words[i:i + n]) for i in range(len(words) - n + 1)]
        total += len(grams)
        shared += sum(g in bank for g in grams)
    return shared, total


# ---------------------------------------------------------------------------- rendering


def timeline(lines: tuple[str, ...], length_s: float) -> list[tuple[float, float, str]]:
    """The lines one after the other across the clip, each on screen at least 2.5 s for OCR."""
    step = max(2.5, length_s / max(1, len(lines)))
    return [(i * step, (i + 1) * step, text) for i, text in enumerate(lines)]


def spec_for(videos: VideoSet, case: Case, index: int) -> SynthSpec:
    voice, speed, pitch = videos.voice_of(index)
    words = len(case.speech.split()) if case.speech else 0
    length_s = words * 60.0 / speed + 0.8 if words else 5.0
    return SynthSpec(onscreen_text=timeline(case.onscreen, length_s), speech_text=case.speech, voice=voice,
                     speed_wpm=speed, pitch=pitch, motif=case.motif, container=case.container,
                     duration_s=None if words else max(length_s, 2.5 * len(case.onscreen)),
                     background_seed=1000 + index)


def render_all(videos: VideoSet, video_dir: Path) -> Path:
    """Render every case (kept when already there) and write the ingest manifest."""
    video_dir.mkdir(parents=True, exist_ok=True)
    rows = []
    for index, case in enumerate(tqdm(videos.cases, desc=f"render {videos.name}", unit="video")):
        path = video_dir / f"{case.id}.{case.container}"
        if not path.exists():
            partial = path.with_name(f"{case.id}.partial.{case.container}")
            render_video(partial, spec_for(videos, case, index))
            os.replace(partial, path)
        rows.append(json.dumps({"path": path.name, "caption": case.caption}, ensure_ascii=False))
    manifest = video_dir / "manifest.jsonl"
    manifest.write_text("\n".join(rows) + "\n", encoding="utf-8")
    return manifest


# ---------------------------------------------------------------------------- the instance


@dataclass
class Instance:
    """A private embedded COEF-VQ: its own var/ folder, SQLite, no broker. Commands run with torch on
    one thread, as a worker of scripts/run.sh on two cores has it, except the first-run training,
    which run.sh runs before its workers start, with torch's own thread count."""

    var_dir: Path
    model_dir: Path
    log: list[dict] = field(default_factory=list)

    def env(self, one_thread: bool = True) -> dict[str, str]:
        thread_caps = ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS")
        env = {k: v for k, v in os.environ.items()
               if k not in ("DATABASE_URL", "REDIS_URL", "COEFVQ_MEDIA_ROOT", *thread_caps)}
        env.update(COEFVQ_VAR_DIR=str(self.var_dir), COEFVQ_MODEL_DIR=str(self.model_dir),
                   COEFVQ_WHISPER_CHECKPOINT=str(self.model_dir / "whisper-tiny.en.pt"),
                   HF_HUB_OFFLINE="1", TRANSFORMERS_OFFLINE="1")
        if one_thread:
            env.update(dict.fromkeys(thread_caps, "1"))
        return env

    def manage(self, *args: str, one_thread: bool = True) -> tuple[str, float]:
        """Run `manage.py ARGS`; stderr (progress bars) goes to this terminal. Returns (stdout, wall s)."""
        command = [sys.executable, "manage.py", *args]
        started = time.perf_counter()
        result = subprocess.run(command, cwd=ROOT, env=self.env(one_thread), stdout=subprocess.PIPE, text=True)
        wall = time.perf_counter() - started
        self.log.append({"command": shlex.join(["manage.py", *args]), "wall_s": round(wall, 1),
                         "returncode": result.returncode, "torch_threads": 1 if one_thread else first_run_threads()})
        if result.returncode not in (0, 1):  # ingest exits 1 when an input could not be read
            raise SystemExit(f"manage.py {' '.join(args)} failed ({result.returncode}):\n{result.stdout[-2000:]}")
        return result.stdout, wall


def copy_database(source: Path, target: Path) -> None:
    """A consistent copy of a WAL-mode SQLite database."""
    target.parent.mkdir(parents=True, exist_ok=True)
    with sqlite3.connect(source) as src, sqlite3.connect(target) as dst:
        src.backup(dst)


def first_run(work: Path) -> tuple[Instance, dict]:
    """migrate, import_whisper and the first-run training line. The record of the run that really
    trained is kept in the work folder, so a re-run over the same folder reports that one."""
    instance = Instance(work / "var", work / "var" / "models")
    instance.manage("migrate", "--no-input", "-v", "0")
    instance.manage("import_whisper")
    instance.manage("import_llm")  # COEFVQ_LLM_PATH from the environment reuses an imported folder
    out, wall = instance.manage(*FIRST_RUN_TRAIN, one_thread=False)  # as scripts/run.sh runs it
    print(out, end="")
    record_file = work / "first_run.json"
    if "nothing to train" in out and record_file.exists():
        return instance, {**json.loads(record_file.read_text()), "measured_in_an_earlier_invocation": True}
    record = {"command": "manage.py " + " ".join(FIRST_RUN_TRAIN), "wall_s": round(wall, 1),
              "torch_threads": first_run_threads(),
              "trained": "nothing to train" not in out, "output": out.strip().splitlines(),
              "steps": list(instance.log), "machine": machine()}
    record_file.write_text(json.dumps(record, indent=2) + "\n")
    return instance, record


def run_fine_tune(trained: Instance, work: Path) -> dict:
    """The first run's benchmark fine-tune of the LLM, run here instead of on a gpu worker. Like
    first_run, the record of the run that really trained is kept in the work folder."""
    record_file = work / "fine_tune.json"
    bench = trained.var_dir / "bench" / f"train-{FIRST_RUN_TRAIN[FIRST_RUN_TRAIN.index('--videos') + 1]}-seed0"
    out, wall = trained.manage("retrain", "--benchmark", str(bench), "--if-none-yet", "--wait")
    print(out, end="")
    if "nothing queued" in out and record_file.exists():
        return {**json.loads(record_file.read_text()), "measured_in_an_earlier_invocation": True}
    record = {"command": f"manage.py retrain --benchmark {bench} --if-none-yet --wait", "wall_s": round(wall, 1),
              "output": out.strip().splitlines(), "machine": machine()}
    record_file.write_text(json.dumps(record, indent=2) + "\n")
    return record


def step_seconds(pass_dir: Path) -> dict[str, dict]:
    """Per-video seconds of each step, as the pass's own workers recorded them in the event log
    (extraction: decode, ASR, OCR; stage 1; stage 2 with its written explanation): n, mean, max."""
    with sqlite3.connect(pass_dir / "db.sqlite3") as db:
        rows = db.execute("SELECT data FROM moderation_videoevent").fetchall()
    steps: dict[str, list[float]] = {}
    for (data,) in rows:
        for step, seconds in (json.loads(data or "{}").get("seconds") or {}).items():
            steps.setdefault(step, []).append(float(seconds))
    return {step: {"n": len(v), "mean": round(sum(v) / len(v), 3), "max": round(max(v), 3)}
            for step, v in sorted(steps.items())}


def pass_dir(work: Path, videos: VideoSet, route: str) -> Path:
    return work / f"pass-{videos.name}-{route}"


def ingest_pass(trained: Instance, work: Path, videos: VideoSet, route: str) -> tuple[list[dict], float]:
    """All videos through `ingest --inline --json --route ROUTE` on a fresh copy of the trained DB
    (migrated, as scripts/run.sh does on every start)."""
    manifest = work / videos.folder / "manifest.jsonl"
    folder = pass_dir(work, videos, route)
    shutil.rmtree(folder, ignore_errors=True)
    copy_database(trained.var_dir / "db.sqlite3", folder / "db.sqlite3")
    instance = Instance(folder, trained.model_dir, trained.log)
    instance.manage("migrate", "--no-input", "-v", "0")
    out, wall = instance.manage("ingest", "--manifest", str(manifest), "--inline", "--json", "--route", route)
    records = [json.loads(line) for line in out.splitlines() if line.startswith("{")]
    if len(records) != len(videos.cases):  # exit status 1 is also a crash's: count the answers
        raise SystemExit(f"ingest --route {route} answered for {len(records)} of {len(videos.cases)} videos")
    return records, wall


# ---------------------------------------------------------------------------- scoring


def binary_f1(truth: list[str], predicted: list[str | None]) -> dict:
    tp = sum(t in VIOLATING and p in VIOLATING for t, p in zip(truth, predicted))
    fp = sum(t not in VIOLATING and p in VIOLATING for t, p in zip(truth, predicted))
    fn = sum(t in VIOLATING and p not in VIOLATING for t, p in zip(truth, predicted))
    precision = tp / (tp + fp) if tp + fp else 0.0
    recall = tp / (tp + fn) if tp + fn else 0.0
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    return {"precision": round(precision, 3), "recall": round(recall, 3), "f1": round(f1, 3),
            "tp": tp, "fp": fp, "fn": fn}


def score(cases: tuple[Case, ...], predicted: list[str | None]) -> dict:
    truth = [case.label for case in cases]
    per_kind = {}
    for kind in KINDS:
        pairs = [(t, p) for case, t, p in zip(cases, truth, predicted) if case.kind == kind]
        per_kind[kind] = {"n": len(pairs), "correct": sum(t == p for t, p in pairs),
                          "accuracy": round(sum(t == p for t, p in pairs) / len(pairs), 3)}
    correct = sum(t == p for t, p in zip(truth, predicted))
    return {"accuracy": round(correct / len(truth), 3), "correct": correct, "n": len(truth),
            "binary": binary_f1(truth, predicted), "per_kind": per_kind}


def argmax(probabilities: dict | None) -> str | None:
    return max(probabilities, key=probabilities.get) if probabilities else None


def p_violation(probabilities: dict | None) -> float | None:
    return 1.0 - probabilities["ok"] if probabilities else None


def ranking(cases: tuple[Case, ...], p_violations: list[float | None]) -> dict:
    """ROC AUC of p(violation) against the policy labels: how well a system orders the videos,
    whatever its decision threshold (None when a video has no probabilities)."""
    truth = [case.label in VIOLATING for case in cases]
    if any(p is None for p in p_violations):
        return {"roc_auc": None}
    return {"roc_auc": round(float(roc_auc_score(truth, p_violations)), 3)}


def deciding_probabilities(record: dict) -> dict | None:
    return record.get("mllm_probabilities") if record.get("decided_by") == "mllm" else record.get("probabilities")


def by_case(cases: tuple[Case, ...], records: list[dict]) -> list[dict]:
    """Ingest records in the cases' order (matched by file name)."""
    found = {Path(r["path"]).stem: r for r in records}
    return [found.get(case.id, {}) for case in cases]


def evaluate(cases: tuple[Case, ...], passes: dict[str, list[dict]]) -> dict:
    auto, mllm = by_case(cases, passes["auto"]), by_case(cases, passes["mllm"])
    return {
        "cascade_auto": {**score(cases, [r.get("final_label") for r in auto]),
                         **ranking(cases, [p_violation(deciding_probabilities(r)) for r in auto])},
        "baseline_alone": {**score(cases, [argmax(r.get("probabilities")) for r in auto]),
                           **ranking(cases, [p_violation(r.get("probabilities")) for r in auto])},
        "mllm_every_video": {**score(cases, [r.get("final_label") for r in mllm]),
                             **ranking(cases, [p_violation(r.get("mllm_probabilities")) for r in mllm])},
        # A floor for binary F1: most of these videos violate, so flagging all of them scores well.
        "flag_everything": score(cases, [VIOLATING[0]] * len(cases)),
        "auto_routed_to_mllm": sum(bool(r.get("routed_to_mllm")) for r in auto),
        "auto_decided_by": {stage: sum(r.get("decided_by") == stage for r in auto) for stage in ("baseline", "mllm")},
        # Every video stage 2 decided must carry the explanation it wrote.
        "mllm_decided_with_explanation": {
            route: [sum(r.get("decided_by") == "mllm" for r in records),
                    sum(r.get("decided_by") == "mllm" and bool((r.get("rationale") or {}).get("explanation"))
                        for r in records)]
            for route, records in passes.items()},
        "failed_videos": {route: [Path(r["path"]).stem for r in records if r.get("state") != "decided"]
                          for route, records in passes.items()},
    }


def per_video(videos: VideoSet, passes: dict[str, list[dict]], bank: set) -> list[dict]:
    auto, mllm = by_case(videos.cases, passes["auto"]), by_case(videos.cases, passes["mllm"])
    rows = []
    for index, (case, a, m) in enumerate(zip(videos.cases, auto, mllm)):
        voice, speed, pitch = videos.voice_of(index)
        shared, total = shared_ngrams(case, bank)
        rows.append({**asdict(case), "voice": voice, "speed": speed, "pitch": pitch,
                     "shared_4grams": shared, "total_4grams": total,
                     "baseline": argmax(a.get("probabilities")), "entropy": a.get("entropy"),
                     "p_violation_baseline": p_violation(a.get("probabilities")),
                     "p_violation_mllm": p_violation(m.get("mllm_probabilities")),
                     "threshold": a.get("threshold"), "routed_to_mllm": a.get("routed_to_mllm"),
                     "cascade": a.get("final_label"), "decided_by": a.get("decided_by"),
                     "explanation": (m.get("rationale") or {}).get("explanation"),
                     "mllm": m.get("final_label"), "transcript": m.get("transcript") or a.get("transcript"),
                     "ocr_text": m.get("ocr_text") or a.get("ocr_text"),
                     "states": [a.get("state"), m.get("state")], "errors": [a.get("error"), m.get("error")]})
    return rows


# ---------------------------------------------------------------------------- report


def routing_lines(output: list[str], who: str) -> list[str]:
    """The training command's judgment of whether stage 2 decides routed videos, as it printed it."""
    said = [line for line in output if line.startswith("Routing,")]
    return [f"{who} judged routing: {said[-1]}", ""] if said else []


def routed_but_stage1(videos: list[dict]) -> int:
    return sum(bool(v["routed_to_mllm"]) and v["decided_by"] == "baseline" for v in videos)


def markdown(results: dict) -> str:
    s, n_videos = results["scores"], len(results["videos"])
    systems = (("cascade (--route auto)", s["cascade_auto"]), ("baseline alone", s["baseline_alone"]),
               ("MLLM on every video (--route mllm)", s["mllm_every_video"]))
    lines = [
        "# Generalization check: hand-written videos, first-run default models", "",
        f"Command: `{results['command']}`  ", f"Date: {results['date']}, machine: {results['machine']}  ",
        f"Script wall time: {results['wall_s'] / 60:.1f} min", "",
        f"The {n_videos} videos of `{results.get('video_set', WRITTEN_40.name)}` (`bench/video_cases.py`: "
        "phrasings, voices and speeds the benchmark generator never uses), labeled by shared/POLICY.md. "
        f"Word 4-grams shared with the generator's phrase bank: {results['phrasing']['shared_4grams']} of "
        f"{results['phrasing']['total_4grams']}.", "",
        "## Steps (each a manage.py subprocess)", "",
        "| step | wall s |", "| --- | ---: |",
        *(f"| `{step['command']}` | {step['wall_s']} |" for step in results["steps"]), "",
        f"First-run training (`{results['first_run']['command']}`, torch on "
        f"{results['first_run'].get('torch_threads', 1)} thread(s), as scripts/run.sh runs it): "
        f"**{results['first_run']['wall_s'] / 60:.1f} min** ({results['first_run'].get('machine', '')})"
        + ("" if results["first_run"]["trained"] else " (models already active: NOT a first run)")
        + (" - measured by an earlier invocation over the same --work folder"
           if results["first_run"].get("measured_in_an_earlier_invocation") else "") + ".", "",
        *routing_lines(results["first_run"]["output"], "The first run"),
        *([f"Then the LLM's benchmark fine-tune (`{results['fine_tune']['command']}`, which scripts/run.sh queues "
           f"for the gpu worker): **{results['fine_tune']['wall_s'] / 60:.1f} min**; its gate said: "
           + " ".join(line for line in results["fine_tune"]["output"] if line.startswith(("MLLM:", "Held-out"))),
           "", *routing_lines(results["fine_tune"]["output"], "The fine-tune")] if results.get("fine_tune") else []),
        "## Scores (final_label vs the policy label)", "",
        "| system | accuracy | binary P | binary R | binary F1 | ROC AUC | "
        + " | ".join(KINDS) + " |",
        "| --- | ---: | ---: | ---: | ---: | ---: | " + " | ".join("---:" for _ in KINDS) + " |",
    ]
    for name, sc in systems:
        kinds = " | ".join(f"{sc['per_kind'][k]['correct']}/{sc['per_kind'][k]['n']}" for k in KINDS)
        auc = "-" if sc.get("roc_auc") is None else f"{sc['roc_auc']:.3f}"
        lines.append(f"| {name} | {sc['accuracy']:.3f} | {sc['binary']['precision']:.3f} | "
                     f"{sc['binary']['recall']:.3f} | {sc['binary']['f1']:.3f} | {auc} | {kinds} |")
    floor = s["flag_everything"]["binary"]
    lines += ["", f"Binary F1 has a high floor here: {floor['tp']} of {n_videos} videos violate, so flagging "
              f"every one scores binary F1 {floor['f1']:.3f} (precision {floor['precision']:.3f}, recall 1.000). "
              "Accuracy (the label itself) and ROC AUC (p(violation) = 1 - p(ok): how well the videos are "
              "ordered, whatever the threshold; for the cascade, from the stage that decided) say more.",
              "", f"Auto pass: {s['auto_routed_to_mllm']} of {n_videos} videos routed to the MLLM "
              f"(decided by baseline {s['auto_decided_by']['baseline']}, by MLLM {s['auto_decided_by']['mllm']}); "
              "a new install routes by the baseline's reference entropies (its validation videos) until it has "
              "its own history.",
              f"Routed videos stage 1 decided after all, sending them to a reviewer (stage 2 on trial, or it "
              f"could not read the file): {routed_but_stage1(results['videos'])}.",
              f"Videos not decided: {s['failed_videos']}.",
              "Stage-2 decisions with a written explanation (decided by stage 2, of them explained): "
              + ", ".join(f"--route {r}: {n[1]} of {n[0]}" for r, n in s["mllm_decided_with_explanation"].items())
              + ".", "",
              "Ingest wall time: " + ", ".join(f"--route {r}: {t:.0f} s" for r, t in results["ingest_wall_s"].items()),
              "", "Seconds per video of each step, from the passes' own event logs (torch on 1 thread; the machine's "
              "load is in the header):", "", "| pass | step | videos | mean s | max s |", "| --- | --- | ---: | ---: | ---: |",
              *(f"| {r} | {step} | {v['n']} | {v['mean']:.2f} | {v['max']:.2f} |"
                for r, steps in results.get("step_seconds", {}).items() for step, v in steps.items()),
              "", "## Every video", "",
              "| id | kind | label | voice, wpm | baseline | cascade (by) | MLLM | transcript |",
              "| --- | --- | --- | --- | --- | --- | --- | --- |"]
    for v in results["videos"]:
        mark = lambda p: p if p == v["label"] else f"**{p}**"  # noqa: E731 - wrong answers in bold
        transcript = (v["transcript"] or "").replace("|", "/")[:90]
        lines.append(f"| {v['id']} | {v['kind']} | {v['label']} | {v['voice']}, {v['speed']} | {mark(v['baseline'])} "
                     f"| {mark(v['cascade'])} ({v['decided_by']}) | {mark(v['mllm'])} | {transcript} |")
    return "\n".join(lines) + "\n"


def first_run_threads() -> int:
    # manage.py train caps torch at 2 threads; uncapped, torch takes one per core.
    return min(2, os.cpu_count() or 1)


def machine() -> str:
    # The load average says how much else the (shared) machine was doing: timings depend on it.
    load = ", ".join(f"{x:.1f}" for x in os.getloadavg())
    return f"{platform.machine()}, {os.cpu_count()} CPUs, Python {platform.python_version()}, load average {load}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--work", type=Path, default=None,
                        help="Working folder (videos, the private var/). Default: a new temporary folder. "
                             "Reusing one skips training (then the first-run time is not measured).")
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "results" / "generalization")
    parser.add_argument("--videos", choices=sorted(VIDEO_SETS), default=WRITTEN_40.name,
                        help="Which hand-written set to ingest (bench/video_cases.py). Training and the "
                             "fine-tune are the same for both: over an earlier --work folder, only the "
                             "ingest passes run.")
    parser.add_argument("--fine-tune", action="store_true",
                        help="Before the ingest passes, run the fine-tune that scripts/run.sh queues after start-up "
                             "(`retrain --benchmark ... --if-none-yet`, here with --wait), as a newcomer's install "
                             "has it once that run is done.")
    args = parser.parse_args()
    check_voices_unused()
    started = time.perf_counter()
    work = (args.work or Path(tempfile.mkdtemp(prefix="coefvq-generalize-"))).resolve()
    print(f"Working folder: {work}", file=sys.stderr)

    videos = VIDEO_SETS[args.videos]
    render_all(videos, work / videos.folder)
    trained, first = first_run(work)
    fine_tune = run_fine_tune(trained, work) if args.fine_tune else None
    passes, ingest_wall, seconds = {}, {}, {}
    for route in ROUTES:
        passes[route], ingest_wall[route] = ingest_pass(trained, work, videos, route)
        seconds[route] = step_seconds(pass_dir(work, videos, route))

    bank = generator_ngrams()
    rows = per_video(videos, passes, bank)
    results = {
        "command": shlex.join([".venv/bin/python", "bench/generalize.py", *sys.argv[1:]]),
        "date": datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC"), "machine": machine(),
        "wall_s": round(time.perf_counter() - started, 1), "work": str(work),
        "video_set": videos.name, "first_run": first, "fine_tune": fine_tune, "steps": trained.log, "ingest_wall_s": {r: round(t, 1) for r, t in ingest_wall.items()},
        "step_seconds": seconds,
        "phrasing": {"shared_4grams": sum(v["shared_4grams"] for v in rows),
                     "total_4grams": sum(v["total_4grams"] for v in rows)},
        "labels": list(LABELS), "scores": evaluate(videos.cases, passes), "videos": rows,
    }
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "results.json").write_text(json.dumps(results, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    (args.out / "results.md").write_text(markdown(results), encoding="utf-8")
    print(markdown(results))


if __name__ == "__main__":
    main()
