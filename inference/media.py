"""Probe and decode uploaded videos with PyAV, refusing what is not a plain video file.

Uploads are untrusted. Three things keep a hostile file from doing harm here:

- av.open gets `protocol_whitelist=file` and a `format_whitelist` of real video containers, so
  a playlist (HLS .m3u8), a concat list, an SDP file or an image sequence is refused at open
  time, before its demuxer could follow a path or URL inside it to another file.
- Sizes, durations and resolutions are checked at probe time, before any frame is decoded.
- `inference.sandbox` runs probe and decode in a child process with resource limits, so a
  decoder crash or hang costs a child, not the worker.

Every refusal is a `MediaError` whose `reason` a moderator can read and whose `code` is stable.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass
from pathlib import Path

import av
import numpy as np

from inference.types import SAMPLE_RATE, DecodedMedia, Frame, MediaError, MediaInfo

# Demuxers that read one self-contained video file. Anything else (hls, concat, sdp, image2,
# the *_pipe image demuxers, rtsp...) is refused before it opens.
ALLOWED_FORMATS = (
    "mov", "mp4", "m4a", "3gp", "3g2", "mj2",  # ISO BMFF; one demuxer with all these names
    "matroska", "webm",
    "avi",
    "flv",
    "mpegts",
    "mpeg",  # MPEG program stream (.mpg, .vob)
    "ogg",
    "asf",  # .wmv
)

# Stable codes for MediaError.code; callers may branch on them.
EMPTY = "empty"
NOT_FOUND = "not_found"
TOO_LARGE = "too_large"
TOO_LONG = "too_long"
RESOLUTION = "resolution_too_high"
IMAGE = "image"
AUDIO_ONLY = "audio_only"
PLAYLIST = "playlist"
NOT_VIDEO = "not_video"
DAMAGED = "damaged"
TIMEOUT = "timeout"


@dataclass(frozen=True)
class MediaLimits:
    max_bytes: int = 500 * 1024 * 1024
    max_duration_s: float = 600.0
    max_pixels: int = 3840 * 2160  # width * height of the stored picture
    decode_timeout_s: float = 60.0
    max_frames: int = 64  # the most frames one decode call may return


# ---------------------------------------------------------------------------- wording


def format_bytes(n: int) -> str:
    for unit, size in (("GB", 1024**3), ("MB", 1024**2), ("KB", 1024)):
        if n >= size:
            return f"{n / size:.1f} {unit}"
    return f"{n} bytes"


def format_duration(seconds: float) -> str:
    seconds = int(round(seconds))
    h, rest = divmod(seconds, 3600)
    m, s = divmod(rest, 60)
    if h:
        return f"{h} h {m} min" if m else f"{h} h"
    if m:
        return f"{m} min {s} s" if s else f"{m} min"
    return f"{s} s"


# ---------------------------------------------------------------------------- opening


def _sniff(path: Path) -> MediaError:
    """Explain why no allowed demuxer took the file, from its first bytes only."""
    with open(path, "rb") as f:
        head = f.read(4096)
    text = head.lstrip(b"\xef\xbb\xbf").lstrip()
    if text.startswith(b"#EXTM3U") or b"#EXT-X-" in head or b"#EXTINF" in head:
        return MediaError("This is a playlist (M3U/HLS) that points to other files, not a video.", code=PLAYLIST)
    if text.startswith(b"ffconcat") or text.startswith(b"file '") or text.startswith(b"v=0"):
        return MediaError("This is a list that points to other files, not a video.", code=PLAYLIST)
    images = (b"\x89PNG", b"\xff\xd8\xff", b"GIF87a", b"GIF89a", b"BM", b"II*\x00", b"MM\x00*")
    if head.startswith(images) or (head[:4] == b"RIFF" and head[8:12] == b"WEBP"):
        return MediaError("This is an image, not a video.", code=IMAGE)
    audio = (b"ID3", b"fLaC", b"\xff\xfb", b"\xff\xf3", b"\xff\xf2", b"#!AMR", b"MThd")
    if head.startswith(audio) or (head[:4] == b"RIFF" and head[8:12] in (b"WAVE", b"AIFF")) or head[:4] == b"FORM":
        return MediaError("The file has no video stream (audio only).", code=AUDIO_ONLY)
    containers = (b"\x1a\x45\xdf\xa3", b"FLV", b"OggS", b"\x30\x26\xb2\x75")  # matroska, flv, ogg, asf
    if head[4:8] in (b"ftyp", b"moov", b"mdat", b"free", b"wide") or head.startswith(containers) or head[8:12] == b"AVI ":
        return MediaError("The file is damaged: it looks like a video but cannot be opened (it may be cut off).", code=DAMAGED)
    if head and _looks_like_text(head):
        return MediaError("This is a text file, not a video.", code=NOT_VIDEO)
    return MediaError("The file is not a video in a format we accept (or it is badly damaged).", code=NOT_VIDEO)


def _looks_like_text(head: bytes) -> bool:
    try:
        decoded = head.decode("utf-8")
    except UnicodeDecodeError:
        return False
    return all(c.isprintable() or c in "\r\n\t" for c in decoded)


def _check_file(path: Path, limits: MediaLimits) -> int:
    try:
        size = path.stat().st_size
    except FileNotFoundError:
        raise MediaError("The file does not exist.", code=NOT_FOUND) from None
    if not path.is_file():
        raise MediaError("This is not a regular file.", code=NOT_VIDEO)
    if size == 0:
        raise MediaError("The file is empty.", code=EMPTY)
    if size > limits.max_bytes:
        raise MediaError(f"The file is {format_bytes(size)}; the limit is {format_bytes(limits.max_bytes)}.", code=TOO_LARGE)
    return size


def open_input(path: Path) -> av.container.InputContainer:
    """av.open restricted to local files and plain video containers."""
    # "file:" + absolute path: a name like "concat:a|b" or "subfile,,...:x" stays a file name.
    url = "file:" + str(Path(path).resolve())
    options = {
        "protocol_whitelist": "file",
        "format_whitelist": ",".join(ALLOWED_FORMATS),
        "enable_drefs": "0",  # mov: never follow data references to other files
    }
    try:
        return av.open(url, mode="r", container_options=options, metadata_errors="replace")
    except av.FFmpegError:
        raise _sniff(Path(path)) from None


def _video_stream(container) -> av.video.stream.VideoStream | None:
    for stream in container.streams.video:
        if not stream.disposition & av.stream.Disposition.attached_pic:  # cover art is not video
            return stream
    return None


# ---------------------------------------------------------------------------- probe


def _duration_s(container, video) -> float:
    if container.duration is not None and container.duration > 0:
        return container.duration / av.time_base
    if video.duration is not None and video.time_base is not None and video.duration > 0:
        return float(video.duration * video.time_base)
    return _scan_duration(container, video)


def _scan_duration(container, video) -> float:
    """No duration in the headers (some streamed webm/ts): read packet times, decode nothing."""
    last = 0.0
    try:
        for packet in container.demux(video):
            if packet.pts is not None and packet.time_base is not None:
                last = max(last, float((packet.pts + (packet.duration or 0)) * packet.time_base))
    except av.FFmpegError:
        pass
    container.seek(0)
    return last


def _first_frame(container, video, deadline: float) -> av.VideoFrame:
    try:
        for packet in container.demux(video):
            if time.monotonic() > deadline:
                raise MediaError("Reading the file took too long.", code=TIMEOUT)
            for frame in packet.decode():
                return frame
    except av.FFmpegError as e:
        raise MediaError(f"The file is damaged: {e.strerror or e}.", code=DAMAGED) from None
    raise MediaError("The file is damaged: no video frame could be decoded.", code=DAMAGED)


def probe(path: Path, limits: MediaLimits = MediaLimits()) -> MediaInfo:
    """Check a file against `limits` and describe it. Decodes one frame (for rotation and to
    prove the video decodes). Raises MediaError."""
    path = Path(path)
    deadline = time.monotonic() + limits.decode_timeout_s
    size = _check_file(path, limits)
    with open_input(path) as container:
        return _probe_open(container, size, limits, deadline)


def _probe_open(container, size: int, limits: MediaLimits, deadline: float) -> MediaInfo:
    video = _video_stream(container)
    audio = container.streams.audio[0] if container.streams.audio else None
    if video is None:
        if audio is not None:
            raise MediaError("The file has no video stream (audio only).", code=AUDIO_ONLY)
        raise MediaError("The file has no video stream.", code=NOT_VIDEO)

    ctx = video.codec_context
    if ctx.width <= 0 or ctx.height <= 0:
        raise MediaError("The file is damaged: the video has no picture size.", code=DAMAGED)
    if ctx.width * ctx.height > limits.max_pixels:
        raise MediaError(
            f"The resolution {ctx.width}x{ctx.height} is above the limit "
            f"({limits.max_pixels / 1e6:.1f} megapixels, e.g. 3840x2160).",
            code=RESOLUTION,
        )
    duration = _duration_s(container, video)
    if duration > limits.max_duration_s:
        raise MediaError(
            f"The video is {format_duration(duration)} long; the limit is {format_duration(limits.max_duration_s)}.",
            code=TOO_LONG,
        )
    if video.frames == 1 or (0 < duration < 1e-3):
        raise MediaError("This is an image, not a video.", code=IMAGE)

    first = _first_frame(container, video, deadline)
    rotation = (-int(first.rotation)) % 360  # FFmpeg counts counter-clockwise; we store clockwise
    width, height = (ctx.height, ctx.width) if rotation in (90, 270) else (ctx.width, ctx.height)
    rate = video.average_rate or video.guessed_rate or video.base_rate
    return MediaInfo(
        container=container.format.name,
        duration_s=float(duration),
        size_bytes=size,
        has_video=True,
        has_audio=audio is not None,
        width=width,
        height=height,
        fps=float(rate) if rate else 0.0,
        rotation=rotation,
        video_codec=ctx.name,
        audio_codec=audio.codec_context.name if audio is not None else "",
        audio_sample_rate=audio.codec_context.sample_rate if audio is not None else 0,
        audio_channels=audio.codec_context.channels if audio is not None else 0,
    )


# ---------------------------------------------------------------------------- decode


def sample_times(duration_s: float, n: int) -> list[float]:
    """n times spread evenly over the clip, each in the middle of its slice."""
    return [duration_s * (i + 0.5) / n for i in range(n)]


def _display_array(frame: av.VideoFrame, rotation: int, max_side: int) -> np.ndarray:
    """RGB (H, W, 3) uint8 as a player shows it: turned by `rotation` (clockwise), longer side <= max_side."""
    scale = min(1.0, max_side / max(frame.width, frame.height))
    width = max(2, int(round(frame.width * scale / 2)) * 2)
    height = max(2, int(round(frame.height * scale / 2)) * 2)
    image = frame.to_ndarray(format="rgb24", width=width, height=height)  # (h, w, 3), stored orientation
    return np.ascontiguousarray(np.rot90(image, k=-(rotation // 90)))  # np.rot90 turns counter-clockwise


class _FrameSeeker:
    """Decode the first frame at or after each requested time, seeking only when it saves work."""

    def __init__(self, container, video, deadline: float):
        self.container, self.video, self.deadline = container, video, deadline
        self.frames = None  # generator of decoded frames since the last seek
        self.position = -math.inf  # time of the last decoded frame
        self.keyframes = self._keyframe_times()

    def _keyframe_times(self) -> list[float] | None:
        tb = self.video.time_base
        try:
            times = [float(e.timestamp * tb) for e in self.video.index_entries if e.is_keyframe]
        except (AttributeError, TypeError):
            return None
        return sorted(times) or None

    def _should_seek(self, target: float) -> bool:
        if self.frames is None or target <= self.position:
            return True
        if self.keyframes is None:
            return target - self.position > 2.0
        # a seek lands on the last keyframe before target; pointless if we are already past it
        before = [t for t in self.keyframes if t <= target]
        return bool(before) and before[-1] > self.position

    def _decode_from_here(self):
        for packet in self.container.demux(self.video):
            if time.monotonic() > self.deadline:
                raise MediaError("Decoding the video took too long.", code=TIMEOUT)
            yield from packet.decode()

    def frame_at(self, target: float) -> av.VideoFrame | None:
        if self._should_seek(target):
            offset = int(target / self.video.time_base) + (self.video.start_time or 0)
            self.container.seek(offset, stream=self.video, backward=True, any_frame=False)
            self.frames = self._decode_from_here()
            self.position = -math.inf
        last = None
        try:
            for frame in self.frames:
                if frame.time is None:
                    continue
                self.position = frame.time
                last = frame
                if frame.time >= target - 1e-3:  # timestamps are rounded to the container's time base
                    return frame
        except av.FFmpegError:
            pass  # truncated or damaged past this point: keep what decoded
        self.frames = None
        return last  # ran out before the target (end of a truncated file): the latest frame seen


def _decode_frames(container, info: MediaInfo, n_frames: int, max_side: int, deadline: float) -> list[Frame]:
    video = _video_stream(container)
    seeker = _FrameSeeker(container, video, deadline)
    start = float(video.start_time * video.time_base) if video.start_time else 0.0
    frames: list[Frame] = []
    for target in sample_times(info.duration_s, n_frames):
        try:
            frame = seeker.frame_at(start + target)
        except av.FFmpegError:
            seeker.frames = None  # a failed seek in a damaged file: try the next target
            continue
        if frame is None or (frames and frame.time <= frames[-1].t_s):
            continue  # no new frame for this target (truncated file)
        frames.append(Frame(t_s=float(frame.time) - start, image=_display_array(frame, info.rotation, max_side)))
    return frames


def _decode_audio(container, max_duration_s: float, deadline: float) -> np.ndarray | None:
    """The first audio stream as (n_samples,) float32 mono at SAMPLE_RATE."""
    if not container.streams.audio:
        return None
    stream = container.streams.audio[0]
    container.seek(0)
    resampler = av.AudioResampler(format="flt", layout="mono", rate=SAMPLE_RATE)
    chunks: list[np.ndarray] = []
    max_samples = int(max_duration_s * SAMPLE_RATE)
    n = 0
    try:
        for packet in container.demux(stream):
            if time.monotonic() > deadline:
                raise MediaError("Decoding the audio took too long.", code=TIMEOUT)
            for frame in packet.decode():
                for out in resampler.resample(frame):
                    chunk = out.to_ndarray().reshape(-1)  # (n,) float32
                    chunks.append(chunk)
                    n += len(chunk)
            if n >= max_samples:
                break
        for out in resampler.resample(None):
            chunks.append(out.to_ndarray().reshape(-1))
    except av.FFmpegError:
        pass  # a damaged tail: keep the audio decoded so far
    if not chunks:
        return np.zeros(0, dtype=np.float32)
    return np.concatenate(chunks)[:max_samples].astype(np.float32, copy=False)


def decode(
    path: Path,
    limits: MediaLimits = MediaLimits(),
    n_frames: int = 8,
    max_side: int = 320,
    with_audio: bool = True,
) -> DecodedMedia:
    """Probe, then sample `n_frames` frames evenly over the clip (seeking to each), and decode the
    audio to 16 kHz mono. A truncated file gives the frames that decode; MediaError if none do."""
    path = Path(path)
    deadline = time.monotonic() + limits.decode_timeout_s
    size = _check_file(path, limits)
    n_frames = max(1, min(n_frames, limits.max_frames))
    with open_input(path) as container:
        info = _probe_open(container, size, limits, deadline)
        frames = _decode_frames(container, info, n_frames, max_side, deadline)
        if not frames:
            raise MediaError("The file is damaged: no video frame could be decoded.", code=DAMAGED)
        audio = _decode_audio(container, limits.max_duration_s, deadline) if with_audio else None
    return DecodedMedia(info=info, frames=frames, audio=audio)
