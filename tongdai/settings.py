"""Settings for tongdai, read from the environment.

Every value that differs between a laptop and production comes from an environment variable, read through
the small helpers below, which fail loudly, naming the variable and what it takes, on a value they cannot parse
or that cannot work (a count below one, a threshold out of its range, an unknown log level; an outbox backend
that cannot be imported fails the system checks). With DEBUG off the process refuses to start without a
SECRET_KEY, and the security settings default to what ``manage.py check --deploy`` asks.
"""

from __future__ import annotations

import datetime as dt
import logging
import math
import os
import sys
from decimal import Decimal, InvalidOperation
from pathlib import Path

import dj_database_url
from django.core import checks
from django.core.exceptions import ImproperlyConfigured
from django.utils.csp import CSP
from django.utils.translation import gettext_lazy as _

from core.settings_env import notify_backends_check

BASE_DIR = Path(__file__).resolve().parent.parent

_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off", ""}


def env_str(name: str, default: str) -> str:
    """Read a text value (surrounding spaces dropped); unset or empty gives the default."""
    raw = os.environ.get(name)
    if raw is None or raw.strip() == "":
        return default
    return raw.strip()


def env_bool(name: str, default: bool) -> bool:
    """Read a boolean; anything but the usual spellings is an error, not False."""
    raw = os.environ.get(name)
    if raw is None:
        return default
    value = raw.strip().lower()
    if value in _TRUE:
        return True
    if value in _FALSE:
        return False
    raise ImproperlyConfigured(f"{name} must be a boolean (1/0, true/false), not {raw!r}")


def env_int(name: str, default: int, *, minimum: int | None = None, maximum: int | None = None) -> int:
    """Read a whole number; ``minimum``: the smallest that can work (a count of rows, attempts, seconds);
    ``maximum``: the largest."""
    raw = os.environ.get(name)
    if raw is None or raw.strip() == "":
        return default
    try:
        value = int(raw)
    except ValueError:
        raise ImproperlyConfigured(f"{name} must be an integer, not {raw!r}") from None
    if (minimum is not None and value < minimum) or (maximum is not None and value > maximum):
        if maximum is None:
            within = f"of at least {minimum}"
        else:
            within = f"of at most {maximum}" if minimum is None else f"from {minimum} to {maximum}"
        raise ImproperlyConfigured(f"{name} must be an integer {within}, not {raw!r}")
    return value


def env_float(name: str, default: float, *, minimum: float = -math.inf, maximum: float = math.inf) -> float:
    """Read a number from ``minimum`` to ``maximum`` (both included)."""
    raw = os.environ.get(name)
    if raw is None or raw.strip() == "":
        return default
    try:
        value = float(raw)
    except ValueError:
        raise ImproperlyConfigured(f"{name} must be a number, not {raw!r}") from None
    if not minimum <= value <= maximum:  # nan is within no bounds
        within = f"of at least {minimum:g}" if maximum == math.inf else f"from {minimum:g} to {maximum:g}"
        raise ImproperlyConfigured(f"{name} must be a number {within}, not {raw!r}")
    return value


def env_decimal(name: str, default: str, *, above: Decimal, below: Decimal, places: int) -> Decimal:
    """Read a decimal number (a point, no comma) strictly between ``above`` and ``below``, with at most
    ``places`` decimals."""
    raw = os.environ.get(name)
    text = default if raw is None or raw.strip() == "" else raw.strip()
    try:
        value = Decimal(text)
    except InvalidOperation:
        value = None
    if value is None or not value.is_finite() or not above < value < below or value != round(value, places):
        raise ImproperlyConfigured(
            f"{name} must be a number above {above} and below {below} with at most {places} decimals, written "
            f"with a point (such as {default}), not {text!r}"
        )
    return value


def env_log_level(name: str, default: str) -> str:
    """Read the name of a logging level (DEBUG, INFO, WARNING, ERROR, CRITICAL; any case)."""
    raw = os.environ.get(name)
    if raw is None or raw.strip() == "":
        return default
    level = raw.strip().upper()
    if level not in logging.getLevelNamesMapping():
        raise ImproperlyConfigured(
            f"{name} must be one of DEBUG, INFO, WARNING, ERROR or CRITICAL, not {raw!r}"
        )
    return level


