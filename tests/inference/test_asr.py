"""Speech transcription with the packaged Whisper models (tiny.en, and base, the product's
transcriber), converted, on speech espeak-ng synthesizes."""

import difflib
import re
import shutil
import subprocess

import numpy as np
import pytest
from scipy.io import wavfile
from scipy.signal import resample_poly

from inference.asr import SpeechTranscriber, TranscriberConfig
from inference.types import SAMPLE_RATE
from inference.whisper_import import BASE, TINY_EN, ensure_checkpoint

needs_espeak = pytest.mark.skipif(shutil.which("espeak-ng") is None, reason="espeak-ng is not installed")


@pytest.fixture(scope="module", params=[TINY_EN, BASE])
def transcriber(request, tmp_path_factory):
    # Converted once per session; tiny.en is shared with test_whisper_import.py.
    checkpoint = ensure_checkpoint(tmp_path_factory.getbasetemp() / f"whisper-{request.param}.pt", request.param)
    return SpeechTranscriber(TranscriberConfig(checkpoint_path=str(checkpoint)))


def speak(text: str, voice: str, tmp_path) -> np.ndarray:
    """espeak-ng's speech as (n_samples,) float32 at 16 kHz."""
    wav = tmp_path / "speech.wav"
    subprocess.run(["espeak-ng", "-v", voice, "-s", "150", "-w", str(wav), text], check=True)
    rate, samples = wavfile.read(wav)  # int16 at espeak's 22050 Hz
    return resample_poly(samples.astype(np.float32) / 32768, SAMPLE_RATE, rate).astype(np.float32)


def word_overlap(reference: str, hypothesis: str) -> float:
    """Share of the reference's words that the hypothesis has, in order."""
    ref, hyp = (re.findall(r"[a-z0-9']+", s.lower()) for s in (reference, hypothesis))
    blocks = difflib.SequenceMatcher(None, ref, hyp, autojunk=False).get_matching_blocks()
    return sum(b.size for b in blocks) / len(ref)


SPOKEN = [
    ("en-us", "Please send me your bank details and I will double your money today."),
    ("en-gb-x-rp", "Welcome back to my channel, today we are cooking pasta with fresh tomatoes."),
    ("en-us+f3", "Join our gun safety class at the range every Saturday afternoon."),
]


@needs_espeak
def test_synthesized_speech_is_transcribed(transcriber, tmp_path):
    # Each model garbles some voice (base heard "gun safety" from en-us+f3 as "don't save"), so
    # the bar is on the three together, with a floor for each.
    overlaps = {}
    for voice, sentence in SPOKEN:
        audio = np.concatenate([np.zeros(SAMPLE_RATE, np.float32), speak(sentence, voice, tmp_path)])

        segments = transcriber.transcribe(audio)

        text = " ".join(s.text for s in segments)
        overlaps[text] = word_overlap(sentence, text)
        duration_s = audio.size / SAMPLE_RATE
        assert all(0 <= s.start_s < s.end_s <= duration_s for s in segments)
        assert [s.start_s for s in segments] == sorted(s.start_s for s in segments)
    assert min(overlaps.values()) >= 0.5, overlaps
    assert sum(overlaps.values()) / len(overlaps) >= 0.75, overlaps


def test_silence_gives_no_segments(transcriber):
    assert transcriber.transcribe(np.zeros(5 * SAMPLE_RATE, np.float32)) == []
    assert transcriber.transcribe(np.zeros(0, np.float32)) == []


@pytest.mark.parametrize("kind", ["white_noise", "chord"])
def test_noise_and_music_give_no_segments(transcriber, kind):
    # Loud enough to go through the model: plain whisper turns this white noise into " . ."
    t = np.arange(5 * SAMPLE_RATE) / SAMPLE_RATE
    if kind == "white_noise":
        audio = np.random.default_rng(0).normal(scale=0.1, size=t.size)
    else:
        audio = 0.1 * sum(np.sin(2 * np.pi * f * t) for f in (440.0, 554.4, 659.3))

    assert transcriber.transcribe(audio.astype(np.float32)) == []


def test_missing_checkpoint_is_a_clear_error_not_a_download(tmp_path):
    missing = tmp_path / "nowhere.pt"
    transcriber = SpeechTranscriber(TranscriberConfig(checkpoint_path=str(missing)))

    with pytest.raises(FileNotFoundError, match="inference.whisper_import"):
        transcriber.transcribe(np.full(SAMPLE_RATE, 0.1, np.float32))


def test_stereo_audio_is_rejected(transcriber):
    with pytest.raises(ValueError, match="mono"):
        transcriber.transcribe(np.zeros((2, SAMPLE_RATE), np.float32))
