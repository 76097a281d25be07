"""Business operations. Views, the API, commands, admin and tasks all call these.

`check_*` validates and raises `ActionError`; `do_*` changes state, records an audit event and
schedules follow-up work after the transaction commits.
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
import os
import shutil
import tempfile
import uuid
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import IO, Iterable

from django.conf import settings
from django.db import IntegrityError, transaction
from django.db.models import F, Q
from django.template.defaultfilters import filesizeformat
from django.utils import timezone

from . import live, roles
from .models import (AuditEntry, CascadeConfig, ModelVersion, Policy, Review, ReviewSkip, ReviewTask, Video,
                     VideoEvent)

log = logging.getLogger(__name__)

MAX_CAPTION_CHARS = 5000
MAX_TITLE_CHARS = 300
_CHUNK = 1024 * 1024


class ActionError(Exception):
    """A request that cannot be carried out; `message` is shown to the user as is."""

    def __init__(self, message: str, *, code: str = "invalid", status: int = 400):
        super().__init__(message)
        self.message = message
        self.code = code
        self.status = status


@dataclass(frozen=True)
class IngestResult:
    video: Video
    created: bool  # False: the same bytes were uploaded before; that video is returned


# --- audit log ---------------------------------------------------------------------------------


def record_audit(actor, action: str, target, summary: str, **data) -> AuditEntry:
    """Append who did what to which object. Call inside the transaction that made the change,
    so the change and its record commit together or not at all."""
    authenticated = actor is not None and getattr(actor, "is_authenticated", False)
    return AuditEntry.objects.create(
        actor_id=actor.pk if authenticated else None, actor_name=actor.get_username() if authenticated else "",
        action=action, target_type=target._meta.model_name, target_id=str(target.pk), summary=summary,
        data=json.loads(json.dumps(data, default=str)),
    )


# --- validation --------------------------------------------------------------------------------


def check_policy(slug: str | None) -> Policy:
    if slug:
        policy = Policy.objects.filter(slug=slug).first()
        if policy is None:
            raise ActionError(f"There is no policy called {slug!r}.", code="unknown_policy")
        return policy
    policy = Policy.objects.filter(is_default=True).first()
    if policy is None:
        raise ActionError("No default policy is configured; name one.", code="no_default_policy")
    return policy


def check_text(value: str | None, *, field: str, limit: int) -> str:
    value = (value or "").replace("\x00", "").strip()
    if len(value) > limit:
        raise ActionError(f"The {field} is {len(value)} characters long; the limit is {limit}.", code=f"{field}_too_long")
    return value


def safe_extension(filename: str) -> str:
    """The file's extension, kept only for a human's benefit; never used to pick a decoder."""
    ext = Path(filename).suffix.lower()
    return ext if ext[1:].isalnum() and len(ext) <= 8 else ""


def safe_display_name(filename: str) -> str:
    """The base name the uploader gave, with any directory part and control characters removed."""
    name = Path(filename.replace("\\", "/")).name
    name = "".join(ch for ch in name if ch.isprintable())
    return name[:255] or "upload"


# --- ingestion ---------------------------------------------------------------------------------


def upload_too_large_message() -> str:
    return f"The file is larger than {filesizeformat(settings.COEFVQ_UPLOAD_HARD_MAX_BYTES)} and was not accepted."


def _spool(stream: IO[bytes]) -> tuple[Path, str, int]:
    """Copy an upload into the media folder's staging area, hashing it on the way."""
    staging = Path(settings.MEDIA_ROOT) / "staging"
    staging.mkdir(parents=True, exist_ok=True)
    digest = hashlib.sha256()
    size = 0
    fd, tmp_name = tempfile.mkstemp(dir=staging, suffix=".part")
    try:
        with os.fdopen(fd, "wb") as out:
            while chunk := stream.read(_CHUNK):
                size += len(chunk)
                if size > settings.COEFVQ_UPLOAD_HARD_MAX_BYTES:
                    raise ActionError(upload_too_large_message(), code="upload_too_large", status=413)
                digest.update(chunk)
                out.write(chunk)
    except BaseException:
        Path(tmp_name).unlink(missing_ok=True)
        raise
    return Path(tmp_name), digest.hexdigest(), size


