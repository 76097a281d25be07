"""Server time of the leads' dashboard on a large PostgreSQL database, per window.

    .venv/bin/python bench/dashboard.py [--videos 100000] [--predictions 1000000] [--requests 20]
                                        [--cold-requests 5] [--days 1 30 90]

Creates its own database (--database-url, default coefvq_bench_dashboard on the local PostgreSQL),
migrates it and, when it holds fewer videos than asked, fills it with COPY: decided videos spread
over the last 90 days, each scored by several baseline and MLLM versions (--predictions in all),
a routing decision per video under one budget configuration, and for a tenth of them a review
task, done and reviewed by one of 20 reviewers unless it arrived in the last hour. Then it times
GET /dashboard/?days=N through Django's test client (the whole server side: middleware, view,
queries, the SVG charts, the template; no network), each window --requests times after an untimed
warm-up, three ways: *first load* (the cache emptied before each request: everything computed
and drawn), *warm* (nothing changed since the last load), *in service* (before each load a video
arrives, is scored and routed, and a reviewer closes a task, as in a working day, with the analyses
kept from the scheduled refresh) and *charts drawn on each load* (the same, with every chart whose
numbers moved drawn on the load, as if the refresh had not drawn it). It also times that refresh (`refresh_dashboards`, all windows)
and each part of `dashboard.build` once, and writes results.json and results.md to --out.

--videos 10000 --predictions 100000 is a quick run (a minute to fill); the full size takes a few
minutes to fill on two cores and is kept for later runs (a database already that size is reused).
"""

from __future__ import annotations

import argparse
import json
import math
import random
import shlex
import statistics
import sys
import time
from contextlib import nullcontext
from datetime import datetime, timedelta, timezone as dt_timezone
from pathlib import Path
from typing import Iterator

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from bench.review_pages import (code_version, copy_tables, create_database, database_size, entropy, fill,  # noqa: E402
                                machine, next_id, prediction_row, reviewers, score_video, setup_django, video_row)

DEFAULT_DATABASE_URL = "postgres://postgres@127.0.0.1:5432/coefvq_bench_dashboard"
SPAN_DAYS = 90
REVIEWERS = 20
BUDGET = 0.2
TARGET_P95_MS = 500


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--database-url", default=DEFAULT_DATABASE_URL)
    parser.add_argument("--videos", type=int, default=100_000)
    parser.add_argument("--predictions", type=int, default=1_000_000)
    parser.add_argument("--requests", type=int, default=20, help="timed requests per window, warm cache")
    parser.add_argument("--cold-requests", type=int, default=5, help="timed requests per window, cache emptied")
    parser.add_argument("--days", type=int, nargs="+", default=[1, 30, 90])
    parser.add_argument("--out", type=Path, default=REPO / "bench" / "results" / "dashboard")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--during", default="", help="what else ran on the machine, for the report (e.g. the load run)")
    return parser.parse_args()


# --- filling ------------------------------------------------------------------------------------


def bench_config(policy, versions):
    from moderation.models import CascadeConfig

    baseline = next(v for v in versions if v.kind == "baseline")
    mllm = next(v for v in versions if v.kind == "mllm")
    config = CascadeConfig.objects.filter(policy=policy, is_active=True).first()
    if config is None or config.mllm_budget != BUDGET:
        CascadeConfig.objects.filter(policy=policy, is_active=True).update(is_active=False)
        version = (CascadeConfig.objects.filter(policy=policy).order_by("-version").values_list("version", flat=True)
                   .first() or 0) + 1
        config = CascadeConfig.objects.create(policy=policy, version=version, mllm_budget=BUDGET,
                                              baseline_version=baseline, mllm_version=mllm, is_active=True,
                                              change_note="bench/dashboard.py")
    return config


