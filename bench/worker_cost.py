"""What the cascade costs as the product runs it: real clips through a real Celery worker.

    python bench/worker_cost.py --out bench/results/worker_cost [--clips 24] [--budget 0.2]

It sets up the product under its own folder (`--work`, the embedded default: SQLite and the
file-system broker, as a newcomer's first run), trains and activates the first-run models there
(`manage.py train all --videos 120 --epochs 0 --activate`, the README's first run: stage 1 and the
LLM from its prompt; skipped when the folder already has them), starts one Celery worker (`-Q
cpu,gpu`, prefork, one process, one torch thread: the decoder runs in the sandbox's warm decoder
as in production), ingests the benchmark's held-out test clips (rendered speech, on-screen text,
music) and waits for every verdict. Each step records its own seconds in the video's events
(extraction: decode, ASR with the production Whisper settings, OCR, storing; stage 1: reading the
stored evidence, the baseline; stage 2: the stage-2 model with its modality contributions and
written explanation), and the event times give each task's wall time in the worker.

In the same run, the same steps are timed in isolation in this process on the same clips (the
sandboxed decode through a fork server, ASR, OCR, the baseline and stage 2 on in-memory
features), so the worker's overhead is measured, not assumed.

From the worker's figures: seconds per step and per video, videos per hour for one worker, and the
cascade's total (extraction + stage 1 for every video, stage 2 for the routed share) against stage 2
on everything (extraction + stage 2 for every video). Writes results.json and results.md.
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import signal
import subprocess
import sys
import time
from pathlib import Path
from statistics import mean, median

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

TRAIN_VIDEOS = 120  # the README's first run (scripts/run.sh, COEFVQ_DEMO_VIDEOS)
SETTLED = ("decided", "failed")


def parse_args(argv):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--work", type=Path, default=REPO / "var" / "bench" / "worker-cost")
    parser.add_argument("--out", type=Path, default=REPO / "bench" / "results" / "worker_cost")
    parser.add_argument("--clips", type=int, default=24, help="held-out test clips to push through (at most 24)")
    parser.add_argument("--budget", type=float, default=0.2, help="the cascade's MLLM budget (share of traffic)")
    parser.add_argument("--timeout", type=float, default=3600, help="seconds to wait for every verdict")
    return parser.parse_args(argv)


def product_env(work: Path) -> dict[str, str]:
    """The embedded default under `work`: no DATABASE_URL or REDIS_URL, whatever the caller has."""
    env = {k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "REDIS_URL")}
    env.update(COEFVQ_VAR_DIR=str(work), HF_HUB_OFFLINE="1", TRANSFORMERS_OFFLINE="1",
               DJANGO_SETTINGS_MODULE="coefvq_site.settings", OMP_NUM_THREADS="1",
               COEFVQ_WHISPER_CHECKPOINT=str(REPO / "var" / "models" / "whisper-tiny.en.pt"))
    env.setdefault("COEFVQ_LLM_PATH", str(REPO / "var" / "models" / "qwen2.5-coder-1.5b-instruct"))  # imported once
    return env


def manage(env: dict, *args: str) -> None:
    subprocess.run([sys.executable, "manage.py", *args], cwd=REPO, env=env, check=True)


def start_worker(env: dict, log: Path) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-m", "celery", "-A", "coefvq_site", "worker", "-Q", "cpu,gpu", "--concurrency", "1",
         "--pool", "prefork", "-l", "info", "--without-heartbeat", "--without-mingle", "--without-gossip"],
        cwd=REPO, env=env, stdout=log.open("ab"), stderr=subprocess.STDOUT, start_new_session=True)


def stop(process: subprocess.Popen) -> None:
    try:
        os.killpg(process.pid, signal.SIGTERM)
        process.wait(60)
    except (ProcessLookupError, subprocess.TimeoutExpired):
        os.killpg(process.pid, signal.SIGKILL)


def ingest_and_wait(paths: list[tuple[Path, str]], timeout_s: float) -> tuple[list[int], float]:
    from moderation.actions.ingest import do_ingest
    from moderation.models import Video

    started = time.perf_counter()
    ids = []
    for path, caption in paths:
        with path.open("rb") as stream:
            ids.append(do_ingest(stream, filename=path.name, source="cli", caption=caption).video.pk)
    deadline = time.monotonic() + timeout_s
    while Video.objects.filter(pk__in=ids).exclude(state__in=SETTLED).exists():
        if time.monotonic() > deadline:
            raise SystemExit(f"not every video was settled after {timeout_s:g} s")
        time.sleep(0.5)
    return ids, time.perf_counter() - started


def worker_figures(video_id: int) -> dict:
    """Per step: the seconds it recorded, and the task's wall time from its events."""
    from moderation.models import Video

    video = Video.objects.get(pk=video_id)
    events = list(video.events.order_by("at", "id"))
    at = {}
    for event in events:
        at.setdefault(event.to_state, event)
    out = {"video_id": video_id, "state": video.state, "decided_by": video.decided_by,
           "routed": "awaiting_mllm" in at}
    out["extraction"] = {**at["extracted"].data["seconds"],
                         "task_s": (at["extracted"].at - at["extracting"].at).total_seconds()}
    stage1_end = at.get("awaiting_mllm") or at["decided"]
    out["stage1"] = {**stage1_end.data["seconds"],
                     "task_s": (stage1_end.at - at["scoring"].at).total_seconds()}
    if out["routed"]:
        decided = at["decided"]
        out["stage2"] = dict(decided.data["seconds"])  # its wait in the queue is not its cost
        out["stage2"]["task_s"] = sum(out["stage2"].values())
    return out


