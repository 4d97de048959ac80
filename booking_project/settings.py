"""Settings, all read from the environment with local defaults that let a fresh checkout run."""

import re
from datetime import timedelta
from pathlib import Path

import environ

BASE_DIR = Path(__file__).resolve().parent.parent

env = environ.Env()

DJANGO_ENV = env.str("DJANGO_ENV", default="development")
PRODUCTION = DJANGO_ENV == "production"

# Known to everyone who reads this file: good for a laptop, refused in production.
_DEVELOPMENT_SECRET_KEY = "dev-only-insecure-key-change-me-0123456789abcdefghijklmnop"

if PRODUCTION:
    from django.core.exceptions import ImproperlyConfigured

    _secret_key = env.str("SECRET_KEY", default="")
    if not _secret_key:
        raise ImproperlyConfigured("SECRET_KEY must be set in the environment when DJANGO_ENV=production.")
    if _secret_key == _DEVELOPMENT_SECRET_KEY or len(_secret_key) < 50 or len(set(_secret_key)) < 5:
        raise ImproperlyConfigured(
            "SECRET_KEY must be a long random value (50 characters or more, not the development key) when "
            "DJANGO_ENV=production, e.g. from: python -c 'import secrets; print(secrets.token_urlsafe(50))'."
        )
    if not env.list("ALLOWED_HOSTS", default=[]):
        raise ImproperlyConfigured("ALLOWED_HOSTS must name the site's host(s) when DJANGO_ENV=production.")

SECRET_KEY = env.str("SECRET_KEY", default=_DEVELOPMENT_SECRET_KEY)
# Off unless asked for (DEBUG=true, on a developer's machine); production ignores the variable.
DEBUG = False if PRODUCTION else env.bool("DEBUG", default=False)
ALLOWED_HOSTS = env.list("ALLOWED_HOSTS", default=["localhost", "127.0.0.1", "[::1]", "testserver"])
# Origins (scheme and host, e.g. https://booking.example.com) whose unsafe requests the session-login UI accepts.
CSRF_TRUSTED_ORIGINS = env.list("CSRF_TRUSTED_ORIGINS", default=[])

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "django.contrib.postgres",
    # Login throttling (accounts_app/login_throttle.py): failed logins counted per username and per address.
    "axes",
    "rest_framework",
    "rest_framework.authtoken",
    "drf_spectacular",
    "accounts_app",
    "holds_app",
    "calendar_app",
    "meetings_app",
    "sessions_app",
    "notifications_app",
]

MIDDLEWARE = [
    # /healthz and /readyz, answered before anything else (booking_project/health.py).
    "booking_project.health.HealthMiddleware",
    # First, so the booking latency histogram counts every other middleware too.
    "booking_project.metrics.BookingLatencyMiddleware",
    "django.middleware.security.SecurityMiddleware",
    # Refuses an oversized API body (413) before authentication, parsing or any read of it.
    "booking_project.api.RequestBodyLimitMiddleware",
    # Serves the admin's static files under gunicorn, compressed and cached, with no extra web server.
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    # The counselor pages speak English or Simplified Chinese: the set_language cookie, else Accept-Language.
    "django.middleware.locale.LocaleMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    # Last, as django-axes asks: turns a login refused for too many failures into the lockout page.
    "axes.middleware.AxesMiddleware",
]

ROOT_URLCONF = "booking_project.urls"
WSGI_APPLICATION = "booking_project.wsgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.template.context_processors.i18n",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
            ],
        },
    },
]

DATABASES = {
    "default": env.db("DATABASE_URL", default="postgres://root@127.0.0.1:5432/booking"),
}
# A pool of connections per process (psycopg_pool, through Django's OPTIONS["pool"]): the Celery worker runs
# WORKER_CONCURRENCY (200) threads, each mostly waiting seconds on a provider, and gives its connection back during
# the wait (meetings_app.services.MeetingManager), so a few connections serve them all; gunicorn's threads
# take one per request. PostgreSQL allows 100 connections in all: web processes x DB_POOL_MAX_SIZE, plus the
# worker's and beat's, must stay under it. DB_POOL_MAX_SIZE=0 turns the pool off (one persistent connection
# per thread, kept DB_CONN_MAX_AGE seconds).
DB_POOL_MAX_SIZE = env.int("DB_POOL_MAX_SIZE", default=32)
if DB_POOL_MAX_SIZE > 0:
    DATABASES["default"]["CONN_MAX_AGE"] = 0  # connections go back to the pool, not away
    DATABASES["default"].setdefault("OPTIONS", {})["pool"] = {
        "min_size": min(2, DB_POOL_MAX_SIZE),
        "max_size": DB_POOL_MAX_SIZE,
        # How long a thread waits for a free connection before its request or task fails.
        "timeout": env.float("DB_POOL_TIMEOUT_SECONDS", default=10.0),
    }
