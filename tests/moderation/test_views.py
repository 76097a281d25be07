import pytest
from django.core.files.uploadedfile import SimpleUploadedFile

from django.utils.html import escape

from moderation import pipeline
from moderation.models import Video

pytestmark = pytest.mark.django_db


def test_pages_need_a_login(client):
    for url in ["/", "/upload/", "/videos/", "/videos/1/"]:
        response = client.get(url)
        assert response.status_code == 302 and "/accounts/login/" in response["Location"], url


def test_upload_form_keeps_the_file_and_shows_the_video(client, uploader, speech_text_clip):
    client.force_login(uploader)
    response = client.post("/upload/", {
        "file": SimpleUploadedFile("festival.mp4", speech_text_clip.read_bytes(), content_type="video/mp4"),
        "title": "Festival", "caption": "come along",
    })
    video = Video.objects.get()
    assert response.status_code == 302 and response["Location"] == f"/videos/{video.pk}/"
    assert (video.source, video.uploader, video.title) == ("web", uploader, "Festival")
    pipeline.extract(video.pk)
    page = client.get(f"/videos/{video.pk}/").content.decode()
    assert "garden festival" in page.lower()
    assert "Evidence extracted" in page
    frame = client.get(f"/videos/{video.pk}/frames/0.jpg")
    assert frame.status_code == 200 and frame["Content-Type"] == "image/jpeg"


def test_upload_without_a_file_says_so(client, uploader):
    client.force_login(uploader)
    response = client.post("/upload/", {"title": "nothing"})
    assert response.status_code == 400
    assert "This field is required" in response.content.decode()
    assert Video.objects.count() == 0


def test_forged_post_without_csrf_token_is_refused(uploader):
    from django.test import Client

    strict = Client(enforce_csrf_checks=True)
    strict.force_login(uploader)
    response = strict.post("/upload/", {"file": SimpleUploadedFile("a.mp4", b"x")})
    assert response.status_code == 403
    assert Video.objects.count() == 0


def test_failed_video_shows_its_reason(client, uploader, garbage_file):
    client.force_login(uploader)
    client.post("/upload/", {"file": SimpleUploadedFile(garbage_file.name, garbage_file.read_bytes())})
    video = Video.objects.get()
    pipeline.extract(video.pk)
    video.refresh_from_db()
    page = client.get(f"/videos/{video.pk}/").content.decode()
    assert "Processing failed." in page and escape(video.error_reason) in page


def test_other_uploaders_cannot_open_my_video(client, uploader, django_user_model):
    client.force_login(uploader)
    client.post("/upload/", {"file": SimpleUploadedFile("a.mp4", b"mine")})
    video = Video.objects.get()
    client.force_login(django_user_model.objects.create_user("mallory"))
    assert client.get(f"/videos/{video.pk}/").status_code == 403
    assert client.get(f"/videos/{video.pk}/frames/0.jpg").status_code == 403