def isolated_figures(paths: list[tuple[Path, str]], baseline, mllm) -> list[dict]:
    """The same steps, one at a time in this process, on the same clips."""
    from django.conf import settings

    from inference.asr import SpeechTranscriber, TranscriberConfig
    from inference.ocr import OcrConfig, OcrReader
    from inference.sandbox import decode_isolated
    from inference.types import VideoFeatures
    from moderation.pipeline import media_limits

    transcriber = SpeechTranscriber(TranscriberConfig(checkpoint_path=str(settings.COEFVQ_ASR_CHECKPOINT)))
    reader = OcrReader(OcrConfig(min_score=settings.COEFVQ_OCR_MIN_SCORE))
    rows = []
    for path, caption in paths:
        t0 = time.perf_counter()
        decoded = decode_isolated(path, media_limits(), n_frames=settings.COEFVQ_FRAMES_PER_VIDEO,
                                  max_side=settings.COEFVQ_FRAME_MAX_SIDE,
                                  memory_limit_bytes=settings.COEFVQ_DECODE_MEMORY_BYTES)
        t1 = time.perf_counter()
        transcript = transcriber.transcribe(decoded.audio) if decoded.audio is not None else []
        t2 = time.perf_counter()
        ocr = reader.read(decoded.frames)
        t3 = time.perf_counter()
        features = VideoFeatures(info=decoded.info, caption=caption, frames=decoded.frames, audio=decoded.audio,
                                 transcript=transcript, ocr=ocr)
        baseline.score(features)
        t4 = time.perf_counter()
        mllm.predict([features], explain=True)
        t5 = time.perf_counter()
        rows.append({"decode_s": t1 - t0, "asr_s": t2 - t1, "ocr_s": t3 - t2, "baseline_s": t4 - t3,
                     "mllm_s": t5 - t4})
    return rows


