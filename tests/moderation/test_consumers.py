"""The queue page's WebSocket: who may listen, and what a listener hears when the queue changes.

Runs against the real channel layer (Redis, as scripts/test.sh configures) and, for the embedded
default, the in-memory layer with a separate worker process that cannot publish to it.
"""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from datetime import timedelta
from urllib.parse import quote

import pytest
from asgiref.sync import async_to_sync
from channels.db import database_sync_to_async
from channels.layers import get_channel_layer
from channels.testing import WebsocketCommunicator
from django.conf import settings as django_settings
from django.db import connection
from django.test import Client
from django.utils import timezone

from coefvq_site.asgi import application
from moderation import live, roles
from moderation.actions.review_queue import do_claim_next
from moderation.models import ReviewTask
from review_queue_factory import decided_video, open_task

# The consumer reads the user in another thread: the test's data must be committed.
pytestmark = pytest.mark.django_db(transaction=True, serialized_rollback=True)

SAME_ORIGIN = (b"origin", b"http://localhost")
WAIT_S = 10  # generous: a loaded CI machine is slow, and a pass never waits this long


def session_cookie(user) -> tuple[bytes, bytes]:
    client = Client()
    client.force_login(user)
    name = django_settings.SESSION_COOKIE_NAME
    return b"cookie", f"{name}={client.cookies[name].value}".encode()


def queue_socket(*headers) -> WebsocketCommunicator:
    return WebsocketCommunicator(application, "/ws/queue/", headers=list(headers))


def can_connect(*headers) -> bool:
    async def attempt():
        socket = queue_socket(*headers)
        connected, _ = await socket.connect(timeout=WAIT_S)
        await socket.disconnect()
        return connected

    return async_to_sync(attempt)()


@pytest.fixture
def second_reviewer(django_user_model):
    from django.contrib.auth.models import Group

    user = django_user_model.objects.create_user("rolf")
    user.groups.add(Group.objects.get(name=roles.REVIEWER))
    return user


def test_a_reviewer_may_listen(reviewer):
    assert can_connect(SAME_ORIGIN, session_cookie(reviewer))


def test_an_anonymous_socket_is_refused():
    assert not can_connect(SAME_ORIGIN)


def test_a_signed_in_user_without_a_role_is_refused(uploader):
    assert not can_connect(SAME_ORIGIN, session_cookie(uploader))


@pytest.mark.parametrize("origin", [b"http://evil.example", b"http://localhost.evil.example", None])
def test_a_socket_from_another_site_is_refused_even_with_a_reviewer_cookie(reviewer, origin):
    headers = [session_cookie(reviewer)] + ([(b"origin", origin)] if origin else [])
    assert not can_connect(*headers)


def test_a_reviewer_hears_when_a_task_is_added_and_when_another_reviewer_claims_it(reviewer, second_reviewer):
    cookie = session_cookie(reviewer)

    async def scenario():
        socket = queue_socket(SAME_ORIGIN, cookie)
        assert (await socket.connect(timeout=WAIT_S))[0]
        video = await database_sync_to_async(decided_video)("a")
        task = await database_sync_to_async(open_task)(video)
        assert await socket.receive_json_from(timeout=WAIT_S) == {"event": "added", "task": task.pk}

        claimed = await database_sync_to_async(do_claim_next)(second_reviewer)
        assert claimed.pk == task.pk
        assert await socket.receive_json_from(timeout=WAIT_S) == {"event": "claimed", "task": task.pk}
        await socket.disconnect()

    async_to_sync(scenario)()


# --- the embedded default: an in-process channel layer ---------------------------------------------

WORKER_OPENS_A_TASK = textwrap.dedent("""
    import django; django.setup()
    from tests.moderation.review_queue_factory import decided_video
    print(decided_video("from-worker").review_tasks.get().pk)
""")


def open_task_in_another_process() -> int:
    """What a Celery worker of the embedded default does: open a task in its own process, whose
    own in-memory channel layer reaches no web page."""
    db = connection.settings_dict
    env = {k: v for k, v in os.environ.items() if k != "REDIS_URL"}
    login = quote(db["USER"]) + (f":{quote(db['PASSWORD'])}" if db["PASSWORD"] else "")
    env["DATABASE_URL"] = f"postgres://{login}@{db['HOST']}:{db['PORT']}/{db['NAME']}"
    env["PYTHONPATH"] = str(django_settings.BASE_DIR)
    done = subprocess.run([sys.executable, "-c", WORKER_OPENS_A_TASK], env=env, cwd=django_settings.BASE_DIR,
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    return int(done.stdout.split()[-1])


@pytest.fixture
def in_process_layer(settings):
    settings.CHANNEL_LAYERS = {"default": {"BACKEND": "channels.layers.InMemoryChannelLayer"}}
    settings.COEFVQ_QUEUE_WATCH_S = 0.5


def test_embedded_default_hears_once_of_tasks_that_a_worker_process_opened(in_process_layer, reviewer):
    """The database watch hears of them; when an in-process message about the same task comes
    after (under load the watch can be first), the page is not told twice."""
    cookie = session_cookie(reviewer)

    async def scenario():
        socket = queue_socket(SAME_ORIGIN, cookie)
        assert (await socket.connect(timeout=WAIT_S))[0]
        task_id = await database_sync_to_async(open_task_in_another_process)()
        assert await socket.receive_json_from(timeout=WAIT_S) == {"event": "added", "task": task_id}
        await get_channel_layer().group_send(live.QUEUE_GROUP, {"type": "queue.changed", "event": "added",
                                                                "task": task_id})
        assert await socket.receive_nothing(timeout=4 * django_settings.COEFVQ_QUEUE_WATCH_S)
        await socket.disconnect()

    async_to_sync(scenario)()


def test_embedded_default_tells_of_a_change_in_its_own_process_once(in_process_layer, reviewer):
    cookie = session_cookie(reviewer)

    async def scenario():
        socket = queue_socket(SAME_ORIGIN, cookie)
        assert (await socket.connect(timeout=WAIT_S))[0]
        video = await database_sync_to_async(decided_video)("a")
        task = await database_sync_to_async(open_task)(video)
        assert await socket.receive_json_from(timeout=WAIT_S) == {"event": "added", "task": task.pk}
        assert await socket.receive_nothing(timeout=4 * django_settings.COEFVQ_QUEUE_WATCH_S)
        await socket.disconnect()

    async_to_sync(scenario)()


def test_embedded_default_tells_when_a_claim_ran_out(in_process_layer, reviewer, second_reviewer):
    cookie = session_cookie(reviewer)

    async def scenario():
        await database_sync_to_async(decided_video)("a")
        claimed = await database_sync_to_async(do_claim_next)(second_reviewer)
        socket = queue_socket(SAME_ORIGIN, cookie)
        assert (await socket.connect(timeout=WAIT_S))[0]
        await database_sync_to_async(expire_claim_in_a_moment)(claimed)
        assert await socket.receive_json_from(timeout=WAIT_S) == {"event": "released", "task": claimed.pk}
        await socket.disconnect()

    async_to_sync(scenario)()


def expire_claim_in_a_moment(task: ReviewTask) -> None:
    ReviewTask.objects.filter(pk=task.pk).update(claim_expires_at=timezone.now() + timedelta(seconds=1))
