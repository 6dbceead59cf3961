"""Settings of the example shop, read from the environment (django-environ).

Every value has a default that runs the demo offline: SQLite, Celery in eager
mode, and each payment provider pointed at its emulator on this same server.
Put overrides in the environment or in ``example_project/.env``.

Environment variables:

``DEBUG`` (default ``True``), ``SECRET_KEY``, ``ALLOWED_HOSTS``
``BASE_URL``
    Where customers and providers reach the shop (default
    ``http://127.0.0.1:8000``); webhook and return URLs are built from it.
``DATABASE_URL``
    Default: ``sqlite:///<this directory>/db.sqlite3``; for example
    ``postgres://user:password@127.0.0.1:5432/shop``.
``CELERY_BROKER_URL``
    Empty (the default) runs tasks eagerly; ``redis://127.0.0.1:6379/0`` sends
    them to a worker.
``REDIS_URL``
    A shared cache for provider tokens (default: memory of one process).
``WEBHOOK_PROCESSING``
    ``sync`` (default) or ``celery``.
``EMULATOR_ENABLED`` (default ``True``)
    Serve the provider emulators under ``/emulator/``.
Per provider, ``<SLUG>_ENABLED`` and its options: see the blocks at the end.
"""

from pathlib import Path
from urllib.parse import urlsplit

import django
import environ

from django_payments_ru.beat import BEAT_SCHEDULE

BASE_DIR = Path(__file__).resolve().parent.parent

env = environ.Env()
if (BASE_DIR / ".env").exists():
    environ.Env.read_env(BASE_DIR / ".env")

DEBUG = env.bool("DEBUG", default=True)
SECRET_KEY = env("SECRET_KEY", default="django-insecure-example-shop-dev-only")
BASE_URL = env("BASE_URL", default="http://127.0.0.1:8000").rstrip("/")
_base = urlsplit(BASE_URL)
ALLOWED_HOSTS = env.list(
    "ALLOWED_HOSTS", default=sorted({"127.0.0.1", "localhost", _base.hostname or ""})
)
CSRF_TRUSTED_ORIGINS = [f"{_base.scheme}://{_base.netloc}"]

EMULATOR_ENABLED = env.bool("EMULATOR_ENABLED", default=True)

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "rest_framework",
    "django_payments_ru",
    *(["django_payments_ru.emulator"] if EMULATOR_ENABLED else []),
    "shop",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.locale.LocaleMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
]

ROOT_URLCONF = "example_project.urls"
WSGI_APPLICATION = "example_project.wsgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.debug",
                "django.template.context_processors.request",
                "django.template.context_processors.i18n",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
            ]
        },
    }
]

DATABASES = {
    "default": env.db("DATABASE_URL", default=f"sqlite:///{BASE_DIR / 'db.sqlite3'}")
}
if DATABASES["default"]["ENGINE"].endswith("sqlite3"):
    # The demo server calls its own emulator, which calls back with a webhook:
    # wait for a busy database instead of failing at once.
    # A transaction takes the write lock when it begins (Django 5.1+), so that
    # two requests (a double click) wait for each other instead of one failing
    # with "database is locked" midway (docs/money.rst).
    _options = DATABASES["default"].setdefault("OPTIONS", {})
    _options["timeout"] = 20
    if django.VERSION >= (5, 1):
        _options["transaction_mode"] = "IMMEDIATE"
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

REDIS_URL = env("REDIS_URL", default="")
if REDIS_URL:
    # Provider tokens are cached here; several processes must share them.
    CACHES = {
        "default": {
            "BACKEND": "django.core.cache.backends.redis.RedisCache",
            "LOCATION": REDIS_URL,
        }
    }
else:
    CACHES = {"default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"}}

LANGUAGE_CODE = "ru"
LANGUAGES = [("ru", "Русский"), ("en", "English")]
USE_I18N = True
TIME_ZONE = "Europe/Moscow"
USE_TZ = True

STATIC_URL = "/static/"
STATIC_ROOT = BASE_DIR / "static"

CELERY_BROKER_URL = env("CELERY_BROKER_URL", default="")
# Without a broker the tasks run in the web process, so the demo needs no worker.
CELERY_TASK_ALWAYS_EAGER = not CELERY_BROKER_URL
CELERY_TASK_EAGER_PROPAGATES = True
CELERY_TASK_ACKS_LATE = True
# The app's sweeper, reconciliation and expiry (celery -A example_project beat).
CELERY_BEAT_SCHEDULE = {**BEAT_SCHEDULE}

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "handlers": {"console": {"class": "logging.StreamHandler"}},
    "loggers": {
        "django_payments_ru": {"handlers": ["console"], "level": "INFO"},
        "shop": {"handlers": ["console"], "level": "INFO"},
    },
}

