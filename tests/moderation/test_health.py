"""/healthz, as a load balancer calls it: 200 when the database, the broker and a worker of each
queue answer, 503 naming what is down otherwise. The heartbeat comes from a real Celery worker."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
from django.core.cache import cache

from moderation import health

pytestmark = pytest.mark.django_db

REPO = Path(__file__).resolve().parents[2]
QUEUES = ("cpu", "gpu")


@pytest.fixture(autouse=True)
def _no_heartbeats():
    """Heartbeats live in the shared cache (Redis): start and end every test without any."""
    cache.delete_many([health.heartbeat_key(queue) for queue in QUEUES])
    yield
    cache.delete_many([health.heartbeat_key(queue) for queue in QUEUES])


def closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]  # nothing listens once the socket is closed


def test_healthy_when_database_broker_and_both_queues_answer(client):
    health.record_heartbeat(QUEUES, "worker@test")
    response = client.get("/healthz")
    assert response.status_code == 200
    body = response.json()
    assert body["status"] == "ok" and body["down"] == []
    assert set(body["checks"]) == {"database", "broker", "workers:cpu", "workers:gpu"}


def test_broker_unreachable_is_503_naming_the_broker(client, settings):
    health.record_heartbeat(QUEUES, "worker@test")
    settings.CELERY_BROKER_URL = f"redis://127.0.0.1:{closed_port()}/0"
    started = time.monotonic()
    response = client.get("/healthz")
    assert response.status_code == 503
    body = response.json()
    assert body["status"] == "down" and body["down"] == ["broker"]
    assert "unreachable" in body["checks"]["broker"]["detail"]
    assert time.monotonic() - started < 10  # a load balancer's probe does not hang


def test_a_queue_whose_workers_went_quiet_is_down(client, settings):
    health.record_heartbeat(["cpu"], "cpu@test")
    health.record_heartbeat(["gpu"], "gpu@test", at=time.time() - settings.COEFVQ_WORKER_STALE_S - 5)
    body = client.get("/healthz").json()
    assert body["down"] == ["workers:gpu"]
    assert "gpu@test answered" in body["checks"]["workers:gpu"]["detail"]


def test_no_worker_ever_is_down(client):
    response = client.get("/healthz")
    assert response.status_code == 503
    assert response.json()["down"] == ["workers:cpu", "workers:gpu"]


def test_a_running_worker_keeps_its_queue_healthy_and_stopping_it_does_not(client, settings):
    """A real `celery worker -Q cpu`: its bootstep heartbeat makes cpu healthy within seconds; once
    it is stopped the heartbeat goes stale and cpu is reported down."""
    settings.COEFVQ_WORKER_STALE_S = 4
    env = {**os.environ, "COEFVQ_WORKER_HEARTBEAT_S": "1", "COEFVQ_LOG_LEVEL": "WARNING"}
    worker = subprocess.Popen(
        [str(Path(sys.executable).parent / "celery"), "-A", "coefvq_site", "worker", "-Q", "cpu", "-c", "1",
         "-n", "health-test@%h", "--without-gossip", "--without-mingle", "-l", "warning"],
        cwd=REPO, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    try:
        deadline = time.monotonic() + 90
        while time.monotonic() < deadline:
            if client.get("/healthz").json()["checks"]["workers:cpu"]["ok"]:
                break
            time.sleep(0.5)
        body = client.get("/healthz").json()
        assert body["checks"]["workers:cpu"]["ok"], body
        assert body["down"] == ["workers:gpu"]  # only cpu was started
    finally:
        worker.terminate()
        worker.wait(timeout=30)
    time.sleep(settings.COEFVQ_WORKER_STALE_S + 1)
    assert client.get("/healthz").json()["down"] == ["workers:cpu", "workers:gpu"]


def test_livez_answers_without_the_database_or_broker(client, settings, django_assert_num_queries):
    settings.CELERY_BROKER_URL = f"redis://127.0.0.1:{closed_port()}/0"
    with django_assert_num_queries(0):
        response = client.get("/livez")
    assert response.status_code == 200 and response.content == b"ok\n"
