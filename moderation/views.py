"""Browser pages. Thin: validation and changes live in `actions/`."""

from __future__ import annotations

from pathlib import Path

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied
from django.core.paginator import Paginator
from django.http import FileResponse, Http404
from django.shortcuts import get_object_or_404, redirect, render
from django.utils import timezone
from django.views.decorators.http import require_GET, require_http_methods, require_POST, require_safe

from . import byte_ranges, roles, workspace
from .actions.ingest import do_ingest
from .actions.review_queue import (check_can_correct, do_claim_next, do_correct_review, do_reopen, do_skip_review,
                                   do_submit_review)
from .actions.validation import ActionError
from .forms import UploadForm
from .models import Review, ReviewTask, Video
from .throttling import upload_rate_limited


def _visible_videos(user):
    videos = Video.objects.select_related("policy")
    return videos if roles.can_see_all_videos(user) else videos.filter(uploader=user)


@login_required
def home(request):
    return redirect("video-list")


@login_required
@upload_rate_limited
@require_http_methods(["GET", "POST"])
def upload(request):
    form = UploadForm(request.POST, request.FILES) if request.method == "POST" else UploadForm()
    status = 400 if request.method == "POST" else 200
    if request.method == "POST" and form.is_valid():
        data = form.cleaned_data
        try:
            result = do_ingest(
                data["file"], filename=data["file"].name, source=Video.Source.WEB, caption=data["caption"],
                title=data["title"], policy_slug=data["policy"].slug if data["policy"] else None,
                uploader=request.user,
            )
        except ActionError as error:
            form.add_error("file", error.message)
            status = error.status  # 413 for a file over the hard limit
        else:
            if result.created:
                messages.success(request, f"Received {result.video.original_filename}; processing has started.")
            else:
                messages.info(request, "You uploaded this file with this caption and title before; here is that video.")
            return redirect("video-detail", pk=result.video.pk)
    return render(request, "moderation/upload.html", {"form": form}, status=status)


@login_required
def video_list(request):
    videos = _visible_videos(request.user).order_by("-created_at", "-id")
    state = request.GET.get("state", "")
    if state in Video.State.values:
        videos = videos.filter(state=state)
    page = Paginator(videos, 50).get_page(request.GET.get("page"))
    return render(request, "moderation/video_list.html",
                  {"page": page, "state": state, "states": Video.State.choices})


@login_required
def video_detail(request, pk: int):
    video = get_object_or_404(
        Video.objects.select_related("policy", "uploader").prefetch_related(
            "frames", "transcript", "ocr_lines", "events", "predictions__model_version"
        ),
        pk=pk,
    )
    if not (roles.can_see_all_videos(request.user) or video.uploader_id == request.user.pk):
        raise PermissionDenied
    lead = roles.has_role(request.user, roles.LEAD, roles.ADMIN)
    latest_review = video.reviews.select_related("reviewer").first() if lead else None  # newest first
    return render(request, "moderation/video_detail.html", {"video": video, "media": getattr(video, "media", None),
                                                            "lead": lead, "latest_review": latest_review})


@login_required
@require_POST
def video_reopen(request, pk: int):
    """A lead sends a decided video back to the queue for a second review."""
    try:
        do_reopen(pk, request.user, reason=request.POST.get("reason", ""))
    except ActionError as error:
        return _lead_refused(request, error, pk)
    messages.success(request, f"Video #{pk} is back in the queue for a second review.")
    return redirect("video-detail", pk=pk)


@login_required
@require_POST
def video_correct(request, pk: int):
    """A lead corrects the video's latest review."""
    review = Review.objects.filter(video_id=pk).first()  # newest first
    try:
        check_can_correct(request.user)
        if review is None:
            raise ActionError("This video has no review to correct.", code="no_review", status=409)
        do_correct_review(review.pk, request.user, label=request.POST.get("label", ""),
                          reason=request.POST.get("reason", ""))
    except ActionError as error:
        return _lead_refused(request, error, pk)
    messages.success(request, f"Video #{pk} corrected to {request.POST.get('label')}.")
    return redirect("video-detail", pk=pk)


def _lead_refused(request, error: ActionError, pk: int):
    if error.status == 403:
        raise PermissionDenied(error.message)
    messages.error(request, error.message)
    return redirect("video-detail", pk=pk)


