"""Test users in role groups; the password is always "pw-" + username."""

from __future__ import annotations

from django.contrib.auth.models import Group


def make_user(django_user_model, username: str, *groups: str):
    user = django_user_model.objects.create_user(username=username, password="pw-" + username)
    user.groups.set(Group.objects.filter(name__in=groups))
    return user
