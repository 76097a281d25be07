"""Benchmark items: what each synthetic video says, shows and is labeled, by policy kind.

`generate_specs(config)` is pure and deterministic by `config.seed`. Each item draws from its
own random stream (seed, split, index), so the test split does not change when `n_train` does.
Labels are not assigned but computed from the evidence placed in the item (`policy_label`),
so they follow POLICY.md by construction.
"""

from __future__ import annotations

import random
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from inference.benchmark import phrases as P
from inference.benchmark.expand import Filler, noisy_caption, noisy_onscreen, noisy_speech
from inference.policy import HARD_KINDS, KINDS, TIE_ORDER, VIOLATING

SPLITS = ("train", "val", "test")
# Realistic traffic for val/test: mostly easy, hard kinds 15% (POLICY.md: well under a fifth).
EVAL_MIX: dict[str, float] = {
    "easy_ok": 0.45, "caption": 0.40,
    "speech_only": 0.04, "onscreen_only": 0.04, "context_ok": 0.04, "launder": 0.03,
}
# Train sees many more hard cases (45%) so the models learn them at all.
TRAIN_MIX: dict[str, float] = {
    "easy_ok": 0.30, "caption": 0.25,
    "speech_only": 0.12, "onscreen_only": 0.12, "context_ok": 0.12, "launder": 0.09,
}


@dataclass
class GeneratorConfig:
    seed: int = 0
    n_train: int = 800
    n_val: int = 150
    n_test: int = 300
    mix_train: dict[str, float] = field(default_factory=lambda: dict(TRAIN_MIX))
    mix_val: dict[str, float] = field(default_factory=lambda: dict(EVAL_MIX))
    mix_test: dict[str, float] = field(default_factory=lambda: dict(EVAL_MIX))
    violating_weights: dict[str, float] = field(default_factory=lambda: {c: 1.0 for c in VIOLATING})
    # Share of test items built only from held-out templates, slot values and voices.
    test_ood_fraction: float = 0.5
    hard_topic_prob: float = 0.35  # benign parts drawn from topics that share policy vocabulary
    no_speech_prob: float = 0.1  # music-only clips, where the kind allows no speech
    containers: dict[str, float] = field(default_factory=lambda: {"mp4": 0.8, "webm": 0.1, "mkv": 0.1})
    rotation_prob: float = 0.05
    width: int = 320
    height: int = 240
    fps: int = 10

    def mix(self, split: str) -> dict[str, float]:
        return {"train": self.mix_train, "val": self.mix_val, "test": self.mix_test}[split]

    def size(self, split: str) -> int:
        return {"train": self.n_train, "val": self.n_val, "test": self.n_test}[split]


@dataclass(frozen=True)
class BenchmarkItem:
    id: str
    split: str
    kind: str
    label: str
    caption: str
    speech_text: str | None
    onscreen_text: tuple[tuple[float, float, str], ...]  # (start_s, end_s, text)
    motif: str
    voice: str
    speed: int
    pitch: int
    seed: int  # background_seed of the render
    template_ids: tuple[str, ...]
    ood: bool = False  # built from held-out phrasings and voices (test only)
    topic: str = ""  # the benign topic of the parts that are not evidence
    evidence: tuple[tuple[str, str, str], ...] = ()  # (modality, role, category); role: promotion|mention|framing|disclaimer
    container: str = "mp4"
    rotation: int = 0
    duration_s: float | None = None  # None: the renderer fits the speech
    with_audio: bool = True

    @property
    def onscreen_joined(self) -> str:
        return " ".join(text for _, _, text in self.onscreen_text)

    def triple(self) -> tuple[str, str, str]:
        """What a model reads: two items with the same triple are the same example."""
        return (self.caption.lower(), (self.speech_text or "").lower(), self.onscreen_joined.lower())

    @classmethod
    def from_dict(cls, row: dict[str, Any]) -> BenchmarkItem:
        names = cls.__dataclass_fields__
        values = {k: v for k, v in row.items() if k in names}
        values["onscreen_text"] = tuple(tuple(seg) for seg in values.get("onscreen_text", ()))
        values["template_ids"] = tuple(values.get("template_ids", ()))
        values["evidence"] = tuple(tuple(e) for e in values.get("evidence", ()))
        return cls(**values)


