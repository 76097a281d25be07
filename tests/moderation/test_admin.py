"""The admin as an admin uses it: configuration versions with validation and history, the
what-if panel's numbers, and promotion and roll-back of model versions."""

import json
from datetime import timedelta

import pytest
from django.db.models import F
from django.utils import timezone
from small_models import save_small_models

from moderation.actions.model_registry import config_changes, do_activate_models
from moderation.models import CascadeConfig, ModelVersion, Policy, Prediction, Review, ReviewTask, Video

pytestmark = pytest.mark.django_db

ADD_URL = "/admin/moderation/cascadeconfig/add/"
WHATIF_URL = "/admin/moderation/cascadeconfig/what-if/"


@pytest.fixture
def models(policy):
    baseline = ModelVersion.objects.create(policy=policy, kind="baseline", version="b1", artifact_path="b1",
                                           metrics={"f1": 0.8})
    mllm = ModelVersion.objects.create(policy=policy, kind="mllm", version="m1", artifact_path="m1")
    do_activate_models(policy, baseline=baseline, mllm=mllm, note="first models")
    return baseline, mllm


def form_data(policy, **overrides):
    data = {"policy": policy.pk, "entropy_threshold": "", "mllm_budget": "0.1", "allow_below": "0.2",
            "action_above": "0.9", "audit_rate": "0.02", "promotion_margin": "0.01", "retrain_min_labels": "50",
            "stage2_decides": "on", "baseline_version": "", "mllm_version": "", "change_note": "tighter budget"}
    return {**data, **overrides}


def test_a_change_is_a_new_version_with_who_and_why(admin_client, admin_user, policy, models):
    before = CascadeConfig.objects.get(is_active=True)
    response = admin_client.post(ADD_URL, form_data(policy, baseline_version=models[0].pk, mllm_version=models[1].pk))
    assert response.status_code == 302, response.content.decode()[:2000]
    after = CascadeConfig.objects.get(is_active=True)
    assert after.version == before.version + 1 and after.mllm_budget == 0.1
    assert (after.created_by, after.change_note) == (admin_user, "tighter budget")
    assert not CascadeConfig.objects.get(pk=before.pk).is_active, "the old version stays as history"
    assert config_changes(after) == {"mllm_budget": (0.2, 0.1)}
    listing = admin_client.get("/admin/moderation/cascadeconfig/").content.decode()
    assert "mllm_budget: 0.2 → 0.1" in listing


@pytest.mark.parametrize("overrides, message", [
    ({"mllm_budget": "1.5"}, "mllm_budget must be a fraction"),
    ({"entropy_threshold": "0.5"}, "either an entropy threshold or an MLLM budget"),
    ({"allow_below": "0.95"}, "review band would be negative"),
    ({"audit_rate": "-0.1"}, "audit_rate must be a fraction"),
    ({"mllm_budget": "lots"}, "Enter a number"),
    ({"change_note": ""}, "This field is required"),
])
def test_nonsense_values_get_a_clear_error_and_change_nothing(admin_client, policy, models, overrides, message):
    count = CascadeConfig.objects.count()
    response = admin_client.post(ADD_URL, form_data(policy, **overrides))
    assert response.status_code == 200
    assert message in response.content.decode()
    assert CascadeConfig.objects.count() == count


def test_an_admin_puts_stage2_on_trial_and_back(admin_client, policy, models):
    trial = form_data(policy, mllm_budget="0.2", baseline_version=models[0].pk, mllm_version=models[1].pk,
                      change_note="stage 2 on trial until its fine-tune")
    del trial["stage2_decides"]  # an unticked checkbox is not sent
    assert admin_client.post(ADD_URL, trial).status_code == 302
    assert config_changes(CascadeConfig.objects.get(is_active=True)) == {"stage2_decides": (True, False)}
    assert admin_client.post(ADD_URL, {**trial, "stage2_decides": "on"}).status_code == 302
    assert CascadeConfig.objects.get(is_active=True).stage2_decides


