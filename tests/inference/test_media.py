import numpy as np
import pytest

from inference import media
from inference.media import MediaLimits, decode, format_duration, probe, sample_times
from inference.sandbox import run_isolated
from inference.types import SAMPLE_RATE, MediaError

# ---------------------------------------------------------------------------- good files


def test_probe_describes_a_plain_mp4(speech_clip):
    info = probe(speech_clip)
    assert info.container.startswith("mov,mp4")
    assert info.duration_s == pytest.approx(4.0, abs=0.1)
    assert (info.width, info.height, info.rotation) == (320, 240, 0)
    assert info.fps == pytest.approx(10.0)
    assert (info.video_codec, info.audio_codec) == ("h264", "aac")
    assert info.has_video and info.has_audio
    assert info.size_bytes == speech_clip.stat().st_size


def test_decode_samples_frames_evenly_and_downscales(speech_clip):
    decoded = decode(speech_clip, n_frames=8, max_side=160)
    times = [f.t_s for f in decoded.frames]
    assert len(times) == 8
    for got, target in zip(times, sample_times(4.0, 8)):
        assert target - 1e-3 <= got <= target + 0.1 + 1e-3  # first frame at/after each target (10 fps)
    for frame in decoded.frames:
        assert frame.image.shape == (120, 160, 3) and frame.image.dtype == np.uint8


def test_decode_seeks_backwards_and_forwards_consistently(speech_clip):
    """Frames fetched one by one must equal those fetched in one pass: seeking lands on real frames."""
    together = decode(speech_clip, n_frames=4)
    one = decode(speech_clip, n_frames=1)
    assert one.frames[0].t_s == pytest.approx(2.0, abs=0.11)
    match = min(together.frames, key=lambda f: abs(f.t_s - one.frames[0].t_s))
    if match.t_s == one.frames[0].t_s:
        assert np.array_equal(match.image, one.frames[0].image)


