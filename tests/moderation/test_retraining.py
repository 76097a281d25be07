"""The retraining loop: reviewer labels in, retrained baseline and fine-tuned MLLM out, the gold
set's gate, the threshold recalibrated after a promotion, and the schedule.

The models are small but real, as in test_scoring: a baseline trained on a dozen captions (its
training rows kept next to it, as a retrained one keeps them) and the MiniLM+Whisper MLLM
straight from its constructor; the fine-tune runs one epoch on the handful of reviewed videos."""

from __future__ import annotations

import hashlib
import io
import math
import shutil
from pathlib import Path

import av
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
from inference.synth import MOTIFS, SynthSpec, render_video
from inference.training_set import NO_VIDEO, TrainingSet, load_training_set, save_training_set
from moderation import benchmark, pipeline, retraining, scoring
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


@pytest.fixture(autouse=True)
def small_gold_set(settings):
    """These tests follow a run through its steps on a handful of videos; the gate's own rule is
    tested on realistic gold sets below."""
    settings.COEFVQ_RETRAIN_MIN_GOLD = GOLD_VIDEOS


@pytest.fixture(scope="module")
def distinct_clips(tmp_path_factory) -> list[Path]:
    """Short silent clips that look different from each other (a near-duplicate would be grouped
    with its original on one side of the gold split)."""
    folder = tmp_path_factory.mktemp("distinct-clips")
    return [render_video(folder / f"clip{i}.mp4", SynthSpec(duration_s=1.0, with_audio=False,
                                                            motif=MOTIFS[i % len(MOTIFS)], background_seed=i))
            for i in range(40)]


def make_cascade(model_dir, *, margin: float, mllm: bool = True, mllm_path: str | None = None) -> CascadeConfig:
    scoring.forget_loaded_models()
    policy = Policy.objects.get(slug="icd")
    baseline = ModelVersion.objects.create(policy=policy, kind="baseline", version="b1", status="active",
                                           artifact_path=str(model_dir / "baseline"))
    stage2 = ModelVersion.objects.create(policy=policy, kind="mllm", version="m1", status="active",
                                         artifact_path=mllm_path or str(model_dir / "mllm")) if mllm else None
    return CascadeConfig.objects.create(policy=policy, version=1, mllm_budget=0.5, is_active=True,
                                        promotion_margin=margin, retrain_min_labels=3,
                                        baseline_version=baseline, mllm_version=stage2)


def clip_variants(clips: list[Path], *, gold: int, training: int) -> list[bytes]:
    """Different-looking clips with the wanted mix of gold and training videos, picked by the same
    content hash the product uses."""
    picked_gold, picked_training = [], []
    for clip in clips:
        data = clip.read_bytes()
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


def review_videos(clips, reviewer, *, gold=GOLD_VIDEOS, training=TRAINING_VIDEOS) -> list[Video]:
    labelled = [(caption, label) for label, captions in CAPTIONS.items() for caption in captions]
    return [reviewed_video(data, *labelled[i % len(labelled)], reviewer)
            for i, data in enumerate(clip_variants(clips, gold=gold, training=training))]


def scored_by_active_baseline(videos, config: CascadeConfig) -> None:
    """Baseline predictions, as the pipeline leaves them: the recent traffic recalibration re-scores."""
    for video in videos:
        Prediction.objects.create(video=video, stage="baseline", model_version=config.baseline_version,
                                  cascade_config=config, probabilities={"ok": 1.0}, label="ok", entropy=0.1)


def test_better_models_are_promoted_and_the_threshold_recalibrated(model_dir, distinct_clips, reviewer, capsys):
    old = make_cascade(model_dir, margin=-1.0)
    videos = review_videos(distinct_clips, reviewer)
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
    assert set(run.metrics) == {"baseline", "mllm", "routing"}
    assert 0 <= run.metrics["mllm"]["candidate"]["binary"]["f1"] <= 1
    assert run.mllm_candidate.metrics["gold"] == run.metrics["mllm"]["candidate"]
    assert "Baseline: gold F1" in run.decision and "recalibrated on 5 recent videos" in run.decision
    assert "cascade F1 at the budget" in run.decision  # a baseline is judged as the cascade's first stage too
    # The promoted pair is judged as a cascade against stage 1 alone: does stage 2 earn its routed videos?
    assert f"Routing, on {GOLD_VIDEOS} held-out videos" in run.decision
    assert active.stage2_decides == run.metrics["routing"]["stage2_decides"]
    # The new baseline has scored nothing yet: routing uses its entropies on the re-scored videos.
    reference = active.baseline_version.reference_entropies
    assert len(reference) == 5
    assert scoring.current_threshold(active) == threshold_for_budget(reference, active.mllm_budget)
    assert "promoted" in capsys.readouterr().out
    # The promoted versions load through the pipeline's own path.
    assert scoring.load_baseline(active.baseline_version_id).score(caption_only("cheap pills")).label in CAPTIONS


