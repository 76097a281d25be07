"""Feature extraction for one video: isolated decode, speech transcript (ASR), on-screen text (OCR).

Extraction runs once for every video, and both stages of the cascade read its result:

- stage 1 (every video): `inference.baseline.cheap_features` of the caption, the transcript, the
  on-screen text (sentence embeddings, the policy prior, a missing flag each) and cheap frame and
  waveform statistics;
- stage 2 (only routed videos): the same evidence through the multimodal model.

ASR dominates the extraction's time on a CPU (bench/results/worker_cost), and it is paid for every
video, routed or not: the cascade saves stage 2's compute, not the extraction's.

`extract_features` does it all in one pass (the benchmark caches everything once);
`extract_timed` also says how long each part took. `features_to_cache_dict` /
`features_from_cache_dict` turn a `VideoFeatures` into plain dicts, lists and arrays for
`inference.benchmark`'s cache (no pickled classes, so renaming a dataclass never breaks an old
cache).
"""

from __future__ import annotations

import os
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from inference.asr import SpeechTranscriber, TranscriberConfig
from inference.media import MediaLimits
from inference.ocr import OcrConfig, OcrReader
from inference.sandbox import decode_isolated
from inference.types import Frame, MediaInfo, OcrLine, TranscriptSegment, VideoFeatures

CACHE_FORMAT = "coefvq-features-v1"
TIMING_KEYS: tuple[str, ...] = ("decode_s", "asr_s", "ocr_s")


@dataclass(frozen=True)
class FeatureExtractorConfig:
    whisper_checkpoint: str = "var/models/whisper-tiny.en.pt"
    n_frames: int = 8
    max_side: int = 320  # frames are decoded with their longer side at most this (OCR needs the pixels)
    limits: MediaLimits = field(default_factory=MediaLimits)
    ocr: OcrConfig = field(default_factory=OcrConfig)
    beam_size: int = 5  # Whisper decoding; 1 (greedy) is about twice as fast on CPU

    @property
    def version(self) -> str:
        """Names everything that changes the cached result, so a changed extractor never reads stale features."""
        checkpoint = Path(self.whisper_checkpoint).stem
        return f"{CACHE_FORMAT}-f{self.n_frames}x{self.max_side}-{checkpoint}-b{self.beam_size}-ocr{self.ocr.det_limit_side_len}"


def extract_timed(
    path: str | os.PathLike,
    caption: str,
    transcriber: SpeechTranscriber,
    ocr_reader: OcrReader,
    limits: MediaLimits = MediaLimits(),
    n_frames: int = 8,
    max_side: int = 320,
) -> tuple[VideoFeatures, dict[str, float]]:
    """-> (features, wall seconds of {"decode_s", "asr_s", "ocr_s"}). Raises MediaError on a bad file."""
    t0 = time.perf_counter()
    media = decode_isolated(Path(path), limits, n_frames=n_frames, max_side=max_side)
    t1 = time.perf_counter()
    transcript = transcriber.transcribe(media.audio) if media.audio is not None else []
    t2 = time.perf_counter()
    ocr = ocr_reader.read(media.frames)
    t3 = time.perf_counter()
    features = VideoFeatures(
        info=media.info, caption=caption or "", frames=media.frames, audio=media.audio, transcript=transcript, ocr=ocr
    )
    return features, {"decode_s": t1 - t0, "asr_s": t2 - t1, "ocr_s": t3 - t2}


def extract_features(
    path: str | os.PathLike,
    caption: str,
    transcriber: SpeechTranscriber,
    ocr_reader: OcrReader,
    limits: MediaLimits = MediaLimits(),
    n_frames: int = 8,
    max_side: int = 320,
) -> VideoFeatures:
    """Decode `path` in an isolated child, transcribe its audio and read the text on its frames."""
    features, _ = extract_timed(path, caption, transcriber, ocr_reader, limits, n_frames, max_side)
    return features


def features_to_cache_dict(features: VideoFeatures, timings: dict[str, float] | None = None) -> dict[str, Any]:
    """Plain dicts, lists, strings and numpy arrays only."""
    return {
        "format": CACHE_FORMAT,
        "info": asdict(features.info),
        "caption": features.caption,
        "frames": [{"t_s": float(f.t_s), "image": np.ascontiguousarray(f.image)} for f in features.frames],
        "audio": None if features.audio is None else np.asarray(features.audio, dtype=np.float32),
        "transcript": [asdict(s) for s in features.transcript],
        "ocr": [{**asdict(line), "box": list(line.box)} for line in features.ocr],
        "timings": {k: float(v) for k, v in (timings or {}).items()},
    }


def features_from_cache_dict(data: dict[str, Any]) -> VideoFeatures:
    if data.get("format") != CACHE_FORMAT:
        raise ValueError(f"not a {CACHE_FORMAT} cache entry (format {data.get('format')!r})")
    return VideoFeatures(
        info=MediaInfo(**data["info"]),
        caption=data["caption"],
        frames=[Frame(t_s=f["t_s"], image=f["image"]) for f in data["frames"]],
        audio=data["audio"],
        transcript=[TranscriptSegment(**s) for s in data["transcript"]],
        ocr=[OcrLine(**{**line, "box": tuple(line["box"])}) for line in data["ocr"]],
    )


class FeatureExtractor:
    """`extract(path, caption) -> cache dict` for `inference.benchmark.build_feature_cache`.

    Loads Whisper and the OCR models once (on first use) and reuses them for every video.
    """

    def __init__(self, config: FeatureExtractorConfig = FeatureExtractorConfig()):
        self.config = config
        self.transcriber = SpeechTranscriber(
            TranscriberConfig(checkpoint_path=config.whisper_checkpoint, beam_size=config.beam_size, best_of=config.beam_size)
        )
        self.ocr_reader = OcrReader(config.ocr)

    @property
    def version(self) -> str:
        return self.config.version

    def extract(self, path: str | os.PathLike, caption: str) -> VideoFeatures:
        cfg = self.config
        return extract_features(path, caption, self.transcriber, self.ocr_reader, cfg.limits, cfg.n_frames, cfg.max_side)

    def __call__(self, path: str | os.PathLike, caption: str) -> dict[str, Any]:
        """The cache entry: features_to_cache_dict with the decode / ASR / OCR wall seconds."""
        cfg = self.config
        features, timings = extract_timed(
            path, caption, self.transcriber, self.ocr_reader, cfg.limits, cfg.n_frames, cfg.max_side
        )
        return features_to_cache_dict(features, timings)
