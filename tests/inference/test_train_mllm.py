"""Training the stage-2 classifier through accelerate, single process on the CPU."""

import json
import math
import os
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml

os.environ.setdefault("HF_HUB_OFFLINE", "1")

from inference.audio_encoder import WhisperAudioEncoder  # noqa: E402
from inference.mllm import MLLMConfig, MultimodalClassifier  # noqa: E402
from inference.train_mllm import TrainConfig, class_weights, train_mllm  # noqa: E402
from inference.types import SAMPLE_RATE, Frame, MediaInfo, OcrLine, TranscriptSegment, VideoFeatures  # noqa: E402

torch.set_num_threads(1)  # the machine is shared; more threads only wait on each other
REPO = Path(__file__).resolve().parents[2]
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


def test_zero2_accelerate_and_deepspeed_configs_parse():
    launch = yaml.safe_load((REPO / "inference/accelerate/zero2.yaml").read_text())
    assert launch["distributed_type"] == "DEEPSPEED"
    ds_path = REPO / launch["deepspeed_config"]["deepspeed_config_file"]
    ds = json.loads(ds_path.read_text())
    assert ds["zero_optimization"]["stage"] == 2
    assert ds["bf16"]["enabled"] is True
    # batch sizes are left to accelerate, which fills them from the DataLoader
    assert ds["train_micro_batch_size_per_gpu"] == "auto" and ds["gradient_accumulation_steps"] == "auto"
    # accelerate refuses a launch config that repeats what the DeepSpeed file already says
    assert not {"gradient_clipping", "zero_stage", "offload_optimizer_device"} & set(launch["deepspeed_config"])


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