def summarise(worker: list[dict], isolated: list[dict], wall_s: float, budget: float) -> dict:
    def avg(rows, *keys):
        return mean(sum(row[k] for k in keys) for row in rows)

    extraction = [w["extraction"] for w in worker]
    stage1 = [w["stage1"] for w in worker]
    stage2 = [w["stage2"] for w in worker if "stage2" in w]
    routed_share = len(stage2) / len(worker)
    per_step_worker = {
        "decode_s": avg(extraction, "decode_s"), "asr_s": avg(extraction, "asr_s"), "ocr_s": avg(extraction, "ocr_s"),
        "store_s": avg(extraction, "store_s"), "extraction_task_s": avg(extraction, "task_s"),
        "stage1_evidence_s": avg(stage1, "evidence_s"), "baseline_s": avg(stage1, "baseline_s"),
        "stage1_task_s": avg(stage1, "task_s"),
        "stage2_evidence_s": avg(stage2, "evidence_s") if stage2 else None,
        "mllm_with_rationale_s": avg(stage2, "mllm_s") if stage2 else None,
    }
    per_step_isolated = {key: avg(isolated, key) for key in ("decode_s", "asr_s", "ocr_s", "baseline_s", "mllm_s")}
    extract_plus_stage1_worker = per_step_worker["extraction_task_s"] + per_step_worker["stage1_task_s"]
    extract_plus_stage1_isolated = avg(isolated, "decode_s", "asr_s", "ocr_s", "baseline_s")
    stage2_s = per_step_worker["mllm_with_rationale_s"] + per_step_worker["stage2_evidence_s"] if stage2 \
        else per_step_isolated["mllm_s"]
    extraction_s, stage1_s = per_step_worker["extraction_task_s"], per_step_worker["stage1_task_s"]

    def cascade(share: float) -> float:
        return extraction_s + stage1_s + share * stage2_s

    everything = extraction_s + stage2_s
    return {
        "videos": len(worker), "routed_share": routed_share, "budget": budget,
        "worker_s": per_step_worker, "isolated_s": per_step_isolated,
        "extraction_plus_stage1": {"worker_s": extract_plus_stage1_worker, "isolated_s": extract_plus_stage1_isolated,
                                   "ratio": extract_plus_stage1_worker / extract_plus_stage1_isolated},
        "asr_share_of_extraction": per_step_worker["asr_s"] / extraction_s,
        "stage2_per_routed_video_s": stage2_s,
        "cascade_per_video_s": {"measured_share": cascade(routed_share), "at_budget": cascade(budget)},
        "mllm_on_everything_per_video_s": everything,
        "cascade_relative_to_mllm_on_everything": {"measured_share": cascade(routed_share) / everything,
                                                   "at_budget": cascade(budget) / everything},
        "end_to_end_wall_s": wall_s,
        "videos_per_hour_per_worker": 3600 * len(worker) / wall_s,
        "median_extraction_task_s": median(e["task_s"] for e in extraction),
    }


def render_markdown(results: dict) -> str:
    s, w, i = results["summary"], results["summary"]["worker_s"], results["summary"]["isolated_s"]
    e = s["extraction_plus_stage1"]

    def f(x):
        return "–" if x is None else f"{x:.2f}"

    lines = [
        "# The cascade's cost in the worker",
        "",
        f"Command: `{results['command']}`  ",
        f"Commit: {results['git_commit']}; machine: {results['machine']}; one Celery worker (prefork, concurrency 1, "
        f"`-Q cpu,gpu`), one torch thread; {s['videos']} held-out test clips of the first-run benchmark; "
        f"MLLM budget {s['budget']:.0%}, routed {s['routed_share']:.0%} of these clips.",
        "",
        "| step | in the worker (s/video) | in isolation (s/video) |",
        "| --- | ---: | ---: |",
        f"| sandboxed decode (warm decoder / fork server) | {f(w['decode_s'])} | {f(i['decode_s'])} |",
        f"| ASR ({results['asr']}, beam 5, as in production) | {f(w['asr_s'])} | {f(i['asr_s'])} |",
        f"| OCR (RapidOCR) | {f(w['ocr_s'])} | {f(i['ocr_s'])} |",
        f"| storing the evidence | {f(w['store_s'])} | – |",
        f"| **extraction task** | **{f(w['extraction_task_s'])}** | {f(i['decode_s'] + i['asr_s'] + i['ocr_s'])} |",
        f"| stage 1: reading the stored evidence | {f(w['stage1_evidence_s'])} | – |",
        f"| stage 1: the baseline | {f(w['baseline_s'])} | {f(i['baseline_s'])} |",
        f"| **stage-1 task** | **{f(w['stage1_task_s'])}** | |",
        f"| stage 2: reading the stored evidence | {f(w['stage2_evidence_s'])} | – |",
        f"| stage 2: {results['stage2']} with its contributions and explanation | {f(w['mllm_with_rationale_s'])} "
        f"| {f(i['mllm_s'])} |",
        "",
        f"- Extraction + stage 1: {e['worker_s']:.2f} s in the worker against {e['isolated_s']:.2f} s for the same "
        f"steps in isolation: **{e['ratio']:.2f} x**. Each video is decoded once (extraction); stage 1 and stage 2 "
        "read what it stored.",
        f"- ASR is {s['asr_share_of_extraction']:.0%} of the extraction task.",
        f"- Per video: cascade {s['cascade_per_video_s']['measured_share']:.2f} s at the measured routed share "
        f"({s['cascade_relative_to_mllm_on_everything']['measured_share']:.0%} of stage 2 on everything, "
        f"{s['mllm_on_everything_per_video_s']:.2f} s), {s['cascade_per_video_s']['at_budget']:.2f} s at the "
        f"{s['budget']:.0%} budget ({s['cascade_relative_to_mllm_on_everything']['at_budget']:.0%}).",
        f"- End to end: {s['videos']} videos in {s['end_to_end_wall_s']:.0f} s, "
        f"**{s['videos_per_hour_per_worker']:.0f} videos per hour** for one worker process.",
        "",
    ]
    return "\n".join(lines)