else:
    DATABASES["default"]["CONN_MAX_AGE"] = env.int("DB_CONN_MAX_AGE", default=60)
    DATABASES["default"]["CONN_HEALTH_CHECKS"] = True
# Parameters sent apart from the SQL, and statements prepared once per connection after a few runs: psycopg
# skips quoting every value in Python and PostgreSQL skips parsing and planning (docs/performance.md: -35%
# of PostgreSQL's CPU per booking, -8% of the web's). Turn it off behind a transaction-mode PgBouncer.
if env.bool("DB_SERVER_SIDE_BINDING", default=True):
    DATABASES["default"].setdefault("OPTIONS", {}).update(
        {"server_side_binding": True, "prepare_threshold": env.int("DB_PREPARE_THRESHOLD", default=5)}
    )
DATABASES["default"].setdefault("TEST", {})["NAME"] = env.str("TEST_DATABASE_NAME", default="test_booking")

DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"
AUTH_USER_MODEL = "accounts_app.User"

# django-axes first: it refuses a login attempt for a username or an address locked out, before the password is
# checked (the check itself would let an attacker go on guessing).
AUTHENTICATION_BACKENDS = [
    "axes.backends.AxesStandaloneBackend",
    "django.contrib.auth.backends.ModelBackend",
]
# Login throttling for the counselor login page and the admin's (django-axes, counted in PostgreSQL, so it holds
# across web processes and machines, and with Redis down): LOGIN_FAILURE_LIMIT failed logins for one username,
# from anywhere, or from one address, for any username, lock that username or address out for
# LOGIN_LOCKOUT_MINUTES (429 with a message saying so and Retry-After). A success resets the count.
AXES_ENABLED = env.bool("LOGIN_THROTTLE_ENABLED", default=True)
AXES_FAILURE_LIMIT = env.int("LOGIN_FAILURE_LIMIT", default=5)
AXES_COOLOFF_TIME = timedelta(minutes=env.float("LOGIN_LOCKOUT_MINUTES", default=15.0))
AXES_LOCKOUT_PARAMETERS = ["username", "ip_address"]
AXES_RESET_ON_SUCCESS = True
AXES_HTTP_RESPONSE_CODE = 429
AXES_LOCKOUT_CALLABLE = "accounts_app.login_throttle.login_refused"
AXES_CLIENT_IP_CALLABLE = "accounts_app.login_throttle.client_address"
# Successful logins are not kept (Django's last_login says when); failures are, until their lockout expires.
AXES_DISABLE_ACCESS_LOG = True
# Unlock by hand with `manage.py axes_reset_username <name>` / `axes_reset_ip <address>`, not in the admin.
AXES_ENABLE_ADMIN = False
# How many proxies (load balancers) in front of the web set X-Forwarded-For: the client's address is that many
# entries from its right. 0: the connection's own address (REMOTE_ADDR).
LOGIN_TRUSTED_PROXY_COUNT = env.int("LOGIN_TRUSTED_PROXY_COUNT", default=0)

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]

LANGUAGE_CODE = "en"
LANGUAGES = [("en", "English"), ("zh-hans", "简体中文")]
LOCALE_PATHS = [BASE_DIR / "locale"]
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True

# The counselor web UI (sessions_app/pages.py): Django login, then the pages under /app/.
LOGIN_URL = "/accounts/login/"
LOGIN_REDIRECT_URL = "/app/"
LOGOUT_REDIRECT_URL = "/accounts/login/"
# How long the booking page waits for the meeting link before saying it is taking longer than usual.
UI_MEETING_PATIENCE_SECONDS = env.int("UI_MEETING_PATIENCE_SECONDS", default=30)
UI_POLL_INTERVAL_MS = env.int("UI_POLL_INTERVAL_MS", default=2000)

STATIC_URL = "static/"
STATIC_ROOT = BASE_DIR / "staticfiles"
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {"BACKEND": "whitenoise.storage.CompressedStaticFilesStorage"},
}

