"""A zero-shot semantic prior from the policy's own definition of each label.

Both stages learn from the synthetic benchmark, whose phrases come from a template bank. A
classifier fit on those rows learns the templates: on hand-written videos in new words
(bench/GENERALIZATION.md) the first-run baseline called 37 of 40 videos `ok`. What does carry
over to new phrasings is the meaning of the policy itself. So this module embeds short
descriptions taken from the policy text ("selling illegal drugs", "DM me to invest", "a news
report", ...) with the pretrained MiniLM sentence encoder, and describes any text by its cosine
similarity to them: one number per label (its closest prototype) and one per framing of the
context exception. MiniLM was trained on a billion sentence pairs, not on our templates, so
"got that gas, tap in for a zip" lands nearer "selling illegal drugs" than "a knitting tutorial"
does, whatever words the generator used. The models still decide how much to trust it.

A text is one string or a list of pieces (transcript segments, on-screen lines, sentences of a
caption); a violation sits in one piece, so each similarity is the max over pieces, and a long
benign text cannot dilute it.
"""

from __future__ import annotations

import re
from collections import OrderedDict
from dataclasses import asdict, dataclass
from typing import Sequence

import numpy as np

from inference.text_encoder import TextEncoder, TextEncoderConfig

Prototypes = tuple[tuple[str, tuple[str, ...]], ...]  # ((name, (description, ...)), ...)

# The demo policy (shared/POLICY.md). Label prototypes: the wording of its label table.
DEMO_LABEL_PROTOTYPES: Prototypes = (
    ("scam", (
        "promotes a fraud",
        "free money or crypto doubling",
        "a fake giveaway that asks for payment or personal details",
        "selling followers or likes",
        "DM me to invest",
    )),
    ("drugs", (
        "offers to sell, deliver or source illegal drugs",
        "selling illegal drugs",
        "prescription pills without a prescription",
    )),
    ("weapons", (
        "offers to sell weapons or ammunition",
        "selling weapons or ammunition",
        "explains how to build a weapon",
        "threatening violence",
    )),
)  # fmt: skip
# Framing prototypes: rule 2's protective, news and educational framings, and rule 3's
# disclaimer, which is NOT a framing that makes a video ok; a separate feature so a model can
# tell "educational purposes only" from a real lesson.
DEMO_FRAMING_PROTOTYPES: Prototypes = (
    ("protective", ("a protective warning", "warning: this is always a scam")),
    ("news", ("a news report", "police seized it today")),
    ("educational", ("an educational lesson", "a safety class")),
    ("disclaimer", ("for educational purposes only",)),
)

# PolicyPrior._key (encoder folder and truncation, descriptions) -> (n_descriptions, 384) unit rows
_PROTOTYPE_EMBEDDINGS: dict[tuple, np.ndarray] = {}
# Similarity rows of pieces already seen, per prototype set, oldest dropped first: the first run
# and the benchmark prepare the same texts for several models (baseline, MLLMs, a LoRA sweep).
_PIECE_ROWS: "OrderedDict[tuple, np.ndarray]" = OrderedDict()
MAX_REMEMBERED_PIECES = 200_000  # 7 floats each

# A caption or transcript splits into pieces at sentence ends and line breaks.
_PIECE_BREAK = re.compile(r"(?<=[.!?])\s+|\n+|\s+\|\s+")


@dataclass(frozen=True)
class PolicyPriorConfig:
    label_prototypes: Prototypes = DEMO_LABEL_PROTOTYPES  # one entry per violating label
    framing_prototypes: Prototypes = DEMO_FRAMING_PROTOTYPES

    def __post_init__(self):
        for group in (self.label_prototypes, self.framing_prototypes):
            if not group or any(not descriptions for _, descriptions in group):
                raise ValueError("every label and framing needs at least one prototype description")

    @property
    def feature_names(self) -> tuple[str, ...]:
        """Names of the feature columns: the labels, then "framing:<name>" per framing."""
        return (*(n for n, _ in self.label_prototypes), *(f"framing:{n}" for n, _ in self.framing_prototypes))

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict) -> "PolicyPriorConfig":
        """Inverse of to_dict (JSON turns the tuples into lists)."""

        def prototypes(group) -> Prototypes:
            return tuple((str(name), tuple(str(d) for d in descriptions)) for name, descriptions in group)

        return cls(prototypes(data["label_prototypes"]), prototypes(data["framing_prototypes"]))