def env_rate(name: str, default: str) -> str | None:
    """Read a request rate such as ``100/s`` or ``10/min`` (per second, minute, hour or day); empty: no limit."""
    raw = os.environ.get(name, default).strip()
    if not raw:
        return None
    count, _slash, period = raw.partition("/")
    if not count.isdigit() or period not in ("s", "sec", "m", "min", "h", "hour", "d", "day"):
        raise ImproperlyConfigured(f"{name} must be a rate such as 100/s or 10/min, not {raw!r}")
    if int(count) < 1:  # no request at all would be allowed: the empty value is "no limit"
        raise ImproperlyConfigured(
            f"{name} must be a rate of at least 1 request such as 100/s, or empty for no limit, not {raw!r}"
        )
    return raw


def env_list(name: str, default: list[str]) -> list[str]:
    raw = os.environ.get(name)
    if raw is None:
        return default
    return [item.strip() for item in raw.split(",") if item.strip()]


DEBUG = env_bool("DEBUG", False)

SECRET_KEY = env_str("SECRET_KEY", "")
# Writing or checking migrations signs nothing and serves nothing: it may run without a key.
_SCHEMA_ONLY = sys.argv[1:2] == ["makemigrations"]
if not SECRET_KEY:
    if not DEBUG and not _SCHEMA_ONLY:
        raise ImproperlyConfigured(
            "SECRET_KEY is not set. Set SECRET_KEY in the environment, or DEBUG=1 for local development."
        )
    # Development (or makemigrations) only: a fixed key is fine while nothing is public.
    SECRET_KEY = "dev-only-insecure-key-tongdai-do-not-use-in-production"

ALLOWED_HOSTS = env_list("ALLOWED_HOSTS", ["127.0.0.1", "localhost"] if DEBUG else [])
CSRF_TRUSTED_ORIGINS = env_list("CSRF_TRUSTED_ORIGINS", [])

INSTALLED_APPS = [
    "crm.apps.TongdaiAdminConfig",  # Django's admin with the two-factor login of crm.admin_site
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "rest_framework",
    "knox",  # hashed API tokens with an expiry (the model is crm.ApiToken)
    "crm.apps.LoginSecurityConfig",  # django-axes: failed logins, lockouts
    "django_otp",
    "django_otp.plugins.otp_totp",
    "django_filters",
    "drf_spectacular",
    "drf_spectacular_sidecar",
    "django_q",
    "import_export",
    "crm",
    "customers",
    "tickets",
    "billing",
    "reports",
]

MIDDLEWARE = [
    "core.logs.RequestLogMiddleware",  # first: its id and duration cover every other middleware
    "crm.shared_cache.RequestGenerationsMiddleware",  # the shared cache asked once per request
    "django.middleware.security.SecurityMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.middleware.csp.ContentSecurityPolicyMiddleware",
    "core.middleware.private_no_store",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.locale.LocaleMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django_otp.middleware.OTPMiddleware",
    "crm.two_factor.second_factor_middleware",  # a session that owes its second factor is signed out everywhere
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "axes.middleware.AxesMiddleware",
    "core.middleware.DatabaseUnavailableMiddleware",
    "core.middleware.ServiceRefusalMiddleware",
]

ROOT_URLCONF = "tongdai.urls"

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
                "django.template.context_processors.csp",
            ],
        },
    },
]

WSGI_APPLICATION = "tongdai.wsgi.application"

