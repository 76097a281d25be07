"""The processing steps of one video, callable from a Celery task or inline from a command.

Each step takes a video id, re-reads the row, and is idempotent: it returns early when the video
is not in a state the step works on, and a re-run replaces what an interrupted run left behind.
"""

from __future__ import annotations

import logging
import time
from contextlib import contextmanager
from contextvars import ContextVar
from functools import cache

from django.conf import settings
from django.core.files.base import ContentFile
from django.db import transaction
from django.db.models import Exists, OuterRef, Q

from inference.asr import SpeechTranscriber, TranscriberConfig
from inference.media import MediaLimits
from inference.ocr import OcrConfig, OcrReader
from inference.sandbox import decode_isolated
from inference.types import DecodedMedia, MediaError, VideoFeatures
from inference.whisper_import import BASE, TINY_EN, ensure_checkpoint

from . import evidence
from .actions.enqueue import send_task
from .actions.video_state import do_fail, do_start_attempt, do_transition
from .models import CascadeConfig, FrameSample, MediaFacts, OcrLine, TranscriptSegment, Video

log = logging.getLogger(__name__)

EXTRACT_FROM = (Video.State.RECEIVED, Video.State.EXTRACTING)


def media_limits() -> MediaLimits:
    return MediaLimits(
        max_bytes=settings.COEFVQ_MEDIA_MAX_BYTES,
        max_duration_s=settings.COEFVQ_MEDIA_MAX_DURATION_S,
        max_pixels=settings.COEFVQ_MEDIA_MAX_PIXELS,
        decode_timeout_s=settings.COEFVQ_DECODE_TIMEOUT_S,
    )


def ensure_whisper_checkpoints() -> list[str]:
    """Convert the packaged Whisper models into the checkpoints the settings name: base for the
    transcriber, tiny.en for stage 2's audio tower (a valid file already there is kept)."""
    return [str(ensure_checkpoint(settings.COEFVQ_ASR_CHECKPOINT, BASE)),
            str(ensure_checkpoint(settings.COEFVQ_WHISPER_CHECKPOINT, TINY_EN))]


@cache
def transcriber() -> SpeechTranscriber:
    return SpeechTranscriber(TranscriberConfig(checkpoint_path=str(settings.COEFVQ_ASR_CHECKPOINT)))


@cache
def ocr_reader() -> OcrReader:
    return OcrReader(OcrConfig(min_score=settings.COEFVQ_OCR_MIN_SCORE))


def decode(video: Video) -> DecodedMedia:
    """Frames and audio, decoded in a sandboxed child; MediaError when the file does not decode."""
    return decode_isolated(video.file.path, media_limits(), n_frames=settings.COEFVQ_FRAMES_PER_VIDEO,
                           max_side=settings.COEFVQ_FRAME_MAX_SIDE,
                           memory_limit_bytes=settings.COEFVQ_DECODE_MEMORY_BYTES)


def decode_or_fail(video: Video) -> DecodedMedia | None:
    """`decode`, and a file that does not decode ends the video failed with the decoder's reason
    (the file is kept)."""
    try:
        return decode(video)
    except MediaError as error:
        do_fail(video.pk, code=error.code, reason=error.reason, expected=[video.state])
        return None


def backfill_evidence(video: Video) -> None:
    """A video extracted before its audio was kept gets it now, decoded once more; MediaError
    when the file no longer decodes."""
    if evidence.needs_backfill(video):
        evidence.store_audio(video.media, decode(video).audio)


def evidence_or_fail(video: Video) -> VideoFeatures | None:
    """The video's stored evidence for a model to read; None when the video ended failed
    because a backfill found the file no longer decodes."""
    try:
        backfill_evidence(video)
    except MediaError as error:
        do_fail(video.pk, code=error.code, reason=error.reason, expected=[video.state])
        return None
    return evidence.load_features(video)


def extract(video_id: int) -> None:
    """Probe, decode (the only decode of these bytes), transcribe and read on-screen text, and
    store it all. Another upload of the same bytes that has its evidence already gives a copy of
    it instead: the media work is done once per content."""
    attempt = do_start_attempt(video_id, expected=EXTRACT_FROM, to_state=Video.State.EXTRACTING)
    if attempt is None:
        return
    video = Video.objects.get(pk=video_id)
    twin = extracted_twin(video)
    if twin is not None:
        _copy_evidence(video, twin)
        return
    t0 = time.perf_counter()
    decoded = decode_or_fail(video)
    if decoded is None:
        return
    t1 = time.perf_counter()
    segments = transcriber().transcribe(decoded.audio) if decoded.audio is not None and decoded.audio.size else []
    t2 = time.perf_counter()
    lines = ocr_reader().read(decoded.frames)
    seconds = {"decode_s": t1 - t0, "asr_s": t2 - t1, "ocr_s": time.perf_counter() - t2}
    _store_evidence(video, decoded, segments, lines, seconds)


def extracted_twin(video: Video) -> Video | None:
    """An earlier upload of the same bytes (any uploader, any policy) whose evidence is stored
    in the current form; extraction copies that instead of decoding again."""
    return (Video.objects.filter(sha256=video.sha256, media__evidence_version=evidence.EVIDENCE_VERSION)
            .exclude(pk=video.pk).exclude(state__in=EXTRACT_FROM).select_related("media").order_by("pk").first())


