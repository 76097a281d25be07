from pathlib import Path

import pytest

from moderation import scoring


@pytest.fixture
def fresh_model_dir(settings, tmp_path) -> Path:
    """An empty COEFVQ_MODEL_DIR, and no model loaded by an earlier test left in the caches."""
    settings.COEFVQ_MODEL_DIR = tmp_path / "models"
    scoring.load_baseline.cache_clear()
    scoring.load_mllm.cache_clear()
    return settings.COEFVQ_MODEL_DIR
