"""Which Whisper transcribes the product's speech better, and at what cost: word error rate and
seconds per video for each checkpoint, through `inference.asr.SpeechTranscriber` with the
production settings (beam 5, English).

    .venv/bin/python bench/asr_compare.py --checkpoint tiny.en=var/models/whisper-tiny.en.pt \
        --checkpoint base=var/models/whisper-base.pt [--work /tmp/asr] [--heldout 30] \
        [--out bench/results/asr]

Two sets of espeak-ng speech, each rendered into a real clip and decoded from it:
- `heldout`: test items of the benchmark generator built only from its held-out phrasings and
  voices (seed 11, which no training run uses);
- `handwritten`: the spoken cases of bench/generalize.py (phrasings, voices and speeds the
  generator never uses).
Both the reference and the transcript go through Whisper's English text normaliser before
jiwer scores them, so "$50" against "fifty dollars" is not counted as two errors.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from pathlib import Path

import jiwer
import torch
from tqdm import tqdm
from whisper.audio import load_audio
from whisper.normalizers import EnglishTextNormalizer

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from generalize import spec_for  # noqa: E402
from video_cases import WRITTEN_40  # noqa: E402

from inference.asr import SpeechTranscriber, TranscriberConfig  # noqa: E402
from inference.benchmark import GeneratorConfig, generate_specs  # noqa: E402
from inference.benchmark.render import item_to_spec  # noqa: E402
from inference.synth import SynthSpec, render_video  # noqa: E402

HELDOUT_SEED = 11


def heldout_specs(count: int) -> list[tuple[str, str, SynthSpec]]:
    """(id, reference speech, spec) of held-out-phrasing, held-out-voice test items with speech."""
    items = generate_specs(GeneratorConfig(seed=HELDOUT_SEED, n_train=4, n_val=4, n_test=max(count * 4, 40)))
    chosen = [item for item in items if item.split == "test" and item.ood and item.speech_text][:count]
    return [(item.id, item.speech_text, item_to_spec(item)) for item in chosen]


def handwritten_specs() -> list[tuple[str, str, SynthSpec]]:
    return [(case.id, case.speech, spec_for(WRITTEN_40, case, index))
            for index, case in enumerate(WRITTEN_40.cases) if case.speech]


def render(specs: list[tuple[str, str, SynthSpec]], folder: Path) -> list[tuple[str, str, Path]]:
    folder.mkdir(parents=True, exist_ok=True)
    clips = []
    for clip_id, reference, spec in tqdm(specs, desc=f"render {folder.name}", unit="clip"):
        path = folder / f"{clip_id}.{spec.container}"
        if not path.exists():
            render_video(path, spec)
        clips.append((clip_id, reference, path))
    return clips


def transcribe_all(transcriber: SpeechTranscriber, clips: list[tuple[str, str, Path]]) -> list[dict]:
    normalise = EnglishTextNormalizer()
    rows = []
    for clip_id, reference, path in tqdm(clips, desc="transcribe", unit="clip"):
        audio = load_audio(str(path))  # (n_samples,) float32, 16 kHz mono, as extraction stores it
        start = time.perf_counter()
        segments = transcriber.transcribe(audio)
        seconds = time.perf_counter() - start
        hypothesis = " ".join(segment.text for segment in segments)
        rows.append({"id": clip_id, "seconds": seconds, "audio_s": len(audio) / 16000,
                     "reference": normalise(reference), "hypothesis": normalise(hypothesis)})
    return rows


def summary(rows: list[dict]) -> dict:
    references = [r["reference"] for r in rows]
    hypotheses = [r["hypothesis"] or "<nothing>" for r in rows]  # jiwer refuses empty hypotheses
    return {"clips": len(rows), "wer": jiwer.wer(references, hypotheses),
            "seconds_per_clip": sum(r["seconds"] for r in rows) / len(rows),
            "audio_seconds_per_clip": sum(r["audio_s"] for r in rows) / len(rows)}


def markdown(results: dict) -> str:
    lines = [
        "# Whisper checkpoints on the product's speech", "",
        f"`{results['command']}`", "", f"{results['machine']}, {results['threads']} torch threads, "
        "ASR as in production (beam 5, English, `inference.asr`).", "",
        "| checkpoint | set | clips | WER | s per clip | audio s per clip |",
        "| --- | --- | ---: | ---: | ---: | ---: |",
    ]
    for name, sets in results["checkpoints"].items():
        for set_name, s in sets.items():
            lines.append(f"| {name} | {set_name} | {s['clips']} | {s['wer']:.3f} | {s['seconds_per_clip']:.2f} "
                         f"| {s['audio_seconds_per_clip']:.1f} |")
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--checkpoint", action="append", required=True, help="NAME=PATH of an openai-whisper checkpoint")
    parser.add_argument("--work", type=Path, default=Path("/tmp/asr-compare"))
    parser.add_argument("--heldout", type=int, default=30, help="held-out benchmark clips with speech")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "results" / "asr")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)

    sets = {"heldout": render(heldout_specs(args.heldout), args.work / "heldout"),
            "handwritten": render(handwritten_specs(), args.work / "handwritten")}
    results = {"command": " ".join([".venv/bin/python", *sys.argv]), "machine": f"{platform.machine()}, {os.cpu_count()} cores",
               "threads": args.threads, "checkpoints": {}, "clips": {}}
    for spec in args.checkpoint:
        name, _, path = spec.partition("=")
        transcriber = SpeechTranscriber(TranscriberConfig(checkpoint_path=path))
        transcriber.transcribe(load_audio(str(sets["heldout"][0][2])))  # load and warm up, not timed
        results["checkpoints"][name] = {}
        for set_name, clips in sets.items():
            rows = transcribe_all(transcriber, clips)
            results["checkpoints"][name][set_name] = summary(rows)
            results["clips"][f"{name}/{set_name}"] = rows
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "results.json").write_text(json.dumps(results, indent=1))
    (args.out / "results.md").write_text(markdown(results))
    print(markdown(results))


if __name__ == "__main__":
    main()