def add_videos(policy, versions: list, per_video: int, count: int, rng: random.Random) -> dict:
    """`count` decided videos over the last SPAN_DAYS, each with `per_video` predictions and a routing
    decision, and the review tasks and reviews of those in the review band or audit sample; returns
    how many reviews and how long each table took."""
    from django.conf import settings

    from moderation.actions.review_queue import review_priority
    from moderation.models import Prediction, Review, ReviewTask, RoutingDecision, Video

    config = bench_config(policy, versions)
    team = reviewers(REVIEWERS, "bench-dashboard-reviewer")
    now = datetime.now(dt_timezone.utc)
    start = now - timedelta(days=SPAN_DAYS)
    scored = [score_video(rng, policy) for _ in range(count)]
    arrived = [start + timedelta(seconds=SPAN_DAYS * 24 * 3600 * (i + 0.5) / count) for i in range(count)]
    entropies = [entropy(s.probabilities) for s in scored]
    # The router's threshold: the entropy above which BUDGET of the videos lie.
    threshold = sorted(entropies)[int(len(entropies) * (1 - BUDGET))]
    first_video, first_prediction = next_id(Video), next_id(Prediction)
    first_routing, first_task, first_review = next_id(RoutingDecision), next_id(ReviewTask), next_id(Review)

    def video_rows() -> Iterator[dict]:
        for i, s in enumerate(scored):
            yield video_row(rng, first_video + i, policy, s, arrived[i],
                            decided_by="mllm" if entropies[i] >= threshold else "baseline",
                            decision=(Video.Decision.HUMAN_REVIEW if s.reason == "review_band" else
                                      Video.Decision.AUTO_ACTION if s.p_violation > 0.9 else Video.Decision.AUTO_ALLOW))

    def prediction_rows() -> Iterator[dict]:
        pid = first_prediction
        for i, s in enumerate(scored):
            for version in versions[:per_video]:
                yield prediction_row(rng, pid, first_video + i, version, s, entropies[i], arrived[i],
                                     cascade_config_id=config.pk)
                pid += 1

    def routing_rows() -> Iterator[dict]:
        # versions[0] is a baseline: each video's first prediction is the one routed on.
        for i in range(count):
            yield dict(id=first_routing + i, video_id=first_video + i, baseline_prediction_id=first_prediction
                       + i * per_video, cascade_config_id=config.pk, entropy=entropies[i], threshold=threshold,
                       routed_to_mllm=entropies[i] >= threshold, forced_route="", created_at=arrived[i])

    in_review = [i for i, s in enumerate(scored) if s.reason]
    done_before = now - timedelta(hours=1)
    waited = {i: timedelta(minutes=rng.uniform(2, 240)) for i in in_review}
    reviewed = [i for i in in_review if arrived[i] + waited[i] < done_before]

    def task_rows() -> Iterator[dict]:
        for n, i in enumerate(in_review):
            s = scored[i]
            done = arrived[i] + waited[i] < done_before
            priority = review_priority(policy, s.probabilities, s.p_violation, s.reason)
            yield dict(
                id=first_task + n, video_id=first_video + i, policy_id=policy.pk, reason=s.reason,
                status=ReviewTask.Status.DONE if done else ReviewTask.Status.OPEN, priority=priority,
                due_at=arrived[i] - timedelta(hours=settings.COEFVQ_REVIEW_PRIORITY_HEADSTART_H * priority),
                model_label=s.label, p_violation=s.p_violation, created_at=arrived[i],
                completed_at=arrived[i] + waited[i] if done else None,
            )

    task_id = {i: first_task + n for n, i in enumerate(in_review)}

    def review_rows() -> Iterator[dict]:
        for n, i in enumerate(reviewed):
            s = scored[i]
            label = s.label if rng.random() < 0.8 else rng.choice(policy.labels)
            yield dict(
                id=first_review + n, task_id=task_id[i], video_id=first_video + i,
                reviewer_id=team[n % REVIEWERS].pk, label=label, note="", model_label=s.label,
                model_decided_by="mllm" if entropies[i] >= threshold else "baseline",
                disagrees_with_model=label != s.label, seconds_spent=rng.uniform(5, 120),
                created_at=arrived[i] + waited[i],
            )

    seconds = copy_tables([(Video, video_rows(), count), (Prediction, prediction_rows(), count * per_video),
                           (RoutingDecision, routing_rows(), count), (ReviewTask, task_rows(), len(in_review)),
                           (Review, review_rows(), len(reviewed))])
    return {"reviews": len(reviewed), "seconds": seconds}