def main(argv=None) -> int:
    args = parse_args(argv)
    args.work.mkdir(parents=True, exist_ok=True)
    env = product_env(args.work)
    os.environ.clear()
    os.environ.update(env)
    from run_cascade import git_commit, machine_description  # bench/ is this script's folder

    command = "python bench/worker_cost.py " + " ".join(shlex.quote(a) for a in (argv if argv is not None else sys.argv[1:]))
    commit = git_commit()
    manage(env, "migrate", "--no-input", "-v", "0")
    manage(env, "import_whisper")
    data = args.work / "bench" / f"train-{TRAIN_VIDEOS}-seed0"
    manage(env, "import_llm")
    manage(env, "train", "all", "--videos", str(TRAIN_VIDEOS), "--epochs", "0", "--activate", "--if-none-active",
           "--data", str(data))

    import django

    django.setup()
    import torch
    from django.conf import settings

    from moderation import scoring
    from moderation.actions.model_registry import do_change_cascade_config
    from moderation.models import Policy

    torch.set_num_threads(1)
    policy = Policy.objects.get(slug="icd")
    do_change_cascade_config(policy, actor=None, note="bench/worker_cost.py", entropy_threshold=None,
                             mllm_budget=args.budget)
    demo = [json.loads(line) for line in (data / "demo.jsonl").read_text().splitlines() if line.strip()]
    clips = [(Path(row["path"]) if Path(row["path"]).is_absolute() else data / row["path"], row["caption"])
             for row in demo][: args.clips + 1]
    warm_up, clips = clips[:1], clips[1:]

    log = args.work / "worker.log"
    worker = start_worker(env, log)
    try:
        ingest_and_wait(warm_up, args.timeout)  # loads Whisper, OCR, MiniLM and the MLLM once
        ids, wall_s = ingest_and_wait(clips, args.timeout)
    finally:
        stop(worker)
    in_worker = [worker_figures(video_id) for video_id in ids]
    config = scoring.active_config(policy.pk)
    stage2 = scoring.load_mllm(config.mllm_version_id)
    isolated = isolated_figures(clips, scoring.load_baseline(config.baseline_version_id), stage2)
    results = {"command": command, "git_commit": commit, "machine": machine_description(),
               "asr": Path(settings.COEFVQ_ASR_CHECKPOINT).stem, "stage2": type(stage2).__name__,
               "summary": summarise(in_worker, isolated, wall_s, args.budget),
               "per_video_worker": in_worker, "per_video_isolated": isolated}
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "results.json").write_text(json.dumps(results, indent=2, default=str))
    (args.out / "results.md").write_text(render_markdown(results))
    print((args.out / "results.md").read_text())
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
