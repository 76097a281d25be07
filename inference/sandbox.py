"""Run media decoding in a child process, so a bad file can only take down the child.

FFmpeg decoders are C code fed with untrusted bytes. A crash (segfault, abort), a runaway
allocation or an endless loop inside one must not kill or stall the Celery worker that asked.
`run_isolated` runs a function in a child process with resource limits and a wall-clock
timeout, and turns every way the child can die into a `MediaError` with a readable reason.

How the child starts (`start_method`):

- "forkserver": a clean single-threaded server process, started once, forks each child
  (about 10 ms a call). Forking the caller itself would copy a worker's threads and held
  locks into the child, which is unsafe.
- "subprocess": a fresh interpreter per call (imports numpy and PyAV again: 0.3-1 s). It works
  where multiprocessing refuses to start children: inside a Celery prefork worker, which
  billiard marks as a daemonic process ("daemonic processes are not allowed to have children").
- "warm": the fork server's idea where multiprocessing refuses it. A fresh interpreter is started
  once per calling process (subprocess.Popen, which billiard allows), imports the decoder and
  waits; each call forks one child from it, with the same limits as above. It never touches a
  file itself, so each child starts as clean as a fork-server child, and it is replaced after
  WARM_RECYCLE_AFTER calls, or whenever it stops answering.
- "auto" (default): forkserver, or warm inside a daemonic process.
"""

from __future__ import annotations

import math
import multiprocessing
import os
import pickle
import resource
import signal
import subprocess
import sys
import threading
import traceback
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any, Callable

from inference.media import MediaLimits, decode, probe
from inference.types import DecodedMedia, MediaError, MediaInfo

CRASHED = "decoder_crashed"
OUT_OF_MEMORY = "out_of_memory"
TIMEOUT = "timeout"

DEFAULT_MEMORY_LIMIT = 4 * 1024**3  # address space of one decode child; video decoders reserve generously
# Imported once in the fork server, so children start warm. "__main__" too: otherwise every
# child re-imports the caller's main module (all its imports) before it can start.
PRELOAD = ["__main__", "inference.media"]
PACKAGE_ROOT = str(Path(__file__).resolve().parents[1])  # the folder that holds `inference/`
OUT_OF_MEMORY_REASON = "Decoding this file needed more memory than allowed."
WARM_RECYCLE_AFTER = 200  # calls one warm decoder serves before a fresh one replaces it
WARM_START_TIMEOUT_S = 60.0  # a warm decoder must have imported the decoder and forked by then


class IsolatedError(RuntimeError):
    """The isolated function raised something other than MediaError: a bug, not a bad file."""


# ---------------------------------------------------------------------------- in the child


def _limit_child(cpu_limit_s: float, memory_limit_bytes: int | None) -> None:
    resource.setrlimit(resource.RLIMIT_CORE, (0, 0))  # a crash must not write a core file of user media
    cpu = max(1, math.ceil(cpu_limit_s))
    resource.setrlimit(resource.RLIMIT_CPU, (cpu, cpu + 1))  # SIGXCPU, then SIGKILL, even if the parent is gone
    if memory_limit_bytes is not None:
        resource.setrlimit(resource.RLIMIT_AS, (memory_limit_bytes, memory_limit_bytes))


def _child(conn: Connection, fn, args, kwargs, cpu_limit_s, memory_limit_bytes) -> None:
    """Apply limits, run, send back ("ok", result) | ("media_error", reason, code) | ("error", text, traceback)."""
    try:
        _limit_child(cpu_limit_s, memory_limit_bytes)
        message = ("ok", fn(*args, **kwargs))
    except MediaError as e:
        message = ("media_error", e.reason, e.code)  # field by field: `code` does not survive pickling
    except MemoryError:
        message = ("media_error", OUT_OF_MEMORY_REASON, OUT_OF_MEMORY)
    except BaseException as e:  # noqa: BLE001 - everything must reach the parent as a message
        message = ("error", f"{type(e).__name__}: {e}", traceback.format_exc())
    try:
        conn.send(message)
    except MemoryError:
        conn.send(("media_error", OUT_OF_MEMORY_REASON, OUT_OF_MEMORY))
    finally:
        conn.close()


