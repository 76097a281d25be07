"""Load run: many reviewers working the queue while videos pour in, against a real stack.

    .venv/bin/python bench/load_run.py [--reviewers 50] [--videos 1000] [--open-tasks 3000]
                                       [--duration 150] [--max-requests 60000] [--web-workers N]
                                       [--cpu-workers 1]
    .venv/bin/python bench/load_run.py --ingest-only --cpu-workers 1|2 [--videos 40]

Starts what production runs, on loopback: uvicorn with --web-workers processes (default: one per
two cores, as scripts/run.sh), a Celery `cpu` worker with --cpu-workers processes, a `gpu` worker and
the scheduler,
on the local PostgreSQL (its own database, --database-url, default coefvq_load, dropped and made
anew) and Redis (--redis-url). Seeds --open-tasks decided videos waiting for review, then for
--duration seconds (or until --max-requests requests):

- each of --reviewers threads signs in through the login form, then loops: GET /livez (the floor:
  middleware and server, no database), the queue page, POST /api/review-tasks/claim/ (token), the
  review page, POST /api/review-tasks/<id>/decision/;
- a lead loads the dashboard (last 30 days) every --dashboard-every seconds;
- --upload-threads threads upload --videos tiny generated clips through POST /api/videos/, which
  the worker processes as far as the machine allows.

Every latency is also reported as a ratio to /livez's under the same load. --ingest-only measures
the workers alone: it uploads --videos clips with no other load, then starts the workers and
times until every clip is extracted (or --duration passes); run it with --cpu-workers 1 and 2.

Then it checks the database: no task has two reviews, no two reviewers held one task at once
(every claim's token is logged), every 201 decision has its Review row. It writes results.json
and results.md to --out with page and API latencies (p50/p95), decisions per second, ingest
throughput and every error.
"""

from __future__ import annotations

import argparse
import io
import json
import os
import platform
import shlex
import shutil
import signal
import statistics
import subprocess
import sys
import threading
import time
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from pathlib import Path

import requests

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))
BIN = Path(sys.executable).parent

DEFAULT_DATABASE_URL = "postgres://postgres@127.0.0.1:5432/coefvq_load"
DEFAULT_REDIS_URL = "redis://127.0.0.1:6379/5"
FLOOR = "floor: /livez"
LEAD = "lead00"
PASSWORD = "load-run-password-1"
# Every simulated reviewer signs in from 127.0.0.1, so the per-address sign-in limit is raised for
# the run; uploads come from one account, so its upload limit is too. Everything else is default.
RUN_SETTINGS = {
    "COEFVQ_LOGIN_RATE_PER_IP": "1000/m",
    "COEFVQ_UPLOAD_RATE": "100000/h",
    "OMP_NUM_THREADS": "1",
    "MKL_NUM_THREADS": "1",
    "COEFVQ_LOG_LEVEL": "WARNING",
}


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--reviewers", type=int, default=50)
    parser.add_argument("--videos", type=int, default=1000, help="clips uploaded through the API")
    parser.add_argument("--open-tasks", type=int, default=3000, help="review tasks waiting at the start")
    parser.add_argument("--duration", type=float, default=150.0, help="seconds of load")
    parser.add_argument("--max-requests", type=int, default=60_000, help="stop after this many requests")
    parser.add_argument("--upload-threads", type=int, default=4)
    parser.add_argument("--web-workers", type=int, default=max(1, (os.cpu_count() or 1) // 2),
                        help="uvicorn processes (default: as scripts/run.sh, one per two cores)")
    parser.add_argument("--cpu-workers", type=int, default=1, help="processes of the cpu queue's worker")
    parser.add_argument("--dashboard-every", type=float, default=5.0, help="seconds between a lead's dashboard loads")
    parser.add_argument("--ingest-only", action="store_true", help="time the workers extracting --videos clips")
    parser.add_argument("--real-clips", action="store_true",
                        help="upload rendered clips with speech and on-screen text (inference.synth) instead of noise")
    parser.add_argument("--port", type=int, default=8765)
    parser.add_argument("--database-url", default=DEFAULT_DATABASE_URL)
    parser.add_argument("--redis-url", default=DEFAULT_REDIS_URL)
    parser.add_argument("--out", type=Path, default=REPO / "bench" / "results" / "load_run")
    return parser.parse_args()


# --- the stack ------------------------------------------------------------------------------------


def stack_env(args) -> dict:
    var_dir = REPO / "var" / "load_run"
    metrics_dir = var_dir / "prometheus"
    shutil.rmtree(metrics_dir, ignore_errors=True)
    metrics_dir.mkdir(parents=True)
    # Whisper's weights, converted once and shared with the product's own var/: base transcribes (the
    # product's ASR), tiny.en is stage 2's audio tower.
    checkpoints = {"base": REPO / "var" / "models" / "whisper-base.pt",
                   "tiny.en": REPO / "var" / "models" / "whisper-tiny.en.pt"}
    for model, path in checkpoints.items():
        subprocess.run([sys.executable, "-m", "inference.whisper_import", str(path), "--model", model], cwd=REPO,
                       check=True, stdout=subprocess.DEVNULL)
    return {**os.environ, **RUN_SETTINGS, "DATABASE_URL": args.database_url, "REDIS_URL": args.redis_url,
            "COEFVQ_ASR_CHECKPOINT": str(checkpoints["base"]), "COEFVQ_WHISPER_CHECKPOINT": str(checkpoints["tiny.en"]),
            "COEFVQ_VAR_DIR": str(var_dir), "COEFVQ_MEDIA_ROOT": str(var_dir / "media"),
            "DJANGO_SETTINGS_MODULE": "coefvq_site.settings", "PYTHONPATH": str(REPO),
            "PROMETHEUS_MULTIPROC_DIR": str(metrics_dir)}


def recreate_database(database_url: str) -> None:
    import psycopg
    from psycopg import sql

    name = database_url.rsplit("/", 1)[1]
    server = database_url.rsplit("/", 1)[0] + "/postgres"
    with psycopg.connect(server, autocommit=True) as conn:
        conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))


