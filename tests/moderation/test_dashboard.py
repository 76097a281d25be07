"""The leads' dashboard: its numbers on a small known world, the page and the CSV exports.

The world (policy icd, all within the last day unless said):

  video entropy routed  decided by  decision      review
  v1    1.2     yes     mllm        human_review  rita: scam, model said scam (review band)
  v2    1.0     yes     mllm        human_review  rita: scam, model said ok   (review band)
  v3    0.1     no      baseline    auto_allow    rita: ok, model said ok     (audit)
  v4    0.1     no      baseline    auto_allow    rita: drugs, model said ok  (audit)
  v5    0.2     no      baseline    auto_action   lena: scam, model said scam (audit)
  v6    0.3     no      baseline    auto_allow    lena: ok, model said ok     (audit)
  v7    0.9     yes     mllm        human_review  open task, 3 h old
  v8    0.5     no      baseline    human_review  open task, 1 h old
  old   -       -       -           -             uploaded 3 days ago

v1..v6 were routed 5 hours ago under configuration v1 (budget 25%), v7 and v8 an hour ago under
the active v2 (budget 10%, last threshold 0.9 nats).
"""

from __future__ import annotations

import csv
import io
import math
from datetime import timedelta

import pytest
from django.core.cache import cache
from django.db.models import Q
from django.utils import timezone

from moderation import dashboard
from moderation.models import (CascadeConfig, ModelVersion, Policy, Prediction, Review, ReviewTask, RoutingDecision,
                               TrainingRun, Video)

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def _nothing_kept_from_another_world(settings):
    """The dashboard's daily aggregates and analyses live in the shared cache (Redis), where an
    earlier test's world may still be kept; quality and trade-off follow every review here."""
    cache.clear()
    settings.COEFVQ_DASHBOARD_REFRESH_S = 0
    settings.COEFVQ_DASHBOARD_CHART_S = 0

H = timedelta(hours=1)
PROBS = {  # video: (baseline probabilities, MLLM probabilities or None)
    "v1": ({"ok": 0.50, "scam": 0.45, "drugs": 0.03, "weapons": 0.02},
           {"ok": 0.20, "scam": 0.70, "drugs": 0.05, "weapons": 0.05}),
    "v2": ({"ok": 0.55, "scam": 0.40, "drugs": 0.03, "weapons": 0.02},
           {"ok": 0.60, "scam": 0.30, "drugs": 0.05, "weapons": 0.05}),
    "v3": ({"ok": 0.90, "scam": 0.05, "drugs": 0.03, "weapons": 0.02}, None),
    "v4": ({"ok": 0.95, "scam": 0.02, "drugs": 0.02, "weapons": 0.01}, None),
    "v5": ({"ok": 0.03, "scam": 0.95, "drugs": 0.01, "weapons": 0.01}, None),
    "v6": ({"ok": 0.92, "scam": 0.04, "drugs": 0.02, "weapons": 0.02}, None),
    "v7": ({"ok": 0.40, "scam": 0.30, "drugs": 0.20, "weapons": 0.10},
           {"ok": 0.30, "scam": 0.60, "drugs": 0.05, "weapons": 0.05}),
    "v8": ({"ok": 0.60, "scam": 0.30, "drugs": 0.05, "weapons": 0.05}, None),
}
ENTROPY = {"v1": 1.2, "v2": 1.0, "v3": 0.1, "v4": 0.1, "v5": 0.2, "v6": 0.3, "v7": 0.9, "v8": 0.5}
DECISION = {"v1": "human_review", "v2": "human_review", "v3": "auto_allow", "v4": "auto_allow",
            "v5": "auto_action", "v6": "auto_allow", "v7": "human_review", "v8": "human_review"}