def test_models_short_of_the_margin_are_rejected_and_nothing_changes(model_dir, distinct_clips, reviewer):
    config = make_cascade(model_dir, margin=1.0)
    review_videos(distinct_clips, reviewer)
    run = retraining.do_request_training_run(config.policy, trigger="button", enqueue=False)

    run = retraining.run_training(run.pk)

    assert run.status == "refused", run.error
    assert CascadeConfig.objects.get(is_active=True) == config
    assert {run.baseline_candidate.status, run.mllm_candidate.status} == {"rejected"}
    assert ModelVersion.objects.filter(status="active").count() == 2
    baseline = run.metrics["baseline"]
    decisions = {side: baseline[side]["decisions"]["f1"] for side in ("active", "candidate")}
    assert f"gold F1 {decisions['candidate']:.3f} against {decisions['active']:.3f}" in run.decision
    assert "short of the margin +1.000: kept the active one" in run.decision
    # A second delivery of the task does nothing a second time.
    assert retraining.run_training(run.pk).finished_at == run.finished_at
    assert ModelVersion.objects.count() == 4


def test_gold_videos_never_enter_training(model_dir, distinct_clips, reviewer):
    config = make_cascade(model_dir, margin=-1.0, mllm=False)
    videos = review_videos(distinct_clips, reviewer)
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


def test_a_failing_run_changes_nothing_active(model_dir, distinct_clips, reviewer, tmp_path):
    config = make_cascade(model_dir, margin=-1.0, mllm_path=str(tmp_path / "gone"))
    review_videos(distinct_clips, reviewer)

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


def test_the_schedule_requests_a_run_only_with_enough_new_labels(model_dir, distinct_clips, reviewer):
    assert PeriodicTask.objects.get(task="moderation.tasks.maybe_retrain").interval.every == 30
    config = make_cascade(model_dir, margin=0.0)  # retrain_min_labels=3
    first, _ = review_videos(distinct_clips, reviewer, gold=1, training=1)
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


def test_a_gold_set_below_the_minimum_trains_nothing(model_dir, distinct_clips, reviewer, settings):
    config = make_cascade(model_dir, margin=0.0)
    review_videos(distinct_clips, reviewer, training=0)
    settings.COEFVQ_RETRAIN_MIN_GOLD = GOLD_VIDEOS + 1

    run = retraining.run_training(retraining.do_request_training_run(config.policy, trigger="button",
                                                                     enqueue=False).pk)

    assert run.status == "refused" and run.baseline_candidate is None
    assert f"the gold set has {GOLD_VIDEOS} reviewed videos and the gate needs at least {GOLD_VIDEOS + 1}" in run.decision
    assert CascadeConfig.objects.get(is_active=True) == config


# --- the gate's rule, on gold sets of a realistic size ----------------------------------------------

BANDS = retraining.DecisionBands(0.2, 0.9)
LABEL_NAMES = ("ok", "scam", "drugs", "weapons")


def decided(truth: np.ndarray, right: np.ndarray) -> np.ndarray:
    """P(violation) that the bands decide right where `right` (actioned or allowed), wrong elsewhere."""
    correct = np.where(truth, 0.95, 0.05)
    return np.where(right, correct, 1.0 - correct)


def gate(truth, active_p, candidate_p, margin=0.01) -> retraining.Verdict:
    comparison = retraining.compare("gold F1", truth, active_p, candidate_p, BANDS, seed=7)
    return retraining.Verdict("baseline", (comparison,), margin)


def test_the_gate_judges_stage_2_in_float_where_the_worker_serves_it_in_int8(model_dir, settings):
    settings.COEFVQ_STAGE2_CPU_INT8, settings.COEFVQ_STAGE2_DEVICE = True, "cpu"
    config = make_cascade(model_dir, margin=0.0)
    served = scoring.load_mllm(config.mllm_version_id)
    candidate = scoring.load_mllm(config.mllm_version_id, cpu_int8=False)  # the same weights, as training leaves them
    features = [caption_only(caption) for caption in ("selling pistols cheap", "my cat sleeping")]
    scored = retraining._stage2_scored(config, candidate, features)
    assert served.int8 and not candidate.int8
    np.testing.assert_array_equal(scored["active"].probabilities, scored["candidate"].probabilities)


