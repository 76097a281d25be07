"""Idle timeout for signed-in sessions.

A session's expiry is set when it is saved: SESSION_COOKIE_AGE from then. Saving it on every
request (SESSION_SAVE_EVERY_REQUEST) would make the timeout an idle one at the cost of a database
write per request; here a request re-saves it only when the last save is a twentieth of the age
old, so an active reviewer stays signed in, a terminal left alone signs itself out after at most
SESSION_COOKIE_AGE, and a busy session is written once every few minutes.
"""

from __future__ import annotations

import time

from django.conf import settings
from django.contrib.auth.signals import user_logged_in
from django.dispatch import receiver

REFRESHED_AT = "_coefvq_refreshed_at"


def _stamp(session) -> None:
    session[REFRESHED_AT] = int(time.time())  # modifies the session, so SessionMiddleware saves it


@receiver(user_logged_in)
def stamp_new_session(sender, request, user, **kwargs):
    """A login saves the session anyway; record when."""
    if request is not None and hasattr(request, "session"):
        _stamp(request.session)


class IdleTimeoutMiddleware:
    """After AuthenticationMiddleware: pushes a live session's expiry ahead while it is in use."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        response = self.get_response(request)
        session = getattr(request, "session", None)
        if session is not None and request.user.is_authenticated:
            refresh_every_s = settings.SESSION_COOKIE_AGE // 20
            if time.time() - session.get(REFRESHED_AT, 0) >= refresh_every_s and session.session_key:
                _stamp(session)
        return response
