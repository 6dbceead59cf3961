"""Shared set-up of the Love&Pay tests: the alias configured by
``override_settings`` (never in tests/settings.py), its emulator with the same
keys, a fresh cache per test (the limiters and the key block start empty), and
signed webhooks (loveandpay.md 8.2)."""

from __future__ import annotations

import copy
import json
import socket
import uuid
from typing import Any, ClassVar

import pytest

from django_payments_ru.models import Invoice
from django_payments_ru.providers.loveandpay.auth import (
    WEBHOOK_ID_HEADER,
    WEBHOOK_SIGNATURE_HEADER,
    sign_webhook,
)
from django_payments_ru.providers.loveandpay.emulator import emulator
from tests.emulator_cases import EmulatorCase

ALIAS = "loveandpay"
#: Canaries: they must never appear in logs, errors or stored rows.
API_KEY = "pk_test_canary_loveandpay_4f2a"
SECRET_KEY = "sk_test_canary_loveandpay_9b1e"
WEBHOOK_SECRET = "whsec_canary_loveandpay_77aa"
WEBHOOK_URL = f"/payments/webhooks/{ALIAS}/"
API_URL = "http://testserver/emulator/loveandpay/api/v2"
LOCMEM = "django.core.cache.backends.locmem.LocMemCache"


def provider_config(api_url: str = API_URL, **options: Any) -> dict[str, Any]:
    return {
        "BACKEND": "django_payments_ru.providers.loveandpay.Provider",
        "OPTIONS": {
            "api_key": API_KEY,
            "secret_key": SECRET_KEY,
            "webhook_secret": WEBHOOK_SECRET,
            "api_url": api_url,
            **options,
        },
    }


def with_loveandpay(config: dict[str, Any], **options: Any) -> dict[str, Any]:
    """``PAYMENTS_RU`` with the Love&Pay alias added."""
    config = copy.deepcopy(config)
    config["PROVIDERS"][ALIAS] = provider_config(**options)
    return config


def emulator_config(**values: Any) -> dict[str, Any]:
    return {
        "api_keys": {API_KEY: SECRET_KEY},
        "webhook_secret": WEBHOOK_SECRET,
        **values,
    }


def fresh_caches() -> dict[str, Any]:
    return {"default": {"BACKEND": LOCMEM, "LOCATION": f"lp-{uuid.uuid4().hex}"}}


def payment_id(invoice: Invoice) -> str:
    """A stable Love&Pay invoice id for ``invoice`` (webhook tests)."""
    return invoice.provider_payment_id or str(
        uuid.uuid5(uuid.NAMESPACE_URL, str(invoice.uuid))
    )


def event_body(
    invoice: Invoice,
    event: str = "invoice.paid",
    *,
    event_id: str | None = None,
    retry_count: int = 0,
    status: str = "PAID",
    **data: Any,
) -> dict[str, Any]:
    """A webhook body of 8.3 with A-4's amounts, for ``invoice``."""
    amount = float(invoice.amount)
    fields: dict[str, Any] = {
        "id": payment_id(invoice),
        "invoiceNumber": "INV-1705312200000-a1b2c3",
        "amount": amount,
        "amountRub": amount,
        "amountKopecks": int(invoice.amount * 100),
        "currency": "RUB",
        "status": status,
        "description": f"Order [{invoice.uuid}]",
        "paidAt": "2026-01-15T10:30:00.000Z",
        "createdAt": "2026-01-15T10:00:00.000Z",
    }
    fields.update(data)
    return {
        "id": event_id or f"evt_{uuid.uuid4().hex[:12]}",
        "event": event,
        "timestamp": "2026-01-15T10:30:00.000Z",
        "data": {k: v for k, v in fields.items() if v is not None},
        "partnerId": "partner-1",
        "retryCount": retry_count,
    }


def encode(body: dict[str, Any]) -> bytes:
    return json.dumps(body, separators=(",", ":")).encode()


def signed_headers(
    raw: bytes, secret: str = WEBHOOK_SECRET, webhook_id: str | None = None
) -> dict[str, str]:
    data = json.loads(raw) if raw.startswith(b"{") else {}
    return {
        WEBHOOK_SIGNATURE_HEADER: sign_webhook(secret, raw),
        WEBHOOK_ID_HEADER: webhook_id
        if webhook_id is not None
        else str(data.get("id", "")),
    }


class LoveAndPayCase(EmulatorCase):
    """The Love&Pay client against its emulator over HTTP."""

    alias: ClassVar[str] = ALIAS
    slug: ClassVar[str] = "loveandpay"
    provider_options: ClassVar[dict[str, Any]] = {}
    emulator_options: ClassVar[dict[str, Any]] = {}

    def payments_settings(
        self, config: dict[str, Any], live_url: str
    ) -> dict[str, Any]:
        config = with_loveandpay(config, **self.provider_options)
        return super().payments_settings(config, live_url)

    @pytest.fixture(autouse=True)
    def _loveandpay(self, _emulated: None, settings: Any, live_server: Any) -> None:
        # Accepted sockets inherit TCP_NODELAY (see the PayConnect cases).
        live_server.thread.httpd.socket.setsockopt(
            socket.IPPROTO_TCP, socket.TCP_NODELAY, 1
        )
        settings.CACHES = fresh_caches()
        emulated = copy.deepcopy(getattr(settings, "PAYMENTS_RU_EMULATOR", {}))
        emulated["loveandpay"] = emulator_config(**self.emulator_options)
        settings.PAYMENTS_RU_EMULATOR = emulated
        emulator.reset()

    def create_invoice(self, **kwargs: Any) -> Invoice:
        kwargs.setdefault("customer_email", "customer@example.com")
        return super().create_invoice(**kwargs)

    def post_webhook(self, raw: bytes, **headers: Any) -> Any:
        import requests

        return requests.post(
            f"{self.live_url}{WEBHOOK_URL}",
            data=raw,
            headers={
                "Content-Type": "application/json",
                **signed_headers(raw),
                **headers,
            },
            timeout=30,
        )