def _subprocess_main(answer_fd: int) -> None:
    """Entry point of a "subprocess" child: the job comes pickled on stdin, the answer goes to `answer_fd`."""
    sys.path[:] = pickle.load(sys.stdin.buffer)  # the parent's path, so `fn`'s module imports
    fn, args, kwargs, cpu_limit_s, memory_limit_bytes = pickle.load(sys.stdin.buffer)
    _child(Connection(answer_fd), fn, args, kwargs, cpu_limit_s, memory_limit_bytes)


def _warm_main(job_fd: int, answer_fd: int) -> None:
    """Entry point of a "warm" decoder: imports the decoder once, then for each job that comes on
    `job_fd` forks a child that runs it under its limits. To the parent on `answer_fd`:
    ("pid", child pid), then ("done", the child's pickled answer or None, its exit status)."""
    jobs, answers = Connection(job_fd), Connection(answer_fd)
    sys.path[:] = jobs.recv()
    for module in PRELOAD[1:]:
        __import__(module)
    while True:
        try:
            job = jobs.recv()
        except EOFError:
            return  # the parent is gone
        read_fd, write_fd = os.pipe()
        pid = os.fork()
        if pid == 0:  # the child: run the job, answer through the pipe, never return into the loop
            os.close(read_fd)
            jobs.close()
            answers.close()
            try:
                _child(Connection(write_fd), *job)
            finally:
                os._exit(0)
        os.close(write_fd)
        answers.send(("pid", pid))
        result = Connection(read_fd)
        try:
            payload = result.recv_bytes()
        except EOFError:
            payload = None  # died without an answer
        finally:
            result.close()
        _, status = os.waitpid(pid, 0)
        answers.send(("done", payload, os.waitstatus_to_exitcode(status)))


# ---------------------------------------------------------------------------- in the parent


class _SubprocessChild:
    """The few Process methods run_isolated uses, over subprocess.Popen."""

    def __init__(self, popen: subprocess.Popen):
        self.popen = popen

    def is_alive(self) -> bool:
        return self.popen.poll() is None

    def join(self, timeout: float | None = None) -> None:
        try:
            self.popen.wait(timeout)
        except subprocess.TimeoutExpired:
            pass

    def kill(self) -> None:
        self.popen.kill()

    @property
    def exitcode(self) -> int | None:
        return self.popen.returncode


def _start_subprocess(job: tuple) -> tuple[Connection, _SubprocessChild]:
    read_fd, write_fd = os.pipe()
    code = f"import sys; sys.path.insert(0, {PACKAGE_ROOT!r}); from inference.sandbox import _subprocess_main; _subprocess_main({write_fd})"
    try:
        popen = subprocess.Popen(
            [sys.executable, "-c", code],
            stdin=subprocess.PIPE,
            pass_fds=(write_fd,),  # keeps its number in the child
        )
    finally:
        os.close(write_fd)
    try:
        pickle.dump(list(sys.path), popen.stdin)
        pickle.dump(job, popen.stdin)
        popen.stdin.close()
    except BrokenPipeError:
        pass  # died at start; the answer pipe shows EOF and exitcode tells why
    return Connection(read_fd), _SubprocessChild(popen)