# video: reason, reviewer, reviewer's label, model's label, seconds from claim to decision
REVIEWS = {
    "v1": ("review_band", "rita", "scam", "scam", 10),
    "v2": ("review_band", "rita", "scam", "ok", 20),
    "v3": ("audit", "rita", "ok", "ok", 30),
    "v4": ("audit", "rita", "drugs", "ok", 100),
    "v5": ("audit", "lena", "scam", "scam", 5),
    "v6": ("audit", "lena", "ok", "ok", 7),
}
OPEN_TASK_AGE = {"v7": 3 * H, "v8": 1 * H}


def _video(policy: Policy, name: str, created_at) -> Video:
    video = Video.objects.create(
        policy=policy, file=f"videos/{name}.mp4", original_filename=f"{name}.mp4", sha256=name.ljust(64, "0"),
        size_bytes=1, source="cli", state=Video.State.DECIDED, state_changed_at=created_at,
        decision=DECISION.get(name, ""), decided_by="mllm" if PROBS.get(name, (0, None))[1] else "baseline",
    )
    Video.objects.filter(pk=video.pk).update(created_at=created_at)
    return video


def _configs(policy: Policy) -> tuple[CascadeConfig, CascadeConfig]:
    baseline = ModelVersion.objects.create(policy=policy, kind="baseline", version="b1", artifact_path="b",
                                           status="active")
    mllm = ModelVersion.objects.create(policy=policy, kind="mllm", version="m1", artifact_path="m", status="active")
    old = CascadeConfig.objects.create(policy=policy, version=1, mllm_budget=0.25, baseline_version=baseline,
                                       mllm_version=mllm)
    active = CascadeConfig.objects.create(policy=policy, version=2, mllm_budget=0.10, baseline_version=baseline,
                                          mllm_version=mllm, is_active=True)
    return old, active


def _score(video: Video, name: str, config: CascadeConfig, at) -> None:
    base_probs, mllm_probs = PROBS[name]
    baseline = Prediction.objects.create(video=video, stage="baseline", model_version=config.baseline_version,
                                         cascade_config=config, probabilities=base_probs,
                                         label=max(base_probs, key=base_probs.get), entropy=ENTROPY[name])
    routing = RoutingDecision.objects.create(video=video, baseline_prediction=baseline, cascade_config=config,
                                             entropy=ENTROPY[name], threshold=0.9, routed_to_mllm=bool(mllm_probs))
    Prediction.objects.filter(pk=baseline.pk).update(created_at=at)
    RoutingDecision.objects.filter(pk=routing.pk).update(created_at=at)
    if mllm_probs:
        mllm = Prediction.objects.create(video=video, stage="mllm", model_version=config.mllm_version,
                                         cascade_config=config, probabilities=mllm_probs,
                                         label=max(mllm_probs, key=mllm_probs.get), entropy=0.8)
        Prediction.objects.filter(pk=mllm.pk).update(created_at=at)


def _task(video: Video, reason: str, model_label: str, created_at, completed_at=None) -> ReviewTask:
    task = ReviewTask.objects.create(
        video=video, policy=video.policy, reason=reason, priority=0.5, due_at=created_at, model_label=model_label,
        p_violation=0.5, status="done" if completed_at else "open", completed_at=completed_at)
    ReviewTask.objects.filter(pk=task.pk).update(created_at=created_at)
    return task


@pytest.fixture
def world(policy, reviewer, lead):
    """The world of the module docstring; returns the time it was built at."""
    now = timezone.now()
    old_config, active_config = _configs(policy)
    users = {"rita": reviewer, "lena": lead}
    _video(policy, "old", now - timedelta(days=3))
    for index, name in enumerate(PROBS):
        video = _video(policy, name, now - 6 * H)
        routed_under_old = name in REVIEWS
        _score(video, name, old_config if routed_under_old else active_config, now - (5 * H if routed_under_old else H))
        if name in OPEN_TASK_AGE:
            _task(video, "review_band", "scam", now - OPEN_TASK_AGE[name])
            continue
        reason, who, label, model_label, seconds = REVIEWS[name]
        # Tasks waited 10, 20, ... 60 minutes for their reviews.
        wait = (index + 1) * timedelta(minutes=10)
        task = _task(video, reason, model_label, now - 4 * H, completed_at=now - 4 * H + wait)
        Review.objects.create(task=task, video=video, reviewer=users[who], label=label, model_label=model_label,
                              model_decided_by=video.decided_by, disagrees_with_model=label != model_label,
                              seconds_spent=seconds)
    return now


