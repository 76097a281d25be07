"""HTTP byte ranges (RFC 9110 section 14): serving videos a browser can seek in.

Only a single range is served: that is what media elements ask for. A request for several ranges
is answered with the whole file, which the RFC always allows a server to do.
"""

from __future__ import annotations

import asyncio
import mimetypes
import re
from dataclasses import dataclass
from pathlib import Path

from django.core.handlers.asgi import ASGIRequest
from django.http import HttpResponse, StreamingHttpResponse

# "bytes=first-last", "bytes=first-" or "bytes=-suffix_length"
_SINGLE_RANGE = re.compile(r"^\s*(\d*)\s*-\s*(\d*)\s*$")


class UnsatisfiableRange(ValueError):
    """The Range header asks for bytes the file does not have, or is not a valid byte range."""


@dataclass(frozen=True)
class ByteRange:
    start: int
    end: int  # inclusive, as in Content-Range

    @property
    def length(self) -> int:
        return self.end - self.start + 1

    def content_range(self, size: int) -> str:
        return f"bytes {self.start}-{self.end}/{size}"


def parse_range(header: str | None, size: int) -> ByteRange | None:
    """The one range to serve from a file of `size` bytes, or None to serve the whole file.

    None for no header, another unit (which the RFC says to ignore) or several ranges.
    Raises UnsatisfiableRange (answer 416) for a malformed byte range or one outside the file.
    """
    if not header:
        return None
    unit, _, spec = header.partition("=")
    if unit.strip().lower() != "bytes":
        return None
    if "," in spec:
        return None
    match = _SINGLE_RANGE.match(spec)
    if match is None:
        raise UnsatisfiableRange(header)
    first, last = match.groups()
    if not first:
        return _suffix(header, int(last) if last else 0, size)
    start = int(first)
    end = min(int(last), size - 1) if last else size - 1
    if start >= size or (last and int(last) < start):
        raise UnsatisfiableRange(header)
    return ByteRange(start, end)


def _suffix(header: str, length: int, size: int) -> ByteRange:
    """The last `length` bytes ("bytes=-500"); the whole file when it is shorter than that."""
    if length == 0 or size == 0:
        raise UnsatisfiableRange(header)
    return ByteRange(max(size - length, 0), size - 1)


def unsatisfied_content_range(size: int) -> str:
    return f"bytes */{size}"


_CHUNK = 256 * 1024


def ranged_file_response(request, path: Path, *, etag: str) -> HttpResponse:
    """The file, or the byte range the request asks for, with the headers a media element needs.

    `etag` must change whenever the file's bytes do; an If-Range naming another version gets
    the whole file, so a client never splices bytes of two versions.
    """
    size = path.stat().st_size
    if_range = request.headers.get("If-Range")
    wanted = None if if_range and if_range != etag else request.headers.get("Range")
    try:
        byte_range = parse_range(wanted, size)
    except UnsatisfiableRange:
        response = HttpResponse(status=416)
        response["Content-Range"] = unsatisfied_content_range(size)
        response["Accept-Ranges"] = "bytes"
        return response
    start, length = (byte_range.start, byte_range.length) if byte_range else (0, size)
    response = StreamingHttpResponse(_chunks(request, path, start, length), status=206 if byte_range else 200,
                                     content_type=playable_media_type(path))
    if byte_range:
        response["Content-Range"] = byte_range.content_range(size)
    response["Content-Length"] = str(length)
    response["Accept-Ranges"] = "bytes"
    response["ETag"] = etag
    response["Cache-Control"] = "private"  # served after a permission check: no shared cache keeps it
    response["Content-Disposition"] = "inline"
    # Uploaded bytes are the uploader's: even a browser that renders them may run nothing of theirs.
    response["Content-Security-Policy"] = "sandbox; default-src 'none'"
    return response


def playable_media_type(path: Path) -> str:
    """The file's type when it is audio or video; anything else is served as opaque bytes.

    The stored name keeps the uploader's extension, so an upload named `x.html` or `x.svg` would
    otherwise come back as a page that runs its script on this site, in a reviewer's session.
    """
    guessed = mimetypes.guess_type(path.name)[0] or ""
    return guessed if guessed.split("/")[0] in ("video", "audio") else "application/octet-stream"


def _chunks(request, path: Path, start: int, length: int):
    # Django buffers a whole synchronous iterator in memory before sending it under ASGI (and an
    # asynchronous one under WSGI), so each server gets the kind it streams.
    if isinstance(request, ASGIRequest):
        return _async_file_slice(path, start, length)
    return _file_slice(path, start, length)


def _file_slice(path: Path, start: int, length: int):
    with path.open("rb") as file:
        file.seek(start)
        while length > 0:
            chunk = file.read(min(_CHUNK, length))
            if not chunk:
                return  # the file shrank under us; the client sees a short body
            length -= len(chunk)
            yield chunk


async def _async_file_slice(path: Path, start: int, length: int):
    file = await asyncio.to_thread(path.open, "rb")
    try:
        await asyncio.to_thread(file.seek, start)
        while length > 0:
            chunk = await asyncio.to_thread(file.read, min(_CHUNK, length))
            if not chunk:
                return
            length -= len(chunk)
            yield chunk
    finally:
        file.close()
