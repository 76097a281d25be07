import itertools

import av
import numpy as np
import pytest

from inference.media import decode, probe
from inference.synth import MOTIFS, SynthSpec, draw_caption, draw_motif, render_video, synthesize_speech
from inference.types import SAMPLE_RATE


def motif_image(motif: str, seed: int = 3) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return draw_motif(np.full((240, 320, 3), 128, np.uint8), motif, rng)


def test_speech_is_16k_mono_float_and_voices_differ():
    us = synthesize_speech("send me one bitcoin", voice="en-us")
    female = synthesize_speech("send me one bitcoin", voice="en-us+f3")
    slow = synthesize_speech("send me one bitcoin", voice="en-us", speed_wpm=100)
    assert us.dtype == np.float32 and us.ndim == 1
    assert 0.5 * SAMPLE_RATE < len(us) < 3 * SAMPLE_RATE
    assert np.abs(us).max() > 0.1
    assert len(slow) > 1.3 * len(us)
    n = min(len(us), len(female))
    assert not np.allclose(us[:n], female[:n], atol=0.01)


def test_text_starting_with_a_dash_is_spoken_not_read_as_an_option():
    assert len(synthesize_speech("--help me")) > 0.3 * SAMPLE_RATE


def test_duration_fits_the_speech_and_is_at_least_two_seconds(tmp_path):
    short = probe(render_video(tmp_path / "short.mp4", SynthSpec(speech_text="hi")))
    assert short.duration_s == pytest.approx(2.0, abs=0.1)
    text = "this sentence is long enough to need more than two seconds of speech to say"
    speech_s = len(synthesize_speech(text)) / SAMPLE_RATE
    long = probe(render_video(tmp_path / "long.mp4", SynthSpec(speech_text=text)))
    assert long.duration_s == pytest.approx(speech_s + 0.5, abs=0.15)


@pytest.mark.parametrize(
    "container, codecs",
    [("mp4", ("h264", "aac")), ("webm", ("vp9", "opus")), ("mkv", ("h264", "opus"))],
)
def test_containers_and_codecs(tmp_path, container, codecs):
    path = render_video(tmp_path / f"c.{container}", SynthSpec(container=container, speech_text="hello"))
    info = probe(path)
    assert (info.video_codec, info.audio_codec) == codecs
    assert info.fps == pytest.approx(10.0)


def test_without_audio_there_is_no_audio_stream(tmp_path):
    path = render_video(tmp_path / "silent.mp4", SynthSpec(with_audio=False, speech_text="ignored"))
    with av.open(str(path)) as container:
        assert len(container.streams.audio) == 0


def test_same_seed_same_pictures_other_seed_other_pictures(tmp_path):
    spec = SynthSpec(motif="cash", duration_s=2.0, with_audio=False, background_seed=5)
    a = decode(render_video(tmp_path / "a.mp4", spec), n_frames=2).frames
    b = decode(render_video(tmp_path / "b.mp4", spec), n_frames=2).frames
    spec.background_seed = 6
    c = decode(render_video(tmp_path / "c.mp4", spec), n_frames=2).frames
    assert np.array_equal(a[0].image, b[0].image)
    assert np.abs(a[0].image.astype(int) - c[0].image.astype(int)).mean() > 10


def test_every_motif_draws_something_and_they_differ():
    blank = motif_image("none")
    images = {m: motif_image(m) for m in MOTIFS if m != "none"}
    for motif, image in images.items():
        covered = float((np.abs(image.astype(int) - blank).sum(axis=2) > 30).mean())
        assert covered > 0.02, (motif, covered)
    for (m1, a), (m2, b) in itertools.combinations(images.items(), 2):
        differ = float((np.abs(a.astype(int) - b).sum(axis=2) > 30).mean())
        assert differ > 0.02, (m1, m2, differ)


def test_motif_position_and_colour_depend_on_the_seed():
    assert not np.array_equal(motif_image("pills", seed=1), motif_image("pills", seed=2))
    assert np.array_equal(motif_image("pills", seed=1), motif_image("pills", seed=1))


def test_unknown_motif_and_container_are_refused(tmp_path):
    with pytest.raises(ValueError, match="motif"):
        render_video(tmp_path / "x.mp4", SynthSpec(motif="dragon"))
    with pytest.raises(ValueError, match="container"):
        render_video(tmp_path / "x.avi", SynthSpec(container="avi"))


def test_long_text_wraps_inside_the_frame():
    image = draw_caption(np.zeros((240, 320, 3), np.uint8), "word " * 30)
    bright_rows = np.where((image > 200).any(axis=(1, 2)))[0]
    bright_cols = np.where((image > 200).any(axis=(0, 2)))[0]
    assert bright_rows.max() - bright_rows.min() > 60  # several lines, not one clipped line
    assert bright_cols.min() > 5 and bright_cols.max() < 315


def test_text_is_shown_only_in_its_interval(tmp_path):
    spec = SynthSpec(onscreen_text=[(1.0, 2.0, "HELLO")], duration_s=3.0, with_audio=False)
    frames = decode(render_video(tmp_path / "t.mp4", spec), n_frames=3).frames  # at 0.5, 1.5, 2.5 s
    lower = [f.image[170:, :].astype(int) for f in frames]
    assert np.abs(lower[1] - lower[0]).mean() > 5  # the caption box appeared
    assert np.abs(lower[2] - lower[0]).mean() < 3  # and went away


def test_rotation_metadata_is_written(tmp_path):
    path = render_video(tmp_path / "r.mp4", SynthSpec(rotation=270, with_audio=False))
    info = probe(path)
    assert info.rotation == 270 and (info.width, info.height) == (320, 240)
    with pytest.raises(ValueError):
        render_video(tmp_path / "bad.mp4", SynthSpec(rotation=45))