def do_ingest(
    stream: IO[bytes],
    *,
    filename: str,
    source: str,
    caption: str = "",
    title: str = "",
    policy_slug: str | None = None,
    uploader=None,
    enqueue: bool = True,
    route: str = Video.Route.AUTO,
) -> IngestResult:
    """Keep an upload and start its processing. The same bytes twice give the same video."""
    policy = check_policy(policy_slug)
    caption = check_text(caption, field="caption", limit=MAX_CAPTION_CHARS)
    title = check_text(title, field="title", limit=MAX_TITLE_CHARS)
    if source not in Video.Source.values:
        raise ActionError(f"Unknown source {source!r}.", code="unknown_source")
    if route not in Video.Route.values:
        raise ActionError(f"Unknown route {route!r}; use one of {', '.join(Video.Route.values)}.", code="unknown_route")

    spooled, sha256, size = _spool(stream)
    try:
        existing = Video.objects.filter(policy=policy, sha256=sha256).first()
        if existing is not None:
            return IngestResult(existing, created=False)
        try:
            return IngestResult(
                _create_video(spooled, policy, sha256, size, filename, source, caption, title, uploader, enqueue, route),
                created=True,
            )
        except IntegrityError:
            # Another upload of the same bytes committed first.
            return IngestResult(Video.objects.get(policy=policy, sha256=sha256), created=False)
    finally:
        spooled.unlink(missing_ok=True)


def _create_video(spooled: Path, policy, sha256, size, filename, source, caption, title, uploader, enqueue,
                  route) -> Video:
    video = Video(
        policy=policy,
        sha256=sha256,
        size_bytes=size,
        original_filename=safe_display_name(filename),
        extension=safe_extension(filename),
        caption=caption,
        title=title,
        uploader=uploader if uploader is not None and uploader.is_authenticated else None,
        source=source,
        route=route,
        state=Video.State.RECEIVED,
        state_changed_at=timezone.now(),
    )
    relative = video.file.field.generate_filename(video, "original")
    destination = Path(settings.MEDIA_ROOT) / relative
    destination.parent.mkdir(parents=True, exist_ok=True)
    with transaction.atomic():
        video.file.name = relative
        video.save()
        VideoEvent.objects.create(
            video=video, to_state=Video.State.RECEIVED, actor=video.uploader, message=f"Uploaded via {source}."
        )
        # Keep the bytes before the row becomes visible to workers.
        if not destination.exists():
            shutil.copyfile(spooled, destination)
        if enqueue:
            transaction.on_commit(lambda: send_task("extract_video", video.pk, retried_by="the reconciler"))
    return video


def send_task(task_name: str, object_id: int, *, retried_by: str) -> None:
    """Nudge a worker to run `moderation.tasks.<task_name>(object_id)`.

    The database row is the work; the message only nudges. With the broker down the failure is
    logged, not raised: `retried_by` finds the row where it rests and sends it again.
    """
    from . import tasks  # tasks import this module; import here to keep the module graph one-way

    try:
        getattr(tasks, task_name).delay(object_id)
    except Exception:  # noqa: BLE001 - see the docstring
        log.exception("Could not enqueue %s(%s); %s will send it again", task_name, object_id, retried_by)


# --- state machine -------------------------------------------------------------------------------


