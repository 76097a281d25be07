"""The queue socket beyond what tests/moderation/test_consumers.py covers: sessions that ended,
forged cookies, disabled accounts and unknown socket paths are all refused at the handshake."""

from __future__ import annotations

from datetime import timedelta

import pytest
from asgiref.sync import async_to_sync
from channels.testing import WebsocketCommunicator
from django.conf import settings as django_settings
from django.contrib.sessions.models import Session
from django.test import Client
from django.utils import timezone

from coefvq_site.asgi import application

# The consumer reads the user in another thread: the test's data must be committed.
pytestmark = pytest.mark.django_db(transaction=True, serialized_rollback=True)

SAME_ORIGIN = (b"origin", b"http://localhost")


def signed_in(user) -> Client:
    client = Client()
    client.force_login(user)
    return client


def cookie_of(client: Client) -> tuple[bytes, bytes]:
    name = django_settings.SESSION_COOKIE_NAME
    return b"cookie", f"{name}={client.cookies[name].value}".encode()


def can_connect(*headers, path: str = "/ws/queue/") -> bool:
    async def attempt():
        socket = WebsocketCommunicator(application, path, headers=list(headers))
        try:
            connected, _ = await socket.connect(timeout=10)
        except ValueError:  # no route: the router refuses the scope before any handshake
            return False
        await socket.disconnect()
        return connected

    return async_to_sync(attempt)()


def test_a_reviewer_connects_with_a_live_session(reviewer):
    assert can_connect(SAME_ORIGIN, cookie_of(signed_in(reviewer)))


def test_an_expired_session_is_refused(reviewer):
    cookie = cookie_of(signed_in(reviewer))
    Session.objects.update(expire_date=timezone.now() - timedelta(seconds=1))
    assert not can_connect(SAME_ORIGIN, cookie)


def test_a_session_that_logged_out_is_refused(reviewer):
    client = signed_in(reviewer)
    cookie = cookie_of(client)
    client.post("/accounts/logout/")
    assert not can_connect(SAME_ORIGIN, cookie)


def test_a_forged_session_cookie_is_refused():
    name = django_settings.SESSION_COOKIE_NAME.encode()
    assert not can_connect(SAME_ORIGIN, (b"cookie", name + b"=" + b"x" * 32))


def test_a_disabled_reviewer_is_refused(reviewer):
    cookie = cookie_of(signed_in(reviewer))
    reviewer.is_active = False
    reviewer.save()
    assert not can_connect(SAME_ORIGIN, cookie)


def test_a_reviewer_whose_password_changed_elsewhere_is_refused(reviewer):
    cookie = cookie_of(signed_in(reviewer))
    reviewer.set_password("a-new-secret-passphrase")
    reviewer.save()
    assert not can_connect(SAME_ORIGIN, cookie)


def test_an_unknown_socket_path_is_refused(reviewer):
    assert not can_connect(SAME_ORIGIN, cookie_of(signed_in(reviewer)), path="/ws/admin/")
