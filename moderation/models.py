"""What the product remembers. The database is the truth about every video's state; broker
messages only nudge the next step. State changes go through `moderation.actions`."""

from __future__ import annotations

from pathlib import Path

from django.conf import settings
from django.db import models
from django.db.models import Q


class Policy(models.Model):
    """A moderation task: its labels, which of them violate, and (later) its models and thresholds."""

    slug = models.SlugField(unique=True)
    name = models.CharField(max_length=200)
    description = models.TextField(blank=True)
    labels = models.JSONField(help_text="Every label a video can get, e.g. [\"ok\", \"scam\", ...].")
    violating_labels = models.JSONField(help_text="The subset of labels that break the policy.")
    severity = models.JSONField(
        default=dict, blank=True,
        help_text="Violating label -> weight in 0..1; the review queue serves severe items sooner.",
    )
    is_default = models.BooleanField(default=False)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        verbose_name_plural = "policies"
        constraints = [
            models.UniqueConstraint(fields=["is_default"], condition=Q(is_default=True), name="one_default_policy"),
        ]

    def __str__(self) -> str:
        return self.name


def video_upload_path(video: Video, filename: str) -> str:
    # Content-addressed, so a file name from the uploader never chooses a directory.
    return f"videos/{video.sha256[:2]}/{video.sha256}/original{video.extension}"


class Video(models.Model):
    class Source(models.TextChoices):
        WEB = "web", "Browser upload"
        API = "api", "REST API"
        CLI = "cli", "Command line"

    class State(models.TextChoices):
        RECEIVED = "received", "Received"
        EXTRACTING = "extracting", "Extracting evidence"
        EXTRACTED = "extracted", "Evidence extracted"
        SCORING = "scoring", "Stage 1 scoring"
        AWAITING_MLLM = "awaiting_mllm", "Waiting for the multimodal model"
        DECIDED = "decided", "Decided"
        FAILED = "failed", "Failed"

    TERMINAL_STATES = (State.DECIDED, State.FAILED)

    class Route(models.TextChoices):
        AUTO = "auto", "Entropy router"
        BASELINE = "baseline", "Forced: baseline only"
        MLLM = "mllm", "Forced: multimodal LLM"

    class Decision(models.TextChoices):
        AUTO_ALLOW = "auto_allow", "Allowed automatically"
        AUTO_ACTION = "auto_action", "Actioned automatically"
        HUMAN_REVIEW = "human_review", "Sent to human review"

    policy = models.ForeignKey(Policy, on_delete=models.PROTECT, related_name="videos")
    file = models.FileField(upload_to=video_upload_path, max_length=300)
    original_filename = models.CharField(max_length=255)
    extension = models.CharField(max_length=16, blank=True)
    sha256 = models.CharField(max_length=64, help_text="Of the bytes: uploads of the same bytes share the file and "
                                                      "the media work (frames, transcript, on-screen text).")
    upload_digest = models.CharField(
        max_length=64, null=True, blank=True,
        help_text="Of the bytes and everything the uploader chose (uploader, caption, title, route): "
                  "the same upload sent again (a retry) finds its video; anything else is another upload.")
    size_bytes = models.BigIntegerField()
    title = models.CharField(max_length=300, blank=True)
    caption = models.TextField(blank=True)
    uploader = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL)
    source = models.CharField(max_length=8, choices=Source.choices)

    state = models.CharField(max_length=16, choices=State.choices, default=State.RECEIVED)
    state_changed_at = models.DateTimeField()
    attempts = models.PositiveIntegerField(default=0, help_text="Processing attempts started for the current step.")
    # While a worker is on the video, others leave it alone until this passes; then the
    # reconciler hands it to someone else (the worker may have died).
    lease_expires_at = models.DateTimeField(null=True, blank=True)
    error_code = models.CharField(max_length=40, blank=True)
    error_reason = models.TextField(blank=True, help_text="Why processing failed, in words a moderator understands.")
    held_reason = models.TextField(
        blank=True, help_text="Why a step cannot run now for a reason that is not the file's (a model or configuration "
                              "problem): the video waits where it is and is tried again. For admins.")

    # Filled by the cascade.
    route = models.CharField(max_length=8, choices=Route.choices, default=Route.AUTO)
    final_label = models.CharField(max_length=40, blank=True)
    decided_by = models.CharField(max_length=16, blank=True)  # "baseline" | "mllm" | "human"
    decision = models.CharField(max_length=16, choices=Decision.choices, blank=True)
    needs_review = models.BooleanField(default=False, help_text="In the human queue: review band or audit sample.")

    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["policy", "upload_digest"], name="one_video_per_upload"),
            models.CheckConstraint(
                condition=~Q(state="failed") | ~Q(error_reason=""), name="failed_video_has_reason"
            ),
        ]
        indexes = [
            models.Index(fields=["state", "state_changed_at"]),
            models.Index(fields=["-created_at"]),
            models.Index(fields=["sha256"], name="video_content"),
        ]

    def __str__(self) -> str:
        return f"#{self.pk} {self.original_filename}"

    @property
    def is_terminal(self) -> bool:
        return self.state in self.TERMINAL_STATES