# Database: SQLite beside the project unless DATABASE_URL names another (PostgreSQL in production).
DATABASES = {
    "default": dj_database_url.parse(
        env_str("DATABASE_URL", "") or f"sqlite:///{BASE_DIR / 'db.sqlite3'}",
        conn_max_age=env_int("CONN_MAX_AGE", 60, minimum=0),
        conn_health_checks=True,
    )
}
if DATABASES["default"]["ENGINE"] == "django.db.backends.postgresql":
    # A server that does not answer (restarting, unreachable) fails a connection attempt within seconds, and a
    # connection whose server went away is noticed within about a minute (TCP keepalives; unacknowledged data
    # at most 60 s), instead of a request, a task or the cluster's shutdown waiting on TCP for minutes.
    DATABASES["default"].setdefault("OPTIONS", {}).update(
        {
            "connect_timeout": env_int("DATABASE_CONNECT_TIMEOUT", 5, minimum=1),
            "keepalives": 1,
            "keepalives_idle": 30,
            "keepalives_interval": 10,
            "keepalives_count": 3,
            "tcp_user_timeout": 60_000,
        }
    )
    # Behind PgBouncer in transaction pooling mode a cursor cannot outlive its transaction: turn server-side
    # cursors (QuerySet.iterator()) off there (and DATABASE_PREPARED_STATEMENTS too, below).
    DATABASES["default"]["DISABLE_SERVER_SIDE_CURSORS"] = env_bool(
        "DATABASE_DISABLE_SERVER_SIDE_CURSORS", False
    )
if DATABASES["default"]["ENGINE"] == "django.db.backends.postgresql" and env_bool("DATABASE_POOL", False):
    # dj-database-url does not pass psycopg's pool option; with a pool, connections must not persist.
    DATABASES["default"]["CONN_MAX_AGE"] = 0
    DATABASES["default"].setdefault("OPTIONS", {})["pool"] = {
        "min_size": env_int("DATABASE_POOL_MIN", 2, minimum=0),
        "max_size": env_int("DATABASE_POOL_MAX", 10, minimum=1),
    }
# Prepared statements (off by default): psycopg prepares a statement on a connection once it has run it
# DATABASE_PREPARED_STATEMENTS times, with server-side parameter binding (Django's two supported options).
# Leave off behind a pooler that hands a session's statements to other server connections (PgBouncer in
# transaction mode before 1.21, or without max_prepared_statements).
# A prepared statement is still planned for its values each time (plan_cache_mode): a plan made once for any
# value would serve a small unit's list with the plan of a large one (seen: 0.9 ms becoming 600 ms).
if DATABASES["default"]["ENGINE"] == "django.db.backends.postgresql" and env_int(
    "DATABASE_PREPARED_STATEMENTS", 0, minimum=0
):
    _options = DATABASES["default"].setdefault("OPTIONS", {})
    _options.update(
        {
            "server_side_binding": True,
            "prepare_threshold": env_int("DATABASE_PREPARED_STATEMENTS", 0, minimum=0),
        }
    )
    _options["options"] = f"{_options.get('options', '')} -c plan_cache_mode=force_custom_plan".strip()
if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    DATABASES["default"].setdefault("OPTIONS", {}).update(
        {"transaction_mode": "IMMEDIATE", "timeout": 20, "init_command": "PRAGMA journal_mode=WAL;"}
    )

# A read replica (PostgreSQL streaming replication) for reports and exports: the dashboard, the monthly
# reports and list exports read there (core.routers); everything else, and every write, stays on "default".
DATABASE_REPLICA_URL = env_str("DATABASE_REPLICA_URL", "")
if DATABASE_REPLICA_URL:
    DATABASES["replica"] = {
        **dj_database_url.parse(
            DATABASE_REPLICA_URL, conn_max_age=env_int("CONN_MAX_AGE", 60, minimum=0), conn_health_checks=True
        ),
        "OPTIONS": dict(DATABASES["default"].get("OPTIONS", {})),
        "DISABLE_SERVER_SIDE_CURSORS": DATABASES["default"].get("DISABLE_SERVER_SIDE_CURSORS", False),
        "TEST": {"MIRROR": "default"},
    }
# Reports and exports read from the replica while this is on (on when DATABASE_REPLICA_URL is set).
TONGDAI_REPLICA_READS = env_bool("TONGDAI_REPLICA_READS", bool(DATABASE_REPLICA_URL))
DATABASE_ROUTERS = ["core.routers.ReplicaRouter"]

DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]

