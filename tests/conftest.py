"""Fixtures shared by the Django-side tests. They run against the real PostgreSQL and Redis
named by DATABASE_URL / REDIS_URL (scripts/test.sh sets them)."""

from __future__ import annotations

from pathlib import Path

import pytest
from accounts import make_user
from tiny_llm import save_tiny_qwen2

from inference.synth import SynthSpec, render_video
from moderation import roles

SPEECH = "please call the hotline about the garden festival tomorrow"
ONSCREEN = "GARDEN FESTIVAL"


@pytest.fixture(autouse=True)
def _isolated_media(settings, tmp_path):
    """Every test writes uploads and frames into its own folder."""
    settings.MEDIA_ROOT = tmp_path / "media"
    return settings.MEDIA_ROOT


@pytest.fixture(scope="session")
def tiny_qwen2_dir(tmp_path_factory) -> str:
    return str(save_tiny_qwen2(tmp_path_factory.mktemp("tiny-qwen2")))


@pytest.fixture(autouse=True)
def _tiny_llm(settings, tiny_qwen2_dir):
    """Stage 2's LLM is a tiny random Qwen2 in every test; the real one is exercised by the first
    run and the benchmarks."""
    settings.COEFVQ_LLM_PATH = Path(tiny_qwen2_dir)


@pytest.fixture(scope="session")
def clip_dir(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("clips")


class Clip(type(Path())):
    """A rendered clip that remembers what it says and shows."""

    speech: str
    onscreen: str


@pytest.fixture(scope="session")
def speech_text_clip(clip_dir) -> Clip:
    """A clip whose speech and on-screen text the pipeline must read back."""
    spec = SynthSpec(onscreen_text=[(0.0, 5.0, ONSCREEN)], speech_text=SPEECH, voice="en-us", speed_wpm=140)
    clip = Clip(render_video(clip_dir / "festival.mp4", spec))
    clip.speech, clip.onscreen = SPEECH, ONSCREEN
    return clip


@pytest.fixture(scope="session")
def silent_clip(clip_dir) -> Path:
    return render_video(clip_dir / "silent.mp4", SynthSpec(duration_s=2.0, with_audio=False, motif="cat"))


@pytest.fixture
def garbage_file(tmp_path) -> Path:
    path = tmp_path / "holiday.mp4"
    path.write_bytes(b"\x00\x13 definitely not a video " * 50)
    return path


@pytest.fixture
def uploader(django_user_model):
    return make_user(django_user_model, "uploader")


@pytest.fixture
def reviewer(django_user_model):
    return make_user(django_user_model, "rita", roles.REVIEWER)


@pytest.fixture
def lead(django_user_model):
    return make_user(django_user_model, "lena", roles.LEAD)


@pytest.fixture
def policy():
    """The demo policy the migrations seed."""
    from moderation.models import Policy

    return Policy.objects.get(slug="icd")
