"""Text-only training examples: benchmark items whose words are drawn but never rendered.

Rendering and extracting one video (espeak-ng, FFmpeg, Whisper, OCR) costs seconds on a CPU;
drawing its words costs microseconds. What has to learn the policy in many phrasings is the
text side of both models, and a first run that renders 120 videos shows each of them only
72 training texts: too few to learn more than the templates (bench/GENERALIZATION.md). So
training adds items drawn by the same generator under another seed, with the rendered items'
label mix, as the features extraction would give them:

- the caption as written;
- the speech as a transcript, one segment per sentence with the times espeak-ng would give,
  roughened to the word error rate Whisper tiny.en has on the benchmark's synthetic speech
  (misspelt, swapped, dropped and inserted words; lost punctuation and case);
- the on-screen lines as OCR lines at the frame times they would be read from, with the
  spaces RapidOCR tends to lose;
- no frames and no audio. The MLLM sees such inputs anyway when it measures a modality's
  contribution (it removes the frames or the audio), and the baseline gets the frame and
  waveform statistics of a rendered item with the same label (`baseline_rows`), so neither
  model can tell a text-only example by a missing modality.

No item repeats the caption + speech + on-screen text of a rendered item, so nothing leaks
into validation or test; held-out (out-of-distribution) phrasings are never drawn.
"""

from __future__ import annotations

import random
import re
from collections import defaultdict
from dataclasses import replace
from typing import Sequence

from inference.benchmark.expand import typo
from inference.benchmark.generate import TRAIN_MIX, BenchmarkItem, GeneratorConfig, generate_specs
from inference.types import MediaInfo, OcrLine, TranscriptSegment, VideoFeatures

# Far from any seed a person would pick for the rendered benchmark.
SEED_OFFSET = 7_919
# How many each model trains on by default. bench/run_cascade.py gives both models
# DEFAULT_TEXT_ITEMS (its seven MLLM trainings must fit its time budget); `manage.py train`, and so
# the first run, gives the MLLM twice as many: measured, they lift its binary F1 on held-out
# phrasings, while the baseline's logistic heads did worse with them (bench/GENERALIZATION.md,
# "More text-only examples for the MLLM").
DEFAULT_TEXT_ITEMS = 1500
BASELINE_TEXT_ITEMS = DEFAULT_TEXT_ITEMS
MLLM_TEXT_ITEMS = 3000
# Whisper tiny.en (greedy, as training extracts) mishears the benchmark's espeak-ng voices a
# lot: its word error rate on the 120-video first-run benchmark was 0.26 ("I was addicted to
# molly" -> "I want to continue"). The noise below gives text-only transcripts of the same
# items 0.24.
P_DROP_PUNCTUATION = 0.3
P_LOWERCASE = 0.2
P_SUBSTITUTE_WORD = 0.2  # half misspelt (typo), half replaced by a common word
P_DROP_WORD = 0.06
P_INSERT_WORD = 0.03
COMMON_WORDS = ("the", "a", "and", "to", "it", "in", "you", "that", "is", "on", "so", "we", "have", "for", "up",
                "get", "go", "all", "there", "now", "one", "see", "back", "here", "like", "want", "make")
# RapidOCR often loses the spaces around punctuation ("STEP 1: PREP" -> "STEP1:PREP") and
# sometimes between words.
P_OCR_TIGHT_PUNCTUATION = 0.5
P_OCR_DROP_SPACE = 0.06
TEXT_ONLY_CONTAINER = "text-only"


