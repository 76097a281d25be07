"""Sign-in and upload limits: they trip at the configured count, answer 429 in words, and let
requests through again once the period has passed. The clock is moved, not waited for."""

from __future__ import annotations

import io
import multiprocessing
import time

import django_ratelimit.core
import pytest
from django.test import Client, override_settings

from coefvq_site.cache import LockingFileBasedCache
from moderation.models import Video
from moderation.throttling import UploadThrottle

pytestmark = pytest.mark.django_db


class Clock:
    """Stands in for the `time` module inside the rate-limit code: time stands still until moved."""

    def __init__(self):
        self.now = float(int(time.time()))

    def time(self) -> float:
        return self.now


@pytest.fixture
def clock(monkeypatch) -> Clock:
    clock = Clock()
    monkeypatch.setattr(django_ratelimit.core, "time", clock)
    monkeypatch.setattr(UploadThrottle, "timer", lambda self: clock.now)
    return clock


def sign_in(client, username, password="wrong"):
    return client.post("/accounts/login/", {"username": username, "password": password})


def test_one_account_tried_too_often_is_refused_until_the_minute_is_over(settings, clock, reviewer):
    settings.COEFVQ_LOGIN_RATE_PER_USERNAME = "3/m"
    for attempt in range(3):
        # Each from another address: the per-account limit is what stops them.
        assert sign_in(Client(REMOTE_ADDR=f"10.0.0.{attempt}"), "rita").status_code == 200
    refused = sign_in(Client(REMOTE_ADDR="10.0.0.99"), "RITA ", password="pw-rita")
    assert refused.status_code == 429
    assert "Too many sign-in attempts" in refused.content.decode() and refused["Retry-After"] == "60"
    assert sign_in(Client(REMOTE_ADDR="10.0.0.99"), "someone-else").status_code == 200  # others are not locked out
    clock.now += 61
    assert sign_in(Client(REMOTE_ADDR="10.0.0.99"), "rita", password="pw-rita").status_code == 302


def test_one_address_trying_many_accounts_is_refused_and_the_admin_login_counts_too(settings, clock):
    settings.COEFVQ_LOGIN_RATE_PER_IP = "4/m"
    guesser = Client(REMOTE_ADDR="192.0.2.7")
    for name in ("a", "b"):
        assert sign_in(guesser, name).status_code == 200
    for name in ("c", "d"):
        assert guesser.post("/admin/login/", {"username": name, "password": "x"}).status_code == 200
    assert sign_in(guesser, "e").status_code == 429
    assert guesser.post("/admin/login/", {"username": "f", "password": "x"}).status_code == 429
    assert sign_in(Client(REMOTE_ADDR="192.0.2.8"), "e").status_code == 200
    clock.now += 61
    assert sign_in(guesser, "e").status_code == 200


def test_the_login_page_itself_is_not_counted(settings, clock):
    settings.COEFVQ_LOGIN_RATE_PER_IP = "1/m"
    client = Client()
    for _ in range(5):
        assert client.get("/accounts/login/").status_code == 200


def upload_form(client, data: bytes):
    file = io.BytesIO(data)
    file.name = "clip.mp4"
    return client.post("/upload/", {"file": file})


def test_browser_uploads_are_limited_per_user(settings, clock, uploader, reviewer):
    settings.COEFVQ_UPLOAD_RATE = "2/h"
    client = Client()
    client.force_login(uploader)
    assert [upload_form(client, b"one").status_code, upload_form(client, b"two").status_code] == [302, 302]
    refused = upload_form(client, b"three")
    assert refused.status_code == 429
    assert "Too many uploads: at most 2 per hour" in refused.content.decode()
    other = Client()
    other.force_login(reviewer)
    assert upload_form(other, b"four").status_code == 302
    clock.now += 3601
    assert upload_form(client, b"three").status_code == 302
    assert Video.objects.count() == 4


def upload_api(client, data: bytes):
    file = io.BytesIO(data)
    file.name = "clip.mp4"
    return client.post("/api/videos/", {"file": file}, format="multipart")


def test_api_uploads_are_throttled_per_user_and_reads_are_not(settings, clock, uploader_api):
    settings.REST_FRAMEWORK = {**settings.REST_FRAMEWORK, "DEFAULT_THROTTLE_RATES": {"uploads": "2/m"}}
    assert [upload_api(uploader_api, b"%d" % i).status_code for i in range(2)] == [201, 201]
    refused = upload_api(uploader_api, b"2")
    assert refused.status_code == 429
    assert "throttled" in refused.json()["detail"] and int(refused["Retry-After"]) <= 60
    assert uploader_api.get("/api/videos/").status_code == 200
    clock.now += 61
    assert upload_api(uploader_api, b"2").status_code == 201


def _count(location: str, times: int) -> None:
    cache = LockingFileBasedCache(location, {})
    for _ in range(times):
        if not cache.add("hits", 1):
            cache.incr("hits")


def test_the_embedded_cache_counts_every_hit_from_processes_at_once(tmp_path):
    """Without the lock, processes reading the same count at once lose hits and a limit is exceeded."""
    workers = [multiprocessing.get_context("fork").Process(target=_count, args=(str(tmp_path), 100))
               for _ in range(4)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(timeout=60)
    assert LockingFileBasedCache(str(tmp_path), {}).get("hits") == 400


def test_signing_in_and_uploading_keep_working_when_the_cache_is_down(reviewer, uploader_api):
    """Redis is also the broker: while it is down uploads are kept for later, and people can sign in."""
    browser = Client()
    browser.force_login(reviewer)
    unreachable = {"default": {"BACKEND": "django.core.cache.backends.redis.RedisCache",
                               "LOCATION": "redis://127.0.0.1:1/0"}}  # nothing listens on port 1
    with override_settings(CACHES=unreachable):
        assert sign_in(Client(), "rita", password="pw-rita").status_code == 302
        assert upload_form(browser, b"kept while redis is down").status_code == 302
        assert upload_api(uploader_api, b"also kept").status_code == 201
    assert Video.objects.count() == 2
