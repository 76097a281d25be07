"""The cascade inside the product: stage 1 on every video, routing, stage 2, decisions.

The models here are small but real: a baseline trained on a handful of captions, and the
MiniLM+Whisper MLLM straight from its constructor (untrained head), saved and loaded through the
same artifact folders the pipeline uses in production."""

import json
import shutil

import numpy as np
import pytest
from django.core.management import call_command

from inference.baseline import BaselineClassifier
from inference.cascade import threshold_for_budget
from inference.sandbox import decode_isolated
from moderation import evidence, pipeline, scoring
from moderation.actions.ingest import do_ingest
from moderation.actions.model_registry import do_change_cascade_config, do_set_reference_entropies
from moderation.actions.validation import ActionError
from moderation.models import CascadeConfig, ModelVersion, Policy, Prediction, ReviewTask, RoutingDecision, Video

pytestmark = pytest.mark.django_db

@pytest.fixture
def cascade(model_dir):
    scoring.forget_loaded_models()
    policy = Policy.objects.get(slug="icd")
    baseline = ModelVersion.objects.create(policy=policy, kind="baseline", version="b1", status="active",
                                           artifact_path=str(model_dir / "baseline"))
    mllm = ModelVersion.objects.create(policy=policy, kind="mllm", version="m1", status="active",
                                       artifact_path=str(model_dir / "mllm"))
    return CascadeConfig.objects.create(policy=policy, version=1, entropy_threshold=99.0, is_active=True,
                                        baseline_version=baseline, mllm_version=mllm)


def ingest_inline(path, caption, route="auto") -> Video:
    with path.open("rb") as stream:
        video = do_ingest(stream, filename=path.name, source="cli", caption=caption, enqueue=False,
                          route=route).video
    scoring.run_inline(video.pk)
    video.refresh_from_db()
    return video


def test_confident_baseline_decides_and_records_its_routing(cascade, silent_clip):
    video = ingest_inline(silent_clip, "selling pistols and ammo cheap")
    assert video.state == "decided", video.error_reason
    assert (video.decided_by, video.final_label) == ("baseline", "weapons")
    prediction = video.predictions.get()
    assert prediction.stage == "baseline" and prediction.cascade_config == cascade
    assert abs(sum(prediction.probabilities.values()) - 1) < 1e-6
    routing = RoutingDecision.objects.get(video=video)
    assert (routing.threshold, routing.routed_to_mllm) == (99.0, False)
    assert routing.entropy == pytest.approx(prediction.entropy)


def test_entropy_at_the_threshold_goes_to_the_mllm_with_rationale(cascade, speech_text_clip):
    CascadeConfig.objects.filter(pk=cascade.pk).update(entropy_threshold=0.0)
    video = ingest_inline(speech_text_clip, "come to the festival")
    assert video.state == "decided" and video.decided_by == "mllm"
    mllm = video.predictions.get(stage="mllm")
    assert set(mllm.modality_contributions) == {"caption", "speech", "onscreen", "visual", "audio"}
    assert {"label", "spans", "frames"} <= set(mllm.rationale)
    # Stage 2 wrote why, and quoted only what the video holds.
    explanation = mllm.rationale["explanation"]
    assert explanation.strip()
    for span in mllm.rationale["spans"]:
        assert f'"{span["text"]}"' in explanation
        evidence = [video.caption, *video.transcript.values_list("text", flat=True),
                    *video.ocr_lines.values_list("text", flat=True)]
        assert span["text"] in {" ".join(text.split()) for text in evidence}
    assert video.final_label == mllm.label
    assert video.decision in Video.Decision.values


def test_a_cpu_worker_set_to_int8_serves_stage_2_from_int8_weights(cascade, speech_text_clip, settings):
    settings.COEFVQ_STAGE2_CPU_INT8 = True
    settings.COEFVQ_STAGE2_DEVICE = "cpu"
    CascadeConfig.objects.filter(pk=cascade.pk).update(entropy_threshold=0.0)
    video = ingest_inline(speech_text_clip, "come to the festival")
    assert scoring.load_mllm(cascade.mllm_version_id).int8
    assert video.decided_by == "mllm" and video.predictions.get(stage="mllm").rationale["explanation"].strip()


def test_forced_routes_override_the_router(cascade, silent_clip, speech_text_clip):
    forced = ingest_inline(speech_text_clip, "a calm video", route="mllm")
    assert forced.decided_by == "mllm"
    assert RoutingDecision.objects.get(video=forced).forced_route == "mllm"
    CascadeConfig.objects.filter(pk=cascade.pk).update(entropy_threshold=0.0)
    kept = ingest_inline(silent_clip, "a calm video", route="baseline")
    assert kept.decided_by == "baseline" and not kept.predictions.filter(stage="mllm").exists()


