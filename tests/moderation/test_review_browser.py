"""A reviewer's session in a real Chromium (Playwright) against the live test server: log in,
claim from the queue, watch and seek the video from the evidence, decide with the keyboard only,
land on the next item. Screenshots go to the test's tmp_path."""

from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from functools import partial
from pathlib import Path

import pytest
from django.contrib.auth.models import Group
from django.db import connection
from review_setup import decided_video, open_review, review_task_for

from moderation import roles
from moderation.actions.review_queue import do_claim_next
from moderation.models import Review, ReviewTask

CHROMIUM = Path("/usr/bin/chromium")

pytestmark = [
    pytest.mark.browser,
    pytest.mark.skipif(not CHROMIUM.exists(), reason=f"needs Chromium at {CHROMIUM} (scripts/setup.sh installs it)"),
    pytest.mark.django_db(transaction=True, serialized_rollback=True),
]


@contextmanager
def chromium_page():
    from playwright.sync_api import sync_playwright

    # Playwright's sync API runs an event loop on this thread until it is closed, so the test
    # talks to the database before and after, never while it is open.
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), headless=True)
        page = browser.new_page(viewport={"width": 1366, "height": 900})
        page.set_default_timeout(15_000)
        try:
            yield page
        finally:
            browser.close()


@pytest.fixture
def asgi_server():
    """The product's ASGI application (HTTP and WebSockets) served by Daphne in a child process on
    the test database, as `channels.testing.ChannelsLiveServerTestCase` does; its base URL."""
    from channels.testing.live import make_application
    from daphne.testing import DaphneProcess
    from django.contrib.staticfiles.handlers import ASGIStaticFilesHandler

    server = DaphneProcess("localhost", partial(make_application, static_wrapper=ASGIStaticFilesHandler))
    server.start()
    if not server.ready.wait(timeout=30):
        server.terminate()
        raise RuntimeError("Daphne did not start: " + (server.errors.get()[1] if not server.errors.empty() else ""))
    yield f"http://localhost:{server.port.value}"
    server.terminate()
    server.join()


def off_the_browser_thread(work):
    """Run database work on another thread while the browser is open (Playwright's event loop
    owns this one, and publishing a queue change needs a thread without one)."""
    def run():
        try:
            return work()
        finally:
            connection.close()

    with ThreadPoolExecutor(max_workers=1) as pool:
        return pool.submit(run).result()


def log_in(page, base_url: str, username: str, password: str) -> None:
    page.goto(base_url + "/queue/")
    page.fill("#id_username", username)
    page.fill("#id_password", password)
    with page.expect_navigation():
        page.click("button[type=submit]")


def player_state(page) -> dict:
    return page.eval_on_selector("#player", "v => ({time: v.currentTime, paused: v.paused, muted: v.muted, "
                                            "ready: v.readyState, duration: v.duration})")


def wait_for_time(page, seconds: float) -> None:
    page.wait_for_function(f"() => Math.abs(document.getElementById('player').currentTime - {seconds}) < 0.05 "
                           f"&& !document.getElementById('player').seeking")


def wait_for_filter(page, present: list[str], absent: list[str]) -> None:
    """The player's CSS filter, once its transition has settled, has these functions and not those."""
    checks = [f"f.includes('{name}(')" for name in present] + [f"!f.includes('{name}(')" for name in absent]
    page.wait_for_function("() => { const f = getComputedStyle(document.getElementById('player')).filter; "
                           f"return {' && '.join(checks)}; }}")


def test_a_reviewer_claims_watches_seeks_and_decides_by_keyboard(
        live_server, reviewer, speech_text_clip, silent_clip, tmp_path):
    first = review_task_for(speech_text_clip, title="Festival")
    second = review_task_for(silent_clip, title="Cat")
    with chromium_page() as page:
        review_by_keyboard(page, live_server.url, first, second, tmp_path)

    review = Review.objects.get(task=first)
    assert (review.label, review.note, review.reviewer.username) == ("scam", "1 scam hotline, 2 voices", "rita")
    assert ReviewTask.objects.get(pk=second.pk).claimed_by == reviewer


