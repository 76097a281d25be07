"""Ingestion: keep an upload under its content's address and start its processing; and the one
later change to what the uploader sent, an admin's audited correction of its caption or title."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import IO

from django.conf import settings
from django.db import IntegrityError, transaction
from django.template.defaultfilters import filesizeformat
from django.utils import timezone

from ..models import Policy, Video, VideoEvent
from .audit import record_audit
from .enqueue import send_task
from .validation import MAX_CAPTION_CHARS, MAX_TITLE_CHARS, ActionError, check_text

_CHUNK = 1024 * 1024


@dataclass(frozen=True)
class IngestResult:
    video: Video
    created: bool  # False: this upload was sent before (same bytes, uploader, caption, title, route)


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


def safe_extension(filename: str) -> str:
    """The file's extension, kept only for a human's benefit; never used to pick a decoder."""
    ext = Path(filename).suffix.lower()
    return ext if ext[1:].isalnum() and len(ext) <= 8 else ""


def safe_display_name(filename: str) -> str:
    """The base name the uploader gave, with any directory part and control characters removed."""
    name = Path(filename.replace("\\", "/")).name
    name = "".join(ch for ch in name if ch.isprintable())
    return name[:255] or "upload"


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
    """Keep an upload as a video of its own and start its processing.

    Each upload is its own video, with its uploader, caption and verdict; uploads of the same
    bytes share the stored file and the media work (`pipeline.extract`). Only the same upload
    sent again returns the video it made (`created` False)."""
    policy = check_policy(policy_slug)
    caption = check_text(caption, field="caption", limit=MAX_CAPTION_CHARS)
    title = check_text(title, field="title", limit=MAX_TITLE_CHARS)
    if source not in Video.Source.values:
        raise ActionError(f"Unknown source {source!r}.", code="unknown_source")
    if route not in Video.Route.values:
        raise ActionError(f"Unknown route {route!r}; use one of {', '.join(Video.Route.values)}.", code="unknown_route")

    uploader = uploader if uploader is not None and uploader.is_authenticated else None
    spooled, sha256, size = _spool(stream)
    digest = upload_digest(sha256, uploader=uploader, caption=caption, title=title, route=route)
    try:
        existing = Video.objects.filter(policy=policy, upload_digest=digest).first()
        if existing is not None:
            return IngestResult(existing, created=False)
        video = Video(
            policy=policy, sha256=sha256, upload_digest=digest, size_bytes=size,
            original_filename=safe_display_name(filename), extension=safe_extension(filename),
            caption=caption, title=title, uploader=uploader, source=source, route=route,
            state=Video.State.RECEIVED, state_changed_at=timezone.now(),
        )
        try:
            return IngestResult(_create_video(video, spooled, enqueue), created=True)
        except IntegrityError:
            # The same upload, sent twice at once: the other one committed first.
            return IngestResult(Video.objects.get(policy=policy, upload_digest=digest), created=False)
    finally:
        spooled.unlink(missing_ok=True)


def upload_digest(sha256: str, *, uploader, caption: str, title: str, route: str) -> str:
    """What tells one upload from another: the bytes and everything the uploader chose. The same
    upload sent again (a retried request, `ingest` run twice over a folder) finds its video; the
    same bytes with another uploader, caption, title or route are another video (migration 0011
    computes the same for the videos before it)."""
    key = [sha256, uploader.pk if uploader is not None else None, caption, title, route]
    return hashlib.sha256(json.dumps(key).encode()).hexdigest()


def _create_video(video: Video, spooled: Path, enqueue: bool) -> Video:
    relative = video.file.field.generate_filename(video, "original")
    destination = Path(settings.MEDIA_ROOT) / relative
    destination.parent.mkdir(parents=True, exist_ok=True)
    with transaction.atomic():
        video.file.name = relative
        video.save()
        VideoEvent.objects.create(
            video=video, to_state=Video.State.RECEIVED, actor=video.uploader, message=f"Uploaded via {video.source}."
        )
        # Keep the bytes before the row becomes visible to workers.
        _keep_original(spooled, destination, video.size_bytes)
        if enqueue:
            transaction.on_commit(lambda: send_task("extract_video", video.pk, retried_by="the reconciler"))
    return video


def _keep_original(spooled: Path, destination: Path, size: int) -> None:
    """Put the upload's bytes at their content address, unless a whole copy is there already.

    The copy is written under a temporary name and renamed into place, so a process that dies
    mid-copy leaves only a `.part` file, never a truncated original that later uploads of the same
    bytes would reuse. A file of the wrong size at the address (cut short before this rule) is
    replaced.
    """
    if destination.exists() and destination.stat().st_size == size:
        return
    fd, part = tempfile.mkstemp(dir=destination.parent, prefix=".original-", suffix=".part")
    try:
        with os.fdopen(fd, "wb") as out, spooled.open("rb") as source:
            if settings.FILE_UPLOAD_PERMISSIONS is not None:  # as Django's storage sets them (mkstemp: 0600)
                os.fchmod(out.fileno(), settings.FILE_UPLOAD_PERMISSIONS)
            shutil.copyfileobj(source, out, _CHUNK)
            out.flush()
            os.fsync(out.fileno())
        os.replace(part, destination)
    except BaseException:
        Path(part).unlink(missing_ok=True)
        raise


def do_edit_video_text(video: Video, *, actor, caption: str, title: str) -> bool:
    """Correct a video's caption or title (the admin's form). The old and new text go into the
    audit log and the video's events; reviews keep the text they judged. Returns whether anything
    changed. The verdict is not redone: it stays the verdict on the text it was given."""
    caption = check_text(caption, field="caption", limit=MAX_CAPTION_CHARS)
    title = check_text(title, field="title", limit=MAX_TITLE_CHARS)
    with transaction.atomic():
        current = Video.objects.select_for_update().get(pk=video.pk)
        changes = {name: [getattr(current, name), new] for name, new in (("caption", caption), ("title", title))
                   if getattr(current, name) != new}
        if not changes:
            return False
        Video.objects.filter(pk=video.pk).update(updated_at=timezone.now(),
                                                 **{name: new for name, (_, new) in changes.items()})
        who = actor.get_username() if actor is not None else "the system"
        summary = f"{' and '.join(changes).capitalize()} of video #{video.pk} changed by {who}."
        VideoEvent.objects.create(video_id=video.pk, from_state=current.state, to_state=current.state, actor=actor,
                                  message=summary, data={"changes": changes})
        record_audit(actor, "video.text_changed", current, summary, changes=changes)
    return True