class VideoEvent(models.Model):
    """Append-only audit trail: every state change, who or what caused it, and why."""

    # PROTECT: the trail outlives any attempt to delete what it is about (PostgreSQL refuses
    # UPDATE and DELETE on this table; migration 0012).
    video = models.ForeignKey(Video, on_delete=models.PROTECT, related_name="events")
    at = models.DateTimeField(auto_now_add=True)
    from_state = models.CharField(max_length=16, blank=True)
    to_state = models.CharField(max_length=16)
    actor = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.PROTECT)
    message = models.TextField(blank=True)
    data = models.JSONField(default=dict, blank=True)

    class Meta:
        ordering = ["at", "id"]
        # by time: /metrics reads the step seconds of the recent events
        indexes = [models.Index(fields=["video", "at"]), models.Index(fields=["-at"], name="video_event_recent")]

    def save(self, *args, **kwargs):
        if self.pk is not None:
            raise ValueError("Audit events are append-only.")
        super().save(*args, **kwargs)

    def delete(self, *args, **kwargs):
        raise ValueError("Audit events are append-only.")


class MediaFacts(models.Model):
    video = models.OneToOneField(Video, on_delete=models.CASCADE, related_name="media")
    container = models.CharField(max_length=100)
    duration_s = models.FloatField()
    width = models.PositiveIntegerField()
    height = models.PositiveIntegerField()
    fps = models.FloatField()
    rotation = models.IntegerField(default=0)
    video_codec = models.CharField(max_length=40, blank=True)
    audio_codec = models.CharField(max_length=40, blank=True)
    has_audio = models.BooleanField()
    audio_sample_rate = models.PositiveIntegerField(default=0)
    audio_channels = models.PositiveSmallIntegerField(default=0)
    # Decoded once by extraction, for both stages and retraining: 16 kHz mono 16-bit PCM.
    audio = models.FileField(upload_to="audio/", max_length=300, blank=True)
    evidence_version = models.CharField(
        max_length=40, blank=True,
        help_text="What extraction stored (moderation.evidence.EVIDENCE_VERSION); blank: before audio was kept.")


class FrameSample(models.Model):
    video = models.ForeignKey(Video, on_delete=models.CASCADE, related_name="frames")
    index = models.PositiveSmallIntegerField()
    t_s = models.FloatField()
    image = models.ImageField(upload_to="frames/", max_length=300)
    width = models.PositiveIntegerField()
    height = models.PositiveIntegerField()

    class Meta:
        ordering = ["video", "index"]
        constraints = [models.UniqueConstraint(fields=["video", "index"], name="one_frame_per_index")]


class TranscriptSegment(models.Model):
    video = models.ForeignKey(Video, on_delete=models.CASCADE, related_name="transcript")
    index = models.PositiveIntegerField()
    start_s = models.FloatField()
    end_s = models.FloatField()
    text = models.TextField()

    class Meta:
        ordering = ["video", "index"]
        constraints = [
            models.UniqueConstraint(fields=["video", "index"], name="one_segment_per_index"),
            models.CheckConstraint(condition=Q(end_s__gte=models.F("start_s")), name="segment_ends_after_start"),
        ]