def policy_label(evidence: list[tuple[str, str, str]] | tuple[tuple[str, str, str], ...]) -> str:
    """POLICY.md rules 1-4: only promotions violate (a framed mention does not, a disclaimer
    does not undo one); the category promoted in most modalities wins; ties go by TIE_ORDER."""
    counts = Counter(category for _, role, category in evidence if role == "promotion")
    if not counts:
        return "ok"
    best = max(counts.values())
    return next(c for c in TIE_ORDER if counts.get(c) == best)


def hard_fraction(items: list[BenchmarkItem]) -> float:
    return sum(item.kind in HARD_KINDS for item in items) / max(1, len(items))


def mix_report(items: list[BenchmarkItem]) -> dict[str, dict[str, Any]]:
    """Per split: count, kind and label shares, hard fraction, ood share."""
    report = {}
    for split in SPLITS:
        part = [it for it in items if it.split == split]
        if not part:
            continue
        n = len(part)
        report[split] = {
            "n": n,
            "kinds": {k: round(v / n, 3) for k, v in sorted(Counter(it.kind for it in part).items())},
            "labels": {k: round(v / n, 3) for k, v in sorted(Counter(it.label for it in part).items())},
            "hard_fraction": round(hard_fraction(part), 3),
            "ood_fraction": round(sum(it.ood for it in part) / n, 3),
        }
    return report


# ---------------------------------------------------------------------------- one item


class _Composer:
    """Draws the parts of one item and records which templates and evidence it used."""

    def __init__(self, rng: random.Random, ood: bool, config: GeneratorConfig):
        self.rng = rng
        self.ood = ood
        self.config = config
        self.filler = Filler(rng, ood)
        self.template_ids: list[str] = []
        self.evidence: list[tuple[str, str, str]] = []

    def draw(self, pool: tuple[P.Template, ...], modality: str) -> str:
        # ood items use only held-out phrasings; every other item never sees them
        choices = [t for t in pool if t.heldout == self.ood]
        unused = [t for t in choices if t.id not in self.template_ids]
        template = self.rng.choice(unused or choices)
        self.template_ids.append(template.id)
        return self.filler.fill(template.text, modality)

    def chance(self, p: float) -> bool:
        return self.rng.random() < p

    def topic(self) -> str:
        hard = self.chance(self.config.hard_topic_prob)
        return self.rng.choice(P.HARD_TOPICS if hard else P.EASY_TOPICS)

    # -- benign parts
    def benign_caption(self, topic: str) -> str:
        text = self.draw(P.BENIGN[(topic, "caption")], "caption")
        if self.chance(0.2):
            text = f"{text}, {self.draw(P.BENIGN_CTA['caption'], 'caption')}"
        return text

    def benign_speech(self, topic: str, sentences: int | None = None) -> list[str]:
        pool = P.BENIGN[(topic, "speech")]
        available = sum(t.heldout == self.ood for t in pool)
        n = min(sentences or self.rng.choice((1, 2, 2, 3)), available)
        out = [self.draw(pool, "speech") for _ in range(n)]
        if self.chance(0.2):
            out.append(self.draw(P.BENIGN_CTA["speech"], "speech"))
        return out

    def benign_onscreen(self, topic: str, allow_none: bool = True) -> list[str]:
        if allow_none and self.chance(0.3):
            return []
        return [self.draw(P.BENIGN[(topic, "onscreen")], "onscreen") for _ in range(self.rng.choice((1, 1, 2)))]

    def opener(self) -> list[str]:
        return [self.draw(P.OPENERS, "speech")] if self.chance(0.4) else []

    # -- evidence parts
    def promotion(self, category: str, modality: str, with_cta: bool = True) -> str:
        text = self.draw(P.PROMO[(category, modality)], modality)
        if with_cta and modality in P.PROMO_CTA and self.chance(0.4):
            sep = " " if modality == "speech" else self.rng.choice((", ", " - ", ". "))
            text = f"{text}{sep}{self.draw(P.PROMO_CTA[modality], modality)}"
        self.evidence.append((modality, "promotion", category))
        return text

    def mention(self, category: str, modality: str) -> str:
        self.evidence.append((modality, "mention", category))
        return self.draw(P.MENTION[(category, modality)], modality)

    def framing(self, category: str, modality: str) -> str:
        self.evidence.append((modality, "framing", category))
        generic = self.chance(0.35)
        return self.draw(P.FRAMING_GENERIC[modality] if generic else P.FRAMING[(category, modality)], modality)

    def disclaimer(self, category: str, modality: str) -> str:
        self.evidence.append((modality, "disclaimer", category))
        return self.draw(P.DISCLAIMER[modality], modality)

    def motif(self, category: str | None, topic: str, p_category: float) -> str:
        if category and self.chance(p_category):
            return self.rng.choice(P.CATEGORY_MOTIFS[category])
        if self.chance(0.75):
            return self.rng.choice(P.TOPIC_MOTIFS[topic])
        return "none"


