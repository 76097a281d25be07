"""REST API: thin views over `actions/` (the operations). Token or session auth; schema at /api/schema/."""

from __future__ import annotations

from drf_spectacular.utils import extend_schema
from rest_framework import mixins, permissions, status, viewsets
from rest_framework.decorators import action
from rest_framework.parsers import FormParser, MultiPartParser
from rest_framework.response import Response

from . import roles
from .actions.ingest import do_ingest
from .actions.review_queue import do_claim_next, do_skip_review, do_submit_review
from .actions.validation import ActionError
from .models import Review, ReviewTask, Video
from .serializers import (ClaimSerializer, ReviewDecisionSerializer, ReviewSerializer, ReviewSkipSerializer,
                          ReviewTaskSerializer, VideoSerializer, VideoSummarySerializer, VideoUploadSerializer)
from .throttling import UploadThrottle


class IsReviewer(permissions.BasePermission):
    message = "Only reviewers, leads and admins can use the review queue."

    def has_permission(self, request, view):
        return roles.has_role(request.user, *roles.ROLES)


def _error(error: ActionError) -> Response:
    return Response({"detail": error.message, "code": error.code}, status=error.status)


class VideoViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin, viewsets.GenericViewSet):
    parser_classes = [MultiPartParser, FormParser]
    throttle_scope = "uploads"

    def get_throttles(self):
        return [UploadThrottle()] if self.action == "create" else []

    def get_serializer_class(self):
        return VideoSummarySerializer if self.action == "list" else VideoSerializer

    def get_queryset(self):
        if getattr(self, "swagger_fake_view", False):  # schema generation: no request user
            return Video.objects.none()
        videos = Video.objects.select_related("policy", "media").order_by("-created_at", "-id")
        if self.action == "retrieve":
            videos = videos.prefetch_related("transcript", "ocr_lines", "predictions__model_version")
        if not roles.can_see_all_videos(self.request.user):
            videos = videos.filter(uploader=self.request.user)
        return videos

    @extend_schema(
        request={"multipart/form-data": VideoUploadSerializer},
        responses={201: VideoSerializer, 200: VideoSerializer},
        description="Upload a video: each upload is a video of its own (201). The same upload sent again (the same "
                    "bytes, caption, title and route from the same user) returns the video it made, with 200.",
    )
    def create(self, request):
        upload = VideoUploadSerializer(data=request.data)
        upload.is_valid(raise_exception=True)
        data = upload.validated_data
        try:
            result = do_ingest(
                data["file"], filename=data["file"].name, source=Video.Source.API, caption=data["caption"],
                title=data["title"], policy_slug=data["policy"] or None, uploader=request.user,
            )
        except ActionError as error:
            return _error(error)
        return Response(
            VideoSerializer(result.video, context={"request": request}).data,
            status=status.HTTP_201_CREATED if result.created else status.HTTP_200_OK,
        )


class ReviewTaskViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin, viewsets.GenericViewSet):
    """The human review queue, most urgent first. Claim, then decide or skip with the claim token."""

    permission_classes = [permissions.IsAuthenticated, IsReviewer]
    serializer_class = ReviewTaskSerializer

    def get_queryset(self):
        if getattr(self, "swagger_fake_view", False):
            return ReviewTask.objects.none()
        tasks = ReviewTask.objects.select_related("video__policy", "claimed_by").order_by("due_at", "id")
        status_filter = self.request.query_params.get("status", ReviewTask.Status.OPEN)
        return tasks.filter(status=status_filter) if status_filter in ReviewTask.Status.values else tasks.none()

    @extend_schema(request=None, responses={200: ClaimSerializer, 204: None},
                   description="Claim the most urgent free task (or get back the one you hold). 204 when the "
                               "queue is empty.")
    @action(detail=False, methods=["post"])
    def claim(self, request, format=None):
        try:
            task = do_claim_next(request.user)
        except ActionError as error:
            return _error(error)
        if task is None:
            return Response(status=status.HTTP_204_NO_CONTENT)
        return Response(ClaimSerializer(task).data)

    @extend_schema(request=ReviewDecisionSerializer, responses={201: ReviewSerializer},
                   description="Decide a claimed task. 409 when your claim ran out: nothing is saved.")
    @action(detail=True, methods=["post"])
    def decision(self, request, pk=None, format=None):
        form = ReviewDecisionSerializer(data=request.data)
        form.is_valid(raise_exception=True)
        try:
            review = do_submit_review(int(pk), request.user, **form.validated_data)
        except ActionError as error:
            return _error(error)
        return Response(ReviewSerializer(review).data, status=status.HTTP_201_CREATED)

    @extend_schema(request=ReviewSkipSerializer, responses={204: None},
                   description="Give a claimed task back, with a reason; you are not given it again.")
    @action(detail=True, methods=["post"])
    def skip(self, request, pk=None, format=None):
        form = ReviewSkipSerializer(data=request.data)
        form.is_valid(raise_exception=True)
        try:
            do_skip_review(int(pk), request.user, **form.validated_data)
        except ActionError as error:
            return _error(error)
        return Response(status=status.HTTP_204_NO_CONTENT)


class ReviewViewSet(mixins.ListModelMixin, viewsets.GenericViewSet):
    """Reviewer labels with provenance, newest first: what retraining learns from."""

    permission_classes = [permissions.IsAuthenticated, IsReviewer]
    serializer_class = ReviewSerializer
    queryset = Review.objects.select_related("reviewer").order_by("-created_at", "-id")
