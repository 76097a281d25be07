"""Plain dataclasses that cross the boundary between `inference` and its callers.

`inference` never imports Django: it takes paths, arrays and text and returns these.
`moderation` stores them.
"""

from __future__ import annotations

import unicodedata
from dataclasses import dataclass, field

import numpy as np

SAMPLE_RATE = 16_000  # Whisper's rate; all audio in `inference` is 16 kHz mono float32.


@dataclass(frozen=True)
class MediaInfo:
    """What a probe learns about a file without decoding it all."""

    container: str  # demuxer name, e.g. "mov,mp4,m4a,3gp,3g2,mj2"
    duration_s: float
    size_bytes: int
    has_video: bool
    has_audio: bool
    width: int = 0  # display size, after rotation
    height: int = 0
    fps: float = 0.0
    rotation: int = 0  # degrees, from the display matrix
    video_codec: str = ""
    audio_codec: str = ""
    audio_sample_rate: int = 0
    audio_channels: int = 0


@dataclass
class Frame:
    t_s: float  # presentation time of the decoded frame
    image: np.ndarray  # (H, W, 3) uint8 RGB, already rotated for display


def without_control_characters(text: str) -> str:
    """text with control characters as spaces, and runs of spaces as one. Whisper's and the LLM's
    byte-level tokenizers and OCR can produce any character, NUL included, which PostgreSQL cannot
    store in text or jsonb: what a model read or wrote is cleaned where it is made."""
    return " ".join("".join(" " if unicodedata.category(c) == "Cc" else c for c in text).split())


@dataclass(frozen=True)
class TranscriptSegment:
    start_s: float
    end_s: float
    text: str

    def __post_init__(self):
        object.__setattr__(self, "text", without_control_characters(self.text))


@dataclass(frozen=True)
class OcrLine:
    t_s: float  # time of the frame the text was read from
    text: str
    score: float
    box: tuple[float, float, float, float]  # x0, y0, x1, y1 in frame pixels

    def __post_init__(self):
        object.__setattr__(self, "text", without_control_characters(self.text))


@dataclass
class DecodedMedia:
    """Cheap decode: what stage 1 needs."""

    info: MediaInfo
    frames: list[Frame]
    audio: np.ndarray | None  # (n_samples,) float32 at SAMPLE_RATE, None without audio


@dataclass
class VideoFeatures:
    """Everything the models and the reviewers see about one video."""

    info: MediaInfo
    caption: str
    frames: list[Frame]
    audio: np.ndarray | None  # (n_samples,) float32 at SAMPLE_RATE
    transcript: list[TranscriptSegment] = field(default_factory=list)
    ocr: list[OcrLine] = field(default_factory=list)

    @property
    def transcript_text(self) -> str:
        return " ".join(s.text.strip() for s in self.transcript).strip()

    @property
    def ocr_text(self) -> str:
        return " ".join(line.text.strip() for line in self.ocr).strip()


class MediaError(Exception):
    """A file that cannot be processed. `reason` is shown to moderators as is."""

    def __init__(self, reason: str, *, code: str = "invalid_media"):
        super().__init__(reason)
        self.reason = reason
        self.code = code
