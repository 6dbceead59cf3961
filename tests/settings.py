"""Settings of the test suite.

``DATABASE_URL`` selects the database (SQLite in a temporary file by default; the
CI runs the suite again with ``postgres://postgres@127.0.0.1:5432/test``). ``REDIS_URL``
enables the tests that need Redis (the cross-process token lock, a real Celery
worker with Redis as its broker); without it they are skipped and say why. Celery
runs eagerly everywhere else.
"""

import os
import tempfile

import django
import environ

from tests import deprecations

# Django 6.0's and 6.1's deprecations are errors from here on, while Django
# imports the apps and their models (tests/deprecations.py).
deprecations.fail_on_them()

env = environ.Env()

SECRET_KEY = "tests-only-not-secret"
DEBUG = False
ALLOWED_HOSTS = ["*"]
USE_TZ = True
TIME_ZONE = "UTC"
LANGUAGE_CODE = "en"
USE_I18N = True

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "rest_framework",
    "django_payments_ru",
    "django_payments_ru.emulator",
    "tests.testapp",
    "shop",  # the example shop (example_project/), for tests/test_e2e.py
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.locale.LocaleMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
]

ROOT_URLCONF = "tests.urls"

# Hashing a password with PBKDF2 costs ~100 ms; the suite logs admin users in
# hundreds of times. The fast hasher is for tests only.
PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
            ]
        },
    }
]

# SQLite in a file by default, never ":memory:": live-server tests run the server
# in another thread, and an in-memory name makes Django share one connection
# between threads.
DATABASE_URL = env(
    "DATABASE_URL",
    default="sqlite:///"
    + os.path.join(tempfile.gettempdir(), f"payments_ru_{os.getpid()}.sqlite3"),
)
DATABASES = {"default": env.db_url_config(DATABASE_URL)}
# One test database per run, so that concurrent runs never share one.
_RUN = os.getpid()
if DATABASES["default"]["ENGINE"].endswith("sqlite3"):
    # A file, not memory: live-server tests and threads share it.
    DATABASES["default"]["TEST"] = {
        "NAME": os.path.join(tempfile.gettempdir(), f"payments_ru_test_{_RUN}.sqlite3")
    }
    # Concurrent writers (threads, live servers) wait for SQLite's write lock at
    # the start of a transaction instead of failing with "database is locked"
    # when a reader turns writer (Django 5.1+; docs/configuration.rst).
    _OPTIONS = DATABASES["default"].setdefault("OPTIONS", {})
    _OPTIONS["timeout"] = 30
    if django.VERSION >= (5, 1):
        _OPTIONS["transaction_mode"] = "IMMEDIATE"
else:
    DATABASES["default"]["TEST"] = {"NAME": f"test_payments_ru_{_RUN}"}

REDIS_URL = env("REDIS_URL", default="")
CACHES = {"default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"}}

STATIC_URL = "/static/"
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

CELERY_BROKER_URL = "memory://"
CELERY_TASK_ALWAYS_EAGER = True
CELERY_TASK_EAGER_PROPAGATES = True

SANDBOX_API_KEY = "sk_sandbox_test_canary_4f1c"
SANDBOX_WEBHOOK_SECRET = "whsec_sandbox_canary_9b7e"

PAYMENTS_RU = {
    "PROVIDERS": {
        "sandbox": {
            "BACKEND": "django_payments_ru.providers.sandbox.Provider",
            "OPTIONS": {
                "base_url": "http://testserver/emulator/sandbox/",
                "api_key": SANDBOX_API_KEY,
                "webhook_secret": SANDBOX_WEBHOOK_SECRET,
            },
        },
    },
    "BASE_URL": "http://testserver",
    "WEBHOOK_PROCESSING": "sync",
}

PAYMENTS_RU_EMULATOR = {
    # Only the sandbox is configured above; the tests of the other providers add
    # them per test, and their emulators' URLs must exist from the start.
    "EMULATORS": [
        "django_payments_ru.providers.lifepay.emulator",
        "django_payments_ru.providers.payconnect.emulator",
        "django_payments_ru.providers.loveandpay.emulator",
        "django_payments_ru.providers.quantapay.emulator",
    ],
    "sandbox": {
        "api_keys": [SANDBOX_API_KEY],
        "webhook_secret": SANDBOX_WEBHOOK_SECRET,
    },
}
# The suite serves the emulators with DEBUG off (pytest-django's default), like
# a staging site: the warning that they must not run in production is known.
SILENCED_SYSTEM_CHECKS = ["payments_ru.W003"]

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "handlers": {"null": {"class": "logging.NullHandler"}},
    "root": {"handlers": ["null"], "level": "DEBUG"},
}
