"""Rate limits on signing in and uploading, counted in the shared cache (settings.CACHES).

Rates come from settings (COEFVQ_LOGIN_RATE_PER_IP, COEFVQ_LOGIN_RATE_PER_USERNAME,
COEFVQ_UPLOAD_RATE) and are read on every request. A request over a limit gets
`moderation.errors.rate_limited` (pages) or DRF's 429 (the API).
"""

from __future__ import annotations

import logging

from django.conf import settings
from django_ratelimit.decorators import ratelimit
from rest_framework.settings import api_settings
from redis.exceptions import RedisError
from rest_framework.throttling import ScopedRateThrottle

log = logging.getLogger(__name__)

# The cache answering with an error: Redis down or restarting, the file cache's disk failing.
CACHE_UNREACHABLE = (RedisError, OSError)


def _setting(name: str):
    def rate(group, request) -> str:
        return getattr(settings, name)

    return rate


def _username(group, request) -> str:
    """The account being tried, as the login form would find it (usernames are compared exactly,
    but guessing "Admin" and "admin" is still guessing at one account)."""
    return request.POST.get("username", "").strip().lower()


def login_rate_limited(view):
    """Count sign-in attempts (every POST, right or wrong) per client address and per username:
    one address cannot try many accounts, many addresses cannot hammer one account."""
    view = ratelimit(group="login-username", key=_username, rate=_setting("COEFVQ_LOGIN_RATE_PER_USERNAME"),
                     method="POST")(view)
    return ratelimit(group="login-ip", key="ip", rate=_setting("COEFVQ_LOGIN_RATE_PER_IP"), method="POST")(view)


def upload_rate_limited(view):
    """Count uploads through the browser form per signed-in user."""
    return ratelimit(group="upload", key="user", rate=_setting("COEFVQ_UPLOAD_RATE"), method="POST")(view)


class UploadThrottle(ScopedRateThrottle):
    """Uploads through the API, per user (the view's `throttle_scope`, "uploads"). DRF binds the
    rates when it is imported; this reads them per request, so a changed setting applies at once."""

    def get_rate(self):
        return api_settings.DEFAULT_THROTTLE_RATES[self.scope]

    def allow_request(self, request, view):
        """With the cache unreachable the upload goes through uncounted: uploads are kept while
        Redis (also the broker) is down and the reconciler sends them on once it is back, so a
        limit that cannot be counted must not turn every upload into a server error."""
        try:
            return super().allow_request(request, view)
        except CACHE_UNREACHABLE:
            log.warning("Upload rate limit not counted: the cache is unreachable", exc_info=True)
            return True
