"""The Celery app. Queues: `cpu` (ingestion, stage 1, housekeeping) and `gpu` (stage 2)."""

import os

from celery import Celery

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "coefvq_site.settings")

app = Celery("coefvq")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()