def _viewable_video(user, pk: int) -> Video:
    video = get_object_or_404(Video, pk=pk)
    if not (roles.can_see_all_videos(user) or video.uploader_id == user.pk):
        raise PermissionDenied
    return video


@login_required
def video_frame(request, pk: int, index: int):
    video = _viewable_video(request.user, pk)
    frame = get_object_or_404(video.frames, index=index)
    return FileResponse(frame.image.open("rb"), content_type="image/jpeg")


@login_required
@require_safe
def video_media(request, pk: int):
    """The uploaded file itself, with byte ranges so the player can seek."""
    video = _viewable_video(request.user, pk)
    path = Path(video.file.path)
    if not path.is_file():
        raise Http404("The video's file is missing.")
    # The stored file is content-addressed, so its hash is a strong validator.
    return byte_ranges.ranged_file_response(request, path, etag=f'"{video.sha256}"')


# --- reviewer workspace --------------------------------------------------------------------------


def _require_reviewer(user) -> None:
    if not roles.has_role(user, *roles.ROLES):
        raise PermissionDenied("Only reviewers, leads and admins can open the review queue.")


@login_required
@require_GET
def review_queue(request):
    _require_reviewer(request.user)
    reason = request.GET.get("reason", "")
    page = workspace.queue_page(reason, request.GET.get("page"))
    context = {"page": page, "reason": reason, "reasons": ReviewTask.Reason.choices, "now": timezone.now()}
    # The live queue page swaps in just the table when the queue changes.
    template = "moderation/_queue_table.html" if request.GET.get("fragment") else "moderation/queue.html"
    return render(request, template, context)


@login_required
@require_POST
def claim_next(request):
    try:
        task = do_claim_next(request.user)
    except ActionError as error:
        return _refused(request, error)
    if task is None:
        messages.info(request, "The queue is empty: nothing to review right now.")
        return redirect("review-queue")
    return redirect("review", task_id=task.pk)


@login_required
@require_GET
def review(request, task_id: int):
    _require_reviewer(request.user)
    task = get_object_or_404(ReviewTask.objects.select_related("claimed_by"), pk=task_id)
    holds_claim = workspace.holds_claim(task, request.user)
    if not holds_claim and not roles.has_role(request.user, roles.LEAD, roles.ADMIN):
        return render(request, "moderation/review_closed.html",
                      {"task": task, "message": _why_closed(task, request.user)}, status=403)
    context = workspace.review_context(task)
    context["read_only"] = not holds_claim
    return render(request, "moderation/review.html", context)


def _why_closed(task: ReviewTask, user) -> str:
    if task.status == ReviewTask.Status.DONE:
        return "This video was already reviewed."
    if task.claimed_by_id == user.pk:
        return "Your claim on this video ran out and it went back to the queue. Claim the next item from the queue."
    return "You do not hold the claim on this video, so you cannot review it. Claim the next item from the queue."


@login_required
@require_POST
def review_decide(request, task_id: int):
    try:
        review = do_submit_review(task_id, request.user, claim_token=request.POST.get("claim_token", ""),
                                  label=request.POST.get("label", ""), note=request.POST.get("note", ""))
    except ActionError as error:
        return _refused(request, error, task_id=task_id)
    messages.success(request, f"Saved: video #{review.video_id} is {review.label}.")
    return _to_next_item(request)


@login_required
@require_POST
def review_skip(request, task_id: int):
    try:
        do_skip_review(task_id, request.user, claim_token=request.POST.get("claim_token", ""),
                       reason=request.POST.get("reason", ""))
    except ActionError as error:
        return _refused(request, error, task_id=task_id)
    messages.info(request, "Skipped; the video went back to the queue for someone else.")
    return _to_next_item(request)


def _to_next_item(request):
    task = do_claim_next(request.user)
    if task is None:
        messages.info(request, "All done: the queue is empty.")
        return redirect("review-queue")
    return redirect("review", task_id=task.pk)


def _refused(request, error: ActionError, *, task_id: int | None = None):
    """A bad field (400) sends the reviewer back to the item, which they still hold; a lost claim,
    a finished task or a missing role ends on a page that says so, with nothing written."""
    if error.status == 400 and task_id is not None:
        messages.error(request, error.message)
        return redirect("review", task_id=task_id)
    return render(request, "moderation/review_closed.html", {"message": error.message}, status=error.status)
