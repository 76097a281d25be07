"""Helpers shared by the security tests."""

from __future__ import annotations

import io

from moderation.actions.ingest import do_ingest
from moderation.models import Video


def upload_as(user, data: bytes, name: str) -> Video:
    """A video `user` uploaded through the browser form, before any processing."""
    return do_ingest(io.BytesIO(data), filename=name, source=Video.Source.WEB, uploader=user,
                     enqueue=False).video