# The broker and the cache (booking_project/redis_connections.py): redis://, or Sentinels as
# sentinel://host1:26379;sentinel://host2:26379;... with REDIS_SENTINEL_MASTER naming the master.
REDIS_URL = env.str("REDIS_URL", default="redis://127.0.0.1:6379/0")
REDIS_SENTINEL_MASTER = env.str("REDIS_SENTINEL_MASTER", default="")
REDIS_SENTINEL_PASSWORD = env.str("REDIS_SENTINEL_PASSWORD", default="")
if REDIS_URL.strip().startswith("sentinel://") and not REDIS_SENTINEL_MASTER:
    from django.core.exceptions import ImproperlyConfigured

    raise ImproperlyConfigured("REDIS_URL names Sentinels: set REDIS_SENTINEL_MASTER to the master's name.")
# Redis is never needed to answer a request: a request waits for it a fraction of a second at most, and after
# a failure this process leaves it alone for REDIS_RETRY_AFTER_SECONDS (the throttles count in the process,
# the outbox relay publishes the events later).
REDIS_CONNECT_TIMEOUT_SECONDS = env.float("REDIS_CONNECT_TIMEOUT_SECONDS", default=0.25)
REDIS_SOCKET_TIMEOUT_SECONDS = env.float("REDIS_SOCKET_TIMEOUT_SECONDS", default=0.25)
REDIS_RETRY_AFTER_SECONDS = env.float("REDIS_RETRY_AFTER_SECONDS", default=2.0)

CACHES = {
    "default": {
        # Django's Redis cache, reaching Sentinels too, and failing open (booking_project/cache.py).
        "BACKEND": "booking_project.cache.ResilientRedisCache",
        "LOCATION": REDIS_URL,
        "KEY_PREFIX": env.str("CACHE_KEY_PREFIX", default="booking"),
        "OPTIONS": {
            "socket_connect_timeout": REDIS_CONNECT_TIMEOUT_SECONDS,
            "socket_timeout": REDIS_SOCKET_TIMEOUT_SECONDS,
        },
    }
}

# Celery: the broker is Redis; tasks are acknowledged late so a dead worker's task is redelivered.
CELERY_BROKER_URL = REDIS_URL
CELERY_RESULT_BACKEND = None
CELERY_TASK_ACKS_LATE = True
CELERY_TASK_REJECT_ON_WORKER_LOST = True
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
CELERY_TASK_SERIALIZER = "json"
CELERY_ACCEPT_CONTENT = ["json"]
CELERY_TIMEZONE = "UTC"
CELERY_BROKER_CONNECTION_RETRY_ON_STARTUP = True
# A worker outlives any Redis outage: its consumer reconnects for as long as it takes (the rows wait meanwhile).
CELERY_BROKER_CONNECTION_MAX_RETRIES = None
# Publishing must fail fast when Redis is down: the booking has committed, and the outbox relay will
# publish the event later. A request must not hang on the broker.
CELERY_BROKER_CONNECTION_TIMEOUT = env.float("CELERY_BROKER_CONNECTION_TIMEOUT", default=REDIS_CONNECT_TIMEOUT_SECONDS)
CELERY_BROKER_TRANSPORT_OPTIONS = {
    "socket_connect_timeout": CELERY_BROKER_CONNECTION_TIMEOUT,
    "socket_timeout": REDIS_SOCKET_TIMEOUT_SECONDS,
    # How kombu retries a lost connection when a message is published (the worker's consumer passes its own
    # limits): once, at once. A booking waits on a dead Redis one timeout at most, and the next ones not at
    # all (booking_project.redis_connections.redis_circuit).
    "max_retries": 1,
    "interval_start": 0,
    "interval_step": 0.2,
    "interval_max": 0.5,
}
if REDIS_URL.strip().startswith("sentinel://"):
    # kombu's sentinel transport asks the Sentinels for the master, and again after a failover.
    CELERY_BROKER_TRANSPORT_OPTIONS["master_name"] = REDIS_SENTINEL_MASTER
    CELERY_BROKER_TRANSPORT_OPTIONS["sentinel_kwargs"] = {
        "socket_connect_timeout": CELERY_BROKER_CONNECTION_TIMEOUT,
        "socket_timeout": REDIS_SOCKET_TIMEOUT_SECONDS,
        **({"password": REDIS_SENTINEL_PASSWORD} if REDIS_SENTINEL_PASSWORD else {}),
    }