# --- measuring ----------------------------------------------------------------------------------


def lead_client():
    from django.contrib.auth.models import Group, User
    from django.test import Client

    lead, created = User.objects.get_or_create(username="bench-dashboard-lead")
    if created:
        lead.groups.add(Group.objects.get(name="lead"))
    client = Client(HTTP_HOST="localhost")
    client.force_login(lead)
    return client


def percentile(ordered: list[float], q: float) -> float:
    return ordered[min(len(ordered) - 1, math.ceil(q * len(ordered)) - 1)]


MODES = ("first load", "warm", "in service", "charts drawn on each load")


def arrive_and_review(rng: random.Random) -> None:
    """What lands between two loads of a working day: a video uploaded, scored and routed now, and
    a reviewer's decision on the oldest open task."""
    from django.utils import timezone

    from moderation.models import (CascadeConfig, ModelVersion, Policy, Prediction, Review, ReviewTask,
                                   RoutingDecision, Video)

    policy = Policy.objects.get(slug="icd")
    config = CascadeConfig.objects.get(policy=policy, is_active=True)
    now, scored = timezone.now(), score_video(rng, policy)
    nats = entropy(scored.probabilities)
    video = Video.objects.create(**video_row(rng, next_id(Video), policy, scored, now, decided_by="baseline",
                                             decision=Video.Decision.AUTO_ALLOW))
    version = ModelVersion.objects.filter(policy=policy, kind="baseline").order_by("pk").first()
    prediction = Prediction.objects.create(**prediction_row(rng, next_id(Prediction), video.pk, version, scored, nats,
                                                            now, cascade_config_id=config.pk))
    RoutingDecision.objects.create(video=video, baseline_prediction=prediction, cascade_config=config, entropy=nats,
                                   threshold=1.0, routed_to_mllm=False)
    task = ReviewTask.objects.filter(policy=policy, status="open").order_by("due_at").first()
    if task is not None:
        ReviewTask.objects.filter(pk=task.pk).update(status="done", completed_at=now)
        reviewer = Review.objects.order_by("-pk").values_list("reviewer_id", flat=True).first()
        Review.objects.create(task=task, video_id=task.video_id, reviewer_id=reviewer, label=task.model_label,
                              model_label=task.model_label, model_decided_by="baseline", disagrees_with_model=False,
                              seconds_spent=rng.uniform(5, 120))


def time_page(client, days: int, requests: int, mode: str, rng: random.Random) -> dict:
    """`mode` (MODES): "first load" empties the cache before each request, so everything is
    computed and drawn; "warm" changes nothing between loads; "in service" has a video arrive and a
    review land before each (not timed), so the live counts change and the charts that show them
    and quality, the trade-off and the charts come from the scheduled refresh; "charts drawn on each
    load" is that with COEFVQ_DASHBOARD_CHART_S=0, so every chart whose numbers moved is drawn on the
    load (what the page costs without the refresh drawing them)."""
    from django.core.cache import cache
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    from django.test.utils import override_settings

    url = f"/dashboard/?days={days}"
    assert client.get(url).status_code == 200  # warm-up: templates, fonts, query plans
    times, queries = [], 0
    # As if the scheduled refresh never drew: every chart whose numbers moved is drawn on the load.
    drawing = override_settings(COEFVQ_DASHBOARD_CHART_S=0) if mode == "charts drawn on each load" else nullcontext()
    for _ in range(requests):
        if mode == "first load":
            cache.clear()
        elif mode != "warm":
            arrive_and_review(rng)
        with drawing, CaptureQueriesContext(connection) as captured:
            began = time.perf_counter()
            response = client.get(url)
            times.append((time.perf_counter() - began) * 1000)
        assert response.status_code == 200, response.status_code
        queries = max(queries, len(captured.captured_queries))
    times.sort()
    return {"days": days, "cache": mode, "request": f"GET {url}", "requests": requests,
            "p50_ms": round(statistics.median(times), 1), "p95_ms": round(percentile(times, 0.95), 1),
            "max_ms": round(times[-1], 1), "mean_ms": round(statistics.fmean(times), 1), "queries": queries}


