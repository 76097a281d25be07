"""The review queue's operations on PostgreSQL: order, claims under a lease, lost claims, skips,
append-only reviews and the audit trail, and many reviewers claiming at once."""

from __future__ import annotations

import threading
from datetime import timedelta

import pytest
from django.db import DatabaseError, connection, transaction
from django.utils import timezone

from moderation.actions import review_queue
from moderation.actions.review_queue import (do_claim_next, do_open_review, do_release_expired_claims, do_skip_review,
                                             do_submit_review)
from moderation.actions.validation import ActionError
from moderation.models import Review, ReviewSkip, ReviewTask, Video, VideoEvent
from review_queue_factory import decided_video, open_task

pytestmark = pytest.mark.django_db


def claim_order(make_reviewer, count: int) -> list[int]:
    """The videos that `count` reviewers are given, one claim each, in turn."""
    return [do_claim_next(make_reviewer(f"r{i}")).video_id for i in range(count)]


def submit(task: ReviewTask, user, label="scam", token=None):
    return do_submit_review(task.pk, user, claim_token=token or task.claim_token, label=label)


# --- order ------------------------------------------------------------------------------------------


def test_a_more_severe_suspicion_is_served_first(make_reviewer):
    scam = decided_video("scam", p_violation=0.5, violating="scam")
    weapons = decided_video("weapons", p_violation=0.5, violating="weapons")
    assert claim_order(make_reviewer, 2) == [weapons.pk, scam.pk]


def test_a_more_uncertain_item_is_served_first(make_reviewer):
    fairly_sure = decided_video("sure", p_violation=0.1)
    unsure = decided_video("unsure", p_violation=0.5)
    assert claim_order(make_reviewer, 2) == [unsure.pk, fairly_sure.pk]


def test_among_equals_the_oldest_is_served_first_and_age_overtakes_priority(make_reviewer):
    first = decided_video("first", p_violation=0.5)
    second = decided_video("second", p_violation=0.5)
    urgent = decided_video("urgent", p_violation=0.5, violating="weapons")
    low = decided_video("low", p_violation=0.1)
    # `low` arrived two days ago: its wait is longer than any priority's head start.
    two_days = timedelta(hours=48)
    ReviewTask.objects.filter(video=low).update(created_at=timezone.now() - two_days,
                                                due_at=open_task(low).due_at - two_days)
    assert claim_order(make_reviewer, 4) == [low.pk, urgent.pk, first.pk, second.pk]


def test_audit_samples_come_after_review_band_items_of_the_same_age(make_reviewer):
    audit = decided_video("audit", p_violation=0.5, reason=ReviewTask.Reason.AUDIT)
    band = decided_video("band", p_violation=0.5)
    assert claim_order(make_reviewer, 2) == [band.pk, audit.pk]


def test_a_video_has_at_most_one_open_task():
    video = decided_video("a")
    again = do_open_review(video, reason="review_band", model_label="ok", probabilities={}, p_violation=0.5)
    assert again == open_task(video) and video.review_tasks.count() == 1


# --- claims ------------------------------------------------------------------------------------------


def test_asking_again_gives_the_same_item_with_its_lease_renewed(reviewer, make_reviewer):
    decided_video("a")
    decided_video("b")
    first = do_claim_next(reviewer)
    ReviewTask.objects.filter(pk=first.pk).update(claim_expires_at=timezone.now() + timedelta(seconds=30))
    again = do_claim_next(reviewer)
    assert again.pk == first.pk and again.claim_token == first.claim_token
    stored = ReviewTask.objects.get(pk=first.pk)
    assert stored.claim_expires_at > timezone.now() + timedelta(seconds=60), "the lease was renewed"
    assert do_claim_next(make_reviewer("other")).pk != first.pk


def test_an_empty_queue_gives_nothing(reviewer):
    assert do_claim_next(reviewer) is None


def test_only_reviewers_may_claim(uploader):
    decided_video("a")
    with pytest.raises(ActionError) as refused:
        do_claim_next(uploader)
    assert refused.value.status == 403
    assert ReviewTask.objects.get().claimed_by is None


# --- a claim that was lost -----------------------------------------------------------------------------


def assert_nothing_was_written(video: Video):
    assert not Review.objects.exists()
    assert open_task(video).status == ReviewTask.Status.OPEN
    video.refresh_from_db()
    assert (video.final_label, video.decided_by, video.needs_review) == ("ok", "baseline", True)


def test_a_submit_after_the_lease_ran_out_is_refused_and_writes_nothing(reviewer):
    video = decided_video("a", label="ok")
    task = do_claim_next(reviewer)
    ReviewTask.objects.filter(pk=task.pk).update(claim_expires_at=timezone.now() - timedelta(seconds=1))
    with pytest.raises(ActionError) as refused:
        submit(task, reviewer)
    assert (refused.value.status, refused.value.code) == (409, "claim_lost")
    assert_nothing_was_written(video)