def do_transition(
    video_id: int,
    *,
    expected: Iterable[str],
    to_state: str,
    message: str = "",
    actor=None,
    data: dict | None = None,
    **fields,
) -> bool:
    """Compare-and-set the state: only one of several racing workers wins. Returns whether it did."""
    expected = tuple(expected)
    with transaction.atomic():
        from_state = Video.objects.filter(pk=video_id).values_list("state", flat=True).first()
        changed = Video.objects.filter(pk=video_id, state__in=expected).update(
            state=to_state, state_changed_at=timezone.now(), updated_at=timezone.now(), lease_expires_at=None, **fields
        )
        if changed:
            VideoEvent.objects.create(
                video_id=video_id, from_state=from_state or "", to_state=to_state, actor=actor,
                message=message, data=data or {},
            )
    return bool(changed)


def do_start_attempt(video_id: int, *, expected: Iterable[str], to_state: str) -> int | None:
    """Move into a working state, take a lease on the video and count the attempt.

    Returns the attempt number, or None when the step has nothing to do: the video is in another
    state (done, failed), another worker holds an unexpired lease on it (a duplicate message), or
    it has used up its attempts (then it ends failed).
    """
    now = timezone.now()
    with transaction.atomic():
        video = Video.objects.select_for_update().filter(pk=video_id).first()
        if video is None or video.state not in expected:
            return None
        if video.lease_expires_at is not None and video.lease_expires_at > now:
            return None
        attempt = video.attempts + 1
        if attempt > settings.COEFVQ_MAX_ATTEMPTS:
            # The earlier attempts never finished: the file keeps crashing or stalling workers.
            do_fail(video_id, code="too_many_attempts", expected=[video.state],
                    reason=f"Processing was interrupted {attempt - 1} times on this file (the decoder crashed or "
                    "the worker stopped), so it was given up.")
            return None
        Video.objects.filter(pk=video_id).update(
            state=to_state, attempts=F("attempts") + 1, state_changed_at=now, updated_at=now,
            lease_expires_at=now + timedelta(seconds=settings.COEFVQ_STEP_LEASE_S),
        )
        VideoEvent.objects.create(
            video_id=video_id, from_state=video.state, to_state=to_state, message=f"Attempt {attempt}."
        )
    return attempt


def do_fail(video_id: int, *, reason: str, code: str, expected: Iterable[str] | None = None) -> bool:
    """End a video failed, with a reason a moderator understands. The file is kept."""
    states = tuple(expected) if expected is not None else tuple(
        s for s in Video.State.values if s not in Video.TERMINAL_STATES
    )
    return do_transition(
        video_id, expected=states, to_state=Video.State.FAILED, message=reason,
        data={"code": code}, error_code=code[:40], error_reason=reason or "Processing failed.",
    )


# --- models and cascade configuration ---------------------------------------------------------

DEFAULT_MLLM_BUDGET = 0.2  # a fifth of traffic: above the demo policy's share of hard cases
# The settings of a cascade configuration an admin tunes; a new version starts from the current ones.
CONFIG_SETTINGS = ("entropy_threshold", "mllm_budget", "allow_below", "action_above", "audit_rate",
                   "promotion_margin", "retrain_min_labels")


def do_register_model(policy: Policy, *, kind: str, version: str, artifact_path: str, config: dict,
                      metrics: dict) -> ModelVersion:
    """Record a trained artifact as a candidate the pipeline can load."""
    if kind not in ModelVersion.Kind.values:
        raise ActionError(f"Unknown model kind {kind!r}.", code="unknown_model_kind")
    if ModelVersion.objects.filter(policy=policy, kind=kind, version=version).exists():
        raise ActionError(f"{kind} version {version!r} already exists.", code="duplicate_model_version")
    return ModelVersion.objects.create(policy=policy, kind=kind, version=version, artifact_path=artifact_path,
                                       config=config, metrics=metrics)