CELERY_TASK_PUBLISH_RETRY = False
# Notifications wait on calendar providers and mail servers: on a queue and a worker of their own (Procfile
# `notifier`), a slow calendar never holds up the provisioning of meetings (the `worker`, default queue).
CELERY_NOTIFICATIONS_QUEUE = "notifications"
CELERY_TASK_ROUTES = {"notifications.*": {"queue": CELERY_NOTIFICATIONS_QUEUE}}
# The worker logs through LOGGING below (one JSON object per line), like the web processes.
CELERY_WORKER_HIJACK_ROOT_LOGGER = False
# On a lost broker connection, a late-acknowledged task running at that moment cannot be acknowledged any more.
# Celery can cancel it so it is redelivered at once, but only by killing its process: the threads pool (worker and
# notifier) cannot kill a thread, and the whole worker stopped with "does not implement kill_job" on every Redis
# outage during a provider call. So it finishes; Redis redelivers its message after the visibility timeout, and
# the work was never the message's to keep: its row is done, or the sweep re-drives it
# (tests/integration/test_redis_outage.py).
CELERY_WORKER_CANCEL_LONG_RUNNING_TASKS_ON_CONNECTION_LOSS = False

REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": [
        # Token first: an anonymous request then answers 401 with WWW-Authenticate, not 403. DRF's, with the
        # token's lookup remembered for TOKEN_AUTH_CACHE_SECONDS in each process (booking_project/authentication.py).
        "booking_project.authentication.RememberingTokenAuthentication",
        "rest_framework.authentication.SessionAuthentication",
    ],
    "DEFAULT_PERMISSION_CLASSES": ["rest_framework.permissions.IsAuthenticated"],
    "DEFAULT_PARSER_CLASSES": ["booking_project.api.StrictJSONParser"],
    "DEFAULT_RENDERER_CLASSES": ["rest_framework.renderers.JSONRenderer"],
    "DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema",
    "EXCEPTION_HANDLER": "booking_project.errors.api_exception_handler",
    "UNAUTHENTICATED_USER": None,
}
# How long a process remembers a token it found (and its user): a deleted token or a deactivated user is refused
# at most this long afterwards. 0: look the token up on every request.
TOKEN_AUTH_CACHE_SECONDS = env.float("TOKEN_AUTH_CACHE_SECONDS", default=10.0)

SPECTACULAR_SETTINGS = {
    "TITLE": "Session booking API",
    "DESCRIPTION": "Counselors book mentoring sessions; meetings are provisioned asynchronously.",
    "VERSION": "1.0.0",
    "SERVE_INCLUDE_SCHEMA": False,
    "COMPONENT_SPLIT_REQUEST": True,
}

# Booking rules (API.md "Limits").
BOOKING_HORIZON_DAYS = env.int("BOOKING_HORIZON_DAYS", default=30)
# The largest JSON body the API reads (413 PAYLOAD_TOO_LARGE above it). The largest real
# body, a class of 50 students with a 200-character topic, is about 3 KiB.
API_MAX_BODY_BYTES = env.int("API_MAX_BODY_BYTES", default=64 * 1024)
DEFAULT_MEETING_PROVIDER = env.str("DEFAULT_MEETING_PROVIDER", default="feishu")
if DEFAULT_MEETING_PROVIDER not in ("feishu", "zoom"):
    from django.core.exceptions import ImproperlyConfigured

    raise ImproperlyConfigured("DEFAULT_MEETING_PROVIDER must be feishu or zoom.")
# Unset: the registry's defaults (sessions_app/types.py). Set to a comma-separated list to override.
BILLABLE_SESSION_TYPES = env.list("BILLABLE_SESSION_TYPES", default=None)
IDEMPOTENCY_KEY_TTL_HOURS = env.int("IDEMPOTENCY_KEY_TTL_HOURS", default=24)
# How often beat deletes the idempotency records older than the TTL (sessions_app.idempotency).
IDEMPOTENCY_CLEANUP_INTERVAL_SECONDS = env.float("IDEMPOTENCY_CLEANUP_INTERVAL_SECONDS", default=3600.0)
THROTTLE_BOOK_RATE = env.str("THROTTLE_BOOK_RATE", default="30/min")
THROTTLE_ACTION_RATE = env.str("THROTTLE_ACTION_RATE", default="60/min")
# Provider events (webhooks) per source address: Zoom and Feishu deliver a whole account's events from a few
# addresses, so this is a flood guard, not a per-user limit.
THROTTLE_PROVIDER_EVENTS_RATE = env.str("THROTTLE_PROVIDER_EVENTS_RATE", default="1200/min")
# Availability reads per counselor: the counselor page asks again whenever the day or the people change.
THROTTLE_AVAILABILITY_RATE = env.str("THROTTLE_AVAILABILITY_RATE", default="120/min")
for _rate in (THROTTLE_BOOK_RATE, THROTTLE_ACTION_RATE, THROTTLE_PROVIDER_EVENTS_RATE, THROTTLE_AVAILABILITY_RATE):
    if not re.fullmatch(r"none|\d+/(s|sec|m|min|h|hour|d|day)", _rate.strip().lower()):
        from django.core.exceptions import ImproperlyConfigured

        raise ImproperlyConfigured(f"A throttle rate is like 30/min or none, not {_rate!r}.")
