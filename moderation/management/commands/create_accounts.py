"""Create the first admin, lead and reviewer accounts, and print how to log in.

Passwords are generated once and kept in var/credentials.json (mode 600), so re-running prints
the same credentials rather than locking anyone out.
"""

import json
import secrets

from django.conf import settings
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group
from django.core.management.base import BaseCommand
from django.db import transaction

from moderation import roles

# A lead reviews, watches the dashboard and audits; an admin also steers the cascade in the admin.
ACCOUNTS = {"admin": [roles.ADMIN, roles.LEAD, roles.REVIEWER], "lead": [roles.LEAD, roles.REVIEWER],
            "reviewer": [roles.REVIEWER]}


class Command(BaseCommand):
    help = "Create the admin, lead and reviewer accounts (idempotent) and print their credentials."

    def handle(self, *args, **options):
        credentials_file = settings.VAR_DIR / "credentials.json"
        known = json.loads(credentials_file.read_text()) if credentials_file.exists() else {}
        User = get_user_model()
        with transaction.atomic():
            for username, groups in ACCOUNTS.items():
                password = known.get(username) or secrets.token_urlsafe(12)
                user, created = User.objects.get_or_create(username=username)
                if created or username not in known:
                    user.set_password(password)
                user.is_staff = username == "admin"
                user.is_superuser = username == "admin"
                user.save()
                user.groups.set(Group.objects.filter(name__in=groups))
                known[username] = password
        credentials_file.write_text(json.dumps(known, indent=2))
        credentials_file.chmod(0o600)
        for username in ACCOUNTS:
            self.stdout.write(f"  {username:<9} password: {known[username]}")
