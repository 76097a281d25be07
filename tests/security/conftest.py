"""Fixtures for the hostile-input and security tests."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
from django.core.cache import cache
from rest_framework.authtoken.models import Token
from rest_framework.test import APIClient

# The moderation tests' factory of decided videos waiting in the review queue.
sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "moderation"))


@pytest.fixture(autouse=True)
def _fresh_rate_limit_counters():
    """Each test starts with no requests counted (the cache is the test run's own Redis db)."""
    cache.clear()
    yield
    cache.clear()


def token_client(user) -> APIClient:
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION="Token " + Token.objects.create(user=user).key)
    return client


@pytest.fixture
def uploader_api(uploader) -> APIClient:
    return token_client(uploader)
