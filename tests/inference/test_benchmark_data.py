"""The synthetic benchmark generator: determinism, mix, held-out phrasings, policy labels,
rendering and the feature cache."""

from __future__ import annotations

import re
from dataclasses import replace
from pathlib import Path

import av
import pytest

from inference.benchmark import GeneratorConfig, generate_specs, hard_fraction, policy_label
from inference.benchmark import phrases as P
from inference.policy import HARD_KINDS, KINDS, LABELS, VIOLATING

SMALL = GeneratorConfig(seed=3, n_train=150, n_val=30, n_test=80)


@pytest.fixture(scope="module")
def items():
    return generate_specs(SMALL)


def by_split(items, split):
    return [it for it in items if it.split == split]


def all_text(item) -> str:
    return " ".join((item.caption, item.speech_text or "", item.onscreen_joined)).lower()


def test_same_seed_same_items_other_seed_other_items(items):
    assert generate_specs(SMALL) == items
    other = generate_specs(replace(SMALL, seed=4))
    assert [it.caption for it in other] != [it.caption for it in items]


def test_test_split_does_not_move_when_train_grows(items):
    bigger = generate_specs(replace(SMALL, n_train=300))
    assert by_split(bigger, "test") == by_split(items, "test")


def test_every_kind_and_label_appears_in_train(items):
    train = by_split(items, "train")
    assert {it.kind for it in train} == set(KINDS)
    assert {it.label for it in train} == set(LABELS)
    assert len(train) == SMALL.n_train


def test_no_example_is_shared_between_splits(items):
    triples = {}
    for it in items:
        assert triples.setdefault(it.triple(), it.split) == it.split, it.id
    assert len({it.id for it in items}) == len(items)


def test_held_out_phrasings_and_voices_only_in_ood_test_items(items):
    heldout_ids = {t.id for pool in _all_pools() for t in pool if t.heldout}
    for it in items:
        used_heldout = heldout_ids.intersection(it.template_ids)
        if it.ood:
            assert it.split == "test"
            assert used_heldout == set(it.template_ids), it.id  # nothing but held-out phrasings
            assert it.voice in P.VOICES_HELDOUT and it.speed in P.SPEEDS_HELDOUT
        else:
            assert not used_heldout, it.id
            assert it.voice in P.VOICES_TRAIN and it.speed in P.SPEEDS_TRAIN
    assert any(it.ood for it in items) and any(not it.ood for it in by_split(items, "test"))


def test_held_out_slot_values_never_occur_in_train_or_val_text(items):
    seen = " || ".join(all_text(it) for it in items if not it.ood)
    for name, (_, heldout) in P.SLOTS.items():
        for value in heldout:
            assert not re.search(rf"\b{re.escape(value.lower())}\b", seen), (name, value)
    ood_text = " || ".join(all_text(it) for it in items if it.ood)
    assert any(re.search(rf"\b{re.escape(v.lower())}\b", ood_text) for v in P.SLOTS["drug"][1] + P.SLOTS["gun"][1])


def test_default_eval_mix_is_mostly_easy():
    config = GeneratorConfig(n_train=0, n_val=40, n_test=100)
    for mix in (config.mix_val, config.mix_test):
        assert sum(w for k, w in mix.items() if k in HARD_KINDS) / sum(mix.values()) < 0.2
    items = generate_specs(config)
    assert 0 < hard_fraction(by_split(items, "test")) < 0.2
    assert hard_fraction(by_split(generate_specs(GeneratorConfig(n_train=100, n_val=0, n_test=0)), "train")) > 0.3


def test_rule_4_ties_break_weapons_drugs_scam():
    promo = lambda m, c: (m, "promotion", c)  # noqa: E731
    assert policy_label([]) == "ok"
    assert policy_label([("speech", "mention", "drugs"), ("caption", "framing", "drugs")]) == "ok"
    assert policy_label([promo("caption", "scam"), promo("speech", "weapons")]) == "weapons"
    assert policy_label([promo("caption", "scam"), promo("onscreen", "drugs")]) == "drugs"
    # strongest evidence first: scam in two modalities beats weapons in one
    assert policy_label([promo("caption", "scam"), promo("speech", "scam"), promo("onscreen", "weapons")]) == "scam"
    assert policy_label([promo("speech", "drugs"), ("speech", "disclaimer", "drugs")]) == "drugs"


def test_labels_follow_the_kind(items):
    for it in items:
        promoted = {m for m, role, _ in it.evidence if role == "promotion"}
        roles = {role for _, role, _ in it.evidence}
        if it.kind in ("easy_ok", "context_ok"):
            assert it.label == "ok", it.id
        else:
            assert it.label in VIOLATING, it.id
        if it.kind == "easy_ok":
            assert not it.evidence
        elif it.kind == "caption":
            assert "caption" in promoted
        elif it.kind == "speech_only":
            assert promoted == {"speech"} and it.speech_text
        elif it.kind == "onscreen_only":
            assert promoted == {"onscreen"} and it.onscreen_text
        elif it.kind == "context_ok":
            assert roles == {"mention", "framing"}
        elif it.kind == "launder":
            assert roles == {"promotion", "disclaimer"}