# Vietnamese by default, English available; times stored in UTC, shown in Vietnam's time.
LANGUAGE_CODE = env_str("LANGUAGE_CODE", "vi")
LANGUAGES = [("vi", _("Vietnamese")), ("en", _("English"))]
LOCALE_PATHS = [BASE_DIR / "locale"]
TIME_ZONE = "Asia/Ho_Chi_Minh"
USE_I18N = True
# Dates typed day first (03/11/2025 is 3 November) in both languages: tongdai/formats/.
FORMAT_MODULE_PATH = ["tongdai.formats"]
USE_TZ = True

STATIC_URL = "static/"
STATIC_ROOT = Path(env_str("STATIC_ROOT", str(BASE_DIR / "staticfiles")))
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {
        "BACKEND": (
            "django.contrib.staticfiles.storage.StaticFilesStorage"
            if DEBUG
            else "core.staticfiles.StaticFilesStorage"
        )
    },
}
MEDIA_ROOT = Path(env_str("MEDIA_ROOT", str(BASE_DIR / "media")))
MEDIA_URL = "media/"

LOGIN_URL = "admin:login"

# Security: strict unless DEBUG is on; each can still be relaxed explicitly from the environment.
SECURE_SSL_REDIRECT = env_bool("SECURE_SSL_REDIRECT", not DEBUG)
SESSION_COOKIE_SECURE = env_bool("SESSION_COOKIE_SECURE", not DEBUG)
CSRF_COOKIE_SECURE = env_bool("CSRF_COOKIE_SECURE", not DEBUG)
SECURE_HSTS_SECONDS = env_int("SECURE_HSTS_SECONDS", 0 if DEBUG else 31_536_000, minimum=0)
SECURE_HSTS_INCLUDE_SUBDOMAINS = env_bool("SECURE_HSTS_INCLUDE_SUBDOMAINS", not DEBUG)
SECURE_HSTS_PRELOAD = env_bool("SECURE_HSTS_PRELOAD", not DEBUG)
# The health check answers a load balancer's or monitor's plain-HTTP probe on the host itself too.
SECURE_REDIRECT_EXEMPT = [r"^health/$"]
SECURE_CONTENT_TYPE_NOSNIFF = True
SECURE_REFERRER_POLICY = "same-origin"
SESSION_COOKIE_HTTPONLY = True
X_FRAME_OPTIONS = "DENY"
# Content-Security-Policy: scripts, styles, images, fonts and requests from this site only; an inline <script>
# or <style> only with the response's nonce (the admin's few inline blocks carry it); no inline style
# attributes or event handlers; no plugins, no <base>, no framing; forms post to this site only. The API docs
# page adds data: images (its stylesheet's icons), tongdai/urls.py; a file on a ticket is served sandboxed.
SECURE_CSP = {
    "default-src": [CSP.SELF],
    "script-src": [CSP.SELF, CSP.NONCE],
    "style-src": [CSP.SELF, CSP.NONCE],
    "object-src": [CSP.NONE],
    "base-uri": [CSP.NONE],
    "form-action": [CSP.SELF],
    "frame-ancestors": [CSP.NONE],
}
if env_bool("BEHIND_TLS_PROXY", False):
    SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")

_SMTP = "django.core.mail.backends.smtp.EmailBackend"
_EMAIL_BACKEND = env_str(
    "EMAIL_BACKEND", "django.core.mail.backends.console.EmailBackend" if DEBUG else _SMTP
)
# Seconds an SMTP server may take over each exchange of a send (connecting, greeting, TLS, login, envelope, data);
# Django's SMTP mail waits for ever without it. The outbox's claim on a message outlasts a whole send.
_EMAIL_TIMEOUT = env_int("EMAIL_TIMEOUT", 30)
if _EMAIL_TIMEOUT <= 0:
    raise ImproperlyConfigured(f"EMAIL_TIMEOUT must be a number of seconds above 0, not {_EMAIL_TIMEOUT}")