def review_by_keyboard(page, base_url: str, first: ReviewTask, second: ReviewTask, shots: Path) -> None:

    log_in(page, base_url, "rita", "pw-rita")
    assert page.url.endswith("/queue/")
    assert page.locator("#queue-table tr[data-task]").count() == 2
    page.screenshot(path=shots / "queue.png", full_page=True)

    with page.expect_navigation():
        page.keyboard.press("n")  # the whole flow works from the keyboard
    assert page.url.endswith(f"/review/{first.pk}/")

    # The player loads the real file through byte ranges, muted and behind the wellness filters.
    page.wait_for_function("() => document.getElementById('player').readyState >= 1")
    state = player_state(page)
    assert state["muted"] and state["duration"] > 3
    wait_for_filter(page, present=["blur", "grayscale"], absent=[])

    # Evidence seeks the player: a transcript line, then a frame of the strip.
    page.click("button.seg[data-seek='1.800']")
    wait_for_time(page, 1.8)
    page.click(".frame-strip .frame[data-seek='2.500']")
    wait_for_time(page, 2.5)
    assert page.locator(".frame-strip .frame.evidence").count() == 1

    # Space plays and pauses; the picture moves on while playing.
    page.keyboard.press(" ")
    page.wait_for_function("() => document.getElementById('player').currentTime > 2.7")
    page.keyboard.press(" ")
    page.wait_for_function("() => document.getElementById('player').paused")

    # b and g take the filters off; the choice is remembered on the next page.
    page.keyboard.press("b")
    wait_for_filter(page, present=["grayscale"], absent=["blur"])
    page.keyboard.press("?")
    assert page.is_visible("#help-overlay")
    page.screenshot(path=shots / "review-help.png", full_page=True)
    page.keyboard.press("Escape")
    assert page.is_hidden("#help-overlay")

    # s asks why before skipping; Escape backs out of it.
    page.keyboard.press("s")
    assert page.is_visible("#skip-dialog input[name=reason]")
    page.keyboard.press("Escape")
    assert page.is_hidden("#skip-dialog")

    # Typing a note never triggers a shortcut, digits included.
    page.click("textarea[name=note]")
    page.keyboard.type("1 scam hotline, 2 voices")
    assert page.url.endswith(f"/review/{first.pk}/")
    page.evaluate("document.activeElement.blur()")
    page.screenshot(path=shots / "review.png", full_page=True)

    # 2 is the second label in order (ok, scam, ...): decide and land on the next item.
    with page.expect_navigation():
        page.keyboard.press("2")
    assert page.url.endswith(f"/review/{second.pk}/")
    assert "Saved: video" in page.inner_text("main")
    wait_for_filter(page, present=["grayscale"], absent=["blur"])
    page.screenshot(path=shots / "next-item.png", full_page=True)


def test_the_queue_updates_live_and_the_video_streams_from_the_asgi_server(
        asgi_server, reviewer, django_user_model, silent_clip, tmp_path):
    otto = django_user_model.objects.create_user(username="otto", password="pw-otto")
    otto.groups.set(Group.objects.filter(name=roles.REVIEWER))
    waiting = open_review(decided_video(b"a stand-in file", name="first.mp4", title="Waiting"))
    with chromium_page() as page:
        log_in(page, asgi_server, "rita", "pw-rita")
        page.wait_for_selector("#live-indicator[data-state=live]")
        assert page.locator("#queue-table tr[data-task]").count() == 1

        # Another process opens a task, then another reviewer claims the first: no reload.
        cat = off_the_browser_thread(lambda: review_task_for(silent_clip, title="Cat"))
        page.wait_for_selector(f'#queue-table tr[data-task="{cat.pk}"]')
        off_the_browser_thread(lambda: do_claim_next(otto))
        page.wait_for_selector(f'#queue-table tr[data-task="{waiting.pk}"] >> text=otto until')
        page.screenshot(path=tmp_path / "queue-live.png", full_page=True)

        # The next free item is the cat; its video streams through the ASGI server and seeks.
        with page.expect_navigation():
            page.click("text=Claim next")
        assert page.url.endswith(f"/review/{cat.pk}/")
        page.wait_for_function("() => document.getElementById('player').readyState >= 1")
        page.click(".frame-strip .frame[data-seek='1.500']")
        wait_for_time(page, 1.5)