def test_scoring_twice_stores_one_prediction(cascade, silent_clip):
    video = ingest_inline(silent_clip, "my cat sleeping in the sun")
    scoring.score_baseline(video.pk)
    scoring.run_inline(video.pk)
    assert Prediction.objects.filter(video=video).count() == 1
    assert video.events.filter(to_state="decided").count() == 1


def test_budget_becomes_a_threshold_over_recent_entropies(cascade, silent_clip, tmp_path):
    CascadeConfig.objects.filter(pk=cascade.pk).update(entropy_threshold=None, mllm_budget=0.5)
    cascade.refresh_from_db()
    assert scoring.current_threshold(cascade) == 0.0  # no history yet: route everything
    for i, caption in enumerate(["my cat sleeping in the sun", "cheap pills", "rifles maybe", "pasta"]):
        clip = tmp_path / f"{i}.mp4"
        shutil.copy(silent_clip, clip)
        with clip.open("ab") as extra:
            extra.write(bytes([i]))  # distinct bytes, distinct videos
        ingest_inline(clip, caption, route="baseline")
    entropies = sorted(Prediction.objects.values_list("entropy", flat=True))
    threshold = scoring.current_threshold(cascade)
    assert sum(e >= threshold for e in entropies) == 2


def test_a_new_baseline_routes_by_its_reference_entropies_until_it_has_its_own(cascade, silent_clip, tmp_path):
    reference = [0.05 * i for i in range(20)]
    do_set_reference_entropies(cascade.baseline_version, reference)
    CascadeConfig.objects.filter(pk=cascade.pk).update(entropy_threshold=None, mllm_budget=0.25)
    cascade = scoring.active_config(cascade.policy_id)
    assert scoring.current_threshold(cascade) == threshold_for_budget(reference, 0.25)  # no video scored yet
    video = ingest_inline(silent_clip, "my cat sleeping in the sun", route="baseline")
    own = video.predictions.get().entropy
    assert scoring.current_threshold(cascade) == threshold_for_budget([own] + reference, 0.25)
    with pytest.raises(ActionError):
        do_set_reference_entropies(cascade.mllm_version, reference)  # only a baseline's entropies route


def test_each_video_is_decoded_once_and_both_stages_read_its_stored_evidence(cascade, speech_text_clip, monkeypatch):
    decodes, seen = [], []
    monkeypatch.setattr(pipeline, "decode_isolated", lambda *a, **k: decodes.append(a) or decode_isolated(*a, **k))
    score = BaselineClassifier.score
    monkeypatch.setattr(BaselineClassifier, "score", lambda self, video: seen.append(video) or score(self, video))
    video = ingest_inline(speech_text_clip, "come to the festival", route="mllm")
    assert video.state == "decided" and video.decided_by == "mllm"
    assert len(decodes) == 1  # extraction; stage 1 and stage 2 read what it stored
    (features,) = seen
    assert features.caption == "come to the festival"
    assert features.transcript and features.ocr  # stage 1 reads the speech and the on-screen text
    assert len(features.frames) == video.frames.count() and features.audio is not None
    fresh = decode_isolated(speech_text_clip, n_frames=len(features.frames))
    assert np.abs(features.audio - fresh.audio).max() <= 1 / 32767 + 1e-6  # the 16-bit copy of the decoded audio
    assert video.media.evidence_version == evidence.EVIDENCE_VERSION
    # Each step records what it spent, for operators and bench/worker_cost.py.
    steps = {}
    for event in video.events.order_by("at", "id"):  # the first entry into each state
        steps.setdefault(event.to_state, event.data.get("seconds"))
    assert set(steps["extracted"]) == {"decode_s", "asr_s", "ocr_s", "store_s"}
    assert set(steps["awaiting_mllm"]) == {"evidence_s", "baseline_s"}
    assert set(steps["decided"]) == {"evidence_s", "mllm_s"}
    assert all(seconds >= 0 for step in ("extracted", "awaiting_mllm", "decided") for seconds in steps[step].values())


