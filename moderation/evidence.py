"""A video's stored evidence: what extraction decoded once, read back by every later step.

Extraction decodes the file in the sandbox once and keeps the sampled frames (JPEG), the 16 kHz
mono audio (16-bit PCM WAV), the speech transcript and the on-screen text. Stage 1, stage 2 and
retraining read these (`load_features`) instead of decoding the upload again: decoding untrusted
bytes is the risky, sandboxed step, and it happens once per video.
"""

from __future__ import annotations

import io
import wave

import numpy as np
from django.core.files.base import ContentFile
from PIL import Image

from inference.types import SAMPLE_RATE, Frame, MediaInfo, OcrLine, TranscriptSegment, VideoFeatures

from .models import MediaFacts, Video

# Bump when extraction stores something new that a later step needs: videos stored under another
# version have their missing part decoded once more (`needs_backfill`).
EVIDENCE_VERSION = "frames-jpeg+audio-pcm16"
JPEG_QUALITY = 85


def jpeg_bytes(image: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(image).save(buffer, format="JPEG", quality=JPEG_QUALITY)
    return buffer.getvalue()


def wav_bytes(audio: np.ndarray) -> bytes:
    """(n_samples,) float32 in [-1, 1] at SAMPLE_RATE -> a mono 16-bit PCM WAV file."""
    pcm = (np.clip(np.asarray(audio, dtype=np.float32), -1.0, 1.0) * 32767.0).round().astype("<i2")  # (n,)
    buffer = io.BytesIO()
    with wave.open(buffer, "wb") as out:
        out.setnchannels(1)
        out.setsampwidth(2)
        out.setframerate(SAMPLE_RATE)
        out.writeframes(pcm.tobytes())
    return buffer.getvalue()


def read_wav(data: bytes) -> np.ndarray:
    """A file written by wav_bytes -> (n_samples,) float32 at SAMPLE_RATE."""
    with wave.open(io.BytesIO(data), "rb") as source:
        if (source.getnchannels(), source.getsampwidth(), source.getframerate()) != (1, 2, SAMPLE_RATE):
            raise ValueError("stored audio is not 16 kHz mono 16-bit PCM")
        pcm = np.frombuffer(source.readframes(source.getnframes()), dtype="<i2")  # (n,)
    return pcm.astype(np.float32) / 32767.0


def store_audio(media: MediaFacts, audio: np.ndarray | None) -> None:
    """Keep the decoded audio beside the media facts (nothing for a file without audio)."""
    if media.audio:
        media.audio.delete(save=False)
    if audio is not None and len(audio):
        media.audio.save(f"{media.video_id}.wav", ContentFile(wav_bytes(audio)), save=False)
    media.evidence_version = EVIDENCE_VERSION
    media.save(update_fields=["audio", "evidence_version"])


def has_evidence(video: Video) -> bool:
    """Extraction has stored something for this video (the missing relation is an AttributeError)."""
    return getattr(video, "media", None) is not None


def needs_backfill(video: Video) -> bool:
    """Extracted before the audio was kept: one more sandboxed decode stores it."""
    return has_evidence(video) and video.media.evidence_version != EVIDENCE_VERSION


def media_info(video: Video) -> MediaInfo:
    media = video.media
    return MediaInfo(
        container=media.container, duration_s=media.duration_s, size_bytes=video.size_bytes,
        has_video=media.width > 0, has_audio=media.has_audio, width=media.width, height=media.height,
        fps=media.fps, rotation=media.rotation, video_codec=media.video_codec, audio_codec=media.audio_codec,
        audio_sample_rate=media.audio_sample_rate, audio_channels=media.audio_channels,
    )


def stored_frames(video: Video) -> list[Frame]:
    frames = []
    for sample in video.frames.all():  # in index order (Meta.ordering); .all() keeps a prefetch
        with sample.image.open("rb") as handle:
            frames.append(Frame(t_s=sample.t_s, image=np.asarray(Image.open(handle).convert("RGB"))))  # (H, W, 3)
    return frames


def stored_audio(video: Video) -> np.ndarray | None:
    media = video.media
    if not media.audio:
        return None
    with media.audio.open("rb") as handle:
        return read_wav(handle.read())


def load_features(video: Video) -> VideoFeatures:
    """Everything both stages read about one video, from what extraction stored."""
    return VideoFeatures(
        info=media_info(video), caption=video.caption, frames=stored_frames(video), audio=stored_audio(video),
        transcript=[TranscriptSegment(s.start_s, s.end_s, s.text) for s in video.transcript.all()],
        ocr=[OcrLine(line.t_s, line.text, line.score, tuple(line.box) if len(line.box) == 4 else (0, 0, 0, 0))
             for line in video.ocr_lines.all()],
    )
