"""Who gets what at every URL the site serves.

The routes are read from the URL resolver, so a new route without an entry in EXPECTED fails
`test_every_route_has_an_expectation` until someone decides who may use it.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from io import BytesIO

import pytest
from django.contrib.auth.models import Group
from django.core.files.base import ContentFile
from django.test import Client
from django.urls import URLPattern, URLResolver, get_resolver, reverse
from PIL import Image

from moderation import roles
from moderation.models import FrameSample, ReviewTask
from review_queue_factory import decided_video

pytestmark = pytest.mark.django_db

ROLES = ("anonymous", "plain", "reviewer", "lead", "admin")
LOGIN = "login"  # a redirect to the sign-in page
ADMIN_LOGIN = "admin login"


@dataclass(frozen=True)
class Expect:
    """What each role gets from one request to a route."""

    anonymous: int | str
    plain: int | str
    reviewer: int | str
    lead: int | str
    admin: int | str
    method: str = "get"
    data: dict = field(default_factory=dict)

    def __post_init__(self):
        assert self.method in ("get", "post")


def pages(anonymous=LOGIN, *, plain, reviewer, lead=None, admin=None, **request) -> Expect:
    lead = reviewer if lead is None else lead
    return Expect(anonymous, plain, reviewer, lead, lead if admin is None else admin, **request)


DECISION = {"claim_token": str(uuid.uuid4()), "label": "scam"}
SKIP = {"claim_token": str(uuid.uuid4()), "reason": "conflict of interest"}
# The video and task below belong to nobody taking part: the plain user did not upload the video,
# and no one holds a claim on the task.
EXPECTED: dict[str, Expect] = {
    "home": pages(plain=302, reviewer=302),
    "upload": pages(plain=200, reviewer=200),
    "video-list": pages(plain=200, reviewer=200),
    "video-detail": pages(plain=403, reviewer=200),
    "video-frame": pages(plain=403, reviewer=200),
    "video-media": pages(plain=403, reviewer=200),
    # Leads and admins reopen and correct; without a reason nothing happens (back to the page).
    "video-reopen": pages(plain=403, reviewer=403, lead=302, method="post"),
    "video-correct": pages(plain=403, reviewer=403, lead=302, method="post", data={"label": "scam"}),
    "review-queue": pages(plain=403, reviewer=200),
    "claim-next": pages(plain=403, reviewer=302, method="post"),
    # A reviewer opens only the item they hold; leads and admins may look at any, read-only.
    "review": pages(plain=403, reviewer=403, lead=200),
    "review-decide": pages(plain=403, reviewer=409, method="post", data=DECISION),
    "review-skip": pages(plain=403, reviewer=409, method="post", data=SKIP),
    "dashboard": pages(plain=403, reviewer=403, lead=200),
    "dashboard-export": pages(plain=403, reviewer=403, lead=200),
    "login": pages(anonymous=200, plain=200, reviewer=200),
    "logout": pages(plain=LOGIN, reviewer=LOGIN, method="post"),
    # The API answers 401 (not a redirect) to a request without credentials.
    "api-root": pages(401, plain=200, reviewer=200),
    "api-video-list": pages(401, plain=200, reviewer=200),
    "api-video-detail": pages(401, plain=404, reviewer=200),  # not theirs: not even its existence
    "api-review-task-list": pages(401, plain=403, reviewer=200),
    "api-review-task-detail": pages(401, plain=403, reviewer=200),
    "api-review-task-claim": pages(401, plain=403, reviewer=200, method="post"),
    "api-review-task-decision": pages(401, plain=403, reviewer=409, method="post", data=DECISION),
    "api-review-task-skip": pages(401, plain=403, reviewer=409, method="post", data=SKIP),
    "api-review-list": pages(401, plain=403, reviewer=200),
    # The API's description is public, like any published API reference.
    "api-schema": pages(200, plain=200, reviewer=200),
    "api-docs": pages(200, plain=200, reviewer=200),
    # For load balancers and Prometheus: no sign-in; /metrics is decided by the client's address (the
    # test client's 127.0.0.1 is allowed), /healthz is 503 because no worker runs in the tests.
    "livez": pages(200, plain=200, reviewer=200),
    "healthz": pages(503, plain=503, reviewer=503),
    "metrics": pages(200, plain=200, reviewer=200),
}


@dataclass(frozen=True)
class Route:
    name: str  # namespaced, e.g. "admin:index"; the admin's unnamed catch-all is "admin:<catch-all>"
    params: tuple[str, ...]

    @property
    def in_admin(self) -> bool:
        return self.name.split(":")[0] == "admin"


def all_routes(patterns=None, namespace="") -> list[Route]:
    routes = []
    for pattern in get_resolver().url_patterns if patterns is None else patterns:
        if isinstance(pattern, URLResolver):
            inner = f"{namespace}{pattern.namespace}:" if pattern.namespace else namespace
            routes += all_routes(pattern.url_patterns, inner)
        elif isinstance(pattern, URLPattern):
            name = f"{namespace}{pattern.name or '<catch-all>'}"
            routes.append(Route(name, tuple(sorted(pattern.pattern.regex.groupindex))))
    return sorted(set(routes), key=lambda r: (r.name, r.params))


SITE_ROUTES = [r for r in all_routes() if not r.in_admin]
ADMIN_ROUTES = [r for r in all_routes() if r.in_admin]


@pytest.fixture
def world(django_user_model, tmp_path):
    """A video someone else uploaded, with its file and a frame, waiting unclaimed in the queue."""
    owner = django_user_model.objects.create_user("owner")
    video = decided_video("someone-elses")
    video.uploader = owner
    video.file.save("original", ContentFile(b"\x00\x00\x00\x18ftypmp42 not really a video"), save=False)
    video.save()
    image = BytesIO()
    Image.new("RGB", (8, 8)).save(image, format="JPEG")
    frame = FrameSample(video=video, index=0, t_s=0.0, width=8, height=8)
    frame.image.save("f0.jpg", ContentFile(image.getvalue()))
    task = ReviewTask.objects.get(video=video)
    return {"pk": video.pk, "index": 0, "task_id": task.pk, "format": "json", "name": "volume",
            "object_id": str(video.pk), "id": str(owner.pk), "content_type_id": "1", "url": "no-such-page/", "app_label": "moderation"}


def client_as(role: str, django_user_model) -> Client:
    client = Client()
    if role == "anonymous":
        return client
    user = django_user_model.objects.create_user(f"as-{role}")
    groups = {"plain": [], "reviewer": [roles.REVIEWER], "lead": [roles.LEAD, roles.REVIEWER],
              "admin": [roles.ADMIN, roles.LEAD, roles.REVIEWER]}[role]
    user.groups.set(Group.objects.filter(name__in=groups))
    if role == "admin":  # as `create_accounts` makes the admin account
        user.is_staff = user.is_superuser = True
        user.save()
    client.force_login(user)
    return client


def url_of(route: Route, world: dict) -> str:
    if route.name == "admin:<catch-all>":
        return "/admin/no-such-page/"
    values = dict(world)
    if route.name.startswith("api-review-task"):
        values["pk"] = world["task_id"]  # the API router calls the task's id `pk`, as it does the video's
    return reverse(route.name, kwargs={param: values[param] for param in route.params})


def outcome(response, login_url: str) -> int | str:
    if response.status_code == 302 and response["Location"].startswith(login_url):
        return LOGIN if login_url == reverse("login") else ADMIN_LOGIN
    return response.status_code


def test_every_route_has_an_expectation():
    assert sorted({r.name for r in SITE_ROUTES} - set(EXPECTED)) == []
    assert sorted(set(EXPECTED) - {r.name for r in SITE_ROUTES}) == [], "expectations for routes that are gone"
    assert ADMIN_ROUTES, "the admin is mounted"


def site_cases():
    for route in SITE_ROUTES:
        suffix = ".format" if "format" in route.params else ""
        for role in ROLES:
            yield pytest.param(route, role, id=f"{route.name}{suffix}-{role}")


@pytest.mark.parametrize("route, role", list(site_cases()))
def test_site_route(route, role, world, django_user_model):
    expect = EXPECTED[route.name]
    client = client_as(role, django_user_model)
    response = getattr(client, expect.method)(url_of(route, world), expect.data)
    assert outcome(response, reverse("login")) == getattr(expect, role)


# Everything else in the admin sends a non-staff user to the admin's sign-in page.
ADMIN_FOR_NON_STAFF = {"admin:login": 200, "admin:logout": 302}  # logout: back to the admin's front page


@pytest.mark.parametrize("route", ADMIN_ROUTES, ids=lambda r: r.name)
def test_admin_route_is_for_staff_only(route, world, django_user_model):
    url = url_of(route, world)
    admin_login = reverse("admin:login")
    for role in ("anonymous", "plain", "reviewer", "lead"):
        got = outcome(client_as(role, django_user_model).get(url), admin_login)
        assert got == ADMIN_FOR_NON_STAFF.get(route.name, ADMIN_LOGIN), f"{role} at {url}"
    # The admin itself: whatever the page says, it must not fail.
    assert client_as("admin", django_user_model).get(url).status_code < 500
