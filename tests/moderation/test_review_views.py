"""The reviewer workspace through the Django test client: the queue, claiming, deciding, skipping,
and the video file with byte ranges."""

import io
from datetime import timedelta

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone
from accounts import make_user
from review_setup import decided_video, open_review, review_task_for

from moderation import roles
from moderation.actions.ingest import do_ingest
from moderation.actions.review_queue import do_claim_next
from moderation.byte_ranges import UnsatisfiableRange, parse_range
from moderation.models import Review, ReviewSkip, ReviewTask, Video, VideoEvent

pytestmark = pytest.mark.django_db


@pytest.fixture
def other_reviewer(django_user_model):
    return make_user(django_user_model, "otto", roles.REVIEWER)


@pytest.fixture
def task(speech_text_clip):
    return review_task_for(speech_text_clip, title="Festival")


def queue_of(count: int, batch: str = "a") -> list[ReviewTask]:
    """`count` open tasks on small stand-in files, every third an audit sample."""
    return [open_review(decided_video(f"clip {batch}{i}".encode(), name=f"{batch}{i}.mp4"),
                        reason=ReviewTask.Reason.AUDIT if i % 3 == 0 else ReviewTask.Reason.REVIEW_BAND)
            for i in range(count)]


def rows(response) -> int:
    return response.content.decode().count("<tr data-task=")


def claim(client) -> ReviewTask:
    response = client.post("/queue/claim/")
    assert response.status_code == 302 and response["Location"].startswith("/review/")
    return ReviewTask.objects.get(pk=int(response["Location"].split("/")[2]))


# --- access ---------------------------------------------------------------------------------------


def test_workspace_pages_need_a_login(client):
    for url in ["/queue/", "/review/1/", "/videos/1/media"]:
        response = client.get(url)
        assert response.status_code == 302 and "/accounts/login/" in response["Location"], url


def test_people_without_a_review_role_cannot_use_the_queue(client, uploader):
    queue_of(1)
    client.force_login(uploader)
    assert client.get("/queue/").status_code == 403
    assert client.post("/queue/claim/").status_code == 403
    assert not ReviewTask.objects.filter(claimed_by__isnull=False).exists()
    assert "Queue" not in client.get("/videos/").content.decode()


def test_reviewers_find_the_queue_in_the_navigation(client, reviewer):
    client.force_login(reviewer)
    assert 'href="/queue/">Queue</a>' in client.get("/videos/").content.decode()


# --- the queue page -------------------------------------------------------------------------------


def queries_for(client, url) -> int:
    with CaptureQueriesContext(connection) as queries:
        assert client.get(url).status_code == 200
    return len(queries)


def test_queue_pages_through_open_tasks_with_a_bounded_number_of_queries(
        client, reviewer, other_reviewer, django_assert_max_num_queries):
    queue_of(3)
    client.force_login(reviewer)
    small_queue = queries_for(client, "/queue/")
    queue_of(57, batch="b")
    do_claim_next(other_reviewer)
    # Session, user, role checks (the view's and the navigation's), count, one page of rows.
    with django_assert_max_num_queries(8):
        first = client.get("/queue/")
    with django_assert_max_num_queries(8):
        second = client.get("/queue/?page=2")
    assert queries_for(client, "/queue/") == small_queue
    assert (rows(first), rows(second)) == (50, 10)
    page = first.content.decode()
    assert "60 open" in page
    # The task claim-next serves first is at the top, with its holder shown.
    claimed = ReviewTask.objects.get(claimed_by=other_reviewer)
    assert page.split("<tr data-task=")[1].startswith(f'"{claimed.pk}"')
    assert "otto until" in page


def test_queue_filters_by_reason(client, reviewer):
    queue_of(9)
    client.force_login(reviewer)
    response = client.get("/queue/?reason=audit")
    assert rows(response) == 3
    assert "Model unsure" not in response.content.decode().split("<tbody>")[1]


def test_the_live_fragment_is_just_the_table(client, reviewer):
    queue_of(2)
    client.force_login(reviewer)
    fragment = client.get("/queue/?fragment=1").content.decode()
    assert "<html" not in fragment and fragment.count("<tr data-task=") == 2


def test_the_queue_page_opens_the_live_socket_from_a_static_script(client, reviewer):
    client.force_login(reviewer)
    page = client.get("/queue/").content.decode()
    assert 'data-ws-path="/ws/queue/"' in page and "/static/js/queue.js" in page
    assert "<script>" not in page  # no inline code


# --- claiming and the review page -----------------------------------------------------------------


def test_claim_next_opens_the_review_page_with_the_evidence(client, reviewer, task):
    client.force_login(reviewer)
    claimed = claim(client)
    assert claimed.pk == task.pk and claimed.claimed_by == reviewer
    page = client.get(f"/review/{task.pk}/").content.decode()
    assert f'src="/videos/{task.video_id}/media"' in page and " muted " in page
    assert f'name="claim_token" value="{claimed.claim_token}"' in page
    # The rationale's spans are marked where they occur.
    for quoted in ["call the hotline", "send money", "CALL NOW"]:
        assert f'<mark class="evidence">{quoted}</mark>' in page
    # The other on-screen line at another time is not marked, though it shares a word.
    assert '<mark class="evidence">GARDEN' not in page
    # ok first, then the violations, numbered for the keyboard.
    assert page.index('value="ok" data-shortcut="1"') < page.index('value="scam" data-shortcut="2"')
    assert 'data-seek="1.800"' in page  # the second transcript line seeks to its start
    assert "speech" in page and "0.200" in page  # the speech modality's contribution
    assert "On trial" not in page  # stage 2 decided this one


