"""The retraining loop: reviewer labels in, retrained baseline and fine-tuned MLLM out, the gold
set's gate, the threshold recalibrated after a promotion, and the schedule.

The models are small but real, as in test_scoring: a baseline trained on a dozen captions (its
training rows kept next to it, as a retrained one keeps them) and the MiniLM+Whisper MLLM
straight from its constructor; the fine-tune runs one epoch on the handful of reviewed videos."""

from __future__ import annotations

import hashlib
import io

import numpy as np
import pytest
import torch
from asgiref.sync import async_to_sync
from channels.layers import get_channel_layer
from django.core.management import call_command
from django.utils import timezone
from django_celery_beat.models import PeriodicTask
from small_models import CAPTION_ROWS, CAPTIONS, caption_only, save_small_models

from inference.baseline import featurize_rows
from inference.cascade import threshold_for_budget
from inference.training_set import NO_VIDEO, TrainingSet, load_training_set, save_training_set
from moderation import pipeline, retraining, scoring
from moderation.actions.ingest import do_ingest
from moderation.actions.review_queue import do_claim_next, do_open_review, do_submit_review
from moderation.actions.validation import ActionError
from moderation.models import CascadeConfig, ModelVersion, Policy, Prediction, TrainingRun, Video

pytestmark = pytest.mark.django_db

GOLD_VIDEOS, TRAINING_VIDEOS = 4, 8


@pytest.fixture(autouse=True)
def one_thread():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory, tiny_qwen2_dir):
    from django.conf import settings

    root = tmp_path_factory.mktemp("active-models")
    baseline = save_small_models(root, str(settings.COEFVQ_WHISPER_CHECKPOINT), tiny_qwen2_dir)
    X = featurize_rows([video for video, _ in CAPTION_ROWS], baseline.encoder)  # (N, D)
    save_training_set(root / "baseline", TrainingSet(X, np.array([label for _, label in CAPTION_ROWS]),
                                                     np.full(len(CAPTION_ROWS), NO_VIDEO)))
    return root


@pytest.fixture(autouse=True)
def candidate_dir(settings, tmp_path):
    settings.COEFVQ_MODEL_DIR = tmp_path / "models"
    return settings.COEFVQ_MODEL_DIR


def make_cascade(model_dir, *, margin: float, mllm: bool = True, mllm_path: str | None = None) -> CascadeConfig:
    scoring.load_baseline.cache_clear()
    scoring.load_mllm.cache_clear()
    policy = Policy.objects.get(slug="icd")
    baseline = ModelVersion.objects.create(policy=policy, kind="baseline", version="b1", status="active",
                                           artifact_path=str(model_dir / "baseline"))
    stage2 = ModelVersion.objects.create(policy=policy, kind="mllm", version="m1", status="active",
                                         artifact_path=mllm_path or str(model_dir / "mllm")) if mllm else None
    return CascadeConfig.objects.create(policy=policy, version=1, mllm_budget=0.5, is_active=True,
                                        promotion_margin=margin, retrain_min_labels=3,
                                        baseline_version=baseline, mllm_version=stage2)


def clip_variants(clip, *, gold: int, training: int) -> list[bytes]:
    """Copies of the clip (a trailing byte makes each its own video) with the wanted mix of gold
    and training videos, picked by the same content hash the product uses."""
    base = clip.read_bytes()
    picked_gold, picked_training = [], []
    for i in range(1000):
        data = base + i.to_bytes(2, "big")
        wanted = picked_gold if retraining.is_gold(hashlib.sha256(data).hexdigest()) else picked_training
        if len(wanted) < (gold if wanted is picked_gold else training):
            wanted.append(data)
        if len(picked_gold) == gold and len(picked_training) == training:
            return picked_gold + picked_training
    raise AssertionError("not enough variants")


def reviewed_video(data: bytes, caption: str, label: str, reviewer) -> Video:
    """A video the cascade decided and a reviewer then labelled, through the queue's operations."""
    video = do_ingest(io.BytesIO(data), filename="clip.mp4", source="cli", caption=caption,
                      enqueue=False).video
    with pipeline.inline_mode():
        pipeline.extract(video.pk)  # the stored evidence both models retrain on
    Video.objects.filter(pk=video.pk).update(state=Video.State.DECIDED, final_label="ok", decided_by="baseline",
                                             decision=Video.Decision.HUMAN_REVIEW, needs_review=True)
    do_open_review(video, reason="review_band", model_label="ok",
                   probabilities={"ok": 0.5, "scam": 0.5, "drugs": 0.0, "weapons": 0.0}, p_violation=0.5)
    task = do_claim_next(reviewer)
    do_submit_review(task.pk, reviewer, claim_token=task.claim_token, label=label)
    return video


