"""Which dtype the stage-2 LLM should run in on this CPU: one 108-token forward (a video's
evidence over the cached prompt) and one decode step (a token of the explanation), fp32 against
bf16, with the real backbone (COEFVQ_LLM_PATH's default folder).

    .venv/bin/python bench/llm_cpu_dtype.py [--llm-path DIR] [--threads 2] [--out bench/results/llm_cpu_dtype]

inference.llm.backbone_dtype("auto") picks bf16 only where the CPU computes in it (AVX512-BF16
or AMX); this script is the measurement behind that rule.
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


def time_dtype(path: Path, dtype: torch.dtype, tokens: int, steps: int) -> dict:
    model = AutoModelForCausalLM.from_pretrained(os.fspath(path), dtype=dtype, local_files_only=True).eval()
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
    return {"dtype": str(dtype).removeprefix("torch."), "forward_s": round(forward_s, 2), "decode_step_s": round(decode_s, 3)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--llm-path", type=Path, default=ROOT / "var" / "models" / "qwen2.5-coder-1.5b-instruct")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--tokens", type=int, default=108)
    parser.add_argument("--steps", type=int, default=5)
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "results" / "llm_cpu_dtype")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    cpu = {"capability": torch.backends.cpu.get_cpu_capability(),
           "avx512_bf16": torch.cpu._is_avx512_bf16_supported(), "amx": torch.cpu._is_amx_tile_supported()}
    rows = [time_dtype(args.llm_path, dtype, args.tokens, args.steps) for dtype in (torch.float32, torch.bfloat16)]
    load = ", ".join(f"{x:.1f}" for x in os.getloadavg())
    result = {"command": " ".join([".venv/bin/python", *sys.argv]), "machine": f"{platform.machine()}, {os.cpu_count()} CPUs",
              "load_average_after": load, "threads": args.threads, "cpu": cpu, "rows": rows}
    lines = ["# The stage-2 LLM on this CPU: fp32 against bf16", "", f"`{result['command']}`", "",
             f"{result['machine']}, torch {torch.__version__}, CPU capability {cpu['capability']}, AVX512-BF16 "
             f"{cpu['avx512_bf16']}, AMX {cpu['amx']}; {args.threads} threads; load average after the run {load}.", "",
             f"| dtype | {args.tokens}-token forward s | decode step s |", "| --- | ---: | ---: |",
             *(f"| {r['dtype']} | {r['forward_s']:.2f} | {r['decode_step_s']:.3f} |" for r in rows)]
    write_results(args.out, result, lines)


def write_results(out: Path, result: dict, lines: list[str]) -> None:
    """results.json and results.md (the lines) under out, and the lines on stdout."""
    out.mkdir(parents=True, exist_ok=True)
    (out / "results.json").write_text(json.dumps(result, indent=1) + "\n")
    (out / "results.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
