"""Retraining from reviewer labels, and the gate that decides whether the new models go live.

    do_request_training_run -> [gpu queue] run_training:
        each reviewed video's label (its latest review) -> gold set or training, by group of
            near-duplicates: the audit sample, and a content hash's fixed quarter
        -> its features: the stored transcript and on-screen text, a fresh decode
        -> baseline refit on the rows its predecessor learned from + the reviewed training videos
        -> MLLM: the active LoRA adapter (and head) fine-tuned on the reviewed training videos
        -> active and new models decide the gold set with the configuration's bands
           -> per model kind, promote only if the paired difference clears the margin
        -> after a promotion, the pair in service as a cascade against stage 1 alone on the same
           videos: stage 2 decides routed videos, or stays on trial (CascadeConfig.stage2_decides)
        -> a promoted baseline re-scores recent videos: the threshold that meets the MLLM budget
        -> one new cascade configuration version with the promoted models

Gold videos never train anything. Re-encodes of one video (other bytes, the same pictures) are
grouped by the perceptual hashes of their stored frames, and a group goes to the gold set whole,
so a copy of a gold video never trains the candidate it judges. The audit sample (drawn
without regard to the model's confidence) always goes to gold; the review band, which the
incumbent chose, only by a fixed hash share. A run that fails anywhere changes nothing that is
active, and its candidates end rejected.
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
from dataclasses import asdict, dataclass, replace
from datetime import datetime, timedelta
from pathlib import Path
from typing import Callable

import numpy as np
from django.conf import settings
from django.db import IntegrityError, transaction
from django.db.models import Q
from django.utils import timezone

import imagehash
from PIL import Image
from scipy.sparse import coo_matrix
from scipy.sparse.csgraph import connected_components

from inference.baseline import BaselineClassifier, featurize_rows
from inference.cascade import DecisionBands, flagged, shannon_entropy, threshold_for_budget, violation_probability
from inference.metrics import band_report, evaluation_report, paired_f1_difference
from inference.llm import CONFIG_FILE, LLM_LORA_LR, LLMConfig, stage2_config_from_dict, stage2_probabilities
from inference.train_mllm import TrainConfig, TrainResult, train_mllm
from inference.training_set import TrainingSet, load_training_set, save_training_set
from inference.types import MediaError, VideoFeatures

from . import benchmark, evidence, live, pipeline, scoring
from .actions.audit import record_audit
from .actions.enqueue import send_task
from .actions.model_registry import do_activate_models, do_register_model, do_set_reference_entropies
from .actions.validation import ActionError
from .models import CascadeConfig, ModelVersion, Policy, Prediction, Review, ReviewTask, TrainingRun, Video

log = logging.getLogger(__name__)

Status = TrainingRun.Status
UNFINISHED = (Status.QUEUED, Status.RUNNING)
# Never change the shares or salts: that would move videos between the gold set and training.
GOLD_SHARE, GOLD_SALT = 0.25, "coefvq-gold-v1"
# Of the training videos, this share (also by hash) sets the baseline's temperature and picks the
# MLLM's best epoch.
VALIDATION_SHARE, VALIDATION_SALT = 0.2, "coefvq-validation-v1"
# Two videos whose stored frames differ by at most this many of pHash's 64 bits (the median over
# frames taken at the same points of the video) are copies of one video. Measured on rendered
# clips: a re-encode to VP9, or to half size at a high CRF, differs by 2-8 bits; different clips,
# even the same background with other on-screen text, by 12 or more.
NEAR_DUPLICATE_BITS = 8
# The gate's confidence that the candidate's F1 beats the active one's by the margin.
GATE_CONFIDENCE = 0.95
# Benchmark examples an MLLM fine-tune replays per reviewed video it learns from: a few dozen new
# labels must not make it forget what the benchmark taught (the baseline keeps all its rows; the
# MLLM's pass over all of them would cost as much as the first fine-tune every time).
MLLM_REPLAY_PER_VIDEO = 1
# Videos per LoRA step of the LLM classifier: each step also recomputes the prompt's prefix.
LLM_BATCH_SIZE = 4


def _hash_share(sha256: str, salt: str) -> float:
    """A fixed number in [0, 1) for the video's content."""
    digest = hashlib.sha256(f"{salt}:{sha256}".encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2**64


def is_gold(sha256: str) -> bool:
    return _hash_share(sha256, GOLD_SALT) < GOLD_SHARE


def is_validation(sha256: str) -> bool:
    return _hash_share(sha256, VALIDATION_SALT) < VALIDATION_SHARE


def frame_hashes(video: Video) -> np.ndarray:
    """(F,) uint64: the perceptual hash (pHash) of each stored frame, in time order."""
    hashes = []
    for frame in sorted(video.frames.all(), key=lambda frame: frame.index):
        with frame.image.open("rb") as stream, Image.open(stream) as image:
            hashes.append(int(str(imagehash.phash(image)), 16))
    return np.array(hashes, dtype=np.uint64)


def near_duplicate_groups(sha256s: list[str], hashes: list[np.ndarray]) -> np.ndarray:
    """(N,) group number per video: the same bytes, or frames within NEAR_DUPLICATE_BITS of each
    other (median over the frames; only videos with as many stored frames are compared), and
    whatever is linked through a chain of such pairs."""
    n = len(sha256s)
    rows, cols = [], []
    first_of = {}
    for i, sha256 in enumerate(sha256s):
        rows.append(first_of.setdefault(sha256, i))
        cols.append(i)
    by_length: dict[int, list[int]] = {}
    for i, video_hashes in enumerate(hashes):
        if len(video_hashes):
            by_length.setdefault(len(video_hashes), []).append(i)
    for members in by_length.values():
        stacked = np.stack([hashes[i] for i in members])  # (M, F)
        for position, i in enumerate(members[:-1]):
            bits = np.bitwise_count(stacked[position] ^ stacked[position + 1:])  # (M - position - 1, F)
            close = np.flatnonzero(np.median(bits, axis=1) <= NEAR_DUPLICATE_BITS) + position + 1
            rows.extend([i] * len(close))
            cols.extend(members[j] for j in close)
    graph = coo_matrix((np.ones(len(rows)), (rows, cols)), shape=(n, n))
    return connected_components(graph, directed=False)[1]


def split_gold(examples: list[Example]) -> tuple[list[Example], list[Example]]:
    """(gold, training). A group of near-duplicates is gold when any of its videos is an audit
    sample or falls in the fixed hash share: a video once gold stays gold as copies of it arrive."""
    groups = near_duplicate_groups([e.sha256 for e in examples], [e.frame_hashes for e in examples])
    gold_groups = {group for e, group in zip(examples, groups) if e.audited or is_gold(e.sha256)}
    gold = [e for e, group in zip(examples, groups) if group in gold_groups]
    return gold, [e for e, group in zip(examples, groups) if group not in gold_groups]


def split_validation(train: list[Example]) -> tuple[list[Example], list[Example]]:
    """(fit, validation), keeping copies of one video on one side."""
    groups = near_duplicate_groups([e.sha256 for e in train], [e.frame_hashes for e in train])
    representative = {}
    for e, group in zip(train, groups):
        representative[group] = min(representative.get(group, e.sha256), e.sha256)
    held = [is_validation(representative[group]) for group in groups]
    return ([e for e, h in zip(train, held) if not h], [e for e, h in zip(train, held) if h])


# --- labels ------------------------------------------------------------------------------------


def last_labels_until(policy: Policy) -> datetime | None:
    """Where the last finished run's labels ended. A failed run's labels are still new."""
    return (TrainingRun.objects.filter(policy=policy, status__in=[Status.PROMOTED, Status.REFUSED])
            .order_by("-labels_until").values_list("labels_until", flat=True).first())


def new_label_count(policy: Policy, since: datetime | None, until: datetime | None = None) -> int:
    reviews = Review.objects.filter(video__policy=policy)
    if since is not None:
        reviews = reviews.filter(created_at__gt=since)
    if until is not None:
        reviews = reviews.filter(created_at__lte=until)
    return reviews.count()


def latest_reviews(policy: Policy, until: datetime) -> dict[int, tuple[str, str]]:
    """video id -> (label, caption) of its latest review up to `until` (a correction is a newer
    review): the caption the reviewer judged, not the video's caption now."""
    reviews = (Review.objects.filter(video__policy=policy, created_at__lte=until)
               .order_by("created_at", "id").values_list("video_id", "label", "caption"))
    return {video_id: (label, caption) for video_id, label, caption in reviews.iterator()}


# --- requesting a run --------------------------------------------------------------------------


def check_can_retrain(policy: Policy) -> CascadeConfig:
    config = scoring.active_config(policy.pk)
    if config is None or config.baseline_version is None:
        raise ActionError(f"{policy} has no active baseline to retrain; put first models in service with "
                          "`manage.py train all --activate`.", code="no_active_models")
    return config


def do_request_training_run(policy: Policy, *, trigger: str, requested_by=None, enqueue: bool = True,
                            source: dict | None = None) -> TrainingRun:
    """Queue a retraining of the policy's models (it runs on the gpu queue). ActionError (409) when
    a run of the policy is already queued or running: two at once would race to promote.

    trigger "benchmark" is the first run's LoRA fine-tune of the active MLLM on the synthetic
    benchmark (`source`: moderation.benchmark.finetune_source), gated on its test split."""
    if trigger not in TrainingRun.Trigger.values:
        raise ActionError(f"Unknown trigger {trigger!r}.", code="unknown_trigger")
    config = check_can_retrain(policy)
    if trigger == TrainingRun.Trigger.BENCHMARK:
        if source is None:
            raise ActionError("A benchmark fine-tune needs the benchmark it learns from.", code="no_benchmark")
        if config.mllm_version is None:
            raise ActionError(f"{policy} has no active MLLM to fine-tune.", code="no_active_mllm")
    user = requested_by if requested_by is not None and requested_by.is_authenticated else None
    try:
        with transaction.atomic():
            run = TrainingRun.objects.create(policy=policy, trigger=trigger, requested_by=user, benchmark=source or {})
            record_audit(user, "training_run.requested", run, f"Retraining of {policy} requested ({trigger}).",
                         trigger=trigger)
    except IntegrityError:
        unfinished = TrainingRun.objects.filter(policy=policy, status__in=UNFINISHED).first()
        which = f"#{unfinished.pk} is {unfinished.get_status_display().lower()}" if unfinished else "is unfinished"
        raise ActionError(f"A training run of {policy} {which}; wait for it to finish.",
                          code="training_run_unfinished", status=409) from None
    log.info("Training run %s of %s requested (%s)", run.pk, policy.slug, trigger)
    transaction.on_commit(lambda: live.training_progress(run.pk, status=run.status, progress=0.0, step=""))
    if enqueue:
        transaction.on_commit(lambda: enqueue_training(run.pk))
    return run


def enqueue_training(run_id: int) -> None:
    send_task("run_training", run_id, retried_by="maybe_retrain")


def maybe_retrain() -> list[TrainingRun]:
    """The schedule: nudge runs whose message was lost or whose worker died, then request a run for
    each policy with at least `retrain_min_labels` new reviewer labels and no unfinished run."""
    _nudge_stalled_runs()
    requested = []
    for config in CascadeConfig.objects.filter(is_active=True, baseline_version__isnull=False).select_related("policy"):
        policy = config.policy
        if TrainingRun.objects.filter(policy=policy, status__in=UNFINISHED).exists():
            continue
        if new_label_count(policy, last_labels_until(policy)) < config.retrain_min_labels:
            continue
        try:
            requested.append(do_request_training_run(policy, trigger=TrainingRun.Trigger.SCHEDULE))
        except ActionError:
            continue  # someone pressed the button in between
    return requested


def _stale_before() -> datetime:
    return timezone.now() - timedelta(seconds=settings.COEFVQ_TRAINING_STALE_S)


def _nudge_stalled_runs() -> None:
    stale = _stale_before()
    stalled = TrainingRun.objects.filter(Q(status=Status.QUEUED, created_at__lt=stale)
                                         | Q(status=Status.RUNNING, heartbeat_at__lt=stale))
    for run_id in stalled.values_list("pk", flat=True):
        log.warning("Training run %s has not moved since %s; enqueueing it again", run_id, stale)
        enqueue_training(run_id)


# --- running it --------------------------------------------------------------------------------


class RunTakenOver(Exception):
    """Another worker started the run over (this one was silent too long and presumed dead)."""


@dataclass(frozen=True)
class Attempt:
    """This worker's go at a run. `started_at` is its token: a takeover sets a new one."""

    run_id: int
    started_at: datetime
    on_progress: Callable[[float, str], None] | None = None

    def rows(self):
        return TrainingRun.objects.filter(pk=self.run_id, status=Status.RUNNING, started_at=self.started_at)

    def step(self, progress: float, step: str, **fields) -> None:
        """Say what the run does now; committed at once, so the admin page can poll it."""
        if not self.rows().update(progress=progress, step=step[:200], heartbeat_at=timezone.now(), **fields):
            raise RunTakenOver(self.run_id)
        live.training_progress(self.run_id, status=Status.RUNNING, progress=progress, step=step)
        if self.on_progress is not None:
            self.on_progress(progress, step)


@dataclass(frozen=True)
class Example:
    video_id: int
    sha256: str
    label: str
    features: VideoFeatures
    audited: bool  # reviewed as an audit sample, drawn without regard to the model's confidence
    frame_hashes: np.ndarray  # (F,) uint64, frame_hashes()


@dataclass(frozen=True)
class Comparison:
    """The active and the candidate model deciding the same held-out videos with the product's
    rule (the configuration's bands: flagged = actioned or sent to a reviewer)."""

    what: str  # "gold F1", "cascade F1 at the budget"
    active_f1: float
    candidate_f1: float
    lower_bound: float  # of candidate - active, one-sided at GATE_CONFIDENCE (paired bootstrap)

    def passes(self, margin: float) -> bool:
        return self.lower_bound >= margin

    def phrase(self) -> str:
        return (f"{self.what} {self.candidate_f1:.3f} against {self.active_f1:.3f} for the active one "
                f"({self.candidate_f1 - self.active_f1:+.3f}, {GATE_CONFIDENCE:.0%} lower bound {self.lower_bound:+.3f})")


@dataclass(frozen=True)
class Verdict:
    """The gate for one model kind: with GATE_CONFIDENCE, the candidate beats the active one by
    the margin on every comparison."""

    kind: str
    comparisons: tuple[Comparison, ...]
    margin: float

    @property
    def promoted(self) -> bool:
        return all(comparison.passes(self.margin) for comparison in self.comparisons)

    def sentence(self) -> str:
        name = {"baseline": "Baseline", "mllm": "MLLM"}[self.kind]
        numbers = "; ".join(comparison.phrase() for comparison in self.comparisons)
        if self.promoted:
            return f"{name}: {numbers}; margin {self.margin:+.3f}: promoted."
        return f"{name}: {numbers}; short of the margin {self.margin:+.3f}: kept the active one."


def compare(what: str, y_violating: np.ndarray, active_p: np.ndarray, candidate_p: np.ndarray, bands: DecisionBands,
            seed: int) -> Comparison:
    """Paired comparison of two models' P(violation) on the same videos, decided with `bands`."""
    active_flags, candidate_flags = flagged(active_p, bands), flagged(candidate_p, bands)
    difference, low = paired_f1_difference(y_violating, active_flags, candidate_flags, confidence=GATE_CONFIDENCE,
                                           seed=seed)
    active_f1 = band_report(y_violating, active_p, bands)["f1"]
    return Comparison(what, active_f1, active_f1 + difference, low)


def run_training(run_id: int, on_progress: Callable[[float, str], None] | None = None) -> TrainingRun | None:
    """Carry out a queued run. A finished run, or one another worker is on, is left alone; a run
    whose worker went silent for COEFVQ_TRAINING_STALE_S is started over. Returns the run."""
    attempt = _start(run_id, on_progress)
    if attempt is not None:
        try:
            _train_evaluate_and_gate(attempt)
        except RunTakenOver:
            log.warning("Training run %s was taken over by another worker; this one stops", run_id)
        except Exception as error:  # noqa: BLE001 - any failure ends the run failed, with its reason
            log.exception("Training run %s failed", run_id)
            _fail(attempt, error)
    return TrainingRun.objects.filter(pk=run_id).first()


def _start(run_id: int, on_progress) -> Attempt | None:
    now = timezone.now()
    startable = Q(status=Status.QUEUED) | Q(status=Status.RUNNING, heartbeat_at__lt=_stale_before())
    started = TrainingRun.objects.filter(startable, pk=run_id).update(
        status=Status.RUNNING, started_at=now, heartbeat_at=now, progress=0.0, step="Starting", error="")
    return Attempt(run_id, now, on_progress) if started else None


def _train_evaluate_and_gate(attempt: Attempt) -> None:
    run = TrainingRun.objects.select_related("policy").get(pk=attempt.run_id)
    config = check_can_retrain(run.policy)
    if run.trigger == TrainingRun.Trigger.BENCHMARK:
        _finetune_on_benchmark(attempt, run, config)
        return
    gold, train, unreadable = _collect_examples(attempt, run)
    minimum = settings.COEFVQ_RETRAIN_MIN_GOLD
    if len(gold) < minimum:
        _finish(attempt, config, {}, {}, notes=[
            f"Nothing trained: the gold set has {len(gold)} reviewed videos and the gate needs at least "
            f"{minimum} to compare models on. More reviews add to it."], metrics={})
        return
    models, training_notes = _train_candidates(attempt, run, config, train)
    reports, verdicts, scored = _evaluate_on_gold(attempt, run, config, gold, models)
    candidates = _register_candidates(attempt, run, models, reports, training_notes)
    violating = sum(e.label in run.policy.violating_labels for e in gold)
    notes = [verdict.sentence() for verdict in verdicts.values()]
    routing = None
    if "mllm" in scored and any(verdict.promoted for verdict in verdicts.values()):
        # The pair that will be in service after this run.
        kept = {kind: "candidate" if verdict.promoted else "active" for kind, verdict in verdicts.items()}
        routing = judge_stage2_routing([e.label for e in gold], scored["baseline"][kept["baseline"]],
                                       scored["mllm"][kept["mllm"]], config, tuple(run.policy.violating_labels),
                                       seed=run.pk)
        notes.append(routing.sentence())
    notes.append(f"Gold set: {len(gold)} reviewed videos ({violating} violating, {sum(e.audited for e in gold)} "
                 f"from the audit sample), never trained on, near-duplicates kept together. "
                 f"Trained on {len(train)} reviewed videos and {training_notes['baseline']['inherited_rows']} "
                 "examples the active baseline learned from.")
    if "mllm" in training_notes:
        notes.append(f"The MLLM also replayed {training_notes['mllm']['replayed_examples']} benchmark examples it "
                     "had learned from.")
        notes.extend(training_notes["mllm"]["replay_missing"])
    if unreadable:
        notes.append(f"{len(unreadable)} reviewed videos no longer decode and were left out (ids "
                     f"{', '.join(map(str, unreadable[:10]))}).")
    promoted = {kind: candidates[kind] for kind, verdict in verdicts.items() if verdict.promoted}
    _finish(attempt, config, candidates, promoted, notes=notes,
            metrics={kind: {**report, "training": training_notes[kind]} for kind, report in reports.items()},
            routing=routing)


def _collect_examples(attempt: Attempt, run: TrainingRun) -> tuple[list[Example], list[Example], list[int]]:
    """(gold, training, unreadable video ids): every reviewed video with its latest label and features."""
    # A run started over keeps the window it first took.
    until = run.labels_until or timezone.now()
    since = run.labels_since if run.labels_until else last_labels_until(run.policy)
    labels = latest_reviews(run.policy, until)
    attempt.step(0.02, f"Reading {len(labels)} reviewed videos", labels_since=since, labels_until=until,
                 new_labels=new_label_count(run.policy, since, until))
    audited = set(ReviewTask.objects.filter(video_id__in=list(labels), reason=ReviewTask.Reason.AUDIT)
                  .values_list("video_id", flat=True))
    examples, unreadable = [], []
    videos = Video.objects.filter(pk__in=list(labels)).select_related("media").prefetch_related("transcript", "ocr_lines", "frames").order_by("pk")
    for done, video in enumerate(videos.iterator(chunk_size=50), start=1):
        features = _features(video)
        if features is None:
            unreadable.append(video.pk)
        else:
            label, caption = labels[video.pk]
            examples.append(Example(video.pk, video.sha256, label, replace(features, caption=caption), video.pk in audited,
                                    frame_hashes(video)))
        attempt.step(0.02 + 0.28 * done / len(labels), f"Read reviewed video {done} of {len(labels)}")
    gold, train = split_gold(examples)
    attempt.step(0.3, f"{len(train)} training and {len(gold)} gold videos", train_examples=len(train),
                 gold_examples=len(gold))
    return gold, train, unreadable


def _features(video: Video) -> VideoFeatures | None:
    """What both models read, from the stored evidence; None when it is incomplete and the file
    no longer decodes (the video itself is left as it is: it was decided long ago)."""
    if not evidence.has_evidence(video):
        log.warning("Reviewed video %s left out of training: it has no stored evidence", video.pk)
        return None
    try:
        pipeline.backfill_evidence(video)
    except MediaError as error:
        log.warning("Reviewed video %s left out of training: %s", video.pk, error.reason)
        return None
    return evidence.load_features(video)


def _train_candidates(attempt: Attempt, run: TrainingRun, config: CascadeConfig,
                      train: list[Example]) -> tuple[dict[str, object], dict[str, dict]]:
    """The new models (kind -> model, saved in their folders) and what each learned from."""
    fit, validation = split_validation(train)
    attempt.step(0.32, "Training the baseline")
    baseline, baseline_notes = _retrain_baseline(config, fit, validation, _folder(run, attempt, "baseline"))
    models, notes = {"baseline": baseline}, {"baseline": baseline_notes}
    if config.mllm_version is not None:
        attempt.step(0.36, "Reading the benchmark examples the MLLM replays")
        sources = benchmark.replay_sources(scoring.artifact_dir(config.mllm_version))
        replay, missing = benchmark.replay_examples(sources, MLLM_REPLAY_PER_VIDEO * len(fit), seed=run.pk)
        attempt.step(0.4, f"Fine-tuning the MLLM on {len(train)} videos and {len(replay)} replayed examples")
        folder = _folder(run, attempt, "mllm")
        result = _finetune_mllm(config, [(e.features, e.label) for e in fit] + replay,
                                [(e.features, e.label) for e in validation], folder,
                                epochs=settings.COEFVQ_RETRAIN_MLLM_EPOCHS,
                                on_step=_step_reporter(attempt, 0.4, 0.75, "LoRA step"))
        benchmark.save_replay_sources(folder, sources)
        models["mllm"] = result.model
        notes["mllm"] = {"fit_videos": len(fit), "validation_videos": len(validation), "replayed_examples": len(replay),
                         "replay_missing": missing, "epochs": len(result.history), "best_epoch": result.best_epoch,
                         "steps": result.steps, "best_val_macro_f1": _finite_or_none(result.best_val_macro_f1)}
    return models, notes


def _folder(run: TrainingRun, attempt: Attempt, kind: str) -> Path:
    return Path(settings.COEFVQ_MODEL_DIR) / kind / _version_name(run, attempt, kind)


def _version_name(run: TrainingRun, attempt: Attempt, kind: str) -> str:
    return f"{kind}-run{run.pk}-{attempt.started_at:%Y%m%d-%H%M%S}"


def _retrain_baseline(config: CascadeConfig, fit: list[Example], validation: list[Example],
                      folder: Path) -> tuple[BaselineClassifier, dict]:
    """Refit with the active baseline's settings on its inherited rows plus the reviewed videos;
    the temperatures come from the held-out reviewed videos (the fitted ones when there are none).
    No prior shift: reviewed videos are the ones the machines could not settle, not a sample of
    the traffic, so their share of violations would move the prior the wrong way."""
    active = scoring.load_baseline(config.baseline_version_id)
    fit_rows = _reviewed_rows(active, fit)
    validation_rows = _reviewed_rows(active, validation)
    stored = load_training_set(scoring.artifact_dir(config.baseline_version))
    inherited = stored.inherited() if stored is not None else TrainingSet.empty(fit_rows.X.shape[1])
    learned_from = inherited + fit_rows
    calibration = validation_rows if len(validation_rows) else learned_from
    model = BaselineClassifier(active.config).fit(learned_from.X, learned_from.y)
    model.calibrate(calibration.X, calibration.y, shift_prior=False)
    model.save(folder)
    save_training_set(folder, inherited + fit_rows + validation_rows)
    return model, {"inherited_rows": len(inherited), "fit_videos": len(fit), "validation_videos": len(validation),
                   "temperature": float(model.temperature_)}


def _reviewed_rows(baseline: BaselineClassifier, examples: list[Example]) -> TrainingSet:
    X = featurize_rows([e.features for e in examples], baseline.encoder,
                       prior_config=baseline.config.policy_prior)  # (N, D)
    return TrainingSet(X, np.array([e.label for e in examples], dtype=str),
                       np.array([e.video_id for e in examples], dtype=np.int64))


def _finetune_mllm(config: CascadeConfig, fit: list[tuple[VideoFeatures, str]],
                   validation: list[tuple[VideoFeatures, str]], folder: Path, *, epochs: int,
                   on_step: Callable[[int, int], None] | None = None) -> TrainResult:
    """LoRA fine-tuning that starts from the active stage-2 model's adapter and trained modules."""
    active_dir = scoring.artifact_dir(config.mllm_version)
    saved = stage2_config_from_dict(json.loads((active_dir / CONFIG_FILE).read_text()))
    where = {"audio_checkpoint": str(settings.COEFVQ_WHISPER_CHECKPOINT)}
    is_llm = isinstance(saved, LLMConfig)
    if is_llm:
        where["backbone_path"] = str(settings.COEFVQ_LLM_PATH)
    train_config = (TrainConfig(epochs=epochs, batch_size=LLM_BATCH_SIZE, lr=LLM_LORA_LR) if is_llm
                    else TrainConfig(epochs=epochs))
    return train_mllm(fit, validation, replace(saved, **where), train_config, out_dir=folder, progress=False,
                      init_from=active_dir, on_step=on_step)


def _step_reporter(attempt: Attempt, start: float, end: float, what: str) -> Callable[[int, int], None]:
    """A train_mllm on_step that moves the run's progress from start to end (and its heartbeat,
    so a long fine-tune is not taken for a dead worker)."""
    def report(done: int, total: int) -> None:
        attempt.step(start + (end - start) * done / max(1, total), f"{what} {done} of {total}")

    return report


def _finetune_on_benchmark(attempt: Attempt, run: TrainingRun, config: CascadeConfig) -> None:
    """The first run's fine-tune: the active MLLM's LoRA on the benchmark's training videos and
    text-only examples, gated like any run on videos it never trained on (the test split)."""
    attempt.step(0.02, "Reading the benchmark")
    splits, text_only = benchmark.finetune_data(run.benchmark)
    fit = [(f, row["label"]) for row, f in splits["train"] + text_only]
    validation = [(f, row["label"]) for row, f in splits["val"]]
    held_out_text = benchmark.gate_text_items(run.benchmark)
    test = splits["test"] + held_out_text
    attempt.step(0.05, f"{len(fit)} training examples ({len(text_only)} text-only), {len(test)} held-out examples",
                 train_examples=len(fit), gold_examples=len(test))
    folder = _folder(run, attempt, "mllm")
    result = _finetune_mllm(config, fit, validation, folder, epochs=1,
                            on_step=_step_reporter(attempt, 0.05, 0.75, "LoRA step"))
    # What it learned from, for the fine-tunes on reviewer labels to replay.
    benchmark.save_replay_sources(folder, benchmark.replay_sources(scoring.artifact_dir(config.mllm_version))
                                  + [run.benchmark])
    attempt.step(0.75, f"Evaluating on {len(test)} held-out examples")
    labels = [row["label"] for row, _ in test]
    stage2 = _stage2_scored(config, result.model, [f for _, f in test])
    reports, verdicts = _judge(run, config, labels, {"mllm": stage2})
    verdict = verdicts["mllm"]
    # Stage 1 can only judge routing on the rendered videos: the text-only items have no frames
    # or sound for it to read.
    videos, routing = len(splits["test"]), None
    if verdict.promoted:
        routing = judge_stage2_routing(labels[:videos], baseline_scored(config.baseline_version_id,
                                                                         [f for _, f in splits["test"]]),
                                       stage2["candidate"].first(videos), config, tuple(run.policy.violating_labels),
                                       seed=run.pk)
    training = {"mllm": {"benchmark": run.benchmark, "fit_examples": len(fit), "validation_videos": len(validation),
                         "steps": result.steps, "best_val_macro_f1": _finite_or_none(result.best_val_macro_f1),
                         "seconds": round(sum(e.seconds for e in result.history), 1)}}
    candidates = _register_candidates(attempt, run, {"mllm": result.model}, reports, training)
    notes = [verdict.sentence(),
             f"Held-out set, never trained on: the benchmark's {len(splits['test'])} test videos and "
             f"{len(held_out_text)} text-only items in held-out phrasings. Trained on {len(fit)} "
             f"examples ({len(splits['train'])} rendered videos, {len(text_only)} text-only) in {result.steps} steps."]
    if routing is not None:
        notes.append(routing.sentence())
    _finish(attempt, config, candidates, {"mllm": candidates["mllm"]} if verdict.promoted else {}, notes=notes,
            metrics={"mllm": {**reports["mllm"], "training": training["mllm"]}}, routing=routing)


@dataclass(frozen=True)
class Scored:
    """One model's class probabilities on the held-out videos."""

    probabilities: np.ndarray  # (N, K)
    label_names: tuple[str, ...]

    def p_violation(self, violating: tuple[str, ...]) -> np.ndarray:
        return violation_probability(self.probabilities, self.label_names, violating)  # (N,)

    def labels(self) -> np.ndarray:
        """(N,) the most probable label of each video."""
        return np.asarray(self.label_names)[self.probabilities.argmax(axis=1)]

    def first(self, n: int) -> "Scored":
        return Scored(self.probabilities[:n], self.label_names)


def _evaluate_on_gold(attempt: Attempt, run: TrainingRun, config: CascadeConfig, gold: list[Example],
                      models: dict[str, object],
                      ) -> tuple[dict[str, dict], dict[str, Verdict], dict[str, dict[str, Scored]]]:
    """(kind -> {"active": report, "candidate": report, "gate": comparisons}, kind -> the gate's
    verdict, kind -> {"active": Scored, "candidate": Scored} on the gold videos)."""
    attempt.step(0.75, f"Evaluating on {len(gold)} gold videos")
    active_baseline = scoring.load_baseline(config.baseline_version_id)
    # Both models were trained with the active model's prior prototypes (a retrain inherits them).
    X = featurize_rows([e.features for e in gold], active_baseline.encoder,
                       prior_config=active_baseline.config.policy_prior)  # (N, D)
    label_names = tuple(active_baseline.config.labels)
    scored = {"baseline": {"active": Scored(active_baseline.predict_proba(X), label_names),
                           "candidate": Scored(models["baseline"].predict_proba(X), label_names)}}
    if "mllm" in models:
        scored["mllm"] = _stage2_scored(config, models["mllm"], [e.features for e in gold])
    return *_judge(run, config, [e.label for e in gold], scored), scored


def baseline_scored(version_id: int, features: list[VideoFeatures]) -> Scored:
    """A registered baseline on held-out videos."""
    baseline = scoring.load_baseline(version_id)
    X = featurize_rows(features, baseline.encoder, prior_config=baseline.config.policy_prior)  # (N, D)
    return Scored(baseline.predict_proba(X), tuple(baseline.config.labels))


def _stage2_scored(config: CascadeConfig, candidate, features: list[VideoFeatures]) -> dict[str, Scored]:
    """The active and the new stage-2 model on held-out videos, both in float: the gate judges the
    models, not a worker's int8 serving (COEFVQ_STAGE2_CPU_INT8) of one of them."""
    active = scoring.load_mllm(config.mllm_version_id, cpu_int8=False)
    return {name: Scored(stage2_probabilities(model, features), tuple(model.labels))
            for name, model in (("active", active), ("candidate", candidate))}


def _judge(run: TrainingRun, config: CascadeConfig, labels: list[str],
           scored: dict[str, dict[str, Scored]]) -> tuple[dict[str, dict], dict[str, Verdict]]:
    """Each kind's reports and verdict: the models decide the held-out videos with the
    configuration's bands, as the product would. A baseline is also judged as the first stage of
    the cascade (the active MLLM on what it routes, at the configured budget or threshold)."""
    violating = tuple(run.policy.violating_labels)
    y = np.array([label in violating for label in labels], dtype=bool)  # (N,)
    bands = DecisionBands(config.allow_below, config.action_above)
    reports, verdicts = {}, {}
    for kind, pair in scored.items():
        p = {side: model.p_violation(violating) for side, model in pair.items()}
        comparisons = [compare("gold F1", y, p["active"], p["candidate"], bands, seed=run.pk)]
        if kind == "baseline" and "mllm" in scored:
            stage2 = scored["mllm"]["active"].p_violation(violating)
            routing = "threshold" if config.entropy_threshold is not None else "budget"
            comparisons.append(compare(f"cascade F1 at the {routing}", y, _cascade(pair["active"], stage2, config, violating),
                                       _cascade(pair["candidate"], stage2, config, violating), bands, seed=run.pk))
        reports[kind] = {
            side: {**evaluation_report(labels, model.probabilities, label_names=model.label_names),
                   "decisions": band_report(y, p[side], bands)}
            for side, model in pair.items()
        }
        reports[kind]["gate"] = [asdict(comparison) for comparison in comparisons]
        verdicts[kind] = Verdict(kind, tuple(comparisons), config.promotion_margin)
    return reports, verdicts


def _routed(baseline: Scored, config: CascadeConfig) -> np.ndarray:
    """(N,) bool: where the baseline's entropy reaches the configured threshold, or the budget's
    threshold on these videos."""
    entropies = shannon_entropy(baseline.probabilities)  # (N,)
    threshold = (config.entropy_threshold if config.entropy_threshold is not None
                 else threshold_for_budget(entropies, config.mllm_budget))
    return entropies >= threshold


def _cascade(baseline: Scored, stage2_p: np.ndarray, config: CascadeConfig, violating: tuple[str, ...]) -> np.ndarray:
    """(N,) P(violation) of the cascade with this baseline routing: the stage-2 model's where it routes."""
    return np.where(_routed(baseline, config), stage2_p, baseline.p_violation(violating))


@dataclass(frozen=True)
class RoutingJudgment:
    """Stage 1 deciding every held-out video alone, against the cascade where stage 2 decides what
    stage 1 routes at the configuration's threshold or budget: the decisions (F1 with the bands,
    `decisions.active_f1` is stage 1's) and the labels (exact accuracy)."""

    videos: int
    routed: int
    decisions: Comparison
    stage1_accuracy: float
    cascade_accuracy: float

    @property
    def stage2_decides(self) -> bool:
        """Not worse on anything the product outputs. Point estimates, not bounds: a held-out set
        routes few videos, so a bound would rarely clear zero, and a tie costs nothing."""
        return (self.decisions.candidate_f1 >= self.decisions.active_f1
                and self.cascade_accuracy >= self.stage1_accuracy)

    def sentence(self) -> str:
        verdict = ("stage 2 decides the videos routed to it" if self.stage2_decides else
                   "stage 2 is on trial: it writes its explanation of each routed video, stage 1's verdict stands "
                   "and a reviewer decides")
        d = self.decisions
        return (f"Routing, on {self.videos} held-out videos ({self.routed} routed): the cascade's decisions F1 "
                f"{d.candidate_f1:.3f} against {d.active_f1:.3f} for stage 1 alone, its labels' accuracy "
                f"{self.cascade_accuracy:.3f} against {self.stage1_accuracy:.3f}, so {verdict}.")

    def as_dict(self) -> dict:
        return {**asdict(self), "stage2_decides": self.stage2_decides}


def judge_stage2_routing(labels: list[str], stage1: Scored, stage2: Scored, config: CascadeConfig,
                         violating: tuple[str, ...], seed: int) -> RoutingJudgment:
    """Should this stage 2 decide the videos this stage 1 routes? (RoutingJudgment)"""
    y = np.array([label in violating for label in labels], dtype=bool)  # (N,)
    bands = DecisionBands(config.allow_below, config.action_above)
    routed = _routed(stage1, config)  # (N,)
    cascade = _cascade(stage1, stage2.p_violation(violating), config, violating)  # (N,)
    stage1_labels = stage1.labels()  # (N,)
    cascade_labels = np.where(routed, stage2.labels(), stage1_labels)  # (N,)
    truth = np.asarray(labels)  # (N,)
    return RoutingJudgment(
        videos=len(labels), routed=int(routed.sum()),
        decisions=compare("cascade F1 against stage 1 alone", y, stage1.p_violation(violating), cascade, bands,
                          seed=seed),
        stage1_accuracy=float((stage1_labels == truth).mean()),
        cascade_accuracy=float((cascade_labels == truth).mean()))


def _register_candidates(attempt: Attempt, run: TrainingRun, models: dict[str, object], reports: dict[str, dict],
                         training_notes: dict[str, dict]) -> dict[str, ModelVersion]:
    attempt.step(0.8, "Registering the new versions")
    candidates = {}
    with transaction.atomic():
        for kind, model in models.items():
            folder = _folder(run, attempt, kind)
            model_config = ({"temperature": float(model.temperature_)} if kind == "baseline"
                            else model.config.to_dict())
            candidates[kind] = do_register_model(
                run.policy, kind=kind, version=folder.name, artifact_path=str(folder), config=model_config,
                metrics={"gold": reports[kind]["candidate"], "active_on_gold": reports[kind]["active"],
                         "training": training_notes[kind], "training_run": run.pk})
        attempt.step(0.82, "Registered the new versions", baseline_candidate=candidates.get("baseline"),
                     mllm_candidate=candidates.get("mllm"))
    return candidates


def _reference_entropies(attempt: Attempt, config: CascadeConfig,
                         baseline: BaselineClassifier) -> tuple[list[float], str]:
    """The new baseline's entropies on recent videos (its own differ from the old one's): the
    router's history for it until it has scored enough videos itself, and a sentence about it."""
    recent = list(Video.objects.filter(policy_id=config.policy_id, predictions__stage=Prediction.Stage.BASELINE)
                  .distinct().select_related("media").prefetch_related("transcript", "ocr_lines", "frames")
                  .order_by("-created_at")[:settings.COEFVQ_RETRAIN_CALIBRATION_VIDEOS])
    entropies = []
    for done, video in enumerate(recent, start=1):
        attempt.step(0.85 + 0.1 * done / len(recent), f"Re-scoring recent video {done} of {len(recent)}")
        features = _features(video)
        if features is not None:
            entropies.append(baseline.score(features).entropy)
    if config.mllm_budget is None:
        return entropies, f"The fixed entropy threshold {config.entropy_threshold:.3f} stays as an admin set it."
    if not entropies:
        return entropies, ("No recent video could be re-scored; the budget's threshold comes from the new baseline's "
                           "own entropies as it scores.")
    threshold = threshold_for_budget(entropies, config.mllm_budget)
    routed = float(np.mean(np.asarray(entropies) >= threshold))
    return entropies, (f"Threshold recalibrated on {len(entropies)} recent videos re-scored by the new baseline: "
                       f"{threshold:.3f} nats sends {routed:.1%} of them to the MLLM (budget {config.mllm_budget:.1%}).")


def _finish(attempt: Attempt, config: CascadeConfig, candidates: dict[str, ModelVersion],
            promoted: dict[str, ModelVersion], *, notes: list[str], metrics: dict,
            routing: RoutingJudgment | None = None) -> None:
    """Promote what passed the gate (one new configuration version, which takes `routing`'s word on
    whether stage 2 decides routed videos), reject the rest, end the run."""
    decides = routing.stage2_decides if routing is not None else config.stage2_decides
    if routing is not None:
        metrics = {**metrics, "routing": routing.as_dict()}
    entropies = None
    if "baseline" in promoted:
        entropies, sentence = _reference_entropies(attempt, config, scoring.load_baseline(promoted["baseline"].pk))
        notes.append(sentence)
    attempt.step(0.97, "Recording the decision")
    with transaction.atomic():
        if not attempt.rows().select_for_update().exists():
            raise RunTakenOver(attempt.run_id)
        if promoted and _active_models_changed(config):
            notes.append("Nothing promoted: the active models changed while this run trained, so the gate compared "
                         "against models no longer in service.")
            promoted = {}
        ModelVersion.objects.filter(pk__in=[c.pk for kind, c in candidates.items() if kind not in promoted]).update(
            status=ModelVersion.Status.REJECTED)
        if promoted:
            _activate(attempt, config, promoted, entropies, decides)
        status = Status.PROMOTED if promoted else Status.REFUSED
        now = timezone.now()
        attempt.rows().update(status=status, progress=1.0, step="Finished", decision="\n".join(notes),
                              metrics=metrics, finished_at=now, heartbeat_at=now)
        run = TrainingRun.objects.get(pk=attempt.run_id)
        record_audit(None, f"training_run.{status}", run, f"{run}: " + " ".join(notes),
                     promoted=[str(version) for version in promoted.values()])
    live.training_progress(attempt.run_id, status=status, progress=1.0, step="Finished")


def _active_models_changed(config: CascadeConfig) -> bool:
    now_active = CascadeConfig.objects.filter(policy_id=config.policy_id, is_active=True).values_list(
        "baseline_version_id", "mllm_version_id").first()
    return now_active != (config.baseline_version_id, config.mllm_version_id)


def _activate(attempt: Attempt, config: CascadeConfig, promoted: dict[str, ModelVersion],
              baseline_entropies: list[float] | None, stage2_decides: bool) -> None:
    run = TrainingRun.objects.select_related("requested_by").get(pk=attempt.run_id)
    names = " and ".join(str(version) for version in promoted.values())
    trial = "" if stage2_decides == config.stage2_decides else (
        "; stage 2 decides routed videos" if stage2_decides else "; stage 2 goes on trial")
    if baseline_entropies:
        do_set_reference_entropies(promoted["baseline"], baseline_entropies)
    do_activate_models(config.policy, actor=run.requested_by, note=f"Training run #{run.pk} promoted {names}{trial}.",
                       stage2_decides=stage2_decides, **promoted)


def _fail(attempt: Attempt, error: Exception) -> None:
    """End the run failed with the reason; its candidates are rejected, nothing active changes."""
    reason = error.message if isinstance(error, ActionError) else f"{type(error).__name__}: {error}"
    now = timezone.now()
    with transaction.atomic():
        run = attempt.rows().select_for_update().first()
        if run is None:
            return  # another worker took it over
        ModelVersion.objects.filter(pk__in=[run.baseline_candidate_id, run.mllm_candidate_id],
                                    status=ModelVersion.Status.CANDIDATE).update(status=ModelVersion.Status.REJECTED)
        attempt.rows().update(status=Status.FAILED, step="Failed", error=reason[:5000], finished_at=now,
                              heartbeat_at=now, decision="The run failed; the active models stay in service.")
    live.training_progress(attempt.run_id, status=Status.FAILED, progress=run.progress, step="Failed")


def _finite_or_none(value: float) -> float | None:
    return value if math.isfinite(value) else None
