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

import pytest

from .conftest import CAPTIONS, Reviewer, assert_recovered, wait_until

pytestmark = [pytest.mark.faults, pytest.mark.slow]


def upload_all(stack, clips) -> list[int]:
    return [stack.upload(clip, CAPTIONS[i % len(CAPTIONS)]) for i, clip in enumerate(clips)]


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
    reviewer.assert_nothing_lost()
    fault_results.record("worker SIGKILL while extracting", fault_to_terminal_s=done_at - killed_at,
                         interrupted=len(leased), **counts)
