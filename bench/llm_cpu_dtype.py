"""Which dtype the stage-2 LLM should run in on this CPU: one 108-token forward (a video's
evidence over the cached prompt) and one decode step (a token of the explanation), fp32 against
bf16 and against int8 weights, with the real backbone (COEFVQ_LLM_PATH's default folder).

    .venv/bin/python bench/llm_cpu_dtype.py [--llm-path DIR] [--threads 2] [--agreement-items 48]
        [--out bench/results/llm_cpu_dtype]

inference.llm.backbone_dtype("auto") picks bf16 only where the CPU computes in it (AVX512-BF16
or AMX); this script is the measurement behind that rule.

int8: torch's dynamic quantization (int8 weights per output channel, activations quantized per
call) of the decoder layers' MLP projections, which hold most of the weights. Speed alone would
not decide it, so the classifier (inference.llm, from its prompt) also labels --agreement-items
held-out text-only items in fp32 and again with the quantized MLPs, and the share of labels that
stay the same is reported.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from pathlib import Path

import torch
from transformers import AutoModelForCausalLM

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


def quantize_mlps(model: torch.nn.Module) -> None:
    """int8 dynamic quantization of the decoder layers' MLP projections (gate, up, down), in place."""
    from torch.ao.quantization import per_channel_dynamic_qconfig, quantize_dynamic

    names = {name: per_channel_dynamic_qconfig for name, module in model.named_modules()
             if isinstance(module, torch.nn.Linear) and ".layers." in name and ".mlp." in name}
    quantize_dynamic(model, names, dtype=torch.qint8, inplace=True)


def time_dtype(path: Path, dtype: torch.dtype, tokens: int, steps: int, int8: bool = False) -> dict:
    model = AutoModelForCausalLM.from_pretrained(os.fspath(path), dtype=dtype, local_files_only=True).eval()
    if int8:
        quantize_mlps(model)
    ids = torch.randint(0, 1000, (1, tokens))  # (1, T)
    with torch.no_grad():
        model(ids)  # warm-up
        start = time.perf_counter()
        past = model(ids, use_cache=True).past_key_values
        forward_s = time.perf_counter() - start
        start = time.perf_counter()
        for _ in range(steps):
            past = model(ids[:, -1:], past_key_values=past, use_cache=True).past_key_values
        decode_s = (time.perf_counter() - start) / steps
    name = "int8 MLP weights (dynamic)" if int8 else str(dtype).removeprefix("torch.")
    return {"dtype": name, "forward_s": round(forward_s, 2), "decode_step_s": round(decode_s, 3)}


def label_agreement(path: Path, n_items: int) -> dict:
    """The prompted classifier's labels on n held-out items, fp32 against int8 MLPs."""
    from inference.benchmark.text_only import held_out_text_only
    from inference.llm import LLMClassifier, LLMConfig

    pairs = held_out_text_only(4242, n_items)  # bench/mllm_recipes.py's dev seed
    features, truth = [f for _, f in pairs], [row["label"] for row, _ in pairs]
    model = LLMClassifier(LLMConfig(audio_checkpoint=os.fspath(ROOT / "var" / "models" / "whisper-tiny.en.pt"),
                                    backbone_path=os.fspath(path), dtype="float32")).eval()
    fp32 = model.probabilities(model.features_to_inputs(features)).argmax(1)  # (N,)
    quantize_mlps(model)
    model.reset_prefix_cache()  # the prompt's keys and values, read again through the int8 weights
    int8 = model.probabilities(model.features_to_inputs(features)).argmax(1)  # (N,)
    right = [[model.labels[i] == label for i, label in zip(labels.tolist(), truth)] for labels in (fp32, int8)]
    return {"items": n_items, "same_label": round(float((fp32 == int8).float().mean()), 3),
            "accuracy_fp32": round(sum(right[0]) / n_items, 3), "accuracy_int8": round(sum(right[1]) / n_items, 3)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--llm-path", type=Path, default=ROOT / "var" / "models" / "qwen2.5-coder-1.5b-instruct")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--tokens", type=int, default=108)
    parser.add_argument("--steps", type=int, default=5)
    parser.add_argument("--agreement-items", type=int, default=48, help="0: time the int8 weights only")
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "results" / "llm_cpu_dtype")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    cpu = {"capability": torch.backends.cpu.get_cpu_capability(),
           "avx512_bf16": torch.cpu._is_avx512_bf16_supported(), "amx": torch.cpu._is_amx_tile_supported()}
    rows = [time_dtype(args.llm_path, dtype, args.tokens, args.steps) for dtype in (torch.float32, torch.bfloat16)]
    rows.append(time_dtype(args.llm_path, torch.float32, args.tokens, args.steps, int8=True))
    agreement = label_agreement(args.llm_path, args.agreement_items) if args.agreement_items else None
    load = ", ".join(f"{x:.1f}" for x in os.getloadavg())
    result = {"command": " ".join([".venv/bin/python", *sys.argv]), "machine": f"{platform.machine()}, {os.cpu_count()} CPUs",
              "load_average_after": load, "threads": args.threads, "cpu": cpu, "rows": rows, "int8_agreement": agreement}
    lines = ["# The stage-2 LLM on this CPU: fp32, bf16 and int8 weights", "", f"`{result['command']}`", "",
             f"{result['machine']}, torch {torch.__version__}, CPU capability {cpu['capability']}, AVX512-BF16 "
             f"{cpu['avx512_bf16']}, AMX {cpu['amx']}; {args.threads} threads; load average after the run {load}.", "",
             f"| dtype | {args.tokens}-token forward s | decode step s |", "| --- | ---: | ---: |",
             *(f"| {r['dtype']} | {r['forward_s']:.2f} | {r['decode_step_s']:.3f} |" for r in rows)]
    if agreement:
        lines += ["", f"int8 MLP weights against fp32, the classifier from its prompt on {agreement['items']} held-out "
                  f"items: the same label on {agreement['same_label']:.0%}; accuracy {agreement['accuracy_fp32']:.3f} in "
                  f"fp32, {agreement['accuracy_int8']:.3f} with int8 MLPs."]
    write_results(args.out, result, lines)


def write_results(out: Path, result: dict, lines: list[str]) -> None:
    """results.json and results.md (the lines) under out, and the lines on stdout."""
    out.mkdir(parents=True, exist_ok=True)
    (out / "results.json").write_text(json.dumps(result, indent=1) + "\n")
    (out / "results.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
