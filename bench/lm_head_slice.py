"""The LM head over one row: a (1, 1, d) slice of a longer (1, n, d) tensor against the same row
as a 2-D (1, d) tensor, with the real backbone's head, in each dtype asked for, on one thread.

    .venv/bin/python bench/lm_head_slice.py [--llm-path DIR] [--dtypes bfloat16 float32]
        [--out bench/results/lm_head_slice]

The slice is what transformers' `logits_to_keep=1` hands the head (`hidden[:, -1:, :]`); its
size-1 batch dim keeps the stride n * d, so torch's matmul does not fold it into one mm. On a CPU
in bf16 its fallback crawls (pytorch/pytorch#186148, #151934), which is why
`LLMClassifier._next_token_logits` gives the head 2-D rows. When a torch upgrade makes the two
columns equal, that workaround can go.

Writes results.json and results.md.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from datetime import datetime, timezone
from pathlib import Path

import torch
import torch.nn.functional as F

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "bench"))

from run_cascade import git_commit, machine_description  # noqa: E402

PROMPT_TOKENS = 17  # the explanation's first pass: " <label>\nReason:" and its opening words


def seconds(call, repeats: int) -> float:
    call()  # warm-up
    start = time.perf_counter()
    for _ in range(repeats):
        call()
    return (time.perf_counter() - start) / repeats


def head_weight(llm_path: Path) -> torch.Tensor:
    """The output embedding's weight of the LLM folder, read from its safetensors without the model."""
    from safetensors import safe_open

    config = json.loads((llm_path / "config.json").read_text())
    name = "model.embed_tokens.weight" if config.get("tie_word_embeddings") else "lm_head.weight"
    for shard in sorted(llm_path.glob("*.safetensors")):
        with safe_open(str(shard), framework="pt") as f:
            if name in f.keys():
                return f.get_tensor(name)
    raise FileNotFoundError(f"no {name} in {llm_path}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--llm-path", type=Path, default=ROOT / "var" / "models" / "qwen2.5-coder-1.5b-instruct")
    parser.add_argument("--dtypes", nargs="+", default=["bfloat16", "float32"])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "results" / "lm_head_slice")
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    weight = head_weight(args.llm_path)  # (V, d)
    rows = []
    for name in args.dtypes:
        w = weight.to(getattr(torch, name))
        hidden = torch.randn(1, PROMPT_TOKENS, w.shape[1], dtype=w.dtype)  # (1, n, d)
        sliced, flat = hidden[:, -1:, :], hidden[0, -1:]  # (1, 1, d) of stride n * d; (1, d)
        torch.testing.assert_close(F.linear(sliced, w)[0], F.linear(flat, w), rtol=1e-2, atol=1e-2)  # the same row
        rows.append({"dtype": name, "slice_s": round(seconds(lambda: F.linear(sliced, w), args.repeats), 4),
                     "rows_2d_s": round(seconds(lambda: F.linear(flat, w), args.repeats), 4)})
        print(rows[-1], flush=True)
    record = {"command": " ".join(["bench/lm_head_slice.py", *(argv or sys.argv[1:])]), "commit": git_commit(),
              "machine": machine_description(), "date": f"{datetime.now(timezone.utc):%Y-%m-%d %H:%M} UTC",
              "torch": torch.__version__, "head": list(weight.shape), "prompt_tokens": PROMPT_TOKENS, "threads": 1,
              "rows": rows}
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "results.json").write_text(json.dumps(record, indent=1) + "\n")
    lines = ["# The LM head over one row on this CPU, one thread", "",
             f"`.venv/bin/python {record['command']}`", "",
             f"{record['date']}, commit {record['commit']}, {record['machine']}; torch {record['torch']}; "
             f"head {record['head'][0]} x {record['head'][1]}; the last row of a (1, {PROMPT_TOKENS}, d) tensor.", "",
             "| dtype | (1, 1, d) slice s | (1, d) row s |", "| --- | ---: | ---: |",
             *(f"| {r['dtype']} | {r['slice_s']} | {r['rows_2d_s']} |" for r in rows)]
    (args.out / "results.md").write_text("\n".join(lines) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