def do_set_reference_entropies(version: ModelVersion, entropies) -> None:
    """A baseline's entropies on videos it never trained on: the router's history for it until it
    has scored enough videos itself (scoring.current_threshold)."""
    if version.kind != ModelVersion.Kind.BASELINE:
        raise ActionError(f"{version} is not a baseline; only a baseline's entropies route.", code="not_a_baseline")
    values = [float(e) for e in entropies]
    if not all(math.isfinite(e) and e >= 0 for e in values):
        raise ActionError("Entropies must be finite and 0 or more (nats).", code="bad_entropies")
    ModelVersion.objects.filter(pk=version.pk).update(reference_entropies=values)
    version.reference_entropies = values


def do_activate_models(policy: Policy, *, baseline: ModelVersion | None = None, mllm: ModelVersion | None = None,
                       actor=None, note: str = "") -> CascadeConfig:
    """Make these model versions active: a new cascade configuration version that keeps every other
    setting of the current one. The versions they replace are retired, not deleted."""
    models = {f"{version.kind}_version": version for version in (baseline, mllm) if version is not None}
    with transaction.atomic():
        config = do_change_cascade_config(policy, actor=actor, note=note, **models)
        for version in models.values():
            ModelVersion.objects.filter(policy=policy, kind=version.kind, status=ModelVersion.Status.ACTIVE).exclude(
                pk=version.pk).update(status=ModelVersion.Status.RETIRED)
            ModelVersion.objects.filter(pk=version.pk).update(status=ModelVersion.Status.ACTIVE)
            record_audit(actor, "model_version.activated", version, f"{version} is active in {config}"
                         + (f" ({note})" if note else "") + ".")
    return config


def do_roll_back_model(version: ModelVersion, *, actor=None) -> CascadeConfig:
    """Reactivate the version of this kind that was active before `version` became active."""
    if version.status != ModelVersion.Status.ACTIVE:
        raise ActionError(f"{version} is not active; only the active version can be rolled back.", code="not_active")
    field = f"{version.kind}_version"
    configs = CascadeConfig.objects.filter(policy_id=version.policy_id).order_by("version")
    first_use = configs.filter(**{field: version}).values_list("version", flat=True).first()
    previous = (configs.filter(version__lt=first_use).exclude(**{field: version}).exclude(**{f"{field}__isnull": True})
                .order_by("-version").first()) if first_use is not None else None
    if previous is None:
        raise ActionError(f"No {version.kind} version was active before {version}.", code="nothing_to_roll_back")
    restored = getattr(previous, field)
    return do_activate_models(version.policy, actor=actor, note=f"Rolled back {version} to {restored}",
                              **{version.kind: restored})


def check_cascade_settings(*, entropy_threshold, mllm_budget, allow_below, action_above, audit_rate,
                           promotion_margin, retrain_min_labels, **_ignored) -> None:
    """Refuse nonsense before it reaches the router, in words an admin can act on."""
    def fraction(name: str, value) -> None:
        if value is not None and not (isinstance(value, (int, float)) and math.isfinite(value) and 0 <= value <= 1):
            raise ActionError(f"{name} must be a fraction between 0 and 1, got {value!r}.", code=f"bad_{name}")

    if (entropy_threshold is None) == (mllm_budget is None):
        raise ActionError("Set either an entropy threshold or an MLLM budget, not both and not neither.",
                          code="threshold_or_budget")
    if entropy_threshold is not None and not (math.isfinite(entropy_threshold) and entropy_threshold >= 0):
        raise ActionError(f"The entropy threshold must be 0 or more (nats), got {entropy_threshold!r}.",
                          code="bad_entropy_threshold")
    for name, value in (("mllm_budget", mllm_budget), ("allow_below", allow_below), ("action_above", action_above),
                        ("audit_rate", audit_rate)):
        fraction(name, value)
    if allow_below > action_above:
        raise ActionError(f"Auto-allow below {allow_below} must not be above auto-action above {action_above}: "
                          "the review band would be negative.", code="bands_out_of_order")
    if not (math.isfinite(promotion_margin) and -1 <= promotion_margin <= 1):
        raise ActionError(f"The promotion margin is an F1 difference between -1 and 1, got {promotion_margin!r}.",
                          code="bad_promotion_margin")
    if retrain_min_labels < 1:
        raise ActionError("Retraining needs at least one new label.", code="bad_retrain_min_labels")


