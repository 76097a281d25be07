"""Browser pages. Thin: validation and changes live in `actions`."""

from __future__ import annotations

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied
from django.core.paginator import Paginator
from django.http import FileResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.views.decorators.http import require_http_methods

from . import actions, roles
from .forms import UploadForm
from .models import Video


def _visible_videos(user):
    videos = Video.objects.select_related("policy")
    return videos if roles.can_see_all_videos(user) else videos.filter(uploader=user)


@login_required
def home(request):
    return redirect("video-list")


@login_required
@require_http_methods(["GET", "POST"])
def upload(request):
    form = UploadForm(request.POST, request.FILES) if request.method == "POST" else UploadForm()
    if request.method == "POST" and form.is_valid():
        data = form.cleaned_data
        try:
            result = actions.do_ingest(
                data["file"], filename=data["file"].name, source=Video.Source.WEB, caption=data["caption"],
                title=data["title"], policy_slug=data["policy"].slug if data["policy"] else None,
                uploader=request.user,
            )
        except actions.ActionError as error:
            form.add_error("file", error.message)
        else:
            if result.created:
                messages.success(request, f"Received {result.video.original_filename}; processing has started.")
            else:
                messages.info(request, "This exact file was uploaded before; here is that video.")
            return redirect("video-detail", pk=result.video.pk)
    status = 400 if request.method == "POST" else 200
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
    return render(request, "moderation/video_detail.html", {"video": video, "media": getattr(video, "media", None)})


@login_required
def video_frame(request, pk: int, index: int):
    video = get_object_or_404(Video, pk=pk)
    if not (roles.can_see_all_videos(request.user) or video.uploader_id == request.user.pk):
        raise PermissionDenied
    frame = get_object_or_404(video.frames, index=index)
    return FileResponse(frame.image.open("rb"), content_type="image/jpeg")
