"""Break the running product and check that it recovers: every video ends decided, once, with
one prediction per model and one review task, no acknowledged review is lost, and the web app
keeps answering. Each scenario records how long recovery took (bench/results/faults/).

Recovery paths under test: late acknowledgement puts an interrupted message back only when the
broker survives; otherwise the reconciler (Celery beat, every COEFVQ_RECONCILE_EVERY_S) re-enqueues
videos whose lease expired or that waited past COEFVQ_STUCK_AFTER_S.
"""

from __future__ import annotations

import threading
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime

import pytest

from .conftest import CAPTIONS, Reviewer, assert_recovered, wait_until

pytestmark = [pytest.mark.faults, pytest.mark.slow]


def upload_all(stack, clips) -> list[int]:
    return [stack.upload(clip, CAPTIONS[i % len(CAPTIONS)]) for i, clip in enumerate(clips)]


def keep_reviewing(reviewer: Reviewer, stop: threading.Event) -> None:
    """Claim and decide as items arrive, through whatever happens to the stack, until `stop`."""
    while not stop.is_set():
        if not reviewer.review_one():
            time.sleep(0.2)


def test_worker_killed_while_decoding(stack, clips, fault_results):
    stack.start_worker()
    video_ids = upload_all(stack, clips(3))
    leased = wait_until(lambda: stack.leased_in("extracting"), timeout=120, what="a video being extracted",
                        every=0.05)
    victim = stack.workers()[0]
    victim.kill()
    killed_at = time.monotonic()
    stack.start_worker()
    done_at = stack.wait_terminal(video_ids, timeout=120)

    counts = assert_recovered(stack, video_ids)
    reviewer = Reviewer(stack)
    reviewer.review_all()
    reviewer.assert_nothing_lost(video_ids)
    fault_results.record("worker SIGKILL while extracting", fault_to_terminal_s=done_at - killed_at,
                         interrupted=len(leased), **counts)


def test_worker_killed_inside_the_mllm(stack, clips, fault_results):
    stack.start_worker()
    video_ids = stack.ingest_command(clips(2), caption="a calm video", route="mllm")
    leased = wait_until(lambda: stack.leased_in("awaiting_mllm"), timeout=180, what="a video inside the MLLM",
                        every=0.05)
    stack.workers()[0].kill()
    killed_at = time.monotonic()
    stack.start_worker()
    done_at = stack.wait_terminal(video_ids, timeout=180)

    counts = assert_recovered(stack, video_ids)
    assert stack.rows("SELECT count(*) FROM moderation_video WHERE id = ANY(%s) AND decided_by = 'mllm'",
                      video_ids)[0][0] == len(video_ids)
    reviewer = Reviewer(stack)
    reviewer.review_all()
    reviewer.assert_nothing_lost(video_ids)
    fault_results.record("worker SIGKILL inside the MLLM", fault_to_terminal_s=done_at - killed_at,
                         interrupted=len(leased), **counts)


@pytest.mark.parametrize("persistent", [True, False], ids=["append-only-file", "no-persistence"])
def test_redis_restarted_with_work_queued(stack, clips, fault_results, persistent):
    stack.redis.restart(persistent=persistent)  # the broker as the scenario runs it
    video_ids = upload_all(stack, clips(3))
    assert stack.redis.queued_tasks("moderation.tasks.extract_video") == len(video_ids)
    stack.redis.restart(persistent=persistent)
    restarted_at = time.monotonic()
    survived = stack.redis.queued_tasks("moderation.tasks.extract_video")
    assert survived == (len(video_ids) if persistent else 0)
    stack.start_worker()
    done_at = stack.wait_terminal(video_ids, timeout=120)

    counts = assert_recovered(stack, video_ids)
    fault_results.record(f"Redis restarted with work queued ({'AOF' if persistent else 'no persistence'})",
                         fault_to_terminal_s=done_at - restarted_at, messages_kept=survived, **counts)
    stack.redis.restart(persistent=False)