def _store_evidence(video: Video, decoded: DecodedMedia, segments, lines, seconds: dict[str, float]) -> None:
    """Keep what extraction found; `seconds` (each step's wall time) goes into the event."""
    started = time.perf_counter()
    info = decoded.info
    with transaction.atomic():
        media = _replace_media_facts(video, dict(
            container=info.container[:100], duration_s=info.duration_s, width=info.width, height=info.height,
            fps=info.fps, rotation=info.rotation, video_codec=info.video_codec[:40],
            audio_codec=info.audio_codec[:40], has_audio=info.has_audio,
            audio_sample_rate=info.audio_sample_rate, audio_channels=info.audio_channels,
        ))
        for index, frame in enumerate(decoded.frames):
            _save_frame(FrameSample(video=video, index=index, t_s=frame.t_s, height=frame.image.shape[0],
                                    width=frame.image.shape[1]), evidence.jpeg_bytes(frame.image))
        evidence.store_audio(media, decoded.audio)
        TranscriptSegment.objects.bulk_create(
            TranscriptSegment(video=video, index=i, start_s=s.start_s, end_s=max(s.end_s, s.start_s), text=s.text)
            for i, s in enumerate(segments)
        )
        OcrLine.objects.bulk_create(
            OcrLine(video=video, index=i, t_s=line.t_s, text=line.text, score=line.score, box=list(line.box))
            for i, line in enumerate(lines)
        )
        _finish_extraction(video, message=f"{len(decoded.frames)} frames, {len(segments)} speech segments, "
                           f"{len(lines)} on-screen text lines.",
                           data={"seconds": {**seconds, "store_s": time.perf_counter() - started}})


def _copy_evidence(video: Video, twin: Video) -> None:
    """Give `video` its own copy of the evidence `twin` stored for the same bytes. The rows and
    files are copied, not shared, so nothing one video's later steps replace changes the other's."""
    started = time.perf_counter()
    copied = ("id", "video", "audio")
    with transaction.atomic():
        media = _replace_media_facts(video, {field.name: getattr(twin.media, field.name)
                                             for field in MediaFacts._meta.concrete_fields if field.name not in copied})
        frames = list(twin.frames.all())
        for sample in frames:
            with sample.image.open("rb") as handle:
                _save_frame(FrameSample(video=video, index=sample.index, t_s=sample.t_s, height=sample.height,
                                        width=sample.width), handle.read())
        if media.audio:
            media.audio.delete(save=False)
        if twin.media.audio:
            with twin.media.audio.open("rb") as handle:
                media.audio.save(f"{video.pk}.wav", ContentFile(handle.read()), save=False)
        media.save(update_fields=["audio"])
        segments = TranscriptSegment.objects.bulk_create(
            TranscriptSegment(video=video, index=s.index, start_s=s.start_s, end_s=s.end_s, text=s.text)
            for s in twin.transcript.all()
        )
        lines = OcrLine.objects.bulk_create(
            OcrLine(video=video, index=line.index, t_s=line.t_s, text=line.text, score=line.score, box=line.box)
            for line in twin.ocr_lines.all()
        )
        _finish_extraction(video, message=f"Evidence copied from video #{twin.pk} (the same bytes): {len(frames)} "
                           f"frames, {len(segments)} speech segments, {len(lines)} on-screen text lines.",
                           data={"copied_from": twin.pk, "seconds": {"copy_s": time.perf_counter() - started}})


def _replace_media_facts(video: Video, facts: dict) -> MediaFacts:
    """Clear what an interrupted earlier run stored for this video, and store its media facts."""
    for old in FrameSample.objects.filter(video=video):
        old.image.delete(save=False)
    FrameSample.objects.filter(video=video).delete()
    TranscriptSegment.objects.filter(video=video).delete()
    OcrLine.objects.filter(video=video).delete()
    media, _ = MediaFacts.objects.update_or_create(video=video, defaults=facts)
    return media


def _save_frame(sample: FrameSample, jpeg: bytes) -> None:
    sample.image.save(f"{sample.video_id}/{sample.index:03d}.jpg", ContentFile(jpeg), save=False)
    sample.save()


def _finish_extraction(video: Video, *, message: str, data: dict) -> None:
    moved = do_transition(video.pk, expected=[Video.State.EXTRACTING], to_state=Video.State.EXTRACTED,
                          message=message, data=data, attempts=0)
    if moved:
        transaction.on_commit(lambda: enqueue_scoring(video.pk))
    else:
        log.info("Video %s left the extracting state while it was processed; result kept, state not changed", video.pk)


_inline = ContextVar("coefvq_inline", default=False)


@contextmanager
def inline_mode():
    """Run the steps in this process: follow-up steps are called, not enqueued."""
    token = _inline.set(True)
    try:
        yield
    finally:
        _inline.reset(token)


def enqueue_allowed() -> bool:
    return not _inline.get()


def enqueue_scoring(video_id: int) -> None:
    if not enqueue_allowed() or not has_cascade(Video.objects.values_list("policy_id", flat=True).get(pk=video_id)):
        return  # nothing to score with yet: the video rests extracted
    send_task("score_baseline", video_id, retried_by="the reconciler")


# Configurations that can score: active, with a baseline. One row must satisfy both (a filter
# across the relation would test them in separate rows: an old version's baseline would count).
def scoring_configs():
    return CascadeConfig.objects.filter(is_active=True, baseline_version__isnull=False)


def has_cascade(policy_id: int) -> bool:
    return scoring_configs().filter(policy_id=policy_id).exists()


# An extracted video whose policy has no active baseline rests there until one is deployed.
WAITING_FOR_MODELS = Q(state=Video.State.EXTRACTED) & ~Exists(scoring_configs().filter(policy_id=OuterRef("policy_id")))


def settled_ids(video_ids) -> set[int]:
    """The videos that rest until something new happens: decided, failed, or extracted with no
    cascade to score them."""
    videos = Video.objects.filter(pk__in=list(video_ids))
    return set(videos.filter(Q(state__in=Video.TERMINAL_STATES) | WAITING_FOR_MODELS).values_list("pk", flat=True))
