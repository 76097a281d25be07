from __future__ import annotations

from django.conf import settings
from rest_framework import serializers
from rest_framework.exceptions import APIException

from .actions.ingest import upload_too_large_message
from .models import MediaFacts, OcrLine, Prediction, Review, ReviewTask, TranscriptSegment, Video


class MediaFactsSerializer(serializers.ModelSerializer):
    class Meta:
        model = MediaFacts
        exclude = ["id", "video"]


class TranscriptSegmentSerializer(serializers.ModelSerializer):
    class Meta:
        model = TranscriptSegment
        fields = ["start_s", "end_s", "text"]


class OcrLineSerializer(serializers.ModelSerializer):
    class Meta:
        model = OcrLine
        fields = ["t_s", "text", "score"]


class PredictionSerializer(serializers.ModelSerializer):
    model_version = serializers.StringRelatedField()

    class Meta:
        model = Prediction
        fields = ["stage", "model_version", "label", "probabilities", "entropy", "rationale",
                  "modality_contributions", "created_at"]


class VideoSerializer(serializers.ModelSerializer):
    policy = serializers.SlugRelatedField(slug_field="slug", read_only=True)
    media = MediaFactsSerializer(read_only=True)
    transcript = TranscriptSegmentSerializer(many=True, read_only=True)
    ocr_lines = OcrLineSerializer(many=True, read_only=True)
    predictions = PredictionSerializer(many=True, read_only=True)

    class Meta:
        model = Video
        fields = [
            "id", "policy", "original_filename", "sha256", "size_bytes", "title", "caption", "source",
            "state", "state_changed_at", "attempts", "error_code", "error_reason", "final_label",
            "decided_by", "created_at", "media", "transcript", "ocr_lines", "predictions",
        ]
        read_only_fields = fields


class VideoSummarySerializer(serializers.ModelSerializer):
    policy = serializers.SlugRelatedField(slug_field="slug", read_only=True)

    class Meta:
        model = Video
        fields = ["id", "policy", "original_filename", "sha256", "title", "source", "state", "error_reason",
                  "final_label", "decided_by", "created_at"]
        read_only_fields = fields


class UploadTooLarge(APIException):
    """413 like the browser form's refusal, not a 400 field error: the request itself was too big."""

    status_code = 413
    default_code = "upload_too_large"

    def __init__(self):
        super().__init__(upload_too_large_message())


class VideoUploadSerializer(serializers.Serializer):
    file = serializers.FileField(allow_empty_file=True, help_text="The video file.")
    caption = serializers.CharField(required=False, allow_blank=True, default="", max_length=5000)
    title = serializers.CharField(required=False, allow_blank=True, default="", max_length=300)
    policy = serializers.SlugField(required=False, allow_blank=True, default="",
                                   help_text="Policy slug; the default policy when empty.")

    def validate_file(self, upload):
        if upload.size > settings.COEFVQ_UPLOAD_HARD_MAX_BYTES:
            raise UploadTooLarge()
        return upload


class ReviewTaskSerializer(serializers.ModelSerializer):
    claimed_by = serializers.StringRelatedField()
    video = VideoSummarySerializer(read_only=True)

    class Meta:
        model = ReviewTask
        fields = ["id", "video", "reason", "status", "priority", "due_at", "model_label", "p_violation",
                  "claimed_by", "claimed_at", "claim_expires_at", "created_at", "completed_at"]
        read_only_fields = fields


class ClaimSerializer(ReviewTaskSerializer):
    """A claimed task, with the token that proves the claim when deciding or skipping."""

    class Meta(ReviewTaskSerializer.Meta):
        fields = ReviewTaskSerializer.Meta.fields + ["claim_token"]
        read_only_fields = fields


class ReviewDecisionSerializer(serializers.Serializer):
    claim_token = serializers.UUIDField()
    label = serializers.CharField(max_length=40, help_text="One of the policy's labels.")
    note = serializers.CharField(required=False, allow_blank=True, default="", max_length=5000)


class ReviewSkipSerializer(serializers.Serializer):
    claim_token = serializers.UUIDField()
    reason = serializers.CharField(max_length=500)


class ReviewSerializer(serializers.ModelSerializer):
    """A labeled example with its provenance: who decided, when, and whether the model agreed."""

    reviewer = serializers.StringRelatedField()

    class Meta:
        model = Review
        fields = ["id", "task", "video", "reviewer", "label", "note", "model_label", "model_decided_by",
                  "disagrees_with_model", "seconds_spent", "created_at"]
        read_only_fields = fields
