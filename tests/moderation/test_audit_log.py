"""Every human decision and configuration change lands in the append-only audit log."""

import pytest
from django.db import DatabaseError, connection, transaction
from django.utils import timezone

from moderation.actions.model_registry import do_activate_models, do_change_cascade_config
from moderation.actions.review_queue import do_claim_next, do_open_review, do_submit_review
from moderation.actions.validation import ActionError
from moderation.models import AuditEntry, ModelVersion, Video

pytestmark = pytest.mark.django_db


def test_config_changes_and_activations_are_logged_with_who_and_what(policy, admin_user):
    baseline = ModelVersion.objects.create(policy=policy, kind="baseline", version="b1", artifact_path="b1")
    do_activate_models(policy, baseline=baseline, actor=admin_user, note="first models")
    do_change_cascade_config(policy, actor=admin_user, note="cheaper", mllm_budget=0.05)
    entries = list(AuditEntry.objects.order_by("id").values_list("actor_name", "action", "summary"))
    assert [action for _, action, _ in entries] == [
        "cascade_config.changed", "model_version.activated", "cascade_config.changed"]
    assert all(actor == admin_user.username for actor, _, _ in entries)
    assert "mllm_budget 0.2 → 0.05 (cheaper)" in entries[-1][2]


def test_a_refused_change_leaves_no_entry(policy, admin_user):
    with pytest.raises(ActionError):
        do_change_cascade_config(policy, actor=admin_user, note="", mllm_budget=3)
    assert not AuditEntry.objects.exists()


def test_review_decisions_are_logged(policy, reviewer):
    video = Video.objects.create(policy=policy, file="v/a.mp4", original_filename="a.mp4", sha256="a" * 64,
                                 size_bytes=1, source="cli", state="decided", state_changed_at=timezone.now(),
                                 final_label="ok", decided_by="baseline")
    do_open_review(video, reason="review_band", model_label="ok", p_violation=0.5,
                   probabilities={"ok": 0.5, "scam": 0.5, "drugs": 0.0, "weapons": 0.0})
    task = do_claim_next(reviewer)
    do_submit_review(task.pk, reviewer, claim_token=task.claim_token, label="scam", note="")
    entry = AuditEntry.objects.get(action="review.decided")
    assert entry.actor_name == reviewer.username and entry.data["label"] == "scam"
    assert "overrules the model's ok" in entry.summary


def test_the_log_cannot_be_rewritten(policy, admin_user):
    do_change_cascade_config(policy, actor=admin_user, note="x", mllm_budget=0.1)
    entry = AuditEntry.objects.get()
    with pytest.raises(ValueError):
        entry.save()
    with pytest.raises(ValueError):
        entry.delete()
    # Below the ORM too: PostgreSQL refuses it.
    for statement in ("UPDATE moderation_auditentry SET summary = 'edited'", "DELETE FROM moderation_auditentry"):
        with pytest.raises(DatabaseError, match="append-only"), transaction.atomic(), connection.cursor() as cursor:
            cursor.execute(statement)
    assert AuditEntry.objects.get().summary == entry.summary


def test_policy_edits_in_the_admin_are_logged(admin_client, policy):
    response = admin_client.post(f"/admin/moderation/policy/{policy.pk}/change/", {
        "name": policy.name, "slug": policy.slug, "description": "tightened", "labels": '["ok", "scam", "drugs", "weapons"]',
        "violating_labels": '["scam", "drugs", "weapons"]', "severity": '{"weapons": 1.0, "drugs": 0.9, "scam": 0.6}',
        "is_default": "on"})
    assert response.status_code == 302, response.content.decode()[:1500]
    entry = AuditEntry.objects.get(action="policy.changed")
    assert set(entry.data["changes"]) == {"description", "severity"}
