"""heatutility settings, configured from environment variables only.

With nothing set, the embedded default applies: a SQLite file under ``var/`` and Celery
tasks executed in process, so the quick start runs on a machine that has only Python.
``DATABASE_URL=postgres://…`` and ``REDIS_URL=redis://…`` switch the same code to
PostgreSQL and a Redis broker with real workers.  Every variable is listed in README.md.
Production hardening lives in ``heatutility.settings.production``.
"""

from __future__ import annotations

import datetime as dt
from email.utils import formataddr
from pathlib import Path

import environ
from celery.schedules import crontab
from django.core.exceptions import ImproperlyConfigured

BASE_DIR = Path(__file__).resolve().parent.parent.parent
VAR_DIR = Path(environ.Env().str("HEATUTILITY_VAR_DIR", default=str(BASE_DIR / "var")))

env = environ.Env()

DEBUG = env.bool("DJANGO_DEBUG", default=False)
SECRET_KEY = env.str(
    "DJANGO_SECRET_KEY",
    default="insecure-dev-only-key-set-DJANGO_SECRET_KEY-in-production",
)
ALLOWED_HOSTS = env.list("DJANGO_ALLOWED_HOSTS", default=["localhost", "127.0.0.1", "testserver"])
CSRF_TRUSTED_ORIGINS = env.list("DJANGO_CSRF_TRUSTED_ORIGINS", default=[])

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "django.contrib.postgres",
    "rest_framework",
    "rest_framework.authtoken",
    "django_filters",
    "drf_spectacular",
    "simple_history",
    "django_celery_beat",
    "axes",
    "heatutility",
    "customers",
    "metering",
    "tariffs",
    "billing",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "simple_history.middleware.HistoryRequestMiddleware",
    # last, as django-axes asks: answers a locked-out login with 429
    "axes.middleware.AxesMiddleware",
]

# --- Login attempts: staff admin, customer portal and the API's session login ---------
# django-axes counts failed logins per username and client address; after
# AXES_FAILURE_LIMIT of them that pair is locked out for AXES_COOLOFF_MINUTES (429).
AUTHENTICATION_BACKENDS = [
    "axes.backends.AxesStandaloneBackend",
    "django.contrib.auth.backends.ModelBackend",
]
AXES_FAILURE_LIMIT = env.int("AXES_FAILURE_LIMIT", default=5)
AXES_COOLOFF_TIME = dt.timedelta(minutes=env.int("AXES_COOLOFF_MINUTES", default=15))
AXES_LOCKOUT_PARAMETERS = [["username", "ip_address"]]
AXES_RESET_ON_SUCCESS = True
AXES_VERBOSE = False  # no banner on every start
# behind a reverse proxy, name the header that carries the client's address
AXES_IPWARE_META_PRECEDENCE_ORDER = env.list("AXES_CLIENT_IP_HEADERS", default=["REMOTE_ADDR"])

ROOT_URLCONF = "heatutility.urls"
WSGI_APPLICATION = "heatutility.wsgi.application"
ASGI_APPLICATION = "heatutility.asgi.application"

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
    }
]

# --- Database: SQLite file by default, PostgreSQL via DATABASE_URL -------------------
DATABASES = {
    "default": env.db_url("DATABASE_URL", default=f"sqlite:///{VAR_DIR / 'heatutility.sqlite3'}")
}
DATABASES["default"]["ATOMIC_REQUESTS"] = False
if DATABASES["default"]["ENGINE"] == "django.db.backends.postgresql":
    DATABASES["default"]["CONN_MAX_AGE"] = env.int("DATABASE_CONN_MAX_AGE", default=60)
    DATABASES["default"]["CONN_HEALTH_CHECKS"] = True
    DATABASES["default"].setdefault("TEST", {})
    if env.str("DATABASE_TEST_NAME", default=""):
        DATABASES["default"]["TEST"]["NAME"] = env.str("DATABASE_TEST_NAME")
    # PostgreSQL compiles a query whose estimated cost passes ``jit_above_cost`` to machine
    # code: 0.1-0.3 s per query, paid back only by queries that run for seconds.  This
    # app's set-based queries pass that cost and run in milliseconds (a billing run's
    # planning query spent 294 of its 421 ms compiling; bench/README.md), so its sessions
    # run without.  DATABASE_JIT=server keeps the server's setting (a pooler that refuses
    # startup options, say).
    _jit = env.str("DATABASE_JIT", default="off")
    if _jit not in ("off", "server"):
        raise ImproperlyConfigured(f"DATABASE_JIT must be 'off' or 'server', not {_jit!r}")
    if _jit == "off":
        _options = DATABASES["default"].setdefault("OPTIONS", {})
        _options["options"] = f"{_options.get('options', '')} -c jit=off".strip()