def review_videos(clip, reviewer, *, gold=GOLD_VIDEOS, training=TRAINING_VIDEOS) -> list[Video]:
    labelled = [(caption, label) for label, captions in CAPTIONS.items() for caption in captions]
    return [reviewed_video(data, *labelled[i % len(labelled)], reviewer)
            for i, data in enumerate(clip_variants(clip, gold=gold, training=training))]


def scored_by_active_baseline(videos, config: CascadeConfig) -> None:
    """Baseline predictions, as the pipeline leaves them: the recent traffic recalibration re-scores."""
    for video in videos:
        Prediction.objects.create(video=video, stage="baseline", model_version=config.baseline_version,
                                  cascade_config=config, probabilities={"ok": 1.0}, label="ok", entropy=0.1)


def test_better_models_are_promoted_and_the_threshold_recalibrated(model_dir, silent_clip, reviewer, capsys):
    old = make_cascade(model_dir, margin=-1.0)
    videos = review_videos(silent_clip, reviewer)
    scored_by_active_baseline(videos[:5], old)

    call_command("retrain", "--wait")

    run = TrainingRun.objects.get()
    assert run.status == "promoted", run.error
    assert (run.progress, run.trigger, run.new_labels) == (1.0, "command", GOLD_VIDEOS + TRAINING_VIDEOS)
    assert (run.gold_examples, run.train_examples) == (GOLD_VIDEOS, TRAINING_VIDEOS)
    active = CascadeConfig.objects.get(is_active=True)
    assert active.version == 2
    assert (active.baseline_version, active.mllm_version) == (run.baseline_candidate, run.mllm_candidate)
    assert ModelVersion.objects.get(version="b1").status == "retired"
    assert set(run.metrics) == {"baseline", "mllm"}
    assert 0 <= run.metrics["mllm"]["candidate"]["binary"]["f1"] <= 1
    assert run.mllm_candidate.metrics["gold"] == run.metrics["mllm"]["candidate"]
    assert "Baseline: gold F1" in run.decision and "recalibrated on 5 recent videos" in run.decision
    # The new baseline has scored nothing yet: routing uses its entropies on the re-scored videos.
    reference = active.baseline_version.reference_entropies
    assert len(reference) == 5
    assert scoring.current_threshold(active) == threshold_for_budget(reference, active.mllm_budget)
    assert "promoted" in capsys.readouterr().out
    # The promoted versions load through the pipeline's own path.
    assert scoring.load_baseline(active.baseline_version_id).score(caption_only("cheap pills")).label in CAPTIONS


def test_models_short_of_the_margin_are_rejected_and_nothing_changes(model_dir, silent_clip, reviewer):
    config = make_cascade(model_dir, margin=1.0)
    review_videos(silent_clip, reviewer)
    run = retraining.do_request_training_run(config.policy, trigger="button", enqueue=False)

    run = retraining.run_training(run.pk)

    assert run.status == "refused", run.error
    assert CascadeConfig.objects.get(is_active=True) == config
    assert {run.baseline_candidate.status, run.mllm_candidate.status} == {"rejected"}
    assert ModelVersion.objects.filter(status="active").count() == 2
    baseline = run.metrics["baseline"]
    assert (f"gold F1 {baseline['candidate']['binary']['f1']:.3f} against {baseline['active']['binary']['f1']:.3f}"
            in run.decision)
    assert "short of the margin +1.000): kept the active one" in run.decision
    # A second delivery of the task does nothing a second time.
    assert retraining.run_training(run.pk).finished_at == run.finished_at
    assert ModelVersion.objects.count() == 4


