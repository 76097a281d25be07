"""Stage 1: the cheap baseline classifier that scores every video.

It sees only what is cheap to get: the caption (through the pretrained MiniLM encoder), a
few low-res frames (colour, edges, a tiny thumbnail, motion) and the waveform's statistics
(loudness, duration, zero crossings, spectral centroid, how much of it sounds like speech).
No speech transcript and no OCR: those cost a GPU/OCR pass and belong to stage 2. Videos
whose violation lives only in the speech or on screen should therefore look uncertain here,
and the entropy router sends them on.

A scikit-learn estimator (standardised features -> logistic regression, or a small MLP) is
trained here, and its probabilities are calibrated on validation data with temperature
scaling (Guo et al., 2017), so the entropy the router reads means what it says.

Feature row layout (FEATURE_VERSION "cheap-v1", FEATURE_DIM = 459):
    [0:384)   caption embedding (MiniLM, unit norm)
    [384:452) visual statistics (VISUAL_DIM = 68)
    [452:459) audio statistics (AUDIO_DIM = 7)
"""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Sequence

import joblib
import numpy as np
import sklearn
from PIL import Image
from scipy.optimize import minimize_scalar
from scipy.special import log_softmax, softmax
from sklearn.linear_model import LogisticRegression
from sklearn.neural_network import MLPClassifier
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from inference.cascade import shannon_entropy
from inference.metrics import evaluation_report
from inference.policy import LABELS
from inference.text_encoder import EMBEDDING_DIM, TextEncoder, TextEncoderConfig
from inference.types import SAMPLE_RATE, Frame

FEATURE_VERSION = "cheap-v1"

# Visual statistics. Frames are shrunk first: the baseline must stay cheap on any resolution.
MAX_FRAMES = 8  # at most this many frames, evenly spaced, are looked at
GRID = 32  # colour and motion are measured on GRID x GRID copies
EDGE_GRID = 64  # edges on EDGE_GRID x EDGE_GRID grey copies (on-screen text shows up as edges)
EDGE_STEP = 40 / 255  # a grey-level jump at least this large counts as an edge
THUMB = 4  # THUMB x THUMB RGB thumbnail
HUE_BINS, SAT_BINS, VAL_BINS = 8, 4, 4
VISUAL_DIM = HUE_BINS + SAT_BINS + VAL_BINS + 2 + THUMB * THUMB * 3 + 1 + 1  # 68

# Audio statistics on 32 ms windows with 16 ms hop.
AUDIO_WINDOW = 512
AUDIO_HOP = 256
MAX_AUDIO_S = 120.0  # only the first two minutes are analysed; duration still counts it all
SPEECH_BAND_HZ = (300.0, 3400.0)  # telephone band: where most speech energy lies
AUDIO_DIM = 7

FEATURE_DIM = EMBEDDING_DIM + VISUAL_DIM + AUDIO_DIM

ESTIMATORS = ("logreg", "mlp")
MIN_TEMPERATURE, MAX_TEMPERATURE = 0.25, 20.0

BaselineRow = tuple[str, Sequence[Frame], "np.ndarray | None", str]  # caption, frames, audio, label


def entropy(p) -> float | np.ndarray:
    """Shannon entropy of a class distribution, in nats (natural log; ln 4 = 1.386 is the maximum here)."""
    return shannon_entropy(p)


# ---------------------------------------------------------------------------------------------
# Cheap features


def _frame_image(frame: Frame | np.ndarray) -> np.ndarray:
    image = frame.image if isinstance(frame, Frame) else np.asarray(frame)
    if image.ndim != 3 or image.shape[2] != 3 or image.dtype != np.uint8:
        raise ValueError(f"frames must be (H, W, 3) uint8 RGB, got {image.shape} {image.dtype}")
    return image


def _evenly_spaced(items: Sequence, limit: int) -> list:
    if len(items) <= limit:
        return list(items)
    picks = np.linspace(0, len(items) - 1, limit).round().astype(int)
    return [items[i] for i in picks]


