"""Training either stage-2 classifier through accelerate, single process on the CPU (the
multi-process run is tests/inference/test_train_distributed.py)."""

import math
import os

import numpy as np
import pytest
import torch

os.environ.setdefault("HF_HUB_OFFLINE", "1")

from inference.audio_encoder import WhisperAudioEncoder  # noqa: E402
from inference.llm import LLMClassifier, LLMConfig, LLMInputs  # noqa: E402
from inference.mllm import MLLMConfig, MLLMInputs, MultimodalClassifier  # noqa: E402
from inference.train_mllm import (  # noqa: E402
    TrainConfig, batch_to_dict, class_weights, inputs_class, inputs_from_dict, predict_probabilities, train_mllm,
)
from inference.types import SAMPLE_RATE, Frame, MediaInfo, OcrLine, TranscriptSegment, VideoFeatures  # noqa: E402

torch.set_num_threads(1)  # the machine is shared; more threads only wait on each other
INFO = MediaInfo(container="mp4", duration_s=2.0, size_bytes=1000, has_video=True, has_audio=True)
OK_CAPTIONS = ["baking bread at home", "walking the dog in the rain", "my garden in spring", "a calm lake at dawn"]
SCAM_CAPTIONS = ["double your crypto send me btc", "free money giveaway pay the fee", "dm me to invest now",
                 "buy followers cheap guaranteed"]  # fmt: skip