def setup_django(env: dict) -> None:
    os.environ.update({key: env[key] for key in (*RUN_SETTINGS, "DATABASE_URL", "REDIS_URL", "COEFVQ_VAR_DIR",
                                                  "COEFVQ_MEDIA_ROOT", "DJANGO_SETTINGS_MODULE")})
    import django

    django.setup()


class Stack:
    """uvicorn and the Celery workers as child processes, each in its own process group."""

    def __init__(self, env: dict, port: int, log_dir: Path, web_workers: int, cpu_workers: int):
        self.env, self.port, self.log_dir = env, port, log_dir
        self.web_workers, self.cpu_workers = web_workers, cpu_workers
        self.processes: dict[str, subprocess.Popen] = {}

    def start(self, web: bool = True, workers: bool = True) -> None:
        self.log_dir.mkdir(parents=True, exist_ok=True)
        if web:
            self._spawn("web", [str(BIN / "uvicorn"), "coefvq_site.asgi:application", "--host", "127.0.0.1",
                                "--port", str(self.port), "--workers", str(self.web_workers), "--lifespan", "off",
                                "--timeout-keep-alive", "75", "--log-level", "warning"])
        if workers:
            self.start_workers()
        if web:
            self._wait_for_web()

    def start_workers(self) -> None:
        for queue, processes in (("cpu", self.cpu_workers), ("gpu", 1)):
            self._spawn(f"worker-{queue}", [str(BIN / "celery"), "-A", "coefvq_site", "worker", "-Q", queue,
                                            "-n", f"{queue}@%h", "-c", str(processes), "-l", "warning",
                                            "--without-gossip", "--without-mingle"])
        # The scheduler, as scripts/run.sh starts it: among its tasks the dashboard's refresh.
        self._spawn("beat", [str(BIN / "celery"), "-A", "coefvq_site", "beat", "-l", "warning", "--pidfile="])

    def _spawn(self, name: str, argv: list[str]) -> None:
        log = open(self.log_dir / f"{name}.log", "w")
        self.processes[name] = subprocess.Popen(argv, cwd=REPO, env=self.env, stdout=log, stderr=subprocess.STDOUT,
                                                start_new_session=True)

    def _wait_for_web(self, timeout: float = 60.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                if requests.get(f"http://127.0.0.1:{self.port}/accounts/login/", timeout=10).status_code == 200:
                    return
            except requests.RequestException:
                time.sleep(0.5)
        raise RuntimeError(f"the web server did not answer within {timeout:.0f} s; see {self.log_dir}/web.log")

    def stop(self) -> None:
        for process in self.processes.values():
            if process.poll() is None:
                os.killpg(process.pid, signal.SIGTERM)
        for process in self.processes.values():
            try:
                process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)


