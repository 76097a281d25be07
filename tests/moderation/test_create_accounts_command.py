import json

import pytest
from django.contrib.auth import authenticate
from django.core.management import call_command

from moderation import roles

pytestmark = pytest.mark.django_db


def test_accounts_get_their_roles_and_keep_their_passwords(settings, tmp_path, capsys):
    settings.VAR_DIR = tmp_path
    call_command("create_accounts")
    first = json.loads((tmp_path / "credentials.json").read_text())
    call_command("create_accounts")
    assert json.loads((tmp_path / "credentials.json").read_text()) == first, "re-running locks nobody out"
    assert (tmp_path / "credentials.json").stat().st_mode & 0o777 == 0o600
    printed = capsys.readouterr().out
    users = {name: authenticate(username=name, password=password) for name, password in first.items()}
    assert set(users) == {"admin", "lead", "reviewer"} and all(users.values())
    assert first["lead"] in printed
    assert users["admin"].is_superuser and not users["lead"].is_staff
    assert roles.has_role(users["lead"], roles.LEAD) and not roles.has_role(users["reviewer"], roles.LEAD)