def test_a_video_extracted_before_audio_was_kept_is_decoded_once_more(cascade, speech_text_clip, monkeypatch):
    with speech_text_clip.open("rb") as stream:
        video = do_ingest(stream, filename="old.mp4", source="cli", caption="festival", enqueue=False).video
    with pipeline.inline_mode():
        pipeline.extract(video.pk)
    media = Video.objects.get(pk=video.pk).media
    media.audio.delete(save=False)
    media.evidence_version = ""
    media.save()
    decodes = []
    monkeypatch.setattr(pipeline, "decode_isolated", lambda *a, **k: decodes.append(a) or decode_isolated(*a, **k))
    with pipeline.inline_mode():
        scoring.score_baseline(video.pk)
        scoring.score_baseline(video.pk)
    media.refresh_from_db()
    assert len(decodes) == 1 and media.audio and media.evidence_version == evidence.EVIDENCE_VERSION
    assert Video.objects.get(pk=video.pk).state == "decided"


def test_a_clip_without_audio_or_text_still_gets_a_stage_1_verdict(cascade, silent_clip):
    video = ingest_inline(silent_clip, "", route="baseline")
    assert video.state == "decided" and video.decided_by == "baseline", video.error_reason
    assert not video.media.audio  # nothing stored for a file without sound


def test_without_models_videos_rest_extracted(silent_clip):
    video = ingest_inline(silent_clip, "anything")
    assert video.state == "extracted"
    assert pipeline.settled_ids([video.pk]) == {video.pk}


def test_ingest_json_carries_the_cascade_fields(cascade, silent_clip, capsys):
    call_command("ingest", str(silent_clip), "--inline", "--json", "--caption", "cheap pills without prescription")
    record = json.loads(capsys.readouterr().out)
    assert record["decided_by"] == "baseline" and record["final_label"] == "drugs"
    assert record["entropy"] >= 0 and set(record["probabilities"]) == {"ok", "scam", "drugs", "weapons"}
    assert record["routed_to_mllm"] is False and record["rationale"] is None


def test_unsure_decisions_and_audit_samples_reach_the_review_queue(cascade, silent_clip, speech_text_clip):
    # Everything is in the review band.
    CascadeConfig.objects.filter(pk=cascade.pk).update(allow_below=0.0, action_above=1.0)
    unsure = ingest_inline(silent_clip, "my cat sleeping in the sun")
    assert unsure.decision == "human_review" and unsure.needs_review
    task = ReviewTask.objects.get(video=unsure)
    assert (task.reason, task.status, task.model_label) == ("review_band", "open", unsure.final_label)
    # Nothing is in the band, and every automatic decision is audited.
    CascadeConfig.objects.filter(pk=cascade.pk).update(allow_below=0.5, action_above=0.5, audit_rate=1.0)
    audited = ingest_inline(speech_text_clip, "selling pistols and ammo cheap", route="baseline")
    assert audited.decision in ("auto_allow", "auto_action")
    assert ReviewTask.objects.get(video=audited).reason == "audit"
    scoring.score_baseline(audited.pk)  # a re-run opens no second task
    assert ReviewTask.objects.filter(video=audited).count() == 1


def routed_to_stage2(path, caption="my cat sleeping in the sun") -> Video:
    """A video stage 1 scored and routed to stage 2, waiting for it."""
    with path.open("rb") as stream:
        video = do_ingest(stream, filename=path.name, source="cli", caption=caption, enqueue=False,
                          route="mllm").video
    with pipeline.inline_mode():
        pipeline.extract(video.pk)
        scoring.score_baseline(video.pk)
    video.refresh_from_db()
    assert video.state == "awaiting_mllm", video.error_reason
    return video


def test_switching_stage2_off_decides_waiting_videos_from_stage1_and_sends_them_to_review(cascade, silent_clip,
                                                                                           settings):
    video = routed_to_stage2(silent_clip)
    stage1 = video.predictions.get(stage="baseline")
    # An admin saves a configuration version with the MLLM left blank.
    do_change_cascade_config(cascade.policy, actor=None, note="stage 2 off", mllm_version=None)

    for _ in range(settings.COEFVQ_MAX_ATTEMPTS + 1):  # every message the reconciler could send
        scoring.score_mllm(video.pk)

    video.refresh_from_db()
    assert video.state == "decided", video.error_reason
    assert (video.decided_by, video.final_label, video.decision) == ("baseline", stage1.label, "human_review")
    task = ReviewTask.objects.get(video=video)
    assert (task.reason, task.status, task.model_label) == ("review_band", "open", stage1.label)
    assert "No multimodal model is active: stage 1 says" in video.events.get(to_state="decided").message