# A 409 SLOT_CONFLICT offers this many free starts after the requested one, found within this many days.
AVAILABILITY_SUGGESTIONS = env.int("AVAILABILITY_SUGGESTIONS", default=3)
AVAILABILITY_SUGGESTION_DAYS = env.int("AVAILABILITY_SUGGESTION_DAYS", default=7)
SAGA_STUCK_AFTER_SECONDS = env.int("SAGA_STUCK_AFTER_SECONDS", default=120)
SAGA_SWEEP_INTERVAL_SECONDS = env.float("SAGA_SWEEP_INTERVAL_SECONDS", default=30.0)
# The provisioning saga (DESIGN.md phase two): about three provider attempts, exponential backoff with
# jitter, and a provider's Retry-After honoured unless it asks us to wait longer than the cap.
SAGA_MAX_ATTEMPTS = env.int("SAGA_MAX_ATTEMPTS", default=3)
# After a create's answer was lost, the session may be scheduled with a meeting found or made before the lost
# call landed at the provider: this long after the loss, the provider is searched again for a second meeting.
SAGA_LEFTOVER_SETTLE_SECONDS = env.float("SAGA_LEFTOVER_SETTLE_SECONDS", default=120.0)
SAGA_CANCEL_MAX_ATTEMPTS = env.int("SAGA_CANCEL_MAX_ATTEMPTS", default=5)
SAGA_RETRY_BACKOFF_SECONDS = env.float("SAGA_RETRY_BACKOFF_SECONDS", default=2.0)
SAGA_RETRY_BACKOFF_MAX_SECONDS = env.float("SAGA_RETRY_BACKOFF_MAX_SECONDS", default=60.0)
# The one cap on a provider's Retry-After for every provider work: asked to wait longer, the work gives up.
SAGA_MAX_RETRY_AFTER_SECONDS = env.float("SAGA_MAX_RETRY_AFTER_SECONDS", default=300.0)
# A cancel or reschedule changes the meeting afterwards (sessions_app/meeting_operations.py), with the
# saga's backoff; a cancel that finds the meeting still being made waits this long between looks.
MEETING_OPERATION_MAX_ATTEMPTS = env.int("MEETING_OPERATION_MAX_ATTEMPTS", default=5)
MEETING_OPERATION_WAIT_SECONDS = env.float("MEETING_OPERATION_WAIT_SECONDS", default=1.0)
# The provider-work engine (booking_project/provider_work.py): a wait longer than this is the row's not_before,
# woken by the sweep, never a Celery countdown (the Redis broker redelivers long countdowns after its visibility
# timeout); a step failing on something other than a provider's answer is retried this many times, then given up.
PROVIDER_WORK_MAX_COUNTDOWN_SECONDS = env.float("PROVIDER_WORK_MAX_COUNTDOWN_SECONDS", default=120.0)
PROVIDER_WORK_MAX_UNEXPECTED_ERRORS = env.int("PROVIDER_WORK_MAX_UNEXPECTED_ERRORS", default=3)
# A provider paused by an operator (meetings_app.ProviderPause): its waiting work is looked at again by the sweep
# once per this period (resuming wakes it at once), and on resume the backlog drains at this many rows a second.
PROVIDER_PAUSE_RECHECK_SECONDS = env.float("PROVIDER_PAUSE_RECHECK_SECONDS", default=300.0)
PROVIDER_RESUME_DRAIN_PER_SECOND = env.int("PROVIDER_RESUME_DRAIN_PER_SECOND", default=20)
OUTBOX_RELAY_INTERVAL_SECONDS = env.float("OUTBOX_RELAY_INTERVAL_SECONDS", default=5.0)
# The relay leaves younger events to the on-commit publication, which is normally done within milliseconds.
OUTBOX_RELAY_GRACE_SECONDS = env.float("OUTBOX_RELAY_GRACE_SECONDS", default=2.0)
# The session's life (API.md "Act"): the clock starts a session within this many seconds of its start, and
# completes it (its units spent) AUTO_COMPLETE_AFTER_MINUTES after its scheduled end when no provider said so.
SESSION_CLOCK_INTERVAL_SECONDS = env.float("SESSION_CLOCK_INTERVAL_SECONDS", default=15.0)
AUTO_COMPLETE_AFTER_MINUTES = env.int("AUTO_COMPLETE_AFTER_MINUTES", default=30)

