"""Shared set-up of the PayConnect tests: the provider configured by
``override_settings`` (never in tests/settings.py), its emulator, a fresh cache
per test (tokens and the rate limiter start empty), signed webhooks."""

from __future__ import annotations

import copy
import json
import socket
import uuid
from pathlib import Path
from typing import Any, ClassVar

import pytest

from django_payments_ru.providers.payconnect.emulator import emulator
from django_payments_ru.providers.payconnect.provider import (
    EVENT_ID_HEADER,
    SIGNATURE_HEADER,
    sign,
)
from tests.emulator_cases import EmulatorCase

FIXTURES = Path(__file__).parent / "fixtures"
ALIAS = "payconnect"
#: A canary: it must never appear in logs, errors or stored rows.
SECRET = "sk_test_canary_payconnect_7c1d"
WEBHOOK_URL = f"/payments/webhooks/{ALIAS}/"
LOCMEM = "django.core.cache.backends.locmem.LocMemCache"


def fixture_bytes(name: str) -> bytes:
    return (FIXTURES / name).read_bytes()


def provider_config(
    api_url: str = "http://testserver/emulator/payconnect/v1/", **options: Any
) -> dict[str, Any]:
    return {
        "BACKEND": "django_payments_ru.providers.payconnect.Provider",
        "OPTIONS": {"secret_key": SECRET, "api_url": api_url, **options},
    }


def with_payconnect(config: dict[str, Any], **options: Any) -> dict[str, Any]:
    """``PAYMENTS_RU`` with the PayConnect alias added."""
    config = copy.deepcopy(config)
    config["PROVIDERS"][ALIAS] = provider_config(**options)
    return config


def fresh_caches() -> dict[str, Any]:
    location = f"payconnect-{uuid.uuid4().hex}"
    return {"default": {"BACKEND": LOCMEM, "LOCATION": location}}


def event_body(
    payment: dict[str, Any],
    type_: str,
    event_id: str | None = None,
    created_at: str = "2026-01-15T10:30:00Z",
) -> bytes:
    return json.dumps(
        {
            "id": event_id or f"evt_{uuid.uuid4().hex[:16]}",
            "type": type_,
            "created_at": created_at,
            "data": {"object": payment},
        },
        separators=(",", ":"),
    ).encode()


def signed_headers(body: bytes, key: str = SECRET) -> dict[str, str]:
    return {
        "Content-Type": "application/json",
        SIGNATURE_HEADER: sign(key, body),
        EVENT_ID_HEADER: json.loads(body).get("id", ""),
    }


class PayConnectCase(EmulatorCase):
    """The PayConnect client against its emulator over HTTP."""

    alias: ClassVar[str] = ALIAS
    slug: ClassVar[str] = "payconnect"
    #: OPTIONS of the alias for this class (besides secret_key and api_url).
    provider_options: ClassVar[dict[str, Any]] = {}
    #: PAYMENTS_RU_EMULATOR["payconnect"] for this class.
    emulator_options: ClassVar[dict[str, Any]] = {}

    def payments_settings(
        self, config: dict[str, Any], live_url: str
    ) -> dict[str, Any]:
        config = with_payconnect(config, **self.provider_options)
        return super().payments_settings(config, live_url)

    @pytest.fixture(autouse=True)
    def _payconnect(self, _emulated: None, settings: Any, live_server: Any) -> None:
        # The live server writes a response's headers and body separately; with
        # Nagle's algorithm and the client's delayed ACK every keep-alive call
        # then waits 40 ms. Accepted sockets inherit TCP_NODELAY.
        live_server.thread.httpd.socket.setsockopt(
            socket.IPPROTO_TCP, socket.TCP_NODELAY, 1
        )
        settings.CACHES = fresh_caches()
        emulated = copy.deepcopy(getattr(settings, "PAYMENTS_RU_EMULATOR", {}))
        emulated["payconnect"] = {"secret_keys": [SECRET], **self.emulator_options}
        settings.PAYMENTS_RU_EMULATOR = emulated
        emulator.reset()

    def create_invoice(self, **kwargs: Any) -> Any:
        kwargs.setdefault("customer_email", "customer@example.com")
        return super().create_invoice(**kwargs)

    def post_webhook(self, body: bytes, key: str = SECRET) -> Any:
        import requests

        return requests.post(
            f"{self.live_url}{WEBHOOK_URL}",
            data=body,
            headers=signed_headers(body, key),
            timeout=30,
        )
