from django.contrib import admin

from .models import (CascadeConfig, MediaFacts, ModelVersion, OcrLine, Policy, Prediction, RoutingDecision,
                     TranscriptSegment, Video, VideoEvent)


@admin.register(Policy)
class PolicyAdmin(admin.ModelAdmin):
    list_display = ["name", "slug", "is_default", "created_at"]
    prepopulated_fields = {"slug": ["name"]}


class MediaFactsInline(admin.StackedInline):
    model = MediaFacts
    can_delete = False
    extra = 0


class TranscriptInline(admin.TabularInline):
    model = TranscriptSegment
    extra = 0


class OcrInline(admin.TabularInline):
    model = OcrLine
    extra = 0
    exclude = ["box"]


class EventInline(admin.TabularInline):
    model = VideoEvent
    extra = 0
    can_delete = False
    readonly_fields = ["at", "from_state", "to_state", "actor", "message", "data"]

    def has_add_permission(self, request, obj=None):
        return False


@admin.register(Video)
class VideoAdmin(admin.ModelAdmin):
    list_display = ["id", "original_filename", "policy", "state", "final_label", "decided_by", "source", "created_at"]
    list_filter = ["state", "source", "policy", "final_label"]
    search_fields = ["original_filename", "title", "caption", "sha256"]
    readonly_fields = ["sha256", "size_bytes", "state", "state_changed_at", "attempts", "lease_expires_at",
                       "error_code", "error_reason", "created_at", "updated_at"]
    inlines = [MediaFactsInline, TranscriptInline, OcrInline, EventInline]


@admin.register(VideoEvent)
class VideoEventAdmin(admin.ModelAdmin):
    list_display = ["at", "video", "from_state", "to_state", "actor", "message"]
    list_filter = ["to_state"]

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False

    def has_add_permission(self, request):
        return False


admin.site.register(ModelVersion)
admin.site.register(CascadeConfig)
admin.site.register(Prediction)
admin.site.register(RoutingDecision)