def split_pieces(text: str) -> list[str]:
    """The text's sentences / lines, plus the whole text when there is more than one (a claim
    can run across a sentence break). Empty text: no pieces."""
    pieces = [p.strip() for p in _PIECE_BREAK.split(text or "") if p and p.strip()]
    return pieces + [text.strip()] if len(pieces) > 1 else pieces


class PolicyPrior:
    """Texts -> (N, n_features) max cosine similarities to each label's and framing's prototypes.

    encoder: the caller's MiniLM TextEncoder (weights are loaded once per process whichever
    instance asks); a new one on one torch thread when not given.
    """

    def __init__(self, config: PolicyPriorConfig | None = None, encoder: TextEncoder | None = None):
        self.config = config or PolicyPriorConfig()
        self.encoder = encoder or TextEncoder(TextEncoderConfig(num_threads=1))
        groups = (*self.config.label_prototypes, *self.config.framing_prototypes)
        self._descriptions = [d for _, descriptions in groups for d in descriptions]
        # column of each description: which feature its similarity counts for
        self._column = np.array([j for j, (_, ds) in enumerate(groups) for _ in ds])  # (n_descriptions,)
        self._prototypes: np.ndarray | None = None  # (n_descriptions, 384) unit rows, on first use

    @property
    def feature_names(self) -> tuple[str, ...]:
        return self.config.feature_names

    @property
    def n_features(self) -> int:
        return len(self.feature_names)

    @property
    def _key(self) -> tuple:
        """What an embedding depends on: the encoder's weights and truncation, the prototypes."""
        encoder = self.encoder.config
        return (str(encoder.resolved_model_dir()), encoder.max_length, tuple(self._descriptions))

    def _prototype_matrix(self) -> np.ndarray:
        if self._prototypes is None:
            # Stage 1 builds a prior per scored video: embed each prototype set once per process.
            key = self._key
            if key not in _PROTOTYPE_EMBEDDINGS:
                _PROTOTYPE_EMBEDDINGS[key] = self.encoder.encode(self._descriptions)  # (n_descriptions, 384)
            self._prototypes = _PROTOTYPE_EMBEDDINGS[key]
        return self._prototypes

    def similarities(self, embeddings: np.ndarray) -> np.ndarray:
        """(M, 384) unit embeddings -> (M, n_features): max cosine over each group's prototypes."""
        cosine = embeddings @ self._prototype_matrix().T  # (M, n_descriptions)
        out = np.full((len(embeddings), self.n_features), -1.0, dtype=np.float32)  # (M, F)
        for j in range(self.n_features):
            out[:, j] = cosine[:, self._column == j].max(axis=1)
        return out

    def features_batch(self, texts: Sequence[str | Sequence[str]]) -> np.ndarray:
        """One row per text; a text is a string (split into its sentences) or a list of pieces.

        -> (N, n_features) float32: per column the max over the text's pieces; zeros for a text
        with no pieces. Every piece of every text goes through MiniLM in one batched pass.
        """
        piece_lists = [split_pieces(t) if isinstance(t, str) else [p for p in t if p and p.strip()] for t in texts]
        rows = self._piece_rows(list(dict.fromkeys(p for pieces in piece_lists for p in pieces)))
        out = np.zeros((len(piece_lists), self.n_features), dtype=np.float32)  # (N, F)
        for i, pieces in enumerate(piece_lists):
            if pieces:
                out[i] = np.max([rows[p] for p in pieces], axis=0)
        return out

    def _piece_rows(self, pieces: list[str]) -> dict[str, np.ndarray]:
        """piece -> (n_features,) similarities; pieces not seen before go through MiniLM in one pass."""
        key = self._key
        rows = {p: _PIECE_ROWS[key, p] for p in pieces if (key, p) in _PIECE_ROWS}
        missing = [p for p in pieces if p not in rows]
        if missing:
            for piece, row in zip(missing, self.similarities(self.encoder.encode(missing))):
                rows[piece] = _PIECE_ROWS[key, piece] = row
            while len(_PIECE_ROWS) > MAX_REMEMBERED_PIECES:
                _PIECE_ROWS.popitem(last=False)
        return rows

    def features(self, text: str | Sequence[str]) -> np.ndarray:
        """(n_features,) for one text or list of pieces."""
        return self.features_batch([text])[0]