@pytest.fixture
def day(world):
    return dashboard.Window.last_days(1, now=world + timedelta(seconds=1))


def test_volume_counts_uploads_in_the_window_and_the_mllm_call_rate_against_each_configs_budget(policy, world, day):
    buckets = dashboard.volume(policy, day)

    assert sum(b.uploaded for b in buckets) == 8  # "old" is outside the last day
    assert sum(b.auto_allow for b in buckets) == 3 and sum(b.auto_action for b in buckets) == 1
    routed = [b for b in buckets if b.scored]
    assert [(b.config_versions, b.scored, b.routed, b.budget) for b in routed] == [("1", 6, 2, 0.25), ("2", 2, 1, 0.10)]
    assert routed[0].call_rate == pytest.approx(2 / 6)
    assert sum(b.uploaded for b in dashboard.volume(policy, dashboard.Window.last_days(7, now=world))) == 9


def test_queue_now_reports_depth_and_wait_quantiles(policy, world, day):
    queue = dashboard.queue_now(policy, day, now=world)

    assert (queue.open, queue.open_review_band, queue.open_audit, queue.completed) == (2, 2, 0, 6)
    assert queue.oldest_age_s == pytest.approx(3 * 3600) and queue.p95_age_s == pytest.approx(3 * 3600)
    assert queue.p50_age_s == pytest.approx(3600)
    # Waits of 10..60 minutes: the nearest-rank median is the 3rd, the 95th percentile the 6th.
    assert queue.p50_time_to_review_s == pytest.approx(30 * 60) and queue.p95_time_to_review_s == pytest.approx(3600)


def test_queue_depth_over_time_walks_back_from_the_open_tasks(policy, world, day):
    buckets = dashboard.queue_over_time(policy, day)

    assert sum(b.created for b in buckets) == 8 and sum(b.completed for b in buckets) == 6
    assert buckets[-1].depth_at_end == 2
    assert buckets[0].depth_at_end == 0  # nothing was open a day ago
    for bucket in buckets:  # open at a moment: created before it and not yet reviewed then
        end = bucket.start + dashboard.STEP[day.bucket]
        assert bucket.depth_at_end == ReviewTask.objects.filter(
            Q(completed_at__isnull=True) | Q(completed_at__gte=end), created_at__lt=end).count()


def test_reviewer_throughput_and_agreement_by_stage(policy, world, day):
    reviewers = {r.reviewer: r for r in dashboard.reviewer_throughput(policy, day)}

    assert (reviewers["rita"].reviews, reviewers["rita"].active_days, reviewers["rita"].median_seconds) == (4, 1, 25)
    assert reviewers["rita"].agreement == pytest.approx(0.5)
    assert (reviewers["lena"].reviews, reviewers["lena"].median_seconds, reviewers["lena"].agreement) == (2, 6, 1.0)
    agreement = {a.stage: (a.reviews, a.agreeing, a.share) for a in dashboard.agreement_by_stage(policy, day)}
    assert agreement == {"baseline": (4, 3, 0.75), "mllm": (2, 1, 0.5)}


def test_confusion_matrix_rows_are_reviewer_labels_and_columns_model_labels(policy, world, day):
    result = dashboard.confusion(policy, day)

    assert result.labels == ["ok", "scam", "drugs", "weapons"]
    assert result.matrix == [[2, 0, 0, 0],
                             [1, 2, 0, 0],
                             [1, 0, 0, 0],
                             [0, 0, 0, 0]]