def test_stage2_on_trial_explains_routed_videos_and_a_reviewer_decides_from_stage1(cascade, silent_clip,
                                                                                    speech_text_clip):
    CascadeConfig.objects.filter(pk=cascade.pk).update(entropy_threshold=0.0, stage2_decides=False)

    routed = ingest_inline(speech_text_clip, "come to the festival")

    stage1, stage2 = routed.predictions.get(stage="baseline"), routed.predictions.get(stage="mllm")
    assert stage2.rationale["explanation"].strip()  # the reviewer reads it beside stage 1's verdict
    assert (routed.decided_by, routed.final_label, routed.decision) == ("baseline", stage1.label, "human_review")
    task = ReviewTask.objects.get(video=routed)
    assert (task.status, task.model_label) == ("open", stage1.label)
    assert f"Stage 2 is on trial (it says {stage2.label}): stage 1 says" in routed.events.get(to_state="decided").message
    # An operator who forces stage 2 asks for its verdict.
    forced = ingest_inline(silent_clip, "a calm video", route="mllm")
    assert forced.decided_by == "mllm"


def test_a_broken_stage2_model_holds_videos_without_using_their_attempts(cascade, silent_clip, settings, tmp_path):
    video = routed_to_stage2(silent_clip)
    artifact = cascade.mllm_version.artifact_path
    ModelVersion.objects.filter(pk=cascade.mllm_version_id).update(artifact_path=str(tmp_path / "gone"))

    for _ in range(settings.COEFVQ_MAX_ATTEMPTS + 1):
        scoring.score_mllm(video.pk)

    video.refresh_from_db()
    assert (video.state, video.attempts, video.error_reason) == ("awaiting_mllm", 0, "")
    assert video.held_reason.startswith("Stage 2 (mllm m1) could not score:") and "gone" in video.held_reason
    # The uploader's timeline says it waits, once, without the admin's details.
    waiting = video.events.filter(message__startswith="Waiting:")
    assert waiting.count() == 1 and "gone" not in waiting.get().message

    # The admin fixes the model: the next try decides, and nothing holds the video any more.
    ModelVersion.objects.filter(pk=cascade.mllm_version_id).update(artifact_path=artifact)
    scoring.score_mllm(video.pk)
    video.refresh_from_db()
    assert (video.state, video.decided_by, video.held_reason) == ("decided", "mllm", "")


def test_a_broken_baseline_holds_videos_in_stage1(cascade, silent_clip, settings, tmp_path):
    with silent_clip.open("rb") as stream:
        video = do_ingest(stream, filename="a.mp4", source="cli", caption="cat", enqueue=False).video
    with pipeline.inline_mode():
        pipeline.extract(video.pk)
    ModelVersion.objects.filter(pk=cascade.baseline_version_id).update(artifact_path=str(tmp_path / "gone"))
    for _ in range(settings.COEFVQ_MAX_ATTEMPTS + 1):
        scoring.score_baseline(video.pk)
    video.refresh_from_db()
    assert (video.state, video.attempts) == ("scoring", 0) and "Stage 1 (baseline b1)" in video.held_reason


def test_stage2_that_cannot_read_the_file_keeps_the_stage1_verdict(cascade, silent_clip):
    video = routed_to_stage2(silent_clip)
    # The stored audio went missing (stage 2 decodes the file once more), and the file no longer decodes.
    media = video.media
    media.audio.delete(save=False)
    media.evidence_version = ""
    media.save()
    with open(video.file.path, "wb") as damaged:
        damaged.write(b"\x00" * 4096)

    scoring.score_mllm(video.pk)

    video.refresh_from_db()
    assert video.state == "decided" and video.decided_by == "baseline" and video.decision == "human_review"
    assert ReviewTask.objects.filter(video=video, status="open").exists()
    assert "could not read the file" in video.events.get(to_state="decided").message


def test_decisions_follow_the_policys_violating_labels(cascade, silent_clip, speech_text_clip):
    CascadeConfig.objects.filter(pk=cascade.pk).update(allow_below=0.5, action_above=0.5, audit_rate=0.0)
    drugs = ingest_inline(silent_clip, "cheap pills without prescription")
    assert (drugs.final_label, drugs.decision) == ("drugs", "auto_action")
    # The policy's owner decides drugs no longer violate: the same verdict is now allowed.
    Policy.objects.filter(pk=cascade.policy_id).update(violating_labels=["scam", "weapons"])
    again = ingest_inline(speech_text_clip, "cheap pills without prescription", route="baseline")
    assert (again.final_label, again.decision) == ("drugs", "auto_allow"), again.events.last().message