MAILERS = {
    "default": {
        "BACKEND": _EMAIL_BACKEND,
        "OPTIONS": {
            key: value
            for key, value in {
                "host": env_str("EMAIL_HOST", ""),
                "port": env_int("EMAIL_PORT", 0, minimum=0) or None,
                "username": env_str("EMAIL_HOST_USER", ""),
                "password": env_str("EMAIL_HOST_PASSWORD", ""),
                "use_tls": env_bool("EMAIL_USE_TLS", False) or None,
                "timeout": _EMAIL_TIMEOUT if _EMAIL_BACKEND == _SMTP else None,
            }.items()
            if value
        },
    }
}
DEFAULT_FROM_EMAIL = env_str("DEFAULT_FROM_EMAIL", "cskh@localhost")

REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": [
        # The token first: a request without credentials is then told how to authenticate (401).
        "crm.auth.TokenAuthentication",
        "crm.auth.SessionAuthentication",  # DRF's, with its CSRF refusal in the caller's language
    ],
    # JSON only: the API's reference for people is the docs page (/api/docs/); DRF's browsable pages need inline
    # styles that the Content-Security-Policy refuses.
    "DEFAULT_RENDERER_CLASSES": ["rest_framework.renderers.JSONRenderer"],
    # JSON with its nesting bounded (TONGDAI_JSON_MAX_DEPTH), forms and files as DRF reads them.
    "DEFAULT_PARSER_CLASSES": [
        "core.json_input.JSONParser",
        "rest_framework.parsers.FormParser",
        "rest_framework.parsers.MultiPartParser",
    ],
    "DEFAULT_THROTTLE_CLASSES": ["core.api.throttling.UserThrottle"],
    "DEFAULT_THROTTLE_RATES": {
        "user": env_rate("TONGDAI_API_RATE", "100/s"),
        "failed_token": env_rate("TONGDAI_API_FAILED_TOKEN_RATE", "10/min"),
    },
    "NUM_PROXIES": env_int("PROXY_COUNT", 1 if env_bool("BEHIND_TLS_PROXY", False) else 0, minimum=0),
    "DEFAULT_PERMISSION_CLASSES": ["core.api.permissions.ScopedModelPermissions"],
    "DEFAULT_FILTER_BACKENDS": ["django_filters.rest_framework.DjangoFilterBackend"],
    "DEFAULT_PAGINATION_CLASS": "core.api.pagination.IdCursorPagination",
    "PAGE_SIZE": 50,
    "DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema",
    "EXCEPTION_HANDLER": "core.api.exceptions.exception_handler",
}
SPECTACULAR_SETTINGS = {
    "TITLE": "tongdai API",
    "DESCRIPTION": "Customer-care centre API: caller lookup, customers, contracts and meters.",
    "VERSION": "1",
    "SERVE_INCLUDE_SCHEMA": False,
    "SERVE_PERMISSIONS": ["rest_framework.permissions.IsAuthenticated"],
    # The docs page is served from the project's own static files: the machines have no internet.
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "REDOC_DIST": "SIDECAR",
    "ENUM_NAME_OVERRIDES": {
        "ContractStatusEnum": "customers.models.ContractStatus",
        "MeterStatusEnum": "customers.models.MeterStatus",
        "TicketStatusEnum": "tickets.models.Status",
        "TicketChannelEnum": "tickets.models.Channel",
        "WorkOrderStatusEnum": "tickets.models.WorkOrderStatus",
        "InvoiceStatusEnum": "billing.models.InvoiceStatus",
        "InvoiceKindEnum": "billing.models.InvoiceKind",
        "PaymentSourceEnum": "billing.models.PaymentSource",
        "ReadingStatusEnum": "billing.models.ReadingStatus",
        "ReadingSourceEnum": "billing.models.ReadingSource",
        "DisputeStatusEnum": "billing.models.DisputeStatus",
        "DisputeOutcomeEnum": "billing.models.DisputeOutcome",
        "MeterKindEnum": "customers.models.MeterKind",
    },
}