@dataclass
class _Parts:
    caption: str
    speech: list[str] | None  # sentences; None: no speech
    onscreen: list[str]
    motif: str
    topic: str


def _other(rng: random.Random, options: tuple[str, ...], not_this: str) -> str:
    return rng.choice([o for o in options if o != not_this])


def _join(rng: random.Random, first: str, second: str) -> str:
    """Join two caption parts, either order, with a separator uploaders use."""
    if rng.random() < 0.5:
        first, second = second, first
    return f"{first}{rng.choice((': ', ' - ', ' | ', '. ', ' '))}{second}"


def _compose_easy_ok(c: _Composer, category: str | None) -> _Parts:
    topic = c.topic()
    speech = None if c.chance(c.config.no_speech_prob) else c.opener() + c.benign_speech(topic)
    return _Parts(c.benign_caption(topic), speech, c.benign_onscreen(topic), c.motif(None, topic, 0), topic)


def _compose_caption(c: _Composer, category: str) -> _Parts:
    """The caption promotes; speech and on-screen text may repeat it, or be benign. One in ten
    promotes a second category in one more modality, and rule 4 decides the label."""
    topic = c.topic()
    second = _other(c.rng, VIOLATING, category) if c.chance(0.1) else None
    second_in = c.rng.choice(("speech", "onscreen")) if second else None
    caption = c.promotion(category, "caption")
    if second_in == "speech":
        speech = c.opener() + [c.promotion(second, "speech")]
    elif c.chance(0.4):
        speech = c.opener() + [c.promotion(category, "speech")]
    elif c.chance(c.config.no_speech_prob):
        speech = None
    else:
        speech = c.opener() + c.benign_speech(topic)
    if second_in == "onscreen":
        onscreen = [c.promotion(second, "onscreen", with_cta=False)]
    elif c.chance(0.3):
        onscreen = [c.promotion(category, "onscreen", with_cta=False)]
    else:
        onscreen = c.benign_onscreen(topic)
    return _Parts(caption, speech, onscreen, c.motif(category, topic, 0.6), topic)


def _compose_speech_only(c: _Composer, category: str) -> _Parts:
    topic = c.topic()
    benign = c.benign_speech(topic, sentences=1) if c.chance(0.6) else []
    promo = [c.promotion(category, "speech")]
    speech = c.opener() + (benign + promo if c.chance(0.6) else promo + benign)
    return _Parts(c.benign_caption(topic), speech, c.benign_onscreen(topic), c.motif(category, topic, 0.4), topic)


def _compose_onscreen_only(c: _Composer, category: str) -> _Parts:
    topic = c.topic()
    lines = [c.promotion(category, "onscreen", with_cta=False)]
    if c.chance(0.4):
        lines.append(c.draw(P.BENIGN[(topic, "onscreen")], "onscreen"))
        c.rng.shuffle(lines)
    speech = None if c.chance(0.2) else c.opener() + c.benign_speech(topic)
    return _Parts(c.benign_caption(topic), speech, lines, c.motif(category, topic, 0.4), topic)


def _place(c: _Composer, modality: str, topic: str, parts: dict[str, Any], text: str) -> None:
    """Put `text` into `modality`, next to what is already there."""
    if modality == "caption":
        parts["caption"] = text if parts["caption"] is None else _join(c.rng, parts["caption"], text)
    elif modality == "speech":
        parts["speech"] = (parts["speech"] or []) + [text]
    else:
        parts["onscreen"] = parts["onscreen"] + [text]


