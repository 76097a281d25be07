"""The embedded default (SQLite) refuses UPDATE of the append-only tables too, as PostgreSQL does
(migrations 0002, 0004, 0008, 0012). DELETE is refused by the application there (the models PROTECT
the trail and refuse delete()), not by SQLite: Django empties an SQLite database with DELETE (its
test flush), which a trigger would block."""

from django.db import migrations

TABLES = ("auditentry", "review", "videoevent")


def refuse_update(apps, schema_editor):
    if schema_editor.connection.vendor != "sqlite":
        return
    for table in TABLES:
        schema_editor.execute(
            f"CREATE TRIGGER IF NOT EXISTS moderation_{table}_append_only BEFORE UPDATE ON moderation_{table} "
            f"BEGIN SELECT RAISE(ABORT, 'moderation_{table} is append-only'); END;")


def allow_update(apps, schema_editor):
    if schema_editor.connection.vendor != "sqlite":
        return
    for table in TABLES:
        schema_editor.execute(f"DROP TRIGGER IF EXISTS moderation_{table}_append_only;")


class Migration(migrations.Migration):

    dependencies = [
        ("moderation", "0015_audit_trail_survives_admins"),
    ]

    operations = [
        migrations.RunPython(refuse_update, allow_update),
    ]
