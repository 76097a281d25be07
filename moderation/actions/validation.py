"""The error every operation raises for a request it cannot carry out, and the checks of free text
that several domains share."""

from __future__ import annotations

MAX_CAPTION_CHARS = 5000
MAX_TITLE_CHARS = 300


class ActionError(Exception):
    """A request that cannot be carried out; `message` is shown to the user as is."""

    def __init__(self, message: str, *, code: str = "invalid", status: int = 400):
        super().__init__(message)
        self.message = message
        self.code = code
        self.status = status


def check_text(value: str | None, *, field: str, limit: int) -> str:
    value = (value or "").replace("\x00", "").strip()
    if len(value) > limit:
        raise ActionError(f"The {field} is {len(value)} characters long; the limit is {limit}.", code=f"{field}_too_long")
    return value