def test_the_review_page_says_when_stage2_was_on_trial(client, reviewer, task):
    Video.objects.filter(pk=task.video_id).update(decided_by="baseline")  # stage 2 predicted, stage 1 decided
    client.force_login(reviewer)
    claim(client)
    page = client.get(f"/review/{task.pk}/").content.decode()
    assert "On trial: its verdict did not decide this video" in page
    assert '<mark class="evidence">CALL NOW</mark>' in page  # its explanation's evidence is still shown


def test_a_reviewer_whose_claim_ran_out_is_told_so(client, reviewer, task):
    client.force_login(reviewer)
    claim(client)
    ReviewTask.objects.filter(pk=task.pk).update(claim_expires_at=timezone.now() - timedelta(seconds=1))
    response = client.get(f"/review/{task.pk}/")
    assert response.status_code == 403 and "Your claim on this video ran out" in response.content.decode()


def test_claim_next_on_an_empty_queue_says_so(client, reviewer):
    client.force_login(reviewer)
    response = client.post("/queue/claim/", follow=True)
    assert response.redirect_chain == [("/queue/", 302)]
    assert "The queue is empty" in response.content.decode()


def test_only_the_claim_holder_may_decide_and_a_lead_may_look(client, reviewer, other_reviewer, lead, task):
    do_claim_next(reviewer)
    client.force_login(other_reviewer)
    refused = client.get(f"/review/{task.pk}/")
    assert refused.status_code == 403
    assert "You do not hold the claim" in refused.content.decode() and 'href="/queue/"' in refused.content.decode()
    client.force_login(lead)
    page = client.get(f"/review/{task.pk}/").content.decode()
    assert "read-only" in page and 'id="decide-form"' not in page and "call the hotline" in page


# --- deciding -------------------------------------------------------------------------------------


def test_a_decision_is_saved_and_the_next_item_is_claimed(client, reviewer, task, silent_clip):
    second = review_task_for(silent_clip)
    client.force_login(reviewer)
    claimed = claim(client)
    response = client.post(f"/review/{claimed.pk}/decide/",
                           {"claim_token": claimed.claim_token, "label": "ok", "note": "a real festival"})
    assert response.status_code == 302 and response["Location"] == f"/review/{second.pk}/"
    review = Review.objects.get(task=task)
    assert (review.reviewer, review.label, review.note, review.disagrees_with_model) == (
        reviewer, "ok", "a real festival", True)
    assert Video.objects.get(pk=task.video_id).final_label == "ok"
    second.refresh_from_db()
    assert second.claimed_by == reviewer
    # The last one: back to the queue, which says it is done.
    response = client.post(f"/review/{second.pk}/decide/", {"claim_token": second.claim_token, "label": "scam"},
                           follow=True)
    assert response.redirect_chain[-1] == ("/queue/", 302)
    assert "All done" in response.content.decode()


def test_a_decision_after_the_claim_ran_out_writes_nothing(client, reviewer, other_reviewer, task):
    client.force_login(reviewer)
    claimed = claim(client)
    ReviewTask.objects.filter(pk=task.pk).update(claim_expires_at=timezone.now() - timedelta(seconds=1))
    do_claim_next(other_reviewer)  # someone else has it now
    events_before = VideoEvent.objects.count()
    response = client.post(f"/review/{task.pk}/decide/", {"claim_token": claimed.claim_token, "label": "ok"})
    assert response.status_code == 409
    assert "Your claim on this video ran out" in response.content.decode()
    assert not Review.objects.exists()
    assert Video.objects.get(pk=task.video_id).final_label == "scam"
    assert VideoEvent.objects.count() == events_before
    assert ReviewTask.objects.get(pk=task.pk).claimed_by == other_reviewer


def test_a_forged_decision_without_the_csrf_token_is_refused(reviewer, task):
    from django.test import Client

    strict = Client(enforce_csrf_checks=True)
    strict.force_login(reviewer)
    claimed = do_claim_next(reviewer)
    response = strict.post(f"/review/{task.pk}/decide/", {"claim_token": claimed.claim_token, "label": "ok"})
    assert response.status_code == 403 and not Review.objects.exists()


def test_an_unknown_label_keeps_the_reviewer_on_the_item(client, reviewer, task):
    client.force_login(reviewer)
    claimed = claim(client)
    response = client.post(f"/review/{task.pk}/decide/", {"claim_token": claimed.claim_token, "label": "spam"},
                           follow=True)
    assert response.redirect_chain == [(f"/review/{task.pk}/", 302)]
    assert "is not a label of this policy" in response.content.decode()
    assert not Review.objects.exists()


