"""What the reviewer workspace shows: the queue's rows and everything the review page puts in front
of a reviewer, read from the database and shaped for the templates (no state changes here)."""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field

from django.core.paginator import Page, Paginator
from django.db.models import Prefetch, QuerySet
from django.utils import timezone

from .models import Prediction, Review, ReviewTask, Video, VideoEvent

QUEUE_PAGE_SIZE = 50
# Two times closer than this are the same moment (the rationale stores the times it was given).
SAME_MOMENT_S = 0.01
_WORD = re.compile(r"\S+")


# --- the queue ----------------------------------------------------------------------------------


def open_tasks(reason: str = "") -> QuerySet[ReviewTask]:
    """Open tasks in the order "claim next" serves them."""
    tasks = ReviewTask.objects.filter(status=ReviewTask.Status.OPEN).order_by("due_at", "id")
    return tasks.filter(reason=reason) if reason in ReviewTask.Reason.values else tasks


def queue_page(reason: str, number) -> Page:
    """One page of the queue, with what a row shows.

    Paged over task ids alone, which the queue-order index answers, and only then joined to the
    page's videos: an OFFSET deep into the joined rows made PostgreSQL join every video first.
    """
    page = Paginator(open_tasks(reason).values_list("id", flat=True), QUEUE_PAGE_SIZE).get_page(number)
    rows = ReviewTask.objects.select_related("video", "claimed_by").in_bulk(list(page.object_list))
    page.object_list = [rows[task_id] for task_id in page.object_list if task_id in rows]
    return page


def holds_claim(task: ReviewTask, user, now=None) -> bool:
    now = now or timezone.now()
    return (task.status == ReviewTask.Status.OPEN and task.claimed_by_id == user.pk
            and task.claim_expires_at is not None and task.claim_expires_at > now)


# --- the review page ----------------------------------------------------------------------------


@dataclass(frozen=True)
class TextPart:
    text: str
    evidence: bool


@dataclass
class Bar:
    """A horizontal bar in a 0..100 wide SVG: a filled part and an optional marker."""

    fill: float
    marker: float | None = None
    band: tuple[float, float] | None = None  # start and end of a shaded stretch

    @property
    def band_width(self) -> float:
        return self.band[1] - self.band[0] if self.band else 0.0


@dataclass
class ContributionBar:
    """One modality's share of P(violation), drawn from the middle (50) of a 0..100 wide SVG."""

    modality: str
    value: float
    x: float
    width: float

    @property
    def raises_violation(self) -> bool:
        return self.value >= 0


@dataclass
class StageSummary:
    prediction: Prediction
    p_violation: float
    p_bar: Bar
    entropy_bar: Bar | None = None
    contributions: list[ContributionBar] = field(default_factory=list)


def decision_labels(policy) -> list[str]:
    """The labels in button and shortcut order: the harmless ones (ok) first, then the violations."""
    harmless = [label for label in policy.labels if label not in policy.violating_labels]
    return harmless + [label for label in policy.labels if label in policy.violating_labels]


def load_video(video_id: int) -> Video:
    """The video with every piece of evidence and history the review page shows."""
    return (Video.objects.select_related("policy", "media", "uploader")
            .prefetch_related(
                "frames", "transcript", "ocr_lines",
                Prefetch("predictions", queryset=Prediction.objects.select_related("model_version", "routing")),
                Prefetch("reviews", queryset=Review.objects.select_related("reviewer")),
                Prefetch("events", queryset=VideoEvent.objects.select_related("actor")),
            ).get(pk=video_id))


def review_context(task: ReviewTask) -> dict:
    video = load_video(task.video_id)
    predictions = list(video.predictions.all())
    baseline = _latest(predictions, Prediction.Stage.BASELINE)
    mllm = _latest(predictions, Prediction.Stage.MLLM)
    rationale = (mllm.rationale if mllm else None) or {}
    band = _review_band(video.policy)
    spans = rationale.get("spans", [])
    frames = list(video.frames.all())
    transcript = list(video.transcript.all())
    ocr_lines = list(video.ocr_lines.all())
    return {
        "task": task,
        "video": video,
        "media": getattr(video, "media", None),
        "labels": decision_labels(video.policy),
        "frames": [(frame, _frame_evidence(frame.t_s, rationale)) for frame in frames],
        "transcript": list(zip(transcript, highlight([s.text for s in transcript], [s.start_s for s in transcript],
                                                      _spans_of(spans, "speech")))),
        "ocr_lines": list(zip(ocr_lines, highlight([line.text for line in ocr_lines], [line.t_s for line in ocr_lines],
                                                    _spans_of(spans, "onscreen")))),
        "caption": highlight([video.caption], [None], _spans_of(spans, "caption"))[0],
        "baseline": _baseline_summary(baseline, video.policy, band) if baseline else None,
        "mllm": _mllm_summary(mllm, video.policy, band) if mllm else None,
        # Stage 2 predicted but did not decide: it was on trial (CascadeConfig.stage2_decides).
        "stage2_on_trial": mllm is not None and video.decided_by == Prediction.Stage.BASELINE,
        "rationale": rationale,
        "predictions": predictions,
        "reviews": list(video.reviews.all()),
        "events": list(video.events.all()),
    }