# --- Payments -----------------------------------------------------------------
#
# One block per provider below: it reads that provider's options from the
# environment, defaulting to its emulator, and gives the emulator the same
# secrets. Enable a provider with <SLUG>_ENABLED=true; point it at the real
# provider by setting its URL and credentials.

EMULATOR_URL = f"{BASE_URL}/emulator/"

PAYMENTS_RU: dict = {
    "PROVIDERS": {},
    "BASE_URL": BASE_URL,
    "WEBHOOK_PROCESSING": env("WEBHOOK_PROCESSING", default="sync"),
}
PAYMENTS_RU_EMULATOR: dict = {}

# Sandbox: the built-in provider, on by default.
if env.bool("SANDBOX_ENABLED", default=True):
    SANDBOX_API_KEY = env("SANDBOX_API_KEY", default="sk_sandbox_demo")
    SANDBOX_WEBHOOK_SECRET = env("SANDBOX_WEBHOOK_SECRET", default="whsec_sandbox_demo")
    PAYMENTS_RU["PROVIDERS"]["sandbox"] = {
        "BACKEND": "django_payments_ru.providers.sandbox.Provider",
        "OPTIONS": {
            "base_url": env("SANDBOX_BASE_URL", default=f"{EMULATOR_URL}sandbox/"),
            "api_key": SANDBOX_API_KEY,
            "webhook_secret": SANDBOX_WEBHOOK_SECRET,
        },
    }
    PAYMENTS_RU_EMULATOR["sandbox"] = {
        "api_keys": [SANDBOX_API_KEY],
        "webhook_secret": SANDBOX_WEBHOOK_SECRET,
    }

# Life-Pay: two aliases, one per surface. "lifepay" takes payments through the
# A1Lite signed form (signature 2.0); "lifepay_ecom" through ECOM invoices.
if env.bool("LIFEPAY_ENABLED", default=True):
    LIFEPAY_SERVICE_ID = env.int("LIFEPAY_SERVICE_ID", default=80715)
    LIFEPAY_KEY = env(
        "LIFEPAY_KEY", default="8IR+noSkM/EMr8LNd1JjJd22ltodr6xeIrOImyywNNU="
    )
    LIFEPAY_SECRET_KEY = env("LIFEPAY_SECRET_KEY", default="lifepay-demo-secret")
    LIFEPAY_WEBHOOK_URL = f"{BASE_URL}/payments/webhooks/lifepay/"
    PAYMENTS_RU["PROVIDERS"]["lifepay"] = {
        "BACKEND": "django_payments_ru.providers.lifepay.Provider",
        "OPTIONS": {
            "surface": "a1lite",
            "service_id": LIFEPAY_SERVICE_ID,
            "key": LIFEPAY_KEY,
            "secret_key": LIFEPAY_SECRET_KEY,
            "signature_version": "2.0",
            "webhook_url": LIFEPAY_WEBHOOK_URL,
            "partner_url": env(
                "LIFEPAY_PARTNER_URL", default=f"{EMULATOR_URL}lifepay/"
            ),
        },
    }
    LIFEPAY_ECOM_SERVICE_ID = env.int("LIFEPAY_ECOM_SERVICE_ID", default=80716)
    LIFEPAY_ECOM_SECRET_KEY = env(
        "LIFEPAY_ECOM_SECRET_KEY", default="lifepay-ecom-demo-secret"
    )
    LIFEPAY_API_KEY = env("LIFEPAY_API_KEY", default="lifepay-demo-api-key")
    LIFEPAY_ECOM_WEBHOOK_URL = f"{BASE_URL}/payments/webhooks/lifepay_ecom/"
    PAYMENTS_RU["PROVIDERS"]["lifepay_ecom"] = {
        "BACKEND": "django_payments_ru.providers.lifepay.Provider",
        "OPTIONS": {
            "surface": "ecom",
            "service_id": LIFEPAY_ECOM_SERVICE_ID,
            "api_key": LIFEPAY_API_KEY,
            "secret_key": LIFEPAY_ECOM_SECRET_KEY,
            "webhook_url": LIFEPAY_ECOM_WEBHOOK_URL,
            "partner_url": env(
                "LIFEPAY_PARTNER_URL", default=f"{EMULATOR_URL}lifepay/"
            ),
            "api_url": env("LIFEPAY_API_URL", default=f"{EMULATOR_URL}lifepay/v1/"),
        },
    }
    PAYMENTS_RU_EMULATOR["lifepay"] = {
        "services": [
            {
                "service_id": LIFEPAY_SERVICE_ID,
                "key": LIFEPAY_KEY,
                "secret_key": LIFEPAY_SECRET_KEY,
                "signature_version": "2.0",
                "webhook_url": LIFEPAY_WEBHOOK_URL,
            },
            {
                "service_id": LIFEPAY_ECOM_SERVICE_ID,
                "secret_key": LIFEPAY_ECOM_SECRET_KEY,
                "api_key": LIFEPAY_API_KEY,
                "signature_version": "2.0",
                "webhook_url": LIFEPAY_ECOM_WEBHOOK_URL,
            },
        ]
    }