def time_refresh() -> float:
    """Seconds of one run of the scheduled refresh (every policy, every window), on a cold cache."""
    from django.core.cache import cache

    from moderation import dashboard_cache

    cache.clear()
    began = time.perf_counter()
    dashboard_cache.refresh_all()
    return round(time.perf_counter() - began, 2)


def time_parts(days: int) -> dict[str, float]:
    """Milliseconds of each part of `dashboard.build` and of the charts, once, for this window."""
    from moderation import dashboard, dashboard_charts
    from moderation.models import Policy

    policy = Policy.objects.get(slug="icd")
    window = dashboard.Window.last_days(days)
    config = dashboard.active_config(policy)
    parts, results = {}, {}

    def part(name, call):
        began = time.perf_counter()
        results[name] = call()
        parts[name] = round((time.perf_counter() - began) * 1000, 1)

    part("labeled_videos", lambda: dashboard.labeled_videos(policy, window))
    labeled = results["labeled_videos"]
    part("volume", lambda: dashboard.volume(policy, window))
    part("queue_now", lambda: dashboard.queue_now(policy, window))
    part("queue_over_time", lambda: dashboard.queue_over_time(policy, window))
    part("reviewer_throughput", lambda: dashboard.reviewer_throughput(policy, window))
    part("agreement_by_stage", lambda: dashboard.agreement_by_stage(policy, window))
    part("quality_over_time", lambda: dashboard.quality_over_time(policy, window, labeled))
    part("entropy_histogram", lambda: dashboard.entropy_histogram(policy, window, config))
    part("budget_tradeoff", lambda: dashboard.budget_tradeoff(policy, labeled))
    part("confusion", lambda: dashboard.confusion(policy, window))
    part("audit_estimates", lambda: dashboard.audit_estimates(policy, window))
    part("gate_results", lambda: dashboard.gate_results(policy))
    data = dashboard.build(policy, window)
    part("charts", lambda: dashboard_charts.render_all(data))
    return parts


# --- report -------------------------------------------------------------------------------------