def test_gold_videos_never_enter_training(model_dir, silent_clip, reviewer):
    config = make_cascade(model_dir, margin=-1.0, mllm=False)
    videos = review_videos(silent_clip, reviewer)
    gold = {v.pk for v in videos if retraining.is_gold(v.sha256)}

    run = retraining.run_training(retraining.do_request_training_run(config.policy, trigger="button",
                                                                     enqueue=False).pk)

    assert run.status == "promoted", run.error
    learned = load_training_set(scoring.artifact_dir(run.baseline_candidate))
    reviewed = set(learned.video_ids.tolist()) - {NO_VIDEO}
    assert len(gold) == GOLD_VIDEOS and not reviewed & gold
    assert reviewed == {v.pk for v in videos} - gold
    # What the active baseline had learned from is learned again.
    assert len(learned.inherited()) == sum(len(c) for c in CAPTIONS.values())


def test_a_failing_run_changes_nothing_active(model_dir, silent_clip, reviewer, tmp_path):
    config = make_cascade(model_dir, margin=-1.0, mllm_path=str(tmp_path / "gone"))
    review_videos(silent_clip, reviewer)

    run = retraining.run_training(retraining.do_request_training_run(config.policy, trigger="button",
                                                                     enqueue=False).pk)

    assert run.status == "failed" and "FileNotFoundError" in run.error
    assert CascadeConfig.objects.get(is_active=True) == config
    assert set(ModelVersion.objects.values_list("version", "status")) == {("b1", "active"), ("m1", "active")}
    # A failed run does not block the next one.
    assert retraining.do_request_training_run(config.policy, trigger="button", enqueue=False).status == "queued"


def test_one_unfinished_run_per_policy(model_dir):
    config = make_cascade(model_dir, margin=0.0)
    first = retraining.do_request_training_run(config.policy, trigger="button", enqueue=False)
    with pytest.raises(ActionError) as refused:
        retraining.do_request_training_run(config.policy, trigger="command", enqueue=False)
    assert refused.value.code == "training_run_unfinished" and f"#{first.pk} is queued" in refused.value.message


def test_without_gold_videos_the_run_is_refused_and_progress_is_published(model_dir):
    config = make_cascade(model_dir, margin=0.0)
    layer = get_channel_layer()
    channel = async_to_sync(layer.new_channel)()
    async_to_sync(layer.group_add)("training-runs", channel)

    run = retraining.run_training(retraining.do_request_training_run(config.policy, trigger="button",
                                                                     enqueue=False).pk)

    assert run.status == "refused" and "the gold set has 0 reviewed videos" in run.decision
    assert CascadeConfig.objects.get(is_active=True) == config
    messages = [async_to_sync(layer.receive)(channel) for _ in range(2)]
    assert messages[0] == {"type": "training.progress", "run": run.pk, "status": "running", "progress": 0.02,
                           "step": "Reading 0 reviewed videos"}
    async_to_sync(layer.group_discard)("training-runs", channel)


def test_the_schedule_requests_a_run_only_with_enough_new_labels(model_dir, silent_clip, reviewer):
    assert PeriodicTask.objects.get(task="moderation.tasks.maybe_retrain").interval.every == 30
    config = make_cascade(model_dir, margin=0.0)  # retrain_min_labels=3
    first, _ = review_videos(silent_clip, reviewer, gold=1, training=1)
    assert retraining.maybe_retrain() == []

    reviewed_video(first.file.read(), first.caption, "scam", reviewer)  # a correction is a new label too
    requested = retraining.maybe_retrain()
    assert [run.trigger for run in requested] == ["schedule"]
    assert retraining.maybe_retrain() == []  # one run at a time

    TrainingRun.objects.filter(pk=requested[0].pk).update(status="refused", labels_until=timezone.now())
    assert retraining.maybe_retrain() == []  # its labels are no longer new
    assert config.retrain_min_labels == 3


def test_a_run_whose_worker_went_silent_is_started_over(model_dir, settings):
    config = make_cascade(model_dir, margin=0.0)
    run = retraining.do_request_training_run(config.policy, trigger="button", enqueue=False)
    TrainingRun.objects.filter(pk=run.pk).update(status="running", heartbeat_at=timezone.now())
    assert retraining.run_training(run.pk).status == "running"  # its worker is alive: left alone

    TrainingRun.objects.filter(pk=run.pk).update(
        heartbeat_at=timezone.now() - timezone.timedelta(seconds=settings.COEFVQ_TRAINING_STALE_S + 1))
    assert retraining.run_training(run.pk).status == "refused"  # no gold videos: nothing to train
