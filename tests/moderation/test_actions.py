import io
from pathlib import Path

import pytest
from django.db import DatabaseError, transaction

from moderation.actions.ingest import IngestResult, do_ingest
from moderation.actions.model_registry import DEFAULT_MLLM_BUDGET, do_activate_models, do_register_model
from moderation.actions.validation import ActionError
from moderation.actions.video_state import do_fail, do_start_attempt, do_transition
from moderation.models import Video, VideoEvent

pytestmark = pytest.mark.django_db


def ingest(data: bytes, name="clip.mp4", **kwargs) -> IngestResult:
    return do_ingest(io.BytesIO(data), filename=name, source="cli", enqueue=False, **kwargs)


def test_ingest_keeps_the_file_under_its_hash_and_records_the_event():
    result = ingest(b"some bytes", caption="  hello  ")
    video = result.video
    assert result.created
    assert video.state == Video.State.RECEIVED
    assert video.caption == "hello"
    assert video.policy.slug == "icd"
    assert Path(video.file.path).read_bytes() == b"some bytes"
    assert video.sha256 in video.file.name
    assert [e.to_state for e in video.events.all()] == ["received"]


def test_the_same_upload_sent_again_gives_the_same_video():
    first = ingest(b"identical", name="a.mp4", caption="hello")
    second = ingest(b"identical", name="b.mp4", caption="hello")
    assert not second.created
    assert second.video.pk == first.video.pk
    assert Video.objects.count() == 1


def test_the_same_bytes_with_another_caption_are_another_video_sharing_the_file():
    cleared = ingest(b"identical", caption="my cat").video
    again = ingest(b"identical", caption="selling pistols", title="new").video
    assert again.pk != cleared.pk
    assert (again.caption, again.title, again.state) == ("selling pistols", "new", "received")
    assert Video.objects.get(pk=cleared.pk).caption == "my cat"
    assert again.file.name == cleared.file.name  # one stored copy of the bytes


def test_a_truncated_original_left_at_the_content_address_is_replaced():
    first = ingest(b"0123456789", caption="first").video
    Path(first.file.path).write_bytes(b"01234")  # cut short by a crash before copies were renamed into place
    second = ingest(b"0123456789", caption="second").video
    assert second.file.name == first.file.name
    assert Path(second.file.path).read_bytes() == b"0123456789"
    assert Path(second.file.path).stat().st_mode & 0o777 == 0o644


def test_uploaded_name_cannot_choose_a_directory():
    video = ingest(b"x", name="../../../etc/passwd\x07.mp4").video
    assert video.original_filename == "passwd.mp4"
    media_root = Path(video.file.storage.location).resolve()
    assert media_root in Path(video.file.path).resolve().parents


@pytest.mark.parametrize(
    "kwargs, code",
    [({"caption": "x" * 5001}, "caption_too_long"), ({"policy_slug": "nope"}, "unknown_policy")],
)
def test_bad_values_are_refused_with_a_clear_message(kwargs, code):
    with pytest.raises(ActionError) as error:
        ingest(b"data", **kwargs)
    assert error.value.code == code
    assert Video.objects.count() == 0


def test_transition_is_compare_and_set():
    video = ingest(b"cas").video
    assert do_transition(video.pk, expected=["received"], to_state="extracting")
    assert not do_transition(video.pk, expected=["received"], to_state="extracting")
    assert list(video.events.values_list("to_state", flat=True)) == ["received", "extracting"]


def test_attempts_are_counted_and_a_held_lease_turns_duplicates_away():
    video = ingest(b"lease").video
    assert do_start_attempt(video.pk, expected=["received", "extracting"], to_state="extracting") == 1
    # A duplicate message while the first worker's lease runs: nothing to do.
    assert do_start_attempt(video.pk, expected=["received", "extracting"], to_state="extracting") is None
    Video.objects.filter(pk=video.pk).update(lease_expires_at=None)
    assert do_start_attempt(video.pk, expected=["received", "extracting"], to_state="extracting") == 2


def test_failing_keeps_the_reason_and_the_file():
    video = ingest(b"fail").video
    assert do_fail(video.pk, reason="The file is damaged.", code="damaged")
    video.refresh_from_db()
    assert (video.state, video.error_reason) == ("failed", "The file is damaged.")
    assert Path(video.file.path).exists()
    # Terminal: nothing moves it again.
    assert not do_fail(video.pk, reason="again", code="x")


def test_audit_events_are_append_only_in_the_database():
    video = ingest(b"audit").video
    event = video.events.get()
    with pytest.raises(ValueError):
        event.save()
    with pytest.raises(DatabaseError, match="append-only"), transaction.atomic():
        VideoEvent.objects.filter(pk=event.pk).update(message="rewritten")


def test_activating_models_makes_a_new_configuration_version_and_retires_the_old():
    from moderation.models import CascadeConfig, ModelVersion, Policy

    policy = Policy.objects.get(slug="icd")
    first = do_register_model(policy, kind="baseline", version="b1", artifact_path="/m/b1", config={}, metrics={})
    v1 = do_activate_models(policy, baseline=first)
    assert (v1.version, v1.mllm_budget, v1.baseline_version) == (1, DEFAULT_MLLM_BUDGET, first)
    CascadeConfig.objects.filter(pk=v1.pk).update(audit_rate=0.1)
    second = do_register_model(policy, kind="baseline", version="b2", artifact_path="/m/b2", config={}, metrics={})
    v2 = do_activate_models(policy, baseline=second, note="retrained")
    assert (v2.version, v2.audit_rate, v2.is_active) == (2, 0.1, True)  # other settings carried over
    assert list(CascadeConfig.objects.filter(is_active=True)) == [v2]
    assert ModelVersion.objects.get(pk=first.pk).status == "retired"
    assert ModelVersion.objects.get(pk=second.pk).status == "active"
    with pytest.raises(ActionError, match="already exists"):
        do_register_model(policy, kind="baseline", version="b2", artifact_path="/x", config={}, metrics={})
