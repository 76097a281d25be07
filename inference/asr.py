"""Speech transcript with openai-whisper.

The offline default checkpoint is tiny.en converted by `inference.whisper_import`; any
openai-whisper checkpoint file works (bigger ones on GPU workers).

Whisper invents text on silence and noise ("You", " . ."): its own guard drops a window
only when the no-speech probability is high AND the decoded text is unlikely, and those
hallucinations are often confident. So the transcriber also skips near-silent audio without
running the model, and drops segments that are almost surely not speech or hold no words.
"""

from __future__ import annotations

import os
import re
import threading
from dataclasses import dataclass

import numpy as np
import torch

from inference.types import SAMPLE_RATE, TranscriptSegment

_HAS_WORD = re.compile(r"\w")


@dataclass
class TranscriberConfig:
    checkpoint_path: str  # an openai-whisper checkpoint file, e.g. var/models/whisper-tiny.en.pt
    language: str | None = "en"  # None: let a multilingual model detect it
    beam_size: int = 5  # beam search beats greedy on short clips at little cost
    best_of: int = 5  # candidates per fallback temperature > 0
    # Tried in turn when a window's decode looks like a failure (repetitive or unlikely).
    temperature: tuple[float, ...] = (0.0, 0.2, 0.4, 0.6, 0.8, 1.0)
    compression_ratio_threshold: float = 2.4  # above: repetitive text, decode again hotter
    logprob_threshold: float = -1.0  # below: unlikely text, decode again hotter
    no_speech_threshold: float = 0.6  # whisper's rule: silent if above AND logprob below threshold
    strict_no_speech_threshold: float = 0.8  # ours: above this, silent whatever the logprob
    silence_peak: float = 1e-3  # audio whose peak stays under this (-60 dBFS) is not transcribed
    device: str = "cpu"
    seed: int = 0  # fallback temperatures sample; a fixed seed makes reruns give the same text


class SpeechTranscriber:
    """Loads the checkpoint on first use; one instance per worker process, thread-safe."""

    def __init__(self, config: TranscriberConfig):
        self.config = config
        self._model = None
        self._lock = threading.Lock()

    @property
    def model(self):
        with self._lock:
            if self._model is None:
                self._model = load_whisper(self.config.checkpoint_path, self.config.device)
            return self._model

    def transcribe(self, audio: np.ndarray) -> list[TranscriptSegment]:
        """Segments of speech in `audio` ((n_samples,) float32 mono at 16 kHz), in time order."""
        audio = np.asarray(audio, dtype=np.float32)
        if audio.ndim != 1:
            raise ValueError(f"audio must be mono (n_samples,), got shape {audio.shape}")
        if audio.size == 0 or float(np.max(np.abs(audio))) < self.config.silence_peak:
            return []

        cfg = self.config
        model = self.model
        rng_devices = [model.device.index or 0] if model.device.type == "cuda" else []
        with self._lock, torch.random.fork_rng(devices=rng_devices), torch.inference_mode():
            torch.manual_seed(cfg.seed)
            result = model.transcribe(
                audio,
                verbose=None,  # no printing, no progress bar
                language=cfg.language,
                task="transcribe",
                beam_size=cfg.beam_size,
                best_of=cfg.best_of,
                temperature=cfg.temperature,
                compression_ratio_threshold=cfg.compression_ratio_threshold,
                logprob_threshold=cfg.logprob_threshold,
                no_speech_threshold=cfg.no_speech_threshold,
                condition_on_previous_text=False,  # one bad window must not poison the next
                fp16=model.device.type == "cuda",
            )

        duration_s = audio.size / SAMPLE_RATE
        segments = []
        for seg in result["segments"]:
            text = seg["text"].strip()
            if not _HAS_WORD.search(text) or seg["no_speech_prob"] > cfg.strict_no_speech_threshold:
                continue
            start_s = min(float(seg["start"]), duration_s)
            end_s = min(max(float(seg["end"]), start_s), duration_s)  # whisper may run past the end
            segments.append(TranscriptSegment(start_s=start_s, end_s=end_s, text=text))
        return segments


def load_whisper(checkpoint_path: str | os.PathLike, device: str = "cpu"):
    """`whisper.load_model` for a local file only (a model name would download weights).

    Also applies the checkpoint's `alignment_heads` (bool (n_text_layer, n_text_head)) when it
    has them, as `inference.whisper_import` writes; whisper reads them only for its own names.
    """
    import whisper

    path = os.fspath(checkpoint_path)
    if not os.path.isfile(path):
        raise FileNotFoundError(
            f"Whisper checkpoint {path} does not exist; create the default one with "
            f"`python -m inference.whisper_import {path}`"
        )
    model = whisper.load_model(path, device=device)
    extras = torch.load(path, map_location="cpu", weights_only=True, mmap=True)  # no tensor copies
    heads = extras.get("alignment_heads")
    if heads is not None:
        # (n_text_layer, n_text_head) bool, the same buffer set_alignment_heads() would build
        heads = heads.to(torch.bool).to_sparse().to(model.device)
        model.register_buffer("alignment_heads", heads, persistent=False)
    return model
