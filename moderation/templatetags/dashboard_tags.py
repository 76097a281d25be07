"""Template helpers for the leads' dashboard."""

from __future__ import annotations

from django import template

from moderation import roles

register = template.Library()


@register.filter
def can_see_dashboard(user) -> bool:
    """`{% if user|can_see_dashboard %}`: leads and admins."""
    return roles.can_see_dashboard(user)


@register.filter
def percent(value: float | None, digits: int = 1) -> str:
    """0.1234 -> "12.3%"; nothing to show for an undefined share."""
    return "–" if value is None else f"{100 * value:.{digits}f}%"


@register.filter
def number(value: float | None, digits: int = 3) -> str:
    return "–" if value is None else f"{value:.{digits}f}"


@register.filter
def duration(seconds: float | None) -> str:
    """A wait as people say it: 42 s, 7 min, 3.5 h, 2.1 d."""
    if seconds is None:
        return "–"
    for unit, size in (("d", 86400), ("h", 3600), ("min", 60)):
        if seconds >= size:
            return f"{seconds / size:.1f} {unit}"
    return f"{seconds:.0f} s"


@register.filter
def shade(count: int, largest: int) -> str:
    """A background opacity for a confusion-matrix cell: darker for more videos."""
    return f"{0.08 + 0.6 * count / largest:.2f}" if largest and count else "0"
