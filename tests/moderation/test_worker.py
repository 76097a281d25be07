"""A real Celery worker process, on the real Redis broker and PostgreSQL database."""

import os
import signal
import subprocess
import sys
import time

import pytest
import redis
from django.db import connection

from moderation.actions.ingest import do_ingest
from moderation.models import Video

# Serialized rollback: the seeded policy and roles are put back before the test, and the flush after
# it leaves the database as the other serialized tests expect it (no content types recreated).
pytestmark = [pytest.mark.django_db(transaction=True, serialized_rollback=True), pytest.mark.slow]


@pytest.fixture
def worker(settings):
    redis.Redis.from_url(settings.CELERY_BROKER_URL).delete("cpu", "gpu")
    env = dict(
        os.environ,
        DATABASE_URL=f"postgres://{connection.settings_dict['USER']}@{connection.settings_dict['HOST']}:"
        f"{connection.settings_dict['PORT']}/{connection.settings_dict['NAME']}",
        COEFVQ_MEDIA_ROOT=str(settings.MEDIA_ROOT),
    )
    process = subprocess.Popen(
        [sys.executable, "-m", "celery", "-A", "coefvq_site", "worker", "-Q", "cpu", "--concurrency", "1",
         "--pool", "prefork", "-l", "warning", "--without-heartbeat", "--without-mingle", "--without-gossip"],
        env=env, cwd=settings.BASE_DIR,
    )
    yield process
    process.send_signal(signal.SIGTERM)
    try:
        process.wait(timeout=30)
    except subprocess.TimeoutExpired:
        process.kill()


def wait_for_state(video_id: int, states, timeout: float = 240) -> Video:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        video = Video.objects.get(pk=video_id)
        if video.state in states:
            return video
        time.sleep(0.5)
    raise AssertionError(f"video {video_id} still {video.state} after {timeout} s")


def test_worker_extracts_speech_and_onscreen_text(worker, speech_text_clip, garbage_file):
    with speech_text_clip.open("rb") as stream:
        good = do_ingest(stream, filename="festival.mp4", source="api", caption="fest").video
    with garbage_file.open("rb") as stream:
        bad = do_ingest(stream, filename="broken.mp4", source="api").video

    good = wait_for_state(good.pk, {"extracted", "failed"})
    bad = wait_for_state(bad.pk, {"extracted", "failed"})
    assert good.state == "extracted", good.error_reason
    transcript = " ".join(good.transcript.values_list("text", flat=True)).lower()
    assert "garden" in transcript and "festival" in transcript
    assert speech_text_clip.onscreen in " ".join(good.ocr_lines.values_list("text", flat=True)).upper()
    assert bad.state == "failed" and bad.error_reason
    assert worker.poll() is None, "the worker process must survive a broken file"