# django-q2: the ORM broker by default (at-least-once delivery); Redis when Q_REDIS_URL is set.
Q_CLUSTER = {
    "name": "tongdai",
    "workers": env_int("Q_WORKERS", 2, minimum=1),
    "timeout": env_int("Q_TIMEOUT", 60, minimum=1),
    "retry": env_int("Q_RETRY", 90, minimum=1),
    "max_attempts": env_int("Q_MAX_ATTEMPTS", 5, minimum=0),
    "catch_up": False,
    "orm": "default",
    "label": _("Task queue"),
}
if env_str("Q_REDIS_URL", ""):
    Q_CLUSTER.pop("orm")
    Q_CLUSTER["redis"] = env_str("Q_REDIS_URL", "")

# Logs go to standard error, one JSON object a line (LOG_FORMAT=json, the default with DEBUG off) or as plain
# text (LOG_FORMAT=plain, the default with DEBUG on); lines written during a request carry its request_id.
LOG_FORMAT = env_str("LOG_FORMAT", "plain" if DEBUG else "json").strip().lower()
if LOG_FORMAT not in ("json", "plain"):
    raise ImproperlyConfigured(f"LOG_FORMAT must be json or plain, not {LOG_FORMAT!r}")
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {
        "plain": {"format": "%(asctime)s %(levelname)s %(name)s %(message)s"},
        "json": {"()": "core.logs.JsonFormatter"},
    },
    "filters": {"request_id": {"()": "core.logs.RequestIdFilter"}},
    "handlers": {
        "console": {"class": "logging.StreamHandler", "formatter": LOG_FORMAT, "filters": ["request_id"]}
    },
    "root": {"handlers": ["console"], "level": env_log_level("LOG_LEVEL", "INFO")},
    "loggers": {"django.db.backends": {"level": "INFO"}},
}

# Seconds the shared cache keeps a user's permissions and units, the units and the catalogue (0: re-read on
# every request); a change invalidates them at once in every process (crm.shared_cache).
TONGDAI_AUTH_CACHE_SECONDS = env_int("TONGDAI_AUTH_CACHE_SECONDS", 30, minimum=0)
AUTHENTICATION_BACKENDS = ["axes.backends.AxesStandaloneBackend", "crm.auth.CachedModelBackend"]

# Billing: a reading above this many times the recent daily average is flagged; a rise of this many times
# the previous period opens a re-inspection and holds the bill; the ticket categories a dispute comes from.
TONGDAI_READING_JUMP_FACTOR = env_float("TONGDAI_READING_JUMP_FACTOR", 3, minimum=1)
# Contracts a billing run writes per statement (invoices with their lines), within the run's one transaction.
TONGDAI_BILLING_RUN_CHUNK = env_int("TONGDAI_BILLING_RUN_CHUNK", 200_000, minimum=1)
# PostgreSQL's work_mem for the set-based billing jobs (run, anomaly scan, rebates), for their transaction only.
TONGDAI_BULK_WORK_MEM = env_str("TONGDAI_BULK_WORK_MEM", "64MB")
# A rise: above 1× and below 100×, in hundredths (the anomaly scan compares whole numbers).
TONGDAI_ANOMALY_THRESHOLD = env_decimal(
    "TONGDAI_ANOMALY_THRESHOLD", "1.3", above=Decimal(1), below=Decimal(100), places=2
)
TONGDAI_DISPUTE_CATEGORIES = env_list("TONGDAI_DISPUTE_CATEGORIES", ["billing", "meter"])

# Exports: rows fetched per round trip, bytes gathered before a piece is sent; admin imports: rows per file.
TONGDAI_EXPORT_CHUNK_SIZE = env_int("TONGDAI_EXPORT_CHUNK_SIZE", 2000, minimum=1)
TONGDAI_EXPORT_BUFFER_BYTES = env_int("TONGDAI_EXPORT_BUFFER_BYTES", 64 * 1024, minimum=1)
TONGDAI_IMPORT_MAX_ROWS = env_int("TONGDAI_IMPORT_MAX_ROWS", 2000, minimum=1)
# The share (%) of tickets meeting each time limit that the centre aims for: the line on the dashboard's chart.
TONGDAI_SLA_TARGET_PERCENT = env_float("TONGDAI_SLA_TARGET_PERCENT", 95, minimum=0, maximum=100)