class OcrLine(models.Model):
    video = models.ForeignKey(Video, on_delete=models.CASCADE, related_name="ocr_lines")
    index = models.PositiveIntegerField()
    t_s = models.FloatField()
    text = models.TextField()
    score = models.FloatField()
    box = models.JSONField(default=list)

    class Meta:
        ordering = ["video", "index"]
        constraints = [models.UniqueConstraint(fields=["video", "index"], name="one_ocr_line_per_index")]


class ModelVersion(models.Model):
    """A trained artifact (baseline or MLLM) the pipeline can load."""

    class Kind(models.TextChoices):
        BASELINE = "baseline", "Baseline (stage 1)"
        MLLM = "mllm", "Multimodal LLM (stage 2)"

    class Status(models.TextChoices):
        CANDIDATE = "candidate", "Candidate"
        ACTIVE = "active", "Active"
        RETIRED = "retired", "Retired"
        REJECTED = "rejected", "Rejected by the promotion gate"

    policy = models.ForeignKey(Policy, on_delete=models.PROTECT, related_name="model_versions")
    kind = models.CharField(max_length=16, choices=Kind.choices)
    version = models.CharField(max_length=64)
    artifact_path = models.CharField(max_length=500, help_text="Folder with the saved model, under the model dir.")
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.CANDIDATE)
    config = models.JSONField(default=dict, blank=True)
    metrics = models.JSONField(default=dict, blank=True)
    reference_entropies = models.JSONField(
        default=list, blank=True,
        help_text="A baseline's entropies (nats) on videos it did not train on (its validation split, or recent "
                  "traffic re-scored by the run that trained it): the router's history until it has its own.")
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["policy", "kind", "version"], name="unique_model_version"),
            models.UniqueConstraint(
                fields=["policy", "kind"], condition=Q(status="active"), name="one_active_model_per_kind"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.kind} {self.version}"

    @property
    def folder(self) -> Path:
        """The artifact's folder: `artifact_path`, under COEFVQ_MODEL_DIR when relative."""
        path = Path(self.artifact_path)
        return path if path.is_absolute() else Path(settings.COEFVQ_MODEL_DIR) / path

    # Recent entropies of a baseline that a budget is turned into a threshold over.
    BUDGET_WINDOW = 2000
    # Until a baseline has scored this many videos, its reference entropies join its own: fewer would
    # make the routed share jump with every few uploads.
    MIN_OWN_ENTROPIES = 200

    def routing_entropies(self) -> list[float]:
        """What the router turns a budget into a threshold over: this baseline's own recent
        entropies (another baseline's mean something else), joined by its reference entropies
        until it has scored MIN_OWN_ENTROPIES videos."""
        history = list(self.predictions.filter(stage=Prediction.Stage.BASELINE).order_by("-created_at")
                       .values_list("entropy", flat=True)[:self.BUDGET_WINDOW])
        if len(history) < self.MIN_OWN_ENTROPIES:
            history += list(self.reference_entropies or [])
        return history


