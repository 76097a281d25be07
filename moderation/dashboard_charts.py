"""The dashboard's charts, drawn on the server with matplotlib and inlined into the page as SVG.

Server-side SVG needs no JavaScript, no CDN and no vendored chart library: the page works
offline, prints, and a test can see each chart in the HTML. Text stays text (svg.fonttype
"none"), so it takes the page's font and can be selected; the numbers behind every chart are
in a table next to it.
"""

from __future__ import annotations

import io
import re
from datetime import datetime, timedelta

import matplotlib
from django.utils import timezone
from django.utils.html import escape
from matplotlib import dates as mdates
# Figure without pyplot: no global state and no GUI backend, safe in a threaded server.
from matplotlib.figure import Figure
from matplotlib.ticker import PercentFormatter

from .dashboard import (STEP, AuditEstimate, Dashboard, EntropyHistogram, GateResult, QualityBucket, QueueBucket,
                        ReviewerThroughput, Tradeoff, VolumeBucket, Window)

# The page's palette (static/css/app.css).
INK, MUTED, LINE = "#1d2430", "#6b7482", "#e2e5ea"
ACCENT, OK, BAD, WARN = "#2f6fed", "#1e8e3e", "#c0392b", "#b7791f"
STYLE = {
    "svg.fonttype": "none", "font.size": 9, "axes.edgecolor": LINE, "axes.labelcolor": MUTED,
    "xtick.color": MUTED, "ytick.color": MUTED, "axes.spines.top": False, "axes.spines.right": False,
    "axes.grid": True, "grid.color": LINE, "grid.linewidth": 0.6, "legend.frameon": False,
    "legend.fontsize": 8, "figure.facecolor": "none", "axes.facecolor": "none",
}
SIZE = (6.4, 2.7)  # inches; the SVG scales to the card's width
# Fixed margins rather than constrained layout, which lays each figure out twice (40% of the time).
MARGINS = {"left": 0.09, "right": 0.98, "bottom": 0.16, "top": 0.86}


def _legend(ax, ncols: int = 4) -> None:
    """Above the plot, where it never hides a point."""
    ax.legend(loc="lower left", bbox_to_anchor=(0, 1.01), ncols=ncols, borderaxespad=0)


def _draw(name: str, label: str, paint, **margins) -> str:
    """Paint one chart and return it as an <svg> element that scales with its container.

    The salt keeps the ids matplotlib writes (clip paths) distinct between charts on one page.
    """
    buffer = io.StringIO()
    with matplotlib.rc_context({**STYLE, "svg.hashsalt": f"dashboard-{name}"}):
        figure = Figure(figsize=SIZE)
        figure.subplots_adjust(**{**MARGINS, **margins})
        paint(figure.add_subplot())
        figure.savefig(buffer, format="svg")
    svg = buffer.getvalue()
    svg = svg[svg.index("<svg"):]  # drop the XML prolog and doctype: the element goes inline
    return re.sub(r'<svg[^>]*?(viewBox="[^"]*")[^>]*>',
                  lambda m: f'<svg xmlns="http://www.w3.org/2000/svg" {m.group(1)} class="chart-svg" role="img" '
                            f'aria-label="{escape(label)}">', svg, count=1)


def _empty(ax, message: str = "No data in this window") -> None:
    ax.text(0.5, 0.5, message, transform=ax.transAxes, ha="center", va="center", color=MUTED)
    ax.set_xticks([])
    ax.set_yticks([])
    ax.grid(False)


def _time_axis(ax, first_bucket: datetime, window: Window) -> None:
    """A time chart spans from its first bucket to the end of the window, so an empty stretch shows."""
    ax.set_xlim(first_bucket, window.end)
    zone = timezone.get_current_timezone()
    locator = mdates.AutoDateLocator(tz=zone, maxticks=8)
    ax.xaxis.set_major_locator(locator)
    ax.xaxis.set_major_formatter(mdates.ConciseDateFormatter(locator, tz=zone))


def _bucket_step(starts: list[datetime]) -> timedelta:
    return starts[1] - starts[0] if len(starts) > 1 else STEP["day"]


def _bucket_edges(starts: list[datetime]) -> list[float]:
    """The buckets' edges on matplotlib's date axis (days): each start and the end of the last."""
    return mdates.date2num([*starts, starts[-1] + _bucket_step(starts)]).tolist()


def _columns(ax, starts: list[datetime], heights: list[float], bottom: list[float] | None = None, **style) -> None:
    """One filled step outline over the buckets rather than a bar each: a chart of 90 days draws
    one path per series, not 90 rectangles, which is what made it slow to draw on every load."""
    ax.xaxis_date(timezone.get_current_timezone())
    ax.stairs([b + h for b, h in zip(bottom, heights)] if bottom else heights, _bucket_edges(starts),
              baseline=bottom or 0, fill=True, linewidth=0, **style)