def test_versions_cannot_be_edited_or_deleted(admin_client, models):
    config = CascadeConfig.objects.get(is_active=True)
    admin_client.post(f"/admin/moderation/cascadeconfig/{config.pk}/change/", {"audit_rate": "0.5"})
    admin_client.post(f"/admin/moderation/cascadeconfig/{config.pk}/delete/", {"post": "yes"})
    config.refresh_from_db()
    assert config.audit_rate == 0.02 and config.is_active


def build_traffic(policy, baseline, mllm, n=100, labeled=40):
    """n videos `baseline` scored with entropies 0.01 .. 1.0; the top 30% (and the first `labeled`)
    also MLLM-scored. The baseline says ok everywhere (P(violation) 0.1); the MLLM says scam (0.95)."""
    now = timezone.now()
    start = Video.objects.count()
    videos = Video.objects.bulk_create(
        Video(policy=policy, file=f"v/{start + i}.mp4", original_filename=f"{i}.mp4", sha256=f"{start + i:064d}",
              size_bytes=1, source="cli", state="decided", state_changed_at=now) for i in range(n))
    for i, video in enumerate(videos):
        entropy = (i + 1) / n
        Prediction.objects.create(video=video, stage="baseline", model_version=baseline, entropy=entropy, label="ok",
                                  probabilities={"ok": 0.9, "scam": 0.1, "drugs": 0.0, "weapons": 0.0})
        if entropy > 0.7 or i < labeled:
            Prediction.objects.create(video=video, stage="mllm", model_version=mllm, entropy=0.2, label="scam",
                                      probabilities={"ok": 0.05, "scam": 0.95, "drugs": 0.0, "weapons": 0.0})
    return videos


def label(videos, user, truth):
    for video, value in zip(videos, truth):
        task = ReviewTask.objects.create(video=video, policy=video.policy, reason="review_band", priority=0.5,
                                         due_at=timezone.now(), model_label="ok", p_violation=0.1, status="done")
        Review.objects.create(task=task, video=video, reviewer=user, label=value, model_label="ok",
                              model_decided_by="baseline", disagrees_with_model=value != "ok", seconds_spent=3)


WHATIF_QUERY = {"mllm_budget": "0.25", "allow_below": "0.2", "action_above": "0.9", "audit_rate": "0.1"}


def test_what_if_projects_call_rate_reviews_and_quality_under_the_bands(admin_client, admin_user, policy, models):
    videos = build_traffic(policy, *models)
    # Labeled videos 0..39 have entropies 0.01..0.40: the first 20 are ok, the rest scam.
    label(videos[:40], admin_user, ["ok"] * 20 + ["scam"] * 20)
    query = {"policy": policy.pk, **WHATIF_QUERY}
    data = admin_client.get(WHATIF_URL, query).json()
    candidate = data["candidate"]
    assert candidate["mllm_call_rate"] == pytest.approx(0.25)
    assert candidate["threshold"] == pytest.approx(0.76)
    # Routed videos with an MLLM score are auto-actioned (P 0.95), the rest auto-allowed (P 0.1):
    # only the audit sample reaches reviewers.
    assert candidate["review_rate"] == pytest.approx(0.1)
    quality = candidate["quality"]
    assert candidate["labeled"] == 40 and quality["f1"] == 0.0, "no labeled video is routed at 25%"
    assert (quality["wrongly_allowed"], quality["wrongly_actioned"]) == (20, 0)
    assert data["active"]["mllm_call_rate"] == pytest.approx(0.2)
    # Routing the uncertain labeled half (entropy >= 0.21) to the MLLM gets every scam actioned.
    routed = admin_client.get(WHATIF_URL, {**query, "mllm_budget": "", "entropy_threshold": "0.205"}).json()
    assert routed["candidate"]["quality"]["f1"] == pytest.approx(1.0)
    assert routed["candidate"]["quality"]["wrongly_allowed"] == 0
    assert routed["candidate"]["mllm_call_rate"] == pytest.approx(0.8)
    # With stage 2 on trial the same routing sends every routed video to a reviewer, and the
    # verdicts before review are stage 1's: every scam allowed again.
    trial = admin_client.get(WHATIF_URL, {**query, "mllm_budget": "", "entropy_threshold": "0.205",
                                          "stage2_decides": "false"}).json()["candidate"]
    assert trial["review_rate"] == pytest.approx(0.8 + 0.2 * 0.1)
    assert trial["quality"]["wrongly_allowed"] == 20
    # Scored as the product acts, not by the argmax (ok at 0.9 everywhere): with allow_below at
    # 0.05, P(violation) 0.1 sends every unrouted video to a reviewer, and the scams are caught there.
    held = admin_client.get(WHATIF_URL, {**query, "allow_below": "0.05"}).json()["candidate"]
    assert held["quality"]["recall"] == 1.0 and held["quality"]["precision"] == pytest.approx(0.5)
    assert held["quality"]["to_review"] == 40 and held["review_rate"] == pytest.approx(0.75 + 0.25 * 0.1)


