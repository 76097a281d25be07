"""On-screen text with RapidOCR (PP-OCRv4 ONNX models shipped inside the rapidocr_onnxruntime wheel).

A caption burned into a video stays on screen for seconds, so sampled frames read it again
and again. `OcrReader.read` merges a line seen on consecutive frames into one `OcrLine` with
the time it first appeared, the way a viewer would report it.
"""

from __future__ import annotations

import difflib
import math
import re
import threading
from dataclasses import dataclass

import numpy as np
from PIL import Image

from inference.types import Frame, OcrLine


@dataclass(frozen=True)
class OcrConfig:
    min_score: float = 0.6  # recogniser confidence below which a line is dropped
    min_chars: int = 2  # shorter readings are mostly noise on textures
    max_side: int = 960  # frames are downscaled to this longer side before OCR
    det_limit_side_len: int = 240  # detector input: shorter side scaled up to this (RapidOCR: 736, slower, no better here)
    use_angle_cls: bool = False  # frames are already display-oriented; the 180-degree classifier costs time
    num_threads: int = 2
    crop_margin: float = 0.25  # context kept around each detected line, as a fraction of its height
    merge_similarity: float = 0.8  # difflib ratio above which readings on consecutive frames are one line


def normalize_text(text: str) -> str:
    """Case- and punctuation-insensitive key for comparing readings of one caption."""
    return re.sub(r"[\W_]+", " ", text.lower()).strip()


def same_line(a: str, b: str, similarity: float) -> bool:
    """Two readings of one caption: equal, or close with the same numbers ("$100" vs "$900" differ)."""
    a, b = normalize_text(a), normalize_text(b)
    if a == b:
        return True
    if re.findall(r"\d+", a) != re.findall(r"\d+", b):
        return False
    return difflib.SequenceMatcher(None, a, b).ratio() >= similarity


class OcrReader:
    """Reads text lines from frames. The ONNX sessions load on first use (about a second)."""

    def __init__(self, config: OcrConfig = OcrConfig()):
        self.config = config
        self._engine = None
        self._lock = threading.Lock()

    @property
    def engine(self):
        with self._lock:
            if self._engine is None:
                from rapidocr_onnxruntime import RapidOCR  # heavy import: only when OCR is used

                self._engine = RapidOCR(
                    use_cls=self.config.use_angle_cls,
                    det_limit_side_len=self.config.det_limit_side_len,
                    intra_op_num_threads=self.config.num_threads,
                    inter_op_num_threads=1,
                    text_score=self.config.min_score,
                )
            return self._engine

    def read_image(self, image: np.ndarray, t_s: float = 0.0, previous: list[_Reading] | None = None) -> list[OcrLine]:
        """Lines in one RGB (H, W, 3) uint8 image, top to bottom, boxes in the image's pixels."""
        return [r.line for r in self._readings(image, t_s, previous or [])]

    def _readings(self, image: np.ndarray, t_s: float, previous: list[_Reading]) -> list[_Reading]:
        scale = min(1.0, self.config.max_side / max(image.shape[:2]))
        if scale < 1.0:
            size = (max(1, round(image.shape[1] * scale)), max(1, round(image.shape[0] * scale)))
            image = np.asarray(Image.fromarray(image).resize(size, Image.BILINEAR))
        bgr = np.ascontiguousarray(image[:, :, ::-1])  # RapidOCR takes OpenCV's BGR order
        boxes, _ = self.engine(bgr, use_det=True, use_cls=False, use_rec=False)  # detection only: cheap
        readings = []
        for points in boxes or []:
            x0, y0, x1, y1 = _bounds(points, bgr.shape)
            if x1 - x0 < 4 or y1 - y0 < 4:
                continue
            # a margin around the detected box: without it the recogniser often drops the
            # spaces of bold capitals ("FREECRYPTODOUBLING")
            m = int((y1 - y0) * self.config.crop_margin)
            crop = bgr[max(0, y0 - m) : y1 + m, max(0, x0 - m) : x1 + m]
            # A caption held on screen gives the same crop frame after frame: recognise it once.
            same = next((r for r in previous if r.unchanged(crop, (x0, y0, x1, y1))), None)
            if same is not None:
                text, score = same.line.text, same.line.score
            else:
                text, score = self._recognise(crop)
            if score < self.config.min_score or len(normalize_text(text).replace(" ", "")) < self.config.min_chars:
                continue
            box = (x0 / scale, y0 / scale, x1 / scale, y1 / scale)
            readings.append(_Reading(OcrLine(t_s=float(t_s), text=text, score=score, box=box), crop, (x0, y0, x1, y1)))
        return readings

    def _recognise(self, crop: np.ndarray) -> tuple[str, float]:
        result, _ = self.engine(crop, use_det=False, use_cls=self.config.use_angle_cls, use_rec=True)
        if not result:
            return "", 0.0
        text, score = result[0][0], float(result[0][1])
        return text.strip(), score

    def read(self, frames: list[Frame]) -> list[OcrLine]:
        """Lines from all frames, in time order, each caption once with its first time."""
        merged: list[OcrLine] = []
        on_screen: list[int] = []  # indexes into `merged` of lines read on the previous frame
        previous: list[_Reading] = []
        for frame in sorted(frames, key=lambda f: f.t_s):
            still: list[int] = []
            previous = self._readings(frame.image, frame.t_s, previous)
            for line in (r.line for r in previous):
                match = next(
                    (i for i in on_screen if i not in still and same_line(merged[i].text, line.text, self.config.merge_similarity)),
                    None,
                )
                if match is None:
                    merged.append(line)
                    still.append(len(merged) - 1)
                    continue
                if line.score > merged[match].score:  # keep the clearest reading, but the first time
                    merged[match] = OcrLine(t_s=merged[match].t_s, text=line.text, score=line.score, box=line.box)
                still.append(match)
            on_screen = still
        return merged


def _bounds(points, shape) -> tuple[int, int, int, int]:
    """Axis-aligned integer box around a detected quadrilateral, inside the image."""
    xs = [p[0] for p in points]
    ys = [p[1] for p in points]
    height, width = shape[:2]
    return (
        max(0, int(math.floor(min(xs)))),
        max(0, int(math.floor(min(ys)))),
        min(width, int(math.ceil(max(xs)))),
        min(height, int(math.ceil(max(ys)))),
    )


@dataclass
class _Reading:
    """A recognised line with the pixels it was read from, to spot the same caption on the next frame."""

    line: OcrLine
    crop: np.ndarray  # (h, w, 3) uint8 BGR
    box: tuple[int, int, int, int]  # x0, y0, x1, y1 in the (downscaled) frame

    def unchanged(self, crop: np.ndarray, box: tuple[int, int, int, int], tolerance: int = 3) -> bool:
        if any(abs(a - b) > tolerance for a, b in zip(self.box, box)):
            return False
        h, w = min(crop.shape[0], self.crop.shape[0]), min(crop.shape[1], self.crop.shape[1])
        a = self.crop[:h, :w].astype(np.int16).mean(axis=2)  # (h, w) grey
        b = crop[:h, :w].astype(np.int16).mean(axis=2)
        changed = np.abs(a - b) > 48  # (h, w): a stroke appeared or vanished, not noise
        # per character-sized block, so a single changed digit ("$100" -> "$900") is noticed
        step = max(4, h)
        return all(changed[:, x : x + step].mean() < 0.04 for x in range(0, w, step))