CELERY_BEAT_SCHEDULE = {
    "outbox-relay": {
        "task": "sessions.outbox_relay",
        "schedule": OUTBOX_RELAY_INTERVAL_SECONDS,
        "options": {"expires": OUTBOX_RELAY_INTERVAL_SECONDS},
    },
    "saga-sweep": {
        "task": "sessions.saga_sweep",
        "schedule": SAGA_SWEEP_INTERVAL_SECONDS,
        "options": {"expires": SAGA_SWEEP_INTERVAL_SECONDS},
    },
    "sessions-clock": {
        "task": "sessions.clock_tick",
        "schedule": SESSION_CLOCK_INTERVAL_SECONDS,
        "options": {"expires": SESSION_CLOCK_INTERVAL_SECONDS},
    },
    "idempotency-records-expire": {
        "task": "sessions.idempotency_records_expire",
        "schedule": IDEMPOTENCY_CLEANUP_INTERVAL_SECONDS,
        "options": {"expires": IDEMPOTENCY_CLEANUP_INTERVAL_SECONDS},
    },
}

# Notifications (DESIGN.md phase three). Reminders are rows sent by a beat task, never far-off Celery countdowns.
SITE_URL = env.str("SITE_URL", default="http://127.0.0.1:8000").rstrip("/")
REMINDER_OFFSETS_MINUTES = env.list("REMINDER_OFFSETS_MINUTES", cast=int, default=[24 * 60, 60])
REMINDER_SEND_INTERVAL_SECONDS = env.float("REMINDER_SEND_INTERVAL_SECONDS", default=60.0)
# Every notification task (calendar, email, reminder) retries a failure this many times in all, with exponential
# backoff and jitter, then parks it as a failed notification in the admin.
NOTIFICATION_MAX_ATTEMPTS = env.int("NOTIFICATION_MAX_ATTEMPTS", default=5)
NOTIFICATION_RETRY_BACKOFF_SECONDS = env.float("NOTIFICATION_RETRY_BACKOFF_SECONDS", default=10.0)
NOTIFICATION_RETRY_BACKOFF_MAX_SECONDS = env.float("NOTIFICATION_RETRY_BACKOFF_MAX_SECONDS", default=600.0)
# The sweep re-drives a calendar event, email or reminder still undelivered after this long, whatever happened
# to its message (a notifier down, a Redis restart without persistence).
NOTIFICATION_STUCK_AFTER_SECONDS = env.int("NOTIFICATION_STUCK_AFTER_SECONDS", default=300)
CELERY_BEAT_SCHEDULE["reminders-send"] = {
    "task": "notifications.send_due_reminders",
    "schedule": REMINDER_SEND_INTERVAL_SECONDS,
    "options": {"expires": REMINDER_SEND_INTERVAL_SECONDS},
}

