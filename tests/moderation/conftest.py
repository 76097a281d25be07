from pathlib import Path

import pytest
from django.contrib.auth.models import Group
from small_models import save_small_models

from moderation import roles, scoring


@pytest.fixture
def fresh_model_dir(settings, tmp_path) -> Path:
    """An empty COEFVQ_MODEL_DIR, and no model loaded by an earlier test left in the caches."""
    settings.COEFVQ_MODEL_DIR = tmp_path / "models"
    scoring.forget_loaded_models()
    return settings.COEFVQ_MODEL_DIR


@pytest.fixture
def make_reviewer(django_user_model):
    """make(name) -> a new user in the reviewer group."""
    group = Group.objects.get(name=roles.REVIEWER)

    def make(name: str):
        user = django_user_model.objects.create_user(name)
        user.groups.add(group)
        return user

    return make


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory, tiny_qwen2_dir) -> Path:
    """The small test models (tests/moderation/small_models.py) saved once per test module."""
    from django.conf import settings

    root = tmp_path_factory.mktemp("models")
    save_small_models(root, str(settings.COEFVQ_WHISPER_CHECKPOINT), tiny_qwen2_dir)
    return root
