"""The review queue over the REST API: claim, decide, skip, and the 409 when a claim was lost."""

import datetime

import pytest
from django.utils import timezone
from rest_framework.test import APIClient

from moderation.actions.review_queue import do_open_review
from moderation.models import Policy, Review, ReviewTask, Video

pytestmark = pytest.mark.django_db


def decided_video(name: str, label="ok", p_violation=0.5) -> Video:
    policy = Policy.objects.get(slug="icd")
    video = Video.objects.create(policy=policy, file=f"videos/{name}.mp4", original_filename=f"{name}.mp4",
                                 sha256=name.ljust(64, "0"), size_bytes=1, source="cli", state="decided",
                                 state_changed_at=timezone.now(), final_label=label, decided_by="baseline",
                                 decision="human_review", needs_review=True)
    probabilities = {"ok": 1 - p_violation, "scam": p_violation, "drugs": 0.0, "weapons": 0.0}
    do_open_review(video, reason="review_band", model_label=label, probabilities=probabilities,
                   p_violation=p_violation)
    return video


def client_for(user) -> APIClient:
    client = APIClient()
    client.force_authenticate(user)
    return client


@pytest.fixture
def second_reviewer(django_user_model):
    from django.contrib.auth.models import Group

    user = django_user_model.objects.create_user("reviewer2")
    user.groups.add(Group.objects.get(name="reviewer"))
    return user


def test_only_reviewers_reach_the_queue(uploader, reviewer):
    decided_video("a")
    assert APIClient().get("/api/review-tasks/").status_code == 401
    assert client_for(uploader).post("/api/review-tasks/claim/").status_code == 403
    assert client_for(uploader).get("/api/reviews/").status_code == 403
    assert client_for(reviewer).get("/api/review-tasks/").json()["count"] == 1


def test_claim_decide_records_a_labeled_example(reviewer):
    video = decided_video("a", label="ok")
    api = client_for(reviewer)
    claim = api.post("/api/review-tasks/claim/").json()
    assert claim["video"]["id"] == video.pk and claim["claimed_by"] == reviewer.username
    assert api.post("/api/review-tasks/claim/").json()["id"] == claim["id"], "asking again gives the same item"

    decided = api.post(f"/api/review-tasks/{claim['id']}/decision/",
                       {"claim_token": claim["claim_token"], "label": "scam", "note": "fake giveaway"})
    assert decided.status_code == 201, decided.content
    body = decided.json()
    assert (body["label"], body["model_label"], body["disagrees_with_model"]) == ("scam", "ok", True)
    video.refresh_from_db()
    assert (video.final_label, video.decided_by, video.needs_review) == ("scam", "human", False)
    assert api.get("/api/reviews/").json()["results"][0]["reviewer"] == reviewer.username
    assert api.post("/api/review-tasks/claim/").status_code == 204, "the queue is now empty"


def test_decision_after_the_lease_ran_out_is_refused_and_writes_nothing(reviewer, second_reviewer):
    video = decided_video("a")
    first = client_for(reviewer)
    claim = first.post("/api/review-tasks/claim/").json()
    ReviewTask.objects.filter(pk=claim["id"]).update(claim_expires_at=timezone.now() - datetime.timedelta(seconds=1))
    second_claim = client_for(second_reviewer).post("/api/review-tasks/claim/").json()
    assert second_claim["id"] == claim["id"], "an expired claim returns the item to the queue"

    late = first.post(f"/api/review-tasks/{claim['id']}/decision/",
                      {"claim_token": claim["claim_token"], "label": "scam"})
    assert late.status_code == 409 and late.json()["code"] == "claim_lost"
    assert not Review.objects.exists()
    video.refresh_from_db()
    assert video.final_label == "ok" and video.needs_review


def test_bad_decisions_get_clear_errors(reviewer):
    decided_video("a")
    api = client_for(reviewer)
    claim = api.post("/api/review-tasks/claim/").json()
    unknown = api.post(f"/api/review-tasks/{claim['id']}/decision/",
                       {"claim_token": claim["claim_token"], "label": "spam"})
    assert unknown.status_code == 400 and "not a label" in unknown.json()["detail"]
    forged = api.post(f"/api/review-tasks/{claim['id']}/decision/", {"claim_token": "not-a-uuid", "label": "ok"})
    assert forged.status_code == 400 and "claim_token" in forged.json()
    missing = api.post("/api/review-tasks/999999/decision/",
                       {"claim_token": claim["claim_token"], "label": "ok"})
    assert missing.status_code == 404
    assert not Review.objects.exists()


def test_skip_needs_a_reason_and_passes_the_item_on(reviewer, second_reviewer):
    decided_video("a")
    api = client_for(reviewer)
    claim = api.post("/api/review-tasks/claim/").json()
    no_reason = api.post(f"/api/review-tasks/{claim['id']}/skip/", {"claim_token": claim["claim_token"], "reason": ""})
    assert no_reason.status_code == 400
    skipped = api.post(f"/api/review-tasks/{claim['id']}/skip/",
                       {"claim_token": claim["claim_token"], "reason": "not my language"})
    assert skipped.status_code == 204
    assert api.post("/api/review-tasks/claim/").status_code == 204, "the skipper is not given it again"
    assert client_for(second_reviewer).post("/api/review-tasks/claim/").json()["id"] == claim["id"]
