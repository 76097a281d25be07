"""Hostile uploads through the browser form and the API: broken media, lying names and types,
path tricks in file names, bodies past the limits. Each one is kept (and ends failed with a
reason a moderator can read) or refused with a clear message; none is a server error, and no
file ever lands outside MEDIA_ROOT."""

from __future__ import annotations

import os
import struct
import uuid
from pathlib import Path

import pytest
from django.conf import settings as django_settings
from django.test import Client

from moderation import pipeline
from moderation.models import Video

pytestmark = pytest.mark.django_db

RANDOM_BYTES = os.urandom(64 * 1024)
ELF_NAMED_MP4 = b"\x7fELF\x02\x01\x01" + b"\x00" * 4096
PNG_NAMED_MP4 = b"\x89PNG\r\n\x1a\n" + os.urandom(2048)
# An MP4 box that claims to be 2^63 bytes long (a 64-bit "largesize"), then ends.
HUGE_DECLARED_BOX = (struct.pack(">I4s4sI", 20, b"ftyp", b"isom", 0) + b"isom"
                     + struct.pack(">I4sQ", 1, b"mdat", 2**63 - 1) + b"\x00" * 64)
# A "moov" box whose size field says 4 GB on a 100-byte file.
LYING_MOOV = struct.pack(">I4s", 0xFFFFFFF0, b"moov") + b"\x00" * 92


