"""Django admin: where admins steer the cascade. Changes go through `actions/`, so the admin and
the API validate the same way, and configuration changes become new versions (the history)."""

from __future__ import annotations

import math

from django import forms
from django.contrib import admin, messages
from django.db import transaction
from django.http import HttpResponseRedirect, JsonResponse
from django.shortcuts import get_object_or_404
from django.urls import path, reverse
from django.utils.html import format_html, format_html_join

from . import roles, whatif
from .actions.audit import record_audit
from .actions.ingest import do_edit_video_text
from .actions.model_registry import (CONFIG_SETTINGS, DEFAULT_MLLM_BUDGET, check_cascade_settings, check_labels_known,
                                     config_changes, do_activate_models, do_change_cascade_config, do_roll_back_model)
from .actions.validation import MAX_CAPTION_CHARS, MAX_TITLE_CHARS, ActionError, check_text
from .models import (AuditEntry, CascadeConfig, MediaFacts, ModelVersion, OcrLine, Policy, Prediction, Review, ReviewTask,
                     RoutingDecision, TrainingRun, TranscriptSegment, Video, VideoEvent)


class ReadOnlyAdmin(admin.ModelAdmin):
    """Records the product writes itself (audit trail, predictions, labels): look, never edit."""

    def has_add_permission(self, request, obj=None):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False


# --- policies --------------------------------------------------------------------------------------


class PolicyForm(forms.ModelForm):
    class Meta:
        model = Policy
        fields = ["name", "slug", "description", "labels", "violating_labels", "severity", "is_default"]

    def clean(self):
        data = super().clean()
        labels, violating, severity = data.get("labels"), data.get("violating_labels"), data.get("severity") or {}
        if not isinstance(labels, list) or not all(isinstance(label, str) and label for label in labels):
            raise forms.ValidationError({"labels": 'A list of label names, e.g. ["ok", "scam"].'})
        if len(set(labels)) != len(labels) or "ok" not in labels:
            raise forms.ValidationError({"labels": 'Labels must be unique and include "ok".'})
        if not isinstance(violating, list) or not set(violating) <= set(labels) - {"ok"} or not violating:
            raise forms.ValidationError({"violating_labels": "Name at least one of the labels, other than ok."})
        if not isinstance(severity, dict) or not set(severity) <= set(violating) or not all(
                isinstance(w, (int, float)) and 0 <= w <= 1 for w in severity.values()):
            raise forms.ValidationError({"severity": "Map violating labels to weights between 0 and 1."})
        if self.instance.pk and self.instance.videos.exists() and set(self.instance.labels) - set(labels):
            raise forms.ValidationError({"labels": "Videos already use this policy: labels can be added, not removed."})
        if self.instance.pk:
            try:
                check_labels_known(self.instance, [label for label in labels if label not in self.instance.labels])
            except ActionError as error:
                raise forms.ValidationError({"labels": error.message}) from None
        return data


@admin.register(Policy)
class PolicyAdmin(admin.ModelAdmin):
    form = PolicyForm
    list_display = ["name", "slug", "labels", "violating_labels", "is_default", "created_at"]
    prepopulated_fields = {"slug": ["name"]}

    def save_model(self, request, obj, form, change):
        with transaction.atomic():
            super().save_model(request, obj, form, change)
            changed = {name: form.cleaned_data[name] for name in form.changed_data}
            record_audit(request.user, "policy.changed" if change else "policy.created", obj,
                         f"{obj}: {', '.join(changed) or 'no field'} {'changed' if change else 'created'}.",
                         changes=changed)


@admin.register(AuditEntry)
class AuditEntryAdmin(ReadOnlyAdmin):
    list_display = ["at", "actor_name", "action", "target_type", "target_id", "summary"]
    list_filter = ["action", "target_type"]
    search_fields = ["actor_name", "summary", "target_id"]
    show_full_result_count = False