def write_results(out: Path, command: str, data: dict, fill_report: dict, pages: list[dict], parts: dict,
                  refresh_s: float, refresh_windows: tuple, during: str) -> None:
    out.mkdir(parents=True, exist_ok=True)
    report = {"command": command, "measured_at": datetime.now(dt_timezone.utc).isoformat(timespec="seconds"),
              "machine": machine(), "code": code_version(), "data": data, "fill": fill_report,
              "target_p95_ms": TARGET_P95_MS, "during": during, "refresh_s": refresh_s, "pages": pages,
              "parts_ms": parts}
    (out / "results.json").write_text(json.dumps(report, indent=2) + "\n")
    lines = [
        "# Leads' dashboard: server time on a large database", "",
        f"Command: `{command}`", "",
        f"Data: {data['videos']:,} videos over {SPAN_DAYS} days, {data['predictions']:,} predictions, "
        f"{data['reviews']:,} reviews, {data['open_review_tasks']:,} open review tasks; database "
        f"{data['database_size']}. PostgreSQL {report['machine']['postgresql']}, {report['machine']['cpus']} CPUs, "
        f"measured {report['measured_at']} (1-minute load average {report['machine']['load_average_1m']} at the end)"
        + (f", while {during}." if during else "."), "",
        "Django test client in one process (middleware, view, queries, SVG charts, template; no network), each "
        "window once untimed, then timed. *first load*: the cache emptied before every request, so quality, the "
        "budget trade-off, the daily aggregates and all nine charts are computed on each (the first load after an "
        "install or a cache flush); *warm*: nothing changed since the last load; *in service*: before each load a "
        "video arrives and is routed and a reviewer closes a task (not timed), so the live counts change, while "
        "quality, the trade-off and the charts come from the scheduled refresh (`moderation.tasks.refresh_dashboards`, "
        "every `COEFVQ_DASHBOARD_REFRESH_S`); *charts drawn on each load*: the same with "
        "`COEFVQ_DASHBOARD_CHART_S=0`, so every chart whose numbers moved is drawn on the load (the cost the refresh "
        "takes off a lead's load).", "",
        f"The scheduled refresh itself (all policies, the {len(refresh_windows)} windows, cold cache): "
        f"**{refresh_s} s** per run, on the `cpu` worker.", "",
        f"| window | load | n | p50 ms | p95 ms | max ms | queries | p95 under {TARGET_P95_MS} ms |",
        "| --- | --- | ---: | ---: | ---: | ---: | ---: | --- |",
        *[f"| {p['days']} d | {p['cache']} | {p['requests']} | {p['p50_ms']} | {p['p95_ms']} | {p['max_ms']} | "
          f"{p['queries']} | {'yes' if p['p95_ms'] < TARGET_P95_MS else 'no'} |" for p in pages], "",
        "Each part of `dashboard.build` and the charts, timed once (ms):", "",
        "| part | " + " | ".join(f"{days} d" for days in parts) + " |",
        "| --- | " + " | ".join("---:" for _ in parts) + " |",
    ]
    names = list(next(iter(parts.values())))
    lines += [f"| {name} | " + " | ".join(str(parts[days][name]) for days in parts) + " |" for name in names]
    code = report["code"]
    lines += ["", f"Code: commit {code['commit']}" + (f", with uncommitted changes to {', '.join(code['uncommitted_changes'])}."
                                                      if code["uncommitted_changes"] else ".")]
    if fill_report.get("seconds"):
        lines += ["", f"Fill (seconds per table, COPY, then ANALYZE): {fill_report['seconds']}."]
    (out / "results.md").write_text("\n".join(lines) + "\n")


def main() -> None:
    args = parse_args()
    command = shlex.join([".venv/bin/python", "bench/dashboard.py", *sys.argv[1:]])
    create_database(args.database_url)
    setup_django(args.database_url)
    from django.core.management import call_command

    from moderation.models import Review

    call_command("migrate", verbosity=0)
    fill_report = fill(args.videos, args.predictions, args.seed, add_videos)
    print(json.dumps(fill_report))
    from moderation.dashboard import WINDOW_DAYS

    client = lead_client()
    rng = random.Random(args.seed)
    pages = [time_page(client, days, requests, mode, rng) for days in args.days
             for mode, requests in zip(MODES, (args.cold_requests, args.requests, args.requests, args.requests))]
    refresh_s = time_refresh()
    parts = {days: time_parts(days) for days in args.days}
    data = {**database_size(), "reviews": Review.objects.count()}
    write_results(args.out, command, data, fill_report, pages, parts, refresh_s, WINDOW_DAYS, args.during)
    for page in pages:
        print(f"{page['days']:3d} days {page['cache']:18s}  p50 {page['p50_ms']:8.1f} ms  p95 {page['p95_ms']:8.1f} ms  "
              f"queries {page['queries']}")
    print(json.dumps(parts, indent=1))


if __name__ == "__main__":
    main()
