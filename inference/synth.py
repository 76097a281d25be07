"""Synthetic test videos: on-screen text, spoken text and simple visual motifs.

Tests and the synthetic benchmark need many small videos whose content is known exactly.
`render_video` draws them with PIL, speaks with espeak-ng and encodes with PyAV. Everything
that varies (colours, motif position and size, noise) comes from `background_seed`, so the
same spec always gives the same pixels before encoding.
"""

from __future__ import annotations

import io
import math
import subprocess
import textwrap
import wave
from dataclasses import dataclass, field
from fractions import Fraction
from functools import lru_cache
from pathlib import Path

import av
import numpy as np
from PIL import Image, ImageDraw, ImageFont

from inference.types import SAMPLE_RATE

MOTIFS = (
    "none", "pills", "pistol", "rifle", "bullets", "coins", "cash", "chart", "leaf",
    "syringe", "cat", "landscape", "food", "ball", "badge",
)

FONT_DIRS = (
    Path("/usr/share/fonts/truetype/dejavu"),
    Path("/usr/share/fonts/dejavu"),
    Path("/usr/share/fonts/TTF"),
)
FONT_FILE = "DejaVuSans-Bold.ttf"

# container -> (format name for av.open, video codec, audio codec, audio sample rate)
CONTAINERS = {
    "mp4": ("mp4", "libx264", "aac", 16_000),
    "webm": ("webm", "libvpx-vp9", "libopus", 48_000),
    "mkv": ("matroska", "libx264", "libopus", 48_000),
}


@dataclass
class SynthSpec:
    onscreen_text: list[tuple[float, float, str]] = field(default_factory=list)  # (start_s, end_s, text)
    speech_text: str | None = None
    voice: str = "en-us"  # espeak-ng voice, e.g. "en-us", "en", "en-us+f3", "en-gb+m4"
    speed_wpm: int = 160
    pitch: int = 50
    motif: str = "none"  # one of MOTIFS
    duration_s: float | None = None  # None: fit the speech (+0.5 s) and the text, at least 2 s
    width: int = 320
    height: int = 240
    fps: int = 10
    container: str = "mp4"  # mp4 (h264+aac), webm (vp9+opus), mkv (h264+opus)
    with_audio: bool = True  # False: no audio stream at all
    rotation: int = 0  # clockwise degrees a player turns the stored picture: 0/90/180/270
    background_seed: int = 0  # colours, motif position, noise


# ---------------------------------------------------------------------------- speech


def synthesize_speech(text: str, voice: str = "en-us", speed_wpm: int = 160, pitch: int = 50) -> np.ndarray:
    """Speak `text` with espeak-ng. Returns (n_samples,) float32 at SAMPLE_RATE."""
    # Text goes through stdin so that a text starting with "-" is never read as an option.
    result = subprocess.run(
        ["espeak-ng", "-v", voice, "-s", str(int(speed_wpm)), "-p", str(int(pitch)), "--stdout", "--stdin"],
        input=text.encode("utf-8"),
        capture_output=True,
        check=True,
        timeout=60,
    )
    with wave.open(io.BytesIO(result.stdout)) as wav:
        rate = wav.getframerate()
        channels = wav.getnchannels()
        pcm = np.frombuffer(wav.readframes(wav.getnframes()), dtype=np.int16)
    mono = pcm.reshape(-1, channels).mean(axis=1).astype(np.float32) / 32768.0  # (n,)
    return np.clip(resample_to_16k(mono, rate), -1.0, 1.0)


def resample_to_16k(audio: np.ndarray, rate: int) -> np.ndarray:
    """(n,) float32 mono at `rate` -> (m,) float32 at SAMPLE_RATE, with FFmpeg's resampler."""
    if rate == SAMPLE_RATE:
        return audio
    frame = av.AudioFrame.from_ndarray(audio[None, :], format="flt", layout="mono")
    frame.sample_rate = rate
    resampler = av.AudioResampler(format="flt", layout="mono", rate=SAMPLE_RATE)
    out = resampler.resample(frame) + resampler.resample(None)
    return np.concatenate([f.to_ndarray().reshape(-1) for f in out]).astype(np.float32)


# ---------------------------------------------------------------------------- drawing


@lru_cache(maxsize=16)
def load_font(size: int) -> ImageFont.FreeTypeFont | ImageFont.ImageFont:
    for folder in FONT_DIRS:
        if (folder / FONT_FILE).exists():
            return ImageFont.truetype(str(folder / FONT_FILE), size)
    return ImageFont.load_default(size=size)


