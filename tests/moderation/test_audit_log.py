"""Every human decision and configuration change lands in the append-only audit log."""

import io

import pytest
from django.db import DatabaseError, connection, transaction
from django.db.models import ProtectedError
from django.utils import timezone

from moderation import retraining
from moderation.actions.ingest import do_ingest
from moderation.actions.model_registry import do_activate_models, do_change_cascade_config
from moderation.actions.review_queue import do_claim_next, do_open_review, do_submit_review
from moderation.actions.validation import ActionError
from moderation.models import AuditEntry, ModelVersion, Review, TranscriptSegment, Video

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


def below_the_orm(*updates: str, delete: str) -> list[str]:
    """SQL the database itself must refuse. SQLite (the embedded default) refuses UPDATE but not
    DELETE: Django empties SQLite databases with DELETE, so there the application refuses it."""
    return [*updates, *(delete.split("; ") if connection.vendor == "postgresql" else [])]


def test_the_log_cannot_be_rewritten(policy, admin_user):
    do_change_cascade_config(policy, actor=admin_user, note="x", mllm_budget=0.1)
    entry = AuditEntry.objects.get()
    with pytest.raises(ValueError):
        entry.save()
    with pytest.raises(ValueError):
        entry.delete()
    # Below the ORM too: the database refuses it (the embedded default's SQLite refuses UPDATE only).
    for statement in below_the_orm("UPDATE moderation_auditentry SET summary = 'edited'",
                                   delete="DELETE FROM moderation_auditentry"):
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


def reviewed_video(reviewer, caption="my cat sleeping in the sun", label="scam") -> Video:
    video = do_ingest(io.BytesIO(b"clip bytes"), filename="clip.mp4", source="cli", caption=caption,
                      title="holiday", enqueue=False).video
    Video.objects.filter(pk=video.pk).update(state="decided", final_label="ok", decided_by="baseline")
    video.refresh_from_db()
    do_open_review(video, reason="review_band", model_label="ok", p_violation=0.5,
                   probabilities={"ok": 0.5, "scam": 0.5, "drugs": 0.0, "weapons": 0.0})
    task = do_claim_next(reviewer)
    do_submit_review(task.pk, reviewer, claim_token=task.claim_token, label=label, note="")
    return video


def test_a_video_with_a_trail_cannot_be_deleted_by_an_admin_or_below_the_orm(admin_client, reviewer):
    video = reviewed_video(reviewer)
    trail = (video.events.count(), Review.objects.count(), AuditEntry.objects.count())
    assert admin_client.get(f"/admin/moderation/video/{video.pk}/delete/").status_code == 403
    assert admin_client.post("/admin/moderation/video/", {"action": "delete_selected", "_selected_action": [video.pk],
                                                          "post": "yes"}).status_code in (200, 302)
    with pytest.raises(ProtectedError):
        Video.objects.filter(pk=video.pk).delete()
    with pytest.raises(ValueError):
        Review.objects.get().delete()
    # Below the ORM too: PostgreSQL refuses to delete or change reviews and events.
    for statement in below_the_orm("UPDATE moderation_review SET label = 'ok'",
                                   delete="DELETE FROM moderation_review; DELETE FROM moderation_videoevent"):
        with pytest.raises(DatabaseError, match="append-only"), transaction.atomic(), connection.cursor() as cursor:
            cursor.execute(statement)
    assert Video.objects.filter(pk=video.pk).exists()
    assert (video.events.count(), Review.objects.count(), AuditEntry.objects.count()) == trail


def change_form(admin_client, video: Video, **fields) -> dict:
    """The admin's change form for `video` as the browser would post it, with `fields` changed."""
    page = admin_client.get(f"/admin/moderation/video/{video.pk}/change/")
    assert page.status_code == 200
    data = {"caption": video.caption, "title": video.title}
    for inline in page.context["inline_admin_formsets"]:
        formset = inline.formset
        data.update({f"{formset.prefix}-{name}": value for name, value in formset.management_form.initial.items()})
    return {**data, **fields}


def test_caption_edits_in_the_admin_are_audited_and_reviews_keep_what_they_judged(admin_client, admin_user,
                                                                                    reviewer, django_user_model):
    video = reviewed_video(reviewer, caption="send one bitcoin get two back")
    TranscriptSegment.objects.create(video=video, index=0, start_s=0.0, end_s=1.0, text="double your crypto")
    someone = django_user_model.objects.create_user("someone")
    response = admin_client.post(f"/admin/moderation/video/{video.pk}/change/", change_form(
        admin_client, video, caption="my cat sleeping in the sun", uploader=someone.pk, source="web"))
    assert response.status_code == 302, response.content.decode()[:2000]

    video.refresh_from_db()
    assert video.caption == "my cat sleeping in the sun"
    assert (video.uploader_id, video.source) == (None, "cli")  # everything else stays as the upload made it
    assert list(video.transcript.values_list("text", flat=True)) == ["double your crypto"]
    entry = AuditEntry.objects.get(action="video.text_changed")
    assert entry.actor_name == admin_user.username and entry.target_id == str(video.pk)
    assert entry.data["changes"] == {"caption": ["send one bitcoin get two back", "my cat sleeping in the sun"]}
    assert video.events.filter(actor=admin_user, data__changes__caption__isnull=False).exists()

    review = Review.objects.get()
    assert (review.caption, review.title) == ("send one bitcoin get two back", "holiday")
    # Retraining learns the label with the caption the reviewer judged.
    assert retraining.latest_reviews(video.policy, timezone.now()) == {
        video.pk: ("scam", "send one bitcoin get two back")}


def test_an_unchanged_or_too_long_caption_writes_no_audit_entry(admin_client, reviewer):
    video = reviewed_video(reviewer)
    unchanged = admin_client.post(f"/admin/moderation/video/{video.pk}/change/", change_form(admin_client, video))
    too_long = admin_client.post(f"/admin/moderation/video/{video.pk}/change/",
                                 change_form(admin_client, video, caption="x" * 5001))
    assert unchanged.status_code == 302 and too_long.status_code == 200
    assert "limit is 5000" in too_long.content.decode()
    assert not AuditEntry.objects.filter(action="video.text_changed").exists()
    assert Video.objects.get(pk=video.pk).caption == "my cat sleeping in the sun"
