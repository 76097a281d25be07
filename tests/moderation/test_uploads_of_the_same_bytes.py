"""The same file uploaded by two people: each upload is a video of its own (its uploader, caption
and verdict), nobody reads the other's, and the media work is done once for both."""

import io

import pytest
import redis
from accounts import make_user
from django.conf import settings
from rest_framework.authtoken.models import Token
from rest_framework.test import APIClient

from inference.sandbox import decode_isolated
from moderation import pipeline, scoring
from moderation.models import CascadeConfig, ModelVersion, Policy, Video

pytestmark = pytest.mark.django_db


@pytest.fixture
def baseline_decides(model_dir):
    """A cascade whose stage 1 decides everything (no entropy reaches the threshold)."""
    scoring.load_baseline.cache_clear()
    policy = Policy.objects.get(slug="icd")
    baseline = ModelVersion.objects.create(policy=policy, kind="baseline", version="b1", status="active",
                                           artifact_path=str(model_dir / "baseline"))
    return CascadeConfig.objects.create(policy=policy, version=1, entropy_threshold=99.0, is_active=True,
                                        baseline_version=baseline)


@pytest.fixture
def broker():
    """API uploads nudge a worker through the real broker; the test runs the steps itself."""
    connection = redis.Redis.from_url(settings.CELERY_BROKER_URL)
    connection.delete("cpu")
    yield connection
    connection.delete("cpu")


def client_of(user) -> APIClient:
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION="Token " + Token.objects.create(user=user).key)
    return client


def upload(client, data: bytes, caption: str):
    file = io.BytesIO(data)
    file.name = "clip.mp4"
    return client.post("/api/videos/", {"file": file, "caption": caption}, format="multipart")


def test_two_uploaders_of_one_file_get_their_own_video_caption_and_verdict(
        baseline_decides, broker, silent_clip, django_user_model, monkeypatch):
    decodes = []
    monkeypatch.setattr(pipeline, "decode_isolated", lambda *a, **k: decodes.append(a) or decode_isolated(*a, **k))
    alice, bob = client_of(make_user(django_user_model, "alice")), client_of(make_user(django_user_model, "bob"))
    data = silent_clip.read_bytes()

    cleared = upload(alice, data, "my cat sleeping in the sun")
    violating = upload(bob, data, "selling pistols and ammo cheap")
    assert (cleared.status_code, violating.status_code) == (201, 201), violating.content
    mine, theirs = cleared.json()["id"], violating.json()["id"]
    assert mine != theirs
    assert violating.json()["caption"] == "selling pistols and ammo cheap"
    assert violating.json()["original_filename"] == "clip.mp4" and "transcript" in violating.json()

    # Neither reads the other's video, in the list or by its id.
    assert [v["id"] for v in alice.get("/api/videos/").json()["results"]] == [mine]
    assert [v["id"] for v in bob.get("/api/videos/").json()["results"]] == [theirs]
    assert alice.get(f"/api/videos/{theirs}/").status_code == 404
    assert bob.get(f"/api/videos/{mine}/").status_code == 404

    for video_id in (mine, theirs):
        scoring.run_inline(video_id)
    first, second = Video.objects.get(pk=mine), Video.objects.get(pk=theirs)
    assert (first.state, second.state) == ("decided", "decided"), (first.error_reason, second.error_reason)
    # Each caption was scored: the re-upload with a violating caption does not inherit the clearance.
    assert (first.final_label, second.final_label) == ("ok", "weapons")
    assert first.predictions.get().probabilities != second.predictions.get().probabilities
    # The media work was shared: one decode for both, and the second video holds a copy of it.
    assert len(decodes) == 1
    assert second.frames.count() == first.frames.count() == settings.COEFVQ_FRAMES_PER_VIDEO
    assert second.media.duration_s == first.media.duration_s
    assert second.events.get(to_state="extracted").data["copied_from"] == first.pk
    assert {f.image.name for f in first.frames.all()}.isdisjoint(f.image.name for f in second.frames.all())
    assert bob.get(f"/api/videos/{theirs}/").json()["final_label"] == "weapons"