def test_broker_flushed_with_100_videos_queued(stack, clips, fault_results):
    video_ids = stack.ingest_command(clips(100), caption=CAPTIONS[0], route="auto")
    stack.redis.client().flushall()
    flushed_at = time.monotonic()
    stack.start_worker()
    stack.start_worker()
    done_at = stack.wait_terminal(video_ids, timeout=300)

    counts = assert_recovered(stack, video_ids)
    fault_results.record("broker FLUSHALL with 100 videos queued", fault_to_terminal_s=done_at - flushed_at,
                         workers=2, reenqueued_by_reconciler=stack.reenqueued(), **counts)


def test_postgres_restarted_under_load(stack, clips, fault_results):
    stack.start_worker()
    video_ids = upload_all(stack, clips(6))
    wait_until(lambda: stack.states(video_ids).get("decided", 0) >= 2, timeout=120, what="the first decisions")
    reviewer = Reviewer(stack)
    stop = threading.Event()
    reviewing = threading.Thread(target=keep_reviewing, args=(reviewer, stop))
    reviewing.start()
    try:
        time.sleep(1)
        stack.pg.restart()
        restarted_at = time.monotonic()
        done_at = stack.wait_terminal(video_ids, timeout=150)
    finally:
        stop.set()
        reviewing.join()
    reviewer.review_all()

    counts = assert_recovered(stack, video_ids)
    reviewer.assert_nothing_lost(video_ids)
    fault_results.record("PostgreSQL restarted (fast) under load", fault_to_terminal_s=done_at - restarted_at,
                         reviews_acknowledged=len(reviewer.acknowledged),
                         failed_requests_during_restart=len(reviewer.errors), **counts)


def test_upload_while_the_broker_is_down(stack, clips, fault_results):
    stack.start_worker()
    stack.redis.stop()
    (clip,) = clips(1)
    started = time.monotonic()
    video_id = stack.upload(clip, CAPTIONS[1])
    upload_s = time.monotonic() - started
    assert stack.states([video_id]) == {"received": 1}
    stack.redis.start(persistent=False)
    back_at = time.monotonic()
    done_at = stack.wait_terminal([video_id], timeout=120)

    counts = assert_recovered(stack, [video_id])
    fault_results.record("upload while Redis is down", fault_to_terminal_s=done_at - started,
                         redis_back_to_terminal_s=round(done_at - back_at, 1), upload_s=round(upload_s, 2), **counts)


def test_review_decision_racing_its_claim_expiry(stack, clips, fault_results):
    """The holder's decision and a second reviewer's claim arrive together just before and just
    after the claim runs out. Whichever the server lets through, the video gets exactly one
    review, by the reviewer who was answered 201; the other is told the claim was lost."""
    first, second = Reviewer(stack, 0), Reviewer(stack, 1)
    first.review_all()  # only this test's item in the queue
    stack.start_worker()
    outcomes = {}
    for offset_s in (-0.2, 0.2):
        (video_id,) = upload_all(stack, clips(1))
        stack.wait_terminal([video_id], timeout=120)
        task = first.claim().json()
        expires_at = datetime.fromisoformat(task["claim_expires_at"]).timestamp()
        time.sleep(max(0.0, expires_at + offset_s - time.time()))
        with ThreadPoolExecutor(2) as pool:
            decision, rival_claim = pool.map(lambda call: call(), (lambda: first.decide(task), second.claim))
        assert decision.status_code in (201, 409), decision.text
        if decision.status_code == 409:
            assert decision.json()["code"] == "claim_lost"
            rival_task = rival_claim.json() if rival_claim.status_code == 200 else second.claim().json()
            assert rival_task["id"] == task["id"]
            assert second.decide(rival_task).status_code == 201
        else:
            assert rival_claim.status_code == 204  # the item was reviewed; nothing else is open
        reviewers = stack.rows("""SELECT u.username FROM moderation_review r JOIN auth_user u ON u.id = r.reviewer_id
                                  WHERE r.task_id = %s""", task["id"])
        assert len(reviewers) == 1
        outcomes[f"decision_{'before' if offset_s < 0 else 'after'}_expiry"] = (
            f"{decision.status_code}, reviewed by {'holder' if decision.status_code == 201 else 'second reviewer'}")
    first.assert_nothing_lost([])
    second.assert_nothing_lost([])
    fault_results.record("review decision racing its claim expiry (HTTP)", fault_to_terminal_s=None, videos=2,
                         **outcomes)