def _rgb(rng: np.random.Generator, lo: int = 0, hi: int = 256) -> tuple[int, int, int]:
    return tuple(int(v) for v in rng.integers(lo, hi, size=3))


def _background(rng: np.random.Generator, width: int, height: int) -> np.ndarray:
    """A vertical two-colour gradient with a few faint blobs. (H, W, 3) uint8."""
    top = np.array(_rgb(rng, 40, 200), dtype=np.float32)
    bottom = np.array(_rgb(rng, 40, 200), dtype=np.float32)
    mix = np.linspace(0.0, 1.0, height, dtype=np.float32)[:, None, None]  # (H, 1, 1)
    image = (top * (1 - mix) + bottom * mix) * np.ones((1, width, 1), np.float32)  # (H, W, 3)
    canvas = Image.fromarray(image.astype(np.uint8))
    draw = ImageDraw.Draw(canvas)
    for _ in range(int(rng.integers(2, 6))):
        x, y = rng.integers(0, width), rng.integers(0, height)
        r = int(rng.integers(10, max(11, min(width, height) // 4)))
        shade = tuple(int(c) for c in np.clip(image[min(y, height - 1), min(x, width - 1)] + rng.integers(-25, 26, 3), 0, 255))
        draw.ellipse((x - r, y - r, x + r, y + r), fill=shade)
    return np.asarray(canvas)


def _poly(points, cx: float, cy: float, s: float) -> list[tuple[float, float]]:
    """Unit-square points (-1..1) placed at (cx, cy) with half-size s."""
    return [(cx + px * s, cy + py * s) for px, py in points]


def _draw_pills(d, cx, cy, s, rng):
    a, b = _rgb(rng, 120, 256), _rgb(rng, 0, 200)
    for i in range(5):
        x = cx + (i % 3 - 1) * s * 0.85
        y = cy + (i // 3 - 0.5) * s * 0.8 + (i % 2) * s * 0.1
        w, h = s * 0.75, s * 0.36
        r = h / 2
        d.rounded_rectangle((x - w / 2, y - r, x + w / 2, y + r), radius=r, fill=b, outline=(30, 30, 30))
        d.pieslice((x - w / 2, y - r, x - w / 2 + h, y + r), 90, 270, fill=a)  # left half in the other colour
        d.rectangle((x - w / 2 + r, y - r + 1, x, y + r - 1), fill=a)
        d.line((x, y - r, x, y + r), fill=(30, 30, 30), width=1)


def _draw_pistol(d, cx, cy, s, rng):
    dark = (int(rng.integers(10, 50)),) * 3
    # barrel + slide, grip angled back, trigger guard
    d.polygon(_poly([(-1, -0.55), (0.95, -0.55), (0.95, -0.15), (-0.2, -0.15), (-0.15, 0.05),
                     (-0.35, 0.85), (-0.8, 0.85), (-0.62, -0.15), (-1, -0.15)], cx, cy, s), fill=dark)
    d.arc(_poly([(-0.35, -0.2), (0.05, 0.3)], cx, cy, s), 0, 180, fill=dark, width=max(2, int(s * 0.08)))
    d.rectangle(_poly([(0.8, -0.68), (0.9, -0.55)], cx, cy, s), fill=dark)


def _draw_rifle(d, cx, cy, s, rng):
    dark, wood = (int(rng.integers(10, 50)),) * 3, (120, 72, 30)
    d.polygon(_poly([(-1.1, -0.12), (-0.45, -0.28), (-0.45, 0.1), (-1.05, 0.42)], cx, cy, s), fill=wood)  # stock
    d.rectangle(_poly([(-0.45, -0.28), (0.25, 0.1)], cx, cy, s), fill=dark)  # receiver
    d.rectangle(_poly([(0.25, -0.2), (1.15, -0.06)], cx, cy, s), fill=dark)  # barrel
    d.polygon(_poly([(-0.12, 0.1), (0.1, 0.1), (0.2, 0.7), (-0.02, 0.7)], cx, cy, s), fill=dark)  # magazine
    d.polygon(_poly([(-0.4, 0.1), (-0.22, 0.1), (-0.3, 0.45), (-0.45, 0.45)], cx, cy, s), fill=dark)  # grip
    d.rectangle(_poly([(-0.35, -0.45), (0.1, -0.3)], cx, cy, s), fill=dark)  # scope


def _draw_bullets(d, cx, cy, s, rng):
    brass, tip = (200, 160, 60), (170, 100, 50)
    for i in range(5):
        x = cx + (i - 2) * s * 0.35
        w = s * 0.12
        d.rectangle((x - w, cy - s * 0.2, x + w, cy + s * 0.7), fill=brass, outline=(90, 70, 20))
        d.pieslice((x - w, cy - s * 0.7, x + w, cy - s * 0.05), 180, 360, fill=tip)
        d.rectangle((x - w, cy - s * 0.38, x + w, cy - s * 0.2), fill=tip)


def _draw_coins(d, cx, cy, s, rng):
    font = load_font(max(8, int(s * 0.45)))
    for i in range(4):
        x = cx + (i % 2 - 0.5) * s * 0.9 + rng.uniform(-0.1, 0.1) * s
        y = cy + (i // 2 - 0.5) * s * 0.9
        r = s * 0.42
        d.ellipse((x - r, y - r, x + r, y + r), fill=(230, 180, 30), outline=(150, 110, 10), width=max(1, int(s * 0.06)))
        d.text((x, y), "B" if i % 2 else "$", font=font, fill=(150, 110, 10), anchor="mm")


def _draw_cash(d, cx, cy, s, rng):
    font = load_font(max(8, int(s * 0.3)))
    for i in range(3):
        off = i * s * 0.15
        box = (cx - s + off, cy - s * 0.45 + off, cx + s * 0.7 + off, cy + s * 0.35 + off)
        d.rectangle(box, fill=(70 + 20 * i, 150, 80), outline=(20, 80, 30), width=2)
        bx, by = (box[0] + box[2]) / 2, (box[1] + box[3]) / 2
        d.ellipse((bx - s * 0.2, by - s * 0.2, bx + s * 0.2, by + s * 0.2), outline=(20, 80, 30), width=2)
    d.text((bx, by), "100", font=font, fill=(20, 70, 30), anchor="mm")


def _draw_chart(d, cx, cy, s, rng):
    d.rectangle(_poly([(-1, -1), (1, 1)], cx, cy, s), fill=(245, 245, 245))
    d.line(_poly([(-0.9, -0.9), (-0.9, 0.9), (0.9, 0.9)], cx, cy, s), fill=(0, 0, 0), width=2)
    ys = np.cumsum(rng.uniform(-0.1, 0.35, size=7))
    ys = 0.8 - 1.6 * (ys - ys.min()) / max(1e-6, ys.max() - ys.min())
    points = [(-0.85 + 1.7 * i / 6, y) for i, y in enumerate(ys)]
    d.line(_poly(points, cx, cy, s), fill=(0, 170, 60), width=max(2, int(s * 0.08)))
    tip = points[-1]
    d.polygon(_poly([(tip[0], tip[1] - 0.15), (tip[0] - 0.12, tip[1] + 0.05), (tip[0] + 0.12, tip[1] + 0.05)], cx, cy, s), fill=(0, 170, 60))


def _draw_leaf(d, cx, cy, s, rng):
    green = (int(rng.integers(20, 70)), int(rng.integers(120, 190)), int(rng.integers(20, 70)))
    # seven serrated leaflets fanning out from the stem, cannabis-like
    for angle, length in zip((-90, -55, -125, -20, -160, 10, -190), (1.0, 0.85, 0.85, 0.65, 0.65, 0.4, 0.4)):
        a = math.radians(angle)
        ux, uy = math.cos(a), math.sin(a)
        px, py = -uy, ux
        pts = [(cx, cy + s * 0.35)]
        n = 6
        for k in range(1, n + 1):  # one side, with teeth
            t = k / (n + 1)
            w = math.sin(math.pi * t) * 0.22 * length * (1.25 if k % 2 else 0.9)
            pts.append((cx + s * (ux * length * t + px * w), cy + s * 0.35 + s * (uy * length * t + py * w)))
        pts.append((cx + s * ux * length, cy + s * 0.35 + s * uy * length))
        for k in range(n, 0, -1):
            t = k / (n + 1)
            w = math.sin(math.pi * t) * 0.22 * length * (1.25 if k % 2 else 0.9)
            pts.append((cx + s * (ux * length * t - px * w), cy + s * 0.35 + s * (uy * length * t - py * w)))
        d.polygon(pts, fill=green)
    d.line((cx, cy + s * 0.35, cx, cy + s), fill=green, width=max(2, int(s * 0.06)))


def _draw_syringe(d, cx, cy, s, rng):
    liquid = _rgb(rng, 60, 256)
    d.rectangle(_poly([(-0.6, -0.22), (0.5, 0.22)], cx, cy, s), fill=(235, 240, 245), outline=(60, 60, 60), width=2)
    d.rectangle(_poly([(-0.1, -0.18), (0.48, 0.18)], cx, cy, s), fill=liquid)
    d.polygon(_poly([(0.5, -0.22), (0.68, -0.06), (0.68, 0.06), (0.5, 0.22)], cx, cy, s), fill=(200, 200, 205))  # hub
    d.rectangle(_poly([(-1.0, -0.07), (-0.6, 0.07)], cx, cy, s), fill=(90, 90, 90))  # plunger rod
    d.rectangle(_poly([(-1.08, -0.3), (-0.96, 0.3)], cx, cy, s), fill=(90, 90, 90))  # thumb rest
    d.rectangle(_poly([(-0.62, -0.34), (-0.56, 0.34)], cx, cy, s), fill=(90, 90, 90))  # finger flange
    d.line(_poly([(0.68, 0.0), (1.1, 0.0)], cx, cy, s), fill=(150, 150, 150), width=max(1, int(s * 0.04)))  # needle
    for k in range(5):
        x = -0.5 + k * 0.2
        d.line(_poly([(x, -0.22), (x, -0.08)], cx, cy, s), fill=(60, 60, 60), width=1)


def _draw_cat(d, cx, cy, s, rng):
    fur = _rgb(rng, 60, 230)
    d.ellipse(_poly([(-0.6, -0.1), (0.6, 0.9)], cx, cy, s), fill=fur)  # body
    d.ellipse(_poly([(-0.45, -0.8), (0.45, 0.05)], cx, cy, s), fill=fur)  # head
    d.polygon(_poly([(-0.42, -0.55), (-0.35, -1.0), (-0.1, -0.75)], cx, cy, s), fill=fur)  # ears
    d.polygon(_poly([(0.42, -0.55), (0.35, -1.0), (0.1, -0.75)], cx, cy, s), fill=fur)
    for ex in (-0.18, 0.18):
        d.ellipse(_poly([(ex - 0.07, -0.5), (ex + 0.07, -0.35)], cx, cy, s), fill=(40, 160, 40))
    d.polygon(_poly([(-0.05, -0.28), (0.05, -0.28), (0.0, -0.2)], cx, cy, s), fill=(230, 120, 140))
    for side in (-1, 1):
        for dy in (-0.25, -0.18):
            d.line(_poly([(side * 0.08, -0.22), (side * 0.6, dy)], cx, cy, s), fill=(30, 30, 30), width=1)
    d.line(_poly([(0.55, 0.7), (0.95, 0.3), (0.9, 0.0)], cx, cy, s), fill=fur, width=max(2, int(s * 0.1)))


def _draw_landscape(d, cx, cy, s, rng):
    d.rectangle(_poly([(-1, -1), (1, 1)], cx, cy, s), fill=(135, 190, 235))
    d.ellipse(_poly([(0.45, -0.85), (0.8, -0.5)], cx, cy, s), fill=(255, 220, 60))
    d.polygon(_poly([(-1, 0.5), (-0.4, -0.5), (0.1, 0.5)], cx, cy, s), fill=(110, 110, 120))
    d.polygon(_poly([(-0.2, 0.5), (0.4, -0.3), (1, 0.5)], cx, cy, s), fill=(90, 95, 105))
    d.polygon(_poly([(-0.53, -0.28), (-0.4, -0.5), (-0.27, -0.28)], cx, cy, s), fill=(250, 250, 250))
    d.rectangle(_poly([(-1, 0.5), (1, 1)], cx, cy, s), fill=(70, 150, 60))


def _draw_food(d, cx, cy, s, rng):
    d.ellipse(_poly([(-1, -0.6), (1, 0.8)], cx, cy, s), fill=(245, 245, 240), outline=(180, 180, 180), width=2)  # plate
    d.ellipse(_poly([(-0.55, -0.3), (0.1, 0.35)], cx, cy, s), fill=(200, 40, 30))  # tomato
    d.ellipse(_poly([(0.0, -0.35), (0.65, 0.2)], cx, cy, s), fill=(240, 200, 80))  # bread
    d.ellipse(_poly([(-0.2, 0.1), (0.45, 0.6)], cx, cy, s), fill=(60, 160, 50))  # salad


def _draw_ball(d, cx, cy, s, rng):
    d.ellipse(_poly([(-0.8, -0.8), (0.8, 0.8)], cx, cy, s), fill=(250, 250, 250), outline=(20, 20, 20), width=2)
    pentagon = [(0.3 * math.cos(math.radians(90 + 72 * k)), -0.3 * math.sin(math.radians(90 + 72 * k))) for k in range(5)]
    d.polygon(_poly(pentagon, cx, cy, s), fill=(20, 20, 20))
    for k in range(5):
        a = math.radians(90 + 72 * k)
        d.line(_poly([(0.3 * math.cos(a), -0.3 * math.sin(a)), (0.8 * math.cos(a), -0.8 * math.sin(a))], cx, cy, s), fill=(20, 20, 20), width=2)


def _draw_badge(d, cx, cy, s, rng):
    star = []
    for k in range(10):
        r = 1.0 if k % 2 == 0 else 0.45
        a = math.radians(90 + 36 * k)
        star.append((r * math.cos(a), -r * math.sin(a)))
    d.polygon(_poly(star, cx, cy, s), fill=(215, 175, 40), outline=(120, 90, 10))
    d.ellipse(_poly([(-0.3, -0.3), (0.3, 0.3)], cx, cy, s), fill=(30, 50, 120))


MOTIF_DRAWERS = {
    "pills": _draw_pills, "pistol": _draw_pistol, "rifle": _draw_rifle, "bullets": _draw_bullets,
    "coins": _draw_coins, "cash": _draw_cash, "chart": _draw_chart, "leaf": _draw_leaf,
    "syringe": _draw_syringe, "cat": _draw_cat, "landscape": _draw_landscape, "food": _draw_food,
    "ball": _draw_ball, "badge": _draw_badge,
}


def draw_motif(image: np.ndarray, motif: str, rng: np.random.Generator) -> np.ndarray:
    """Draw `motif` at a seed-dependent place and size in the upper part of the frame."""
    if motif not in MOTIFS:
        raise ValueError(f"unknown motif {motif!r}; expected one of {MOTIFS}")
    if motif == "none":
        return image
    height, width = image.shape[:2]
    s = min(width, height) * rng.uniform(0.22, 0.32)  # half-size in pixels
    cx = rng.uniform(s * 1.1, width - s * 1.1)
    cy = rng.uniform(s * 1.1, max(s * 1.1 + 1, height * 0.62 - s))  # leave the lower band for text
    canvas = Image.fromarray(image)
    MOTIF_DRAWERS[motif](ImageDraw.Draw(canvas), cx, cy, s, rng)
    return np.asarray(canvas)


def _wrap(text: str, font, max_width: int, draw: ImageDraw.ImageDraw) -> list[str]:
    """Greedy word wrap to `max_width` pixels."""
    lines: list[str] = []
    for paragraph in text.splitlines() or [""]:
        current = ""
        for word in paragraph.split():
            trial = f"{current} {word}".strip()
            if current and draw.textlength(trial, font=font) > max_width:
                lines.append(current)
                current = word
            else:
                current = trial
        lines.append(current)
    # a single word longer than the frame: break it by characters
    out: list[str] = []
    for line in lines:
        if draw.textlength(line, font=font) <= max_width:
            out.append(line)
            continue
        approx = max(1, int(len(line) * max_width / draw.textlength(line, font=font)))
        out.extend(textwrap.wrap(line, approx, break_long_words=True) or [""])
    return out


def draw_caption(image: np.ndarray, text: str) -> np.ndarray:
    """Burn `text` into the lower part of the frame: white on a dark box, big enough for OCR."""
    height, width = image.shape[:2]
    size = max(12, int(min(width, height) * 0.085))
    font = load_font(size)
    canvas = Image.fromarray(image)
    draw = ImageDraw.Draw(canvas, "RGBA")
    lines = _wrap(text, font, int(width * 0.9), draw)
    line_h = int(size * 1.3)
    max_lines = max(1, int(height * 0.9) // line_h)
    lines = lines[:max_lines]
    top = max(int(height * 0.05), height - int(height * 0.06) - line_h * len(lines))
    widest = max(draw.textlength(line, font=font) for line in lines)
    pad = size // 3
    draw.rectangle(
        ((width - widest) / 2 - pad, top - pad, (width + widest) / 2 + pad, top + line_h * len(lines)),
        fill=(0, 0, 0, 170),
    )
    for i, line in enumerate(lines):
        draw.text((width / 2, top + i * line_h), line, font=font, fill=(255, 255, 255), anchor="ma")
    return np.asarray(canvas)


# ---------------------------------------------------------------------------- encoding


def clip_duration(spec: SynthSpec, speech: np.ndarray | None) -> float:
    if spec.duration_s is not None:
        return float(spec.duration_s)
    needed = 2.0
    if speech is not None:
        needed = max(needed, len(speech) / SAMPLE_RATE + 0.5)
    if spec.onscreen_text:
        needed = max(needed, max(end for _, end, _ in spec.onscreen_text))
    return needed


def _store_for_rotation(image: np.ndarray, rotation: int) -> np.ndarray:
    """The stored picture that a player turning it `rotation` degrees clockwise shows as `image`."""
    return np.ascontiguousarray(np.rot90(image, k=rotation // 90))  # np.rot90 turns counter-clockwise


def render_video(path: Path, spec: SynthSpec) -> Path:
    """Render `spec` into a video file at `path`. Returns `path`."""
    path = Path(path)
    if spec.container not in CONTAINERS:
        raise ValueError(f"unknown container {spec.container!r}; expected one of {tuple(CONTAINERS)}")
    if spec.rotation % 90 or spec.rotation not in (0, 90, 180, 270):
        raise ValueError("rotation must be 0, 90, 180 or 270")
    fmt, vcodec, acodec, arate = CONTAINERS[spec.container]
    rng = np.random.default_rng(spec.background_seed)

    speech = None
    if spec.with_audio and spec.speech_text:
        speech = synthesize_speech(spec.speech_text, spec.voice, spec.speed_wpm, spec.pitch)
    duration = clip_duration(spec, speech)
    n_frames = max(1, int(round(duration * spec.fps)))

    base = draw_motif(_background(rng, spec.width, spec.height), spec.motif, rng)  # (H, W, 3)
    stored_w, stored_h = (spec.height, spec.width) if spec.rotation in (90, 270) else (spec.width, spec.height)

    with av.open(str(path), mode="w", format=fmt) as container:
        video = container.add_stream(vcodec, rate=spec.fps)
        video.width, video.height, video.pix_fmt = stored_w, stored_h, "yuv420p"
        if vcodec == "libx264":
            video.options = {"preset": "ultrafast", "crf": "23"}
        else:
            video.options = {"deadline": "realtime", "cpu-used": "8", "crf": "32", "b": "0"}
        if spec.rotation:
            video.set_display_rotation(-spec.rotation)  # FFmpeg counts counter-clockwise
        audio_stream = None
        if spec.with_audio:
            audio_stream = container.add_stream(acodec, rate=arate)
            audio_stream.layout = "mono"

        captions = {}  # text -> rendered frame, so a caption held for seconds is drawn once
        for i in range(n_frames):
            t = i / spec.fps
            shown = [text for start, end, text in spec.onscreen_text if start <= t < end]
            key = "\n".join(shown)
            if key not in captions:
                captions[key] = draw_caption(base, key) if shown else base
            noise = rng.integers(-6, 7, size=base.shape, dtype=np.int16)  # so pixels never repeat exactly
            image = np.clip(captions[key].astype(np.int16) + noise, 0, 255).astype(np.uint8)
            frame = av.VideoFrame.from_ndarray(_store_for_rotation(image, spec.rotation), format="rgb24")
            frame.pts = i
            frame.time_base = Fraction(1, spec.fps)
            container.mux(video.encode(frame))
        container.mux(video.encode())

        if audio_stream is not None:
            _encode_audio(container, audio_stream, speech, duration)
    return path


def _encode_audio(container, stream, speech: np.ndarray | None, duration: float) -> None:
    """Speech (or silence with faint noise) padded to the clip length, resampled to the codec rate."""
    n = int(round(duration * SAMPLE_RATE))
    track = np.zeros(n, dtype=np.float32)
    if speech is not None:
        start = min(int(0.25 * SAMPLE_RATE), max(0, n - len(speech)))
        part = speech[: n - start]
        track[start : start + len(part)] = part
    track += np.random.default_rng(len(track)).normal(0, 1e-3, n).astype(np.float32)
    frame = av.AudioFrame.from_ndarray(track[None, :], format="flt", layout="mono")
    frame.sample_rate = SAMPLE_RATE
    frame.pts = 0
    frame.time_base = Fraction(1, SAMPLE_RATE)
    resampler = av.AudioResampler(format=stream.format.name, layout="mono", rate=stream.rate)
    for resampled in resampler.resample(frame) + resampler.resample(None):
        container.mux(stream.encode(resampled))
    container.mux(stream.encode())
