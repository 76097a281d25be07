"""Multi-process training: `accelerate launch` with the shipped FSDP SHARD_GRAD_OP config, two
processes on the CPU (gloo), the tiny random Qwen2 and Whisper, the synthetic benchmark.

accelerate 1.15 never picks FSDP on the CPU: with ACCELERATE_USE_CPU its state goes to
MULTI_CPU (plain DDP) whatever the launch config says. torch's FSDP itself runs on the CPU
over gloo, so the launched script (this file, run as __main__) sets accelerate's state to FSDP
before calling `inference.train_mllm.main`; from there everything is the GPU path: accelerate
wraps the model (each Qwen2DecoderLayer a unit, SHARD_GRAD_OP, use_orig_params), maps the
optimizer, clips across shards, and train_mllm gathers and saves the weights. Only the
precision differs: fp32 here, since CPU autocast does not run LayerNorm in fp32 as CUDA's does.
"""

import math
import os
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import torch
import yaml

os.environ.setdefault("HF_HUB_OFFLINE", "1")

REPO = Path(__file__).resolve().parents[2]
FSDP_CONFIG = REPO / "inference/accelerate/fsdp_shard_grad_op.yaml"
RANK_LINE = re.compile(r"rank (\d)/(\d) \((\w+)\): (\d+) steps on \d+ items, loss (\S+) -> ([^,\s]+)")


def test_fsdp_launch_config_is_shard_grad_op_with_original_params():
    config = yaml.safe_load(FSDP_CONFIG.read_text())
    assert config["distributed_type"] == "FSDP" and config["mixed_precision"] == "bf16"
    fsdp = config["fsdp_config"]
    assert fsdp["fsdp_version"] == 1 and fsdp["fsdp_sharding_strategy"] == "SHARD_GRAD_OP"
    assert fsdp["fsdp_use_orig_params"] is True  # frozen backbone + LoRA in one unit
    assert fsdp["fsdp_auto_wrap_policy"] == "TRANSFORMER_BASED_WRAP"
    assert fsdp["fsdp_transformer_layer_cls_to_wrap"] == "Qwen2DecoderLayer"
    # accelerate reads the file, and every fsdp_config key is a launch option it knows
    from accelerate.commands.config.config_args import load_config_from_file
    from accelerate.commands.launch import launch_command_parser

    assert load_config_from_file(str(FSDP_CONFIG)).fsdp_config == fsdp
    assert set(fsdp) <= {action.dest for action in launch_command_parser()._actions}


def test_two_processes_train_the_llm_under_fsdp(tiny_qwen2_dir, whisper_checkpoint, tmp_path):
    from inference.llm import LLMClassifier
    from inference.types import SAMPLE_RATE, MediaInfo, TranscriptSegment, VideoFeatures

    out = tmp_path / "llm"
    env = {**os.environ, "OMP_NUM_THREADS": "1", "ACCELERATE_USE_CPU": "true", "HF_HUB_OFFLINE": "1",
           "PYTHONPATH": os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")]))}
    command = [
        sys.executable, "-m", "accelerate.commands.launch", "--config_file", str(FSDP_CONFIG),
        "--num_processes", "2", "--mixed_precision", "no", "--main_process_port", "0", __file__,
        "--llm-path", tiny_qwen2_dir, "--audio-checkpoint", whisper_checkpoint, "--dtype", "float32",
        "--n-frames", "3", "--image-size", "32", "--vision-d-model", "32", "--vision-layers", "1",
        "--vision-heads", "2", "--max-evidence-tokens", "96",
        "--text-items", "8", "--val-items", "4", "--batch-size", "2", "--epochs", "2", "--max-steps", "3",
        "--lr", "1e-3", "--out", str(out), "--no-progress", "--threads", "1",
    ]  # fmt: skip
    done = subprocess.run(command, env=env, cwd=REPO, capture_output=True, text=True, timeout=240)
    log = done.stdout + done.stderr
    assert done.returncode == 0, log[-4000:]

    ranks = {int(m[0]): m for m in RANK_LINE.findall(log)}
    assert sorted(ranks) == [0, 1], log[-2000:]  # both processes trained and reported
    for rank, world, distributed, steps, first, last in ranks.values():
        assert (world, distributed, steps) == ("2", "FSDP", "3")
        assert math.isfinite(float(first)) and math.isfinite(float(last))

    model = LLMClassifier.load(out, audio_checkpoint=whisper_checkpoint, backbone_path=tiny_qwen2_dir)
    lora_b = [p for name, p in model.named_parameters() if "lora_B" in name]
    assert lora_b and any(float(p.detach().abs().max()) > 0 for p in lora_b)  # peft starts every B at 0
    info = MediaInfo(container="mp4", duration_s=1.0, size_bytes=1, has_video=False, has_audio=True)
    rng = np.random.default_rng(0)
    videos = [VideoFeatures(info=info, caption=caption, frames=[],
                            audio=(0.1 * rng.standard_normal(SAMPLE_RATE // 2)).astype(np.float32),
                            transcript=[TranscriptSegment(0.0, 1.0, "hello")], ocr=[])
              for caption in ("baking bread", "send me btc")]  # fmt: skip
    probs = model.probabilities(model.features_to_inputs(videos))  # (2, K)
    assert probs.shape == (2, len(model.labels)) and bool(torch.isfinite(probs).all())
    torch.testing.assert_close(probs.sum(-1), torch.ones(2))


def _fsdp_on_cpu() -> None:
    """Let accelerate take its FSDP path on the CPU: after its state is made (MULTI_CPU, since
    ACCELERATE_USE_CPU), say FSDP in both shared states with the plugin it built from the
    launch config, and the plain CPU device (FSDP wants the device its parameters are on)."""
    from accelerate.state import AcceleratorState, PartialState
    from accelerate.utils import DistributedType

    original = AcceleratorState.__init__

    def init(self, *args, fsdp_plugin=None, **kwargs):
        original(self, *args, fsdp_plugin=fsdp_plugin, **kwargs)
        if fsdp_plugin is not None and self.distributed_type == DistributedType.MULTI_CPU:
            for state in (PartialState(), self):
                state.distributed_type = DistributedType.FSDP
                state.device = torch.device("cpu")
            if self._mixed_precision != "no":
                fsdp_plugin.set_mixed_precision(self._mixed_precision)
            self.fsdp_plugin = fsdp_plugin

    AcceleratorState.__init__ = init


if __name__ == "__main__":  # one of the launched processes
    from inference.train_mllm import main

    _fsdp_on_cpu()
    sys.exit(main(sys.argv[1:]))
