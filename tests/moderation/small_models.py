"""Small but real models for the Django-side tests: a baseline trained on a dozen captions, and the
MiniLM+Whisper MLLM straight from its constructor (untrained head), saved as the pipeline loads them."""

from __future__ import annotations

from pathlib import Path

from inference.baseline import BaselineClassifier, train_baseline
from inference.mllm import MLLMConfig, MultimodalClassifier
from inference.types import MediaInfo, VideoFeatures

CAPTIONS = {
    "ok": ["my cat sleeping in the sun", "cooking pasta with garlic", "walk along the river at dawn"],
    "scam": ["send one bitcoin get two back", "double your crypto today dm me", "free money giveaway pay the fee"],
    "drugs": ["cheap pills without prescription", "buy weed delivered tonight", "coke for sale hit me up"],
    "weapons": ["selling pistols and ammo cheap", "how to build a gun at home", "rifles for sale no papers"],
}


def caption_only(caption: str) -> VideoFeatures:
    """A video that is only a caption: no frames, audio, speech or on-screen text."""
    return VideoFeatures(info=MediaInfo(container="test", duration_s=0.0, size_bytes=0, has_video=False,
                                        has_audio=False), caption=caption, frames=[], audio=None)


# Baseline rows: (video, label), captions only.
CAPTION_ROWS = [(caption_only(caption), label) for label, captions in CAPTIONS.items() for caption in captions]


def save_small_models(root: Path, whisper_checkpoint: str) -> BaselineClassifier:
    """Train the baseline into root/baseline and save the MLLM into root/mllm; returns the baseline."""
    baseline = train_baseline(CAPTION_ROWS, CAPTION_ROWS, progress=False)
    baseline.save(root / "baseline")
    MultimodalClassifier(MLLMConfig(audio_checkpoint=whisper_checkpoint)).save(root / "mllm")
    return baseline
