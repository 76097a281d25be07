"""Template helpers for the reviewer workspace."""

from __future__ import annotations

from django import template

from moderation import roles

register = template.Library()


@register.filter
def can_review(user) -> bool:
    """Whether the user may work the review queue: `{% if user|can_review %}`."""
    return roles.has_role(user, *roles.ROLES)


@register.filter
def seconds(value: float | None) -> str:
    """A media time as the player shows it: 75.4 -> "1:15.4"."""
    if value is None:
        return ""
    minutes, rest = divmod(float(value), 60)
    return f"{int(minutes)}:{rest:04.1f}"
