"""Where stage 2's seconds per video go on this CPU: the call the gpu worker makes for a routed
video (`predict(explain=True)`), split into its parts, at each torch thread count asked for.

    .venv/bin/python bench/stage2_seconds.py --work DIR --model DIR [--threads 1 2] [--videos 12]
        [--draft-tokens 0 4 8] [--beside-asr] [--out bench/results/stage2_seconds]

DIR (--work) is a finished `bench/generalize.py --work DIR` folder: its 40 hand-written videos,
extracted as ingest extracts them (shared with bench/mllm_recipes.py's cache), and its LLM
under DIR/var/models. --model is a saved stage-2 folder (the first run's prompted LLM or its
fine-tune, under DIR/var/models/mllm/).

The parts: `prepare` (tokens, the frozen Whisper audio encoder), the scoring passes
(`logits_and_cache`: the video over the cached prompt prefix, then for each modality that can
contribute the rest of the prompt from where its removal changes it; "tokens scored" counts what
those passes read per video) and the explanation
(`generate_reason`: greedy decode passes, each over the last token and a prompt-lookup draft). The
first video is a warm-up (the prefix's keys and values are computed once per process) and is not
counted.

--draft-tokens measures each thread count once per prompt-lookup draft length
(`LLMConfig.explain_draft_tokens`; 0 is plain greedy decoding, one pass per token) and says how
many decode passes a video's explanation took and whether the explanations were the same words.

--beside-asr measures each thread count again while another process runs the product's ASR
(Whisper base at beam 5, one torch thread, as a `cpu` worker runs it) over the same videos' audio,
and reports that ASR's seconds per clip beside it and alone: what the two workers of
`scripts/run.sh` do to each other when both queues are busy.

Writes results.json and results.md.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import queue
import sys
import time
from collections import defaultdict
from dataclasses import replace
from datetime import datetime, timezone
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from mllm_recipes import gate_values, hand_written_set  # noqa: E402
from run_cascade import git_commit, machine_description  # noqa: E402

from inference.asr import SpeechTranscriber, TranscriberConfig  # noqa: E402
from inference.llm import LLMClassifier  # noqa: E402

PARTS = ("prepare", "logits_and_cache", "generate_reason")


def timed_parts(model: LLMClassifier, seconds: dict[str, float]) -> None:
    """Wrap the model's parts so each call adds its wall time to seconds[part]."""
    for name in PARTS:
        method = getattr(model, name)

        def timed(*args, _method=method, _name=name, **kwargs):
            start = time.perf_counter()
            result = _method(*args, **kwargs)
            seconds[_name] += time.perf_counter() - start
            return result

        setattr(model, name, timed)


def measure(model: LLMClassifier, videos: list, threads: int) -> dict:
    torch.set_num_threads(threads)
    model.predict(videos[:1], explain=True)  # warm-up: the prefix cache, the kernels
    seconds: dict[str, float] = defaultdict(float)
    timed_parts(model, seconds)
    decode_passes = 0
    next_token_logits = model._next_token_logits

    def counted(*args, **kwargs):
        nonlocal decode_passes
        decode_passes += 1
        return next_token_logits(*args, **kwargs)

    model._next_token_logits = counted
    scored_tokens = 0
    logits_and_cache = model.logits_and_cache

    def read(inputs, start=0, cache=None):
        nonlocal scored_tokens
        scored_tokens += int(inputs.suffix_mask[:, start:].sum())
        return logits_and_cache(inputs, start=start, cache=cache)

    model.logits_and_cache = read
    per_video, explanations = [], []
    for video in videos[1:]:
        start = time.perf_counter()
        output = model.predict([video], explain=True)[0]
        per_video.append(time.perf_counter() - start)
        assert output.rationale.explanation, "every stage-2 decision carries its explanation"
        explanations.append(output.rationale.explanation)
    for name in (*PARTS, "_next_token_logits"):  # unwrap for the next measurement
        delattr(model, name)
    n = len(per_video)
    return {"threads": threads, "draft_tokens": model.draft_tokens, "videos": n,
            "mean_s": round(sum(per_video) / n, 2), "max_s": round(max(per_video), 2),
            **{f"{name}_s": round(seconds[name] / n, 2) for name in PARTS},
            "scored_tokens": round(scored_tokens / n, 1),  # the prompt tokens the scoring passes read, past the prefix
            "decode_passes": round(decode_passes / n - 1, 1),  # the first pass reads the answer's opening
            "explanations": explanations}


def run_record(script: str, commit: str) -> dict:
    """What a CPU timing was measured with: the command, commit, machine, date, torch and the
    CPU's bf16 and AMX support."""
    return {"command": " ".join([".venv/bin/python", script, *sys.argv[1:]]), "commit": commit,
            "machine": machine_description(), "date": f"{datetime.now(timezone.utc):%Y-%m-%d %H:%M} UTC",
            "torch": torch.__version__, "amx": torch.cpu._is_amx_tile_supported(),
            "avx512_bf16": torch.cpu._is_avx512_bf16_supported()}


def save_record(out: Path, record: dict) -> str:
    """Write out/results.json; -> the run_record part of it as a sentence, for results.md."""
    out.mkdir(parents=True, exist_ok=True)
    (out / "results.json").write_text(json.dumps(record, indent=1) + "\n")
    return (f"{record['date']}, commit {record['commit']}, {record['machine']}; torch {record['torch']}, "
            f"AMX {record['amx']}, AVX512-BF16 {record['avx512_bf16']}")


