"""Sandbox webhooks: the webhook contract, and what only the sandbox's scheme
has (the timestamp it signs)."""

from __future__ import annotations

import json
import time

import pytest
from django.conf import settings

from django_payments_ru.events import EventType
from django_payments_ru.models import WebhookEvent
from django_payments_ru.providers.sandbox import Provider
from django_payments_ru.providers.sandbox.provider import (
    SIGNATURE_HEADER,
    TIMESTAMP_HEADER,
    sign,
)
from django_payments_ru.status import InvoiceStatus
from tests.contracts.webhooks import (
    MALFORMED_JSON,
    Webhook,
    WebhookContract,
    reserialised_json,
)
from tests.helpers import (
    make_invoice,
    payment_object,
    post_webhook,
    webhook_body,
    webhook_headers,
)

SECRET = settings.SANDBOX_WEBHOOK_SECRET
TOLERANCE = Provider.options["webhook_tolerance"].default

#: The payment object's status for each kind the contract asks for.
STATUSES = {
    EventType.PAID: "succeeded",
    EventType.FAILED: "failed",
    EventType.REFUNDED: "refunded",
}


def signed(
    body: bytes,
    *,
    payment_id: str = "",
    secret: str | None = None,
    timestamp: str | None = None,
) -> Webhook:
    headers = webhook_headers(body, secret=secret, timestamp=timestamp)
    return Webhook(
        body=body,
        headers=headers,
        payment_id=payment_id,
        signature=headers[SIGNATURE_HEADER],
    )


class TestSandboxWebhooks(WebhookContract):
    alias = "sandbox"
    secret = SECRET
    secret_option = "webhook_secret"
    previous_secrets_option = "previous_webhook_secrets"
    signs_raw_body = True  # HMAC over timestamp + "." + raw body
    ack_body = b'{"received": true}'

    def build(self, invoice, kind=EventType.PAID, *, secret=None, timestamp=None):
        extra = {}
        if kind is EventType.REFUNDED:
            extra["refunded_amount"] = str(invoice.amount)
        if kind is EventType.FAILED:
            extra["failure_reason"] = "card declined"
        payment = payment_object(invoice, STATUSES[kind], **extra)
        return signed(
            webhook_body(payment),
            payment_id=payment["id"],
            secret=secret,
            timestamp=timestamp,
        )

    def resign(self, webhook, signature):
        return webhook.but(headers={**webhook.headers, SIGNATURE_HEADER: signature})

    def tamper(self, webhook):
        data = json.loads(webhook.body)
        data["data"]["amount"] = "1.00"
        return webhook.but(body=json.dumps(data).encode())

    def reserialise(self, webhook):
        return reserialised_json(webhook)

    def stale(self, invoice, kind, *, ahead):
        # A few seconds past the window: the second the clock may tick between
        # signing and checking (and the whole seconds of the header) cannot
        # bring it back inside.
        offset = TOLERANCE + 5
        when = int(time.time()) + (offset if ahead else -offset)
        return self.build(invoice, kind, timestamp=str(when))

    def malformed(self, invoice):
        bodies = {
            **MALFORMED_JSON,
            # The sandbox refuses what it does not know (PayConnect keeps it).
            "unknown type": b'{"id": "evt_1", "type": "payment.unknown", "data": {}}',
            "no data": b'{"id": "evt_1", "type": "payment.succeeded"}',
        }
        return {label: signed(body) for label, body in bodies.items()}


# --- what only the sandbox's scheme has ------------------------------------------


@pytest.mark.django_db
def test_a_webhook_without_a_timestamp_is_refused(client):
    invoice = make_invoice("100.00")
    body = webhook_body(payment_object(invoice))
    response = post_webhook(client, body, timestamp="")
    assert (response.status_code, response.content) == (400, b"missing_timestamp")
    assert WebhookEvent.objects.count() == 0
    invoice.refresh_from_db()
    assert invoice.status == InvoiceStatus.CREATED


@pytest.mark.django_db
def test_a_signature_of_another_timestamp_is_refused(client):
    # The timestamp is signed: a valid signature replayed with a fresh
    # timestamp header does not match.
    invoice = make_invoice("100.00")
    body = webhook_body(payment_object(invoice))
    now = int(time.time())
    response = post_webhook(
        client, body, signature=sign(SECRET, str(now - 10), body), timestamp=str(now)
    )
    assert (response.status_code, response.content) == (400, b"invalid_signature")
    assert WebhookEvent.objects.count() == 0


def test_the_header_names_are_the_documented_ones():
    assert (SIGNATURE_HEADER, TIMESTAMP_HEADER) == (
        "X-Sandbox-Signature",
        "X-Sandbox-Timestamp",
    )