def test_context_framing_sits_in_another_modality_sometimes(items):
    context = [it for it in items if it.kind == "context_ok"]
    cross = [it for it in context if len({m for m, _, _ in it.evidence}) == 2]
    assert cross and len(cross) < len(context)
    # the brief's example shape exists: a framing caption with a spoken mention
    big = generate_specs(replace(SMALL, n_train=600, n_val=0, n_test=0))
    assert any(
        ("caption", "framing") in {(m, r) for m, r, _ in it.evidence}
        and ("speech", "mention") in {(m, r) for m, r, _ in it.evidence}
        for it in big
    )


def test_launder_keeps_the_promotion_and_adds_a_disclaimer(items):
    launder = [it for it in items if it.kind == "launder"]
    assert launder
    disclaimer_words = ("educational", "joke", "advice", "satire", "parody", "entertainment",
                        "hypothetical", "condone", "skit")
    for it in launder:
        assert any(t.startswith("disclaimer.") for t in it.template_ids)
        assert any(t.startswith(f"{it.label}.") for t in it.template_ids), it.id  # the promotion itself
    # typos may hit a disclaimer word now and then, but most are legible
    legible = sum(any(w in all_text(it) for w in disclaimer_words) for it in launder)
    assert legible >= 0.8 * len(launder)


def test_hard_negatives_share_vocabulary_with_violations(items):
    ok_text = " ".join(all_text(it) for it in items if it.label == "ok")
    for word in ("giveaway", "ammo", "weed", "crypto", "pills", "shot", "dm me"):
        assert word in ok_text, word
    ok_motifs = {it.motif for it in items if it.label == "ok"}
    assert ok_motifs & {"pills", "leaf", "chart", "coins", "bullets", "badge"}


def test_onscreen_lines_are_timed_inside_the_clip(items):
    for it in items:
        for start, end, text in it.onscreen_text:
            assert 0 <= start < end and end - start >= 1.9 and text.strip()
        if it.speech_text is None:
            assert it.duration_s and it.duration_s >= 2


def _all_pools():
    yield from P.PROMO.values()
    yield from P.BENIGN.values()
    yield from P.MENTION.values()
    yield from P.FRAMING.values()
    yield from P.FRAMING_GENERIC.values()
    yield from P.DISCLAIMER.values()
    yield from P.PROMO_CTA.values()
    yield from P.BENIGN_CTA.values()
    yield P.OPENERS


def test_every_pool_has_train_and_heldout_templates():
    for pool in _all_pools():
        assert any(t.heldout for t in pool) and any(not t.heldout for t in pool), pool[0].id
        assert len({t.id for t in pool}) == len(pool)


# ---------------------------------------------------------------------------- rendering


def _three_items(items):
    picks = []
    for kind in ("speech_only", "onscreen_only", "easy_ok"):
        picks.append(next(it for it in items if it.kind == kind and it.speech_text))
    # a short, fixed voice keeps the test quick and proves containers other than mp4 work
    return [replace(picks[0], container="webm"), picks[1], replace(picks[2], rotation=90)]


def test_render_three_items_gives_readable_videos_and_a_manifest(items, tmp_path):
    from inference.benchmark import load_manifest, render_dataset

    chosen = _three_items(items)
    manifest = render_dataset(chosen, tmp_path, progress=False)
    rows = load_manifest(manifest)
    assert [r["id"] for r in rows] == [it.id for it in chosen]
    for row, item in zip(rows, chosen):
        assert row["label"] == item.label and row["kind"] == item.kind and row["caption"] == item.caption
        video = tmp_path / row["path"]
        assert not Path(row["path"]).is_absolute() and video.suffix == f".{item.container}"
        with av.open(str(video)) as container:
            assert container.streams.video and container.streams.audio
            frames = sum(1 for _ in container.decode(video=0))
            assert frames >= 10
        assert len(row["sha256"]) == 64
    assert not list(tmp_path.rglob("*.partial.*"))

    # resume: nothing is rendered again
    mtimes = {p: p.stat().st_mtime_ns for p in tmp_path.rglob("*") if p.suffix in (".mp4", ".webm", ".mkv")}
    render_dataset(chosen, tmp_path, progress=False)
    assert {p: p.stat().st_mtime_ns for p in mtimes} == mtimes


def test_feature_cache_extracts_each_video_once_per_version(items, tmp_path):
    from inference.benchmark import build_feature_cache, load_cached, render_dataset

    chosen = [it for it in items if it.kind == "easy_ok" and it.container == "mp4"][:2]
    manifest = render_dataset(chosen, tmp_path / "videos", progress=False)
    calls = []

    def extract(path: Path, caption: str) -> dict:
        calls.append(path.name)
        return {"caption": caption, "size": path.stat().st_size}

    build_feature_cache(manifest, tmp_path / "cache", extract, "fake-v1", progress=False)
    build_feature_cache(manifest, tmp_path / "cache", extract, "fake-v1", progress=False)
    assert sorted(calls) == sorted(f"{it.id}.mp4" for it in chosen)
    pairs = load_cached(manifest, tmp_path / "cache", "fake-v1")
    assert [row["id"] for row, _ in pairs] == [it.id for it in chosen]
    assert [feat["caption"] for _, feat in pairs] == [it.caption for it in chosen]
    with pytest.raises(FileNotFoundError):
        load_cached(manifest, tmp_path / "cache", "fake-v2")
    build_feature_cache(manifest, tmp_path / "cache", extract, "fake-v2", progress=False)
    assert len(calls) == 4