def test_wilson_interval_matches_the_published_values():
    # 1 success in 10: 0.0179 to 0.4042 (Newcombe 1998, Statistics in Medicine 17, table I, method 3).
    low, high = dashboard.wilson_interval(1, 10)
    assert (round(low, 4), round(high, 4)) == (0.0179, 0.4042)
    # No success: the lower end is 0 and the upper z^2 / (n + z^2).
    low, high = dashboard.wilson_interval(0, 10)
    assert low == 0 and high == pytest.approx(dashboard.Z_95 ** 2 / (10 + dashboard.Z_95 ** 2))
    assert dashboard.wilson_interval(0, 0) == (0.0, 1.0)
    # The ends are exact where the estimate is 0 or 1, and the interval always holds the estimate.
    for n in range(1, 60):
        assert dashboard.wilson_interval(0, n)[0] == 0.0 and dashboard.wilson_interval(n, n)[1] == 1.0
        low, high = dashboard.wilson_interval(n // 3, n)
        assert low <= n // 3 / n <= high


def test_audit_estimates_per_automatic_band(policy, world, day):
    estimates = {e.band: e for e in dashboard.audit_estimates(policy, day)}

    allow = estimates["auto_allow"]
    assert (allow.audited, allow.errors, allow.error_rate) == (3, 1, pytest.approx(1 / 3))
    assert (allow.ci_low, allow.ci_high) == pytest.approx(dashboard.wilson_interval(1, 3))
    assert allow.ci_low < 1 / 3 < allow.ci_high
    action = estimates["auto_action"]
    assert (action.audited, action.errors, action.ci_low) == (1, 0, 0.0)


def test_model_quality_scores_each_video_with_the_stage_that_decided_it(policy, world, day):
    buckets = [b for b in dashboard.quality_over_time(policy, day, dashboard.labeled_videos(policy, day)) if b.n]

    # TP v1 (mllm) and v5; FN v2 (mllm said ok) and v4; TN v3 and v6: precision 1, recall 1/2.
    assert len(buckets) == 1
    quality = buckets[0]
    assert (quality.n, quality.n_positive) == (6, 4)
    assert quality.f1 == pytest.approx(2 / 3)
    # P(violation) ranks v5, v1, v2 (all violating) above v3, v6 (ok) above v4 (violating).
    assert (quality.rp60, quality.rp70, quality.rp90) == (1.0, 0.75, 0.75)


def test_budget_tradeoff_replays_the_cascade_on_videos_both_stages_scored(policy, world, day):
    tradeoff = dashboard.budget_tradeoff(policy, dashboard.labeled_videos(policy, day))

    assert tradeoff.n == 2  # v1 and v2; v7 has both but no review
    assert tradeoff.baseline_f1 == 0.0 and tradeoff.mllm_f1 == pytest.approx(2 / 3)
    entropy = {p.budget: p.f1 for p in tradeoff.points if p.router == "entropy"}
    assert entropy[0.0] == tradeoff.baseline_f1 and entropy[1.0] == tradeoff.mllm_f1


def test_entropy_histogram_marks_the_threshold_the_router_used_last(policy, world, day):
    histogram = dashboard.entropy_histogram(policy, day, dashboard.active_config(policy))

    assert histogram.sample == 8 and sum(b.count for b in histogram.bins) == 8
    assert histogram.threshold == 0.9
    assert histogram.above_threshold == pytest.approx(3 / 8)  # 0.9, 1.0 and 1.2
    assert histogram.max_entropy == pytest.approx(math.log(4))


def test_page_shows_every_chart_to_a_lead_with_bounded_queries(client, world, lead, django_assert_max_num_queries):
    client.force_login(lead)
    with django_assert_max_num_queries(30):
        response = client.get("/dashboard/?days=1")

    assert response.status_code == 200
    html = response.content.decode()
    assert html.count('class="chart-svg"') == 9
    for section in ("volume", "queue", "reviewers", "quality", "entropy", "tradeoff", "confusion", "audit",
                    "retraining"):
        assert f'id="{section}"' in html
    assert 'href="/dashboard/"' in html  # the nav link
    assert "No data in this window" not in html


def test_page_queries_do_not_grow_with_the_data(client, world, policy, lead, reviewer, django_assert_max_num_queries):
    for n in range(30):
        video = _video(policy, f"more{n:02d}", world - 2 * H)
        task = _task(video, "review_band", "ok", world - 2 * H, completed_at=world - H)
        Review.objects.create(task=task, video=video, reviewer=reviewer, label="ok", model_label="ok",
                              model_decided_by="baseline", disagrees_with_model=False, seconds_spent=3)
    client.force_login(lead)
    with django_assert_max_num_queries(30):
        assert client.get("/dashboard/?days=1").status_code == 200


@pytest.mark.parametrize("who", ["uploader", "reviewer"])
def test_page_and_exports_are_refused_to_people_who_are_not_leads(client, request, who):
    client.force_login(request.getfixturevalue(who))

    assert client.get("/dashboard/").status_code == 403
    assert client.get("/dashboard/export/volume.csv").status_code == 403
    assert 'href="/dashboard/"' not in client.get("/videos/").content.decode()


def test_anonymous_visitors_are_sent_to_log_in(client):
    response = client.get("/dashboard/")
    assert response.status_code == 302 and response["Location"].startswith("/accounts/login/")


def _csv(response) -> list[dict]:
    assert response.status_code == 200 and response["Content-Type"].startswith("text/csv")
    return list(csv.DictReader(io.StringIO(b"".join(response.streaming_content).decode())))


def test_csv_exports_parse_and_carry_the_numbers(client, world, lead):
    client.force_login(lead)

    cells = _csv(client.get("/dashboard/export/confusion.csv?days=1"))
    assert {(c["reviewer_label"], c["model_label"], int(c["count"])) for c in cells} == {
        ("ok", "ok", 2), ("scam", "ok", 1), ("scam", "scam", 2), ("drugs", "ok", 1)}
    audit = {row["band"]: row for row in _csv(client.get("/dashboard/export/audit.csv?days=1&policy=icd"))}
    assert (audit["auto_allow"]["audited"], audit["auto_allow"]["errors"]) == ("3", "1")
    for name in set(dashboard.TABLES) - {"retraining"}:  # no training run in this world: see below
        assert _csv(client.get(f"/dashboard/export/{name}.csv?days=7")), name
    assert client.get("/dashboard/export/nothing.csv").status_code == 404


def _finished_run(policy, status, active_f1, candidate_f1, outcome, finished_at):
    candidate = ModelVersion.objects.create(
        policy=policy, kind="baseline", version=f"retrained-{status}", artifact_path="x", status=outcome,
        metrics={"gold": {"binary": {"f1": candidate_f1, "R@P80": 0.5}},
                 "active_on_gold": {"binary": {"f1": active_f1, "R@P80": 0.4}}})
    return TrainingRun.objects.create(policy=policy, trigger="button", status=status, progress=1.0,
                                      baseline_candidate=candidate, gold_examples=12, new_labels=60,
                                      finished_at=finished_at)


def test_retraining_shows_each_gate_with_the_gold_scores(client, policy, world, lead):
    promoted = _finished_run(policy, "promoted", 0.70, 0.78, "retired", world - 2 * H)  # since replaced
    refused = _finished_run(policy, "refused", 0.78, 0.77, "rejected", world - H)
    TrainingRun.objects.create(policy=policy, trigger="schedule", status="running")  # not finished: not shown

    gates = dashboard.gate_results(policy)
    assert [(g.run, g.outcome, g.active_f1, g.candidate_f1) for g in gates] == [
        (refused.pk, "rejected", 0.78, 0.77), (promoted.pk, "retired", 0.70, 0.78)]
    client.force_login(lead)
    html = client.get("/dashboard/?days=1").content.decode()
    section = html[html.index('id="retraining"'):]
    assert "refused" in section and "promoted" in section and "0.700 → 0.780" in section
    rows = _csv(client.get("/dashboard/export/retraining.csv?days=1"))
    assert [row["outcome"] for row in rows] == ["rejected", "retired"]


def test_retraining_shows_the_f1_the_gate_compared(policy, world):
    """The gate scores the decisions under the bands; the argmax's F1 is kept beside it."""
    run = _finished_run(policy, "refused", 0.70, 0.78, "rejected", world - H)
    run.baseline_candidate.metrics["gold"]["decisions"] = {"f1": 0.74}
    run.baseline_candidate.metrics["active_on_gold"]["decisions"] = {"f1": 0.75}
    run.baseline_candidate.save()
    [gate] = dashboard.gate_results(policy)
    assert (gate.active_f1, gate.candidate_f1) == (0.75, 0.74)


def test_page_counts_reviews_live_and_recomputes_quality_when_its_refresh_is_due(client, policy, world, lead,
                                                                                 reviewer, settings):
    settings.COEFVQ_DASHBOARD_REFRESH_S = 300
    client.force_login(lead)

    def page():
        data = client.get("/dashboard/?days=1").context["data"]
        return data.reviews, sum(q.n for q in data.quality), data.tradeoff.n, data.analysed_at

    reviews, quality_n, tradeoff_n, analysed_at = page()
    assert (reviews, quality_n, tradeoff_n) == (6, 6, 2)
    video = Video.objects.get(original_filename="v7.mp4")  # scored by both stages, its task open
    task = ReviewTask.objects.get(video=video)
    ReviewTask.objects.filter(pk=task.pk).update(status="done", completed_at=timezone.now())
    Review.objects.create(task=task, video=video, reviewer=reviewer, label="scam", model_label="scam",
                          model_decided_by="mllm", disagrees_with_model=False, seconds_spent=4)

    assert page() == (7, 6, 2, analysed_at)  # counted at once; quality and trade-off as computed before
    settings.COEFVQ_DASHBOARD_REFRESH_S = 0
    reviews, quality_n, tradeoff_n, recomputed_at = page()
    assert (reviews, quality_n, tradeoff_n) == (7, 7, 3) and recomputed_at > analysed_at


def test_the_scheduled_refresh_recomputes_quality_so_that_a_page_load_does_not(client, policy, world, lead,
                                                                                reviewer, settings, monkeypatch):
    from moderation import tasks

    settings.COEFVQ_DASHBOARD_REFRESH_S = 300
    assert tasks.refresh_dashboards() == Policy.objects.count() * len(dashboard.WINDOW_DAYS)
    client.force_login(lead)
    real_labeled_videos = dashboard.labeled_videos

    def page():
        """The page as a lead sees it, with the seconds-long analyses forbidden on the request."""
        monkeypatch.setattr(dashboard, "labeled_videos", lambda *a: pytest.fail("a page load recomputed quality"))
        data = client.get("/dashboard/?days=1").context["data"]
        monkeypatch.setattr(dashboard, "labeled_videos", real_labeled_videos)
        return data.reviews, sum(q.n for q in data.quality), data.tradeoff.n

    assert page() == (6, 6, 2)
    video = Video.objects.get(original_filename="v7.mp4")
    task = ReviewTask.objects.get(video=video)
    ReviewTask.objects.filter(pk=task.pk).update(status="done", completed_at=timezone.now())
    Review.objects.create(task=task, video=video, reviewer=reviewer, label="scam", model_label="scam",
                          model_decided_by="mllm", disagrees_with_model=False, seconds_spent=4)
    assert page() == (7, 6, 2)
    tasks.refresh_dashboards()
    assert page() == (7, 7, 3)


def test_a_chart_is_drawn_once_for_the_same_numbers(client, world, lead, monkeypatch):
    from moderation import dashboard_charts

    # Both loads see the same window (a chart's time axis is kept to the minute).
    monkeypatch.setattr(dashboard.Window, "last_days", classmethod(lambda cls, days: cls(world - days * 24 * H, world)))
    client.force_login(lead)
    first = client.get("/dashboard/?days=1").content
    drawn = []
    monkeypatch.setattr(dashboard_charts, "_draw", lambda name, *args, **kwargs: drawn.append(name) or "")
    assert client.get("/dashboard/?days=1").content.count(b'class="chart-svg"') == 9 == first.count(b'class="chart-svg"')
    assert drawn == []


def test_a_chart_whose_numbers_moved_is_drawn_again_at_most_every_chart_interval(client, policy, world, lead,
                                                                                  settings, monkeypatch):
    from moderation import dashboard_charts

    monkeypatch.setattr(dashboard.Window, "last_days", classmethod(lambda cls, days: cls(world - days * 24 * H, world)))
    client.force_login(lead)
    settings.COEFVQ_DASHBOARD_CHART_S = 60
    before = client.get("/dashboard/?days=1").context["data"].uploaded
    _video(policy, "one-more", world - timedelta(minutes=5))  # moves the volume chart's numbers
    real_draw, drawn = dashboard_charts._draw, []
    monkeypatch.setattr(dashboard_charts, "_draw", lambda name, *a, **k: drawn.append(name) or real_draw(name, *a, **k))
    page = client.get("/dashboard/?days=1")
    assert drawn == [] and page.context["data"].uploaded == before + 1  # the table counts it; the chart waits
    settings.COEFVQ_DASHBOARD_CHART_S = 0
    client.get("/dashboard/?days=1")
    assert "volume" in drawn


def test_daily_aggregates_add_up_to_one_count_over_the_window_and_the_last_hours_stay_live(policy, world, lead,
                                                                                             settings):
    from moderation import dashboard_cache

    settings.COEFVQ_DASHBOARD_LIVE_H = 6
    week = dashboard.Window.last_days(7, now=world + timedelta(seconds=1))
    kept = dashboard_cache.build(policy, week)
    direct = dashboard.build(policy, week)
    for part in ("volume", "agreement", "confusion", "audit"):
        assert getattr(kept, part) == getattr(direct, part), part
    assert kept.uploaded == 9

    _video(policy, "late-for-a-closed-day", world - timedelta(days=3))  # counted when that day's aggregate expires
    _video(policy, "just-now", world - timedelta(minutes=1))
    assert dashboard_cache.build(policy, week).uploaded == 10
    cache.clear()
    assert dashboard_cache.build(policy, week).uploaded == 11 == dashboard.build(policy, week).uploaded


def test_a_first_load_counts_the_missing_days_in_one_query_per_table_whatever_the_window(policy, world):
    """A cold 90-day page counted each day with its own queries (477 at 100,000 videos)."""
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    from moderation import dashboard_cache

    queries = {}
    for days in (7, 90):
        cache.clear()
        with CaptureQueriesContext(connection) as captured:
            dashboard_cache.build(policy, dashboard.Window.last_days(days, now=world))
        queries[days] = len(captured)
    assert queries[90] == queries[7]


def test_queue_waits_have_no_quantile_rather_than_an_error_when_tasks_close_while_counted(policy, world, day,
                                                                                            monkeypatch):
    """Under the load run the page answered 500: a review closed a task between counting the open
    tasks and reading the rank the count pointed at."""
    counted = ReviewTask.objects.filter(policy=policy, status="open").count()
    real_aggregate = type(ReviewTask.objects.all()).aggregate

    def counted_then_closed(queryset, *args, **kwargs):
        counts = real_aggregate(queryset, *args, **kwargs)
        ReviewTask.objects.filter(policy=policy, status="open").update(status="done", completed_at=world)
        return counts

    monkeypatch.setattr(type(ReviewTask.objects.all()), "aggregate", counted_then_closed)
    queue = dashboard.queue_now(policy, day, now=world)
    assert queue.open == counted == 2
    assert queue.oldest_age_s is None and queue.p95_age_s is None
