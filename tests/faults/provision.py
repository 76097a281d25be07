"""Prepare a fault-test stack's private database, run as its own process with the stack's
environment (DATABASE_URL, COEFVQ_MODEL_DIR, ...): migrate, a reviewer with an API token, and
small real models saved where the workers load them, activated through the product's actions.

Prints one JSON object: {"tokens": [two reviewers' API tokens], "labels": [...]}.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def main() -> None:
    sys.path.insert(0, str(REPO))
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "coefvq_site.settings")
    import django

    django.setup()
    from django.core.management import call_command

    call_command("migrate", verbosity=0)
    tokens = [reviewer_token(name) for name in ("fault-reviewer", "fault-reviewer-2")]
    print(json.dumps({"tokens": tokens, **activate_models()}))


def reviewer_token(username: str) -> str:
    from django.contrib.auth.models import Group, User
    from rest_framework.authtoken.models import Token

    from moderation import roles

    user, _ = User.objects.get_or_create(username=username)
    user.set_password(f"{username}-pw")
    user.save()
    user.groups.set(Group.objects.filter(name=roles.REVIEWER))
    return Token.objects.get_or_create(user=user)[0].key


# The same handful of captions the scoring tests train on: a real baseline in a second.
CAPTIONS = {
    "ok": ["my cat sleeping in the sun", "cooking pasta with garlic", "walk along the river at dawn"],
    "scam": ["send one bitcoin get two back", "double your crypto today dm me", "free money giveaway pay the fee"],
    "drugs": ["cheap pills without prescription", "buy weed delivered tonight", "coke for sale hit me up"],
    "weapons": ["selling pistols and ammo cheap", "how to build a gun at home", "rifles for sale no papers"],
}


def activate_models() -> dict:
    """Baseline b1 and MLLM m1 active on the default policy. Every decision goes to human review
    (the review band is 0..1) so each decided video opens a review task the tests can decide;
    the entropy threshold is out of reach, so only videos forced to the MLLM go there."""
    from django.conf import settings

    from inference.baseline import train_baseline
    from inference.mllm import MLLMConfig, MultimodalClassifier
    from inference.types import MediaInfo, VideoFeatures
    from moderation.actions.ingest import check_policy
    from moderation.actions.model_registry import do_activate_models, do_change_cascade_config, do_register_model

    policy = check_policy(None)
    model_dir = Path(settings.COEFVQ_MODEL_DIR)
    rows = [(VideoFeatures(info=MediaInfo(container="text", duration_s=0.0, size_bytes=0, has_video=False,
                                          has_audio=False), caption=caption, frames=[], audio=None), label)
            for label, captions in CAPTIONS.items() for caption in captions]
    train_baseline(rows, rows, progress=False).save(model_dir / "baseline")
    MultimodalClassifier(MLLMConfig(audio_checkpoint=str(settings.COEFVQ_WHISPER_CHECKPOINT))).save(model_dir / "mllm")
    baseline = do_register_model(policy, kind="baseline", version="b1", artifact_path="baseline",
                                 config={}, metrics={})
    mllm = do_register_model(policy, kind="mllm", version="m1", artifact_path="mllm", config={}, metrics={})
    do_activate_models(policy, baseline=baseline, mllm=mllm, note="fault tests")
    do_change_cascade_config(policy, actor=None, note="fault tests: everything to review",
                             entropy_threshold=99.0, mllm_budget=None, allow_below=0.0, action_above=1.0,
                             audit_rate=0.0)
    return {"labels": list(policy.labels)}


if __name__ == "__main__":
    main()
