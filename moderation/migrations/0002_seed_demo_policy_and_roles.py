"""Seed the demo policy (shared/POLICY.md) and the reviewer/lead/admin groups, and make the
audit trail append-only in the database itself where the database can enforce it."""

from django.db import migrations

DEMO_POLICY = {
    "slug": "icd",
    "name": "Inappropriate content (demo)",
    "description": (
        "A video gets exactly one label. ok: nothing breaks the policy. scam: promotes a fraud (free money or "
        "crypto doubling, fake giveaways asking for payment or personal details, selling followers or likes, "
        "'DM me to invest'). drugs: offers to sell, deliver or source illegal drugs, or prescription pills "
        "without a prescription. weapons: offers to sell weapons or ammunition, explains how to build one, or "
        "threatens violence. A mention inside a protective, news or educational framing is ok, even when the "
        "framing sits in another modality; a disclaimer does not launder a promotion."
    ),
    "labels": ["ok", "scam", "drugs", "weapons"],
    "violating_labels": ["scam", "drugs", "weapons"],
    "is_default": True,
}
ROLES = ["reviewer", "lead", "admin"]

APPEND_ONLY_SQL = """
CREATE OR REPLACE FUNCTION moderation_refuse_change() RETURNS trigger AS $$
BEGIN
  RAISE EXCEPTION 'moderation_videoevent is append-only';
END;
$$ LANGUAGE plpgsql;
CREATE TRIGGER moderation_videoevent_append_only
  BEFORE UPDATE ON moderation_videoevent
  FOR EACH ROW EXECUTE FUNCTION moderation_refuse_change();
"""
DROP_APPEND_ONLY_SQL = "DROP TRIGGER IF EXISTS moderation_videoevent_append_only ON moderation_videoevent;"


def seed(apps, schema_editor):
    Policy = apps.get_model("moderation", "Policy")
    Group = apps.get_model("auth", "Group")
    Policy.objects.update_or_create(slug=DEMO_POLICY["slug"], defaults=DEMO_POLICY)
    for name in ROLES:
        Group.objects.get_or_create(name=name)


def unseed(apps, schema_editor):
    apps.get_model("moderation", "Policy").objects.filter(slug=DEMO_POLICY["slug"], videos__isnull=True).delete()


def append_only(apps, schema_editor):
    # Deleting a video cascades to its events, so only UPDATE is refused; rows are never rewritten.
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute(APPEND_ONLY_SQL)


def drop_append_only(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute(DROP_APPEND_ONLY_SQL)


class Migration(migrations.Migration):
    dependencies = [("moderation", "0001_initial"), ("auth", "0012_alter_user_first_name_max_length")]

    operations = [
        migrations.RunPython(seed, unseed),
        migrations.RunPython(append_only, drop_append_only),
    ]
