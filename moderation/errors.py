"""Refused requests, answered in words: a tripped rate limit (429), a body too big (413), a
malformed or oversized form (400), an API address with nothing at it (404). The API gets JSON `{"detail", "code"}`, pages get a page."""

from __future__ import annotations

from django.conf import settings
from django.core.exceptions import RequestDataTooBig, TooManyFieldsSent, TooManyFilesSent
from django.http import JsonResponse
from django.shortcuts import render
from django.views.defaults import page_not_found

from .actions.ingest import upload_too_large_message

_PERIOD_WORDS = {"s": ("second", 1), "m": ("minute", 60), "h": ("hour", 3600), "d": ("day", 86400)}


def _wants_json(request) -> bool:
    return request.path.startswith("/api/")


def refusal(request, *, status: int, code: str, title: str, message: str, headers: dict | None = None):
    if _wants_json(request):
        response = JsonResponse({"detail": message, "code": code}, status=status)
    else:
        response = render(request, "request_refused.html", {"title": title, "message": message}, status=status)
    for name, value in (headers or {}).items():
        response[name] = value
    return response


def _rate_words(rate: str) -> tuple[str, int]:
    """"10/m" -> ("10 per minute", 60): the limit in words and its period in seconds."""
    count, period = rate.split("/")
    word, seconds = _PERIOD_WORDS[period]
    return f"{count} per {word}", seconds


def _what_was_limited(request) -> tuple[str, int]:
    """The limit the request ran into, in words, and the longest wait it may need (seconds)."""
    if getattr(request.resolver_match, "url_name", "") == "upload":
        words, period_s = _rate_words(settings.COEFVQ_UPLOAD_RATE)
        return f"Too many uploads: at most {words} per user.", period_s
    per_username, username_s = _rate_words(settings.COEFVQ_LOGIN_RATE_PER_USERNAME)
    per_address, address_s = _rate_words(settings.COEFVQ_LOGIN_RATE_PER_IP)
    return (f"Too many sign-in attempts: at most {per_username} for one account and {per_address} from one "
            "address.", max(username_s, address_s))


def rate_limited(request, exception=None):
    """RATELIMIT_VIEW: what a request over one of django-ratelimit's limits gets (the sign-in
    forms and the upload form; the API's uploads are limited by DRF, which answers alike)."""
    what, wait_s = _what_was_limited(request)
    return refusal(request, status=429, code="rate_limited", title="Too many requests",
                   message=f"{what} Wait a little and try again.", headers={"Retry-After": str(wait_s)})


def bad_request(request, exception=None):
    """handler400. Django raises these while reading a body that breaks the configured limits."""
    if isinstance(exception, RequestDataTooBig):
        return refusal(request, status=413, code="body_too_large", title="Request too large",
                       message="The form fields are larger than "
                               f"{settings.DATA_UPLOAD_MAX_MEMORY_SIZE // 1024} KB in total; send less text.")
    if isinstance(exception, TooManyFilesSent):
        return refusal(request, status=400, code="too_many_files", title="Too many files",
                       message=f"A request may carry at most {settings.DATA_UPLOAD_MAX_NUMBER_FILES} files.")
    if isinstance(exception, TooManyFieldsSent):
        return refusal(request, status=400, code="too_many_fields", title="Too many fields",
                       message=f"A request may carry at most {settings.DATA_UPLOAD_MAX_NUMBER_FIELDS} fields.")
    return refusal(request, status=400, code="bad_request", title="Bad request",
                   message="The request could not be read. Check what you sent and try again.")


def not_found(request, exception=None):
    """handler404: a URL no route matches. The API says so in JSON like its other answers."""
    if _wants_json(request):
        return JsonResponse({"detail": "There is nothing at this address.", "code": "not_found"}, status=404)
    return page_not_found(request, exception)


# Room for the multipart framing and the small fields around the file.
_MULTIPART_SLACK_BYTES = 1024 * 1024


class UploadSizeLimitMiddleware:
    """Refuse a body that declares itself bigger than any upload may be, before reading it."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        try:
            declared = int(request.META.get("CONTENT_LENGTH") or 0)
        except ValueError:
            declared = 0  # Django reads a malformed length as no body
        if declared > settings.COEFVQ_UPLOAD_HARD_MAX_BYTES + _MULTIPART_SLACK_BYTES:
            return refusal(request, status=413, code="upload_too_large", title="Upload too large",
                           message=upload_too_large_message())
        return self.get_response(request)