def _compose_framed(c: _Composer, category: str, framed: bool) -> _Parts:
    """context_ok (framed=True: a mention + a protective framing) or launder (a promotion + a
    disclaimer). The two parts sit in the same modality or in different ones."""
    topic = c.topic()
    weights = (0.25, 0.5, 0.25) if framed else (0.4, 0.3, 0.3)
    main = c.rng.choices(P.MODALITIES, weights=weights)[0]
    side = main if c.chance(0.35) else _other(c.rng, P.MODALITIES, main)
    if framed:
        # a third of on-screen mentions quote the promotion itself ("this is the ad they ran")
        quote = main == "onscreen" and c.chance(0.33)
        main_text = c.draw(P.PROMO[(category, "onscreen")], "onscreen") if quote else c.mention(category, main)
        if quote:
            c.evidence.append((main, "mention", category))
        side_text = c.framing(category, side)
    else:
        main_text = c.promotion(category, main)
        side_text = c.disclaimer(category, side)
    parts: dict[str, Any] = {"caption": None, "speech": None, "onscreen": []}
    first, second = ((side, side_text), (main, main_text)) if c.chance(0.6) else ((main, main_text), (side, side_text))
    _place(c, first[0], topic, parts, first[1])
    _place(c, second[0], topic, parts, second[1])
    if parts["caption"] is None:
        parts["caption"] = c.benign_caption(topic)
    if parts["speech"] is None:
        parts["speech"] = None if c.chance(0.1) else c.benign_speech(topic)
    if parts["speech"] is not None:
        parts["speech"] = c.opener() + parts["speech"]
    if not parts["onscreen"]:
        parts["onscreen"] = c.benign_onscreen(topic)
    news_motif = {"scam": "chart", "drugs": "badge", "weapons": "badge"}[category]
    motif = news_motif if framed and c.chance(0.2) else c.motif(category, topic, 0.45)
    return _Parts(parts["caption"], parts["speech"], parts["onscreen"], motif, topic)


COMPOSERS = {
    "easy_ok": _compose_easy_ok,
    "caption": _compose_caption,
    "speech_only": _compose_speech_only,
    "onscreen_only": _compose_onscreen_only,
    "context_ok": lambda c, cat: _compose_framed(c, cat, framed=True),
    "launder": lambda c, cat: _compose_framed(c, cat, framed=False),
}


def _sentence(text: str) -> str:
    text = text.strip()
    return text if text[-1:] in ".!?" else text + "."


def _hashtags(c: _Composer, topic: str, category: str | None) -> str:
    tags = list(P.HASHTAGS[topic])
    if category and c.chance(0.6):
        tags += list(P.HASHTAGS[category])
    return " ".join(c.rng.sample(tags, min(len(tags), c.rng.randint(1, 3))))


def _voice(c: _Composer) -> tuple[str, int, int]:
    if c.ood:
        low, high = c.rng.choice(P.PITCH_HELDOUT)
        return c.rng.choice(P.VOICES_HELDOUT), c.rng.choice(P.SPEEDS_HELDOUT), c.rng.randint(low, high)
    return c.rng.choice(P.VOICES_TRAIN), c.rng.choice(P.SPEEDS_TRAIN), c.rng.randint(*P.PITCH_TRAIN)


def _timeline(rng: random.Random, lines: list[str], length_s: float) -> tuple[tuple[float, float, str], ...]:
    """One after the other across the clip, each at least 2 s so OCR sees it on a few frames."""
    if not lines:
        return ()
    step = max(2.0, length_s / len(lines))
    start = round(rng.uniform(0.0, 0.5), 2)
    return tuple((round(start + i * step, 2), round(start + (i + 1) * step, 2), text) for i, text in enumerate(lines))


def make_item(config: GeneratorConfig, split: str, index: int, kind: str, category: str | None,
              ood: bool, attempt: int = 0) -> BenchmarkItem:
    rng = random.Random(f"{config.seed}:{split}:{index}:{attempt}")
    c = _Composer(rng, ood, config)
    parts = COMPOSERS[kind](c, category)
    main_category = category if kind != "easy_ok" else None
    caption = noisy_caption(parts.caption, rng)
    if rng.random() < 0.5:
        caption = f"{caption} {_hashtags(c, parts.topic, main_category)}"
    speech = noisy_speech(" ".join(_sentence(s) for s in parts.speech), rng) if parts.speech else None
    voice, speed, pitch = _voice(c)
    # espeak-ng speaks about `speed` words a minute; lines are spread over the speech
    length_s = len(speech.split()) * 60.0 / speed + 0.5 if speech else rng.uniform(4.0, 7.0)
    onscreen = _timeline(rng, [noisy_onscreen(line, rng) for line in parts.onscreen], length_s)
    containers = config.containers
    container = rng.choices(list(containers), weights=list(containers.values()))[0]
    label = policy_label(c.evidence)
    return BenchmarkItem(
        id=f"{split}_{index:05d}",
        split=split,
        kind=kind,
        label=label,
        caption=caption,
        speech_text=speech,
        onscreen_text=onscreen,
        motif=parts.motif,
        voice=voice,
        speed=speed,
        pitch=pitch,
        seed=rng.getrandbits(31),
        template_ids=tuple(c.template_ids),
        ood=ood,
        topic=parts.topic,
        evidence=tuple(c.evidence),
        container=container,
        rotation=rng.choice((90, 180, 270)) if rng.random() < config.rotation_prob else 0,
        duration_s=None if speech else round(max(length_s, onscreen[-1][1] if onscreen else 0.0), 2),
        with_audio=bool(speech) or rng.random() > 0.3,
    )


