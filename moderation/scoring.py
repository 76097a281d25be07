"""The cascade's steps: stage 1 on every video, the entropy router, stage 2 when routed, and the
decision rules. Like `pipeline`, each step takes an id, re-reads the row and is idempotent."""

from __future__ import annotations

import dataclasses
import logging
import time
from functools import lru_cache
from pathlib import Path

from django.conf import settings
from django.db import DatabaseError, IntegrityError, transaction

from inference.baseline import BaselineClassifier
from inference.cascade import (DecisionBands, audit_sample, route, shannon_entropy, threshold_for_budget,
                               violation_probability)
from inference.llm import available_device, load_stage2
from inference.types import MediaError

from . import evidence, pipeline
from .actions.enqueue import send_task
from .actions.review_queue import do_open_review
from .actions.video_state import do_hold, do_start_attempt, do_transition
from .models import CascadeConfig, ModelVersion, Prediction, ReviewTask, RoutingDecision, Video

log = logging.getLogger(__name__)

ROUTES = ("auto", "baseline", "mllm")
# Errors a retry of the whole task may cure (tasks.TRANSIENT_ERRORS retries them); every other
# error of a model is a model or configuration problem, which holds the video (do_hold).
PASSED_ON = (DatabaseError, ConnectionError, TimeoutError)


def active_config(policy_id: int) -> CascadeConfig | None:
    return (CascadeConfig.objects.select_related("baseline_version", "mllm_version")
            .filter(policy_id=policy_id, is_active=True).first())


def artifact_dir(version: ModelVersion) -> Path:
    return version.folder


@lru_cache(maxsize=4)
def load_baseline(version_id: int) -> BaselineClassifier:
    return BaselineClassifier.load(artifact_dir(ModelVersion.objects.get(pk=version_id)))


def load_mllm(version_id: int, cpu_int8: bool | None = None):
    """The stage-2 model of a version, loaded once per worker process on COEFVQ_STAGE2_DEVICE
    (an LLMClassifier, or the older MiniLM-backbone MultimodalClassifier); on a CPU from int8
    weights when cpu_int8 says so (None: COEFVQ_STAGE2_CPU_INT8)."""
    return _load_mllm(version_id, settings.COEFVQ_STAGE2_CPU_INT8 if cpu_int8 is None else cpu_int8)


@lru_cache(maxsize=2)
def _load_mllm(version_id: int, cpu_int8: bool):
    return load_stage2(artifact_dir(ModelVersion.objects.get(pk=version_id)),
                       audio_checkpoint=str(settings.COEFVQ_WHISPER_CHECKPOINT),
                       llm_path=str(settings.COEFVQ_LLM_PATH),
                       device=available_device(settings.COEFVQ_STAGE2_DEVICE), cpu_int8=cpu_int8)


def forget_loaded_models() -> None:
    """Drop this process's loaded models (the next call loads them from their folders again)."""
    load_baseline.cache_clear()
    _load_mllm.cache_clear()


def current_threshold(config: CascadeConfig) -> float:
    """The entropy at and above which a video goes to the MLLM: the fixed one, or the budget's
    over the active baseline's routing history (ModelVersion.routing_entropies), so the first
    videos after a deployment are routed by the budget, not by one or two entropies."""
    if config.entropy_threshold is not None:
        return config.entropy_threshold
    history = config.baseline_version.routing_entropies()
    # With no history at all (a baseline registered without one), route everything: the budget is
    # then honoured as history builds up.
    return threshold_for_budget(history, config.mllm_budget) if history else 0.0


def _store_prediction(video: Video, stage: str, version: ModelVersion, config: CascadeConfig, **fields) -> Prediction:
    try:
        with transaction.atomic():
            return Prediction.objects.create(video=video, stage=stage, model_version=version,
                                             cascade_config=config, **fields)
    except IntegrityError:  # a re-run: the prediction of this model for this video already exists
        return Prediction.objects.get(video=video, stage=stage, model_version=version)