def test_skipping_needs_a_reason(client, reviewer, task):
    client.force_login(reviewer)
    claimed = claim(client)
    response = client.post(f"/review/{task.pk}/skip/", {"claim_token": claimed.claim_token, "reason": "  "},
                           follow=True)
    assert response.redirect_chain == [(f"/review/{task.pk}/", 302)]
    assert "Say why you skip this video." in response.content.decode()
    assert not ReviewSkip.objects.exists()
    assert ReviewTask.objects.get(pk=task.pk).claimed_by == reviewer

    response = client.post(f"/review/{task.pk}/skip/", {"claim_token": claimed.claim_token,
                                                         "reason": "I know the uploader"}, follow=True)
    assert ReviewSkip.objects.get().reason == "I know the uploader"
    assert ReviewTask.objects.get(pk=task.pk).claimed_by is None
    # It was the only item, and a skipped item is not handed back to the same reviewer.
    assert response.redirect_chain[-1] == ("/queue/", 302) and "All done" in response.content.decode()


# --- the video file with byte ranges --------------------------------------------------------------


@pytest.fixture
def own_video(client, uploader, speech_text_clip):
    client.force_login(uploader)
    video = do_ingest(io.BytesIO(speech_text_clip.read_bytes()), filename="festival.mp4", source="web",
                      uploader=uploader, enqueue=False).video
    return video, speech_text_clip.read_bytes()


def body(response) -> bytes:
    return b"".join(response.streaming_content)


def test_the_whole_file_says_it_accepts_ranges(client, own_video):
    video, data = own_video
    response = client.get(f"/videos/{video.pk}/media")
    assert response.status_code == 200 and body(response) == data
    assert (response["Accept-Ranges"], response["Content-Type"], response["Content-Length"]) == (
        "bytes", "video/mp4", str(len(data)))


def test_head_gives_the_size_without_the_bytes(client, own_video):
    # Players and download managers ask HEAD first; 405 made some of them give up.
    video, data = own_video
    response = client.head(f"/videos/{video.pk}/media")
    assert response.status_code == 200
    assert (response["Accept-Ranges"], response["Content-Length"]) == ("bytes", str(len(data)))
    assert body(response) == b""


@pytest.mark.parametrize("header, start, end", [
    ("bytes=100-199", 100, 199),
    ("bytes=0-", 0, None),
    ("bytes=-50", -50, None),
    ("bytes=1000-99999999", 1000, None),  # a last byte past the end stops at the end
])
def test_a_range_returns_exactly_those_bytes(client, own_video, header, start, end):
    video, data = own_video
    response = client.get(f"/videos/{video.pk}/media", HTTP_RANGE=header)
    expected = data[start:] if end is None else data[start:end + 1]
    first = start % len(data)
    assert response.status_code == 206 and body(response) == expected
    assert response["Content-Range"] == f"bytes {first}-{first + len(expected) - 1}/{len(data)}"
    assert response["Content-Length"] == str(len(expected))


@pytest.mark.parametrize("header", ["bytes=999999999-", "bytes=200-100", "bytes=-0", "bytes=abc"])
def test_an_unsatisfiable_range_is_416(client, own_video, header):
    video, data = own_video
    response = client.get(f"/videos/{video.pk}/media", HTTP_RANGE=header)
    assert response.status_code == 416 and response["Content-Range"] == f"bytes */{len(data)}"


@pytest.mark.parametrize("headers", [
    {"HTTP_RANGE": "bytes=0-10, 20-30"},  # several ranges: the whole file is always allowed
    {"HTTP_RANGE": "items=0-10"},  # a unit we do not know is ignored
    {"HTTP_RANGE": "bytes=0-10", "HTTP_IF_RANGE": '"an older version"'},
])
def test_ranges_we_do_not_serve_get_the_whole_file(client, own_video, headers):
    video, data = own_video
    response = client.get(f"/videos/{video.pk}/media", **headers)
    assert response.status_code == 200 and body(response) == data


def test_a_matching_if_range_gets_the_range(client, own_video):
    video, data = own_video
    etag = client.get(f"/videos/{video.pk}/media")["ETag"]
    response = client.get(f"/videos/{video.pk}/media", HTTP_RANGE="bytes=0-9", HTTP_IF_RANGE=etag)
    assert response.status_code == 206 and body(response) == data[:10]


def test_only_the_uploader_and_reviewers_get_the_file(client, own_video, django_user_model, reviewer):
    video, data = own_video
    client.force_login(django_user_model.objects.create_user("mallory"))
    assert client.get(f"/videos/{video.pk}/media", HTTP_RANGE="bytes=0-9").status_code == 403
    client.force_login(reviewer)
    assert body(client.get(f"/videos/{video.pk}/media")) == data
    assert client.get("/videos/999999/media").status_code == 404


def test_range_parsing_edge_cases():
    assert parse_range(None, 10) is None
    assert parse_range("bytes=-20", 10).start == 0  # a suffix longer than the file is the file
    with pytest.raises(UnsatisfiableRange):
        parse_range("bytes=0-", 0)  # nothing to serve from an empty file