else:
    VAR_DIR.mkdir(parents=True, exist_ok=True)
    DATABASES["default"].setdefault("OPTIONS", {})
    DATABASES["default"]["OPTIONS"].setdefault("timeout", 30)
    DATABASES["default"]["OPTIONS"].setdefault("transaction_mode", "IMMEDIATE")
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]

LANGUAGE_CODE = "en"
TIME_ZONE = env.str("HEATUTILITY_TIME_ZONE", default="Europe/Copenhagen")
USE_I18N = True
USE_TZ = True

STATIC_URL = "static/"
STATIC_ROOT = BASE_DIR / "staticfiles"
MEDIA_URL = "media/"
MEDIA_ROOT = Path(env.str("HEATUTILITY_MEDIA_ROOT", default=str(VAR_DIR / "media")))
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {"BACKEND": "whitenoise.storage.CompressedStaticFilesStorage"},
}
DATA_UPLOAD_MAX_MEMORY_SIZE = env.int("HEATUTILITY_MAX_UPLOAD_BYTES", default=50 * 1024 * 1024)

# Raw readings stay online for the current year and this many before it (billing-dispute
# window, docs/readings-storage.md); older ones are refused at intake, and
# Celery beat (``metering.tasks.readings_archive_monthly``) or ``manage.py readings_archive``
# moves their monthly partitions to READINGS_ARCHIVE_DIR.
READINGS_RETENTION_YEARS = env.int("HEATUTILITY_READINGS_RETENTION_YEARS", default=3)
# A readings batch whose processing this many times ended on a database error (a lost
# connection, a timeout) is failed instead of being queued again by beat's sweep.
INGEST_MAX_FAILURES = env.int("HEATUTILITY_INGEST_MAX_FAILURES", default=5)
# Readings more than this many hours after their delivery was received are refused at
# intake (future_timestamp): a head-end's wrong clock, not a reading.
READINGS_FUTURE_TOLERANCE_HOURS = env.int("HEATUTILITY_READINGS_FUTURE_TOLERANCE_HOURS", default=24)
READINGS_ARCHIVE_DIR = Path(
    env.str("HEATUTILITY_READINGS_ARCHIVE_DIR", default=str(VAR_DIR / "archive" / "readings"))
)
FILE_UPLOAD_MAX_MEMORY_SIZE = 5 * 1024 * 1024
# A revalidation requested by an installation change or a meter's new register settings
# (metering.models.RevalidationRequest) and still pending this long after it was made
# lost its task: nightly VEE runs it.  Far longer than the task waits in a healthy queue.
METERING_REVALIDATION_GRACE = dt.timedelta(hours=1)

SIMPLE_HISTORY_REVERT_DISABLED = True  # history is an audit record, not an undo button
SIMPLE_HISTORY_HISTORY_CHANGE_REASON_USE_TEXT_FIELD = True

LOGIN_URL = "/portal/login/"
LOGIN_REDIRECT_URL = "/portal/"