def do_change_cascade_config(policy: Policy, *, actor, note: str, **changes) -> CascadeConfig:
    """A new active configuration version: the current settings with `changes` applied.

    Older versions stay as the history of who changed what and when; predictions keep pointing
    at the version they used.
    """
    unknown = set(changes) - set(CONFIG_SETTINGS) - {"baseline_version", "mllm_version"}
    if unknown:
        raise ActionError(f"Unknown settings: {', '.join(sorted(unknown))}.", code="unknown_setting")
    note = check_text(note, field="note", limit=MAX_CAPTION_CHARS)
    with transaction.atomic():
        current = CascadeConfig.objects.select_for_update().filter(policy=policy, is_active=True).first()
        values = {name: getattr(current, name) for name in CONFIG_SETTINGS} if current else {
            name: CascadeConfig._meta.get_field(name).get_default() for name in CONFIG_SETTINGS}
        if current is None and "entropy_threshold" not in changes:
            values["mllm_budget"] = values["mllm_budget"] or DEFAULT_MLLM_BUDGET
        values.update(baseline_version=current.baseline_version if current else None,
                      mllm_version=current.mllm_version if current else None)
        values.update(changes)
        check_cascade_settings(**values)
        for kind in ("baseline", "mllm"):
            version = values[f"{kind}_version"]
            if version is not None and (version.policy_id != policy.pk or version.kind != kind):
                raise ActionError(f"{version} is not a {kind} model of {policy}.", code="wrong_model_version")
        latest = CascadeConfig.objects.filter(policy=policy).order_by("-version").values_list("version", flat=True).first()
        if current:
            CascadeConfig.objects.filter(pk=current.pk).update(is_active=False)
        config = CascadeConfig.objects.create(policy=policy, version=(latest or 0) + 1, is_active=True,
                                              created_by=actor, change_note=note, **values)
        diff = config_changes(config)
        record_audit(actor, "cascade_config.changed", config,
                     f"{config} is active: " + (", ".join(f"{name} {old} → {new}" for name, (old, new) in diff.items())
                                                or "first version") + (f" ({note})" if note else ""),
                     changes={name: list(pair) for name, pair in diff.items()})
    return config


def config_changes(config: CascadeConfig) -> dict[str, tuple]:
    """What this version changed from the one before it: setting -> (old, new)."""
    previous = (CascadeConfig.objects.filter(policy_id=config.policy_id, version__lt=config.version)
                .order_by("-version").first())
    if previous is None:
        return {}
    names = CONFIG_SETTINGS + ("baseline_version_id", "mllm_version_id")
    return {name: (getattr(previous, name), getattr(config, name)) for name in names
            if getattr(previous, name) != getattr(config, name)}


# --- review queue -------------------------------------------------------------------------------


def review_priority(policy: Policy, probabilities: dict[str, float], p_violation: float, reason: str) -> float:
    """0..1: expected severity of what the video may be, and how unsure the model is about it.

    Audit samples were decided confidently and only check the machine, so they come after the
    review band's items of the same age.
    """
    severity = sum(probabilities.get(label, 0.0) * float(weight) for label, weight in policy.severity.items())
    uncertainty = 1.0 - abs(2.0 * p_violation - 1.0)  # 1 at P(violation) = 0.5, 0 when sure
    priority = 0.6 * min(severity, 1.0) + 0.4 * uncertainty
    return priority * (0.5 if reason == ReviewTask.Reason.AUDIT else 1.0)