# --- seeding --------------------------------------------------------------------------------------


def seed(args) -> tuple[list[str], str, dict[str, str]]:
    """Reviewer accounts with tokens, an uploader, and open review tasks on decided videos."""
    import hashlib

    from django.contrib.auth.models import Group, User
    from django.utils import timezone
    from rest_framework.authtoken.models import Token

    from moderation import roles
    from moderation.models import Policy, ReviewTask, Video

    reviewer_group = Group.objects.get(name=roles.REVIEWER)
    names = [f"reviewer{i:02d}" for i in range(args.reviewers)]
    tokens = {}
    for name in names + ["uploader"]:
        user = User.objects.create_user(name, password=PASSWORD)
        if name != "uploader":
            user.groups.add(reviewer_group)
        tokens[name] = Token.objects.create(user=user).key
    User.objects.create_user(LEAD, password=PASSWORD).groups.add(Group.objects.get(name=roles.LEAD))
    policy = Policy.objects.get(slug="icd")
    now = timezone.now()
    videos = Video.objects.bulk_create(
        Video(policy=policy, file=f"videos/seed/{i}.mp4", original_filename=f"seed-{i}.mp4",
              sha256=hashlib.sha256(b"seed-%d" % i).hexdigest(), size_bytes=1, source="cli",
              state=Video.State.DECIDED, state_changed_at=now, final_label="ok", decided_by="baseline",
              decision="human_review", needs_review=True)
        for i in range(args.open_tasks))
    ReviewTask.objects.bulk_create(
        ReviewTask(video=video, policy=policy, reason=ReviewTask.Reason.REVIEW_BAND, priority=(i % 100) / 100,
                   due_at=now, model_label="ok", p_violation=0.5)
        for i, video in enumerate(videos))
    return names, tokens.pop("uploader"), tokens


def real_clips(count: int) -> list[bytes]:
    """Distinct clips with speech and on-screen text, as the product sees them: Whisper and OCR have work."""
    import tempfile

    from inference.synth import SynthSpec, render_video

    clips = []
    with tempfile.TemporaryDirectory() as folder:
        for index in range(count):
            spec = SynthSpec(speech_text=f"clip number {index}: call the hotline about the garden festival",
                             onscreen_text=[(0.0, 3.0, f"FESTIVAL {index}")], speed_wpm=170)
            clips.append(render_video(Path(folder) / f"{index}.mp4", spec).read_bytes())
    return clips


def tiny_clips(count: int) -> list[bytes]:
    """Distinct half-second 64x64 MPEG-4 clips of noise (seeded by index), a few KB each."""
    import av
    import numpy as np

    clips = []
    for index in range(count):
        rng = np.random.default_rng(index)
        buffer = io.BytesIO()
        with av.open(buffer, "w", format="mp4") as container:
            stream = container.add_stream("mpeg4", rate=8)
            stream.width, stream.height, stream.pix_fmt = 64, 64, "yuv420p"
            for _ in range(4):
                pixels = rng.integers(0, 256, (64, 64, 3), dtype=np.uint8)
                container.mux(stream.encode(av.VideoFrame.from_ndarray(pixels, format="rgb24")))
            container.mux(stream.encode())
        clips.append(buffer.getvalue())
    return clips


# --- load -----------------------------------------------------------------------------------------


@dataclass
class Budget:
    """Shared stop condition: a deadline and a request count."""

    deadline: float
    max_requests: int
    sent: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock)

    def take(self) -> bool:
        with self.lock:
            if time.monotonic() >= self.deadline or self.sent >= self.max_requests:
                return False
            self.sent += 1
            return True