class _WarmDecoder:
    """One warm decoder process (see `_warm_main`) and its two pipes."""

    def __init__(self):
        job_r, job_w = os.pipe()
        answer_r, answer_w = os.pipe()
        code = (f"import sys; sys.path.insert(0, {PACKAGE_ROOT!r}); from inference.sandbox import _warm_main; "
                f"_warm_main({job_r}, {answer_w})")
        try:
            self.popen = subprocess.Popen([sys.executable, "-c", code], stdin=subprocess.DEVNULL,
                                          pass_fds=(job_r, answer_w))
        finally:
            os.close(job_r)
            os.close(answer_w)
        self.jobs, self.answers = Connection(job_w), Connection(answer_r)
        self.jobs.send(list(sys.path))  # the parent's path, so `fn`'s module imports
        self.calls = 0

    def alive(self) -> bool:
        return self.popen.poll() is None

    def close(self) -> None:
        self.jobs.close()  # EOF: it exits
        self.answers.close()
        try:
            self.popen.wait(5)
        except subprocess.TimeoutExpired:
            self.popen.kill()
            self.popen.wait()


class _WarmChild:
    """What run_isolated needs of a child forked by a warm decoder."""

    def __init__(self, decoder: _WarmDecoder, pid: int):
        self.decoder, self.pid = decoder, pid
        self.exitcode: int | None = None
        self.payload: bytes | None = None

    def wait(self, timeout_s: float) -> bool:
        """True once the child has ended (its answer, if any, in payload); False on a timeout."""
        if self.exitcode is not None:
            return True
        if not self.decoder.answers.poll(timeout_s):
            return False
        _, self.payload, self.exitcode = self.decoder.answers.recv()
        return True

    def kill(self) -> None:
        try:
            os.kill(self.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass


_warm = threading.local()  # one warm decoder per calling thread; a Celery prefork child has one


def _warm_decoder() -> _WarmDecoder:
    decoder = getattr(_warm, "decoder", None)
    if decoder is not None and (not decoder.alive() or decoder.calls >= WARM_RECYCLE_AFTER):
        decoder.close()
        decoder = None
    if decoder is None:
        decoder = _warm.decoder = _WarmDecoder()
    return decoder


def _forget_warm_decoder(decoder: _WarmDecoder) -> None:
    decoder.close()
    if getattr(_warm, "decoder", None) is decoder:
        _warm.decoder = None


def _run_warm(job: tuple, timeout_s: float) -> tuple:
    """One job in a child of this thread's warm decoder: the child's message. MediaError when the
    child died without one (from its exit status) or ran out of time (TIMEOUT)."""
    decoder = _warm_decoder()
    decoder.calls += 1
    try:
        decoder.jobs.send(job)
        if not decoder.answers.poll(WARM_START_TIMEOUT_S):
            raise EOFError("the warm decoder did not fork in time")
        _, pid = decoder.answers.recv()
    except (OSError, EOFError):
        _forget_warm_decoder(decoder)  # a broken decoder is replaced on the next call; this one starts cold
        return _run_cold(job, timeout_s)
    child = _WarmChild(decoder, pid)
    try:
        ended = child.wait(timeout_s)
    except (OSError, EOFError):  # the warm decoder itself died under this job
        ended = True
    finally:
        if child.exitcode is None:  # ran out of time, or the caller was interrupted
            child.kill()
            try:
                child.wait(5)
            except (OSError, EOFError):
                pass
            if child.exitcode is None:
                _forget_warm_decoder(decoder)
    if not ended:
        raise MediaError(f"Decoding took longer than {timeout_s:g} s and was stopped.", code=TIMEOUT)
    if child.payload is None:
        raise _death_reason(child.exitcode)
    return pickle.loads(child.payload)


def _run_cold(job: tuple, timeout_s: float) -> tuple:
    receive, child = _start_subprocess(job)
    return _await(receive, child, timeout_s)


def _start_multiprocessing(start_method: str, job: tuple):
    ctx = multiprocessing.get_context(start_method)
    if start_method == "forkserver":
        ctx.set_forkserver_preload(PRELOAD)
    receive, send = ctx.Pipe(duplex=False)
    process = ctx.Process(target=_child, args=(send, *job), daemon=True)
    process.start()
    send.close()  # only the child writes; we see EOF when it dies
    return receive, process


def _resolve(start_method: str) -> str:
    if start_method != "auto":
        return start_method
    return "warm" if multiprocessing.current_process().daemon else "forkserver"


def _death_reason(exitcode: int | None) -> MediaError:
    if exitcode is not None and exitcode < 0:
        signum = -exitcode
        if signum == signal.SIGXCPU:
            return MediaError("The decoder used too much CPU time on this file.", code=TIMEOUT)
        if signum == signal.SIGKILL:
            return MediaError(f"The decoder was killed on this file (signal {signum}), most likely out of memory.", code=OUT_OF_MEMORY)
        return MediaError(f"The decoder crashed on this file (signal {signum}).", code=CRASHED)
    return MediaError(f"The decoder stopped without an answer on this file (exit code {exitcode}).", code=CRASHED)


def run_isolated(
    fn: Callable[..., Any],
    *args: Any,
    timeout_s: float,
    memory_limit_bytes: int | None = None,
    cpu_limit_s: float | None = None,
    start_method: str = "auto",
    **kwargs: Any,
) -> Any:
    """Call fn(*args, **kwargs) in a child process and return its (pickled) result.

    `fn` must be importable by name (a module-level function). MediaError raised by `fn` is
    raised here with its code; the child dying by a signal, running past `timeout_s` (wall
    clock) or `cpu_limit_s` (CPU time, default timeout_s + 2) or out of memory becomes a
    MediaError too; any other exception becomes IsolatedError.
    """
    cpu_limit_s = timeout_s + 2 if cpu_limit_s is None else cpu_limit_s
    job = (fn, args, kwargs, cpu_limit_s, memory_limit_bytes)
    method = _resolve(start_method)
    if method == "warm":
        message = _run_warm(job, timeout_s)
    elif method == "subprocess":
        message = _run_cold(job, timeout_s)
    else:
        message = _await(*_start_multiprocessing(method, job), timeout_s)
    return _unpack(message)


def _await(receive: Connection, child, timeout_s: float) -> tuple:
    """The child's message; MediaError when it died without one or ran out of time."""
    message, answered = None, False
    try:
        answered = receive.poll(timeout_s)  # True on a message, and on EOF when the child died
        if answered:
            message = receive.recv()
    except EOFError:
        pass
    finally:
        receive.close()
        if message is None:
            child.join(5 if answered else 0)  # a dead child may take a moment to be reaped
        else:
            child.join(5)
        timed_out = child.is_alive()
        if timed_out:  # also when the caller was interrupted: never leave a decoder running
            child.kill()
            child.join()
    if message is None:
        if timed_out:
            raise MediaError(f"Decoding took longer than {timeout_s:g} s and was stopped.", code=TIMEOUT)
        raise _death_reason(child.exitcode)
    return message


def _unpack(message: tuple) -> Any:
    kind, *payload = message
    if kind == "ok":
        return payload[0]
    if kind == "media_error":
        raise MediaError(payload[0], code=payload[1])
    raise IsolatedError(f"{payload[0]}\n--- in the isolated child ---\n{payload[1]}")


def probe_isolated(
    path: Path, limits: MediaLimits = MediaLimits(), memory_limit_bytes: int | None = DEFAULT_MEMORY_LIMIT
) -> MediaInfo:
    return run_isolated(
        probe, Path(path), limits, timeout_s=limits.decode_timeout_s + 5, memory_limit_bytes=memory_limit_bytes
    )


def decode_isolated(
    path: Path,
    limits: MediaLimits = MediaLimits(),
    n_frames: int = 8,
    max_side: int = 320,
    with_audio: bool = True,
    memory_limit_bytes: int | None = DEFAULT_MEMORY_LIMIT,
) -> DecodedMedia:
    return run_isolated(
        decode,
        Path(path),
        limits,
        n_frames=n_frames,
        max_side=max_side,
        with_audio=with_audio,
        timeout_s=limits.decode_timeout_s + 5,  # decode() keeps its own deadline; this one is the backstop
        memory_limit_bytes=memory_limit_bytes,
    )
