import numpy as np
import pytest

from inference.media import decode
from inference.ocr import OcrReader, normalize_text, same_line
from inference.synth import draw_caption
from inference.types import Frame


@pytest.fixture(scope="module")
def reader():
    return OcrReader()


def plain(width=320, height=240, shade=90):
    return np.full((height, width, 3), shade, np.uint8)


def test_reads_the_drawn_captions_back_once_each_with_their_first_time(reader, speech_clip, speech_clip_captions):
    frames = decode(speech_clip, n_frames=8, with_audio=False).frames
    lines = reader.read(frames)
    assert [normalize_text(line.text) for line in lines] == [normalize_text(c) for c in speech_clip_captions]
    assert lines[0].t_s == frames[0].t_s  # shown 0-2 s: first sampled frame
    assert lines[1].t_s == min(f.t_s for f in frames if f.t_s >= 2.0)  # shown from 2 s
    x0, y0, x1, y1 = lines[0].box
    assert 0 <= x0 < x1 <= 320 and 120 < y0 < y1 <= 240  # burned into the lower part of the frame
    assert all(line.score >= reader.config.min_score for line in lines)


def test_a_caption_that_changes_one_number_is_two_lines(reader):
    frames = [
        Frame(0.0, draw_caption(plain(), "Price $100 today")),
        Frame(0.5, draw_caption(plain(), "Price $100 today")),
        Frame(1.0, draw_caption(plain(), "Price $900 today")),
    ]
    lines = reader.read(frames)
    assert [(line.t_s, line.text.replace(" ", "")) for line in lines] == [(0.0, "Price$100today"), (1.0, "Price$900today")]


def test_a_held_caption_is_recognised_once(reader, monkeypatch):
    calls = []
    recognise = reader._recognise
    monkeypatch.setattr(reader, "_recognise", lambda crop: calls.append(crop.shape) or recognise(crop))
    noise = np.random.default_rng(0)
    frames = []
    for t in range(4):  # the same caption on a slightly noisy background, like a video
        image = draw_caption(plain(), "send bitcoin now").astype(np.int16) + noise.integers(-5, 6, (240, 320, 3))
        frames.append(Frame(float(t), np.clip(image, 0, 255).astype(np.uint8)))
    lines = reader.read(frames)
    assert [line.text for line in lines] == ["send bitcoin now"]
    assert len(calls) == 1


def test_a_caption_that_disappears_and_returns_is_reported_again(reader):
    frames = [
        Frame(0.0, draw_caption(plain(), "DM me to invest")),
        Frame(1.0, plain()),
        Frame(2.0, draw_caption(plain(), "DM me to invest")),
    ]
    assert [line.t_s for line in reader.read(frames)] == [0.0, 2.0]


def test_frames_without_text_give_no_lines(reader):
    assert reader.read([Frame(0.0, plain()), Frame(1.0, plain(shade=200))]) == []


def test_large_frames_are_downscaled_but_boxes_stay_in_frame_pixels(reader):
    big = draw_caption(plain(1920, 1080), "FREE CRYPTO")
    (line,) = reader.read([Frame(0.0, big)])
    assert line.text == "FREE CRYPTO"
    assert line.box[2] > 1000 and line.box[3] > 900  # in 1920x1080 coordinates, not the 960-wide copy


def test_same_line_tolerates_ocr_noise_but_not_other_numbers():
    assert same_line("FREE CRYPTO DOUBLING", "FREE CRYPTO DOUBLNG!", 0.8)
    assert same_line("Send 1 BTC", "send 1 btc", 0.8)
    assert not same_line("Send 1 BTC", "Send 2 BTC", 0.8)
    assert not same_line("cooking pasta", "free crypto", 0.8)