def test_a_submit_after_someone_else_reclaimed_is_refused_and_theirs_counts(reviewer, make_reviewer):
    video = decided_video("a", label="ok")
    task = do_claim_next(reviewer)
    ReviewTask.objects.filter(pk=task.pk).update(claim_expires_at=timezone.now() - timedelta(seconds=1))
    other = make_reviewer("other")
    retaken = do_claim_next(other)
    assert retaken.pk == task.pk and retaken.claim_token != task.claim_token

    with pytest.raises(ActionError) as refused:
        submit(task, reviewer)
    assert (refused.value.status, refused.value.code) == (409, "claim_lost")
    assert_nothing_was_written(video)

    submit(retaken, other, label="drugs")
    video.refresh_from_db()
    assert video.final_label == "drugs" and Review.objects.get().reviewer == other


def test_a_submit_with_someone_elses_token_is_refused(reviewer, make_reviewer):
    video = decided_video("a", label="ok")
    task = do_claim_next(reviewer)
    with pytest.raises(ActionError, match="ran out"):
        submit(task, make_reviewer("other"))
    assert_nothing_was_written(video)


def test_a_task_is_reviewed_once(reviewer):
    decided_video("a")
    task = do_claim_next(reviewer)
    submit(task, reviewer)
    with pytest.raises(ActionError) as refused:
        submit(task, reviewer, label="ok")
    assert (refused.value.status, refused.value.code) == (409, "already_reviewed")
    assert Review.objects.count() == 1


def test_a_label_outside_the_policy_is_refused(reviewer):
    video = decided_video("a")
    task = do_claim_next(reviewer)
    with pytest.raises(ActionError, match="not a label"):
        submit(task, reviewer, label="spam")
    assert_nothing_was_written(video)


# --- skips and expired claims -----------------------------------------------------------------------------


def test_a_skip_needs_a_reason(reviewer):
    decided_video("a")
    task = do_claim_next(reviewer)
    with pytest.raises(ActionError) as refused:
        do_skip_review(task.pk, reviewer, claim_token=task.claim_token, reason="   ")
    assert refused.value.code == "skip_reason_required"
    assert ReviewTask.objects.get().claimed_by == reviewer and not ReviewSkip.objects.exists()


def test_a_skipped_item_goes_to_someone_else_and_never_back_to_the_skipper(reviewer, make_reviewer):
    video = decided_video("a")
    task = do_claim_next(reviewer)
    do_skip_review(task.pk, reviewer, claim_token=task.claim_token, reason="I know the uploader")
    assert do_claim_next(reviewer) is None
    assert do_claim_next(make_reviewer("other")).video_id == video.pk
    assert ReviewSkip.objects.get().reason == "I know the uploader"


def test_releasing_frees_only_claims_whose_lease_ran_out(reviewer, make_reviewer):
    decided_video("a")
    decided_video("b")
    expired = do_claim_next(reviewer)
    live = do_claim_next(make_reviewer("other"))
    ReviewTask.objects.filter(pk=expired.pk).update(claim_expires_at=timezone.now() - timedelta(seconds=1))

    assert do_release_expired_claims() == 1
    expired.refresh_from_db()
    live.refresh_from_db()
    assert (expired.claimed_by, expired.claim_token) == (None, None)
    assert live.claimed_by is not None and live.claim_expires_at > timezone.now()


# --- what a review records -----------------------------------------------------------------------------


@pytest.mark.parametrize("label, disagrees", [("ok", False), ("scam", True)])
def test_a_review_becomes_the_final_label_and_notes_whether_it_overrules_the_model(reviewer, label, disagrees):
    video = decided_video("a", label="ok")
    review = submit(do_claim_next(reviewer), reviewer, label=label)
    assert review.disagrees_with_model is disagrees
    assert (review.model_label, review.model_decided_by) == ("ok", "baseline")
    video.refresh_from_db()
    assert (video.final_label, video.decided_by, video.needs_review) == (label, "human", False)
    assert ReviewTask.objects.get().status == ReviewTask.Status.DONE


def test_reviews_are_append_only_in_the_database(reviewer):
    decided_video("a")
    review = submit(do_claim_next(reviewer), reviewer)
    with pytest.raises(ValueError):
        review.save()
    with pytest.raises(DatabaseError, match="append-only"), transaction.atomic():
        with connection.cursor() as cursor:
            cursor.execute("UPDATE moderation_review SET label = 'ok' WHERE id = %s", [review.pk])
    review.refresh_from_db()
    assert review.label == "scam"