def transcribe_until_stopped(checkpoint: str, audios: list, ready, stop, seconds_per_clip) -> None:
    """The product's ASR on one thread, round and round the clips until `stop` is set; puts its
    seconds per clip on the `seconds_per_clip` queue."""
    torch.set_num_threads(1)
    transcriber = SpeechTranscriber(TranscriberConfig(checkpoint_path=checkpoint))
    transcriber.transcribe(audios[0])  # loads the model
    ready.set()
    done, start = 0, time.perf_counter()
    while not stop.is_set():
        transcriber.transcribe(audios[done % len(audios)])
        done += 1
    seconds_per_clip.put(round((time.perf_counter() - start) / max(done, 1), 2))


class BusyNeighbour:
    """A process running the product's ASR for as long as the `with` block lasts."""

    def __init__(self, checkpoint: Path, audios: list):
        context = multiprocessing.get_context("spawn")
        self.ready, self.stop, self.result = context.Event(), context.Event(), context.Queue()
        self.process = context.Process(target=transcribe_until_stopped,
                                       args=(str(checkpoint), audios, self.ready, self.stop, self.result))
        self.seconds_per_clip: float | None = None

    def __enter__(self) -> "BusyNeighbour":
        self.process.start()
        while not self.ready.wait(1.0):  # a neighbour that dies loading its model must not hang the run
            if not self.process.is_alive():
                raise RuntimeError(f"the ASR process stopped before it was ready (exit code {self.process.exitcode})")
        return self

    def __exit__(self, *exc) -> None:
        self.stop.set()
        # Read before join (a child joins only once its queue is drained); it finishes the clip it is on.
        while self.seconds_per_clip is None and (self.process.is_alive() or not self.result.empty()):
            try:
                self.seconds_per_clip = self.result.get(timeout=1.0)
            except queue.Empty:
                pass
        self.process.join()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--work", type=Path, required=True)
    parser.add_argument("--model", type=Path, required=True, help="A saved stage-2 (LLM) folder.")
    parser.add_argument("--threads", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--videos", type=int, default=12, help="Of the 40, the first N (one more is the warm-up).")
    parser.add_argument("--draft-tokens", type=int, nargs="+", default=None,
                        help="Prompt-lookup draft lengths to compare (default: the model's own).")
    parser.add_argument("--beside-asr", action="store_true",
                        help="Also measure each thread count with the product's ASR busy in another process.")
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "results" / "stage2_seconds")
    args = parser.parse_args()
    commit = git_commit()
    features, _, _ = hand_written_set(args.work, args.work / "var" / "models" / "whisper-base.pt")
    model = LLMClassifier.load(args.model, backbone_path=str(args.work / "var" / "models" / "qwen2.5-coder-1.5b-instruct"))
    dtype = str(next(model.backbone.parameters()).dtype).removeprefix("torch.")
    gates = gate_values(model)["gates"]
    videos = features[: args.videos + 1]
    drafts = args.draft_tokens or [model.config.explain_draft_tokens]
    rows = []
    for threads in args.threads:
        for draft in drafts:
            model.config = replace(model.config, explain_draft_tokens=draft)
            rows.append({"beside": "nothing", **measure(model, videos, threads)})
    asr_alone = None
    if args.beside_asr:
        checkpoint, audios = args.work / "var" / "models" / "whisper-base.pt", [f.audio for f in videos if f.audio is not None]
        with BusyNeighbour(checkpoint, audios) as neighbour:
            time.sleep(60)  # the ASR alone, for comparison
        asr_alone = neighbour.seconds_per_clip
        for threads in args.threads:
            with BusyNeighbour(checkpoint, audios) as neighbour:
                row = measure(model, videos, threads)
            rows.append({"beside": "ASR", **row, "asr_s_per_clip": neighbour.seconds_per_clip})
    for row in rows:
        print(json.dumps({k: v for k, v in row.items() if k != "explanations"}), flush=True)
    same_words = {threads: len({tuple(r["explanations"]) for r in rows
                                if r["threads"] == threads and r["beside"] == "nothing"}) == 1
                  for threads in args.threads}

    record = {**run_record("bench/stage2_seconds.py", commit), "model": args.model.name, "dtype": dtype,
              "gates": gates, "asr_alone_s_per_clip": asr_alone,
              "same_explanations_at_every_draft_length": same_words, "rows": rows}
    command = record["command"]
    lines = ["# Stage 2's seconds per routed video on this CPU", "", f"`{command}`", "",
             f"{save_record(args.out, record)}; backbone in {dtype}; model {record['model']} (tanh of the "
             f"visual and audio gates: {gates['visual']}, {gates['audio']}).", "",
             "`predict(explain=True)` on the hand-written videos of bench/generalize.py, one at a time, after a "
             "warm-up video.", "",
             "| torch threads | beside | draft tokens | videos | mean s | max s | prepare s | scoring pass s | "
             "tokens scored | explanation s | decode passes | the ASR's s per clip |",
             "| ---: | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |"]
    lines += [f"| {r['threads']} | {r['beside']} | {r['draft_tokens']} | {r['videos']} | {r['mean_s']} | {r['max_s']} | "
              f"{r['prepare_s']} | {r['logits_and_cache_s']} | {r['scored_tokens']} | {r['generate_reason_s']} | "
              f"{r['decode_passes']} | "
              f"{r.get('asr_s_per_clip', '-')} |" for r in rows]
    if len(drafts) > 1:
        lines += ["", "The same explanations, word for word, at every draft length: "
                  + ", ".join(f"{'yes' if same else 'no'} on {t} thread(s)" for t, same in same_words.items()) + "."]
    if asr_alone is not None:
        lines += ["", f"The ASR alone (Whisper base, beam 5, one thread): {asr_alone} s per clip."]
    (args.out / "results.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
