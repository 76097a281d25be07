"""The baseline's training feature matrix, kept next to the model it trained.

A retrained baseline learns from reviewer labels plus whatever its predecessor learned from
(the benchmark, for the first models). The predecessor's videos may be long gone, so the rows
themselves are kept: `training_set.npz` in the model's folder, with each row's video id
(NO_VIDEO for rows that did not come from a reviewed video). Reviewed rows are not inherited:
the next run recomputes them from the current labels, so a corrected label replaces the old one.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from inference.baseline import FEATURE_VERSION

TRAINING_SET_FILE = "training_set.npz"
NO_VIDEO = -1


@dataclass(frozen=True)
class TrainingSet:
    X: np.ndarray  # (N, D) float32, D = inference.baseline.FEATURE_DIM
    y: np.ndarray  # (N,) label strings
    video_ids: np.ndarray  # (N,) int64, NO_VIDEO where the row came from elsewhere

    def __post_init__(self):
        if not len(self.X) == len(self.y) == len(self.video_ids):
            raise ValueError(f"{len(self.X)} rows, {len(self.y)} labels, {len(self.video_ids)} video ids")

    @classmethod
    def empty(cls, n_features: int) -> "TrainingSet":
        return cls(np.zeros((0, n_features), np.float32), np.zeros(0, dtype=str), np.zeros(0, np.int64))

    def select(self, mask: np.ndarray) -> "TrainingSet":
        return TrainingSet(self.X[mask], self.y[mask], self.video_ids[mask])

    def inherited(self) -> "TrainingSet":
        """The rows that did not come from a reviewed video."""
        return self.select(self.video_ids == NO_VIDEO)

    def __add__(self, other: "TrainingSet") -> "TrainingSet":
        return TrainingSet(np.concatenate([self.X, other.X]).astype(np.float32),
                           np.concatenate([self.y.astype(str), other.y.astype(str)]),
                           np.concatenate([self.video_ids, other.video_ids]).astype(np.int64))

    def __len__(self) -> int:
        return len(self.y)


def save_training_set(folder: str | Path, training_set: TrainingSet) -> Path:
    path = Path(folder) / TRAINING_SET_FILE
    np.savez_compressed(path, X=training_set.X, y=training_set.y.astype(str), video_ids=training_set.video_ids,
                        feature_version=np.array(FEATURE_VERSION))
    return path


def load_training_set(folder: str | Path) -> TrainingSet | None:
    """The rows saved with the model in `folder`; None when it has none, or ones computed by
    another feature version (they would not line up with today's features)."""
    path = Path(folder) / TRAINING_SET_FILE
    if not path.exists():
        return None
    with np.load(path, allow_pickle=False) as data:
        if str(data["feature_version"]) != FEATURE_VERSION:
            return None
        return TrainingSet(data["X"].astype(np.float32), data["y"].astype(str), data["video_ids"].astype(np.int64))
