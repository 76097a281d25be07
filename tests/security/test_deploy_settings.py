"""Production settings pass Django's deployment checks; forms need their CSRF token; a session
left alone ends."""

from __future__ import annotations

import os
import secrets
import subprocess
import sys
import time
from datetime import timedelta
from pathlib import Path

import pytest
from django.contrib.sessions.models import Session
from django.test import Client
from django.utils import timezone

from moderation.sessions import REFRESHED_AT

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize("redis", [True, False], ids=["postgres-redis", "embedded-default"])
def test_production_settings_pass_check_deploy(redis, tmp_path):
    env = {**os.environ, "DJANGO_SECURE": "1", "DJANGO_DEBUG": "0", "DJANGO_SECRET_KEY": secrets.token_urlsafe(60),
           "COEFVQ_VAR_DIR": str(tmp_path)}
    if not redis:
        env.pop("REDIS_URL", None)
        env.pop("DATABASE_URL", None)
    result = subprocess.run([sys.executable, "manage.py", "check", "--deploy", "--fail-level", "WARNING"],
                            cwd=ROOT, env=env, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "no issues" in result.stdout


@pytest.mark.django_db
@pytest.mark.parametrize("url, data", [
    ("/accounts/login/", {"username": "rita", "password": "pw-rita"}),
    ("/upload/", {"title": "no token"}),
    ("/queue/claim/", {}),
    ("/accounts/logout/", {}),
])
def test_a_form_post_without_its_csrf_token_is_refused(url, data, reviewer):
    strict = Client(enforce_csrf_checks=True)
    if url != "/accounts/login/":
        strict.force_login(reviewer)
    assert strict.post(url, data).status_code == 403


@pytest.mark.django_db
def test_the_login_form_works_with_its_token(reviewer):
    client = Client(enforce_csrf_checks=True)
    page = client.get("/accounts/login/")
    token = page.cookies["csrftoken"].value
    response = client.post("/accounts/login/", {"username": "rita", "password": "pw-rita",
                                                "csrfmiddlewaretoken": token})
    assert response.status_code == 302


@pytest.mark.django_db
def test_a_session_left_alone_past_its_age_is_signed_out(client, reviewer):
    client.force_login(reviewer)
    assert client.get("/queue/").status_code == 200
    Session.objects.update(expire_date=timezone.now() - timedelta(seconds=1))
    response = client.get("/queue/")
    assert response.status_code == 302 and response["Location"].startswith("/accounts/login/")


@pytest.mark.django_db
def test_a_session_in_use_keeps_moving_its_expiry_ahead(settings, client, reviewer):
    settings.SESSION_COOKIE_AGE = 600
    client.force_login(reviewer)
    session = Session.objects.get()
    first_expiry = session.expire_date
    # Pretend the last refresh is older than a twentieth of the age.
    store = client.session
    store[REFRESHED_AT] = int(time.time()) - 60
    store.save()
    assert client.get("/videos/").status_code == 200
    refreshed = Session.objects.get()
    assert refreshed.expire_date > first_expiry
    assert refreshed.get_decoded()[REFRESHED_AT] >= int(time.time()) - 2
    # Right after a refresh, requests do not write the session again.
    assert client.get("/videos/").status_code == 200
    assert Session.objects.get().expire_date == refreshed.expire_date
