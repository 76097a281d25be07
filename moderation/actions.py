"""Business operations. Views, the API, commands, admin and tasks all call these.

`check_*` validates and raises `ActionError`; `do_*` changes state, records an audit event and
schedules follow-up work after the transaction commits.
"""

from __future__ import annotations

import hashlib
import logging
import os
import shutil
import tempfile
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import IO, Iterable

from django.conf import settings
from django.db import IntegrityError, transaction
from django.db.models import F
from django.utils import timezone

from .models import CascadeConfig, ModelVersion, Policy, Video, VideoEvent

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
                    raise ActionError(
                        f"The file is larger than {settings.COEFVQ_UPLOAD_HARD_MAX_BYTES // 1024**2} MB and was not accepted.",
                        code="upload_too_large",
                        status=413,
                    )
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
            transaction.on_commit(lambda: enqueue_processing(video.pk))
    return video


def enqueue_processing(video_id: int) -> None:
    from . import tasks  # tasks import actions; import here to keep the module graph one-way

    try:
        tasks.extract_video.delay(video_id)
    except Exception:  # noqa: BLE001 - the broker is down: the reconciler picks the video up later
        log.exception("Could not enqueue video %s; the reconciler will retry", video_id)


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


def do_register_model(policy: Policy, *, kind: str, version: str, artifact_path: str, config: dict,
                      metrics: dict) -> ModelVersion:
    """Record a trained artifact as a candidate the pipeline can load."""
    if kind not in ModelVersion.Kind.values:
        raise ActionError(f"Unknown model kind {kind!r}.", code="unknown_model_kind")
    if ModelVersion.objects.filter(policy=policy, kind=kind, version=version).exists():
        raise ActionError(f"{kind} version {version!r} already exists.", code="duplicate_model_version")
    return ModelVersion.objects.create(policy=policy, kind=kind, version=version, artifact_path=artifact_path,
                                       config=config, metrics=metrics)


def do_activate_models(policy: Policy, *, baseline: ModelVersion | None = None, mllm: ModelVersion | None = None,
                       actor=None, note: str = "") -> CascadeConfig:
    """Make these model versions active: a new cascade configuration version that keeps every other
    setting of the current one. The versions they replace are retired, not deleted."""
    with transaction.atomic():
        current = (CascadeConfig.objects.select_for_update().filter(policy=policy, is_active=True).first())
        latest = CascadeConfig.objects.filter(policy=policy).order_by("-version").values_list("version", flat=True).first()
        new = CascadeConfig(
            policy=policy, version=(latest or 0) + 1, is_active=True, created_by=actor, change_note=note,
            entropy_threshold=current.entropy_threshold if current else None,
            mllm_budget=current.mllm_budget if current else DEFAULT_MLLM_BUDGET,
            allow_below=current.allow_below if current else CascadeConfig._meta.get_field("allow_below").default,
            action_above=current.action_above if current else CascadeConfig._meta.get_field("action_above").default,
            audit_rate=current.audit_rate if current else CascadeConfig._meta.get_field("audit_rate").default,
            baseline_version=baseline or (current.baseline_version if current else None),
            mllm_version=mllm or (current.mllm_version if current else None),
        )
        if current:
            CascadeConfig.objects.filter(pk=current.pk).update(is_active=False)
        for version in (baseline, mllm):
            if version is None:
                continue
            ModelVersion.objects.filter(policy=policy, kind=version.kind, status=ModelVersion.Status.ACTIVE).exclude(
                pk=version.pk).update(status=ModelVersion.Status.RETIRED)
            ModelVersion.objects.filter(pk=version.pk).update(status=ModelVersion.Status.ACTIVE)
        new.save()
    return new
