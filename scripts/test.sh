#!/usr/bin/env bash
# Set up and run the test suite against real PostgreSQL and Redis (started here when down).
# Extra arguments go to pytest, e.g. `bash scripts/test.sh tests/inference -x`.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh

SUDO=""; [ "$(id -u)" -eq 0 ] || SUDO="sudo"
if ! command -v pg_ctlcluster >/dev/null || ! command -v redis-server >/dev/null; then
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq postgresql redis-server >/dev/null
fi
PGHOST="${PGHOST:-127.0.0.1}"
if ! pg_isready -q -h "$PGHOST" -p 5432; then
  echo "Starting PostgreSQL" >&2
  $SUDO pg_ctlcluster --skip-systemctl-redirect "$(ls /etc/postgresql | sort -V | tail -n1)" main start
  for _ in $(seq 30); do pg_isready -q -h "$PGHOST" -p 5432 && break; sleep 1; done
fi
if ! redis-cli -h 127.0.0.1 -p 6379 ping >/dev/null 2>&1; then
  echo "Starting Redis" >&2
  mkdir -p /var/lib/redis /var/log/redis
  redis-server --daemonize yes --bind 127.0.0.1 -::1 --port 6379 --save "" --appendonly no \
    --dir /var/lib/redis --logfile /var/log/redis/ci.log
  for _ in $(seq 30); do redis-cli ping >/dev/null 2>&1 && break; sleep 1; done
fi

export HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1
export DATABASE_URL="${TEST_DATABASE_URL:-postgres://postgres@$PGHOST:5432/coefvq}"
export REDIS_URL="${TEST_REDIS_URL:-redis://127.0.0.1:6379/14}"
export COEFVQ_VAR_DIR="${COEFVQ_TEST_VAR_DIR:-$PWD/var/test}"
mkdir -p "$COEFVQ_VAR_DIR"
# The Whisper checkpoint is converted once and shared with the product's own var/. Tests transcribe
# with tiny.en (fast); test_whisper_import.py converts and runs the product's default, base.
export COEFVQ_WHISPER_CHECKPOINT="${COEFVQ_WHISPER_CHECKPOINT:-$PWD/var/models/whisper-tiny.en.pt}"
export COEFVQ_ASR_CHECKPOINT="${COEFVQ_ASR_CHECKPOINT:-$COEFVQ_WHISPER_CHECKPOINT}"
.venv/bin/python -m inference.whisper_import "$COEFVQ_WHISPER_CHECKPOINT" >/dev/null

exec .venv/bin/python -m pytest "$@"
