from datetime import timedelta
from pathlib import Path

import pytest
import redis
from django.conf import settings
from django.utils import timezone

from inference.types import OcrLine, TranscriptSegment
from moderation import pipeline, tasks
from moderation.actions.ingest import do_ingest
from moderation.models import CascadeConfig, ModelVersion, Video

pytestmark = pytest.mark.django_db


def ingest_path(path: Path, caption="") -> Video:
    with path.open("rb") as stream:
        return do_ingest(stream, filename=path.name, source="cli", caption=caption, enqueue=False).video


def test_extract_stores_media_facts_frames_transcript_and_onscreen_text(speech_text_clip):
    video = ingest_path(speech_text_clip)
    pipeline.extract(video.pk)
    video.refresh_from_db()
    assert video.state == Video.State.EXTRACTED, video.error_reason
    assert video.media.has_audio and video.media.duration_s > 2
    assert (video.media.width, video.media.height) == (320, 240)
    frames = list(video.frames.all())
    assert len(frames) == settings.COEFVQ_FRAMES_PER_VIDEO
    assert [f.t_s for f in frames] == sorted(f.t_s for f in frames)
    assert Path(frames[0].image.path).exists()
    transcript = " ".join(video.transcript.values_list("text", flat=True)).lower()
    assert "garden" in transcript and "festival" in transcript
    ocr = " ".join(video.ocr_lines.values_list("text", flat=True)).upper()
    assert speech_text_clip.onscreen in ocr


def test_control_characters_a_model_decodes_are_stored_as_spaces(speech_text_clip, monkeypatch):
    # Whisper and OCR can decode any byte; PostgreSQL refuses a NUL in text, which would fail the video.
    class Reads:
        def transcribe(self, audio):
            return [TranscriptSegment(0.0, 1.0, "one\x00bitcoin\x07 back")]

        def read(self, frames):
            return [OcrLine(0.5, "DM\x00 ME", 0.9, (0, 0, 10, 10))]

    monkeypatch.setattr(pipeline, "transcriber", Reads)
    monkeypatch.setattr(pipeline, "ocr_reader", Reads)
    video = ingest_path(speech_text_clip)
    pipeline.extract(video.pk)
    video.refresh_from_db()
    assert video.state == Video.State.EXTRACTED, video.error_reason
    assert list(video.transcript.values_list("text", flat=True)) == ["one bitcoin back"]
    assert list(video.ocr_lines.values_list("text", flat=True)) == ["DM ME"]


def test_extract_twice_changes_nothing_twice(silent_clip):
    video = ingest_path(silent_clip)
    pipeline.extract(video.pk)
    events = video.events.count()
    pipeline.extract(video.pk)
    video.refresh_from_db()
    assert video.state == Video.State.EXTRACTED
    assert video.events.count() == events
    assert video.frames.count() == settings.COEFVQ_FRAMES_PER_VIDEO
    assert not video.media.has_audio and video.transcript.count() == 0


def test_broken_file_fails_with_a_reason_and_is_kept(garbage_file):
    video = ingest_path(garbage_file)
    pipeline.extract(video.pk)
    video.refresh_from_db()
    assert video.state == Video.State.FAILED
    assert "not a video" in video.error_reason.lower() or "damaged" in video.error_reason.lower()
    assert Path(video.file.path).read_bytes() == garbage_file.read_bytes()


def test_a_file_that_keeps_killing_workers_is_given_up(silent_clip):
    video = ingest_path(silent_clip)
    Video.objects.filter(pk=video.pk).update(
        state=Video.State.EXTRACTING, attempts=settings.COEFVQ_MAX_ATTEMPTS, lease_expires_at=None
    )
    pipeline.extract(video.pk)
    video.refresh_from_db()
    assert video.state == Video.State.FAILED
    assert video.error_code == "too_many_attempts"
    assert "given up" in video.error_reason


def test_reconciler_re_enqueues_stuck_videos_on_the_real_broker(silent_clip):
    broker = redis.Redis.from_url(settings.CELERY_BROKER_URL)
    broker.delete("cpu")
    stuck = ingest_path(silent_clip)
    an_hour_ago = timezone.now() - timedelta(hours=1)
    Video.objects.filter(pk=stuck.pk).update(state_changed_at=an_hour_ago, updated_at=an_hour_ago)
    fresh = do_ingest(open(__file__, "rb"), filename="fresh.mp4", source="cli", enqueue=False).video
    assert tasks.reconcile_stuck_videos() == 1
    assert broker.llen("cpu") == 1
    assert str(stuck.pk) in broker.lindex("cpu", 0).decode()
    assert str(fresh.pk) not in broker.lindex("cpu", 0).decode().split('"argsrepr": ')[1][:20]
    broker.delete("cpu")


def test_reconciler_sends_a_stuck_video_once_per_stuck_period(silent_clip):
    """Behind a long backlog a re-sent message may just not have come up yet: sending the whole
    backlog again on every run would grow the queue faster than workers empty it."""
    broker = redis.Redis.from_url(settings.CELERY_BROKER_URL)
    broker.delete("cpu")
    an_hour_ago = timezone.now() - timedelta(hours=1)
    waiting = ingest_path(silent_clip)
    Video.objects.filter(pk=waiting.pk).update(state_changed_at=an_hour_ago, updated_at=an_hour_ago)
    orphaned = do_ingest(open(__file__, "rb"), filename="orphan.mp4", source="cli", enqueue=False).video
    Video.objects.filter(pk=orphaned.pk).update(state=Video.State.EXTRACTING, lease_expires_at=an_hour_ago)

    assert tasks.reconcile_stuck_videos() == 2
    assert tasks.reconcile_stuck_videos() == 0
    assert broker.llen("cpu") == 2
    assert Video.objects.get(pk=orphaned.pk).lease_expires_at is None
    broker.delete("cpu")


def test_a_policy_whose_active_configuration_has_no_baseline_waits_for_models(policy, silent_clip):
    """Blanking the baseline in a new configuration version: an older, inactive version still names
    one, but that is no "active configuration with a baseline", so extracted videos rest (`ingest
    --wait` returns, the reconciler sends nothing) until a baseline is active again."""
    broker = redis.Redis.from_url(settings.CELERY_BROKER_URL)
    broker.delete("cpu")
    baseline = ModelVersion.objects.create(policy=policy, kind="baseline", version="b1", artifact_path="b1")
    CascadeConfig.objects.create(policy=policy, version=1, entropy_threshold=1.0, baseline_version=baseline)
    blanked = CascadeConfig.objects.create(policy=policy, version=2, entropy_threshold=1.0, is_active=True)
    video = ingest_path(silent_clip)
    an_hour_ago = timezone.now() - timedelta(hours=1)
    Video.objects.filter(pk=video.pk).update(state=Video.State.EXTRACTED, updated_at=an_hour_ago)

    assert pipeline.settled_ids([video.pk]) == {video.pk}
    assert tasks.reconcile_stuck_videos() == 0
    assert broker.llen("cpu") == 0

    CascadeConfig.objects.filter(pk=blanked.pk).update(baseline_version=baseline)
    assert pipeline.settled_ids([video.pk]) == set()
    assert tasks.reconcile_stuck_videos() == 1
    broker.delete("cpu")
