"""/metrics as Prometheus scrapes it: who may read it, and that the moderation numbers move when
the work does (videos waiting, review tasks, MLLM call rate against the budget, step latencies,
failures by reason, reviews)."""

from __future__ import annotations

import ipaddress
import time
from datetime import timedelta

import pytest
from django.core.cache import cache
from django.utils import timezone
from prometheus_client.parser import text_string_to_metric_families

from moderation import health
from moderation.actions.model_registry import do_activate_models
from moderation.actions.review_queue import do_claim_next, do_submit_review
from moderation.actions.video_state import do_fail
from moderation.models import CascadeConfig, ModelVersion, Prediction, RoutingDecision, Video, VideoEvent
from review_queue_factory import decided_video, open_task

pytestmark = pytest.mark.django_db


def scrape(client, **extra) -> dict[tuple, float]:
    response = client.get("/metrics", **extra)
    assert response.status_code == 200, response.content
    assert response["Content-Type"].startswith("text/plain")
    return {(sample.name, tuple(sorted(sample.labels.items()))): sample.value
            for family in text_string_to_metric_families(response.content.decode())
            for sample in family.samples}


def value(samples: dict, name: str, **labels) -> float | None:
    return samples.get((name, tuple(sorted(labels.items()))))


def waiting_video(policy, name: str, state: str, waited: timedelta) -> Video:
    return Video.objects.create(policy=policy, file=f"videos/{name}.mp4", original_filename=f"{name}.mp4",
                                sha256=name.ljust(64, "0"), size_bytes=1, source="cli", state=state,
                                state_changed_at=timezone.now() - waited)


def test_only_allowed_addresses_or_the_token_read_metrics(client, settings):
    assert client.get("/metrics").status_code == 200  # the test client comes from 127.0.0.1
    assert client.get("/metrics", REMOTE_ADDR="203.0.113.9").status_code == 403
    settings.COEFVQ_METRICS_ALLOWED_IPS = [ipaddress.ip_network("203.0.113.0/24")]
    assert client.get("/metrics", REMOTE_ADDR="203.0.113.9").status_code == 200
    assert client.get("/metrics").status_code == 403
    settings.COEFVQ_METRICS_TOKEN = "s3cret-scrape-token"
    assert client.get("/metrics", HTTP_AUTHORIZATION="Bearer s3cret-scrape-token").status_code == 200
    assert client.get("/metrics", HTTP_AUTHORIZATION="Bearer wrong").status_code == 403


def test_django_prometheus_request_metrics_are_there(client):
    client.get("/accounts/login/")
    samples = scrape(client)
    assert any(name.startswith("django_http_requests") for name, _ in samples)


def test_queue_depth_and_age_move_with_the_videos_and_tasks(client, policy):
    before = scrape(client)
    assert value(before, "coefvq_videos_waiting", state="received") == 0
    waiting_video(policy, "a", Video.State.RECEIVED, timedelta(minutes=5))
    waiting_video(policy, "b", Video.State.RECEIVED, timedelta(minutes=1))
    waiting_video(policy, "c", Video.State.AWAITING_MLLM, timedelta(minutes=2))
    decided_video("waiting-for-review", reason="audit")
    after = scrape(client)
    assert value(after, "coefvq_videos_waiting", state="received") == 2
    assert value(after, "coefvq_videos_waiting", state="awaiting_mllm") == 1
    assert 300 <= value(after, "coefvq_videos_waiting_oldest_age_seconds", state="received") < 360
    assert value(after, "coefvq_videos_waiting_oldest_age_seconds", state="extracting") == 0
    assert value(after, "coefvq_review_tasks_open", reason="audit") == 1
    assert value(after, "coefvq_review_tasks_open", reason="review_band") == 0


def test_failures_by_reason_and_reviews_count_up(client, policy, reviewer):
    video = waiting_video(policy, "broken", Video.State.EXTRACTING, timedelta(seconds=1))
    before = scrape(client)
    assert value(before, "coefvq_video_failures_total", code="undecodable") is None
    reviews_before = value(before, "coefvq_reviews_total")
    do_fail(video.pk, code="undecodable", reason="The file is not a video.")
    task = open_task(decided_video("to-review"))
    claimed = do_claim_next(reviewer)
    do_submit_review(task.pk, reviewer, claim_token=claimed.claim_token, label="ok")
    after = scrape(client)
    assert value(after, "coefvq_video_failures_total", code="undecodable") == 1
    assert value(after, "coefvq_reviews_total") == reviews_before + 1


def test_mllm_call_rate_against_the_budget_and_step_latencies(client, policy):
    baseline = ModelVersion.objects.create(policy=policy, kind="baseline", version="b", artifact_path="b")
    config = CascadeConfig.objects.create(policy=policy, version=99, mllm_budget=0.25, baseline_version=baseline,
                                          is_active=False)
    CascadeConfig.objects.filter(policy=policy, is_active=True).update(is_active=False)
    CascadeConfig.objects.filter(pk=config.pk).update(is_active=True)
    for i, routed in enumerate([True, False, False, False, True, False, False, False]):
        video = waiting_video(policy, f"r{i}", Video.State.DECIDED, timedelta(0))
        prediction = Prediction.objects.create(video=video, stage="baseline", model_version=baseline,
                                               probabilities={"ok": 1.0}, label="ok", entropy=0.1)
        RoutingDecision.objects.create(video=video, baseline_prediction=prediction, cascade_config=config,
                                       entropy=0.1, threshold=0.5, routed_to_mllm=routed)
        VideoEvent.objects.create(video=video, from_state="scoring", to_state="decided",
                                  data={"seconds": {"evidence_s": 0.01, "baseline_s": 0.1 * (i + 1)}})
    samples = scrape(client)
    assert value(samples, "coefvq_mllm_routed_ratio", policy="icd") == 0.25
    assert value(samples, "coefvq_stage1_decisions_recent", policy="icd") == 8
    assert value(samples, "coefvq_mllm_budget_ratio", policy="icd") == 0.25
    assert value(samples, "coefvq_step_runs_recent", step="baseline") == 8
    assert value(samples, "coefvq_step_duration_seconds", step="baseline", quantile="0.5") == pytest.approx(0.4)
    assert value(samples, "coefvq_step_duration_seconds", step="baseline", quantile="0.95") == pytest.approx(0.8)
    assert value(samples, "coefvq_stage2_decides", policy="icd") is None  # no stage 2 in this configuration


def test_stage2_on_trial_shows_as_a_gauge(client, policy):
    mllm = ModelVersion.objects.create(policy=policy, kind="mllm", version="m", artifact_path="m")
    do_activate_models(policy, mllm=mllm, note="first stage 2")
    assert value(scrape(client), "coefvq_stage2_decides", policy="icd") == 1
    do_activate_models(policy, stage2_decides=False, note="on trial")
    assert value(scrape(client), "coefvq_stage2_decides", policy="icd") == 0


def test_worker_heartbeat_age(client):
    health.record_heartbeat(["cpu"], "cpu@test", at=time.time() - 30)
    try:
        age = value(scrape(client), "coefvq_worker_heartbeat_age_seconds", queue="cpu")
    finally:
        cache.delete(health.heartbeat_key("cpu"))  # the shared cache outlives the test
    assert 30 <= age < 40
