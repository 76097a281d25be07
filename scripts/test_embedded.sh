#!/usr/bin/env bash
# A smoke subset of the suite on the embedded default: SQLite and the file-system broker, as a
# first run with no DATABASE_URL or REDIS_URL gets (README, "The embedded default").
# Extra arguments go to pytest.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh

export HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1
unset DATABASE_URL REDIS_URL
export COEFVQ_VAR_DIR="${COEFVQ_EMBEDDED_TEST_VAR_DIR:-$PWD/var/test-embedded}"
rm -rf "$COEFVQ_VAR_DIR"
mkdir -p "$COEFVQ_VAR_DIR"
export COEFVQ_WHISPER_CHECKPOINT="${COEFVQ_WHISPER_CHECKPOINT:-$PWD/var/models/whisper-tiny.en.pt}"
export COEFVQ_ASR_CHECKPOINT="${COEFVQ_ASR_CHECKPOINT:-$COEFVQ_WHISPER_CHECKPOINT}"  # as scripts/test.sh
.venv/bin/python -m inference.whisper_import "$COEFVQ_WHISPER_CHECKPOINT" >/dev/null

exec .venv/bin/python -m pytest "$@" \
  tests/moderation/test_actions.py tests/moderation/test_audit_log.py tests/moderation/test_review_actions.py \
  tests/moderation/test_api.py tests/moderation/test_views.py tests/moderation/test_review_views.py \
  tests/moderation/test_review_api.py tests/moderation/test_import_graph.py
