"""The dashboard page without its slow parts on every load, kept in the shared cache.

Measured (bench/dashboard.py, bench/results/dashboard/, 100,000 videos): most of the seconds go
to CPU work: replaying the cascade at each budget and scoring each quality bucket (scikit-learn
metrics over the reviewed videos), and drawing nine SVG charts with matplotlib; the rest to
counting 30 or 90 days of uploads, routing decisions and reviews (a few hundred ms). So:

- The queue now and over time, reviewer throughput (a median, which does not add up over days),
  the entropy histogram and the training gates are read live on every load.
- Counts over days (volume and the MLLM call rate per day, agreement by stage, the confusion
  matrix, the audit estimates) are daily aggregates: each whole day of the window that ended more
  than COEFVQ_DASHBOARD_LIVE_H hours ago is counted once and kept for that long (reviews and routing
  decisions never change once written; a video decided late shows in its upload day's counts
  within COEFVQ_DASHBOARD_LIVE_H); the window's first, partial day and its last hours are counted
  live on every load.
- Quality over time and the budget trade-off, computed from the reviewed videos, are kept per
  policy and window; the page says when they were computed.
- A chart is drawn once per distinct content (its SVG is kept under a hash of the numbers it
  shows); while traffic moves its numbers, by the scheduled refresh below.

A page load computes none of this when it is kept: `refresh_all` (the `refresh_dashboards` task,
every COEFVQ_DASHBOARD_REFRESH_S on the scheduler) recomputes the analyses of every policy and
window when reviews landed since, and draws their charts. A load computes them itself only when
nothing is kept (the first load, the cache emptied) or the refresh is late (the scheduler stopped:
three periods for the analyses, COEFVQ_DASHBOARD_CHART_S for a chart), so the page is never older
than that.
"""

from __future__ import annotations

import hashlib
import time
from collections import defaultdict
from dataclasses import dataclass, replace
from datetime import datetime, timedelta

from django.conf import settings
from django.core.cache import cache
from django.db.models import Count, Max
from django.utils import timezone

from . import dashboard, dashboard_charts
from .models import Policy
from .throttling import CACHE_UNREACHABLE


@dataclass
class Analyses:
    version: tuple  # the reviews they were computed from: (latest id, count) in the window
    computed_at: datetime
    quality: list[dashboard.QualityBucket]
    tradeoff: dashboard.Tradeoff


def _reviews_version(policy: Policy, window: dashboard.Window) -> tuple:
    seen = (dashboard.reviews_in(policy, window)
            .aggregate(latest=Max("id"), n=Count("id")))
    return seen["latest"], seen["n"]


def _analyses(policy: Policy, window: dashboard.Window, refresh: bool = False) -> Analyses:
    """What is kept for this policy and window, recomputed when reviews landed in the window since:
    by the background refresh (`refresh`), or by a page load only when nothing is kept or what is
    kept has outlived three refresh periods."""
    key = f"dashboard:analyses:{policy.pk}:{round(window.days, 3)}"
    kept = _cache_call(cache.get, key)
    now = timezone.now()
    age_s = (now - kept.computed_at).total_seconds() if kept is not None else None
    if kept is not None and not refresh and age_s < 3 * settings.COEFVQ_DASHBOARD_REFRESH_S:
        return kept
    version = _reviews_version(policy, window)
    if kept is not None and kept.version == version:
        return kept
    labeled = dashboard.labeled_videos(policy, window)
    fresh = Analyses(version, now, dashboard.quality_over_time(policy, window, labeled),
                     dashboard.budget_tradeoff(policy, labeled))
    _cache_call(cache.set, key, fresh, timeout=max(settings.COEFVQ_DASHBOARD_REFRESH_S, 60) * 10)
    return fresh


def _cache_call(operation, *args, **kwargs):
    """The cache down (Redis restarting) only makes the page slower: everything is computed."""
    try:
        return operation(*args, **kwargs)
    except CACHE_UNREACHABLE:
        return None


def _daily_rows(policy: Policy, window: dashboard.Window, name: str, rows_for) -> list[dict]:
    """`rows_for(window)` over `window`: its whole days that ended before the live hours from the
    daily aggregates (counted now if missing or older than COEFVQ_DASHBOARD_LIVE_H), the rest
    counted live. `rows_for(window, by_day=True)` gives the same rows with the `day` each belongs
    to, so the missing days are counted in one query, not one each (477 queries for a first 90-day
    load). One cache entry per table and policy holds its days (a file cache culls once it holds
    300 entries, fewer than a few tables of 90 days)."""
    day = timedelta(days=1)
    first_whole = dashboard.floor_to(window.start, "day")
    first_whole += day if first_whole < window.start else timedelta(0)
    live_from = dashboard.floor_to(window.end - timedelta(hours=settings.COEFVQ_DASHBOARD_LIVE_H), "day")
    if live_from <= first_whole:
        return rows_for(window)
    rows = rows_for(dashboard.Window(window.start, first_whole)) + rows_for(dashboard.Window(live_from, window.end))
    key = f"dashboard:days:{name}:{policy.pk}"
    now = time.time()
    keep_s = settings.COEFVQ_DASHBOARD_LIVE_H * 3600
    days = {start: counted for start, counted in (_cache_call(cache.get, key) or {}).items()
            if now - counted[0] < keep_s}  # day start -> (when counted, rows)
    starts = [first_whole + i * day for i in range(round((live_from - first_whole) / day))]
    missing = [start for start in starts if start not in days]
    if missing:
        counted = defaultdict(list)
        for row in rows_for(dashboard.Window(missing[0], missing[-1] + day), by_day=True):
            counted[row.pop("day")].append(row)
        days.update({start: (now, counted.get(start, [])) for start in missing})
        _cache_call(cache.set, key, days, timeout=round(keep_s) or 1)
    return rows + [row for start in starts for row in days[start][1]]


