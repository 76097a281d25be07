"""Review tasks as the cascade leaves them, for the reviewer workspace tests: a decided video with
its real file, frames, transcript, on-screen text, both stages' predictions with a rationale and
modality contributions, and its routing decision; then `do_open_review`."""

from __future__ import annotations

import io
from pathlib import Path

from django.core.files.base import ContentFile
from PIL import Image

from moderation.actions.ingest import do_ingest
from moderation.actions.review_queue import do_open_review
from moderation.models import (CascadeConfig, FrameSample, ModelVersion, OcrLine, Policy, Prediction, ReviewTask,
                               RoutingDecision, TranscriptSegment, Video)

CAPTION = "giveaway today, send money to join"
TRANSCRIPT = [(0.0, 1.6, "please call the hotline"), (1.8, 3.6, "about the garden festival tomorrow")]
ONSCREEN = [(0.5, "GARDEN FESTIVAL"), (2.5, "CALL NOW")]
FRAME_TIMES = [0.5, 1.5, 2.5, 3.5]
BASELINE_PROBS = {"ok": 0.45, "scam": 0.40, "drugs": 0.10, "weapons": 0.05}
MLLM_PROBS = {"ok": 0.30, "scam": 0.60, "drugs": 0.06, "weapons": 0.04}
RATIONALE = {
    "label": "scam",
    "spans": [
        {"modality": "speech", "text": "call the hotline", "start_s": 0.0, "end_s": 1.6, "score": 0.21},
        {"modality": "caption", "text": "send money", "start_s": None, "end_s": None, "score": 0.12},
        {"modality": "onscreen", "text": "CALL NOW", "start_s": 2.5, "end_s": 2.5, "score": 0.05},
    ],
    "frames": [{"t_s": 2.5, "score": 0.03}],
    "explanation": "",
}
CONTRIBUTIONS = {"caption": 0.12, "speech": 0.2, "onscreen": 0.05, "visual": -0.03, "audio": 0.0}


def active_cascade(policy: Policy) -> CascadeConfig:
    config = CascadeConfig.objects.filter(policy=policy, is_active=True).first()
    if config is not None:
        return config
    baseline = ModelVersion.objects.create(policy=policy, kind="baseline", version="base-1", artifact_path="b",
                                           status="active")
    mllm = ModelVersion.objects.create(policy=policy, kind="mllm", version="mllm-1", artifact_path="m",
                                       status="active")
    return CascadeConfig.objects.create(policy=policy, version=1, entropy_threshold=0.9, is_active=True,
                                        baseline_version=baseline, mllm_version=mllm)


def _jpeg(shade: int) -> ContentFile:
    buffer = io.BytesIO()
    Image.new("RGB", (64, 48), (shade, 90, 160)).save(buffer, format="JPEG")
    return ContentFile(buffer.getvalue())


def decided_video(data: bytes, *, name: str, title: str = "") -> Video:
    video = do_ingest(io.BytesIO(data), filename=name, source="cli", caption=CAPTION, title=title,
                      enqueue=False).video
    Video.objects.filter(pk=video.pk).update(state=Video.State.DECIDED, final_label="scam", decided_by="mllm",
                                             decision=Video.Decision.HUMAN_REVIEW, needs_review=True)
    video.refresh_from_db()
    return video


def add_evidence(video: Video) -> None:
    for index, t_s in enumerate(FRAME_TIMES):
        frame = FrameSample(video=video, index=index, t_s=t_s, width=64, height=48)
        frame.image.save(f"{video.sha256[:12]}-{index}.jpg", _jpeg(40 * index), save=False)
        frame.save()
    TranscriptSegment.objects.bulk_create(
        TranscriptSegment(video=video, index=i, start_s=start, end_s=end, text=text)
        for i, (start, end, text) in enumerate(TRANSCRIPT))
    OcrLine.objects.bulk_create(OcrLine(video=video, index=i, t_s=t_s, text=text, score=0.95)
                                for i, (t_s, text) in enumerate(ONSCREEN))


def add_predictions(video: Video) -> None:
    config = active_cascade(video.policy)
    baseline = Prediction.objects.create(video=video, stage="baseline", model_version=config.baseline_version,
                                         cascade_config=config, probabilities=BASELINE_PROBS, label="ok",
                                         entropy=1.05)
    RoutingDecision.objects.create(video=video, baseline_prediction=baseline, cascade_config=config, entropy=1.05,
                                   threshold=0.9, routed_to_mllm=True)
    Prediction.objects.create(video=video, stage="mllm", model_version=config.mllm_version, cascade_config=config,
                              probabilities=MLLM_PROBS, label="scam", entropy=0.98, rationale=RATIONALE,
                              modality_contributions=CONTRIBUTIONS)


def open_review(video: Video, reason: str = ReviewTask.Reason.REVIEW_BAND) -> ReviewTask:
    return do_open_review(video, reason=reason, model_label="scam", probabilities=MLLM_PROBS,
                          p_violation=1 - MLLM_PROBS["ok"])


def review_task_for(clip: Path, *, title: str = "") -> ReviewTask:
    """A review-band task on a video with real media and everything the cascade stores."""
    video = decided_video(clip.read_bytes(), name=clip.name, title=title)
    add_evidence(video)
    add_predictions(video)
    return open_review(video)
