"""Run media decoding in a child process, so a bad file can only take down the child.

FFmpeg decoders are C code fed with untrusted bytes. A crash (segfault, abort), a runaway
allocation or an endless loop inside one must not kill or stall the Celery worker that asked.
`run_isolated` runs a function in a child process with resource limits and a wall-clock
timeout, and turns every way the child can die into a `MediaError` with a readable reason.

Children come from a "forkserver": a clean single-threaded server process, started once,
forks each child. Forking the caller directly would copy a Celery worker's threads and locks
into the child (unsafe); "spawn" is safe too but imports numpy and PyAV again for every call.
"""

from __future__ import annotations

import multiprocessing
import resource
import signal
import traceback
from pathlib import Path
from typing import Any, Callable

from inference.media import MediaLimits, decode, probe
from inference.types import DecodedMedia, MediaError, MediaInfo

CRASHED = "decoder_crashed"
OUT_OF_MEMORY = "out_of_memory"
TIMEOUT = "timeout"

DEFAULT_MEMORY_LIMIT = 4 * 1024**3  # address space of one decode child; video decoders reserve generously
PRELOAD = ["inference.media"]  # imported once in the fork server, so children start warm


class IsolatedError(RuntimeError):
    """The isolated function raised something other than MediaError: a bug, not a bad file."""


def _context(start_method: str) -> multiprocessing.context.BaseContext:
    ctx = multiprocessing.get_context(start_method)
    if start_method == "forkserver":
        ctx.set_forkserver_preload(PRELOAD)
    return ctx


def _limit_child(timeout_s: float, memory_limit_bytes: int | None) -> None:
    resource.setrlimit(resource.RLIMIT_CORE, (0, 0))  # a crash must not write a core file of user media
    cpu = int(timeout_s) + 2
    resource.setrlimit(resource.RLIMIT_CPU, (cpu, cpu + 1))  # SIGXCPU, then SIGKILL, even if the parent is gone
    if memory_limit_bytes is not None:
        resource.setrlimit(resource.RLIMIT_AS, (memory_limit_bytes, memory_limit_bytes))


def _child(conn, fn, args, kwargs, timeout_s, memory_limit_bytes) -> None:
    """Entry point of the child: apply limits, run, send back ("ok"|"media_error"|"error", ...)."""
    try:
        _limit_child(timeout_s, memory_limit_bytes)
        result = fn(*args, **kwargs)
        message = ("ok", result)
    except MediaError as e:
        message = ("media_error", e.reason, e.code)  # sent field by field: `code` does not survive pickling
    except MemoryError:
        message = ("media_error", "Decoding this file needed more memory than allowed.", OUT_OF_MEMORY)
    except BaseException as e:  # noqa: BLE001 - everything must reach the parent as a message
        message = ("error", f"{type(e).__name__}: {e}", traceback.format_exc())
    try:
        conn.send(message)
    except MemoryError:
        conn.send(("media_error", "Decoding this file needed more memory than allowed.", OUT_OF_MEMORY))
    finally:
        conn.close()


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
    start_method: str = "forkserver",
    **kwargs: Any,
) -> Any:
    """Call fn(*args, **kwargs) in a child process and return its (pickled) result.

    `fn` must be importable by name (a module-level function). MediaError raised by `fn` is
    raised here with its code; the child dying by a signal, running past `timeout_s` or out
    of memory becomes a MediaError too; any other exception becomes IsolatedError.
    """
    ctx = _context(start_method)
    receive, send = ctx.Pipe(duplex=False)
    process = ctx.Process(
        target=_child, args=(send, fn, args, kwargs, timeout_s, memory_limit_bytes), daemon=True
    )
    process.start()
    send.close()  # only the child writes; we see EOF when it dies
    try:
        message = receive.recv() if receive.poll(timeout_s) else None
    except EOFError:
        message = None  # died before sending
    finally:
        receive.close()
    if message is None and process.is_alive():
        process.kill()
        process.join()
        raise MediaError(f"Decoding took longer than {timeout_s:g} s and was stopped.", code=TIMEOUT)
    process.join()
    if message is None:
        raise _death_reason(process.exitcode)
    kind, *payload = message
    if kind == "ok":
        return payload[0]
    if kind == "media_error":
        raise MediaError(payload[0], code=payload[1])
    raise IsolatedError(f"{payload[0]}\n--- in the isolated child ---\n{payload[1]}")


def probe_isolated(path: Path, limits: MediaLimits = MediaLimits(), memory_limit_bytes: int | None = DEFAULT_MEMORY_LIMIT) -> MediaInfo:
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
