"""An uploader without a role sees their own videos and nothing of anyone else's, in every list
(pages and API, every filter and page) and at every file URL."""

from __future__ import annotations

import io

import pytest
from django.core.files.base import ContentFile
from django.test import Client
from PIL import Image

from moderation.models import FrameSample, Video
from uploads_helper import upload_as

pytestmark = pytest.mark.django_db


@pytest.fixture
def theirs(django_user_model) -> Video:
    """Another uploader's video, with a frame, in each state a list can filter on."""
    owner = django_user_model.objects.create_user("mallory-victim")
    video = upload_as(owner, b"their private video", "their-secret-name.mp4")
    image = io.BytesIO()
    Image.new("RGB", (8, 8)).save(image, format="JPEG")
    frame = FrameSample(video=video, index=0, t_s=0.0, width=8, height=8)
    frame.image.save("f0.jpg", ContentFile(image.getvalue()))
    return video


@pytest.fixture
def mine(uploader) -> list[Video]:
    return [upload_as(uploader, b"mine %d" % i, f"my-clip-{i}.mp4") for i in range(3)]


def test_page_lists_show_only_my_videos(client, uploader, mine, theirs):
    client.force_login(uploader)
    queries = [""] + [f"?state={state}" for state in Video.State.values] + ["?page=2", "?page=last", "?page=-1"]
    for query in queries:
        page = client.get("/videos/" + query)
        assert page.status_code == 200
        assert "their-secret-name" not in page.content.decode(), query
    assert all(v.original_filename in client.get("/videos/").content.decode() for v in mine)


@pytest.mark.parametrize("suffix, headers", [
    ("/", {}), ("/media", {}), ("/media", {"HTTP_RANGE": "bytes=0-3"}), ("/frames/0.jpg", {}),
])
def test_pages_and_files_of_another_uploaders_video_are_closed(suffix, headers, client, uploader, theirs):
    client.force_login(uploader)
    response = client.get(f"/videos/{theirs.pk}{suffix}", **headers)
    assert response.status_code in (403, 404)
    assert b"their private video" not in b"".join(getattr(response, "streaming_content", [response.content]))


def test_api_lists_show_only_my_videos(uploader_api, mine, theirs):
    seen = set()
    for query in ("", "?page=1", "?page=2", "?ordering=id", "?uploader=" + str(theirs.uploader_id)):
        response = uploader_api.get("/api/videos/" + query)
        assert response.status_code in (200, 404)
        if response.status_code == 200:
            seen |= {video["id"] for video in response.json()["results"]}
    assert seen == {video.pk for video in mine}
    assert uploader_api.get(f"/api/videos/{theirs.pk}/").status_code == 404


@pytest.mark.parametrize("url", ["/api/review-tasks/", "/api/review-tasks/?status=done", "/api/reviews/"])
def test_review_lists_are_closed_to_uploaders(url, uploader_api, theirs):
    assert uploader_api.get(url).status_code == 403


@pytest.mark.parametrize("url", ["/queue/", "/queue/?fragment=1", "/dashboard/", "/dashboard/export/volume.csv"])
def test_reviewer_pages_are_closed_to_uploaders(url, client, uploader, theirs):
    client.force_login(uploader)
    response = client.get(url)
    assert response.status_code == 403
    assert "their-secret-name" not in response.content.decode()


def test_a_reviewer_sees_every_video(reviewer, mine, theirs):
    client = Client()
    client.force_login(reviewer)
    page = client.get("/videos/").content.decode()
    assert "their-secret-name" in page and all(v.original_filename in page for v in mine)