# --- cascade configuration, with what-if -------------------------------------------------------------


class CascadeConfigForm(forms.ModelForm):
    class Meta:
        model = CascadeConfig
        fields = ["policy", *CONFIG_SETTINGS, "baseline_version", "mllm_version", "change_note"]
        widgets = {"change_note": forms.Textarea(attrs={"rows": 2})}

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["change_note"].required = True
        self.fields["change_note"].help_text = "Why: kept in the history with your name and the time."
        usable = ModelVersion.objects.exclude(status=ModelVersion.Status.REJECTED)
        self.fields["baseline_version"].queryset = usable.filter(kind=ModelVersion.Kind.BASELINE)
        self.fields["mllm_version"].queryset = usable.filter(kind=ModelVersion.Kind.MLLM)

    def clean(self):
        data = super().clean()
        if self.errors:
            return data
        try:
            check_cascade_settings(**{name: data.get(name) for name in CONFIG_SETTINGS})
        except ActionError as error:
            raise forms.ValidationError(error.message, code=error.code)
        return data


def _candidate(data, active: CascadeConfig | None) -> whatif.Candidate:
    """A what-if candidate from the form's raw values; ValueError for anything that is not a number."""
    def number(name, default=None):
        raw = (data.get(name) or "").strip()
        if not raw:
            return default
        value = float(raw)
        if not math.isfinite(value):
            raise ValueError(name)
        return value

    values = dict(entropy_threshold=number("entropy_threshold"), mllm_budget=number("mllm_budget"),
                  allow_below=number("allow_below", 0.0), action_above=number("action_above", 1.0),
                  audit_rate=number("audit_rate", 0.0))
    check_cascade_settings(**values, promotion_margin=0.0, retrain_min_labels=1)
    raw = data.get("stage2_decides")
    if raw is None:
        values["stage2_decides"] = active.stage2_decides if active is not None else True
    elif raw in ("true", "false"):
        values["stage2_decides"] = raw == "true"
    else:
        raise ActionError(f"stage2_decides must be true or false, not {raw[:20]!r}.", code="bad_stage2_decides")
    # The form's baseline: blank is "no baseline"; left out, the active one's.
    if "baseline_version" in data:
        raw = (data.get("baseline_version") or "").strip()
        if raw and not raw.isdigit():
            raise ValueError("baseline_version")
        baseline_version_id = int(raw) if raw else None
    else:
        baseline_version_id = active.baseline_version_id if active is not None else None
    return whatif.Candidate(**values, baseline_version_id=baseline_version_id)