# Meeting and calendar providers: credentials and base URLs (point them at the sandbox locally).
FEISHU_APP_ID = env.str("FEISHU_APP_ID", default="")
FEISHU_APP_SECRET = env.str("FEISHU_APP_SECRET", default="")
FEISHU_BASE_URL = env.str("FEISHU_BASE_URL", default="https://open.feishu.cn")
ZOOM_ACCOUNT_ID = env.str("ZOOM_ACCOUNT_ID", default="")
ZOOM_CLIENT_ID = env.str("ZOOM_CLIENT_ID", default="")
ZOOM_CLIENT_SECRET = env.str("ZOOM_CLIENT_SECRET", default="")
ZOOM_API_BASE_URL = env.str("ZOOM_API_BASE_URL", default="https://api.zoom.us/v2")
ZOOM_OAUTH_URL = env.str("ZOOM_OAUTH_URL", default="https://zoom.us/oauth/token")
GOOGLE_CALENDAR_BASE_URL = env.str("GOOGLE_CALENDAR_BASE_URL", default="https://www.googleapis.com/calendar/v3")
# The calendar the app writes events in (participants are invited as attendees). Feishu: empty means the app's
# own primary calendar. Google: a calendar id the credentials may write ("primary": the service account's own).
FEISHU_CALENDAR_ID = env.str("FEISHU_CALENDAR_ID", default="")
# How a Feishu meeting is made (docs/feishu-meetings.md): "calendar", an app calendar event with a Feishu video
# meeting and an idempotency key (a repeat after an unknown outcome is safe), or "reservation", owned by the
# mentor (a possible leftover after an unknown outcome is flagged for a person).
FEISHU_MEETING_VIA = env.str("FEISHU_MEETING_VIA", default="calendar")
GOOGLE_CALENDAR_ID = env.str("GOOGLE_CALENDAR_ID", default="primary")
# Google credentials: a service account key file (with GOOGLE_CALENDAR_SUBJECT, the Workspace user it acts as
# under domain-wide delegation), or an access token minted elsewhere (the sandbox takes any).
GOOGLE_SERVICE_ACCOUNT_FILE = env.str("GOOGLE_SERVICE_ACCOUNT_FILE", default="")
GOOGLE_CALENDAR_SUBJECT = env.str("GOOGLE_CALENDAR_SUBJECT", default="")
GOOGLE_CALENDAR_ACCESS_TOKEN = env.str("GOOGLE_CALENDAR_ACCESS_TOKEN", default="")
PROVIDER_TIMEOUT_SECONDS = env.float("PROVIDER_TIMEOUT_SECONDS", default=10.0)
# The mentor's own calendar, read while a counselor waits for free times (calendar_app/busy.py): one request
# of at most this long (a calendar that does not answer in time is skipped), its answer kept this long.
CALENDAR_FREEBUSY_TIMEOUT_SECONDS = env.float("CALENDAR_FREEBUSY_TIMEOUT_SECONDS", default=2.0)
CALENDAR_FREEBUSY_CACHE_SECONDS = env.int("CALENDAR_FREEBUSY_CACHE_SECONDS", default=60)
# An attempt open longer than this belongs to a worker that died mid-call. A live call lasts at most four
# requests (token, call, fresh token, call again), each under the timeout.
SAGA_ATTEMPT_LEASE_SECONDS = env.float("SAGA_ATTEMPT_LEASE_SECONDS", default=4 * PROVIDER_TIMEOUT_SECONDS + 10)
# Who hosts a meeting when the mentor's profile does not say (Feishu owner open_id; Zoom user id or email).
FEISHU_DEFAULT_OWNER_OPEN_ID = env.str("FEISHU_DEFAULT_OWNER_OPEN_ID", default="")
ZOOM_DEFAULT_HOST_ID = env.str("ZOOM_DEFAULT_HOST_ID", default="me")
# Provider events (API.md "Provider events (webhooks)", meetings_app/event_verification.py). Zoom's event
# subscription Secret Token; Feishu's Verification Token and, if the app has one, its Encrypt Key (empty: plain
# bodies). Empty values are values like any other on a laptop (the sandbox signs with the same ones); in
# production an empty Zoom secret or Feishu token makes that endpoint refuse every event.
ZOOM_WEBHOOK_SECRET_TOKEN = env.str("ZOOM_WEBHOOK_SECRET_TOKEN", default="")
FEISHU_EVENT_VERIFICATION_TOKEN = env.str("FEISHU_EVENT_VERIFICATION_TOKEN", default="")
FEISHU_EVENT_ENCRYPT_KEY = env.str("FEISHU_EVENT_ENCRYPT_KEY", default="")
# A signed event whose timestamp is further than this from our clock (either way) is refused: a replay.
PROVIDER_EVENT_MAX_AGE_SECONDS = env.int("PROVIDER_EVENT_MAX_AGE_SECONDS", default=300)

EMAIL_BACKEND = env.str("EMAIL_BACKEND", default="django.core.mail.backends.console.EmailBackend")
DEFAULT_FROM_EMAIL = env.str("DEFAULT_FROM_EMAIL", default="bookings@localhost")
# Where the file-based backend (django.core.mail.backends.filebased.EmailBackend) writes messages.
EMAIL_FILE_PATH = env.str("EMAIL_FILE_PATH", default=str(BASE_DIR / "var" / "mail"))
EMAIL_HOST = env.str("EMAIL_HOST", default="localhost")
EMAIL_PORT = env.int("EMAIL_PORT", default=25)
EMAIL_HOST_USER = env.str("EMAIL_HOST_USER", default="")
EMAIL_HOST_PASSWORD = env.str("EMAIL_HOST_PASSWORD", default="")
EMAIL_USE_TLS = env.bool("EMAIL_USE_TLS", default=False)
EMAIL_TIMEOUT = env.float("EMAIL_TIMEOUT", default=10.0)