@dataclass
class Log:
    timings: list = field(default_factory=list)  # (kind, seconds, status, when it started: time.monotonic())
    claims: list = field(default_factory=list)  # (reviewer, task, token, claimed_at, released_at)
    decisions: list = field(default_factory=list)  # (reviewer, task, review id)
    uploads: list = field(default_factory=list)  # (video id, created)
    errors: Counter = field(default_factory=Counter)  # "kind status" -> count
    sign_in_all_s: float = 0.0  # every reviewer signing in at once, before the timed load
    started_wall: float = 0.0  # the timed load's start and end (time.time())
    ended_wall: float = 0.0


def timed(log: Log, kind: str, call):
    started = time.monotonic()
    try:
        response = call()
    except requests.RequestException as error:
        log.errors[f"{kind} {type(error).__name__}"] += 1
        return None
    log.timings.append((kind, time.monotonic() - started, response.status_code, started))
    if response.status_code >= 400:
        log.errors[f"{kind} {response.status_code}"] += 1
    return response


def sign_in(base: str, username: str, log: Log) -> requests.Session:
    """The login form, as a browser fills it. Hashing the password is the slow part on purpose."""
    session = requests.Session()
    session.get(f"{base}/accounts/login/", timeout=300)
    response = timed(log, "page: sign-in", lambda: session.post(
        f"{base}/accounts/login/", timeout=300, allow_redirects=False,
        data={"username": username, "password": PASSWORD, "csrfmiddlewaretoken": session.cookies["csrftoken"]}))
    if response is None or response.status_code != 302:
        raise RuntimeError(f"{username} could not sign in: {response and response.status_code}")
    return session


def sign_in_all(base: str, usernames: list[str], log: Log) -> dict[str, requests.Session]:
    """Everyone signs in at once, as at the start of a shift, before the timed load begins."""
    sessions = {}

    def one(name):
        sessions[name] = sign_in(base, name, log)

    threads = [threading.Thread(target=one, args=(name,)) for name in usernames]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    missing = set(usernames) - set(sessions)
    if missing:
        raise RuntimeError(f"{len(missing)} reviewers could not sign in")
    return sessions


def review_loop(base: str, session: requests.Session, username: str, token: str, budget: Budget, log: Log) -> None:
    api = {"Authorization": f"Token {token}"}
    while budget.take():
        timed(log, FLOOR, lambda: session.get(f"{base}/livez", timeout=60))
        if not budget.take():
            return
        timed(log, "page: queue", lambda: session.get(f"{base}/queue/", timeout=60))
        if not budget.take():
            return
        claimed = timed(log, "api: claim", lambda: session.post(f"{base}/api/review-tasks/claim/", headers=api,
                                                                 timeout=60))
        if claimed is None or claimed.status_code != 200:
            time.sleep(0.5)  # the queue is empty or the server refused: wait before asking again
            continue
        task = claimed.json()
        claimed_at = time.monotonic()
        if budget.take():
            timed(log, "page: review", lambda: session.get(f"{base}/review/{task['id']}/", timeout=60))
        if not budget.take():
            log.claims.append((username, task["id"], task["claim_token"], claimed_at, None))
            return
        decided = timed(log, "api: decision", lambda: session.post(
            f"{base}/api/review-tasks/{task['id']}/decision/", headers=api, timeout=60,
            json={"claim_token": task["claim_token"], "label": "ok", "note": "load run"}))
        log.claims.append((username, task["id"], task["claim_token"], claimed_at, time.monotonic()))
        if decided is not None and decided.status_code == 201:
            log.decisions.append((username, task["id"], decided.json()["id"]))


def dashboard_loop(base: str, session: requests.Session, every_s: float, budget: Budget, log: Log) -> None:
    """A lead watching the dashboard while the team works."""
    while budget.take():
        timed(log, "page: dashboard (30 days)", lambda: session.get(f"{base}/dashboard/?days=30", timeout=120))
        time.sleep(every_s)


