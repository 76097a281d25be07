"""Text-only training examples: drawn like the benchmark, shaped like extracted features, and
never a copy of a rendered item."""

from __future__ import annotations

import random
from collections import Counter
from dataclasses import replace

import numpy as np

from inference.benchmark import GeneratorConfig, generate_specs
from inference.benchmark.text_only import (TEXT_ONLY_CONTAINER, baseline_fit_rows, baseline_rows,
                                           draw_text_only_items, held_out_text_only, text_only_examples,
                                           text_only_split, transcript_of)
from inference.policy import LABELS
from inference.types import Frame

RENDERED = GeneratorConfig(seed=3, n_train=60, n_val=20, n_test=20)


def test_same_seed_same_examples_other_seed_other_examples():
    first = text_only_examples(RENDERED, 50)
    again = text_only_examples(RENDERED, 50)
    assert [(i, f.caption, f.transcript_text, f.ocr_text) for i, f in first] == \
        [(i, f.caption, f.transcript_text, f.ocr_text) for i, f in again]
    other = text_only_examples(GeneratorConfig(seed=4), 50)
    assert [f.caption for _, f in other] != [f.caption for _, f in first]


def test_no_example_repeats_a_rendered_item_or_uses_held_out_phrasings():
    rendered = generate_specs(RENDERED)
    exclude = {item.triple() for item in rendered}
    drawn = draw_text_only_items(RENDERED, 400, exclude)
    assert len(drawn) == 400
    assert not exclude & {item.triple() for item in drawn}
    # The out-of-distribution half of the test split stays unseen: no held-out template.
    assert not any(".h" in template for item in drawn for template in item.template_ids)
    assert len({item.id for item in drawn}) == 400


def test_held_out_items_use_only_held_out_phrasings_and_are_the_same_for_a_seed():
    """What a first-run fine-tune is judged on: nothing training ever draws."""
    items = held_out_text_only(seed=9, n=60)
    assert len(items) == 60 and all(row["text_only"] for row, _ in items)
    assert {row["label"] for row, _ in items} == set(LABELS)
    assert [f.caption for _, f in items] == [f.caption for _, f in held_out_text_only(seed=9, n=60)]
    trained_on = {f.caption for _, f in text_only_examples(GeneratorConfig(seed=9), 400)}
    assert not trained_on & {f.caption for _, f in items}


def test_examples_follow_the_training_mix_with_every_label():
    drawn = draw_text_only_items(RENDERED, 400)
    kinds = Counter(item.kind for item in drawn)
    for kind, share in RENDERED.mix_train.items():
        assert abs(kinds[kind] / 400 - share) < 0.02
    assert set(item.label for item in drawn) == set(LABELS)


def test_features_carry_the_three_texts_and_no_media():
    for item, features in text_only_examples(RENDERED, 80):
        assert features.frames == [] and features.audio is None
        assert features.info.container == TEXT_ONLY_CONTAINER and not features.info.has_audio
        assert features.caption == item.caption
        # OCR may lose spaces, never letters
        assert [line.text.replace(" ", "") for line in features.ocr] == \
            [text.replace(" ", "") for _, _, text in item.onscreen_text]
        assert [line.t_s for line in features.ocr] == [start for start, _, _ in item.onscreen_text]
        if item.speech_text:
            starts = [s.start_s for s in features.transcript]
            assert starts == sorted(starts) and all(s.end_s > s.start_s for s in features.transcript)
            assert features.info.duration_s >= features.transcript[-1].end_s
        else:
            assert features.transcript == []


def test_transcripts_are_roughened_like_asr_but_keep_most_words():
    items = [item for item in draw_text_only_items(RENDERED, 300) if item.speech_text]
    rng = random.Random(0)
    kept, total, changed = 0, 0, 0
    for item in items:
        spoken = item.speech_text.split()
        heard = " ".join(s.text for s in transcript_of(item, rng)).split()
        total += len(spoken)
        kept += len(set(w.lower().strip(",.!?") for w in heard) & set(w.lower().strip(",.!?") for w in spoken))
        changed += heard != spoken
    assert changed > len(items) * 0.5  # most lose some words, letters, punctuation or case
    assert kept > 0.6 * total  # but most words are still there to learn from


def test_split_rows_look_like_cached_benchmark_rows():
    split = text_only_split(RENDERED, 30)
    assert len(split) == 30
    assert all(row["label"] in LABELS and row["kind"] and row["text_only"] for row, _ in split)


def test_baseline_rows_keep_their_text_and_borrow_media_from_a_rendered_row_with_the_same_label():
    image = np.zeros((4, 4, 3), np.uint8)
    drawn = text_only_split(RENDERED, 4)
    rendered = [(replace(drawn[0][1], caption="a cat", frames=[Frame(0.0, image)]), "ok"),
                (replace(drawn[1][1], caption="pills", frames=[Frame(0.0, image)]), "drugs")]
    labels = ["drugs", "ok", "drugs", "weapons"]
    split = [({"label": label}, replace(features, caption=f"caption {i}"))
             for i, (label, (_, features)) in enumerate(zip(labels, drawn))]
    rows = baseline_rows(split, rendered)
    assert [video.caption for video, _ in rows] == ["caption 0", "caption 1", "caption 2", "caption 3"]
    assert [video.transcript for video, _ in rows] == [features.transcript for _, features in drawn]
    assert [label for _, label in rows] == labels
    frames = [video.frames for video, _ in rows]
    assert frames[0] is rendered[1][0].frames and frames[1] is rendered[0][0].frames and frames[2] is rendered[1][0].frames
    assert any(frames[3] is video.frames for video, _ in rendered)  # no weapons video rendered: any donor


def test_fit_rows_are_the_rendered_videos_then_the_text_only_examples():
    image = np.zeros((4, 4, 3), np.uint8)
    drawn = text_only_split(RENDERED, 3)
    rendered = [({"label": label}, replace(features, caption=f"rendered {i}", frames=[Frame(0.0, image)]))
                for i, (label, (_, features)) in enumerate(zip(["ok", "drugs"], drawn))]
    split = [({"label": "drugs"}, replace(drawn[2][1], caption="text only"))]
    rows = baseline_fit_rows(rendered, split)
    assert [(video.caption, label) for video, label in rows] == [("rendered 0", "ok"), ("rendered 1", "drugs"),
                                                                 ("text only", "drugs")]
    assert rows[2][0].frames is rendered[1][1].frames  # borrowed from the rendered drugs video
    assert rows[2][0].ocr == drawn[2][1].ocr  # its own on-screen text
