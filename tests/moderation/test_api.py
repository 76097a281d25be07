import io

import pytest
from rest_framework.authtoken.models import Token
from rest_framework.test import APIClient

from moderation.models import Video

pytestmark = pytest.mark.django_db


@pytest.fixture
def api(uploader):
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION="Token " + Token.objects.create(user=uploader).key)
    return client


def upload(client, data=b"video bytes", name="clip.mp4", **fields):
    file = io.BytesIO(data)
    file.name = name
    return client.post("/api/videos/", {"file": file, "caption": "hi", **fields}, format="multipart")


def test_api_needs_a_token():
    assert APIClient().get("/api/videos/").status_code == 401


def test_upload_creates_then_recognises_the_same_upload(api):
    first = upload(api)
    assert first.status_code == 201, first.content
    assert first.json()["state"] == "received" and first.json()["caption"] == "hi"
    again = upload(api, name="renamed.mp4")
    assert again.status_code == 200
    assert again.json()["id"] == first.json()["id"]
    assert Video.objects.get().source == "api"


def test_upload_errors_are_clear(api):
    missing = api.post("/api/videos/", {"caption": "no file"}, format="multipart")
    assert missing.status_code == 400 and "file" in missing.json()
    bad_policy = upload(api, policy="does-not-exist")
    assert bad_policy.status_code == 400
    assert "no policy" in bad_policy.json()["detail"].lower()
    assert Video.objects.count() == 0


def test_uploaders_see_their_own_videos_and_reviewers_see_all(api, reviewer, django_user_model):
    mine = upload(api, data=b"mine").json()["id"]
    other = django_user_model.objects.create_user("other")
    other_client = APIClient()
    other_client.force_authenticate(other)
    theirs = upload(other_client, data=b"theirs").json()["id"]
    assert [v["id"] for v in api.get("/api/videos/").json()["results"]] == [mine]
    assert api.get(f"/api/videos/{theirs}/").status_code == 404
    staff = APIClient()
    staff.force_authenticate(reviewer)
    assert {v["id"] for v in staff.get("/api/videos/").json()["results"]} == {mine, theirs}


def test_openapi_schema_is_published(api):
    schema = api.get("/api/schema/", HTTP_ACCEPT="application/vnd.oai.openapi+json")
    assert schema.status_code == 200
    body = schema.json()
    assert body["openapi"].startswith("3.")
    assert "post" in body["paths"]["/api/videos/"]
