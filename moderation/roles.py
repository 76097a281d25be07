"""Roles are Django groups; these helpers are the one place that knows their names."""

from __future__ import annotations

REVIEWER = "reviewer"
LEAD = "lead"
ADMIN = "admin"
ROLES = (REVIEWER, LEAD, ADMIN)


def has_role(user, *roles: str) -> bool:
    if not user.is_authenticated:
        return False
    if user.is_superuser:
        return True
    return user.groups.filter(name__in=roles).exists()


def can_see_all_videos(user) -> bool:
    return has_role(user, *ROLES) or user.is_staff


def can_see_dashboard(user) -> bool:
    """The dashboard shows every reviewer's numbers, so it is for leads and admins."""
    return has_role(user, LEAD, ADMIN)
