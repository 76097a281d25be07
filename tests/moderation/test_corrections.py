"""A lead corrects the record: reopening a decided video for a second, independent review, and
overturning a review with a reason. Both are audited; the later label is the video's (and what
retraining learns); agreement between reviewers becomes a dashboard figure."""

from __future__ import annotations

import pytest
from django.utils import timezone

from moderation import dashboard, retraining
from moderation.actions.review_queue import do_claim_next, do_correct_review, do_reopen, do_submit_review
from moderation.actions.validation import ActionError
from moderation.models import AuditEntry, Review, ReviewTask, Video
from review_queue_factory import decided_video

pytestmark = pytest.mark.django_db


def reviewed(name: str, reviewer, label: str) -> Video:
    video = decided_video(name)
    task = do_claim_next(reviewer)
    assert task.video_id == video.pk
    do_submit_review(task.pk, reviewer, claim_token=task.claim_token, label=label)
    return video


def test_a_lead_reopens_a_video_for_a_second_independent_review(make_reviewer, lead):
    first, second = make_reviewer("first"), make_reviewer("second")
    video = reviewed("clip", first, "ok")

    task = do_reopen(video.pk, lead, reason="the caption sells pills")

    assert (task.reason, task.status, task.model_label) == ("second_review", "open", "ok")
    assert do_claim_next(first) is None, "the first reviewer does not judge it again"
    claimed = do_claim_next(second)
    assert claimed.pk == task.pk
    do_submit_review(claimed.pk, second, claim_token=claimed.claim_token, label="drugs")
    video.refresh_from_db()
    assert (video.final_label, video.decided_by, video.needs_review) == ("drugs", "human", False)
    assert retraining.latest_reviews(video.policy, timezone.now())[video.pk][0] == "drugs"
    entry = AuditEntry.objects.get(action="review.reopened")
    assert entry.actor_name == lead.get_username() and "the caption sells pills" in entry.summary
    # The pair is the dashboard's agreement between reviewers: same verdict? no; same label? no.
    agreement = dashboard.reviewer_agreement(video.policy, dashboard.Window.last_days(1))
    assert (agreement.pairs, agreement.same_label, agreement.same_verdict) == (1, 0, 0)


def test_agreement_between_reviewers_counts_labels_and_verdicts(make_reviewer, lead):
    first, second = make_reviewer("first"), make_reviewer("second")
    for name, before, after in [("a", "scam", "scam"), ("b", "scam", "drugs"), ("c", "ok", "ok")]:
        video = reviewed(name, first, before)
        do_reopen(video.pk, lead, reason="calibration sample")
        task = do_claim_next(second)
        do_submit_review(task.pk, second, claim_token=task.claim_token, label=after)
    agreement = dashboard.reviewer_agreement(video.policy, dashboard.Window.last_days(1))
    assert (agreement.pairs, agreement.same_label, agreement.same_verdict) == (3, 2, 3)
    assert agreement.label_share == pytest.approx(2 / 3) and agreement.verdict_share == 1.0


def test_a_lead_overturns_a_review_with_a_reason(make_reviewer, lead):
    reviewer = make_reviewer("first")
    video = reviewed("clip", reviewer, "ok")
    review = Review.objects.get(video=video)

    correction = do_correct_review(review.pk, lead, label="scam", reason="the voice asks for a transfer fee")

    video.refresh_from_db()
    assert (video.final_label, video.decided_by) == ("scam", "human")
    assert (correction.reviewer, correction.label, correction.task.reason) == (lead, "scam", "correction")
    assert Review.objects.get(pk=review.pk).label == "ok", "the corrected review stays as it was"
    assert (correction.caption, correction.title) == (review.caption, review.title), "it judges what the review judged"
    assert retraining.latest_reviews(video.policy, timezone.now())[video.pk] == ("scam", video.caption)
    entry = AuditEntry.objects.get(action="review.corrected")
    assert entry.data["old_label"] == "ok" and entry.data["reason"] == "the voice asks for a transfer fee"
    assert not ReviewTask.objects.filter(video=video, status="open").exists()
    assert dashboard.reviewer_agreement(video.policy, dashboard.Window.last_days(1)).corrections == 1


@pytest.mark.parametrize("who, reason, code", [
    ("reviewer", "because", "not_a_lead"),
    ("lead", "  ", "reason_required"),
])
def test_only_a_lead_with_a_reason_may_correct(make_reviewer, lead, who, reason, code):
    reviewer = make_reviewer("first")
    video = reviewed("clip", reviewer, "ok")
    user = {"reviewer": reviewer, "lead": lead}[who]
    with pytest.raises(ActionError) as refused:
        do_reopen(video.pk, user, reason=reason)
    assert refused.value.code == code
    with pytest.raises(ActionError) as refused:
        do_correct_review(Review.objects.get(video=video).pk, user, label="scam", reason=reason)
    assert refused.value.code == code
    assert Review.objects.filter(video=video).count() == 1 and not AuditEntry.objects.filter(
        action__in=["review.reopened", "review.corrected"]).exists()


def test_a_video_in_the_queue_is_not_reopened_and_an_old_review_is_not_corrected(make_reviewer, lead):
    first, second = make_reviewer("first"), make_reviewer("second")
    video = reviewed("clip", first, "ok")
    old = Review.objects.get(video=video)
    do_reopen(video.pk, lead, reason="second look")
    with pytest.raises(ActionError, match="already waiting in the review queue"):
        do_reopen(video.pk, lead, reason="again")
    task = do_claim_next(second)
    do_submit_review(task.pk, second, claim_token=task.claim_token, label="scam")
    with pytest.raises(ActionError, match="has a newer review"):
        do_correct_review(old.pk, lead, label="drugs", reason="late")


def test_the_video_page_offers_leads_reopen_and_correct(client, make_reviewer, lead):
    video = reviewed("clip", make_reviewer("first"), "ok")
    client.force_login(lead)
    page = client.get(f"/videos/{video.pk}/").content.decode()
    assert 'id="lead-actions"' in page, page
    assert "Correct first's ok to" in page
    response = client.post(f"/videos/{video.pk}/correct/", {"label": "weapons", "reason": "rifle in frame"})
    assert response.status_code == 302
    assert Video.objects.get(pk=video.pk).final_label == "weapons"
    response = client.post(f"/videos/{video.pk}/reopen/", {"reason": ""}, follow=True)
    assert "Say why" in response.content.decode()
