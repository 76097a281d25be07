import os
import signal
import time

import numpy as np
import pytest

from inference import media, sandbox
from inference.media import MediaLimits
from inference.sandbox import IsolatedError, decode_isolated, probe_isolated, run_isolated
from inference.types import MediaError

# Children import these by name, so they live at module level.


def segfault():
    os.kill(os.getpid(), signal.SIGSEGV)


def abort():
    os.abort()


def sleep_forever():
    time.sleep(600)


def allocate(n_bytes):
    return np.ones(n_bytes, dtype=np.uint8)


def spin():
    while True:
        pass


def refuse():
    raise MediaError("The file is empty.", code="empty")


def buggy():
    return {}["missing"]


def array_of(n):
    return np.arange(n, dtype=np.float32), "label"


METHODS = ["forkserver", "subprocess", "warm"]


@pytest.mark.parametrize("method", METHODS)
def test_result_comes_back_pickled(method):
    values, label = run_isolated(array_of, 1000, timeout_s=20, start_method=method)
    assert label == "label" and values.dtype == np.float32 and values[-1] == 999


@pytest.mark.parametrize("method", METHODS)
@pytest.mark.parametrize("crash, signum", [(segfault, signal.SIGSEGV), (abort, signal.SIGABRT)])
def test_a_crashing_decoder_becomes_a_media_error(crash, signum, method):
    with pytest.raises(MediaError) as crashed:
        run_isolated(crash, timeout_s=20, start_method=method)
    assert crashed.value.reason == f"The decoder crashed on this file (signal {int(signum)})."
    assert crashed.value.code == sandbox.CRASHED
    assert run_isolated(array_of, 3, timeout_s=20)[0].tolist() == [0, 1, 2]  # and the parent goes on


@pytest.mark.parametrize("method", METHODS)
def test_a_hang_is_killed_at_the_timeout(method):
    started = time.monotonic()
    with pytest.raises(MediaError) as hung:
        run_isolated(sleep_forever, timeout_s=1.5, start_method=method)
    assert 1.5 <= time.monotonic() - started < 8
    assert hung.value.code == sandbox.TIMEOUT and "1.5 s" in hung.value.reason


def test_cpu_limit_stops_a_busy_loop_before_the_wall_clock():
    started = time.monotonic()
    with pytest.raises(MediaError) as spun:
        run_isolated(spin, timeout_s=60, cpu_limit_s=1)
    assert time.monotonic() - started < 30
    assert spun.value.code == sandbox.TIMEOUT and "CPU time" in spun.value.reason


@pytest.mark.parametrize("method", METHODS)
def test_allocating_past_the_memory_limit_fails_in_the_child_only(method):
    with pytest.raises(MediaError) as oom:
        run_isolated(allocate, 3 * 1024**3, timeout_s=20, memory_limit_bytes=1536 * 1024**2, start_method=method)
    assert oom.value.code == sandbox.OUT_OF_MEMORY
    assert "memory" in oom.value.reason
    assert len(run_isolated(allocate, 1000, timeout_s=20)) == 1000


def test_media_error_keeps_its_code_and_other_errors_are_bugs():
    with pytest.raises(MediaError) as refused:
        run_isolated(refuse, timeout_s=20)
    assert (refused.value.code, refused.value.reason) == ("empty", "The file is empty.")
    with pytest.raises(IsolatedError, match="KeyError"):
        run_isolated(buggy, timeout_s=20)


def test_decode_isolated_returns_frames_and_audio(speech_clip):
    decoded = decode_isolated(speech_clip, n_frames=4)
    assert len(decoded.frames) == 4 and decoded.frames[0].image.shape == (240, 320, 3)
    assert decoded.audio is not None and decoded.audio.dtype == np.float32
    assert probe_isolated(speech_clip).duration_s == pytest.approx(4.0, abs=0.1)


def test_probe_isolated_refuses_a_hostile_file_with_its_code(png_as_mp4, random_bytes_mp4):
    with pytest.raises(MediaError) as image:
        probe_isolated(png_as_mp4)
    assert image.value.code == media.IMAGE
    with pytest.raises(MediaError) as noise:
        decode_isolated(random_bytes_mp4, MediaLimits(decode_timeout_s=10))
    assert noise.value.code == media.NOT_VIDEO


def test_auto_works_inside_a_daemonic_process_like_a_celery_worker(monkeypatch):
    """billiard marks Celery's prefork workers daemonic; multiprocessing then refuses children."""
    import multiprocessing

    monkeypatch.setitem(multiprocessing.current_process()._config, "daemon", True)
    with pytest.raises(AssertionError, match="daemonic"):
        run_isolated(array_of, 3, timeout_s=20, start_method="forkserver")
    assert run_isolated(array_of, 3, timeout_s=20)[1] == "label"
    with pytest.raises(MediaError) as crashed:
        run_isolated(segfault, timeout_s=20)
    assert crashed.value.code == sandbox.CRASHED


def _warm_pid() -> int:
    return sandbox._warm.decoder.popen.pid


def test_a_warm_decoder_serves_many_calls_and_survives_the_children_it_loses():
    run_isolated(array_of, 3, timeout_s=20, start_method="warm")
    first = _warm_pid()
    with pytest.raises(MediaError):
        run_isolated(segfault, timeout_s=20, start_method="warm")
    with pytest.raises(MediaError, match="longer than"):
        run_isolated(sleep_forever, timeout_s=1.0, start_method="warm")
    values, _ = run_isolated(array_of, 5, timeout_s=20, start_method="warm")
    assert values.tolist() == [0, 1, 2, 3, 4] and _warm_pid() == first


def test_a_warm_decoder_is_recycled_and_replaced_when_it_dies(monkeypatch):
    monkeypatch.setattr(sandbox, "WARM_RECYCLE_AFTER", 2)
    run_isolated(array_of, 3, timeout_s=20, start_method="warm")
    first = _warm_pid()
    run_isolated(array_of, 3, timeout_s=20, start_method="warm")
    run_isolated(array_of, 3, timeout_s=20, start_method="warm")  # the third call: a fresh decoder
    second = _warm_pid()
    assert second != first
    os.kill(second, signal.SIGKILL)
    sandbox._warm.decoder.popen.wait()
    assert run_isolated(array_of, 2, timeout_s=20, start_method="warm")[0].tolist() == [0, 1]
    assert _warm_pid() != second


def test_a_warm_decoder_is_used_inside_a_daemonic_process(monkeypatch):
    import multiprocessing

    monkeypatch.setattr(multiprocessing.current_process(), "daemon", True, raising=False)
    assert sandbox._resolve("auto") == "warm"