def test_claims_skips_and_reviews_leave_an_audit_trail(reviewer, make_reviewer):
    video = decided_video("a", label="ok")
    task = do_claim_next(reviewer)
    do_skip_review(task.pk, reviewer, claim_token=task.claim_token, reason="unsure")
    other = make_reviewer("other")
    submit(do_claim_next(other), other, label="scam")
    trail = list(VideoEvent.objects.filter(video=video, actor__isnull=False).order_by("id")
                 .values_list("actor__username", "message"))
    assert trail == [
        ("rita", "Review claimed by rita."),
        ("rita", "Skipped by rita: unsure"),
        ("other", "Review claimed by other."),
        ("other", "Reviewed by other: scam (overrules the model's ok)."),
    ]


# --- many reviewers at once ------------------------------------------------------------------------------


@pytest.mark.django_db(transaction=True, serialized_rollback=True)
def test_fifty_reviewers_claiming_thirty_items_at_once_each_get_a_different_one_or_none(make_reviewer):
    for i in range(30):
        decided_video(f"v{i}")
    reviewers = [make_reviewer(f"r{i}") for i in range(50)]
    start = threading.Barrier(len(reviewers))
    claims: dict[int, int | None] = {}
    errors: list[BaseException] = []

    def claim(user):
        try:
            start.wait()
            task = do_claim_next(user)
            claims[user.pk] = task.pk if task else None
        except BaseException as error:  # noqa: BLE001 - reported by the assertion below
            errors.append(error)
        finally:
            connection.close()  # each thread had its own connection

    threads = [threading.Thread(target=claim, args=(user,)) for user in reviewers]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert not errors
    given = [task for task in claims.values() if task is not None]
    assert len(given) == 30 and len(set(given)) == 30
    assert list(claims.values()).count(None) == 20
    stored = dict(ReviewTask.objects.values_list("pk", "claimed_by"))
    assert {task: stored[task] for task in given} == {task: user for user, task in claims.items() if task}


@pytest.mark.django_db(transaction=True, serialized_rollback=True)
def test_one_reviewer_clicking_claim_in_eight_tabs_at_once_holds_one_claim(reviewer):
    for i in range(10):
        decided_video(f"v{i}")
    start = threading.Barrier(8)
    given: list[int] = []
    errors: list[BaseException] = []

    def claim():
        try:
            start.wait()
            given.append(do_claim_next(reviewer).pk)
        except BaseException as error:  # noqa: BLE001 - reported by the assertion below
            errors.append(error)
        finally:
            connection.close()

    threads = [threading.Thread(target=claim) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert not errors
    assert len(set(given)) == 1, given  # every tab shows the same item
    assert ReviewTask.objects.filter(claimed_by=reviewer, claim_expires_at__gt=timezone.now()).count() == 1


def test_a_claim_decided_in_another_tab_meanwhile_is_neither_renewed_nor_given_again(reviewer, monkeypatch):
    decided_video("first")
    decided_video("second")
    held = do_claim_next(reviewer)
    find_held = review_queue._claim_held_by

    def found_then_decided_in_another_tab(user, now):
        task = find_held(user, now)
        if task is not None and task.pk == held.pk and task.status == ReviewTask.Status.OPEN:
            submit(task, user)  # the other tab's decision lands between the look and the renewal
        return task

    monkeypatch.setattr(review_queue, "_claim_held_by", found_then_decided_in_another_tab)
    given = do_claim_next(reviewer)
    assert given.pk != held.pk and given.status == ReviewTask.Status.OPEN
    done = ReviewTask.objects.get(pk=held.pk)
    assert done.status == ReviewTask.Status.DONE and done.claim_expires_at is None


@pytest.mark.skipif(connection.vendor != "postgresql", reason="SQLite has no row locks: one writer at a time")
@pytest.mark.django_db(transaction=True, serialized_rollback=True)
def test_a_decision_in_progress_does_not_hold_up_other_decisions_of_the_policy(reviewer, make_reviewer):
    """check_claim locks the task row only: locking the policy too made every decision of a
    policy wait for the one before it."""
    decided_video("a")
    decided_video("b")
    other = make_reviewer("other")
    mine, theirs = do_claim_next(reviewer), do_claim_next(other)
    checked, finish = threading.Event(), threading.Event()
    errors: list[BaseException] = []

    def decision_in_progress():
        try:
            with transaction.atomic():
                review_queue.check_claim(mine.pk, reviewer, mine.claim_token)
                checked.set()
                finish.wait(30)
        except BaseException as error:  # noqa: BLE001 - reported by the assertion below
            errors.append(error)
        finally:
            checked.set()
            connection.close()

    thread = threading.Thread(target=decision_in_progress)
    thread.start()
    try:
        assert checked.wait(30)
        with transaction.atomic():
            with connection.cursor() as cursor:
                cursor.execute("SET LOCAL lock_timeout = '3s'")
            submit(theirs, other)  # waited for the other decision's commit before, and timed out
    finally:
        finish.set()
        thread.join()
    assert not errors
    assert ReviewTask.objects.get(pk=theirs.pk).status == ReviewTask.Status.DONE
