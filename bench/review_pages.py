"""Server time of the reviewer workspace on a large PostgreSQL database.

    .venv/bin/python bench/review_pages.py [--videos 100000] [--predictions 1000000] [--requests 200]

Creates its own database (--database-url, default coefvq_bench_review on the local PostgreSQL),
migrates it and, when it holds fewer videos than asked, fills it with COPY: decided videos, each
scored by several baseline and MLLM model versions, and an open review task for each video in the
review band or audit sample. Then it times the queue page, the queue fragment the live page swaps
in, claim next, the review page and the API lists through Django's test client (the whole server
side: middleware, views, queries, templates; no network), counts each request's SQL queries, and
writes results.json and results.md to --out.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import random
import shlex
import statistics
import sys
import time
from dataclasses import asdict, dataclass
from datetime import datetime, timedelta, timezone as dt_timezone
from pathlib import Path
from typing import Callable, Iterable, Iterator, Sequence

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

DEFAULT_DATABASE_URL = "postgres://postgres@127.0.0.1:5432/coefvq_bench_review"
REVIEW_SHARE = 0.10  # of decided videos in the human queue; a fifth of those are audit samples
AUDIT_SHARE = 0.2
MODEL_VERSIONS_PER_STAGE = 5  # re-scoring by newer versions is what gives a video many predictions
COPY_BATCH = 20_000


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--database-url", default=DEFAULT_DATABASE_URL)
    parser.add_argument("--videos", type=int, default=100_000)
    parser.add_argument("--predictions", type=int, default=1_000_000)
    parser.add_argument("--requests", type=int, default=200, help="timed requests per page")
    parser.add_argument("--out", type=Path, default=REPO / "bench" / "results" / "review_pages")
    parser.add_argument("--seed", type=int, default=0)
    return parser.parse_args()


def setup_django(database_url: str) -> None:
    """Point the product at the benchmark database, with the embedded channel layer (claims publish
    to it, as they would to Redis, without needing a server)."""
    os.environ["DATABASE_URL"] = database_url
    os.environ.pop("REDIS_URL", None)
    os.environ.setdefault("COEFVQ_VAR_DIR", str(REPO / "var" / "bench_review"))
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "coefvq_site.settings")
    import django

    django.setup()


def create_database(database_url: str) -> None:
    import psycopg
    from psycopg import sql

    name = database_url.rsplit("/", 1)[1]
    server = database_url.rsplit("/", 1)[0] + "/postgres"
    with psycopg.connect(server, autocommit=True) as conn:
        if conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", [name]).fetchone() is None:
            conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))


# --- filling ------------------------------------------------------------------------------------


def copy_rows(model, rows: Iterable[dict], total: int) -> None:
    """COPY rows (attribute name -> value, ids included) into the model's table. A field a row
    leaves out gets the model's default, so a field added later needs no change here."""
    from django.db import connection
    from django.db.models import JSONField
    from psycopg.types.json import Jsonb
    from tqdm import tqdm

    fields = model._meta.concrete_fields
    now = datetime.now(dt_timezone.utc)
    defaults = {f.attname: now if getattr(f, "auto_now", False) or getattr(f, "auto_now_add", False)
                else f.get_default() for f in fields}
    as_json = [isinstance(f, JSONField) for f in fields]
    columns = ", ".join(connection.ops.quote_name(f.column) for f in fields)
    statement = f"COPY {connection.ops.quote_name(model._meta.db_table)} ({columns}) FROM STDIN"
    with connection.cursor() as cursor, cursor.cursor.copy(statement) as copy:
        for row in tqdm(rows, total=total, desc=model.__name__, unit="row", mininterval=2):
            values = (row.get(f.attname, defaults[f.attname]) for f in fields)
            copy.write_row([Jsonb(v) if json else v for v, json in zip(values, as_json)])