def do_open_review(video: Video, *, reason: str, model_label: str, probabilities: dict[str, float],
                   p_violation: float) -> ReviewTask:
    """Put a video in the human queue (at most one open task per video)."""
    existing = ReviewTask.objects.filter(video=video, status=ReviewTask.Status.OPEN).first()
    if existing is not None:
        return existing
    priority = review_priority(video.policy, probabilities, p_violation, reason)
    now = timezone.now()
    headstart = timedelta(hours=settings.COEFVQ_REVIEW_PRIORITY_HEADSTART_H * priority)
    try:
        with transaction.atomic():
            task = ReviewTask.objects.create(video=video, policy_id=video.policy_id, reason=reason, priority=priority,
                                             due_at=now - headstart, model_label=model_label, p_violation=p_violation)
    except IntegrityError:  # a racing caller opened it first
        return ReviewTask.objects.get(video=video, status=ReviewTask.Status.OPEN)
    transaction.on_commit(lambda: live.queue_changed("added", task.pk))
    return task


def _claimable(now):
    return ReviewTask.objects.filter(status=ReviewTask.Status.OPEN).filter(
        Q(claimed_by__isnull=True) | Q(claim_expires_at__lte=now)
    )


def _claim_held_by(user, now) -> ReviewTask | None:
    return (ReviewTask.objects.filter(status=ReviewTask.Status.OPEN, claimed_by=user, claim_expires_at__gt=now)
            .order_by("claimed_at").first())


def do_claim_next(user, *, policy: Policy | None = None) -> ReviewTask | None:
    """Give the reviewer the most urgent free item, under a lease; None when the queue is empty.

    A reviewer who already holds a live claim gets that item again (its lease renewed), so a
    double click or a second tab never takes two. Items the reviewer skipped go to others.
    Row locks with SKIP LOCKED let many reviewers claim at once without waiting on each other;
    the compare-and-set update is what makes a claim exclusive (SQLite has no row locks).
    """
    check_can_review(user)
    lease = timedelta(seconds=settings.COEFVQ_REVIEW_LEASE_S)
    for _ in range(5):  # lost races retry with the next candidate
        now = timezone.now()
        held = _claim_held_by(user, now)
        if held is not None:
            ReviewTask.objects.filter(pk=held.pk, claim_token=held.claim_token).update(claim_expires_at=now + lease)
            held.claim_expires_at = now + lease
            return held
        with transaction.atomic():
            candidates = _claimable(now).exclude(skips__reviewer=user)
            if policy is not None:
                candidates = candidates.filter(policy=policy)
            task = candidates.select_for_update(skip_locked=True).order_by("due_at", "id").first()
            if task is None:
                return None
            token = uuid.uuid4()
            won = _claimable(now).filter(pk=task.pk, claim_token=task.claim_token).update(
                claimed_by=user, claimed_at=now, claim_expires_at=now + lease, claim_token=token)
            if won:
                VideoEvent.objects.create(video_id=task.video_id, from_state=Video.State.DECIDED,
                                          to_state=Video.State.DECIDED, actor=user,
                                          message=f"Review claimed by {user.get_username()}.",
                                          data={"review_task": task.pk})
                transaction.on_commit(lambda: live.queue_changed("claimed", task.pk))
                return ReviewTask.objects.select_related("video").get(pk=task.pk)
    return None


def check_can_review(user) -> None:
    if not roles.has_role(user, *roles.ROLES):
        raise ActionError("Only reviewers, leads and admins can review.", code="not_a_reviewer", status=403)


def check_claim(task_id: int, user, claim_token) -> ReviewTask:
    """The task, locked, if `user` still holds this claim on it; ActionError (409) otherwise."""
    check_can_review(user)
    task = ReviewTask.objects.select_for_update().select_related("video", "policy").filter(pk=task_id).first()
    if task is None:
        raise ActionError("There is no such review task.", code="unknown_task", status=404)
    if task.status != ReviewTask.Status.OPEN:
        raise ActionError("This video was already reviewed.", code="already_reviewed", status=409)
    if (task.claimed_by_id != user.pk or str(task.claim_token) != str(claim_token)
            or task.claim_expires_at is None or task.claim_expires_at <= timezone.now()):
        raise ActionError("Your claim on this video ran out and it went back to the queue; nothing was saved. "
                          "Claim it again to review it.", code="claim_lost", status=409)
    return task