# Changelists on tables above this many (estimated) rows never run an exact COUNT(*).
TONGDAI_EXACT_COUNT_LIMIT = env_int("TONGDAI_EXACT_COUNT_LIMIT", 10_000, minimum=0)
# JSON read from requests (the API's bodies, the admin's JSON fields) nests at most this many arrays and objects;
# deeper is refused with the reason (core/json_input.py).
TONGDAI_JSON_MAX_DEPTH = env_int("TONGDAI_JSON_MAX_DEPTH", 64, minimum=1)
# The caller lookup returns at most this many candidates.
TONGDAI_LOOKUP_LIMIT = env_int("TONGDAI_LOOKUP_LIMIT", 50, minimum=1)

# Notifications: one backend per outbox channel (logging by default, so nothing leaves by accident).
TONGDAI_NOTIFY_BACKENDS = {
    "sms": env_str("TONGDAI_SMS_BACKEND", "crm.outbox.LoggingBackend"),
    "email": env_str("TONGDAI_EMAIL_BACKEND", "crm.outbox.LoggingBackend"),
    "log": "crm.outbox.LoggingBackend",
}
TONGDAI_SMS_URL = env_str("TONGDAI_SMS_URL", "")
TONGDAI_SMS_TOKEN = env_str("TONGDAI_SMS_TOKEN", "")
if TONGDAI_NOTIFY_BACKENDS["sms"] == "crm.outbox.HttpSmsBackend" and not TONGDAI_SMS_URL:
    raise ImproperlyConfigured(
        "TONGDAI_SMS_URL is not set: TONGDAI_SMS_BACKEND=crm.outbox.HttpSmsBackend sends every SMS to that address"
    )
# Each backend must be one that can be imported: checked at start (manage.py check, migrate, the outbox worker
# and the task cluster run the system checks), not at the first message.
checks.register(notify_backends_check)
# Files on tickets: largest size and the extensions taken.
TONGDAI_ATTACHMENT_MAX_BYTES = env_int("TONGDAI_ATTACHMENT_MAX_BYTES", 10 * 1024 * 1024, minimum=1)
TONGDAI_ATTACHMENT_TYPES = env_list(
    "TONGDAI_ATTACHMENT_TYPES",
    ["pdf", "jpg", "jpeg", "png", "heic", "webp", "txt", "csv", "xlsx", "docx", "eml"],
)
TONGDAI_OUTBOX_MAX_ATTEMPTS = env_int("TONGDAI_OUTBOX_MAX_ATTEMPTS", 8, minimum=1)
# Seconds the SMS gateway may take over each exchange of a request.
TONGDAI_SMS_TIMEOUT = env_int("TONGDAI_SMS_TIMEOUT", 10, minimum=1)
# Seconds a worker's claim on a message lasts: no other worker delivers it meanwhile, and a claim whose worker
# stopped mid-send is taken up again once it runs out. It outlasts the slowest send the timeouts allow (an SMTP
# send is a handful of exchanges, each allowed EMAIL_TIMEOUT).
TONGDAI_OUTBOX_LEASE_SECONDS = env_int("TONGDAI_OUTBOX_LEASE_SECONDS", 600, minimum=1)
_SLOWEST_SEND = 10 * max(_EMAIL_TIMEOUT, TONGDAI_SMS_TIMEOUT)
if TONGDAI_OUTBOX_LEASE_SECONDS < _SLOWEST_SEND:
    raise ImproperlyConfigured(
        f"TONGDAI_OUTBOX_LEASE_SECONDS ({TONGDAI_OUTBOX_LEASE_SECONDS}) must be at least ten times EMAIL_TIMEOUT "
        f"({_EMAIL_TIMEOUT}) and TONGDAI_SMS_TIMEOUT ({TONGDAI_SMS_TIMEOUT}): a send may take that long"
    )
# The outbox worker (manage.py outbox_worker) waits so many seconds when nothing is due: the longest a new
# message waits before it leaves.
TONGDAI_OUTBOX_POLL_SECONDS = env_float("TONGDAI_OUTBOX_POLL_SECONDS", 1.0, minimum=0.01, maximum=3600)  # as `outbox_worker --poll`