def test_what_if_replays_only_the_candidate_baselines_traffic(admin_client, admin_user, policy, models):
    """The router turns a budget into a threshold over the active baseline's own entropies; the
    what-if must not pool in those of a baseline that is no longer (or not yet) in service."""
    baseline, mllm = models
    older = ModelVersion.objects.create(policy=policy, kind="baseline", version="b0", artifact_path="b0",
                                        status="retired")
    old_videos = build_traffic(policy, older, mllm, n=300, labeled=0)
    Prediction.objects.filter(model_version=older).update(entropy=F("entropy") + 1)  # 1.003 .. 2.0
    build_traffic(policy, baseline, mllm)
    query = {"policy": policy.pk, **WHATIF_QUERY}
    candidate = admin_client.get(WHATIF_URL, query).json()["candidate"]
    assert candidate["videos"] == 100
    assert candidate["threshold"] == pytest.approx(0.76) and candidate["mllm_call_rate"] == pytest.approx(0.25)
    # The form's baseline picks whose traffic is replayed; a blank one scores nothing.
    of_older = admin_client.get(WHATIF_URL, {**query, "baseline_version": older.pk}).json()["candidate"]
    assert of_older["videos"] == len(old_videos) and of_older["threshold"] == pytest.approx(1 + 226 / 300)
    assert of_older["mllm_call_rate"] == pytest.approx(0.25)
    blank = admin_client.get(WHATIF_URL, {**query, "baseline_version": ""}).json()["candidate"]
    assert blank["videos"] == 0 and blank["mllm_call_rate"] == 0.0 and "Without a baseline" in blank["note"]


def test_what_if_counts_per_day_figures_only_over_a_whole_day(admin_client, policy, models):
    videos = build_traffic(policy, *models)
    query = {"policy": policy.pk, **WHATIF_QUERY}
    minutes = admin_client.get(WHATIF_URL, query).json()["candidate"]
    assert minutes["mllm_calls_per_day"] is None and minutes["reviews_per_day"] is None
    assert "per-day figures are counted over a whole day" in minutes["note"]
    # 60 of the videos came three days ago, 40 in the last day.
    Video.objects.filter(pk__in=[v.pk for v in videos[:60]]).update(created_at=timezone.now() - timedelta(days=3))
    days = admin_client.get(WHATIF_URL, query).json()["candidate"]
    assert days["uploads_last_day"] == 40 and days["note"] == ""
    assert days["mllm_calls_per_day"] == 10 and days["reviews_per_day"] == 4  # 25% and 10% of 40, whole


