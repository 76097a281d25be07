"""int8 weights for a decoder LLM served on a CPU: torch's dynamic quantization, where it holds.

A dynamically quantized linear layer (torch.ao, fbgemm kernels) keeps its weights in int8, one
scale per output channel, and quantizes its input on the fly with one scale for the whole tensor.
Over a few tokens a CPU matmul only reads its weights, so int8 saves most in the explanation's
decode passes; over a prompt it computes in int8.

One scale per input tensor is what limits where it can go. In Qwen2.5-1.5B the input of the MLP's
`down_proj` has a few channels hundreds of times larger than the rest (layer 26: 1,399 against a
median channel maximum of 9.8, over 32 held-out prompts), so every other channel rounds to a few
levels. With `down_proj` quantized, the prompted classifier wrote "The caption offers
prescription pills" about a chess video; with SmoothQuant (Xiao et al., 2023: the outliers scaled
into `up_proj`'s rows, alpha 0.5 and 0.85) the prompted classifier kept its fp32 label on 21 and 15
of 32 held-out items. The attention projections and the MLP's `gate_proj` and `up_proj` read
normalised inputs: with only those quantized it kept 31 of 32, as many as bf16 does, though its
probabilities moved more (mean |change| 0.023 against bf16's 0.006). So only those are quantized;
`down_proj`, the embeddings, the LM head and LoRA keep the model's dtype. (These numbers come from
an exploration with ad-hoc scripts, not kept; bench/stage2_int8.py measures the model as served.)
"""

from __future__ import annotations

import warnings

import torch
from torch import Tensor, nn

# The linear layers of a decoder block that are quantized, by the end of their module name
# (HF's Llama/Qwen2/Mistral naming).
QUANTIZED = ("q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj")


class Int8Linear(nn.Module):
    """A dynamically quantized copy of an nn.Linear that takes and returns the model's dtype
    (the fbgemm kernels compute from fp32 inputs)."""

    def __init__(self, linear: nn.Linear):
        super().__init__()
        from torch.ao.nn.quantized.dynamic import Linear as DynamicQuantizedLinear
        from torch.ao.quantization import per_channel_dynamic_qconfig

        float_copy = nn.Linear(linear.in_features, linear.out_features, bias=linear.bias is not None)
        float_copy.weight.data = linear.weight.detach().float()
        if linear.bias is not None:
            float_copy.bias.data = linear.bias.detach().float()
        float_copy.qconfig = per_channel_dynamic_qconfig
        with warnings.catch_warnings():
            # torch.ao's eager quantization is marked deprecated in favour of torchao, whose eager
            # int8 linear took 14-85 ms where this one takes 1.2 (one token through a 1536 -> 8960
            # -> 1536 MLP, one EPYC core, no torch.compile); requirements.txt pins torch.
            warnings.filterwarnings("ignore", message=r"torch\.ao\.quantization is deprecated")
            warnings.filterwarnings("ignore", message=r"torch\.quantize_per_tensor, torch\.quantize_per_channel")
            self.quantized = DynamicQuantizedLinear.from_float(float_copy)
        self.in_features, self.out_features = linear.in_features, linear.out_features

    def forward(self, x: Tensor) -> Tensor:
        return self.quantized(x.float()).to(x.dtype)  # (..., out)


@torch.no_grad()
def quantize_block(block: nn.Module) -> list[str]:
    """Replace the QUANTIZED linear layers of a decoder block (LoRA's base layers where peft
    wraps them) with Int8Linear, in place. Returns their names."""
    names = [name for name, module in block.named_modules()
             if isinstance(module, nn.Linear) and "lora_" not in name
             and name.removesuffix(".base_layer").endswith(QUANTIZED)]
    for name in names:
        parent, _, attribute = name.rpartition(".")
        setattr(block.get_submodule(parent), attribute, Int8Linear(block.get_submodule(name)))
    return names