@admin.register(CascadeConfig)
class CascadeConfigAdmin(admin.ModelAdmin):
    """Versions are never edited: "Add" makes a new active version from the current settings."""

    form = CascadeConfigForm
    change_form_template = "admin/moderation/cascadeconfig/change_form.html"
    list_display = ["__str__", "is_active", "routing", "bands", "audit_rate", "baseline_version", "mllm_version",
                    "created_by", "created_at", "changes", "change_note"]
    list_filter = ["policy", "is_active"]
    ordering = ["-created_at", "-version"]

    @admin.display(description="routing")
    def routing(self, config):
        if config.entropy_threshold is not None:
            return f"entropy ≥ {config.entropy_threshold:.3f}"
        return f"budget {config.mllm_budget:.1%}"

    @admin.display(description="allow < P(violation) < action")
    def bands(self, config):
        return f"{config.allow_below:.2f} – {config.action_above:.2f}"

    @admin.display(description="changed")
    def changes(self, config):
        diff = config_changes(config)
        return format_html_join(", ", "{}: {} → {}", ((name.replace("_id", ""), old, new)
                                                      for name, (old, new) in diff.items())) or "—"

    def get_changeform_initial_data(self, request):
        current = CascadeConfig.objects.filter(is_active=True).select_related("policy").first()
        if current is None:
            return {"policy": Policy.objects.filter(is_default=True).first(), "mllm_budget": DEFAULT_MLLM_BUDGET}
        initial = {name: getattr(current, name) for name in CONFIG_SETTINGS}
        return {**initial, "policy": current.policy, "baseline_version": current.baseline_version,
                "mllm_version": current.mllm_version}

    def has_change_permission(self, request, obj=None):
        return False  # a change is a new version: use "Add"

    def has_delete_permission(self, request, obj=None):
        return False  # predictions point at the version they used

    def save_model(self, request, obj, form, change):
        data = form.cleaned_data
        settings = {name: data[name] for name in (*CONFIG_SETTINGS, "baseline_version", "mllm_version")}
        new = do_change_cascade_config(data["policy"], actor=request.user, note=data["change_note"], **settings)
        obj.pk, obj.version = new.pk, new.version

    def get_urls(self):
        return [path("what-if/", self.admin_site.admin_view(self.what_if_view), name="moderation_cascadeconfig_whatif"),
                *super().get_urls()]

    def what_if_view(self, request):
        """JSON for the add form's live what-if panel: the candidate next to the active version."""
        if not self.has_add_permission(request):
            return JsonResponse({"detail": "Only admins can change the cascade."}, status=403)
        policy = get_object_or_404(Policy, pk=request.GET.get("policy") or 0)
        active = CascadeConfig.objects.filter(policy=policy, is_active=True).first()
        try:
            candidate = _candidate(request.GET, active)
        except (ValueError, ActionError) as error:
            message = error.message if isinstance(error, ActionError) else f"{error} is not a number."
            return JsonResponse({"detail": message}, status=400)
        return JsonResponse({
            "candidate": whatif.project(policy, candidate).as_dict(),
            "active": whatif.project(policy, whatif.Candidate.of(active)).as_dict() if active else None,
            "min_labeled": whatif.MIN_LABELED,
        })


# --- models and retraining ---------------------------------------------------------------------------


@admin.register(ModelVersion)
class ModelVersionAdmin(admin.ModelAdmin):
    list_display = ["version", "kind", "policy", "status", "f1", "recall_at_p80", "created_at"]
    list_filter = ["policy", "kind", "status"]
    readonly_fields = ["policy", "kind", "version", "artifact_path", "status", "config", "metrics", "created_at"]
    actions = ["promote", "roll_back"]

    @staticmethod
    def _metric(version, name):
        for source in (version.metrics.get("gold", {}), version.metrics.get("test", {}), version.metrics):
            if isinstance(source, dict) and isinstance(source.get(name), (int, float)):
                return f"{source[name]:.3f}"
        return "—"

    @admin.display(description="F1")
    def f1(self, version):
        return self._metric(version, "f1")

    @admin.display(description="R@P80")
    def recall_at_p80(self, version):
        return self._metric(version, "R@P80")

    def has_add_permission(self, request):
        return False  # versions come from training

    def has_delete_permission(self, request, obj=None):
        return False

    @admin.action(description="Promote: make the selected version active")
    def promote(self, request, queryset):
        if queryset.count() != 1:
            self.message_user(request, "Select exactly one version to promote.", messages.ERROR)
            return
        version = queryset.get()
        try:
            config = do_activate_models(version.policy, actor=request.user,
                                        note=f"Promoted {version} in the admin", **{version.kind: version})
        except ActionError as error:
            self.message_user(request, error.message, messages.ERROR)
            return
        self.message_user(request, f"{version} is active ({config}).", messages.SUCCESS)

    @admin.action(description="Roll back: reactivate the version active before the selected one")
    def roll_back(self, request, queryset):
        for version in queryset:
            try:
                config = do_roll_back_model(version, actor=request.user)
            except ActionError as error:
                self.message_user(request, error.message, messages.ERROR)
            else:
                restored = getattr(config, f"{version.kind}_version")
                self.message_user(request, f"Rolled back from {version} to {restored} ({config}).", messages.SUCCESS)


