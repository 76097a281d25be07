"""REST API: thin views over `actions`. Token or session auth; schema at /api/schema/."""

from __future__ import annotations

from drf_spectacular.utils import extend_schema
from rest_framework import mixins, status, viewsets
from rest_framework.parsers import FormParser, MultiPartParser
from rest_framework.response import Response

from . import actions, roles
from .models import Video
from .serializers import VideoSerializer, VideoSummarySerializer, VideoUploadSerializer


class VideoViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin, viewsets.GenericViewSet):
    parser_classes = [MultiPartParser, FormParser]

    def get_serializer_class(self):
        return VideoSummarySerializer if self.action == "list" else VideoSerializer

    def get_queryset(self):
        videos = Video.objects.select_related("policy", "media").order_by("-created_at", "-id")
        if self.action == "retrieve":
            videos = videos.prefetch_related("transcript", "ocr_lines", "predictions__model_version")
        if not roles.can_see_all_videos(self.request.user):
            videos = videos.filter(uploader=self.request.user)
        return videos

    @extend_schema(
        request={"multipart/form-data": VideoUploadSerializer},
        responses={201: VideoSerializer, 200: VideoSerializer},
        description="Upload a video. The same bytes uploaded again return the existing video with 200.",
    )
    def create(self, request):
        upload = VideoUploadSerializer(data=request.data)
        upload.is_valid(raise_exception=True)
        data = upload.validated_data
        try:
            result = actions.do_ingest(
                data["file"], filename=data["file"].name, source=Video.Source.API, caption=data["caption"],
                title=data["title"], policy_slug=data["policy"] or None, uploader=request.user,
            )
        except actions.ActionError as error:
            return Response({"detail": error.message, "code": error.code}, status=error.status)
        return Response(
            VideoSerializer(result.video, context={"request": request}).data,
            status=status.HTTP_201_CREATED if result.created else status.HTTP_200_OK,
        )