# ---------------------------------------------------------------------------- whole benchmark


def _exact_counts(mix: dict[str, float], n: int) -> dict[str, int]:
    """Largest-remainder rounding, so a split of n items follows its mix as closely as possible."""
    unknown = set(mix) - set(KINDS)
    if unknown:
        raise ValueError(f"unknown kinds in mix: {sorted(unknown)}")
    total = sum(mix.values())
    raw = {k: n * w / total for k, w in mix.items()}
    counts = {k: int(v) for k, v in raw.items()}
    for k in sorted(raw, key=lambda k: raw[k] - counts[k], reverse=True)[: n - sum(counts.values())]:
        counts[k] += 1
    return counts


def generate_specs(config: GeneratorConfig) -> list[BenchmarkItem]:
    """All items of all splits. Test is drawn first and val second, and no later item may repeat
    the caption+speech+on-screen text of an earlier one, so the splits are disjoint."""
    seen: set[tuple[str, str, str]] = set()
    items: list[BenchmarkItem] = []
    for split in ("test", "val", "train"):
        n = config.size(split)
        plan_rng = random.Random(f"{config.seed}:{split}:plan")
        kinds = [k for k, count in _exact_counts(config.mix(split), n).items() for _ in range(count)]
        plan_rng.shuffle(kinds)
        n_ood = round(n * config.test_ood_fraction) if split == "test" else 0
        ood_flags = [True] * n_ood + [False] * (n - n_ood)
        plan_rng.shuffle(ood_flags)
        cats, weights = list(config.violating_weights), list(config.violating_weights.values())
        for index, (kind, ood) in enumerate(zip(kinds, ood_flags)):
            category = plan_rng.choices(cats, weights=weights)[0]
            for attempt in range(50):
                item = make_item(config, split, index, kind, category, ood, attempt)
                if item.triple() not in seen:
                    break
            else:
                raise RuntimeError(f"could not draw a unique item for {split} #{index} ({kind})")
            seen.add(item.triple())
            items.append(item)
    order = {s: i for i, s in enumerate(SPLITS)}
    return sorted(items, key=lambda it: (order[it.split], it.id))


def template_counts() -> dict[str, dict[str, int]]:
    """Distinct templates per pool group, train and held-out, for the report."""
    groups: dict[str, dict[str, int]] = {}

    def add(name: str, pool: tuple[P.Template, ...]) -> None:
        g = groups.setdefault(name, {"train": 0, "heldout": 0})
        for t in pool:
            g["heldout" if t.heldout else "train"] += 1

    for (label, modality), pool in P.PROMO.items():
        add(f"promotion/{label}/{modality}", pool)
    for (topic, modality), pool in P.BENIGN.items():
        add(f"benign/{'hard' if topic in P.HARD_TOPICS else 'easy'}/{modality}", pool)
    for (label, modality), pool in P.MENTION.items():
        add(f"context_mention/{label}/{modality}", pool)
    for (label, modality), pool in P.FRAMING.items():
        add(f"context_framing/{label}/{modality}", pool)
    for modality, pool in P.FRAMING_GENERIC.items():
        add(f"context_framing/generic/{modality}", pool)
    for modality, pool in P.DISCLAIMER.items():
        add(f"launder_disclaimer/{modality}", pool)
    for modality, pool in P.PROMO_CTA.items():
        add(f"cta/promotion/{modality}", pool)
    for modality, pool in P.BENIGN_CTA.items():
        add(f"cta/benign/{modality}", pool)
    add("opener/speech", P.OPENERS)
    return groups