def check_review_label(task: ReviewTask, label: str) -> str:
    if label not in task.policy.labels:
        raise ActionError(f"{label!r} is not a label of this policy; use one of {', '.join(task.policy.labels)}.",
                          code="unknown_label")
    return label


def do_submit_review(task_id: int, user, *, claim_token, label: str, note: str = "") -> Review:
    """Record the reviewer's label. It becomes the video's final label and a training example."""
    note = check_text(note, field="note", limit=MAX_CAPTION_CHARS)
    with transaction.atomic():
        task = check_claim(task_id, user, claim_token)
        label = check_review_label(task, label)
        video = task.video
        now = timezone.now()
        review = Review.objects.create(
            task=task, video=video, reviewer=user, label=label, note=note, model_label=task.model_label,
            model_decided_by=video.decided_by if video.decided_by != "human" else "",
            disagrees_with_model=label != task.model_label,
            seconds_spent=(now - task.claimed_at).total_seconds(),
        )
        ReviewTask.objects.filter(pk=task.pk).update(status=ReviewTask.Status.DONE, completed_at=now,
                                                     claim_expires_at=None)
        Video.objects.filter(pk=video.pk).update(final_label=label, decided_by="human", needs_review=False,
                                                 updated_at=now)
        verdict = "agrees with" if not review.disagrees_with_model else "overrules"
        VideoEvent.objects.create(
            video=video, from_state=video.state, to_state=video.state, actor=user,
            message=f"Reviewed by {user.get_username()}: {label} ({verdict} the model's {task.model_label}).",
            data={"review": review.pk, "label": label, "model_label": task.model_label},
        )
        record_audit(user, "review.decided", review, f"Video #{video.pk} labeled {label} ({verdict} the model's "
                     f"{task.model_label}).", video=video.pk, task=task.pk, label=label, model_label=task.model_label)
        transaction.on_commit(lambda: live.queue_changed("done", task.pk))
    return review


def do_skip_review(task_id: int, user, *, claim_token, reason: str) -> ReviewSkip:
    """Hand the item back for someone else, saying why; this reviewer is not given it again."""
    reason = check_text(reason, field="reason", limit=500)
    if not reason:
        raise ActionError("Say why you skip this video.", code="skip_reason_required")
    with transaction.atomic():
        task = check_claim(task_id, user, claim_token)
        skip = ReviewSkip.objects.create(task=task, reviewer=user, reason=reason)
        ReviewTask.objects.filter(pk=task.pk).update(claimed_by=None, claimed_at=None, claim_expires_at=None,
                                                     claim_token=None)
        VideoEvent.objects.create(video_id=task.video_id, from_state=task.video.state, to_state=task.video.state,
                                  actor=user, message=f"Skipped by {user.get_username()}: {reason}",
                                  data={"review_task": task.pk})
        record_audit(user, "review.skipped", task, f"Skipped video #{task.video_id}: {reason}", video=task.video_id)
        transaction.on_commit(lambda: live.queue_changed("released", task.pk))
    return skip


def do_release_expired_claims() -> int:
    """Clear claims whose lease ran out, so queue pages show them free. Claiming treats an expired
    claim as free anyway; this only tidies up and tells the live pages."""
    now = timezone.now()
    expired = list(ReviewTask.objects.filter(status=ReviewTask.Status.OPEN, claim_expires_at__lte=now)
                   .values_list("pk", flat=True)[:1000])
    released = ReviewTask.objects.filter(pk__in=expired, claim_expires_at__lte=now).update(
        claimed_by=None, claimed_at=None, claim_expires_at=None, claim_token=None)
    for task_id in expired:
        transaction.on_commit(lambda task_id=task_id: live.queue_changed("released", task_id))
    return released
