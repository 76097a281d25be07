"""Operations enqueue follow-up work by task name (`moderation.actions.enqueue`), so a misspelt name
or a lost route would only show when a message never arrives: these tests catch both."""

from __future__ import annotations

import ast
import json
from pathlib import Path

import redis
from django.conf import settings

import moderation
from coefvq_site.celery import app
from moderation import tasks  # noqa: F401  (registers the tasks whose names the operations send)
from moderation.actions.enqueue import TASK_PREFIX, send_task


def sent_task_names() -> set[str]:
    """The first argument of every `send_task(...)` call in the moderation code."""
    names = set()
    for path in Path(moderation.__file__).parent.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if (isinstance(node, ast.Call) and getattr(node.func, "id", getattr(node.func, "attr", None)) == "send_task"
                    and node.args and isinstance(node.args[0], ast.Constant)):
                names.add(node.args[0].value)
    return names


def test_every_task_the_operations_send_is_a_registered_task():
    names = sent_task_names()
    assert {"extract_video", "score_baseline", "score_mllm", "run_training"} <= names
    assert {TASK_PREFIX + name for name in names} <= set(app.tasks)


def test_a_task_sent_by_name_reaches_its_routed_queue():
    broker = redis.Redis.from_url(settings.CELERY_BROKER_URL)
    broker.delete("cpu", "gpu")
    send_task("score_mllm", 41, retried_by="the test")
    send_task("score_baseline", 42, retried_by="the test")
    gpu, cpu = broker.lrange("gpu", 0, -1), broker.lrange("cpu", 0, -1)
    broker.delete("cpu", "gpu")
    assert [json.loads(m)["headers"]["task"] for m in gpu] == ["moderation.tasks.score_mllm"]
    assert [json.loads(m)["headers"]["task"] for m in cpu] == ["moderation.tasks.score_baseline"]
    assert json.loads(cpu[0])["headers"]["argsrepr"] == "[42]"