class CascadeConfig(models.Model):
    """One version of a policy's routing and decision settings. A change is a new row, so the
    history of who changed what stays, and each prediction names the version it used."""

    policy = models.ForeignKey(Policy, on_delete=models.PROTECT, related_name="cascade_configs")
    version = models.PositiveIntegerField()
    entropy_threshold = models.FloatField(null=True, blank=True, help_text="Route to the MLLM at or above this entropy (nats).")
    mllm_budget = models.FloatField(null=True, blank=True, help_text="Or: the fraction of traffic the MLLM may see.")
    allow_below = models.FloatField(default=0.2, help_text="Auto-allow when P(violation) is below this.")
    action_above = models.FloatField(default=0.9, help_text="Auto-action when P(violation) is above this.")
    audit_rate = models.FloatField(default=0.02, help_text="Share of automatic decisions sent to human audit.")
    promotion_margin = models.FloatField(
        default=0.01, help_text="A retrained model replaces the active one only if its gold-set F1 is higher by this much.")
    retrain_min_labels = models.PositiveIntegerField(
        default=50, help_text="The scheduled retraining runs once this many new reviewer labels exist.")
    stage2_decides = models.BooleanField(
        default=True, help_text="Stage 2's verdict decides the videos routed to it. Off, stage 2 is on trial: it still "
                                "writes its explanation, but stage 1's verdict stands and a reviewer decides. Training "
                                "sets it from held-out videos: on when the cascade with this stage 2 decided and "
                                "labelled them at least as well as stage 1 alone.")
    baseline_version = models.ForeignKey(ModelVersion, null=True, blank=True, on_delete=models.PROTECT, related_name="+")
    mllm_version = models.ForeignKey(ModelVersion, null=True, blank=True, on_delete=models.PROTECT, related_name="+")
    is_active = models.BooleanField(default=False)
    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL)
    created_at = models.DateTimeField(auto_now_add=True)
    change_note = models.TextField(blank=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["policy", "version"], name="unique_cascade_config_version"),
            models.UniqueConstraint(fields=["policy"], condition=Q(is_active=True), name="one_active_cascade_config"),
            models.CheckConstraint(
                condition=Q(entropy_threshold__isnull=False) | Q(mllm_budget__isnull=False),
                name="threshold_or_budget",
            ),
            models.CheckConstraint(
                condition=Q(mllm_budget__isnull=True) | (Q(mllm_budget__gte=0) & Q(mllm_budget__lte=1)),
                name="budget_is_a_fraction",
            ),
            models.CheckConstraint(
                condition=Q(allow_below__gte=0) & Q(allow_below__lte=models.F("action_above")) & Q(action_above__lte=1),
                name="bands_ordered",
            ),
            models.CheckConstraint(condition=Q(audit_rate__gte=0) & Q(audit_rate__lte=1), name="audit_rate_is_a_fraction"),
            models.CheckConstraint(condition=Q(promotion_margin__gte=-1) & Q(promotion_margin__lte=1),
                                   name="promotion_margin_in_range"),
        ]

    def __str__(self) -> str:
        return f"{self.policy.slug} v{self.version}"


class Prediction(models.Model):
    class Stage(models.TextChoices):
        BASELINE = "baseline", "Stage 1 baseline"
        MLLM = "mllm", "Stage 2 multimodal LLM"

    video = models.ForeignKey(Video, on_delete=models.CASCADE, related_name="predictions")
    stage = models.CharField(max_length=16, choices=Stage.choices)
    model_version = models.ForeignKey(ModelVersion, on_delete=models.PROTECT, related_name="predictions")
    cascade_config = models.ForeignKey(CascadeConfig, null=True, blank=True, on_delete=models.PROTECT, related_name="+")
    probabilities = models.JSONField(help_text="label -> probability")
    label = models.CharField(max_length=40)
    entropy = models.FloatField(help_text="Shannon entropy of the probabilities, in nats.")
    rationale = models.JSONField(default=dict, blank=True)
    modality_contributions = models.JSONField(default=dict, blank=True)
    compute_ms = models.FloatField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["created_at", "id"]
        constraints = [
            models.UniqueConstraint(fields=["video", "stage", "model_version"], name="one_prediction_per_stage_model"),
            models.CheckConstraint(condition=Q(entropy__gte=0), name="entropy_non_negative"),
        ]
        indexes = [models.Index(fields=["stage", "-created_at"]),
                   models.Index(fields=["model_version", "-created_at"], name="prediction_model_recent")]


class RoutingDecision(models.Model):
    """Why a video did or did not go to the MLLM: the entropy, the threshold and what produced them."""

    video = models.ForeignKey(Video, on_delete=models.CASCADE, related_name="routing_decisions")
    baseline_prediction = models.OneToOneField(Prediction, on_delete=models.CASCADE, related_name="routing")
    cascade_config = models.ForeignKey(CascadeConfig, on_delete=models.PROTECT, related_name="+")
    entropy = models.FloatField()
    threshold = models.FloatField()
    routed_to_mllm = models.BooleanField()
    forced_route = models.CharField(max_length=16, blank=True, help_text="Set when an operator forced a stage.")
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        # by time: the dashboard's call rate per bucket and /metrics' recent call rate
        indexes = [models.Index(fields=["created_at"], name="routing_decision_created")]