def volume_chart(buckets: list[VolumeBucket], window: Window) -> str:
    def paint(ax):
        if not any(b.uploaded for b in buckets):
            return _empty(ax)
        starts = [b.start for b in buckets]
        bottom = [0] * len(buckets)
        layers = (("auto_allow", OK, "auto-allowed"), ("auto_action", BAD, "auto-actioned"),
                  ("human_review", WARN, "human review"), ("undecided", MUTED, "in progress / failed"))
        for field, colour, text in layers:
            heights = [getattr(b, field) for b in buckets]
            _columns(ax, starts, heights, bottom, color=colour, label=text)
            bottom = [low + h for low, h in zip(bottom, heights)]
        ax.set_ylabel("videos")
        _legend(ax, 4)
        _time_axis(ax, buckets[0].start, window)

    return _draw("volume", "Uploaded videos per period by decision", paint)


def call_rate_chart(buckets: list[VolumeBucket], window: Window, active_budget: float | None) -> str:
    def paint(ax):
        scored = [b for b in buckets if b.scored]
        if not scored:
            return _empty(ax)
        ax.plot([b.start for b in scored], [b.call_rate for b in scored], marker="o", markersize=3, color=ACCENT,
                label="MLLM call rate")
        budgeted = [b for b in scored if b.budget is not None]
        if budgeted:
            ax.step([b.start for b in budgeted], [b.budget for b in budgeted], where="post", color=WARN,
                    linestyle="--", label="budget of the configuration used")
        if active_budget is not None:
            ax.axhline(active_budget, color=BAD, linewidth=1, linestyle=":", label="active budget")
        ax.yaxis.set_major_formatter(PercentFormatter(1.0))
        ax.set_ylim(bottom=0)
        _legend(ax, 3)
        _time_axis(ax, buckets[0].start, window)

    return _draw("call-rate", "Share of scored videos sent to the MLLM, against the budget", paint)


def queue_chart(buckets: list[QueueBucket], window: Window) -> str:
    def paint(ax):
        if not any(b.created or b.completed or b.depth_at_end for b in buckets):
            return _empty(ax)
        starts = [b.start for b in buckets]
        _columns(ax, starts, [b.created for b in buckets], color=WARN, alpha=0.6, label="opened")
        _columns(ax, starts, [-b.completed for b in buckets], color=OK, alpha=0.6, label="reviewed (below 0)")
        ends = [b.start + _bucket_step(starts) for b in buckets]
        ax.plot(ends, [b.depth_at_end for b in buckets], color=INK, marker="o", markersize=3, label="open at end")
        ax.axhline(0, color=MUTED, linewidth=0.8)
        ax.set_ylabel("tasks")
        _legend(ax, 3)
        _time_axis(ax, buckets[0].start, window)

    return _draw("queue", "Review tasks opened and reviewed per period, and the queue depth", paint)


def throughput_chart(reviewers: list[ReviewerThroughput]) -> str:
    def paint(ax):
        if not reviewers:
            return _empty(ax, "No reviews in this window")
        shown = reviewers[:12][::-1]  # the busiest on top
        ax.barh([r.reviewer for r in shown], [r.reviews_per_active_day for r in shown], color=ACCENT)
        for y, reviewer in enumerate(shown):
            median = f"{reviewer.median_seconds:.0f} s median" if reviewer.median_seconds is not None else ""
            ax.annotate(median, (reviewer.reviews_per_active_day, y), xytext=(4, 0), textcoords="offset points",
                        va="center", color=MUTED, fontsize=8)
        ax.set_xlim(0, max(r.reviews_per_active_day for r in shown) * 1.3)  # room for the median's label
        ax.set_xlabel("reviews per active day")
        ax.grid(axis="y", visible=False)

    return _draw("throughput", "Reviews per active day for each reviewer", paint, left=0.16)


def quality_chart(buckets: list[QualityBucket], window: Window) -> str:
    def paint(ax):
        scored = [b for b in buckets if b.n]
        if not scored:
            return _empty(ax, "No reviewed videos with model scores in this window")
        starts = [b.start for b in scored]
        ax.plot(starts, [b.f1 for b in scored], marker="o", markersize=4, color=INK, linewidth=2, label="F1")
        for field, colour in (("rp60", OK), ("rp70", ACCENT), ("rp80", WARN), ("rp90", BAD)):
            values = [getattr(b, field) for b in scored]
            ax.plot(starts, [float("nan") if v is None else v for v in values], marker=".", color=colour,
                    linewidth=1, label=f"R@P{field[2:]}")
        ax.set_ylim(0, 1.05)
        _legend(ax, 5)
        _time_axis(ax, buckets[0].start, window)

    return _draw("quality", "Binary F1 and recall at precision 60 to 90% on reviewer labels", paint)


