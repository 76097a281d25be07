"""Feature extraction on a real synthetic clip: isolated decode, Whisper transcript, OCR, cache round trip."""

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch

from inference.asr import SpeechTranscriber, TranscriberConfig
from inference.features import (
    FeatureExtractor,
    FeatureExtractorConfig,
    extract_features,
    extract_timed,
    features_from_cache_dict,
    features_to_cache_dict,
)
from inference.media import MediaLimits
from inference.ocr import OcrReader
from inference.types import MediaError
from inference.whisper_import import ensure_checkpoint, is_valid_checkpoint

REPO = Path(__file__).resolve().parents[2]
needs_espeak = pytest.mark.skipif(shutil.which("espeak-ng") is None, reason="espeak-ng is not installed")


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory) -> str:
    local = REPO / "var" / "models" / "whisper-tiny.en.pt"
    if local.is_file() and is_valid_checkpoint(local):
        return str(local)
    # the same file test_asr.py converts once per session
    return str(ensure_checkpoint(tmp_path_factory.getbasetemp() / "whisper-tiny.en.pt"))


@pytest.fixture(scope="module")
def clip_features(checkpoint, speech_clip):
    transcriber = SpeechTranscriber(TranscriberConfig(checkpoint_path=checkpoint, beam_size=1, best_of=1))
    return extract_timed(speech_clip, "my evening vlog", transcriber, OcrReader(), MediaLimits(), n_frames=4, max_side=320)


@needs_espeak
def test_extract_reads_speech_and_onscreen_text(clip_features, speech_clip_captions):
    features, timings = clip_features
    assert features.caption == "my evening vlog"
    assert len(features.frames) == 4 and max(features.frames[0].image.shape[:2]) <= 320
    assert features.audio is not None and features.audio.dtype == np.float32
    # the clip says "send me one bitcoin and I will send two back" (greedy tiny.en may hear "bit coin")
    assert "coin" in features.transcript_text.lower()
    ocr = features.ocr_text.upper()
    assert any(word in ocr for word in speech_clip_captions[0].split())
    assert set(timings) == {"decode_s", "asr_s", "ocr_s"} and all(v >= 0 for v in timings.values())


@needs_espeak
def test_cache_dict_round_trips_through_torch_save(clip_features, tmp_path):
    features, timings = clip_features
    data = features_to_cache_dict(features, timings)
    torch.save(data, tmp_path / "entry.pt")
    back = features_from_cache_dict(torch.load(tmp_path / "entry.pt", weights_only=False))
    assert back.info == features.info and back.caption == features.caption
    assert back.transcript == features.transcript and back.ocr == features.ocr
    assert all(np.array_equal(a.image, b.image) and a.t_s == b.t_s for a, b in zip(back.frames, features.frames))
    assert np.array_equal(back.audio, features.audio)
    assert back.transcript_text == features.transcript_text


def test_from_cache_dict_refuses_foreign_entries():
    with pytest.raises(ValueError):
        features_from_cache_dict({"caption": "x", "frames": []})


@needs_espeak
def test_extractor_fills_the_benchmark_cache_once(checkpoint, speech_clip, tmp_path):
    from inference.benchmark import build_feature_cache, load_cached

    (tmp_path / "videos").mkdir()
    shutil.copy(speech_clip, tmp_path / "videos" / "a.mp4")
    manifest = tmp_path / "videos" / "manifest.jsonl"
    manifest.write_text(json.dumps({"path": "a.mp4", "caption": "hello", "split": "test"}) + "\n")
    extractor = FeatureExtractor(FeatureExtractorConfig(whisper_checkpoint=checkpoint, n_frames=2, beam_size=1))
    build_feature_cache(manifest, tmp_path / "cache", extractor, extractor.version, progress=False)
    [(row, entry)] = load_cached(manifest, tmp_path / "cache", extractor.version, split="test")
    features = features_from_cache_dict(entry)
    assert row["caption"] == features.caption == "hello"
    assert len(features.frames) == 2 and "coin" in features.transcript_text.lower()
    assert entry["timings"]["asr_s"] > 0


def test_version_names_what_changes_the_result():
    a = FeatureExtractorConfig()
    assert a.version != FeatureExtractorConfig(n_frames=4).version
    assert a.version != FeatureExtractorConfig(beam_size=1).version
    assert a.version != FeatureExtractorConfig(whisper_checkpoint="var/models/whisper-small.en.pt").version


def test_a_file_that_is_not_a_video_is_a_media_error(checkpoint, text_file):
    transcriber = SpeechTranscriber(TranscriberConfig(checkpoint_path=checkpoint))
    with pytest.raises(MediaError):
        extract_features(text_file, "", transcriber, OcrReader())
