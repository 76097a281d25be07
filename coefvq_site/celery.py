"""The Celery app. Queues: `cpu` (ingestion, stage 1, housekeeping) and `gpu` (stage 2)."""

import os

from celery import Celery

from moderation.health import WorkerHeartbeat

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "coefvq_site.settings")

app = Celery("coefvq")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()
app.steps["consumer"].add(WorkerHeartbeat)  # what /healthz reads to tell that each queue has a worker