def toy_items(n: int, seed: int) -> list[tuple[VideoFeatures, str]]:
    rng = np.random.default_rng(seed)
    frame = Frame(t_s=0.0, image=np.full((32, 32, 3), 128, dtype=np.uint8))
    items = []
    for i in range(n):
        scam = i % 2 == 1
        caption = (SCAM_CAPTIONS if scam else OK_CAPTIONS)[(i // 2) % 4]
        features = VideoFeatures(
            info=INFO,
            caption=caption,
            frames=[frame, Frame(t_s=1.0, image=frame.image)],
            audio=(0.1 * rng.standard_normal(SAMPLE_RATE // 2)).astype(np.float32),
            transcript=[TranscriptSegment(0.0, 1.0, "hello everyone")],
            ocr=[OcrLine(0.5, "welcome", 0.9, (0, 0, 5, 5))],
        )
        items.append((features, "scam" if scam else "ok"))
    return items


def model_config(whisper_checkpoint: str) -> MLLMConfig:
    return MLLMConfig(
        audio_checkpoint=whisper_checkpoint, n_frames=2, image_size=32, vision_d_model=64, vision_layers=1,
        vision_heads=2, max_text_tokens=48, head_hidden=64,
    )  # fmt: skip


def test_class_weights_favour_rare_classes():
    labels = np.array([0] * 90 + [1] * 10)
    weights = class_weights(labels, 4)
    assert weights[1] == pytest.approx(9 * weights[0])
    assert weights[2] == 1.0 and weights[3] == 1.0  # absent classes do not matter
    assert float((weights[labels]).sum()) == pytest.approx(len(labels))


def test_train_mllm_learns_caches_audio_keeps_best_and_saves(whisper_checkpoint, tmp_path, monkeypatch):
    calls = []
    original = WhisperAudioEncoder.forward

    def counting_forward(self, waveforms):
        calls.append(len(waveforms))
        return original(self, waveforms)

    monkeypatch.setattr(WhisperAudioEncoder, "forward", counting_forward)
    train, val = toy_items(16, seed=0), toy_items(8, seed=1)
    config = TrainConfig(epochs=5, batch_size=8, lr=2e-3, warmup_ratio=0.0, prepare_batch_size=8)
    result = train_mllm(train, val, model_config(whisper_checkpoint), config, tmp_path / "mllm", progress=False)

    # the frozen encoder ran once per video, not once per epoch
    assert sum(calls) == len(train) + len(val)
    assert len(calls) == math.ceil(len(train) / 8) + math.ceil(len(val) / 8)

    assert [h.epoch for h in result.history] == [1, 2, 3, 4, 5]
    assert result.steps == 5 * 2
    assert result.history[-1].train_loss < 0.5 * result.history[0].train_loss
    assert result.best_val_macro_f1 == max(h.val_macro_f1 for h in result.history)
    assert result.history[result.best_epoch - 1].val_macro_f1 == result.best_val_macro_f1
    assert result.best_val_macro_f1 > 0.4  # ok and scam both right: macro over 4 labels is 0.5

    # the saved folder is the best model, and reloads to the same predictions
    reloaded = MultimodalClassifier.load(result.out_dir)
    videos = [features for features, _ in val[:4]]
    for a, b in zip(result.model.predict(videos), reloaded.predict(videos)):
        assert a.probabilities == pytest.approx(b.probabilities, abs=1e-6)
    assert [o.label for o in reloaded.predict(videos)] == [label for _, label in val[:4]]


def test_max_steps_stops_training(whisper_checkpoint, tmp_path):
    config = TrainConfig(epochs=5, batch_size=4, max_steps=3)
    result = train_mllm(toy_items(8, 0), [], model_config(whisper_checkpoint), config, tmp_path / "m", progress=False)
    assert result.steps == 3
    assert len(result.history) == 2  # 2 steps per epoch: stops in the middle of epoch 2
    assert result.best_epoch == 2 and math.isnan(result.best_val_macro_f1)  # no validation: the last epoch
    assert (result.out_dir / "modules.safetensors").is_file()


def llm_config(tiny_qwen2_dir: str, whisper_checkpoint: str) -> LLMConfig:
    # as tests/inference/test_llm.py; no prompt examples: a shorter prefix
    return LLMConfig(audio_checkpoint=whisper_checkpoint, backbone_path=tiny_qwen2_dir, dtype="float32", n_frames=3,
                     image_size=32, vision_d_model=32, vision_layers=1, vision_heads=2, max_evidence_tokens=96,
                     examples=())


def test_train_mllm_fine_tunes_the_llm_classifier_keeps_best_and_saves(tiny_qwen2_dir, whisper_checkpoint, tmp_path):
    train, val = toy_items(8, seed=0), toy_items(4, seed=1)  # ok and scam differ by their captions
    steps = []
    config = TrainConfig(epochs=6, batch_size=4, lr=3e-3, warmup_ratio=0.0, eval_batch_size=4)
    result = train_mllm(train, val, llm_config(tiny_qwen2_dir, whisper_checkpoint), config, tmp_path / "llm",
                        progress=False, on_step=lambda done, total: steps.append((done, total)))

    assert isinstance(result.model, LLMClassifier)
    assert steps == [(i, 12) for i in range(1, 13)]  # 2 batches x 6 epochs
    # The tiny random Qwen2's LM-head rows are small and its final state is normalised, so its
    # label logits stay within about +-1.3: the loss falls but cannot reach 0 (a real LLM's can).
    assert result.history[-1].train_loss < 0.8 * result.history[0].train_loss
    assert result.best_val_macro_f1 == max(h.val_macro_f1 for h in result.history)
    assert result.history[result.best_epoch - 1].val_macro_f1 == result.best_val_macro_f1
    assert all(math.isfinite(loss) for loss in result.losses) and (result.rank, result.world_size) == (0, 1)
    lora_b = [p for name, p in result.model.named_parameters() if "lora_B" in name]
    assert lora_b and all(float(p.detach().abs().max()) > 0 for p in lora_b)  # peft starts every B at 0

    # the saved folder is the best epoch, and reloads to the same probabilities
    reloaded = LLMClassifier.load(result.out_dir)
    videos = [features for features, _ in val]
    before = result.model.probabilities(result.model.features_to_inputs(videos))  # (4, K)
    torch.testing.assert_close(reloaded.probabilities(reloaded.features_to_inputs(videos)), before)
    prepared = reloaded.prepare(videos)
    np.testing.assert_allclose(predict_probabilities(reloaded, prepared, batch_size=3), before.numpy(), atol=1e-6)

    # init_from goes on from the saved folder (as retraining does): with lr 0 nothing moves
    again = train_mllm(train, [], llm_config(tiny_qwen2_dir, whisper_checkpoint), TrainConfig(lr=0.0, max_steps=1),
                       tmp_path / "again", progress=False, init_from=result.out_dir)
    assert isinstance(again.model, LLMClassifier) and again.steps == 1
    torch.testing.assert_close(again.model.probabilities(again.model.features_to_inputs(videos)), before)


def test_gates_train_at_their_own_rate(tiny_qwen2_dir, whisper_checkpoint, tmp_path):
    """The gates start at 0 and Adam moves a parameter by about its rate per step: at the LoRA
    rate they could never open in a CPU epoch. With scratch_lr they move at theirs, while the
    adapters keep the LoRA rate."""
    lr, scratch_lr = 1e-4, 1e-2
    config = TrainConfig(epochs=1, batch_size=4, lr=lr, scratch_lr=scratch_lr, warmup_ratio=0.0, max_steps=3,
                         weight_decay=0.0)
    result = train_mllm(toy_items(12, seed=0), [], llm_config(tiny_qwen2_dir, whisper_checkpoint), config,
                        tmp_path / "llm", progress=False)

    lr_sum = lr * (1 + 2 / 3 + 1 / 3)  # 3 steps, the rate decaying linearly to 0
    lora_b = [p for name, p in result.model.named_parameters() if "lora_B" in name]  # peft starts every B at 0
    assert max(float(p.detach().abs().max()) for p in lora_b) <= 1.01 * lr_sum
    gates = [float(result.model.visual_gate.detach().abs()), float(result.model.audio_gate.detach().abs())]
    assert min(gates) > 10 * lr_sum


def test_batches_rebuild_each_class_inputs(tiny_qwen2_dir, whisper_checkpoint):
    items = toy_items(2, seed=0)
    llm = LLMClassifier(llm_config(tiny_qwen2_dir, whisper_checkpoint))
    assert inputs_class(llm) is LLMInputs
    batch = batch_to_dict(llm, llm.prepare([f for f, _ in items]), np.array([0, 1]))
    inputs = inputs_from_dict(batch, inputs_class(llm))
    assert isinstance(inputs, LLMInputs) and inputs.suffix_ids.shape[0] == 2
    assert llm(inputs).shape == (2, len(llm.labels))
    assert inputs_class(MultimodalClassifier.__new__(MultimodalClassifier)) is MLLMInputs


def test_synthetic_items_come_from_the_generator_and_a_rendered_benchmark(tmp_path):
    import json
    import random
    from dataclasses import asdict

    from inference.benchmark import GeneratorConfig, generate_specs
    from inference.benchmark.cache import cache_path
    from inference.benchmark.text_only import text_only_features
    from inference.features import features_to_cache_dict
    from inference.policy import LABELS
    from inference.train_mllm import synthetic_items

    drawn = synthetic_items(seed=0, text_items=20, val_items=10)
    assert len(drawn["train"]) == 20 and 0 < len(drawn["val"]) <= 10
    assert {label for _, label in drawn["train"] + drawn["val"]} <= set(LABELS)
    assert {f.caption for f, _ in drawn["val"]}.isdisjoint({f.caption for f, _ in drawn["train"]})

    # a benchmark folder as `manage.py train` leaves it: manifest.jsonl + features/<version>/<sha>.pt
    rng = random.Random(0)
    rows = []
    for i, item in enumerate(generate_specs(GeneratorConfig(seed=3, n_train=2, n_val=1, n_test=1))):
        sha = f"{i:064x}"
        rows.append({**asdict(item), "path": f"{item.split}/{item.id}.mp4", "sha256": sha})
        target = cache_path(tmp_path / "features", sha, "v-test")
        target.parent.mkdir(parents=True, exist_ok=True)
        torch.save(features_to_cache_dict(text_only_features(item, rng)), target)
    (tmp_path / "manifest.jsonl").write_text("".join(json.dumps(row) + "\n" for row in rows))
    splits = synthetic_items(seed=0, text_items=3, val_items=10, benchmark=tmp_path, extractor_version="v-test")
    assert len(splits["train"]) == 2 + 3 and len(splits["val"]) == 1  # the rendered val split validates
    assert [f.caption for f, _ in splits["train"][:2]] == [row["caption"] for row in rows[:2]]