def entropy_chart(histogram: EntropyHistogram) -> str:
    def paint(ax):
        if not histogram.sample:
            return _empty(ax, "No baseline predictions in this window")
        ax.stairs([b.count for b in histogram.bins], [b.low for b in histogram.bins] + [histogram.bins[-1].high],
                  fill=True, color=ACCENT, alpha=0.75)
        if histogram.threshold is not None and histogram.threshold <= histogram.max_entropy:
            ax.axvline(histogram.threshold, color=BAD, linewidth=1.5,
                       label=f"threshold {histogram.threshold:.3f} nats (MLLM at or above)")
            _legend(ax)
        ax.set_xlim(0, histogram.max_entropy)
        ax.set_xlabel("stage 1 entropy (nats)")
        ax.set_ylabel("videos")

    return _draw("entropy", "Histogram of stage 1 entropies with the routing threshold", paint)


def tradeoff_chart(tradeoff: Tradeoff, active_budget: float | None) -> str:
    def paint(ax):
        if not tradeoff.n:
            return _empty(ax, "No reviewed videos that both stages scored")
        for router, colour, text in (("entropy", ACCENT, "entropy router"), ("random", MUTED, "random router")):
            points = [p for p in tradeoff.points if p.router == router]
            ax.plot([p.routed_fraction for p in points], [p.f1 for p in points], marker="o", markersize=3,
                    color=colour, label=text)
        ax.axhline(tradeoff.baseline_f1, color=WARN, linestyle="--", linewidth=1, label="baseline alone")
        ax.axhline(tradeoff.mllm_f1, color=OK, linestyle="--", linewidth=1, label="MLLM alone")
        if active_budget is not None:
            ax.axvline(active_budget, color=BAD, linestyle=":", linewidth=1, label="active budget")
        ax.xaxis.set_major_formatter(PercentFormatter(1.0))
        ax.set_xlabel("share of videos sent to the MLLM")
        ax.set_ylabel("binary F1")
        ax.set_ylim(0, 1.05)
        _legend(ax, 3)

    return _draw("tradeoff", "Binary F1 of the cascade at each MLLM budget", paint)


def audit_chart(estimates: list[AuditEstimate]) -> str:
    def paint(ax):
        audited = [e for e in estimates if e.audited]
        if not audited:
            return _empty(ax, "No audited decisions reviewed in this window")
        names = [e.band.replace("_", "-") for e in audited]
        rates = [e.error_rate for e in audited]
        errors = [[r - e.ci_low for r, e in zip(rates, audited)], [e.ci_high - r for r, e in zip(rates, audited)]]
        ax.errorbar(rates, names, xerr=errors, fmt="o", color=INK, ecolor=BAD, capsize=4)
        ax.xaxis.set_major_formatter(PercentFormatter(1.0))
        ax.set_xlim(0, max(e.ci_high for e in audited) * 1.1 or 1)
        ax.set_ylim(-0.6, len(audited) - 0.4)
        ax.set_xlabel("error rate among audited decisions (95% Wilson interval)")
        ax.grid(axis="y", visible=False)

    return _draw("audit", "Error rate of automatic decisions estimated from the audit sample", paint, left=0.16,
                 bottom=0.2)


def retraining_chart(gates: list[GateResult]) -> str:
    def paint(ax):
        if not gates:
            return _empty(ax, "No finished training run yet")
        shown = gates[:12][::-1]  # oldest left
        names = [f"#{g.run} {g.kind}" for g in shown]
        x = range(len(shown))
        ax.bar([i - 0.2 for i in x], [g.active_f1 or 0 for g in shown], width=0.4, color=LINE, edgecolor=MUTED,
               label="active model")
        ax.bar([i + 0.2 for i in x], [g.candidate_f1 or 0 for g in shown], width=0.4,
               color=[OK if g.outcome != "rejected" else BAD for g in shown], label="candidate (green: promoted)")
        ax.set_xticks(list(x), names, rotation=0)
        ax.set_ylim(0, 1.05)
        ax.set_ylabel("gold-set F1")
        ax.grid(axis="x", visible=False)
        _legend(ax, ncols=2)

    return _draw("retraining", "Gold-set F1 of the active and the candidate model in each training run", paint)


def chart_inputs(data: Dashboard) -> dict:
    """Each chart on the page: name -> (the function that draws it, its arguments)."""
    budget = data.config.mllm_budget if data.config else None
    return {
        "volume": (volume_chart, (data.volume, data.window)),
        "call_rate": (call_rate_chart, (data.volume, data.window, budget)),
        "queue": (queue_chart, (data.queue_over_time, data.window)),
        "throughput": (throughput_chart, (data.reviewers,)),
        "quality": (quality_chart, (data.quality, data.window)),
        "entropy": (entropy_chart, (data.entropy,)),
        "tradeoff": (tradeoff_chart, (data.tradeoff, budget)),
        "audit": (audit_chart, (data.audit,)),
        "retraining": (retraining_chart, (data.retraining,)),
    }


def render_all(data: Dashboard) -> dict[str, str]:
    return {name: draw(*args) for name, (draw, args) in chart_inputs(data).items()}
