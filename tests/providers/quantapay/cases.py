"""Shared set-up of the QuantaPay tests: the alias configured by
``override_settings`` (never in tests/settings.py), its emulator on the live
server, a fresh cache per test (the rate limiter starts empty), webhooks with
the shared key (quantapay.md §9)."""

from __future__ import annotations

import copy
import json
import socket
import uuid
from typing import Any, ClassVar

import pytest

from django_payments_ru.providers.quantapay.emulator import emulator
from tests.emulator_cases import EmulatorCase

ALIAS = "quantapay"
#: Canaries: they must never appear in logs, errors, stored rows or pages.
API_KEY = "qp_canary_api_key_4b9e1d"
SECRET = "qp_canary_webhook_secret_8f2a77"
OTHER_ALIAS = "quantapay_other"
OTHER_SECRET = "qp_canary_other_alias_secret_31c0"
API_PATH = "/emulator/quantapay/api.php"
API_URL = f"http://testserver{API_PATH}"
WEBHOOK_URL = f"/payments/webhooks/{ALIAS}/"
LOCMEM = "django.core.cache.backends.locmem.LocMemCache"


def provider_config(api_url: str = API_URL, **options: Any) -> dict[str, Any]:
    return {
        "BACKEND": "django_payments_ru.providers.quantapay.Provider",
        "OPTIONS": {
            "api_key": API_KEY,
            "webhook_secret": SECRET,
            "api_url": api_url,
            **options,
        },
    }


def emulator_config(**values: Any) -> dict[str, Any]:
    return {"api_keys": [API_KEY], "webhook_secret": SECRET, **values}


def with_quantapay(config: dict[str, Any], **options: Any) -> dict[str, Any]:
    """``PAYMENTS_RU`` with the QuantaPay alias (and a second one) added."""
    config = copy.deepcopy(config)
    config["PROVIDERS"][ALIAS] = provider_config(**options)
    config["PROVIDERS"][OTHER_ALIAS] = provider_config(
        webhook_secret=OTHER_SECRET, **options
    )
    return config


def fresh_caches() -> dict[str, Any]:
    location = f"quantapay-{uuid.uuid4().hex}"
    return {"default": {"BACKEND": LOCMEM, "LOCATION": location}}


def webhook_body(transaction: dict[str, Any], key: str | None = SECRET) -> bytes:
    body: dict[str, Any] = {"transaction": transaction}
    if key is not None:
        body = {"key": key, **body}
    return json.dumps(body, separators=(",", ":")).encode()


class QuantaPayCase(EmulatorCase):
    """The QuantaPay client against its emulator over HTTP."""

    alias: ClassVar[str] = ALIAS
    slug: ClassVar[str] = "quantapay"
    provider_options: ClassVar[dict[str, Any]] = {"requests_per_minute": None}
    emulator_options: ClassVar[dict[str, Any]] = {}

    def payments_settings(
        self, config: dict[str, Any], live_url: str
    ) -> dict[str, Any]:
        config = with_quantapay(config, **self.provider_options)
        return super().payments_settings(config, live_url)

    @pytest.fixture(autouse=True)
    def _quantapay(self, _emulated: None, settings: Any, live_server: Any) -> None:
        live_server.thread.httpd.socket.setsockopt(
            socket.IPPROTO_TCP, socket.TCP_NODELAY, 1
        )
        settings.CACHES = fresh_caches()
        emulated = copy.deepcopy(getattr(settings, "PAYMENTS_RU_EMULATOR", {}))
        emulated["quantapay"] = emulator_config(**self.emulator_options)
        settings.PAYMENTS_RU_EMULATOR = emulated
        emulator.reset()

    @property
    def api_url(self) -> str:
        return f"{self.live_url}{API_PATH}"

    def post_api(self, **form: str) -> dict[str, Any]:
        """A raw call of ``api.php``; the decoded envelope (asserting HTTP 200)."""
        import requests

        response = requests.post(self.api_url, data=form, timeout=30)
        assert response.status_code == 200, response.text[:500]
        result: dict[str, Any] = response.json()
        return result

    def post_webhook(self, body: bytes, alias: str = ALIAS) -> Any:
        import requests

        return requests.post(
            f"{self.live_url}/payments/webhooks/{alias}/",
            data=body,
            headers={"Content-Type": "application/json"},
            timeout=30,
        )
