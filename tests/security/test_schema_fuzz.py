"""Requests generated from the published OpenAPI schema (schemathesis), valid and invalid, sent
in-process to the WSGI application against the test database with a reviewer's token.

Nothing may answer 5xx, and every 4xx must say what was wrong. Examples per operation are bounded
so the whole run takes a minute or two.
"""

from __future__ import annotations

import json

import pytest
import schemathesis
from django.core.signals import request_finished, request_started
from django.core.wsgi import get_wsgi_application
from django.db import close_old_connections
from hypothesis import HealthCheck, settings
from schemathesis.checks import not_a_server_error

from review_queue_factory import decided_video

from conftest import token_client

APP = get_wsgi_application()
schema = schemathesis.openapi.from_wsgi("/api/schema/?format=json", APP)

EXAMPLES_PER_OPERATION = 25


def says_what_was_wrong(ctx, response, case) -> None:
    """A 4xx carries a JSON body naming the problem: DRF's `detail` or per-field messages."""
    if not 400 <= response.status_code < 500 or response.status_code == 405:
        return None
    body = json.loads(response.content or b"null")
    assert body, f"{response.status_code} with an empty body"
    texts = [body["detail"]] if isinstance(body, dict) and "detail" in body else list(_messages(body))
    assert texts and all(isinstance(text, str) and text.strip() for text in texts), body
    return None


def _messages(body):
    if isinstance(body, str):
        yield body
    elif isinstance(body, dict):
        for value in body.values():
            yield from _messages(value)
    elif isinstance(body, list):
        for value in body:
            yield from _messages(value)


@pytest.fixture
def wsgi_keeps_the_test_transaction():
    """Django's WSGI handler closes the database connection after each request, which would end
    the test's transaction; Django's own test client holds these signals back the same way."""
    request_started.disconnect(close_old_connections)
    request_finished.disconnect(close_old_connections)
    yield
    request_started.connect(close_old_connections)
    request_finished.connect(close_old_connections)


@pytest.fixture
def reviewer_token(reviewer, wsgi_keeps_the_test_transaction) -> str:
    """Data for the generated requests to land on: videos and an open review task."""
    for name in ("fuzz-a", "fuzz-b"):
        decided_video(name)
    return "Token " + token_client(reviewer)._credentials["HTTP_AUTHORIZATION"].split()[1]


@pytest.mark.django_db
@schema.parametrize()
@settings(max_examples=EXAMPLES_PER_OPERATION, deadline=None, derandomize=True,
          suppress_health_check=list(HealthCheck))
def test_no_request_the_schema_allows_or_forbids_breaks_the_api(case, reviewer_token):
    case.call_and_validate(headers={"Authorization": reviewer_token},
                           checks=[not_a_server_error, says_what_was_wrong])
