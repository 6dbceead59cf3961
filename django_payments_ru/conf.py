"""The ``PAYMENTS_RU`` setting, read lazily.

Nothing is cached at import: every attribute read goes to ``django.conf.settings``,
so ``override_settings`` works in tests, and the provider registry is dropped when
the setting changes (see :mod:`django_payments_ru.apps`).
"""

from __future__ import annotations

from typing import Any

from django.conf import settings as django_settings

from .exceptions import ConfigurationError

SETTING_NAME = "PAYMENTS_RU"

DEFAULTS: dict[str, Any] = {
    # alias -> {"BACKEND": dotted path, "OPTIONS": {...}}
    "PROVIDERS": {},
    # Absolute base URL of the shop, for webhook and return URLs built outside a
    # request (Celery tasks, the admin, management commands).
    "BASE_URL": "",
    # Hosts (besides BASE_URL's) that an invoice's return_url may point at.
    "RETURN_URL_HOSTS": [],
    # "sync": process a webhook inside its request; "celery": in a task after commit.
    "WEBHOOK_PROCESSING": "sync",
    # Connect and read timeouts, in seconds, of every provider call.
    "HTTP_TIMEOUT": (5.0, 30.0),
    # Retries of a call that is safe to repeat (connection errors, 429, 5xx).
    "HTTP_RETRIES": 3,
    # The longest a provider call waits for one Retry-After, in seconds; a longer
    # wait fails the call with ProviderRateLimited instead of blocking a worker.
    "HTTP_MAX_RETRY_AFTER": 30.0,
    # PostgreSQL (psycopg 3): prepare the hot paths' statements once per
    # connection. False behind a pooler that cannot keep prepared statements
    # (PgBouncer in transaction mode before 1.21 or without
    # max_prepared_statements); OPTIONS "prepare_threshold": None does the same.
    "PREPARED_STATEMENTS": True,
    # Ask the provider for the status when the customer comes back.
    "REFRESH_ON_RETURN": True,
    # Cache alias used for provider tokens and the cross-process token lock.
    "CACHE": "default",
    # --- the jobs (django_payments_ru.jobs; durations in seconds or timedelta) ---
    # An event younger than this is left to its own task (it may be queued).
    "SWEEP_DELAY": 60,
    # The wait after an event's first failed attempt; it doubles at each attempt...
    "SWEEP_BACKOFF": 60,
    # ...up to this.
    "SWEEP_BACKOFF_MAX": 6 * 3600,
    # Attempts (the webhook's own and the sweeper's) before the event and its
    # invoice are flagged for the merchant and no longer retried.
    "SWEEP_MAX_ATTEMPTS": 8,
    # Events one sweep processes at most.
    "SWEEP_LIMIT": 500,
    # An invoice waiting for the provider this long is asked.
    "RECONCILE_AFTER": 600,
    # Invoices one reconciliation run asks about at most (the next continues).
    "RECONCILE_LIMIT": 500,
    # How long after its session's end an invoice is expired (a payment made at
    # the last second has time to arrive).
    "EXPIRY_GRACE": 300,
    # Invoices one expiry run handles at most.
    "EXPIRY_LIMIT": 500,
    # --- receipts (54-FZ, docs/receipts.rst) ---
    # The shop prints its receipts itself (its own cash register or fiscal
    # service): an invoice with receipt lines is accepted by a provider that
    # prints none. False: such an invoice is refused, so nobody believes a
    # receipt was printed when none was.
    "RECEIPTS_PRINTED_ELSEWHERE": False,
    # --- the JSON API (django_payments_ru.api, docs/api.rst) ---
    # Dotted paths of DRF classes. The customer endpoints are reached with the
    # pay link's signed token, so they need no login by default.
    "API_CUSTOMER_PERMISSION_CLASSES": ["rest_framework.permissions.AllowAny"],
    "API_CUSTOMER_AUTHENTICATION_CLASSES": [],
    "API_CUSTOMER_THROTTLE_CLASSES": [],
    # The merchant endpoints: a logged-in user with the Django model permission
    # each endpoint names (view/add/change invoice).
    "API_MERCHANT_PERMISSION_CLASSES": [
        "django_payments_ru.api.permissions.MerchantPermissions"
    ],
    # None: REST_FRAMEWORK["DEFAULT_AUTHENTICATION_CLASSES"].
    "API_MERCHANT_AUTHENTICATION_CLASSES": None,
    "API_MERCHANT_THROTTLE_CLASSES": [],
    # Invoices per page of the merchant list (a client may ask for fewer).
    "API_PAGE_SIZE": 50,
    # How long (seconds or timedelta) an Idempotency-Key of a create is kept.
    "API_IDEMPOTENCY_TTL": 24 * 3600,
}

WEBHOOK_MODES = ("sync", "celery")


class PaymentsSettings:
    """Attribute access to ``settings.PAYMENTS_RU`` merged over :data:`DEFAULTS`."""

    def _user(self) -> dict[str, Any]:
        value = getattr(django_settings, SETTING_NAME, {}) or {}
        if not isinstance(value, dict):
            raise ConfigurationError(f"settings.{SETTING_NAME} must be a dict.")
        return value

    def __getattr__(self, name: str) -> Any:
        if name not in DEFAULTS:
            raise AttributeError(f"Unknown {SETTING_NAME} setting: {name!r}")
        return self._user().get(name, DEFAULTS[name])

    def unknown_keys(self) -> list[str]:
        return sorted(set(self._user()) - set(DEFAULTS))


payments_settings = PaymentsSettings()
