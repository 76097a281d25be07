"""Small but real models for the Django-side tests: a baseline trained on a dozen captions, and the
stage-2 LLM classifier on a tiny random Qwen2 straight from its constructor (the prompted LLM, LoRA
untrained), saved as the pipeline loads them."""

from __future__ import annotations

from pathlib import Path

from inference.baseline import BaselineClassifier, train_baseline
from inference.llm import LLMClassifier, LLMConfig
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


def save_small_models(root: Path, whisper_checkpoint: str, llm_path: str) -> BaselineClassifier:
    """Train the baseline into root/baseline and save the stage-2 LLM classifier into root/mllm;
    returns the baseline."""
    baseline = train_baseline(CAPTION_ROWS, CAPTION_ROWS, progress=False)
    baseline.save(root / "baseline")
    LLMClassifier(LLMConfig(audio_checkpoint=whisper_checkpoint, backbone_path=llm_path, dtype="float32",
                            n_frames=3, image_size=32, vision_d_model=32, vision_layers=1, vision_heads=2)
                  ).save(root / "mllm")
    return baseline
