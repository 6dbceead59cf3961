"""Shared helpers of the core tests: signed sandbox webhooks, signal recording."""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from decimal import Decimal
from typing import Any

from django.conf import settings
from django.test import Client

from django_payments_ru import services
from django_payments_ru.events import EventType, PaymentEvent
from django_payments_ru.models import Invoice
from django_payments_ru.providers.sandbox.provider import sign
from tests.signals import SignalRecorder

WEBHOOK_URL = "/payments/webhooks/sandbox/"


def make_invoice(
    amount: str = "100.00", currency: str = "RUB", **kwargs: Any
) -> Invoice:
    kwargs.setdefault("order_id", f"order-{uuid.uuid4().hex[:8]}")
    return services.create_invoice(
        provider="sandbox", amount=amount, currency=currency, **kwargs
    )


def payment_object(
    invoice: Invoice, status: str = "succeeded", **extra: Any
) -> dict[str, Any]:
    data = {
        "id": invoice.provider_payment_id or f"pay_{invoice.uuid.hex[:16]}",
        "status": status,
        "amount": str(invoice.amount),
        "currency": invoice.currency,
        "reference": str(invoice.uuid),
        "refunded_amount": "0.00",
        "failure_reason": None,
    }
    data.update(extra)
    return data


WEBHOOK_TYPES = {
    "succeeded": "payment.succeeded",
    "failed": "payment.failed",
    "expired": "payment.expired",
    "cancelled": "payment.cancelled",
    "refunded": "payment.refunded",
}


def webhook_body(
    payment: dict[str, Any], event_id: str | None = None, type_: str | None = None
) -> bytes:
    return json.dumps(
        {
            "id": event_id or f"evt_{uuid.uuid4().hex[:16]}",
            "type": type_ or WEBHOOK_TYPES[payment["status"]],
            "created_at": "2026-01-15T10:30:00+00:00",
            "data": payment,
        }
    ).encode()


def webhook_headers(
    body: bytes,
    *,
    secret: str | None = None,
    timestamp: str | None = None,
    signature: str | None = None,
) -> dict[str, str]:
    """The sandbox's signature headers of ``body`` (now, the test secret)."""
    ts = timestamp if timestamp is not None else str(int(time.time()))
    sig = (
        signature
        if signature is not None
        else sign(secret or settings.SANDBOX_WEBHOOK_SECRET, ts, body)
    )
    return {"X-Sandbox-Signature": sig, "X-Sandbox-Timestamp": ts}


def post_webhook(
    client: Client,
    body: bytes,
    *,
    secret: str | None = None,
    timestamp: str | None = None,
    signature: str | None = None,
) -> Any:
    return client.post(
        WEBHOOK_URL,
        data=body,
        content_type="application/json",
        headers=webhook_headers(
            body, secret=secret, timestamp=timestamp, signature=signature
        ),
    )


def event(
    invoice: Invoice, type_: EventType, amount: Decimal | None = None, **kwargs: Any
) -> PaymentEvent:
    if amount is None and type_ in (EventType.PAID, EventType.HELD):
        amount = invoice.amount
    return PaymentEvent(
        provider=invoice.provider,
        dedupe_id=kwargs.pop("dedupe_id", f"test:{uuid.uuid4().hex}"),
        type=type_,
        invoice_ref=str(invoice.uuid),
        amount=amount,
        currency=kwargs.pop("currency", invoice.currency),
        **kwargs,
    )


@contextmanager
def record_signals() -> Iterator[SignalRecorder]:
    """The invoice signals sent inside the block (see :mod:`tests.signals`)."""
    with SignalRecorder() as log:
        yield log