def draw_text_only_items(
    config: GeneratorConfig, n: int, exclude: set[tuple[str, str, str]] = frozenset()
) -> list[BenchmarkItem]:
    """n training items from `config`'s train mix under a seed of their own, none of whose
    caption + speech + on-screen triples is in `exclude` (the rendered items' triples)."""
    if n <= 0:
        return []
    draw = replace(config, seed=config.seed + SEED_OFFSET, n_train=n + len(exclude) // 10 + 8, n_val=0, n_test=0)
    items = [item for item in generate_specs(draw) if item.triple() not in exclude]
    return [replace(item, id=f"text_{i:05d}") for i, item in enumerate(items[:n])]


def _asr_words(sentence: str, rng: random.Random) -> str:
    if rng.random() < P_DROP_PUNCTUATION:
        sentence = re.sub(r"[,.!?;:]", "", sentence)
    if rng.random() < P_LOWERCASE:
        sentence = sentence.lower()
    words = []
    for word in sentence.split():
        r = rng.random()
        if r < P_DROP_WORD:
            continue
        if r < P_DROP_WORD + P_SUBSTITUTE_WORD:
            word = typo(word, rng) if rng.random() < 0.5 else rng.choice(COMMON_WORDS)
        words.append(word)
        if rng.random() < P_INSERT_WORD:
            words.append(rng.choice(COMMON_WORDS))
    return " ".join(words)


def _ocr_text(line: str, rng: random.Random) -> str:
    if rng.random() < P_OCR_TIGHT_PUNCTUATION:
        line = re.sub(r"\s*([:\-,+])\s*", r"\1", line)
    return "".join(c for c in line if c != " " or rng.random() >= P_OCR_DROP_SPACE)


def transcript_of(item: BenchmarkItem, rng: random.Random) -> list[TranscriptSegment]:
    """One segment per sentence, timed at the item's speaking rate."""
    if not item.speech_text:
        return []
    seconds_per_word = 60.0 / max(1, item.speed)
    segments, t = [], 0.2
    for sentence in re.split(r"(?<=[.!?])\s+", item.speech_text.strip()):
        text = _asr_words(sentence, rng)
        if not text:
            continue
        length = len(sentence.split()) * seconds_per_word
        segments.append(TranscriptSegment(start_s=round(t, 2), end_s=round(t + length, 2), text=text))
        t += length
    return segments


def ocr_of(item: BenchmarkItem, rng: random.Random) -> list[OcrLine]:
    """Each on-screen line as OCR reads it from the first sampled frame that shows it."""
    return [OcrLine(t_s=float(start), text=_ocr_text(text, rng), score=0.9, box=(0.0, 0.0, 0.0, 0.0))
            for start, _, text in item.onscreen_text]


def text_only_features(item: BenchmarkItem, rng: random.Random) -> VideoFeatures:
    transcript = transcript_of(item, rng)
    end = max([s.end_s for s in transcript] + [e for _, e, _ in item.onscreen_text] + [item.duration_s or 0.0])
    info = MediaInfo(container=TEXT_ONLY_CONTAINER, duration_s=round(end + 0.3, 2), size_bytes=0,
                     has_video=False, has_audio=False)
    return VideoFeatures(info=info, caption=item.caption, frames=[], audio=None, transcript=transcript,
                         ocr=ocr_of(item, rng))


def text_only_examples(
    config: GeneratorConfig, n: int, exclude: set[tuple[str, str, str]] = frozenset()
) -> list[tuple[BenchmarkItem, VideoFeatures]]:
    """(item, features) pairs; deterministic by config.seed."""
    rng = random.Random(f"{config.seed}:text-only")
    return [(item, text_only_features(item, rng)) for item in draw_text_only_items(config, n, exclude)]


def held_out_text_only(seed: int, n: int) -> list[tuple[dict, VideoFeatures]]:
    """n text-only items in the generator's held-out phrasings only (templates, slot values and
    voices that training never draws), in the training mix of kinds: (row, features) pairs like
    text_only_split's, deterministic by seed. Never trained on, so a fair judge of whether a model
    learned the policy or the templates."""
    config = GeneratorConfig(seed=seed, n_train=0, n_val=0, n_test=n, mix_test=dict(TRAIN_MIX), test_ood_fraction=1.0)
    rng = random.Random(f"{seed}:dev")
    return [(_row(item), text_only_features(item, rng)) for item in generate_specs(config)]


def text_only_split(config: GeneratorConfig, n: int, exclude: set[tuple[str, str, str]] = frozenset()
                    ) -> list[tuple[dict, VideoFeatures]]:
    """Like a cached split of the rendered benchmark: (row, features) pairs, the row with the
    item's label and kind."""
    return [(_row(item), features) for item, features in text_only_examples(config, n, exclude)]


def _row(item: BenchmarkItem) -> dict:
    """A text-only item's row, as a cached split's rows read: its label, kind and evidence."""
    return {"label": item.label, "kind": item.kind, "evidence": item.evidence, "text_only": True}


BaselineRow = tuple[VideoFeatures, str]  # a video's evidence, its label (inference.baseline)


def as_baseline_rows(pairs: Sequence[tuple[dict, VideoFeatures]]) -> list[BaselineRow]:
    """(features, label) rows of (row, features) pairs, cached or text-only."""
    return [(features, row["label"]) for row, features in pairs]


def baseline_fit_rows(train: Sequence[tuple[dict, VideoFeatures]],
                      text_only: Sequence[tuple[dict, VideoFeatures]]) -> list[BaselineRow]:
    """The baseline's training rows: the rendered training videos, then the text-only examples
    with media borrowed from them (baseline_rows)."""
    rendered = as_baseline_rows(train)
    return rendered + baseline_rows(text_only, rendered)


def baseline_rows(text_only: Sequence[tuple[dict, VideoFeatures]], rendered: Sequence[BaselineRow],
                  seed: int = 0) -> list[BaselineRow]:
    """Baseline training rows for text-only examples: each keeps its own caption, transcript
    and on-screen text and borrows the frames and audio of a rendered
    training row with the same label (any row when none has it), drawn at random, so the frame
    and waveform statistics keep their link to the label."""
    by_label: dict[str, list[BaselineRow]] = defaultdict(list)
    for row in rendered:
        by_label[row[1]].append(row)
    if not rendered:
        raise ValueError("text-only baseline rows need at least one rendered row to borrow media from")
    rng = random.Random(f"{seed}:donors")
    rows = []
    for meta, features in text_only:
        donor, _ = rng.choice(by_label.get(meta["label"]) or list(rendered))
        rows.append((replace(features, frames=donor.frames, audio=donor.audio), meta["label"]))
    return rows