def reset_sequences(*models) -> None:
    from django.core.management.color import no_style
    from django.db import connection

    with connection.cursor() as cursor:
        for statement in connection.ops.sequence_reset_sql(no_style(), list(models)):
            cursor.execute(statement)


def next_id(model) -> int:
    from django.db.models import Max

    return (model.objects.aggregate(last=Max("pk"))["last"] or 0) + 1


def copy_tables(tables: Sequence[tuple[type, Iterable[dict], int]]) -> dict[str, float]:
    """COPY each (model, rows, total) in one transaction, so that a fill stopped half way leaves
    nothing behind, then move the models' id sequences past the ids the rows brought and ANALYZE, so
    that the planner sees the new sizes. Returns the seconds each table and the ANALYZE took."""
    from django.db import connection, transaction

    seconds = {}
    with transaction.atomic():
        for model, rows, total in tables:
            began = time.perf_counter()
            copy_rows(model, rows, total)
            seconds[model.__name__] = round(time.perf_counter() - began, 1)
        reset_sequences(*(model for model, _, _ in tables))
    began = time.perf_counter()
    with connection.cursor() as cursor:
        cursor.execute("ANALYZE")
    seconds["analyze"] = round(time.perf_counter() - began, 1)
    return seconds


@dataclass(frozen=True)
class Scored:
    """What the cascade made of one synthetic video."""

    label: str
    p_violation: float
    probabilities: dict[str, float]
    reason: str  # "" (decided automatically), "review_band" or "audit"


def score_video(rng: random.Random, policy) -> Scored:
    weights = [rng.gammavariate(0.6, 1.0) for _ in policy.labels]
    total = sum(weights)
    probabilities = {label: round(w / total, 4) for label, w in zip(policy.labels, weights)}
    p_violation = sum(probabilities[label] for label in policy.violating_labels)
    label = max(probabilities, key=probabilities.get)
    draw = rng.random()
    reason = "" if draw >= REVIEW_SHARE else ("audit" if draw < REVIEW_SHARE * AUDIT_SHARE else "review_band")
    return Scored(label, p_violation, probabilities, reason)


def entropy(probabilities: dict[str, float]) -> float:
    return max(0.0, -sum(p * math.log(p) for p in probabilities.values() if p > 0))


def video_row(rng: random.Random, vid: int, policy, scored: Scored, arrived: datetime, **fields) -> dict:
    """A decided video's row as it arrived; `fields` are what a benchmark decides (who decided, how).
    Draws its size from `rng`."""
    from moderation.models import Video

    return dict(
        id=vid, policy_id=policy.pk, file=f"videos/bench/{vid}.mp4", original_filename=f"clip-{vid}.mp4",
        extension=".mp4", sha256=f"{vid:064x}", size_bytes=rng.randint(200_000, 50_000_000),
        title=f"Benchmark clip {vid}", caption="a benchmark caption", source="api",
        state=Video.State.DECIDED, state_changed_at=arrived, final_label=scored.label,
        needs_review=bool(scored.reason), created_at=arrived, updated_at=arrived, **fields,
    )


def prediction_row(rng: random.Random, pid: int, vid: int, version, scored: Scored, nats: float, arrived: datetime,
                   **fields) -> dict:
    """One model version's prediction of a video, with the video's scores; draws its compute time."""
    return dict(
        id=pid, video_id=vid, stage=version.kind, model_version_id=version.pk, probabilities=scored.probabilities,
        label=scored.label, entropy=nats, compute_ms=rng.uniform(5, 900), created_at=arrived, **fields,
    )


def model_versions(policy):
    from moderation.models import ModelVersion

    versions = []
    for kind in (ModelVersion.Kind.BASELINE, ModelVersion.Kind.MLLM):
        for n in range(1, MODEL_VERSIONS_PER_STAGE + 1):
            version, _ = ModelVersion.objects.get_or_create(
                policy=policy, kind=kind, version=f"bench-{kind}-{n}",
                defaults={"artifact_path": f"/bench/{kind}/{n}", "config": {}, "metrics": {}})
            versions.append(version)
    return versions


