"""Settings of the webhook benchmarks: the processes of one database's run and
the gunicorn workers serving it (``benchmarks/scenarios.py``).

Production-like where it matters for the figures: ``DEBUG`` off, no
middleware at all (``MIDDLEWARE = []``), persistent connections
(``CONN_MAX_AGE = None``), durable commits (SQLite's defaults, ``journal_mode``
``delete`` with ``synchronous`` ``full``; PostgreSQL's server settings, which
the report prints). This app's webhook view and the floor view
(:mod:`benchmarks.floor`) run under these same settings, side by side.

``DATABASE_URL`` selects the server (SQLite in a temporary file by default);
the run creates its own database on it (``test_payments_ru_bench_<pid>``, or a
temporary SQLite file) and drops it at the end. ``BENCH_DATABASE_NAME`` points
the gunicorn workers at that database.
"""

import os
import tempfile

import django
import environ

env = environ.Env()

SECRET_KEY = "benchmarks-only-not-secret"
DEBUG = False
ALLOWED_HOSTS = ["*"]
USE_TZ = True
TIME_ZONE = "UTC"
LANGUAGE_CODE = "en"
USE_I18N = True
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

INSTALLED_APPS = [
    "django.contrib.contenttypes",
    "django_payments_ru",
    "django_payments_ru.emulator",
]
MIDDLEWARE: list[str] = []
ROOT_URLCONF = "benchmarks.urls"
WSGI_APPLICATION = "benchmarks.wsgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [],
        "APP_DIRS": True,
        "OPTIONS": {"context_processors": []},
    }
]

_RUN = os.getpid()
DATABASE_URL = env(
    "DATABASE_URL",
    default="sqlite:///"
    + os.path.join(tempfile.gettempdir(), f"payments_ru_bench_{_RUN}.sqlite3"),
)
DATABASES = {"default": env.db_url_config(DATABASE_URL)}
_DB = DATABASES["default"]
_DB["CONN_MAX_AGE"] = None  # persistent: one connection per process
_DB["CONN_HEALTH_CHECKS"] = False
if _DB["ENGINE"].endswith("sqlite3"):
    _DB["TEST"] = {
        "NAME": os.path.join(
            tempfile.gettempdir(), f"payments_ru_bench_test_{_RUN}.sqlite3"
        )
    }
    # As docs/money.rst recommends for concurrent writers (the two gunicorn
    # workers): take the write lock at BEGIN, waiting for it, instead of
    # failing with "database is locked" when a reader turns writer.
    _OPTIONS = _DB.setdefault("OPTIONS", {})
    _OPTIONS["timeout"] = 30
    if django.VERSION >= (5, 1):
        _OPTIONS["transaction_mode"] = "IMMEDIATE"
else:
    _DB["TEST"] = {"NAME": f"test_payments_ru_bench_{_RUN}"}
if env("BENCH_DATABASE_NAME", default=""):
    _DB["NAME"] = env("BENCH_DATABASE_NAME")

CACHES = {"default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"}}

#: The PayConnect account of the benchmarks: the app's provider, the floor and
#: the emulator share it.
PAYCONNECT_SECRET = "sk_test_benchmarks_payconnect"

PAYMENTS_RU = {
    "PROVIDERS": {
        "payconnect": {
            "BACKEND": "django_payments_ru.providers.payconnect.Provider",
            "OPTIONS": {
                "secret_key": PAYCONNECT_SECRET,
                # The start-payment part points it at its gunicorn server.
                "api_url": "http://127.0.0.1:8000/emulator/payconnect/v1/",
                # The client-side limiter paces calls (100 a minute); the
                # benchmark makes hundreds, and measures the path, not the wait.
                "requests_per_minute": None,
            },
        },
    },
    "BASE_URL": "http://127.0.0.1:8000",
    "WEBHOOK_PROCESSING": "sync",
}
PAYMENTS_RU_EMULATOR = {
    "payconnect": {"secret_keys": [PAYCONNECT_SECRET], "requests_per_minute": None},
}
# The emulator is served with DEBUG off, like a staging site: known.
SILENCED_SYSTEM_CHECKS = ["payments_ru.W003"]

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "handlers": {"console": {"class": "logging.StreamHandler"}},
    "root": {"handlers": ["console"], "level": "WARNING"},
}