@admin.register(TrainingRun)
class TrainingRunAdmin(ReadOnlyAdmin):
    change_list_template = "admin/moderation/trainingrun/change_list.html"
    change_form_template = "admin/moderation/trainingrun/change_form.html"
    list_display = ["id", "policy", "status", "progress_bar", "step", "trigger", "requested_by", "new_labels",
                    "gold_examples", "created_at", "finished_at"]
    list_filter = ["policy", "status", "trigger"]
    readonly_fields = [f.name for f in TrainingRun._meta.fields]

    @admin.display(description="progress")
    def progress_bar(self, run):
        return format_html('<progress max="1" value="{}" data-run="{}">{}%</progress>', run.progress, run.pk,
                           round(run.progress * 100))

    def has_view_permission(self, request, obj=None):
        return roles.has_role(request.user, roles.LEAD, roles.ADMIN) or super().has_view_permission(request, obj)

    def get_urls(self):
        view = self.admin_site.admin_view
        return [path("retrain/", view(self.retrain_view), name="moderation_trainingrun_retrain"),
                path("<int:pk>/progress/", view(self.progress_view), name="moderation_trainingrun_progress"),
                *super().get_urls()]

    def retrain_view(self, request):
        """The "Retrain now" button (POST only, so a link or a prefetch never starts a run)."""
        from . import retraining

        changelist = reverse("admin:moderation_trainingrun_changelist")
        if request.method != "POST" or not roles.has_role(request.user, roles.ADMIN):
            self.message_user(request, "Only admins can start a retraining, with the button.", messages.ERROR)
            return HttpResponseRedirect(changelist)
        policy = get_object_or_404(Policy, pk=request.POST.get("policy") or 0)
        try:
            run = retraining.do_request_training_run(policy, trigger=TrainingRun.Trigger.BUTTON,
                                                     requested_by=request.user)
        except ActionError as error:
            self.message_user(request, error.message, messages.ERROR)
            return HttpResponseRedirect(changelist)
        self.message_user(request, f"Retraining started ({run}).", messages.SUCCESS)
        return HttpResponseRedirect(reverse("admin:moderation_trainingrun_change", args=[run.pk]))

    def progress_view(self, request, pk: int):
        run = get_object_or_404(TrainingRun, pk=pk)
        if not self.has_view_permission(request, run):
            return JsonResponse({"detail": "Not allowed."}, status=403)
        return JsonResponse({"status": run.status, "status_display": run.get_status_display(),
                             "progress": run.progress, "step": run.step, "decision": run.decision,
                             "error": run.error, "finished": run.status in TrainingRun.FINISHED})

    def changelist_view(self, request, extra_context=None):
        extra_context = {**(extra_context or {}), "policies": Policy.objects.all(),
                         "can_retrain": roles.has_role(request.user, roles.ADMIN)}
        return super().changelist_view(request, extra_context)


# --- videos, predictions, reviews ----------------------------------------------------------------------


class EvidenceInline:
    """What extraction stored: shown, never edited (the models and retraining read it)."""

    extra = 0
    can_delete = False

    def has_add_permission(self, request, obj=None):
        return False

    def has_change_permission(self, request, obj=None):
        return False


class MediaFactsInline(EvidenceInline, admin.StackedInline):
    model = MediaFacts


class TranscriptInline(EvidenceInline, admin.TabularInline):
    model = TranscriptSegment


class OcrInline(EvidenceInline, admin.TabularInline):
    model = OcrLine
    exclude = ["box"]


class EventInline(EvidenceInline, admin.TabularInline):
    model = VideoEvent