def score_baseline(video_id: int) -> None:
    """Stage 1 and routing: decide from the baseline, or hand the video to the MLLM."""
    policy_id = Video.objects.filter(pk=video_id).values_list("policy_id", flat=True).first()
    config = active_config(policy_id) if policy_id else None
    if config is None or config.baseline_version is None:
        return  # no baseline deployed: the video rests extracted
    attempt = do_start_attempt(video_id, expected=[Video.State.EXTRACTED, Video.State.SCORING],
                               to_state=Video.State.SCORING)
    if attempt is None:
        return
    video = Video.objects.select_related("media", "policy").get(pk=video_id)
    t0 = time.perf_counter()
    features = pipeline.evidence_or_fail(video)
    if features is None:
        return
    t1 = time.perf_counter()
    try:
        output = load_baseline(config.baseline_version_id).score(features)
    except PASSED_ON:
        raise
    except Exception as error:  # noqa: BLE001 - not the file's fault: the video waits, see PASSED_ON
        _hold(video_id, Video.State.SCORING, f"Stage 1 ({config.baseline_version})", error)
        return
    elapsed_ms = (time.perf_counter() - t1) * 1000
    seconds = {"evidence_s": t1 - t0, "baseline_s": elapsed_ms / 1000}
    threshold = current_threshold(config)
    forced_route = video.route
    to_mllm = {"auto": route(output.entropy, threshold), "baseline": False, "mllm": True}[forced_route]
    # Routed with no stage 2 deployed: stage 1 decides, and a reviewer looks, since it was unsure.
    unsure_without_stage2 = to_mllm and config.mllm_version is None
    to_mllm = to_mllm and not unsure_without_stage2
    with transaction.atomic():
        prediction = _store_prediction(video, Prediction.Stage.BASELINE, config.baseline_version, config,
                                       probabilities=output.probs, label=output.label, entropy=output.entropy,
                                       compute_ms=elapsed_ms)
        # A re-run keeps the routing first decided, even if the threshold has moved since.
        routing, _ = RoutingDecision.objects.get_or_create(
            baseline_prediction=prediction,
            defaults=dict(video=video, cascade_config=config, entropy=output.entropy, threshold=threshold,
                          routed_to_mllm=to_mllm, forced_route="" if forced_route == "auto" else forced_route),
        )
        why = (f"Entropy {routing.entropy:.3f}, threshold {routing.threshold:.3f}"
               + (f", route forced to {routing.forced_route}" if routing.forced_route else "") + ".")
        if routing.routed_to_mllm:
            if do_transition(video_id, expected=[Video.State.SCORING], to_state=Video.State.AWAITING_MLLM,
                             attempts=0, message=f"{why} To the MLLM.", data={"seconds": seconds}):
                transaction.on_commit(lambda: enqueue_mllm(video_id))
        else:
            _decide(video, config, output.probs, decided_by=Prediction.Stage.BASELINE, expected=Video.State.SCORING,
                    why=why, seconds=seconds,
                    to_review="routed to stage 2, and none is active" if unsure_without_stage2 else "")


def enqueue_mllm(video_id: int) -> None:
    if pipeline.enqueue_allowed():
        send_task("score_mllm", video_id, retried_by="the reconciler")


def score_mllm(video_id: int) -> None:
    """Stage 2: the multimodal LLM with its rationale and modality contributions, then decide.

    Without an active MLLM, when stage 2 cannot read the file, or while it is on trial (it
    writes its prediction for the reviewer), the stored stage-1 prediction decides and a reviewer
    looks; a broken model or configuration holds the video (do_hold)."""
    attempt = do_start_attempt(video_id, expected=[Video.State.AWAITING_MLLM],
                               to_state=Video.State.AWAITING_MLLM)
    if attempt is None:
        return
    video = Video.objects.select_related("media", "policy").get(pk=video_id)
    config = active_config(video.policy_id)
    if config is None:
        do_hold(video_id, state=Video.State.AWAITING_MLLM, reason=f"{video.policy} has no active cascade configuration.")
        return
    if config.mllm_version is None:
        _decide_from_stage1(video, config, "No multimodal model is active")
        return
    t0 = time.perf_counter()
    try:
        pipeline.backfill_evidence(video)
    except MediaError as error:
        _decide_from_stage1(video, config, f"The multimodal model could not read the file ({error.reason})")
        return
    features = evidence.load_features(video)
    t1 = time.perf_counter()
    try:
        output = load_mllm(config.mllm_version_id).predict([features], explain=True)[0]
    except PASSED_ON:
        raise
    except Exception as error:  # noqa: BLE001 - not the file's fault: the video waits, see PASSED_ON
        _hold(video_id, Video.State.AWAITING_MLLM, f"Stage 2 ({config.mllm_version})", error)
        return
    elapsed_ms = (time.perf_counter() - t1) * 1000
    seconds = {"evidence_s": t1 - t0, "mllm_s": elapsed_ms / 1000}
    # A route forced to stage 2 asks for its verdict, on trial or not.
    on_trial = not config.stage2_decides and video.route != "mllm"
    with transaction.atomic():
        _store_prediction(
            video, Prediction.Stage.MLLM, config.mllm_version, config,
            probabilities=output.probabilities, label=output.label,
            entropy=float(shannon_entropy(list(output.probabilities.values()))),
            rationale=dataclasses.asdict(output.rationale), modality_contributions=output.modality_contributions,
            compute_ms=elapsed_ms,
        )
        if on_trial:
            _decide_from_stage1(video, config, f"Stage 2 is on trial (it says {output.label})", seconds=seconds)
        else:
            _decide(video, config, output.probabilities, decided_by=Prediction.Stage.MLLM,
                    expected=Video.State.AWAITING_MLLM, why=f"MLLM says {output.label}.", seconds=seconds)