# PayConnect: payments created through its API, paid on its hosted page.
if env.bool("PAYCONNECT_ENABLED", default=True):
    PAYCONNECT_SECRET_KEY = env("PAYCONNECT_SECRET_KEY", default="sk_test_123")
    PAYMENTS_RU["PROVIDERS"]["payconnect"] = {
        "BACKEND": "django_payments_ru.providers.payconnect.Provider",
        "OPTIONS": {
            "secret_key": PAYCONNECT_SECRET_KEY,
            "api_url": env(
                "PAYCONNECT_API_URL", default=f"{EMULATOR_URL}payconnect/v1/"
            ),
        },
    }
    PAYMENTS_RU_EMULATOR["payconnect"] = {"secret_keys": [PAYCONNECT_SECRET_KEY]}

# Love&Pay: SBP and card invoices through signed v2 requests, signed webhooks.
if env.bool("LOVEANDPAY_ENABLED", default=True):
    LOVEANDPAY_API_KEY = env("LOVEANDPAY_API_KEY", default="pk_test_emulator")
    LOVEANDPAY_SECRET_KEY = env("LOVEANDPAY_SECRET_KEY", default="sk_test_secret")
    LOVEANDPAY_WEBHOOK_SECRET = env("LOVEANDPAY_WEBHOOK_SECRET", default="whsec_test")
    PAYMENTS_RU["PROVIDERS"]["loveandpay"] = {
        "BACKEND": "django_payments_ru.providers.loveandpay.Provider",
        "OPTIONS": {
            "api_key": LOVEANDPAY_API_KEY,
            "secret_key": LOVEANDPAY_SECRET_KEY,
            "webhook_secret": LOVEANDPAY_WEBHOOK_SECRET,
            "api_url": env(
                "LOVEANDPAY_API_URL", default=f"{EMULATOR_URL}loveandpay/api/v2"
            ),
        },
    }
    PAYMENTS_RU_EMULATOR["loveandpay"] = {
        "api_keys": {LOVEANDPAY_API_KEY: LOVEANDPAY_SECRET_KEY},
        "webhook_secret": LOVEANDPAY_WEBHOOK_SECRET,
    }

# QuantaPay: crypto payments through signed checkout sessions, webhooks
# confirmed through the API.
if env.bool("QUANTAPAY_ENABLED", default=True):
    QUANTAPAY_API_KEY = env("QUANTAPAY_API_KEY", default="qp_test_api_key")
    QUANTAPAY_WEBHOOK_SECRET = env(
        "QUANTAPAY_WEBHOOK_SECRET", default="qp_test_webhook_secret"
    )
    PAYMENTS_RU["PROVIDERS"]["quantapay"] = {
        "BACKEND": "django_payments_ru.providers.quantapay.Provider",
        "OPTIONS": {
            "api_key": QUANTAPAY_API_KEY,
            "webhook_secret": QUANTAPAY_WEBHOOK_SECRET,
            "api_url": env(
                "QUANTAPAY_API_URL", default=f"{EMULATOR_URL}quantapay/api.php"
            ),
        },
    }
    PAYMENTS_RU_EMULATOR["quantapay"] = {
        "api_keys": [QUANTAPAY_API_KEY],
        "webhook_secret": QUANTAPAY_WEBHOOK_SECRET,
    }