class ReviewTask(models.Model):
    """A video waiting for a human: the review band, or an audit sample of an automatic decision.

    The queue is ordered by `due_at`: the arrival time moved earlier by the item's priority, so a
    severe, uncertain item is served as if it had waited longer, and every item's turn still comes
    as it ages (ordering by one indexed column keeps "claim next" fast at any queue size).
    """

    class Reason(models.TextChoices):
        REVIEW_BAND = "review_band", "Model unsure (review band)"
        AUDIT = "audit", "Audit sample of an automatic decision"
        SECOND_REVIEW = "second_review", "Reopened by a lead for a second review"
        CORRECTION = "correction", "A lead's correction of a review"

    class Status(models.TextChoices):
        OPEN = "open", "Open"
        DONE = "done", "Reviewed"

    video = models.ForeignKey(Video, on_delete=models.PROTECT, related_name="review_tasks")
    policy = models.ForeignKey(Policy, on_delete=models.PROTECT, related_name="review_tasks")
    reason = models.CharField(max_length=16, choices=Reason.choices)
    status = models.CharField(max_length=8, choices=Status.choices, default=Status.OPEN)
    priority = models.FloatField(help_text="0..1 from severity and the model's uncertainty; higher is sooner.")
    due_at = models.DateTimeField(help_text="Queue order: arrival moved earlier by the priority.")
    model_label = models.CharField(max_length=40, help_text="The cascade's label when the task was made.")
    p_violation = models.FloatField()
    # The current claim. A claim is valid while `claim_expires_at` is in the future; after that
    # the task is free again, and `claim_token` changes with every claim so a late submit from
    # the previous holder is recognised and refused.
    claimed_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL,
                                   related_name="+")
    claimed_at = models.DateTimeField(null=True, blank=True)
    claim_expires_at = models.DateTimeField(null=True, blank=True)
    claim_token = models.UUIDField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    completed_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["video"], condition=Q(status="open"), name="one_open_review_per_video"),
        ]
        indexes = [
            models.Index(fields=["status", "due_at", "id"], name="review_queue_order"),
            models.Index(fields=["claimed_by", "status"], name="review_claims_by_user"),
            models.Index(fields=["-completed_at"], name="review_recently_done"),
        ]

    def __str__(self) -> str:
        return f"review #{self.pk} of video #{self.video_id}"


class Review(models.Model):
    """A reviewer's decision: the labeled example retraining learns from, with its provenance."""

    task = models.OneToOneField(ReviewTask, on_delete=models.PROTECT, related_name="review")
    video = models.ForeignKey(Video, on_delete=models.PROTECT, related_name="reviews")
    reviewer = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="reviews")
    label = models.CharField(max_length=40)
    # What the reviewer judged: retraining learns the label with this text, even if an admin
    # corrects the video's caption or title later.
    caption = models.TextField(blank=True, help_text="The video's caption when it was reviewed.")
    title = models.CharField(max_length=300, blank=True, help_text="The video's title when it was reviewed.")
    note = models.TextField(blank=True)
    model_label = models.CharField(max_length=40, help_text="What the cascade said.")
    model_decided_by = models.CharField(max_length=16, help_text="baseline or mllm.")
    disagrees_with_model = models.BooleanField()
    seconds_spent = models.FloatField(help_text="From claim to decision.")
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        indexes = [models.Index(fields=["video", "-created_at"]), models.Index(fields=["-created_at"])]

    def save(self, *args, **kwargs):
        if self.pk is not None:
            raise ValueError("Reviews are append-only; a correction is a new review.")
        super().save(*args, **kwargs)

    def delete(self, *args, **kwargs):
        raise ValueError("Reviews are append-only; a correction is a new review.")


class ReviewSkip(models.Model):
    """A reviewer passed on a task, and why. The task goes back to the queue for someone else."""

    task = models.ForeignKey(ReviewTask, on_delete=models.CASCADE, related_name="skips")
    reviewer = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="+")
    reason = models.CharField(max_length=500)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        indexes = [models.Index(fields=["reviewer", "task"])]


