"""Turning templates into text: alternatives, slots, and the noise real uploads have."""

from __future__ import annotations

import random
import re

from inference.benchmark.phrases import FILLERS, HANDLE_PARTS, HANDLE_PARTS_HELDOUT, NAMES, NAMES_HELDOUT, SLOTS

ALTERNATIVES = re.compile(r"\[([^\[\]]*)\]")
SLOT = re.compile(r"\{(\w+)\}")

PRICES = (10, 15, 20, 25, 30, 40, 50, 60, 80, 100, 150, 200, 250, 300, 450, 500, 800, 1200)
DRUG_QTY = ("a gram", "an eighth", "an ounce", "a half zip", "ten pills", "a bag", "twenty pills", "a strip", "two grams")
AMMO_QTY = ("500 rounds", "a case", "two boxes", "1000 rounds", "a crate", "ten mags")
COUNTS = ("1k", "5k", "10k", "50k", "100k", "2,000", "5,000", "25k")
AMOUNTS = ("0.1", "0.25", "0.5", "1", "2", "0.05")
MULTIPLIERS = ("double", "2x", "3x", "twice that", "10x", "triple")
LEET = str.maketrans({"a": "4", "e": "3", "o": "0", "i": "1", "s": "5"})


class Filler:
    """Fills the slots of one item. `ood` items draw held-out values half the time."""

    def __init__(self, rng: random.Random, ood: bool):
        self.rng = rng
        self.ood = ood
        # One value per slot name for the whole item, so caption, speech and on-screen text
        # talk about the same dish, place or drug.
        self.memory: dict[str, str] = {}

    def choose(self, train: tuple[str, ...], heldout: tuple[str, ...]) -> str:
        if self.ood and heldout and self.rng.random() < 0.5:
            return self.rng.choice(heldout)
        return self.rng.choice(train)

    def price(self, modality: str, low: int = 0) -> tuple[str, int]:
        value = self.rng.choice([p for p in PRICES if p > low] or [PRICES[-1] * 2])
        if modality == "speech":
            return self.rng.choice((f"{value} dollars", f"{value} bucks", f"${value}")), value
        return self.rng.choice((f"${value}", f"{value}$", f"{value} usd", f"${value}")), value

    def handle(self, modality: str) -> str:
        first, second = HANDLE_PARTS_HELDOUT if self.ood and self.rng.random() < 0.5 else HANDLE_PARTS
        a, b = self.rng.choice(first), self.rng.choice(second)
        digits = str(self.rng.randint(1, 99)) if self.rng.random() < 0.4 else ""
        if modality == "speech":
            return f"{a} {b} {digits}".strip()
        return f"@{a}{self.rng.choice(('_', '.', ''))}{b}{digits}"

    def fill(self, template: str, modality: str) -> str:
        """Expand `[a|b]` alternatives, then `{slot}`s. Values are drawn once per slot name."""
        text = ALTERNATIVES.sub(lambda m: self.rng.choice(m.group(1).split("|")), template)
        values: dict[str, str] = {}
        low_price = 0
        if "{price}" in text:  # first, so that price2 (what the victim "gets back") is higher
            values["price"], low_price = self.price(modality)
        for name in SLOT.findall(text):
            if name in values:
                continue
            if name in ("price", "price2"):
                values[name], _ = self.price(modality, low_price)
            elif name == "drug2":
                other = [d for d in SLOTS["drug"][0] if d != values.get("drug")]
                values[name] = self.rng.choice(other)
            elif name == "qty":
                weapon = "{ammo}" in text or "{gun}" in text
                values[name] = self.rng.choice(AMMO_QTY if weapon else DRUG_QTY)
            elif name == "count":
                values[name] = self.rng.choice(COUNTS)
            elif name == "amount":
                values[name] = self.rng.choice(AMOUNTS)
            elif name == "multiplier":
                values[name] = self.rng.choice(MULTIPLIERS)
            elif name == "pct":
                values[name] = str(self.rng.choice((3, 5, 8, 10, 12, 15, 20, 30, 50)))
            elif name == "handle":
                values[name] = self.handle(modality)
            elif name == "name":
                values[name] = self.memory.setdefault(name, self.choose(NAMES, NAMES_HELDOUT))
            else:
                values[name] = self.memory.setdefault(name, self.choose(*SLOTS[name]))
        return SLOT.sub(lambda m: values[m.group(1)], text)


# ---------------------------------------------------------------------------- noise


def typo(word: str, rng: random.Random) -> str:
    if len(word) < 4 or not word.isalpha():
        return word
    i = rng.randrange(1, len(word) - 1)
    kind = rng.randrange(3)
    if kind == 0:  # swap two neighbours
        return word[:i] + word[i + 1] + word[i] + word[i + 2 :]
    if kind == 1:  # drop one
        return word[:i] + word[i + 1 :]
    return word[:i] + word[i] + word[i:]  # double one


def noisy_caption(text: str, rng: random.Random) -> str:
    """Lower-casing, typos and l33t spellings, as uploaders (and evaders) write."""
    words = text.split(" ")
    if rng.random() < 0.25:
        words = [typo(w, rng) if rng.random() < 0.06 else w for w in words]
    if rng.random() < 0.1:
        long_words = [i for i, w in enumerate(words) if len(w) >= 4 and w.isalpha()]
        for i in rng.sample(long_words, min(2, len(long_words))):
            words[i] = words[i].lower().translate(LEET)
    text = " ".join(words)
    if rng.random() < 0.3:
        text = text.lower()
    return text


def noisy_speech(text: str, rng: random.Random) -> str:
    """Filler words after a few commas and sentence ends."""
    if rng.random() > 0.35:
        return text
    parts = re.split(r"(?<=[,.!?]) ", text)
    out = [parts[0]]
    for part in parts[1:]:
        if rng.random() < 0.3:
            out.append(rng.choice(FILLERS) + ",")
        out.append(part)
    return " ".join(out)


def noisy_onscreen(text: str, rng: random.Random) -> str:
    r = rng.random()
    if r < 0.7:
        text = text.upper()
    elif r < 0.85:
        text = text.title()
    if rng.random() < 0.05:
        words = text.split(" ")
        i = rng.randrange(len(words))
        words[i] = typo(words[i], rng)
        text = " ".join(words)
    return text
