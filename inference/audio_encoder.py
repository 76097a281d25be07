"""The frozen Whisper encoder as the audio tower of the COEF-VQ MLLM (inference.mllm).

16 kHz waveform -> log-mel (whisper.log_mel_spectrogram on the 30 s window, as Whisper does)
-> encoder states (n_frames, n_audio_state), one state per 20 ms -> a few pooled audio tokens
for early fusion and one pooled vector for late fusion. Pooling covers only the frames that
hold real audio, so the silence Whisper pads with does not dilute short clips.

The encoder is frozen: it never trains here, it runs in eval mode under no_grad, and callers
can compute its features once per video and cache them.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from inference.types import SAMPLE_RATE

SAMPLES_PER_STATE = 320  # Whisper: 10 ms mel hop, then a stride-2 conv -> one state per 20 ms
MEL_FRAMES_PER_STATE = 2


@dataclass(frozen=True)
class AudioEncoderConfig:
    checkpoint_path: str  # an openai-whisper checkpoint file (inference.whisper_import writes one)
    n_tokens: int = 4  # audio tokens per video for early fusion, each the mean of one time window
    # True: encode the whole padded 30 s window, exactly as Whisper does (0.9 s per clip on
    # 2 CPU cores for tiny). False: encode only the mel frames that hold real audio (rounded up
    # to whole states, at least min_audio_s), slicing the positional embedding the same way
    # (whisper.cpp's `audio_ctx`). Short videos then cost a fraction; the states differ a little
    # from the full window's, which the MLLM's projector, trained on the same states, absorbs.
    full_window: bool = False
    min_audio_s: float = 1.0


@dataclass
class AudioFeatures:
    tokens: Tensor  # (B, n_tokens, d_audio) window means, zeros without audio
    pooled: Tensor  # (B, d_audio) mean over the real audio, zeros without audio
    present: Tensor  # (B,) bool, False for videos without an audio track


class WhisperAudioEncoder(nn.Module):
    """Frozen openai-whisper encoder: list of waveforms -> AudioFeatures."""

    def __init__(self, config: AudioEncoderConfig):
        super().__init__()
        from inference.asr import load_whisper

        self.config = config
        whisper_model = load_whisper(os.fspath(config.checkpoint_path), device="cpu")
        self.n_mels = whisper_model.dims.n_mels
        self.n_ctx = whisper_model.dims.n_audio_ctx
        self.encoder = whisper_model.encoder  # the decoder is not needed and is dropped here
        self.encoder.requires_grad_(False)
        self.encoder.eval()

    @property
    def d_audio(self) -> int:
        return self.encoder.ln_post.normalized_shape[0]

    def train(self, mode: bool = True) -> "WhisperAudioEncoder":
        # Frozen: stays in eval mode whatever the enclosing model does.
        return super().train(False)

    def n_real_states(self, n_samples: int) -> int:
        """Encoder states that cover real audio (each state is 20 ms)."""
        return max(1, min(self.n_ctx, math.ceil(n_samples / SAMPLES_PER_STATE)))

    def _mel(self, audio: np.ndarray) -> Tensor:
        import whisper

        waveform = torch.from_numpy(np.ascontiguousarray(audio, dtype=np.float32))  # (n_samples,)
        waveform = whisper.pad_or_trim(waveform)  # (480000,) the 30 s window
        return whisper.log_mel_spectrogram(waveform, n_mels=self.n_mels)  # (n_mels, 3000)

    def _encode(self, mel: Tensor) -> Tensor:
        """Whisper's AudioEncoder.forward for any length up to n_ctx states (mel: (N, n_mels, 2*S))."""
        enc = self.encoder
        x = F.gelu(enc.conv1(mel))  # (N, d, 2*S)
        x = F.gelu(enc.conv2(x))  # (N, d, S)
        x = x.permute(0, 2, 1)  # (N, S, d)
        x = x + enc.positional_embedding[: x.shape[1]]  # (N, S, d)
        for block in enc.blocks:
            x = block(x)  # (N, S, d)
        return enc.ln_post(x)  # (N, S, d)

    def _states(self, audio: np.ndarray) -> Tensor:
        n_real = self.n_real_states(len(audio))
        if self.config.full_window:
            n_states = self.n_ctx
        else:
            n_min = math.ceil(self.config.min_audio_s * SAMPLE_RATE / SAMPLES_PER_STATE)
            n_states = min(self.n_ctx, max(n_real, n_min))
        mel = self._mel(audio)[:, : n_states * MEL_FRAMES_PER_STATE]  # (n_mels, 2*S)
        states = self._encode(mel[None])[0]  # (S, d)
        return states[:n_real]  # (n_real, d)

    @torch.no_grad()
    def forward(self, waveforms: list[np.ndarray | None]) -> AudioFeatures:
        d, k = self.d_audio, self.config.n_tokens
        tokens = torch.zeros(len(waveforms), k, d)  # (B, k, d)
        pooled = torch.zeros(len(waveforms), d)  # (B, d)
        present = torch.zeros(len(waveforms), dtype=torch.bool)  # (B,)
        for i, audio in enumerate(waveforms):
            if audio is None or len(audio) == 0:
                continue
            states = self._states(audio)  # (n_real, d)
            # k equal time windows over the real audio (a window repeats when n_real < k)
            tokens[i] = F.adaptive_avg_pool1d(states.T[None], k)[0].T  # (k, d)
            pooled[i] = states.mean(dim=0)  # (d,)
            present[i] = True
        return AudioFeatures(tokens=tokens, pooled=pooled, present=present)