def test_what_if_refuses_bad_values_and_non_admins(admin_client, client, reviewer, policy):
    bad = admin_client.get(WHATIF_URL, {"policy": policy.pk, "mllm_budget": "2"})
    assert bad.status_code == 400 and "fraction" in bad.json()["detail"]
    nan = admin_client.get(WHATIF_URL, {"policy": policy.pk, "mllm_budget": "nan"})
    assert nan.status_code == 400
    maybe = admin_client.get(WHATIF_URL, {"policy": policy.pk, "mllm_budget": "0.1", "stage2_decides": "maybe"})
    assert maybe.status_code == 400 and "stage2_decides must be true or false" in maybe.json()["detail"]
    client.force_login(reviewer)
    assert client.get(WHATIF_URL, {"policy": policy.pk, "mllm_budget": "0.1"}).status_code == 302


def test_promote_then_roll_back(admin_client, policy, models):
    first = models[0]
    second = ModelVersion.objects.create(policy=policy, kind="baseline", version="b2", artifact_path="b2")
    url = "/admin/moderation/modelversion/"
    admin_client.post(url, {"action": "promote", "_selected_action": [second.pk]})
    assert CascadeConfig.objects.get(is_active=True).baseline_version == second
    first.refresh_from_db()
    assert first.status == "retired"
    admin_client.post(url, {"action": "roll_back", "_selected_action": [second.pk]})
    assert CascadeConfig.objects.get(is_active=True).baseline_version == first
    assert ModelVersion.objects.get(pk=second.pk).status == "retired"
    assert CascadeConfig.objects.get(is_active=True).mllm_version == models[1], "the other stage is untouched"


def test_policy_labels_are_validated(admin_client):
    response = admin_client.post("/admin/moderation/policy/add/", {
        "name": "Spam", "slug": "spam", "description": "", "labels": '["spam"]', "violating_labels": '["spam"]',
        "severity": "{}"})
    assert response.status_code == 200 and "include &quot;ok&quot;" in response.content.decode()
    assert not Policy.objects.filter(slug="spam").exists()


@pytest.fixture(scope="module")
def saved_models(tmp_path_factory, tiny_qwen2_dir):
    from django.conf import settings

    root = tmp_path_factory.mktemp("models")
    save_small_models(root, str(settings.COEFVQ_WHISPER_CHECKPOINT), tiny_qwen2_dir)
    return root


def policy_form(policy, **changes) -> dict:
    data = {"name": policy.name, "slug": policy.slug, "description": policy.description,
            "labels": json.dumps(policy.labels), "violating_labels": json.dumps(policy.violating_labels),
            "severity": json.dumps(policy.severity), "is_default": "on" if policy.is_default else ""}
    return {**data, **{name: json.dumps(value) for name, value in changes.items()}}


def test_a_label_no_active_model_knows_is_refused_with_the_reason(admin_client, policy, saved_models):
    baseline = ModelVersion.objects.create(policy=policy, kind="baseline", version="b1",
                                           artifact_path=str(saved_models / "baseline"))
    mllm = ModelVersion.objects.create(policy=policy, kind="mllm", version="m1", artifact_path=str(saved_models / "mllm"))
    do_activate_models(policy, baseline=baseline, mllm=mllm, note="first models")
    url = f"/admin/moderation/policy/{policy.pk}/change/"

    response = admin_client.post(url, policy_form(policy, labels=[*policy.labels, "spam"]))

    assert response.status_code == 200
    assert "&#x27;spam&#x27; is not a label the active baseline b1 predicts" in response.content.decode()
    assert "spam" not in Policy.objects.get(pk=policy.pk).labels
    # Which known labels violate is the policy's to change.
    severity = {label: weight for label, weight in policy.severity.items() if label != "drugs"}
    response = admin_client.post(url, policy_form(policy, violating_labels=["scam", "weapons"], severity=severity))
    assert response.status_code == 302 and Policy.objects.get(pk=policy.pk).violating_labels == ["scam", "weapons"]