class VideoTextForm(forms.ModelForm):
    """Only the caption and title can be corrected, with the limits an upload has."""

    class Meta:
        model = Video
        fields = ["caption", "title"]

    def clean(self):
        cleaned = super().clean()
        for name, limit in (("caption", MAX_CAPTION_CHARS), ("title", MAX_TITLE_CHARS)):
            try:
                cleaned[name] = check_text(cleaned.get(name), field=name, limit=limit)
            except ActionError as error:
                self.add_error(name, error.message)
        return cleaned


class HeldFilter(admin.SimpleListFilter):
    """Videos waiting on a model or configuration problem (held_reason says which)."""

    title = "held by a model or configuration problem"
    parameter_name = "held"

    def lookups(self, request, model_admin):
        return [("yes", "Held"), ("no", "Not held")]

    def queryset(self, request, queryset):
        if self.value() == "yes":
            return queryset.exclude(held_reason="")
        if self.value() == "no":
            return queryset.filter(held_reason="")
        return queryset


@admin.register(Video)
class VideoAdmin(admin.ModelAdmin):
    """Videos come in through ingestion and are never deleted: their events, reviews and audit
    entries are the trail. An admin may correct the caption or title, and that is audited."""

    form = VideoTextForm
    list_display = ["id", "original_filename", "policy", "state", "final_label", "decided_by", "decision", "source",
                    "created_at", "held_reason"]
    list_filter = ["state", HeldFilter, "source", "policy", "final_label", "decided_by", "decision"]
    search_fields = ["original_filename", "title", "caption", "sha256"]
    readonly_fields = ["policy", "file", "original_filename", "extension", "sha256", "upload_digest", "size_bytes",
                       "uploader", "source", "state", "state_changed_at", "attempts", "lease_expires_at",
                       "error_code", "error_reason", "held_reason", "route", "final_label", "decided_by", "decision",
                       "needs_review",
                       "created_at", "updated_at"]
    inlines = [MediaFactsInline, TranscriptInline, OcrInline, EventInline]
    list_select_related = ["policy"]
    show_full_result_count = False  # COUNT(*) over a large table on every page is slow

    def has_add_permission(self, request):
        return False

    def has_delete_permission(self, request, obj=None):
        return False

    def save_model(self, request, obj, form, change):
        do_edit_video_text(obj, actor=request.user, caption=form.cleaned_data["caption"],
                           title=form.cleaned_data["title"])


@admin.register(VideoEvent)
class VideoEventAdmin(ReadOnlyAdmin):
    list_display = ["at", "video", "from_state", "to_state", "actor", "message"]
    list_filter = ["to_state"]
    show_full_result_count = False


@admin.register(Prediction)
class PredictionAdmin(ReadOnlyAdmin):
    list_display = ["video", "stage", "model_version", "label", "entropy", "cascade_config", "compute_ms",
                    "created_at"]
    list_filter = ["stage", "model_version"]
    list_select_related = ["model_version", "cascade_config__policy"]
    show_full_result_count = False


@admin.register(RoutingDecision)
class RoutingDecisionAdmin(ReadOnlyAdmin):
    list_display = ["video", "entropy", "threshold", "routed_to_mllm", "forced_route", "cascade_config", "created_at"]
    list_filter = ["routed_to_mllm", "forced_route"]
    list_select_related = ["cascade_config__policy"]
    show_full_result_count = False


@admin.register(ReviewTask)
class ReviewTaskAdmin(ReadOnlyAdmin):
    list_display = ["id", "video", "reason", "status", "priority", "model_label", "claimed_by", "claim_expires_at",
                    "created_at", "completed_at"]
    list_filter = ["status", "reason", "policy"]
    list_select_related = ["video", "claimed_by"]
    show_full_result_count = False


@admin.register(Review)
class ReviewAdmin(ReadOnlyAdmin):
    list_display = ["created_at", "video", "reviewer", "label", "model_label", "disagrees_with_model",
                    "seconds_spent"]
    list_filter = ["label", "disagrees_with_model", "reviewer"]
    list_select_related = ["video", "reviewer"]
    show_full_result_count = False