def _hold(video_id: int, state: str, stage: str, error: Exception) -> None:
    log.exception("%s could not score video %s; it waits", stage, video_id)
    do_hold(video_id, state=state, reason=f"{stage} could not score: {type(error).__name__}: {error}"[:2000])


def _decide_from_stage1(video: Video, config: CascadeConfig, why: str, seconds: dict[str, float] | None = None) -> None:
    """Stage 2 cannot help, or is not yet trusted to (CascadeConfig.stage2_decides): the stored
    stage-1 prediction decides, and a reviewer looks (the router had found stage 1 unsure)."""
    stage1 = (Prediction.objects.filter(video=video, stage=Prediction.Stage.BASELINE)
              .order_by("-created_at", "-id").first())
    if stage1 is None:
        do_hold(video.pk, state=Video.State.AWAITING_MLLM, reason=f"{why}, and no stage-1 prediction is stored.")
        return
    with transaction.atomic():
        _decide(video, config, stage1.probabilities, decided_by=Prediction.Stage.BASELINE,
                expected=Video.State.AWAITING_MLLM, why=f"{why}: stage 1 says {stage1.label}.", seconds=seconds or {},
                to_review=why[0].lower() + why[1:])


def run_inline(video_id: int) -> None:
    """The whole pipeline in this process, for `ingest --inline`: no broker, no worker."""
    with pipeline.inline_mode():
        pipeline.extract(video_id)
        score_baseline(video_id)
        score_mllm(video_id)


def _decide(video: Video, config: CascadeConfig, probabilities: dict, *, decided_by: str, expected: str, why: str,
            seconds: dict[str, float], to_review: str = ""):
    """Decide with the bands on P(violation), the probability of the policy's violating labels (so
    editing which labels violate changes decisions, as it changes the dashboard's metrics);
    `to_review` (why) sends the video to a reviewer whatever the bands say."""
    violating = tuple(label for label in video.policy.violating_labels if label in probabilities)
    labels = tuple(probabilities)
    p_violation = float(violation_probability([probabilities[label] for label in labels], labels, violating))
    bands = DecisionBands(config.allow_below, config.action_above)
    decision = "human_review" if to_review else bands.decide(p_violation)
    audited = decision != "human_review" and audit_sample(video.sha256, config.audit_rate, salt=video.policy.slug)
    label = max(probabilities, key=probabilities.get)
    needs_review = decision == "human_review" or audited
    decided = do_transition(
        video.pk, expected=[expected], to_state=Video.State.DECIDED,
        message=(f"{why} P(violation) {p_violation:.2f}: {decision}{' (audit sample)' if audited else ''}"
                 + (f", as {to_review}" if to_review else "") + "."),
        data={"decision": decision, "audit": audited, "p_violation": p_violation, "seconds": seconds},
        attempts=0, final_label=label, decided_by=decided_by, decision=decision, needs_review=needs_review,
    )
    if decided and needs_review:
        reason = ReviewTask.Reason.AUDIT if audited else ReviewTask.Reason.REVIEW_BAND
        do_open_review(video, reason=reason, model_label=label, probabilities=probabilities,
                       p_violation=p_violation)