class TrainingRun(models.Model):
    """One retraining from reviewer labels: what it learned from, what it produced, and whether
    the promotion gate let the new models in. A failed run changes nothing that is active."""

    class Status(models.TextChoices):
        QUEUED = "queued", "Queued"
        RUNNING = "running", "Running"
        PROMOTED = "promoted", "Finished: promoted"
        REFUSED = "refused", "Finished: kept the active models"
        FAILED = "failed", "Failed"

    FINISHED = (Status.PROMOTED, Status.REFUSED, Status.FAILED)

    class Trigger(models.TextChoices):
        SCHEDULE = "schedule", "Schedule"
        BUTTON = "button", "Admin button"
        COMMAND = "command", "Command line"
        BENCHMARK = "benchmark", "First-run fine-tune on the benchmark"

    policy = models.ForeignKey(Policy, on_delete=models.PROTECT, related_name="training_runs")
    trigger = models.CharField(max_length=16, choices=Trigger.choices)
    requested_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL)
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.QUEUED)
    progress = models.FloatField(default=0.0, help_text="0..1")
    step = models.CharField(max_length=200, blank=True, help_text="What the run is doing now.")
    labels_since = models.DateTimeField(null=True, blank=True, help_text="Reviewer labels after this were new.")
    labels_until = models.DateTimeField(null=True, blank=True)
    new_labels = models.PositiveIntegerField(default=0)
    train_examples = models.PositiveIntegerField(default=0)
    gold_examples = models.PositiveIntegerField(default=0)
    baseline_candidate = models.ForeignKey(ModelVersion, null=True, blank=True, on_delete=models.SET_NULL,
                                           related_name="+")
    mllm_candidate = models.ForeignKey(ModelVersion, null=True, blank=True, on_delete=models.SET_NULL,
                                       related_name="+")
    benchmark = models.JSONField(
        default=dict, blank=True,
        help_text="A first-run fine-tune's data: the benchmark folder, its seed and the text-only examples.")
    metrics = models.JSONField(default=dict, blank=True, help_text="Gold-set metrics of the active and new models.")
    decision = models.TextField(blank=True, help_text="Why the gate promoted or refused.")
    error = models.TextField(blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    started_at = models.DateTimeField(null=True, blank=True)
    # Refreshed with every progress step. A running run whose heartbeat is older than
    # COEFVQ_TRAINING_STALE_S lost its worker; the next delivery of its task starts it over.
    heartbeat_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        constraints = [
            # Two retrainings of one policy at once would race to promote.
            models.UniqueConstraint(fields=["policy"], condition=Q(status__in=["queued", "running"]),
                                    name="one_unfinished_training_run_per_policy"),
        ]

    def __str__(self) -> str:
        return f"training run #{self.pk} ({self.get_status_display()})"


class AuditEntry(models.Model):
    """Append-only log of every human decision and every configuration change: who, what, when.

    The actor is kept by id and name, not as a foreign key, so removing an account neither
    rewrites nor blocks the history (PostgreSQL refuses UPDATE and DELETE on this table).
    """

    at = models.DateTimeField(auto_now_add=True)
    actor_id = models.BigIntegerField(null=True, blank=True)
    actor_name = models.CharField(max_length=150, blank=True, help_text="Empty for the system (a scheduled task).")
    action = models.CharField(max_length=60, help_text='e.g. "review.decided", "cascade_config.changed".')
    target_type = models.CharField(max_length=40)
    target_id = models.CharField(max_length=64)
    summary = models.TextField()
    data = models.JSONField(default=dict, blank=True)

    class Meta:
        ordering = ["-at", "-id"]
        verbose_name_plural = "audit log"
        indexes = [models.Index(fields=["-at"]), models.Index(fields=["target_type", "target_id"]),
                   models.Index(fields=["action", "-at"])]

    def save(self, *args, **kwargs):
        if self.pk is not None:
            raise ValueError("The audit log is append-only.")
        super().save(*args, **kwargs)

    def delete(self, *args, **kwargs):
        raise ValueError("The audit log is append-only.")

    def __str__(self) -> str:
        return f"{self.at:%Y-%m-%d %H:%M} {self.actor_name or 'system'}: {self.summary}"