def upload_loop(base: str, token: str, clips: list[bytes], next_clip, budget: Budget, log: Log) -> None:
    api = {"Authorization": f"Token {token}"}
    while (index := next_clip()) is not None and budget.take():
        response = timed(log, "api: upload", lambda: requests.post(
            f"{base}/api/videos/", headers=api, timeout=120,
            files={"file": (f"clip-{index}.mp4", clips[index], "video/mp4")}, data={"caption": f"clip {index}"}))
        if response is not None and response.status_code in (200, 201):
            log.uploads.append((response.json()["id"], response.status_code == 201))


def clip_dispenser(count: int):
    lock, remaining = threading.Lock(), iter(range(count))

    def next_clip():
        with lock:
            return next(remaining, None)

    return next_clip


def run_load(args, reviewers: list[str], tokens: dict[str, str], uploader_token: str, clips: list[bytes]):
    base = f"http://127.0.0.1:{args.port}"
    log = Log()
    signing_in = time.monotonic()
    sessions = sign_in_all(base, reviewers + [LEAD], log)
    log.sign_in_all_s = time.monotonic() - signing_in
    budget = Budget(deadline=time.monotonic() + args.duration, max_requests=args.max_requests)
    next_clip = clip_dispenser(len(clips))
    threads = [threading.Thread(target=review_loop, args=(base, sessions[name], name, tokens[name], budget, log),
                                daemon=True) for name in reviewers]
    threads += [threading.Thread(target=upload_loop, args=(base, uploader_token, clips, next_clip, budget, log),
                                 daemon=True) for _ in range(args.upload_threads)]
    threads.append(threading.Thread(target=dashboard_loop, args=(base, sessions[LEAD], args.dashboard_every, budget,
                                                                 log), daemon=True))
    started, log.started_wall = time.monotonic(), time.time()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=args.duration + 180)
    log.ended_wall = time.time()
    return log, time.monotonic() - started, budget.sent


# --- checks and report ----------------------------------------------------------------------------


def overlapping_holds(claims: list) -> list:
    """Pairs of different reviewers who held the same task at the same time (by their claim log)."""
    by_task = defaultdict(list)
    for reviewer, task, token, start, end in claims:
        by_task[task].append((start, end if end is not None else float("inf"), reviewer, token))
    found = []
    for task, holds in by_task.items():
        holds.sort()
        for (start_a, end_a, who_a, token_a), (start_b, end_b, who_b, token_b) in zip(holds, holds[1:]):
            if who_a != who_b and start_b < end_a:
                found.append({"task": task, "reviewers": [who_a, who_b], "tokens": [token_a, token_b]})
    return found


def check_database(log: Log) -> dict:
    from django.db.models import Count

    from moderation.models import Review, ReviewTask

    reviewed_twice = list(Review.objects.values("task").annotate(n=Count("id")).filter(n__gt=1)
                          .values_list("task", flat=True))
    answered = {review_id for _, _, review_id in log.decisions}
    stored = set(Review.objects.filter(id__in=answered).values_list("id", flat=True))
    holders = defaultdict(set)
    for reviewer, _, token, _, _ in log.claims:
        holders[token].add(reviewer)
    return {
        "tasks_with_two_reviews": len(reviewed_twice),
        "double_claims": len(overlapping_holds(log.claims)),
        "double_claim_examples": overlapping_holds(log.claims)[:5],
        "claim_tokens_logged": len(holders),
        # A reviewer who asks again gets the task they hold, with its token; two reviewers never should.
        "claim_tokens_shared_between_reviewers": sum(len(reviewers) > 1 for reviewers in holders.values()),
        "decisions_answered_201": len(answered),
        "lost_decisions": len(answered - stored),
        "reviews_in_database": Review.objects.count(),
        "tasks_done": ReviewTask.objects.filter(status=ReviewTask.Status.DONE).count(),
    }


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(q * (len(ordered) - 1))))]


def write_timings(path: Path, log: Log) -> None:
    """Every timed request (seconds since the first, kind, milliseconds, status): when the slow ones
    happened, and beside what."""
    first = min((started for *_, started in log.timings), default=0.0)
    lines = ["started_s,request,ms,status"] + [
        f"{started - first:.3f},{kind},{seconds * 1000:.1f},{status}"
        for kind, seconds, status, started in sorted(log.timings, key=lambda timing: timing[3])]
    path.write_text("\n".join(lines) + "\n")


