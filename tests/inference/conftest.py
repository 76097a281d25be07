"""Small media made on the fly: good clips from inference.synth, and hostile files."""

from __future__ import annotations

import os
import wave
from dataclasses import asdict
from pathlib import Path

import av
import numpy as np
import pytest
import torch
from PIL import Image

from inference.synth import SynthSpec, render_video

os.environ.setdefault("HF_HUB_OFFLINE", "1")

CAPTION_A = "FREE CRYPTO DOUBLING"
CAPTION_B = "cooking pasta tonight"
SPEECH = "send me one bitcoin and I will send two back"


@pytest.fixture(scope="session")
def media_dir(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("media")


@pytest.fixture(scope="session")
def speech_clip_captions() -> tuple[str, str]:
    """What `speech_clip` shows on screen, in order (tests import fixtures, not this module)."""
    return CAPTION_A, CAPTION_B


@pytest.fixture(scope="session")
def speech_clip(media_dir) -> Path:
    """4 s mp4: speech, caption A for 0-2 s then caption B for 2-4 s, coins."""
    spec = SynthSpec(
        onscreen_text=[(0.0, 2.0, CAPTION_A), (2.0, 4.0, CAPTION_B)],
        speech_text=SPEECH,
        motif="coins",
        duration_s=4.0,
        background_seed=1,
    )
    return render_video(media_dir / "speech.mp4", spec)


@pytest.fixture(scope="session")
def no_audio_clip(media_dir) -> Path:
    return render_video(media_dir / "silent.mp4", SynthSpec(motif="pills", with_audio=False, duration_s=2.0))


@pytest.fixture(scope="session")
def webm_clip(media_dir) -> Path:
    spec = SynthSpec(onscreen_text=[(0.0, 3.0, CAPTION_A)], speech_text="hello there", container="webm", duration_s=3.0)
    return render_video(media_dir / "clip.webm", spec)


def rotation_spec(rotation: int) -> SynthSpec:
    return SynthSpec(motif="pistol", rotation=rotation, duration_s=2.0, with_audio=False, background_seed=7)


@pytest.fixture(scope="session")
def rotated_clip(media_dir) -> Path:
    """Stored 240x320 (portrait) with a 90-degree display matrix: shown as 320x240."""
    return render_video(media_dir / "rotated.mp4", rotation_spec(90))


@pytest.fixture(scope="session")
def upright_clip(media_dir) -> Path:
    return render_video(media_dir / "upright.mp4", rotation_spec(0))


@pytest.fixture(scope="session")
def unicode_clip(media_dir) -> Path:
    return render_video(media_dir / "vidéo ünï 日本 $(echo) 'q'.mp4", SynthSpec(duration_s=2.0, with_audio=False))


@pytest.fixture(scope="session")
def mkv_clip(media_dir) -> Path:
    """Matroska keeps its headers in front, so a cut-off copy still has decodable frames."""
    return render_video(media_dir / "clip.mkv", SynthSpec(container="mkv", duration_s=4.0, speech_text="one two three"))


# ---------------------------------------------------------------------------- hostile files


@pytest.fixture(scope="session")
def empty_file(media_dir) -> Path:
    path = media_dir / "empty.mp4"
    path.write_bytes(b"")
    return path


@pytest.fixture(scope="session")
def truncated_mp4(media_dir, speech_clip) -> Path:
    """First 40 % of an mp4 whose index (moov) is written at the end: nothing can be decoded."""
    data = speech_clip.read_bytes()
    path = media_dir / "truncated.mp4"
    path.write_bytes(data[: int(len(data) * 0.4)])
    return path


@pytest.fixture(scope="session")
def truncated_mkv(media_dir, mkv_clip) -> Path:
    """First 45 % of a Matroska file: the early frames decode, the rest is missing."""
    data = mkv_clip.read_bytes()
    path = media_dir / "truncated.mkv"
    path.write_bytes(data[: int(len(data) * 0.45)])
    return path


@pytest.fixture(scope="session")
def random_bytes_mp4(media_dir) -> Path:
    path = media_dir / "random.mp4"
    path.write_bytes(np.random.default_rng(0).integers(0, 256, 200_000, dtype=np.uint8).tobytes())
    return path


@pytest.fixture(scope="session")
def png_as_mp4(media_dir) -> Path:
    path = media_dir / "picture.mp4"
    Image.fromarray(np.full((64, 64, 3), 200, np.uint8)).save(path, format="PNG")
    return path


@pytest.fixture(scope="session")
def audio_only_m4a(media_dir) -> Path:
    path = media_dir / "voice.m4a"
    with av.open(str(path), "w", format="mp4") as container:
        stream = container.add_stream("aac", rate=16_000)
        stream.layout = "mono"
        frame = av.AudioFrame.from_ndarray(np.zeros((1, 16_000), np.float32), format="flt", layout="mono")
        frame.sample_rate = 16_000
        container.mux(stream.encode(frame))
        container.mux(stream.encode())
    return path


@pytest.fixture(scope="session")
def audio_only_wav(media_dir) -> Path:
    path = media_dir / "voice.wav"
    with wave.open(str(path), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(16_000)
        w.writeframes(np.zeros(16_000, np.int16).tobytes())
    return path


@pytest.fixture
def trap_target(tmp_path) -> Path:
    """A FIFO with no writer: whoever opens it for reading blocks forever. A playlist that
    points here proves, by returning at all, that its target was never opened."""
    path = tmp_path / "target.mp4"
    os.mkfifo(path)
    return path


@pytest.fixture
def m3u8_playlist(tmp_path, trap_target) -> Path:
    path = tmp_path / "list.m3u8"
    path.write_text(f"#EXTM3U\n#EXT-X-TARGETDURATION:4\n#EXTINF:4.0,\n{trap_target}\n#EXT-X-ENDLIST\n")
    return path


@pytest.fixture
def m3u8_renamed_mp4(tmp_path, trap_target) -> Path:
    path = tmp_path / "playlist.mp4"
    path.write_text(f"#EXTM3U\n#EXTINF:4.0,\n{trap_target}\n#EXT-X-ENDLIST\n")
    return path


@pytest.fixture
def ffconcat_list(tmp_path, trap_target) -> Path:
    path = tmp_path / "list.mp4"
    # relative: the concat demuxer's default "safe" mode would refuse an absolute path by itself
    path.write_text(f"ffconcat version 1.0\nfile '{trap_target.name}'\n")
    return path


@pytest.fixture(scope="session")
def text_file(media_dir) -> Path:
    path = media_dir / "notes.mp4"
    path.write_text("this is not a video, just some notes\n")
    return path


@pytest.fixture(scope="session")
def whisper_checkpoint(tmp_path_factory):
    """A tiny random openai-whisper checkpoint in the format whisper.load_model reads."""
    from whisper.model import ModelDimensions, Whisper

    torch.manual_seed(0)
    dims = ModelDimensions(
        n_mels=80, n_audio_ctx=1500, n_audio_state=32, n_audio_head=2, n_audio_layer=1,
        n_vocab=51864, n_text_ctx=16, n_text_state=32, n_text_head=2, n_text_layer=1,
    )  # fmt: skip
    path = tmp_path_factory.mktemp("whisper") / "tiny-random.pt"
    torch.save({"dims": asdict(dims), "model_state_dict": Whisper(dims).state_dict()}, path)
    return str(path)