@pytest.fixture(scope="module")
def truncated_clip(silent_clip, tmp_path_factory) -> bytes:
    return silent_clip.read_bytes()[: silent_clip.stat().st_size // 3]


def malformed_media(truncated_clip) -> dict[str, bytes]:
    return {"truncated.mp4": truncated_clip, "random.mp4": RANDOM_BYTES, "elf.mp4": ELF_NAMED_MP4,
            "png.mp4": PNG_NAMED_MP4, "empty.mp4": b"", "huge-box.mp4": HUGE_DECLARED_BOX,
            "lying-moov.mp4": LYING_MOOV}


def multipart(*, filename: bytes, content: bytes, content_type: bytes = b"video/mp4",
              extra_fields: int = 0, extra_files: int = 0) -> tuple[bytes, str]:
    """A multipart body written byte by byte, so the file name and type are exactly what we say."""
    boundary = uuid.uuid4().hex.encode()
    parts = [b'Content-Disposition: form-data; name="file"; filename="' + filename + b'"\r\n'
             b"Content-Type: " + content_type + b"\r\n\r\n" + content]
    parts += [b'Content-Disposition: form-data; name="f%d"\r\n\r\nx' % i for i in range(extra_fields)]
    parts += [b'Content-Disposition: form-data; name="more"; filename="m%d.mp4"\r\n'
              b"Content-Type: video/mp4\r\n\r\nm" % i for i in range(extra_files)]
    body = b"".join(b"--" + boundary + b"\r\n" + part + b"\r\n" for part in parts) + b"--" + boundary + b"--\r\n"
    return body, "multipart/form-data; boundary=" + boundary.decode()


@pytest.fixture
def form_client(uploader) -> Client:
    client = Client()
    client.force_login(uploader)
    return client


def post_form(client, body: bytes, content_type: str, **extra):
    return client.post("/upload/", data=body, content_type=content_type, **extra)


def post_api(client, body: bytes, content_type: str, **extra):
    return client.post("/api/videos/", data=body, content_type=content_type, **extra)


def assert_kept_or_refused_clearly(response, *, api: bool) -> Video | None:
    assert response.status_code < 500, response.content[:500]
    if response.status_code in (200, 201, 302):
        return Video.objects.get(pk=response.json()["id"]) if api else Video.objects.order_by("-id").first()
    assert 400 <= response.status_code < 500
    message = response.json() if api else response.content.decode()
    assert message, "a refusal says why"
    return None


def assert_inside_media_root(video: Video):
    media_root = Path(django_settings.MEDIA_ROOT).resolve()
    stored = Path(video.file.path).resolve()
    assert stored.is_relative_to(media_root) and stored.is_file()
    assert "/" not in video.original_filename and "\\" not in video.original_filename
    assert all(ch.isprintable() for ch in video.original_filename)


def test_malformed_media_is_kept_and_ends_failed_with_a_reason(form_client, uploader_api, truncated_clip):
    for name, content in malformed_media(truncated_clip).items():
        for api, client, post in ((False, form_client, post_form), (True, uploader_api, post_api)):
            body, content_type = multipart(filename=name.encode(), content=content)
            video = assert_kept_or_refused_clearly(post(client, body, content_type), api=api)
            assert video is not None, f"{name} was refused; it should be kept for a moderator to see"
            assert_inside_media_root(video)
            assert Path(video.file.path).read_bytes() == content
            if video.state == Video.State.RECEIVED:
                pipeline.extract(video.pk)
            video.refresh_from_db()
            # The truncated clip still has frames to read; everything else cannot be decoded.
            if name != "truncated.mp4":
                assert video.state == Video.State.FAILED and video.error_reason, name
            else:
                assert video.state in (Video.State.EXTRACTED, Video.State.FAILED), video.state
                assert video.state != Video.State.FAILED or video.error_reason


TRAVERSAL_NAMES = [
    b"../../etc/passwd", b"/etc/passwd", b"..\\..\\windows\\system32\\evil.mp4", b"clip\x00.html.mp4",
    b"....//....//etc/passwd", b"%2e%2e%2f%2e%2e%2fetc%2fpasswd.mp4", "\u202egnp.mp4".encode(),
    "\uff0e\uff0e\uff0f\uff0e\uff0e\uff0fetc\uff0fpasswd".encode(), b"con.mp4", b"", b"a" * 5000 + b".mp4",
    b"../" * 100 + b"media-escape.mp4",
]


@pytest.mark.parametrize("api", [False, True], ids=["form", "api"])
def test_file_names_never_choose_where_the_file_is_stored(api, form_client, uploader_api, tmp_path):
    client, post = (uploader_api, post_api) if api else (form_client, post_form)
    before = set(tmp_path.parent.iterdir())
    for index, name in enumerate(TRAVERSAL_NAMES):
        body, content_type = multipart(filename=name, content=b"not a video %d" % index)
        response = post(client, body, content_type)
        video = assert_kept_or_refused_clearly(response, api=api)
        if video is not None:
            assert_inside_media_root(video)
    assert set(tmp_path.parent.iterdir()) == before, "nothing was written beside the test's folder"
    assert not Path("/etc/passwd.mp4").exists()


@pytest.mark.parametrize("name, content_type", [
    (b"page.html", b"text/html"), (b"image.svg", b"image/svg+xml"), (b"clip.mp4", b"text/html"),
    (b"script.js", b"application/javascript"),
])
def test_forged_types_are_served_back_as_inert_bytes(name, content_type, form_client, uploader_api):
    """The original file is served to reviewers; whatever its name or declared type, it must not
    come back as a page or script that runs in their session."""
    payload = b"<html><script>fetch('/api/reviews/')</script><svg onload=alert(1)></svg></html>"
    body, multipart_type = multipart(filename=name, content=payload, content_type=content_type)
    response = post_api(uploader_api, body, multipart_type)
    assert response.status_code == 201, response.content
    media = form_client.get(f"/videos/{response.json()['id']}/media")
    assert media.status_code == 200
    # A name the player knows keeps its video type; nosniff stops a browser reading it as a page.
    assert media["Content-Type"] == ("video/mp4" if name.endswith(b".mp4") else "application/octet-stream")
    assert media["X-Content-Type-Options"] == "nosniff"
    assert "sandbox" in media["Content-Security-Policy"]


@pytest.mark.parametrize("api", [False, True], ids=["form", "api"])
def test_a_body_declaring_more_than_the_hard_limit_is_refused_before_it_is_read(api, settings, form_client,
                                                                                 uploader_api):
    settings.COEFVQ_UPLOAD_HARD_MAX_BYTES = 1024 * 1024
    client, post = (uploader_api, post_api) if api else (form_client, post_form)
    body, content_type = multipart(filename=b"big.mp4", content=b"small")
    response = post(client, body, content_type, CONTENT_LENGTH=str(50 * 1024**3))
    assert response.status_code == 413
    assert "larger than 1.0\xa0MB" in (response.json()["detail"] if api else response.content.decode())
    assert Video.objects.count() == 0


@pytest.mark.parametrize("api", [False, True], ids=["form", "api"])
def test_a_file_over_the_hard_limit_is_refused_with_413(api, settings, form_client, uploader_api):
    settings.COEFVQ_UPLOAD_HARD_MAX_BYTES = 64 * 1024
    client, post = (uploader_api, post_api) if api else (form_client, post_form)
    body, content_type = multipart(filename=b"big.mp4", content=os.urandom(200 * 1024))
    response = post(client, body, content_type)
    assert response.status_code == 413
    assert "larger than 64.0\xa0KB and was not accepted" in (response.json()["detail"] if api else response.content.decode())
    assert Video.objects.count() == 0
    assert not any(Path(django_settings.MEDIA_ROOT).rglob("original*")), "nothing kept"


@pytest.mark.parametrize("api", [False, True], ids=["form", "api"])
def test_too_many_fields_is_a_clear_400(api, settings, form_client, uploader_api):
    settings.DATA_UPLOAD_MAX_NUMBER_FIELDS = 50
    client, post = (uploader_api, post_api) if api else (form_client, post_form)
    body, content_type = multipart(filename=b"a.mp4", content=b"x", extra_fields=500)
    response = post(client, body, content_type)
    assert response.status_code == 400
    text = response.json()["detail"] if api else response.content.decode()
    assert "at most 50 fields" in text
    assert Video.objects.count() == 0


@pytest.mark.parametrize("api", [False, True], ids=["form", "api"])
def test_too_many_files_is_a_clear_400(api, form_client, uploader_api):
    client, post = (uploader_api, post_api) if api else (form_client, post_form)
    body, content_type = multipart(filename=b"a.mp4", content=b"x", extra_files=50)
    response = post(client, body, content_type)
    assert response.status_code == 400
    text = response.json()["detail"] if api else response.content.decode()
    assert f"at most {django_settings.DATA_UPLOAD_MAX_NUMBER_FILES} files" in text
    assert Video.objects.count() == 0


@pytest.mark.parametrize("api", [False, True], ids=["form", "api"])
def test_oversized_text_fields_are_a_clear_refusal(api, form_client, uploader_api):
    client, post = (uploader_api, post_api) if api else (form_client, post_form)
    body, content_type = multipart(filename=b"a.mp4", content=b"x")
    caption = b"A" * (django_settings.DATA_UPLOAD_MAX_MEMORY_SIZE + 1)
    boundary = content_type.split("boundary=")[1].encode()
    body = body[: -len(b"--" + boundary + b"--\r\n")] + (
        b"--" + boundary + b'\r\nContent-Disposition: form-data; name="caption"\r\n\r\n' + caption + b"\r\n"
        + b"--" + boundary + b"--\r\n")
    response = post(client, body, content_type)
    assert response.status_code in (400, 413)
    text = response.json()["detail"] if api else response.content.decode()
    assert "send less text" in text or "characters long" in text or "at most" in text
    assert Video.objects.count() == 0


@pytest.mark.parametrize("api", [False, True], ids=["form", "api"])
def test_garbage_bodies_are_refused_not_crashed_on(api, form_client, uploader_api):
    client, post = (uploader_api, post_api) if api else (form_client, post_form)
    cases = [
        (RANDOM_BYTES, "multipart/form-data; boundary=nothere"),
        (RANDOM_BYTES, "multipart/form-data"),  # no boundary at all
        (b"--b\r\nContent-Disposition: form-data; name=\"file\"; filename=\"a.mp4\"\r\n\r\nunterminated",
         "multipart/form-data; boundary=b"),
        (RANDOM_BYTES, "application/x-www-form-urlencoded"),
        (b'{"file": "AAAA"}', "application/json"),
    ]
    for body, content_type in cases:
        response = post(client, body, content_type)
        assert 400 <= response.status_code < 500, (content_type, response.status_code, response.content[:300])
    assert Video.objects.count() == 0