def latency_table(log: Log) -> dict:
    by_kind = defaultdict(list)
    for kind, seconds, _status, _started in log.timings:
        by_kind[kind].append(seconds * 1000)
    table = {kind: {"requests": len(ms), "p50_ms": round(statistics.median(ms), 1),
                    "p95_ms": round(percentile(ms, 0.95), 1), "max_ms": round(max(ms), 1)}
             for kind, ms in sorted(by_kind.items())}
    floor = table.get(FLOOR)
    for row in table.values():  # how far each request is from what the server costs at all, under this load
        row["p50_x_floor"] = round(row["p50_ms"] / floor["p50_ms"], 2) if floor else None
        row["p95_x_floor"] = round(row["p95_ms"] / floor["p95_ms"], 2) if floor else None
    return table


def extracted_between(started_wall: float, ended_wall: float) -> int:
    """Videos whose extraction finished in the window (their `extracted` event), any worker."""
    from datetime import datetime, timezone as dt_timezone

    from moderation.models import VideoEvent

    return VideoEvent.objects.filter(to_state="extracted", at__gte=datetime.fromtimestamp(started_wall, dt_timezone.utc),
                                     at__lt=datetime.fromtimestamp(ended_wall, dt_timezone.utc)).count()


def processing_states(log: Log) -> dict:
    from moderation.models import Video

    ids = [video_id for video_id, _ in log.uploads]
    return dict(Counter(Video.objects.filter(id__in=ids).values_list("state", flat=True)))


def machine() -> dict:
    return {"python": platform.python_version(), "cpus": os.cpu_count(), "platform": platform.platform(),
            "load_average_1m_after": round(os.getloadavg()[0], 2)}


def write_results(out: Path, command: str, args, result: dict) -> None:
    out.mkdir(parents=True, exist_ok=True)
    (out / "results.json").write_text(json.dumps(result, indent=2) + "\n")
    checks, load = result["checks"], result["load"]
    lines = [
        "# Load run", "", f"Command: `{command}`", "",
        f"Stack on loopback: uvicorn with {args.web_workers} processes, a Celery `cpu` worker with "
        f"{args.cpu_workers} processes and a `gpu` worker, PostgreSQL, Redis; {result['machine']['cpus']} CPUs "
        f"shared by all of it, the load generator and whatever else ran on the machine (1-minute load average "
        f"{result['machine']['load_average_1m_after']} at the end). {args.reviewers} reviewer threads, a lead "
        f"loading the dashboard every {args.dashboard_every:g} s and {args.upload_threads} upload threads for "
        f"{load['wall_s']:.0f} s ({load['requests']} requests) after all reviewers signed in at once "
        f"({load['sign_in_all_s']:.0f} s, not in the timed window); {args.open_tasks} open tasks seeded.", "",
        "The floor is `GET /livez` (middleware and server, no database) under the same load; × floor is each "
        "request's latency divided by the floor's.", "",
        "| request | n | p50 ms | p95 ms | max ms | p50 × floor | p95 × floor |",
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: |",
        *[f"| {kind} | {row['requests']} | {row['p50_ms']} | {row['p95_ms']} | {row['max_ms']} | "
          f"{row['p50_x_floor']} | {row['p95_x_floor']} |" for kind, row in result["latency"].items()], "",
        f"- decisions: {checks['decisions_answered_201']} ({load['decisions_per_s']:.1f}/s)",
        f"- double claims: {checks['double_claims']}; tasks with two reviews: {checks['tasks_with_two_reviews']}; "
        f"claim tokens shared between reviewers: {checks['claim_tokens_shared_between_reviewers']} "
        f"(of {checks['claim_tokens_logged']} logged)",
        f"- lost decisions (201 without a Review row): {checks['lost_decisions']}",
        f"- ingest: {load['uploads_accepted']} of {args.videos} clips accepted ({load['uploads_per_s']:.1f}/s); "
        f"{load['extracted_in_window']} extracted in the window ({load['extracted_per_s']:.2f}/s); processing "
        f"states at the end: {result['processing_states']}",
        f"- errors: {dict(result['errors']) or 'none'}", "",
    ]
    (out / "results.md").write_text("\n".join(lines))