# The cache every process shares (throttles, permissions, scopes, units, catalogue): Redis when CACHE_REDIS_URL
# (or the task broker's Q_REDIS_URL) names one, else the process's memory (one process: the embedded default).
CACHE_REDIS_URL = env_str("CACHE_REDIS_URL", "") or env_str("Q_REDIS_URL", "")
CACHES = {
    "default": (
        {"BACKEND": "django.core.cache.backends.redis.RedisCache", "LOCATION": CACHE_REDIS_URL}
        if CACHE_REDIS_URL
        else {"BACKEND": "django.core.cache.backends.locmem.LocMemCache", "LOCATION": "tongdai"}
    )
    | {"KEY_PREFIX": "tongdai"}
}

# Logins: django-axes locks a username, and a client address, out after so many failures in a row, for so many
# minutes (0: until an administrator unlocks it in the admin, "Login security").
AXES_FAILURE_LIMIT = env_int("TONGDAI_LOGIN_FAILURE_LIMIT", 10, minimum=1)
_LOCKOUT_MINUTES = env_int("TONGDAI_LOGIN_LOCKOUT_MINUTES", 15, minimum=0)
AXES_COOLOFF_TIME = dt.timedelta(minutes=_LOCKOUT_MINUTES) if _LOCKOUT_MINUTES else None
# Every agent behind one office address shares its count: turn the per-address lockout off there if needed.
AXES_LOCKOUT_PARAMETERS = ["username"]
if env_bool("TONGDAI_LOGIN_LOCKOUT_BY_ADDRESS", True):
    AXES_LOCKOUT_PARAMETERS.append("ip_address")
AXES_ENABLE_ADMIN = False  # crm.admin_security registers it, with the unlock
AXES_ENABLE_ACCESS_FAILURE_LOG = True
# Failures "in a row": a successful sign-in ends the run (the username's failures are cleared).
AXES_RESET_ON_SUCCESS = True
AXES_LOCKOUT_CALLABLE = "core.login_security.locked_out"
# A username's failures are counted whatever its case (a username is one person in any case).
AXES_USERNAME_CALLABLE = "core.login_security.sign_in_name"
# The client's address as the API's throttles read it (REMOTE_ADDR, or X-Forwarded-For behind PROXY_COUNT
# proxies).
AXES_CLIENT_IP_CALLABLE = "core.login_security.client_address"

# API tokens (django-rest-knox): stored as a SHA-512 digest, each with an expiry and a name (crm.ApiToken).
KNOX_TOKEN_MODEL = "crm.ApiToken"
# django-rest-knox's own migrations create its default token table even when another model replaces it: that
# table would be unused (and would keep the user table from being emptied), so knox is left unmigrated.
MIGRATION_MODULES = {"knox": None}
# The longest a token may last, in days: the admin's token form and crm.tokens.api_token_create read it here.
API_TOKEN_MAX_DAYS = 3650
TONGDAI_API_TOKEN_DAYS = env_int("TONGDAI_API_TOKEN_DAYS", 90, minimum=1, maximum=API_TOKEN_MAX_DAYS)
REST_KNOX = {"TOKEN_TTL": dt.timedelta(days=TONGDAI_API_TOKEN_DAYS), "TOKEN_PREFIX": "tongdai_"}

# Staff sessions last a shift, not two weeks, and end when the browser closes.
SESSION_COOKIE_AGE = env_int("SESSION_COOKIE_AGE", 10 * 3600, minimum=1)
SESSION_EXPIRE_AT_BROWSER_CLOSE = env_bool("SESSION_EXPIRE_AT_BROWSER_CLOSE", True)
# Administrators and superusers sign in to the admin with a code from an authenticator app (TOTP, django-otp).
TONGDAI_ADMIN_2FA = env_bool("TONGDAI_ADMIN_2FA", True)
OTP_TOTP_ISSUER = env_str("OTP_TOTP_ISSUER", "tongdai")