def _latest(predictions: list[Prediction], stage: str) -> Prediction | None:
    return next((p for p in reversed(predictions) if p.stage == stage), None)


def p_violation(probabilities: dict[str, float], policy) -> float:
    return sum(float(probabilities.get(label, 0.0)) for label in policy.violating_labels)


def _review_band(policy) -> tuple[float, float] | None:
    """The P(violation) stretch the active cascade sends to humans, if a cascade is active."""
    return policy.cascade_configs.filter(is_active=True).values_list("allow_below", "action_above").first()


def _baseline_summary(prediction: Prediction, policy, band) -> StageSummary:
    p = p_violation(prediction.probabilities, policy)
    routing = getattr(prediction, "routing", None)
    # Entropy of a distribution over n labels is at most ln(n): the right end of the bar.
    max_entropy = math.log(max(len(prediction.probabilities), 2))
    entropy_bar = Bar(fill=_percent(prediction.entropy / max_entropy),
                      marker=_percent(routing.threshold / max_entropy) if routing else None)
    return StageSummary(prediction=prediction, p_violation=p, p_bar=_p_bar(p, band), entropy_bar=entropy_bar)


def _mllm_summary(prediction: Prediction, policy, band) -> StageSummary:
    p = p_violation(prediction.probabilities, policy)
    return StageSummary(prediction=prediction, p_violation=p, p_bar=_p_bar(p, band),
                        contributions=contribution_bars(prediction.modality_contributions))


def _p_bar(p: float, band: tuple[float, float] | None) -> Bar:
    return Bar(fill=_percent(p), band=(_percent(band[0]), _percent(band[1])) if band else None)


def contribution_bars(contributions: dict[str, float]) -> list[ContributionBar]:
    """Largest effect first, scaled so it spans half the chart; the sign picks the side."""
    largest = max((abs(float(v)) for v in contributions.values()), default=0.0) or 1.0
    bars = []
    for modality, value in sorted(contributions.items(), key=lambda item: -abs(float(item[1]))):
        width = abs(float(value)) / largest * 50
        bars.append(ContributionBar(modality=modality, value=float(value), width=width,
                                    x=50.0 if value >= 0 else 50.0 - width))
    return bars


def _percent(fraction: float) -> float:
    return round(min(max(fraction, 0.0), 1.0) * 100, 2)


def _spans_of(spans: list[dict], modality: str) -> list[dict]:
    return [span for span in spans if span.get("modality") == modality and span.get("text")]


def _frame_evidence(t_s: float, rationale: dict) -> float | None:
    """How much removing this frame lowered the model's confidence, if the rationale names it."""
    for evidence in rationale.get("frames", []):
        if abs(float(evidence["t_s"]) - t_s) < SAME_MOMENT_S:
            return float(evidence["score"])
    return None


# --- evidence highlighting ------------------------------------------------------------------------


def highlight(texts: list[str], times: list[float | None], spans: list[dict]) -> list[list[TextPart]]:
    """Split each text into parts, marking the words an evidence span quotes.

    The MLLM's spans are runs of whitespace-separated words of one modality at one time (a
    transcript segment's start, an on-screen frame's time; none for the caption), and a run may
    cross two on-screen lines of the same frame, so words are matched across the texts in order.
    """
    words = [(item, match) for item, text in enumerate(texts) for match in _WORD.finditer(text)]
    marked: set[int] = set()
    for span in spans:
        quoted = span["text"].split()
        for first in range(len(words) - len(quoted) + 1):
            run = words[first:first + len(quoted)]
            if [m.group() for _, m in run] == quoted and _same_moment(times[run[0][0]], span.get("start_s")):
                marked.update(range(first, first + len(quoted)))
    ranges: list[list[tuple[int, int]]] = [[] for _ in texts]
    for index, (item, match) in enumerate(words):
        if index in marked:
            ranges[item].append(match.span())
    return [_parts(text, item_ranges) for text, item_ranges in zip(texts, ranges)]


def _same_moment(t_s: float | None, span_start: float | None) -> bool:
    return span_start is None or (t_s is not None and abs(t_s - float(span_start)) < SAME_MOMENT_S)


def _parts(text: str, ranges: list[tuple[int, int]]) -> list[TextPart]:
    """The text cut at the marked ranges; neighbouring marked words become one part."""
    merged: list[list[int]] = []
    for start, end in ranges:
        if merged and not text[merged[-1][1]:start].strip():
            merged[-1][1] = end
        else:
            merged.append([start, end])
    parts, position = [], 0
    for start, end in merged:
        if start > position:
            parts.append(TextPart(text[position:start], evidence=False))
        parts.append(TextPart(text[start:end], evidence=True))
        position = end
    if position < len(text):
        parts.append(TextPart(text[position:], evidence=False))
    return parts