def fill(videos: int, predictions: int, seed: int, add_videos: Callable[..., dict]) -> dict:
    """Have `add_videos(policy, versions, per_video, count, rng)` add the videos missing to `videos`
    (a database already that size is used as it is); returns what was added, with what it returned."""
    from moderation.models import Policy, Video

    have = Video.objects.count()
    if have >= videos:
        return {"filled": False, "videos_before": have}
    policy = Policy.objects.get(slug="icd")
    versions = model_versions(policy)
    per_video = max(1, min(len(versions), predictions // videos))
    count = videos - have
    return {"filled": True, "videos_before": have, "added_videos": count, "predictions_per_video": per_video,
            **add_videos(policy, versions, per_video, count, random.Random(seed + have))}


def add_videos(policy, versions: list, per_video: int, count: int, rng: random.Random) -> dict:
    """`count` decided videos over the last 30 days, each with `per_video` predictions, and an open
    review task for each in the review band or audit sample; returns how long each table took."""
    from django.conf import settings

    from moderation.actions.review_queue import review_priority
    from moderation.models import Prediction, ReviewTask, Video

    first_video = next_id(Video)
    start = datetime.now(dt_timezone.utc) - timedelta(days=30)
    scored = [score_video(rng, policy) for _ in range(count)]
    arrived = [start + timedelta(seconds=30 * 24 * 3600 * i / count) for i in range(count)]

    def video_rows() -> Iterator[dict]:
        for i, s in enumerate(scored):
            row = video_row(rng, first_video + i, policy, s, arrived[i], decided_by="mllm" if s.reason else "baseline",
                            decision=Video.Decision.HUMAN_REVIEW if s.reason else Video.Decision.AUTO_ALLOW)
            # Captions of varied length, as the review page shows them; drawn after the size, so that a
            # seed still gives the same videos.
            yield {**row, "caption": "a benchmark caption " * rng.randint(1, 8)}

    # Ids are read before any COPY starts: the connection runs nothing else during one.
    first_prediction, first_task = next_id(Prediction), next_id(ReviewTask)

    def prediction_rows() -> Iterator[dict]:
        pid = first_prediction
        for i, s in enumerate(scored):
            nats = entropy(s.probabilities)
            for version in versions[:per_video]:
                yield prediction_row(rng, pid, first_video + i, version, s, nats, arrived[i],
                                     rationale={"label": s.label, "spans": []},
                                     modality_contributions={"caption": 0.1, "speech": 0.2})
                pid += 1

    def task_rows() -> Iterator[dict]:
        tid = first_task
        for i, s in enumerate(scored):
            if not s.reason:
                continue
            priority = review_priority(policy, s.probabilities, s.p_violation, s.reason)
            yield dict(
                id=tid, video_id=first_video + i, policy_id=policy.pk, reason=s.reason, priority=priority,
                due_at=arrived[i] - timedelta(hours=settings.COEFVQ_REVIEW_PRIORITY_HEADSTART_H * priority), model_label=s.label,
                p_violation=s.p_violation, created_at=arrived[i],
            )
            tid += 1

    return {"seconds": copy_tables([(Video, video_rows(), count), (Prediction, prediction_rows(), count * per_video),
                                    (ReviewTask, task_rows(), sum(1 for s in scored if s.reason))])}


# --- measuring ----------------------------------------------------------------------------------


@dataclass
class Timing:
    name: str
    request: str
    requests: int
    p50_ms: float
    p95_ms: float
    mean_ms: float
    queries: int  # per request, the most any request made
    status: int


def timed(name: str, request: str, calls: list[Callable], warm_up: Callable | None = None) -> Timing:
    """Time each call (one returns a response) after an untimed warm-up call: template loading,
    the first query plans."""
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    (warm_up or calls[0])()
    times, queries, statuses = [], [], set()
    for call in calls:
        with CaptureQueriesContext(connection) as captured:
            began = time.perf_counter()
            response = call()
            times.append((time.perf_counter() - began) * 1000)
        queries.append(len(captured.captured_queries))
        statuses.add(response.status_code)
    if len(statuses) != 1:
        raise RuntimeError(f"{name}: mixed statuses {statuses}")
    times.sort()
    return Timing(name, request, len(times), round(statistics.median(times), 2),
                  round(times[min(len(times) - 1, math.ceil(0.95 * len(times)) - 1)], 2),
                  round(statistics.fmean(times), 2), max(queries), statuses.pop())


def client_for(user):
    from django.test import Client

    client = Client(HTTP_HOST="localhost")
    client.force_login(user)
    return client


def reviewers(count: int, prefix: str = "bench-reviewer") -> list:
    """`count` users in the reviewer group, named prefix-0, prefix-1, ...: made once, reused by later runs."""
    from django.contrib.auth.models import Group, User

    group = Group.objects.get(name="reviewer")
    users = []
    for i in range(count):
        user, created = User.objects.get_or_create(username=f"{prefix}-{i}")
        if created:
            user.groups.add(group)
        users.append(user)
    return users


def free_all_claims() -> None:
    """Start every run from a queue nobody holds anything in (a previous run left claims)."""
    from moderation.models import ReviewTask

    ReviewTask.objects.filter(status=ReviewTask.Status.OPEN, claimed_by__isnull=False).update(
        claimed_by=None, claimed_at=None, claim_expires_at=None, claim_token=None)


def measure(requests: int) -> list[Timing]:
    from django.urls import reverse

    free_all_claims()
    users = reviewers(requests + 1)
    clients = [client_for(user) for user in users]
    first = clients[0]
    deep_page = 100
    results = [
        timed("queue page", "GET /queue/", [lambda: first.get("/queue/")] * requests),
        timed("queue page, page 100", f"GET /queue/?page={deep_page}",
              [lambda: first.get(f"/queue/?page={deep_page}")] * requests),
        timed("queue fragment", "GET /queue/?fragment=1", [lambda: first.get("/queue/?fragment=1")] * requests),
    ]
    # Each reviewer claims once (the first makes the warm-up claim), then opens the item it got.
    claim_url = reverse("claim-next")
    locations: dict[int, str] = {}

    def claim(index: int):
        response = clients[index].post(claim_url)
        locations[index] = response["Location"]
        return response

    def review_page(index: int):
        return clients[index].get(locations[index])

    others = range(1, requests + 1)
    results.append(timed("claim next", f"POST {claim_url}", [lambda i=i: claim(i) for i in others],
                         warm_up=lambda: claim(0)))
    results.append(timed("review page", "GET /review/<id>/ (as the claim holder)",
                         [lambda i=i: review_page(i) for i in others], warm_up=lambda: review_page(0)))
    results += [
        timed("API review tasks", "GET /api/review-tasks/", [lambda: first.get("/api/review-tasks/")] * requests),
        timed("API videos", "GET /api/videos/", [lambda: first.get("/api/videos/")] * requests),
    ]
    return results


# --- report -------------------------------------------------------------------------------------


def database_size() -> dict:
    from django.db import connection

    from moderation.models import Prediction, ReviewTask, Video

    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_size_pretty(pg_database_size(current_database()))")
        size = cursor.fetchone()[0]
    return {"videos": Video.objects.count(), "predictions": Prediction.objects.count(),
            "open_review_tasks": ReviewTask.objects.filter(status="open").count(), "database_size": size}


def machine() -> dict:
    import django
    from django.db import connection

    return {"python": platform.python_version(), "django": django.get_version(),
            "postgresql": f"{connection.pg_version // 10000}.{connection.pg_version % 10000}", "cpus": os.cpu_count(), "platform": platform.platform(),
            # The machine may be shared: the load says how much else was running.
            "load_average_1m": round(os.getloadavg()[0], 2)}


def code_version() -> dict:
    """The commit measured, and the files that differed from it (other work in the same tree)."""
    import subprocess

    def git(*args: str) -> str:
        return subprocess.run(["git", *args], cwd=REPO, capture_output=True, text=True).stdout

    own_results = Path(__file__).resolve().parent / "results" / "review_pages"
    changed = [line[3:] for line in git("status", "--porcelain", "--untracked-files=no").splitlines()
               if not (REPO / line[3:]).resolve().is_relative_to(own_results)]
    return {"commit": git("rev-parse", "--short", "HEAD").strip(), "uncommitted_changes": changed}


def earlier_fill(out: Path, fill_report: dict) -> dict:
    """A run on an already filled database reports the fill of the run that made it."""
    previous = out / "results.json"
    if fill_report.get("filled") or not previous.exists():
        return fill_report
    return {**json.loads(previous.read_text()).get("fill", {}), "from_an_earlier_run": True}


def write_results(out: Path, command: str, data: dict, fill_report: dict, timings: list[Timing]) -> None:
    out.mkdir(parents=True, exist_ok=True)
    report = {"command": command, "measured_at": datetime.now(dt_timezone.utc).isoformat(timespec="seconds"),
              "machine": machine(), "code": code_version(), "data": data, "fill": earlier_fill(out, fill_report),
              "timings": [asdict(t) for t in timings]}
    (out / "results.json").write_text(json.dumps(report, indent=2) + "\n")
    lines = [
        "# Reviewer workspace: server time on a large database",
        "",
        f"Command: `{command}`",
        "",
        f"Data: {data['videos']:,} videos, {data['predictions']:,} predictions, "
        f"{data['open_review_tasks']:,} open review tasks; database {data['database_size']}. "
        f"PostgreSQL {report['machine']['postgresql']}, {report['machine']['cpus']} CPUs, measured "
        f"{report['measured_at']} (1-minute load average {report['machine']['load_average_1m']} at the end: "
        "the machine was shared with other work, so compare runs on a quiet machine).",
        "",
        "Django test client in one process: middleware, view, queries and template rendering, no network. "
        "Each request once after an untimed warm-up; claim next is one claim by each of "
        f"{timings[0].requests} different reviewers, the review page is each of them opening the item they got.",
        "",
        "| request | | n | p50 ms | p95 ms | mean ms | queries | status |",
        "| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    lines += [f"| {t.name} | `{t.request}` | {t.requests} | {t.p50_ms} | {t.p95_ms} | {t.mean_ms} | {t.queries} | "
              f"{t.status} |" for t in timings]
    fill_seconds = report["fill"].get("seconds")
    if fill_seconds:
        lines += ["", f"Fill (seconds per table, COPY, then ANALYZE): {fill_seconds}"
                  + (" (the run that filled this database)." if report["fill"].get("from_an_earlier_run") else ".")]
    code = report["code"]
    lines += ["", f"Code: commit {code['commit']}" + (f", with uncommitted changes to {', '.join(code['uncommitted_changes'])}."
                                                      if code["uncommitted_changes"] else ".")]
    (out / "results.md").write_text("\n".join(lines) + "\n")


def main() -> None:
    args = parse_args()
    command = ".venv/bin/python bench/review_pages.py " + shlex.join(sys.argv[1:])
    create_database(args.database_url)
    setup_django(args.database_url)
    from django.core.management import call_command

    call_command("migrate", verbosity=0)
    fill_report = fill(args.videos, args.predictions, args.seed, add_videos)
    print(json.dumps(fill_report))
    timings = measure(args.requests)
    data = database_size()
    write_results(args.out, command.strip(), data, fill_report, timings)
    for t in timings:
        print(f"{t.name:22s} p50 {t.p50_ms:8.2f} ms  p95 {t.p95_ms:8.2f} ms  queries {t.queries}")


if __name__ == "__main__":
    main()