def test_decode_gives_16k_mono_float_audio_with_the_speech(speech_clip):
    audio = decode(speech_clip).audio
    assert audio.dtype == np.float32 and audio.ndim == 1
    assert len(audio) == pytest.approx(4.0 * SAMPLE_RATE, rel=0.05)
    assert np.abs(audio).max() > 0.1  # speech is there, not silence
    assert np.abs(audio[: SAMPLE_RATE // 10]).max() < 0.05  # synth starts speaking at 0.25 s


def test_webm_vp9_opus_decodes(webm_clip):
    decoded = decode(webm_clip, n_frames=3)
    assert decoded.info.video_codec == "vp9" and decoded.info.audio_codec == "opus"
    assert len(decoded.frames) == 3
    assert len(decoded.audio) == pytest.approx(3.0 * SAMPLE_RATE, rel=0.05)


def test_clip_without_audio_has_no_audio(no_audio_clip):
    decoded = decode(no_audio_clip, n_frames=2)
    assert decoded.info.has_audio is False and decoded.audio is None
    assert decode(no_audio_clip, n_frames=2, with_audio=False).audio is None


def test_rotated_clip_is_shown_upright(rotated_clip, upright_clip):
    info = probe(rotated_clip)
    assert info.rotation == 90
    assert (info.width, info.height) == (320, 240)  # display size, not the stored 240x320
    rotated = decode(rotated_clip, n_frames=2, with_audio=False).frames
    upright = decode(upright_clip, n_frames=2, with_audio=False).frames
    assert rotated[0].image.shape == upright[0].image.shape == (240, 320, 3)
    diff = np.abs(rotated[0].image.astype(int) - upright[0].image.astype(int)).mean()
    wrong_way = np.abs(np.rot90(rotated[0].image, 2).astype(int) - upright[0].image.astype(int)).mean()
    assert diff < 8 < wrong_way  # same picture up to compression noise; turned the wrong way it is not


def test_unicode_and_shell_characters_in_the_file_name(unicode_clip):
    assert len(decode(unicode_clip, n_frames=2).frames) == 2


def test_truncated_matroska_gives_the_frames_that_survive(truncated_mkv):
    decoded = decode(truncated_mkv, n_frames=8)
    assert 1 <= len(decoded.frames) < 8
    assert decoded.frames[0].t_s < 1.0


# ---------------------------------------------------------------------------- limits


def test_limits_are_refused_at_probe_time_before_any_frame_decodes(speech_clip, monkeypatch):
    def no_decoding(*args, **kwargs):
        raise AssertionError("decoded a frame of a file that breaks the limits")

    monkeypatch.setattr(media, "_first_frame", no_decoding)
    with pytest.raises(MediaError) as resolution:
        decode(speech_clip, MediaLimits(max_pixels=200 * 200))
    assert resolution.value.code == media.RESOLUTION
    assert "320x240" in resolution.value.reason

    with pytest.raises(MediaError) as too_long:
        probe(speech_clip, MediaLimits(max_duration_s=2))
    assert too_long.value.code == media.TOO_LONG
    assert too_long.value.reason == "The video is 4 s long; the limit is 2 s."

    with pytest.raises(MediaError) as too_big:
        probe(speech_clip, MediaLimits(max_bytes=1000))
    assert too_big.value.code == media.TOO_LARGE
    assert "the limit is 1000 bytes" in too_big.value.reason


def test_durations_read_like_a_person_wrote_them():
    assert format_duration(2 * 3600 + 5 * 60) == "2 h 5 min"
    assert format_duration(600) == "10 min"
    assert format_duration(95) == "1 min 35 s"


def test_max_frames_caps_a_greedy_request(speech_clip):
    assert len(decode(speech_clip, MediaLimits(max_frames=3), n_frames=50).frames) == 3


# ---------------------------------------------------------------------------- hostile files

HOSTILE = [
    ("empty_file", media.EMPTY, "The file is empty."),
    ("truncated_mp4", media.DAMAGED, None),
    ("random_bytes_mp4", media.NOT_VIDEO, None),
    ("png_as_mp4", media.IMAGE, "This is an image, not a video."),
    ("audio_only_m4a", media.AUDIO_ONLY, "The file has no video stream (audio only)."),
    ("audio_only_wav", media.AUDIO_ONLY, "The file has no video stream (audio only)."),
    ("text_file", media.NOT_VIDEO, "This is a text file, not a video."),
]


@pytest.mark.parametrize("fixture, code, reason", HOSTILE)
def test_hostile_files_are_refused_with_a_clear_reason(request, fixture, code, reason):
    path = request.getfixturevalue(fixture)
    for call in (probe, decode):
        with pytest.raises(MediaError) as refused:
            call(path)
        assert refused.value.code == code, refused.value.reason
        if reason:
            assert refused.value.reason == reason
        assert refused.value.reason.endswith(".") and len(refused.value.reason) > 15


def test_truncated_mp4_without_its_index_says_why(truncated_mp4):
    """Reason is readable, not an FFmpeg errno."""
    with pytest.raises(MediaError) as refused:
        decode(truncated_mp4)
    assert "Errno" not in refused.value.reason and "damaged" in refused.value.reason


@pytest.mark.parametrize("fixture", ["m3u8_playlist", "m3u8_renamed_mp4", "ffconcat_list"])
def test_playlists_are_refused_without_opening_their_target(request, fixture, trap_target):
    # The target is a FIFO with no writer: opening it would block until the timeout.
    path = request.getfixturevalue(fixture)
    for call in (probe, decode):
        with pytest.raises(MediaError) as refused:
            run_isolated(call, path, MediaLimits(), timeout_s=15)
        assert refused.value.code in (media.PLAYLIST, media.NOT_VIDEO), refused.value.reason
    if fixture != "m3u8_renamed_mp4":
        assert refused.value.code == media.PLAYLIST
        assert "points to other files" in refused.value.reason


def test_the_fifo_itself_is_refused_without_blocking(trap_target):
    with pytest.raises(MediaError) as refused:
        probe(trap_target)
    assert refused.value.code == media.NOT_VIDEO


def test_missing_file(tmp_path):
    with pytest.raises(MediaError) as refused:
        probe(tmp_path / "nope.mp4")
    assert refused.value.code == media.NOT_FOUND