# --- ingest throughput -----------------------------------------------------------------------------


def ingest_only(args, command: str, stack: Stack, uploader_token: str, clips: list[bytes]) -> None:
    """Upload every clip with the workers stopped (untimed), then start them and time the extraction:
    from the first to the last `extracted` event, so worker start-up and model loading are left out."""
    from moderation.models import Video, VideoEvent

    log = Log()
    try:
        stack.start(workers=False)
        base = f"http://127.0.0.1:{args.port}"
        budget = Budget(deadline=time.monotonic() + 3600, max_requests=len(clips))
        upload_loop(base, uploader_token, clips, clip_dispenser(len(clips)), budget, log)
        ids = [video_id for video_id, _ in log.uploads]
        started = time.monotonic()
        stack.start_workers()
        waiting = (Video.State.RECEIVED, Video.State.EXTRACTING)
        while time.monotonic() - started < args.duration and Video.objects.filter(id__in=ids, state__in=waiting).exists():
            time.sleep(1)
        wall_s = time.monotonic() - started
    finally:
        stack.stop()
    times = sorted(VideoEvent.objects.filter(video_id__in=ids, to_state="extracted").values_list("at", flat=True))
    span_s = (times[-1] - times[0]).total_seconds() if len(times) > 1 else None
    result = {"command": command, "machine": machine(), "cpu_workers": args.cpu_workers,
              "clip_kind": "rendered speech and on-screen text" if args.real_clips else "noise", "clips": len(ids),
              "extracted": len(times), "wall_s_from_worker_start": round(wall_s, 1),
              "first_to_last_extracted_s": round(span_s, 1) if span_s else None,
              "extracted_per_s": round((len(times) - 1) / span_s, 3) if span_s else None,
              "states": dict(Counter(Video.objects.filter(id__in=ids).values_list("state", flat=True))),
              "errors": dict(log.errors)}
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / f"ingest-{args.cpu_workers}-cpu-workers.json").write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result, indent=2))


def main() -> None:
    args = parse_args()
    command = shlex.join([".venv/bin/python", "bench/load_run.py", *sys.argv[1:]])
    env = stack_env(args)
    recreate_database(args.database_url)
    subprocess.run([sys.executable, "manage.py", "migrate", "-v", "0"], cwd=REPO, env=env, check=True)
    subprocess.run([str(BIN / "python"), "-c", "import redis,sys; redis.Redis.from_url(sys.argv[1]).flushdb()",
                    args.redis_url], check=True)
    setup_django(env)
    reviewers, uploader_token, tokens = seed(args)
    clips = real_clips(args.videos) if args.real_clips else tiny_clips(args.videos)
    stack = Stack(env, args.port, REPO / "var" / "load_run" / "log", args.web_workers, args.cpu_workers)
    if args.ingest_only:
        ingest_only(args, command, stack, uploader_token, clips)
        return
    try:
        stack.start()
        log, wall_s, sent = run_load(args, reviewers, tokens, uploader_token, clips)
    finally:
        stack.stop()
    checks = check_database(log)
    extracted = extracted_between(log.started_wall, log.ended_wall)
    result = {
        "command": command, "machine": machine(),
        "load": {"sign_in_all_s": round(log.sign_in_all_s, 1), "wall_s": round(wall_s, 1), "requests": sent,
                 "decisions_per_s": round(checks["decisions_answered_201"] / wall_s, 2),
                 "uploads_accepted": len(log.uploads), "uploads_per_s": round(len(log.uploads) / wall_s, 2),
                 "extracted_in_window": extracted,
                 "extracted_per_s": round(extracted / wall_s, 3)},
        "latency": latency_table(log), "checks": checks, "processing_states": processing_states(log),
        "errors": dict(log.errors),
    }
    write_results(args.out, command, args, result)
    write_timings(args.out / "timings.csv", log)
    print(json.dumps({key: result[key] for key in ("load", "checks", "errors")}, indent=2))
    if checks["double_claims"] or checks["lost_decisions"] or checks["tasks_with_two_reviews"]:
        sys.exit(1)


if __name__ == "__main__":
    main()
