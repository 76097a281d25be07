"""Endpoints for operators' machines: /livez and /healthz for a load balancer, /metrics for Prometheus.
Thin: the checks live in `health`, the numbers in `metrics` and django-prometheus."""

from __future__ import annotations

import hmac
import ipaddress
import os

from django.conf import settings
from django.http import HttpResponse, JsonResponse
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_safe
from prometheus_client import CONTENT_TYPE_LATEST, REGISTRY, CollectorRegistry, generate_latest, multiprocess

from . import health, metrics


@never_cache
@require_safe
def livez(request):
    """The process answers: no database, no broker. For a liveness probe, and the load run's floor
    (the cost of the middleware and the server alone)."""
    return HttpResponse("ok\n", content_type="text/plain")


@never_cache
@require_safe
def healthz(request):
    """200 when the database, the broker and a worker of each queue answer; 503 naming what is down."""
    report = health.report()
    return JsonResponse(report.as_json(), status=200 if report.healthy else 503)


def _metrics_allowed(request) -> bool:
    token = settings.COEFVQ_METRICS_TOKEN
    sent = request.headers.get("Authorization", "")
    if token and hmac.compare_digest(sent.encode(), f"Bearer {token}".encode()):
        return True
    try:
        client = ipaddress.ip_address(request.META.get(settings.RATELIMIT_IP_META_KEY, "").split(",")[0].strip())
    except ValueError:
        return False
    return any(client in network for network in settings.COEFVQ_METRICS_ALLOWED_IPS)


def _process_metrics() -> bytes:
    """django-prometheus's request and process metrics: with several web processes
    (PROMETHEUS_MULTIPROC_DIR set, as scripts/run.sh does) summed over all of them."""
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry)
        return generate_latest(registry)
    return generate_latest(REGISTRY)


@never_cache
@require_safe
def prometheus_metrics(request):
    if not _metrics_allowed(request):
        return HttpResponse("Metrics are served to the addresses in COEFVQ_METRICS_ALLOWED_IPS, or with "
                            "COEFVQ_METRICS_TOKEN as a bearer token.\n", status=403, content_type="text/plain")
    moderation = CollectorRegistry()
    moderation.register(metrics.ModerationCollector())
    return HttpResponse(_process_metrics() + generate_latest(moderation), content_type=CONTENT_TYPE_LATEST)