if PRODUCTION:
    SECURE_SSL_REDIRECT = env.bool("SECURE_SSL_REDIRECT", default=True)
    # Prometheus scrapes over the internal network in plain HTTP: a redirect would lose every scrape.
    SECURE_REDIRECT_EXEMPT = [r"^metrics$"]
    SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
    SESSION_COOKIE_SECURE = True
    CSRF_COOKIE_SECURE = True
    SECURE_HSTS_SECONDS = env.int("SECURE_HSTS_SECONDS", default=31536000)
    SECURE_HSTS_INCLUDE_SUBDOMAINS = True
    SECURE_HSTS_PRELOAD = True
    # Django's defaults already, stated so that `check --deploy` stays clean if a default ever changes.
    SECURE_CONTENT_TYPE_NOSNIFF = True
    SECURE_REFERRER_POLICY = "same-origin"
    SECURE_CROSS_ORIGIN_OPENER_POLICY = "same-origin"
    X_FRAME_OPTIONS = "DENY"
    SESSION_COOKIE_HTTPONLY = True

# "json" (production): one JSON object per line. "console" (bin/up's demo): one readable line per business
# event, with the periodic ticks and no-op chatter left out (booking_project/logging.py).
LOG_FORMAT = env.str("LOG_FORMAT", default="json")
if LOG_FORMAT not in ("json", "console"):
    from django.core.exceptions import ImproperlyConfigured

    raise ImproperlyConfigured(f"LOG_FORMAT must be json or console, not {LOG_FORMAT!r}.")
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {
        "structured": {"()": "booking_project.logging.StructuredFormatter"},
        "console": {"()": "booking_project.logging.ConsoleFormatter"},
    },
    "filters": {
        "redact": {"()": "booking_project.logging.RedactingFilter"},
        "quiet": {"()": "booking_project.logging.ConsoleQuietFilter"},
    },
    "handlers": {
        "console": {
            "class": "logging.StreamHandler",
            "formatter": "console" if LOG_FORMAT == "console" else "structured",
            # Quiet first: a dropped tick is not worth redacting.
            "filters": ["quiet", "redact"] if LOG_FORMAT == "console" else ["redact"],
        },
    },
    "root": {"handlers": ["console"], "level": env.str("LOG_LEVEL", default="INFO")},
    "loggers": {
        "django.db.backends": {"level": "WARNING"},
    },
}

# /metrics (booking_project/metrics.py): the age beyond which a PENDING_MEETING session counts as late (the
# alert of DESIGN.md: provisioning over 10 s), and an optional bearer token for the scraper.
METRICS_PENDING_THRESHOLD_SECONDS = env.float("METRICS_PENDING_THRESHOLD_SECONDS", default=10.0)
METRICS_TOKEN = env.str("METRICS_TOKEN", default="")

if PRODUCTION:
    from django.core.exceptions import ImproperlyConfigured

    # Metrics name providers, queues and volumes: not for the internet. A scraper presents the token.
    if len(METRICS_TOKEN) < 16:
        raise ImproperlyConfigured(
            "METRICS_TOKEN must be set (16 characters or more) when DJANGO_ENV=production: /metrics then answers "
            "only Authorization: Bearer <token>."
        )
    # Credentials and meeting links travel to these: never in clear text.
    for _name in ("FEISHU_BASE_URL", "ZOOM_API_BASE_URL", "ZOOM_OAUTH_URL", "GOOGLE_CALENDAR_BASE_URL"):
        if not globals()[_name].lower().startswith("https://"):
            raise ImproperlyConfigured(f"{_name} must be an https:// URL when DJANGO_ENV=production.")
    # The OpenAPI document maps every endpoint and field: for people who log in (token or session).
    SPECTACULAR_SETTINGS["SERVE_PERMISSIONS"] = ["rest_framework.permissions.IsAuthenticated"]

# Password of the demo people made by `seed_demo` (local demo only; never set in production).
DEMO_PASSWORD = env.str("DEMO_PASSWORD", default="demo-pass-2026")
