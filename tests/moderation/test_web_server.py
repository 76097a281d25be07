"""The production web server as scripts/run.sh starts it: uvicorn with several worker processes.
HTTP works from every process, and the queue page's WebSocket hears a change made in any other
process (a claim over HTTP, a publish from a worker) through the Redis channel layer."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
from contextlib import ExitStack
from pathlib import Path

import pytest
import requests
from django.conf import settings
from django.db import connection
from django.test import Client
from rest_framework.authtoken.models import Token
from websockets.sync.client import connect

from moderation import live
from review_queue_factory import decided_video, open_task

# The server reads the test's users and tasks from its own connections: they must be committed.
pytestmark = pytest.mark.django_db(transaction=True)

REPO = Path(__file__).resolve().parents[2]
SOCKETS = 6
WEB_PROCESSES = 2


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@pytest.fixture
def server():
    """uvicorn --workers 2 on the test database and Redis; its base URL."""
    port = free_port()
    database_url = os.environ["DATABASE_URL"].rsplit("/", 1)[0] + "/" + connection.settings_dict["NAME"]
    env = {**os.environ, "DATABASE_URL": database_url, "COEFVQ_LOG_LEVEL": "WARNING"}
    process = subprocess.Popen(
        [str(Path(sys.executable).parent / "uvicorn"), "coefvq_site.asgi:application", "--host", "127.0.0.1",
         "--port", str(port), "--workers", str(WEB_PROCESSES), "--lifespan", "off", "--log-level", "warning"],
        cwd=REPO, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 90
        while time.monotonic() < deadline:
            try:
                if requests.get(f"{base}/accounts/login/", timeout=5).status_code == 200:
                    break
            except requests.RequestException:
                time.sleep(0.5)
        yield base, process.pid
    finally:
        os.killpg(process.pid, 15)
        process.wait(timeout=30)


def web_processes(pid: int) -> int:
    """uvicorn's worker processes (multiprocessing spawns them, beside its resource tracker)."""
    children = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
    return sum(b"spawn_main" in Path(f"/proc/{child}/cmdline").read_bytes() for child in children)


def test_websockets_hear_changes_made_in_other_processes(server, reviewer):
    server, pid = server
    assert web_processes(pid) == WEB_PROCESSES
    client = Client()
    client.force_login(reviewer)
    cookie = f"{settings.SESSION_COOKIE_NAME}={client.cookies[settings.SESSION_COOKIE_NAME].value}"
    ws_base = server.replace("http://", "ws://")
    task = open_task(decided_video("multi-process"))
    token = Token.objects.create(user=reviewer).key

    with ExitStack() as stack:
        sockets = [stack.enter_context(connect(f"{ws_base}/ws/queue/", open_timeout=30,
                                               additional_headers={"Cookie": cookie, "Origin": server}))
                   for _ in range(SOCKETS)]
        # A claim over HTTP, answered by whichever web process the connection reached.
        claimed = requests.post(f"{server}/api/review-tasks/claim/", headers={"Authorization": f"Token {token}"},
                                timeout=30)
        assert claimed.status_code == 200 and claimed.json()["id"] == task.pk
        for ws in sockets:
            assert json.loads(ws.recv(timeout=20)) == {"event": "claimed", "task": task.pk}
        # A publish from this process, as a Celery worker opening a review task does.
        live.queue_changed("added", 424242)
        for ws in sockets:
            assert json.loads(ws.recv(timeout=20)) == {"event": "added", "task": 424242}