def _summed(rows: list[dict], counts: tuple[str, ...]) -> list[dict]:
    """Rows with the same keys (every field but `counts`) added up: one row per key, as one query
    over the whole window would have counted."""
    total: dict[tuple, dict] = {}
    for row in rows:
        key = tuple(sorted((field, value) for field, value in row.items() if field not in counts))
        into = total.setdefault(key, {**row, **{field: 0 for field in counts}})
        for field in counts:
            into[field] += row[field]
    return list(total.values())


def volume(policy: Policy, window: dashboard.Window) -> list[dashboard.VolumeBucket]:
    if window.bucket != "day":
        return dashboard.volume(policy, window)

    def rows_for(part: dashboard.Window, by_day: bool = False) -> list[dict]:
        rows = dashboard.volume_rows(policy, "day", part)
        return [{**row, "day": row["bucket"]} for row in rows] if by_day else rows

    rows = _daily_rows(policy, window, "volume", rows_for)
    return dashboard.volume_from_rows(window, "day", rows)


def build(policy: Policy, window: dashboard.Window, refresh: bool = False) -> dashboard.Dashboard:
    """`dashboard.build`, from the daily aggregates and the cache where they are current;
    `refresh` recomputes the analyses when reviews landed since they were computed."""
    config = dashboard.active_config(policy)
    analyses = _analyses(policy, window, refresh)

    def daily(name, rows_for, counts):
        return _summed(_daily_rows(policy, window, name,
                                   lambda part, by_day=False: rows_for(policy, part, by_day)), counts)

    return dashboard.Dashboard(
        policy=policy, window=window, config=config, volume=volume(policy, window),
        queue=dashboard.queue_now(policy, window), queue_over_time=dashboard.queue_over_time(policy, window),
        reviewers=dashboard.reviewer_throughput(policy, window),
        agreement=dashboard.agreement_from_rows(daily("agreement", dashboard.agreement_rows, ("reviews", "agreeing"))),
        reviewer_agreement=dashboard.reviewer_agreement(policy, window),  # second reviews are few: counted live
        quality=analyses.quality, entropy=dashboard.entropy_histogram(policy, window, config),
        tradeoff=analyses.tradeoff,
        confusion=dashboard.confusion_from_rows(policy, daily("confusion", dashboard.confusion_rows, ("count",))),
        audit=dashboard.audit_from_rows(daily("audit", dashboard.audit_rows, ("audited", "errors"))),
        retraining=dashboard.gate_results(policy), analysed_at=analyses.computed_at,
    )


def refresh_all() -> int:
    """Recompute what a page load would find out of date, for every policy and window, and draw
    its charts, so that leads' loads only count the live hours. Returns the pages refreshed."""
    pages = 0
    for policy in Policy.objects.order_by("pk"):
        for days in dashboard.WINDOW_DAYS:
            charts(build(policy, dashboard.Window.last_days(days), refresh=True), redraw=True)
            pages += 1
    return pages


def _shown(window: dashboard.Window) -> dashboard.Window:
    """A window's ends move with every load; a time axis of days shows them to the hour, one of
    hours to the minute."""
    cut = {"second": 0, "microsecond": 0, **({"minute": 0} if window.bucket == "day" else {})}
    return replace(window, start=window.start.replace(**cut), end=window.end.replace(**cut))


def _chart_key(name: str, args: tuple) -> str:
    shown = tuple(_shown(arg) if isinstance(arg, dashboard.Window) else arg for arg in args)
    return f"dashboard:chart:{name}:{hashlib.sha256(repr(shown).encode()).hexdigest()}"


def charts(data: dashboard.Dashboard, redraw: bool = False) -> dict[str, str]:
    """Each chart's SVG, kept under a hash of its numbers. A chart whose numbers moved is drawn
    again when `redraw` (the scheduled refresh) or when its latest drawing for this policy and window
    is older than COEFVQ_DASHBOARD_CHART_S; otherwise that drawing is shown (the table beside it is
    live). A chart takes 50 to 120 ms to draw and five of the nine move with every video or review
    (bench/results/dashboard/)."""
    inputs = dashboard_charts.chart_inputs(data)
    keys = {name: _chart_key(name, args) for name, (_, args) in inputs.items()}
    latest_key = f"dashboard:charts-latest:{data.policy.pk}:{round(data.window.days, 3)}"
    found = _cache_call(cache.get_many, [*keys.values(), latest_key]) or {}
    latest = found.get(latest_key) or {}  # chart name -> (when drawn, svg)
    now, drawn, fresh = time.time(), {}, {}
    for name, (draw, args) in inputs.items():
        if keys[name] in found:
            drawn[name] = found[keys[name]]
        elif not redraw and name in latest and now - latest[name][0] < settings.COEFVQ_DASHBOARD_CHART_S:
            drawn[name] = latest[name][1]
        else:
            drawn[name] = fresh[name] = draw(*args)
    if fresh:
        _cache_call(cache.set_many, {**{keys[name]: svg for name, svg in fresh.items()},
                                     latest_key: {**latest, **{name: (now, svg) for name, svg in fresh.items()}}},
                    # The refresh draws up to 36 charts every period whoever looks: keep them two
                    # chart intervals (tens of KB each), not a day's worth in Redis.
                    timeout=max(2 * settings.COEFVQ_DASHBOARD_CHART_S, 600))
    return drawn
