"""Rate limits on signing in and uploading, counted in the shared cache (settings.CACHES).

Rates come from settings (COEFVQ_LOGIN_RATE_PER_IP, COEFVQ_LOGIN_RATE_PER_USERNAME,
COEFVQ_UPLOAD_RATE) and are read on every request. A request over a limit gets
`moderation.errors.rate_limited` (pages) or DRF's 429 (the API).
"""

from __future__ import annotations

import logging
from functools import wraps

from django.conf import settings
from django_ratelimit.core import is_ratelimited
from django_ratelimit.exceptions import Ratelimited
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


def _over_limit(request, *, group: str, key, rate) -> bool:
    """Count this request against one limit; whether it is over. Uncounted when the cache is down:
    signing in and uploading must keep working through a Redis outage (the uploads are kept and
    sent on once the broker is back), and a limit that cannot be counted cannot be enforced."""
    try:
        return is_ratelimited(request, group=group, key=key, rate=rate, method="POST", increment=True)
    except CACHE_UNREACHABLE:
        log.warning("Rate limit %s not counted: the cache is unreachable", group, exc_info=True)
        return False


def _rate_limited(view, limits: list[dict]):
    """`view` behind every limit in `limits`; over any of them, RatelimitMiddleware answers with
    RATELIMIT_VIEW's 429. Every limit counts the request, so no limit is skipped by another."""
    @wraps(view)
    def limited_view(request, *args, **kwargs):
        over = [_over_limit(request, **limit) for limit in limits]
        if any(over):
            raise Ratelimited()
        return view(request, *args, **kwargs)

    return limited_view


def login_rate_limited(view):
    """Count sign-in attempts (every POST, right or wrong) per client address and per username:
    one address cannot try many accounts, many addresses cannot hammer one account."""
    return _rate_limited(view, [
        dict(group="login-ip", key="ip", rate=_setting("COEFVQ_LOGIN_RATE_PER_IP")),
        dict(group="login-username", key=_username, rate=_setting("COEFVQ_LOGIN_RATE_PER_USERNAME")),
    ])


def upload_rate_limited(view):
    """Count uploads through the browser form per signed-in user."""
    return _rate_limited(view, [dict(group="upload", key="user", rate=_setting("COEFVQ_UPLOAD_RATE"))])


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
