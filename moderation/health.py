"""Whether this installation can do its work, for a load balancer's health check and for metrics:
the database answers, the broker takes a connection, and a worker of each queue sent a heartbeat
recently.

Workers send their heartbeat from a consumer bootstep (`WorkerHeartbeat`, registered in
coefvq_site.celery): it runs in the worker's main process on its timer, so a worker busy with a
38-minute training run still answers, and it runs only while the worker is connected to the
broker (Celery stops consumer steps when the connection drops). Heartbeats live in the shared
cache, where every web process reads them.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass

from celery import bootsteps
from django.conf import settings
from django.core.cache import cache
from django.db import connection
from kombu import Connection

log = logging.getLogger(__name__)

HEARTBEAT_KEY = "worker-heartbeat:{queue}"


def heartbeat_key(queue: str) -> str:
    return HEARTBEAT_KEY.format(queue=queue)


def record_heartbeat(queues, worker: str, at: float | None = None) -> None:
    """A worker consuming `queues` is alive now. The newest heartbeat per queue is kept."""
    beat = {"worker": worker, "at": time.time() if at is None else at}
    try:
        cache.set_many({heartbeat_key(queue): beat for queue in queues}, timeout=None)
    except Exception:  # noqa: BLE001 - the cache (Redis) is down: health reports that, the worker goes on
        log.warning("Could not record the worker heartbeat", exc_info=True)


def last_heartbeats(queues) -> dict[str, dict | None]:
    """queue -> {"worker", "at"} of its newest heartbeat, or None; raises when the cache is down."""
    found = cache.get_many([heartbeat_key(queue) for queue in queues])
    return {queue: found.get(heartbeat_key(queue)) for queue in queues}


class WorkerHeartbeat(bootsteps.StartStopStep):
    """A Celery consumer step: every COEFVQ_WORKER_HEARTBEAT_S, record that this worker is
    connected and consuming its queues."""

    requires = {"celery.worker.consumer.tasks:Tasks"}

    def __init__(self, consumer, **kwargs):
        super().__init__(consumer, **kwargs)
        self.timer_entry = None

    def start(self, consumer):
        queues = sorted(queue.name for queue in consumer.task_consumer.queues)

        def beat():
            record_heartbeat(queues, consumer.hostname)

        beat()
        self.timer_entry = consumer.timer.call_repeatedly(settings.COEFVQ_WORKER_HEARTBEAT_S, beat)

    def stop(self, consumer):
        if self.timer_entry is not None:
            self.timer_entry.cancel()
            self.timer_entry = None

    shutdown = stop


# --- checks ---------------------------------------------------------------------------------------


@dataclass
class Check:
    name: str
    ok: bool
    detail: str


def check_database() -> Check:
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")
    except Exception as error:  # noqa: BLE001 - any failure means the same to a load balancer
        return Check("database", False, f"unreachable: {type(error).__name__}: {error}".strip())
    return Check("database", True, "answered")


def check_broker() -> Check:
    """Open a connection and a channel, as a producer would, with a short timeout."""
    timeout = settings.COEFVQ_HEALTH_TIMEOUT_S
    options = {**settings.CELERY_BROKER_TRANSPORT_OPTIONS, "socket_connect_timeout": timeout,
               "socket_timeout": timeout, "max_retries": 0}
    try:
        with Connection(settings.CELERY_BROKER_URL, connect_timeout=timeout, transport_options=options) as broker:
            broker.ensure_connection(max_retries=1, interval_start=0, timeout=timeout)
            broker.default_channel  # noqa: B018 - the Redis transport pings the server here
    except Exception as error:  # noqa: BLE001
        return Check("broker", False, f"unreachable: {type(error).__name__}: {error}".strip())
    return Check("broker", True, "accepted a connection")


def check_workers(now: float | None = None) -> list[Check]:
    """A check per queue: its newest heartbeat is younger than COEFVQ_WORKER_STALE_S."""
    now = time.time() if now is None else now
    queues = settings.COEFVQ_HEALTH_QUEUES
    try:
        beats = last_heartbeats(queues)
    except Exception as error:  # noqa: BLE001
        return [Check(f"workers:{queue}", False, f"unknown, the cache is unreachable: {type(error).__name__}")
                for queue in queues]
    checks = []
    for queue in queues:
        beat = beats[queue]
        if beat is None:
            checks.append(Check(f"workers:{queue}", False, "no worker of this queue has ever answered"))
            continue
        age = now - beat["at"]
        fresh = age <= settings.COEFVQ_WORKER_STALE_S
        checks.append(Check(f"workers:{queue}", fresh, f"{beat['worker']} answered {age:.0f} s ago"
                            + ("" if fresh else f" (more than {settings.COEFVQ_WORKER_STALE_S} s)")))
    return checks


@dataclass
class Report:
    healthy: bool
    checks: list[Check]

    @property
    def down(self) -> list[str]:
        return [check.name for check in self.checks if not check.ok]

    def as_json(self) -> dict:
        return {"status": "ok" if self.healthy else "down", "down": self.down,
                "checks": {check.name: {"ok": check.ok, "detail": check.detail} for check in self.checks}}


def report() -> Report:
    checks = [check_database(), check_broker(), *check_workers()]
    return Report(all(check.ok for check in checks), checks)