# --- Redis / Celery -------------------------------------------------------------------
REDIS_URL = env.str("REDIS_URL", default="")
CELERY_BROKER_URL = REDIS_URL or "memory://localhost/"  # a host: kombu warns without one
CELERY_RESULT_BACKEND = REDIS_URL or "cache+memory://"
# Embedded default: without a broker every task runs in process, synchronously.
CELERY_TASK_ALWAYS_EAGER = env.bool("CELERY_TASK_ALWAYS_EAGER", default=not REDIS_URL)
CELERY_TASK_EAGER_PROPAGATES = True
CELERY_TASK_ACKS_LATE = True
CELERY_TASK_REJECT_ON_WORKER_LOST = True
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
# Keep a worker's database connection between tasks (heatutility.celery closes broken or
# expired ones, as Django does between requests); 0: a new connection for every task.
CELERY_DB_REUSE_MAX = env.int("CELERY_DB_REUSE_MAX", default=100)
CELERY_TASK_TIME_LIMIT = env.int("CELERY_TASK_TIME_LIMIT", default=60 * 60)
CELERY_TASK_SOFT_TIME_LIMIT = env.int("CELERY_TASK_SOFT_TIME_LIMIT", default=55 * 60)
CELERY_BROKER_TRANSPORT_OPTIONS = {"visibility_timeout": 2 * 60 * 60}
CELERY_RESULT_EXPIRES = 24 * 60 * 60
CELERY_TIMEZONE = TIME_ZONE
CELERY_BEAT_SCHEDULER = "django_celery_beat.schedulers:DatabaseScheduler"
CELERY_BEAT_SCHEDULE: dict[str, dict] = {
    # vendor batches whose task was lost (broker down when queued, worker killed)
    "metering-ingest-redispatch": {
        "task": "metering.tasks.ingest_batches_redispatch",
        "schedule": crontab(minute="*/10"),
    },
    # contracted capacities changed from a day ahead: the connection shows today's kW
    "customers-capacities-sync-due": {
        "task": "customers.tasks.capacities_sync_due",
        "schedule": crontab(hour=1, minute=5),
    },
    # heated areas changed from a day ahead: the building shows today's m²
    "customers-areas-sync-due": {
        "task": "customers.tasks.areas_sync_due",
        "schedule": crontab(hour=1, minute=10),
    },
    "metering-vee-nightly": {
        "task": "metering.tasks.vee_nightly",
        "schedule": crontab(hour=2, minute=15),
    },
    # billing runs whose chunk tasks were lost: resumed (no account is billed twice)
    "billing-runs-resume-stalled": {
        "task": "billing.tasks.billing_runs_resume_stalled",
        "schedule": crontab(minute="*/10"),
    },
    # After the nightly VEE has replaced estimates with actual reads: re-rate what changed.
    "billing-rerate-changed-registers": {
        "task": "billing.tasks.rerate_changed_registers",
        "schedule": crontab(hour=4, minute=0),
    },
    # Corrected tariffs: the approval queues the re-rating at once; this catches one lost
    "billing-rerate-tariff-corrections": {
        "task": "billing.tasks.rerate_tariff_corrections",
        "schedule": crontab(hour=4, minute=15),
    },
    # Move-ins and move-outs recorded after their month was billed: credit the days
    # after a move-out, bill a new occupant's days (before dunning looks at balances).
    "billing-rebill-changed-contracts": {
        "task": "billing.tasks.rebill_changed_contracts",
        "schedule": crontab(hour=4, minute=30),
    },
    "billing-dunning-daily": {
        "task": "billing.tasks.dunning_daily",
        "schedule": crontab(hour=6, minute=0),
    },
    # Readings behind the retention horizon go to READINGS_ARCHIVE_DIR (shared storage
    # when the workers run on several hosts); the horizon moves once a year, so monthly
    # is often enough and a missed run is caught up by the next.
    "metering-readings-archive-monthly": {
        "task": "metering.tasks.readings_archive_monthly",
        "schedule": crontab(day_of_month=2, hour=3, minute=30),
    },
}