def test_the_gate_promotes_only_a_difference_larger_than_its_noise():
    rng = np.random.default_rng(3)
    truth = rng.random(200) < 0.4  # 200 gold videos, 40% violating
    right = rng.random(200) < 0.8  # the active model decides 80% of them right
    active = decided(truth, right)
    wrong = np.flatnonzero(~right)

    def fixed(n: int, broken: int = 0) -> np.ndarray:
        candidate = right.copy()
        candidate[wrong[:n]] = True
        candidate[np.flatnonzero(right)[:broken]] = False
        return decided(truth, candidate)

    # Three more videos right: F1 moves by about 0.02, above the old rule's 0.01, within its noise.
    three = gate(truth, active, fixed(3))
    assert three.comparisons[0].candidate_f1 - three.comparisons[0].active_f1 > 0.01 and not three.promoted
    # Twelve right and eight newly wrong: better on paper, not a better model.
    assert not gate(truth, active, fixed(12, broken=8)).promoted
    # Twenty more right, none worse: an improvement the gold set can vouch for.
    twenty = gate(truth, active, fixed(20))
    assert twenty.promoted and "95% lower bound +0.0" in twenty.sentence()
    # A margin the improvement cannot clear with confidence keeps the active model.
    assert not gate(truth, active, fixed(20), margin=0.1).promoted


def test_the_gate_scores_the_products_decisions_not_the_argmax():
    truth = np.arange(200) < 100
    # Both models put every violation at 0.95. The active one leaves the ok videos at 0.45: right
    # by the argmax, but inside the review band, where each costs a reviewer's time.
    active = np.where(truth, 0.95, 0.45)
    candidate = np.where(truth, 0.95, 0.1)
    verdict = gate(truth, active, candidate)
    assert verdict.comparisons[0].active_f1 == pytest.approx(2 / 3) and verdict.comparisons[0].candidate_f1 == 1.0
    assert verdict.promoted


def test_stage2_decides_routed_videos_only_where_the_cascade_is_not_worse_than_stage1():
    labels = ["ok", "scam", "ok", "scam", "ok", "scam", "ok", "scam"]
    sure_ok, sure_scam, sure_drugs = [0.97, 0.01, 0.01, 0.01], [0.02, 0.96, 0.01, 0.01], [0.02, 0.01, 0.96, 0.01]
    leaning_ok, leaning_scam = [0.55, 0.45, 0.0, 0.0], [0.45, 0.55, 0.0, 0.0]
    # Stage 1 labels every video right, but is unsure of the last two: the budget's quarter it
    # routes, both in the review band (a reviewer looks at the ok one for nothing).
    stage1 = retraining.Scored(np.array([sure_ok, sure_scam] * 3 + [leaning_ok, leaning_scam]), LABEL_NAMES)
    config = CascadeConfig(mllm_budget=0.25, allow_below=0.2, action_above=0.9)

    def judged(last_two: list[list[float]]) -> retraining.RoutingJudgment:
        stage2 = retraining.Scored(np.array([sure_ok, sure_scam] * 3 + last_two), LABEL_NAMES)
        return retraining.judge_stage2_routing(labels, stage1, stage2, config, ("scam", "drugs", "weapons"), seed=0)

    # Stage 2 allows the ok one and actions the scam: better decisions, labels as good.
    right = judged([sure_ok, sure_scam])
    assert (right.routed, right.decisions.candidate_f1, right.decisions.active_f1) == (2, 1.0, pytest.approx(8 / 9))
    assert right.stage2_decides and "so stage 2 decides the videos routed to it" in right.sentence()
    assert "(2 routed)" in right.sentence()
    # The same decisions with a wrong label: it would teach reviewers and metrics a wrong label.
    mislabels = judged([sure_ok, sure_drugs])
    assert mislabels.decisions.candidate_f1 == 1.0 and mislabels.cascade_accuracy < mislabels.stage1_accuracy
    assert not mislabels.stage2_decides and "stage 2 is on trial" in mislabels.sentence()
    # Both backwards: on trial.
    assert not judged([sure_scam, sure_ok]).stage2_decides
    # Where it only agrees with stage 1, letting it decide changes nothing.
    same = judged([leaning_ok, leaning_scam])
    assert same.stage2_decides and same.as_dict()["stage2_decides"] is True


