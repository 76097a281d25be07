"""A small vision transformer, trained here, that turns sampled frames into frame tokens.

The offline default has no pretrained vision tower that ships inside a PyPI package, so the
MLLM learns its own: a ViT in the style of "An Image is Worth 16x16 Words" (patch embedding,
a [CLS] token, pre-norm transformer blocks), small enough to train on a CPU. Each frame is
encoded on its own; its [CLS] state is that frame's token. A GPU deployment swaps in a
VLM's own vision tower.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor, nn


@dataclass(frozen=True)
class VisionConfig:
    image_size: int = 64  # frames are resized to image_size x image_size
    patch_size: int = 16
    d_model: int = 192
    n_layers: int = 2
    n_heads: int = 4
    mlp_ratio: int = 4
    dropout: float = 0.0

    @property
    def n_patches(self) -> int:
        if self.image_size % self.patch_size:
            raise ValueError(f"image_size {self.image_size} is not a multiple of patch_size {self.patch_size}")
        return (self.image_size // self.patch_size) ** 2


class PatchEmbedding(nn.Module):
    """Non-overlapping patches -> d_model vectors (a strided convolution is a per-patch Linear)."""

    def __init__(self, config: VisionConfig):
        super().__init__()
        self.proj = nn.Conv2d(3, config.d_model, kernel_size=config.patch_size, stride=config.patch_size)

    def forward(self, images: Tensor) -> Tensor:
        x = self.proj(images)  # (N, d, H/p, W/p)
        return x.flatten(2).transpose(1, 2)  # (N, n_patches, d)


class Block(nn.Module):
    """Pre-norm transformer block: x + attn(ln(x)), x + mlp(ln(x))."""

    def __init__(self, config: VisionConfig):
        super().__init__()
        d = config.d_model
        self.ln_1 = nn.LayerNorm(d)
        self.attn = nn.MultiheadAttention(d, config.n_heads, dropout=config.dropout, batch_first=True)
        self.ln_2 = nn.LayerNorm(d)
        self.mlp = nn.Sequential(
            nn.Linear(d, config.mlp_ratio * d),
            nn.GELU(),
            nn.Linear(config.mlp_ratio * d, d),
            nn.Dropout(config.dropout),
        )

    def forward(self, x: Tensor) -> Tensor:
        h = self.ln_1(x)  # (N, S, d)
        x = x + self.attn(h, h, h, need_weights=False)[0]  # (N, S, d)
        x = x + self.mlp(self.ln_2(x))  # (N, S, d)
        return x


class VisionTransformer(nn.Module):
    """(B, T, 3, H, W) frames in [-1, 1] -> (B, T, d_model) frame tokens."""

    def __init__(self, config: VisionConfig):
        super().__init__()
        self.config = config
        self.patch_embed = PatchEmbedding(config)
        self.cls_token = nn.Parameter(torch.zeros(1, 1, config.d_model))
        self.pos_embed = nn.Parameter(torch.randn(1, config.n_patches + 1, config.d_model) * 0.02)
        self.blocks = nn.ModuleList(Block(config) for _ in range(config.n_layers))
        self.ln_f = nn.LayerNorm(config.d_model)

    @property
    def d_model(self) -> int:
        return self.config.d_model

    def forward(self, frames: Tensor) -> Tensor:
        B, T, C, H, W = frames.shape
        x = self.patch_embed(frames.reshape(B * T, C, H, W))  # (B*T, n_patches, d)
        cls = self.cls_token.expand(B * T, -1, -1)  # (B*T, 1, d)
        x = torch.cat([cls, x], dim=1) + self.pos_embed  # (B*T, 1 + n_patches, d)
        for block in self.blocks:
            x = block(x)  # (B*T, 1 + n_patches, d)
        x = self.ln_f(x[:, 0])  # (B*T, d): the [CLS] state is the frame's token
        return x.reshape(B, T, -1)  # (B, T, d)