def _one_frame_stats(image: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(per-frame statistics (VISUAL_DIM - 2,), grey GRID x GRID copy for motion)."""
    pil = Image.fromarray(image)
    small = pil.resize((GRID, GRID), Image.Resampling.BILINEAR)
    hsv = np.asarray(small.convert("HSV"), dtype=np.int64).reshape(-1, 3)  # (GRID*GRID, 3) in 0..255
    hue = np.bincount(hsv[:, 0] * HUE_BINS // 256, minlength=HUE_BINS) / len(hsv)  # (HUE_BINS,)
    sat = np.bincount(hsv[:, 1] * SAT_BINS // 256, minlength=SAT_BINS) / len(hsv)  # (SAT_BINS,)
    val = np.bincount(hsv[:, 2] * VAL_BINS // 256, minlength=VAL_BINS) / len(hsv)  # (VAL_BINS,)

    grey = np.asarray(pil.convert("L").resize((EDGE_GRID, EDGE_GRID), Image.Resampling.BILINEAR)) / 255.0
    gx = np.abs(np.diff(grey, axis=1))[:-1, :]  # (E-1, E-1)
    gy = np.abs(np.diff(grey, axis=0))[:, :-1]  # (E-1, E-1)
    magnitude = np.hypot(gx, gy)  # (E-1, E-1)
    edges = np.array([(magnitude >= EDGE_STEP).mean(), magnitude.mean()])  # (2,)

    thumb = np.asarray(pil.resize((THUMB, THUMB), Image.Resampling.BOX)).reshape(-1) / 255.0  # (48,)
    grey_small = np.asarray(small.convert("L"), dtype=np.float64) / 255.0  # (GRID, GRID)
    return np.concatenate([hue, sat, val, edges, thumb]), grey_small


def visual_features(frames: Sequence[Frame | np.ndarray]) -> np.ndarray:
    """(VISUAL_DIM,) colour histograms, edge density, thumbnail (means over frames), motion, has-video."""
    picked = _evenly_spaced(list(frames), MAX_FRAMES)
    if not picked:
        return np.zeros(VISUAL_DIM, dtype=np.float32)
    stats, greys = zip(*(_one_frame_stats(_frame_image(f)) for f in picked))
    mean_stats = np.mean(stats, axis=0)  # (VISUAL_DIM - 2,)
    # Motion: mean absolute change between consecutive shrunk frames (0 for a single frame).
    motion = np.mean([np.abs(b - a).mean() for a, b in zip(greys, greys[1:])]) if len(greys) > 1 else 0.0
    return np.concatenate([mean_stats, [motion, 1.0]]).astype(np.float32)


def audio_features(audio: np.ndarray | None) -> np.ndarray:
    """(AUDIO_DIM,) has-audio, log duration, loudness, zero-crossing rate, spectral centroid,
    speech-activity fraction, speech-band energy share. All zeros without audio."""
    if audio is None or len(audio) == 0:
        return np.zeros(AUDIO_DIM, dtype=np.float32)
    x = np.asarray(audio, dtype=np.float32).reshape(-1)
    duration_s = len(x) / SAMPLE_RATE
    x = x[: int(MAX_AUDIO_S * SAMPLE_RATE)]
    if len(x) < AUDIO_WINDOW:
        x = np.pad(x, (0, AUDIO_WINDOW - len(x)))

    rms = float(np.sqrt(np.mean(np.square(x, dtype=np.float64))))
    loudness = max(20.0 * math.log10(rms + 1e-10), -100.0) / 100.0  # dBFS / 100, in [-1, 0]

    windows = np.lib.stride_tricks.sliding_window_view(x, AUDIO_WINDOW)[::AUDIO_HOP]  # (W, 512)
    signs = np.signbit(windows)
    zcr = float(np.mean(signs[:, 1:] != signs[:, :-1]))

    power = np.abs(np.fft.rfft(windows * np.hanning(AUDIO_WINDOW), axis=1)) ** 2  # (W, 257)
    freqs = np.fft.rfftfreq(AUDIO_WINDOW, d=1.0 / SAMPLE_RATE)  # (257,)
    window_power = power.sum(axis=1) + 1e-12  # (W,)
    centroid = (power @ freqs) / window_power  # (W,) Hz
    in_band = (freqs >= SPEECH_BAND_HZ[0]) & (freqs <= SPEECH_BAND_HZ[1])  # (257,)
    band_share = power[:, in_band].sum(axis=1) / window_power  # (W,)

    # Speech activity, crudely: loud enough (above -45 dBFS and 10 dB over the quiet floor)
    # and mostly in the speech band. Music and noise also pass sometimes; it is a cheap hint.
    window_db = 10.0 * np.log10(np.mean(np.square(windows, dtype=np.float64), axis=1) + 1e-12)  # (W,)
    loud = window_db > max(-45.0, float(np.percentile(window_db, 10)) + 10.0)
    active = loud & (band_share >= 0.5)

    weights = window_power / window_power.sum()  # loud windows dominate the averages
    return np.array(
        [
            1.0,
            math.log1p(duration_s),
            loudness,
            zcr,
            float(weights @ centroid) / (SAMPLE_RATE / 2),
            float(active.mean()),
            float(weights @ band_share),
        ],
        dtype=np.float32,
    )


def cheap_features(
    caption: str, frames: Sequence[Frame | np.ndarray], audio: np.ndarray | None, encoder: TextEncoder
) -> np.ndarray:
    """One feature row (FEATURE_DIM,) float32 for one video."""
    text = encoder.encode([caption or ""])[0]  # (384,)
    return np.concatenate([text, visual_features(frames), audio_features(audio)]).astype(np.float32)


def featurize_rows(rows: Sequence[BaselineRow], encoder: TextEncoder, progress: bool = False) -> np.ndarray:
    """Feature rows (N, FEATURE_DIM) for (caption, frames, audio, ...) rows.

    Captions are embedded once each, in batches: benchmark captions repeat a lot, and the
    MiniLM pass is the slow part.
    """
    from tqdm.auto import tqdm

    captions = [row[0] or "" for row in rows]
    unique = list(dict.fromkeys(captions))
    chunk = 256
    embedded = []
    for start in tqdm(range(0, len(unique), chunk), desc="captions", disable=not progress, unit="batch"):
        embedded.append(encoder.encode(unique[start : start + chunk]))
    table = np.concatenate(embedded) if embedded else np.zeros((0, EMBEDDING_DIM), np.float32)
    index = {caption: i for i, caption in enumerate(unique)}

    X = np.zeros((len(rows), FEATURE_DIM), dtype=np.float32)  # (N, D)
    for i, row in enumerate(tqdm(rows, desc="media stats", disable=not progress, unit="video")):
        X[i, :EMBEDDING_DIM] = table[index[captions[i]]]
        X[i, EMBEDDING_DIM : EMBEDDING_DIM + VISUAL_DIM] = visual_features(row[1])
        X[i, EMBEDDING_DIM + VISUAL_DIM :] = audio_features(row[2])
    return X


# ---------------------------------------------------------------------------------------------
# The classifier


@dataclass
class BaselineConfig:
    estimator: str = "logreg"  # "logreg" | "mlp"
    # Inverse L2 strength (logreg). Strong by default: 459 standardised features and a few
    # hundred videos overfit easily (captions-only benchmark, 800 train videos: C=1 gave 0.60
    # test accuracy, C=0.005 0.78, C=0.001 0.79).
    C: float = 0.005
    # train_baseline tries each C here and keeps the one with the lowest calibrated validation
    # NLL (the right strength moves with the amount of data); empty: always use C.
    C_grid: tuple[float, ...] = (0.001, 0.003, 0.01, 0.03)
    hidden_size: int = 64  # (mlp)
    alpha: float = 1e-3  # L2 strength (mlp)
    class_weight: str | None = None  # "balanced" trades calibration for minority-class recall
    max_iter: int = 2000
    seed: int = 0
    labels: tuple[str, ...] = LABELS
    text_encoder: TextEncoderConfig = field(default_factory=TextEncoderConfig)

    def __post_init__(self):
        if self.estimator not in ESTIMATORS:
            raise ValueError(f"estimator must be one of {ESTIMATORS}, got {self.estimator!r}")
        if "ok" not in self.labels:
            raise ValueError("labels must include 'ok': the violation probability is 1 - p_ok")
        self.labels = tuple(self.labels)
        self.C_grid = tuple(self.C_grid)
        if isinstance(self.text_encoder, dict):
            self.text_encoder = TextEncoderConfig(**self.text_encoder)


@dataclass
class BaselineOutput:
    probs: dict[str, float]  # label -> calibrated probability
    label: str  # argmax
    entropy: float  # nats


class BaselineClassifier:
    """Feature rows -> calibrated class probabilities over `config.labels`, scikit-learn style.

    Learned attributes: estimator_, classes_, n_features_in_, temperature_, calibration_.
    """

    def __init__(self, config: BaselineConfig | None = None):
        self.config = config or BaselineConfig()
        self._encoder: TextEncoder | None = None

    # -- fitting -------------------------------------------------------------------------------

    def _make_estimator(self):
        cfg = self.config
        if cfg.estimator == "logreg":
            head = LogisticRegression(
                C=cfg.C, class_weight=cfg.class_weight, max_iter=cfg.max_iter, random_state=cfg.seed
            )
        else:
            head = MLPClassifier(
                hidden_layer_sizes=(cfg.hidden_size,),
                alpha=cfg.alpha,
                max_iter=cfg.max_iter,
                early_stopping=True,
                random_state=cfg.seed,
            )
        return make_pipeline(StandardScaler(), head)

    def _check_labels(self, y) -> np.ndarray:
        y = np.asarray([str(v) for v in y], dtype=object)
        unknown = sorted(set(y.tolist()) - set(self.config.labels))
        if unknown:
            raise ValueError(f"unknown labels {unknown}; expected some of {self.config.labels}")
        return y

    def fit(self, X, y) -> "BaselineClassifier":
        X = np.asarray(X, dtype=np.float32)  # (N, D)
        y = self._check_labels(y)
        if len(X) != len(y):
            raise ValueError(f"{len(X)} feature rows for {len(y)} labels")
        if len(set(y.tolist())) < 2:
            raise ValueError("need at least two different labels to train")
        self.estimator_ = self._make_estimator().fit(X, y)
        self.classes_ = tuple(str(c) for c in self.estimator_.classes_)
        self.n_features_in_ = X.shape[1]
        self.temperature_ = 1.0
        self.calibration_: dict = {}
        return self

    def _check_fitted(self) -> None:
        if not hasattr(self, "estimator_"):
            raise RuntimeError("this BaselineClassifier is not fitted yet; call fit or load")

    def _log_probs(self, X) -> np.ndarray:
        """Uncalibrated log-probabilities (N, K) in `config.labels` order.

        Labels never seen in training get a floor probability, so they stay possible but unlikely.
        """
        self._check_fitted()
        X = np.asarray(X, dtype=np.float32)
        if X.ndim == 1:
            X = X[None, :]
        if X.shape[1] != self.n_features_in_:
            raise ValueError(f"expected {self.n_features_in_} features, got {X.shape[1]}")
        seen = self.estimator_.predict_proba(X)  # (N, len(classes_))
        probs = np.full((len(X), len(self.config.labels)), 1e-9)  # (N, K)
        for j, label in enumerate(self.classes_):
            probs[:, self.config.labels.index(label)] = seen[:, j]
        return np.log(np.clip(probs, 1e-12, None))  # (N, K)

    def calibrate(self, X_val, y_val) -> "BaselineClassifier":
        """Fit the temperature T (softmax(log p / T)) that minimises validation NLL."""
        y = self._check_labels(y_val)
        log_p = self._log_probs(X_val)  # (N, K)
        target = np.array([self.config.labels.index(label) for label in y])  # (N,)

        def nll(log_t: float) -> float:
            scaled = log_softmax(log_p / math.exp(log_t), axis=1)  # (N, K)
            return float(-scaled[np.arange(len(target)), target].mean())

        # T < 1/4 only ever wins on a validation set the model already separates perfectly;
        # sharpening that far would make every later entropy ~0 and starve the router.
        bounds = (math.log(MIN_TEMPERATURE), math.log(MAX_TEMPERATURE))
        result = minimize_scalar(nll, bounds=bounds, method="bounded")
        before = nll(0.0)
        # Keep T = 1 if the search found nothing better (it is a 1-D bounded search, so rarely).
        self.temperature_ = float(math.exp(result.x)) if result.fun < before else 1.0
        after = float(min(result.fun, before))
        self.calibration_ = {
            "n": int(len(y)),
            "nll_before": before,
            "nll_after": after,
            "temperature": self.temperature_,
        }
        return self

    # -- prediction ----------------------------------------------------------------------------

    def predict_proba(self, X) -> np.ndarray:
        """Calibrated probabilities (N, K), columns in `config.labels` order."""
        return softmax(self._log_probs(X) / self.temperature_, axis=1)

    def predict(self, X) -> np.ndarray:
        return np.asarray(self.config.labels, dtype=object)[self.predict_proba(X).argmax(axis=1)]

    @property
    def encoder(self) -> TextEncoder:
        if self._encoder is None:
            self._encoder = TextEncoder(self.config.text_encoder)
        return self._encoder

    def featurize(self, caption: str, frames: Sequence[Frame], audio: np.ndarray | None) -> np.ndarray:
        return cheap_features(caption, frames, audio, self.encoder)

    def score(self, caption: str, frames: Sequence[Frame], audio: np.ndarray | None) -> BaselineOutput:
        """Score one video end to end: cheap features -> calibrated probabilities and entropy."""
        probs = self.predict_proba(self.featurize(caption, frames, audio))[0]  # (K,)
        return BaselineOutput(
            probs={label: float(p) for label, p in zip(self.config.labels, probs)},
            label=self.config.labels[int(probs.argmax())],
            entropy=float(entropy(probs)),
        )

    # -- persistence ---------------------------------------------------------------------------

    def save(self, directory: str | Path) -> Path:
        """Write baseline.joblib (the fitted estimator) and baseline.json (everything else)."""
        self._check_fitted()
        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        joblib.dump(self.estimator_, directory / "baseline.joblib")
        meta = {
            "format": "coefvq-baseline",
            "feature_version": FEATURE_VERSION,
            "n_features": self.n_features_in_,
            "config": asdict(self.config),
            "labels": list(self.config.labels),
            "classes": list(self.classes_),
            "temperature": self.temperature_,
            "calibration": self.calibration_,
            "sklearn_version": sklearn.__version__,
        }
        (directory / "baseline.json").write_text(json.dumps(meta, indent=2))
        return directory

    @classmethod
    def load(cls, directory: str | Path) -> "BaselineClassifier":
        """Load a saved baseline. joblib files are pickles: load only directories you trust."""
        directory = Path(directory)
        meta = json.loads((directory / "baseline.json").read_text())
        if meta.get("feature_version") != FEATURE_VERSION:
            raise ValueError(
                f"{directory} was trained on features {meta.get('feature_version')!r}; "
                f"this code computes {FEATURE_VERSION!r}: retrain it"
            )
        config = meta["config"]
        config["labels"] = tuple(config["labels"])
        config["C_grid"] = tuple(config.get("C_grid", ()))
        model = cls(BaselineConfig(**config))
        model.estimator_ = joblib.load(directory / "baseline.joblib")
        model.classes_ = tuple(meta["classes"])
        model.n_features_in_ = int(meta["n_features"])
        model.temperature_ = float(meta["temperature"])
        model.calibration_ = meta.get("calibration", {})
        return model


# ---------------------------------------------------------------------------------------------
# Training and evaluation entry points (the management commands call these)


def train_baseline(
    train_rows: Sequence[BaselineRow],
    val_rows: Sequence[BaselineRow],
    config: BaselineConfig | None = None,
    progress: bool = True,
) -> BaselineClassifier:
    """Fit on (caption, frames, audio, label) rows, then calibrate the temperature on val_rows.

    With validation rows and a logistic regression, each C in config.C_grid is tried and the
    one with the lowest calibrated validation NLL is kept (its C is written into the
    returned model's config). With no validation rows the temperature stays 1 (uncalibrated).
    """
    config = config or BaselineConfig()
    encoder = TextEncoder(config.text_encoder)
    X_train = featurize_rows(train_rows, encoder, progress=progress)
    y_train = [row[3] for row in train_rows]
    if not len(val_rows):
        return BaselineClassifier(config).fit(X_train, y_train)

    X_val = featurize_rows(val_rows, encoder, progress=progress)
    y_val = [row[3] for row in val_rows]
    candidates = config.C_grid if config.estimator == "logreg" and config.C_grid else (config.C,)
    best = None
    for C in candidates:
        model = BaselineClassifier(replace(config, C=C)).fit(X_train, y_train).calibrate(X_val, y_val)
        if best is None or model.calibration_["nll_after"] < best.calibration_["nll_after"]:
            best = model
    best._encoder = encoder
    return best


def evaluate_baseline(
    model: BaselineClassifier, rows: Sequence[BaselineRow], kinds: Sequence[str] | None = None, progress: bool = False
) -> dict:
    """metrics.evaluation_report of the model on labelled rows (plus mean entropy, in nats)."""
    X = featurize_rows(rows, model.encoder, progress=progress)
    probs = model.predict_proba(X)  # (N, K)
    report = evaluation_report([row[3] for row in rows], probs, kinds=kinds, label_names=model.config.labels)
    report["mean_entropy_nats"] = float(np.mean(entropy(probs))) if len(rows) else None
    return report