def example(sha: str, *, audited=False, hashes=()) -> retraining.Example:
    return retraining.Example(0, sha, "ok", caption_only(""), audited, np.array(hashes, dtype=np.uint64))


def shas(gold: bool, n: int) -> list[str]:
    found = (hashlib.sha256(str(i).encode()).hexdigest() for i in range(10_000))
    return [sha for sha in found if retraining.is_gold(sha) == gold][:n]


def test_the_audit_sample_goes_to_gold():
    training_shas = shas(False, 3)
    gold, train = retraining.split_gold([example(training_shas[0], audited=True), example(training_shas[1]),
                                         example(training_shas[2])])
    assert [e.sha256 for e in gold] == [training_shas[0]]
    assert [e.sha256 for e in train] == training_shas[1:]


def reencode(source: Path, target: Path) -> Path:
    """Another encoding of the same pictures: VP9 in WebM at 60% of the size."""
    with av.open(str(source)) as original, av.open(str(target), "w", format="webm") as copy:
        stream = copy.add_stream("libvpx-vp9", rate=10)
        stream.width, stream.height, stream.pix_fmt = 192, 144, "yuv420p"
        stream.options = {"deadline": "realtime", "cpu-used": "8", "crf": "40", "b": "0"}
        for frame in original.decode(video=0):
            copy.mux(stream.encode(av.VideoFrame.from_image(frame.to_image().resize((192, 144)))))
        copy.mux(stream.encode())
    return target


def test_a_reencode_of_a_gold_video_goes_to_gold_with_it(distinct_clips, reviewer, tmp_path):
    """Other bytes, the same pictures: its content hash alone would put it in training, where the
    candidate would learn the video it is then judged on."""
    original = copy = None
    for clip in distinct_clips:
        if retraining.is_gold(hashlib.sha256(clip.read_bytes()).hexdigest()):
            reencoded = reencode(clip, tmp_path / f"{clip.stem}.webm")
            if not retraining.is_gold(hashlib.sha256(reencoded.read_bytes()).hexdigest()):
                original, copy = clip, reencoded
                break
    assert original is not None, "no gold clip whose re-encode hashes into training"
    other = next(clip for clip in distinct_clips if clip not in (original,)
                 and not retraining.is_gold(hashlib.sha256(clip.read_bytes()).hexdigest()))
    videos = [reviewed_video(path.read_bytes(), "my cat sleeping in the sun", "ok", reviewer)
              for path in (original, copy, other)]
    examples = [retraining.Example(v.pk, v.sha256, "ok", caption_only(""), False, retraining.frame_hashes(v))
                for v in videos]
    assert all(len(e.frame_hashes) for e in examples)

    gold, train = retraining.split_gold(examples)

    assert [e.video_id for e in gold] == [videos[0].pk, videos[1].pk]
    assert [e.video_id for e in train] == [videos[2].pk]


@pytest.fixture(scope="module")
def small_benchmark(tmp_path_factory) -> dict:
    """The smallest rendered benchmark (4 train, 4 val, 4 test videos) with its features cached."""
    folder = tmp_path_factory.mktemp("bench") / "train-12"
    benchmark.load_splits(benchmark.prepare_dataset(folder, 12, seed=5), benchmark.extractor_for_training())
    return benchmark.finetune_source(folder, seed=5, text_items=8)


@pytest.mark.slow
def test_the_mllm_fine_tune_replays_the_benchmark_it_learned_from(model_dir, distinct_clips, reviewer, tmp_path,
                                                                   small_benchmark):
    active_mllm = tmp_path / "active-mllm"
    shutil.copytree(model_dir / "mllm", active_mllm)
    benchmark.save_replay_sources(active_mllm, [small_benchmark])
    config = make_cascade(model_dir, margin=-1.0, mllm_path=str(active_mllm))
    review_videos(distinct_clips, reviewer)

    run = retraining.run_training(retraining.do_request_training_run(config.policy, trigger="button",
                                                                     enqueue=False).pk)

    assert run.status == "promoted", run.error
    training = run.metrics["mllm"]["training"]
    # One benchmark example (of its 4 training videos and 8 text-only ones) per reviewed video fitted.
    assert training["replayed_examples"] == training["fit_videos"] > 0
    assert training["steps"] == math.ceil((training["fit_videos"] + training["replayed_examples"])
                                          / retraining.LLM_BATCH_SIZE)
    assert f"replayed {training['replayed_examples']} benchmark examples" in run.decision
    # The new model remembers what to replay next time.
    assert benchmark.replay_sources(scoring.artifact_dir(run.mllm_candidate)) == [small_benchmark]