CACHES = {
    "default": (
        {"BACKEND": "django.core.cache.backends.redis.RedisCache", "LOCATION": REDIS_URL}
        if REDIS_URL
        else {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"}
    )
}

# --- API ----------------------------------------------------------------------------
REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": [
        "rest_framework.authentication.TokenAuthentication",
        "rest_framework.authentication.SessionAuthentication",
    ],
    "DEFAULT_PERMISSION_CLASSES": ["heatutility.permissions.StaffModelPermissions"],
    "DEFAULT_PAGINATION_CLASS": "rest_framework.pagination.PageNumberPagination",
    "PAGE_SIZE": 50,
    "DEFAULT_FILTER_BACKENDS": [
        "heatutility.filters.ApiFilterBackend",
        "heatutility.filters.SearchFilter",
        "rest_framework.filters.OrderingFilter",
    ],
    "DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema",
    "EXCEPTION_HANDLER": "heatutility.api.exception_handler",
    "COERCE_DECIMAL_TO_STRING": True,
    "DEFAULT_THROTTLE_RATES": {"vendor": env.str("HEATUTILITY_VENDOR_THROTTLE", default="600/min")},
}
SPECTACULAR_SETTINGS = {
    "TITLE": "heatutility API",
    "DESCRIPTION": (
        "System of record for a district-heating utility. Staff endpoints manage customers, "
        "connections, meters, tariffs and billing; meter vendors' head-end systems deliver "
        "readings. See docs/ for vendor integration with curl examples."
    ),
    "VERSION": "1.0.0",
    "SERVE_INCLUDE_SCHEMA": False,
    # the schema and docs: staff (session or token) and vendors (API key), nobody else
    "SERVE_PERMISSIONS": ["metering.vendors.StaffOrVendor"],
    "SERVE_AUTHENTICATION": [
        "metering.vendors.VendorKeyAuthentication",
        "rest_framework.authentication.SessionAuthentication",
        "rest_framework.authentication.TokenAuthentication",
    ],
    "COMPONENT_SPLIT_REQUEST": True,
    # Nested model choices are named after their model in heatutility/schema.py.
    "ENUM_NAME_OVERRIDES": {"EnergyUnitEnum": "metering.models.EnergyUnit"},
    # every operation documents its error answers, in the API's one error shape
    "POSTPROCESSING_HOOKS": [
        "drf_spectacular.hooks.postprocess_schema_enums",
        "heatutility.schema.error_responses",
    ],
}

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"plain": {"format": "%(asctime)s %(levelname)s %(name)s %(message)s"}},
    "handlers": {"console": {"class": "logging.StreamHandler", "formatter": "plain"}},
    "root": {"handlers": ["console"], "level": env.str("LOG_LEVEL", default="INFO")},
    "loggers": {
        "django.db.backends": {"level": "WARNING"},
        # WeasyPrint's font subsetting logs every glyph table at INFO (thousands of lines
        # per PDF run)
        "fontTools": {"level": "WARNING"},
    },
}

HEATUTILITY = {
    # Invoice number series prefix; the number after it is gapless per series and year.
    "INVOICE_SERIES": env.str("HEATUTILITY_INVOICE_SERIES", default="INV"),
    "UTILITY_NAME": env.str("HEATUTILITY_UTILITY_NAME", default="Demo Fjernvarme A/S"),
    "COMPLAINTS_CONTACT": env.str(
        "HEATUTILITY_COMPLAINTS_CONTACT",
        default="Complaints: kundeservice@example.org; Ankenævnet på Energiområdet",
    ),
}

# --- E-mail: invoices and dunning letters to customers (billing.services.delivery) ------
# Development writes each message to a file under var/mail (the demo's 40 invoices would
# flood a console); production defaults to SMTP (heatutility.settings.production).
# Django's test runner swaps in its locmem backend.
EMAIL_BACKEND = env.str(
    "DJANGO_EMAIL_BACKEND", default="django.core.mail.backends.filebased.EmailBackend"
)
EMAIL_FILE_PATH = Path(env.str("DJANGO_EMAIL_FILE_PATH", default=str(VAR_DIR / "mail")))
# BILLING_EMAIL_DOCUMENTS=false: nothing is e-mailed, staff print and post (the admin's
# "to print" list); the other BILLING settings keep billing.conf's defaults
BILLING = {"EMAIL_DOCUMENTS": env.bool("BILLING_EMAIL_DOCUMENTS", default=True)}
EMAIL_HOST = env.str("DJANGO_EMAIL_HOST", default="localhost")
EMAIL_PORT = env.int("DJANGO_EMAIL_PORT", default=25)
EMAIL_HOST_USER = env.str("DJANGO_EMAIL_HOST_USER", default="")
EMAIL_HOST_PASSWORD = env.str("DJANGO_EMAIL_HOST_PASSWORD", default="")
EMAIL_USE_TLS = env.bool("DJANGO_EMAIL_USE_TLS", default=False)
EMAIL_USE_SSL = env.bool("DJANGO_EMAIL_USE_SSL", default=False)
# seconds: a mail server that does not answer fails the send (retried) instead of
# holding a worker and the document's row lock
EMAIL_TIMEOUT = env.int("DJANGO_EMAIL_TIMEOUT", default=30)
DEFAULT_FROM_EMAIL = env.str(
    "DJANGO_DEFAULT_FROM_EMAIL",
    default=formataddr((HEATUTILITY["UTILITY_NAME"], "noreply@localhost")),
)
