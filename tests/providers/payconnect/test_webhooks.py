"""PayConnect webhooks through the generic webhook view (Django's test client):
the webhook contract, and what only PayConnect has: the reference's test
vector, its header, its status mapping and its ordering rules."""

from __future__ import annotations

import json
from decimal import Decimal
from typing import Any

import pytest
from django.test import Client

from django_payments_ru import services
from django_payments_ru.events import EventType
from django_payments_ru.models import Invoice, Payment, WebhookEvent
from django_payments_ru.money import to_minor
from django_payments_ru.providers.payconnect.provider import (
    EVENT_ID_HEADER,
    SIGNATURE_HEADER,
    sign,
)
from django_payments_ru.registry import get_provider
from django_payments_ru.status import InvoiceStatus
from tests.contracts.webhooks import (
    MALFORMED_JSON,
    Webhook,
    WebhookContract,
    reserialised_json,
)
from tests.helpers import event as helper_event

from .cases import (
    ALIAS,
    SECRET,
    WEBHOOK_URL,
    event_body,
    fixture_bytes,
    with_payconnect,
)

pytestmark = pytest.mark.django_db

VECTOR_KEY = "sk_test_123"
VECTOR_SIGNATURE = "2f551c570cf94bdb523010b21c70cf863fcee51d3eba504515ca26c03d93ce5d"


@pytest.fixture(autouse=True)
def payconnect(settings: Any) -> None:
    settings.PAYMENTS_RU = with_payconnect(settings.PAYMENTS_RU)


def post(client: Client, body: bytes, signature: str | None = None) -> Any:
    headers = (
        {}
        if signature == ""
        else {"HTTP_X_PAYCONNECT_SIGNATURE": signature or sign(SECRET, body)}
    )
    return client.post(
        WEBHOOK_URL, data=body, content_type="application/json", **headers
    )


def make_invoice(**kwargs: Any) -> Invoice:
    kwargs.setdefault("customer_email", "customer@example.com")
    return services.create_invoice(provider="payconnect", amount="10.00", **kwargs)


def payment(invoice: Invoice, status: str = "succeeded", **extra: Any) -> dict:
    """The payment object of ``invoice`` (F-7: the amount in minor units)."""
    data = json.loads(fixture_bytes("payment_object.json"))
    data.update(
        id=invoice.provider_payment_id or f"pay_{invoice.uuid.hex[:16]}",
        status=status,
        amount=to_minor(invoice.amount, invoice.currency),
        metadata={"invoice_id": str(invoice.uuid)},
        paid_at="2026-01-15T10:30:00Z" if status != "failed" else None,
    )
    data.update(extra)
    return data


#: The type and payment status announcing each kind the contract asks for.
KINDS = {
    EventType.PAID: ("payment.succeeded", "succeeded"),
    EventType.FAILED: ("payment.failed", "failed"),
    EventType.REFUNDED: ("payment.refunded", "refunded"),
}


def signed(body: bytes, payment_id: str = "", secret: str = SECRET) -> Webhook:
    signature = sign(secret, body)
    event_id = json.loads(body).get("id", "") if body.startswith(b"{") else ""
    return Webhook(
        body=body,
        headers={SIGNATURE_HEADER: signature, EVENT_ID_HEADER: str(event_id)},
        payment_id=payment_id,
        signature=signature,
    )


class TestPayConnectWebhooks(WebhookContract):
    alias = ALIAS
    secret = SECRET
    secret_option = "secret_key"
    previous_secrets_option = "previous_secret_keys"
    signs_raw_body = True  # F-9, §3.7: HMAC of the raw body
    amount = "10.00"
    ack_body = b"OK"  # F-10
    lacks = {
        "stale": "PayConnect signs no timestamp (F-9, §3.7); a replay is "
        "recognised by its event id",
    }

    def configure(self, settings):
        settings.PAYMENTS_RU = with_payconnect(settings.PAYMENTS_RU)

    def verification_refusal(self, code):
        return 400, b"Invalid signature"  # F-10, whatever the reason

    def build(self, invoice, kind=EventType.PAID, *, secret=None):
        type_, status = KINDS[kind]
        extra: dict[str, Any] = {}
        if kind is EventType.FAILED:
            extra["failure_code"] = "card_declined"
        if kind is EventType.REFUNDED:
            extra["refunded_amount"] = to_minor(invoice.amount, invoice.currency)
        data = payment(invoice, status, **extra)
        return signed(event_body(data, type_), data["id"], secret or SECRET)

    def resign(self, webhook, signature):
        return webhook.but(headers={**webhook.headers, SIGNATURE_HEADER: signature})

    def tamper(self, webhook):
        data = json.loads(webhook.body)
        data["data"]["object"]["amount"] = 100
        return webhook.but(body=json.dumps(data, separators=(",", ":")).encode())

    def reserialise(self, webhook):
        return reserialised_json(webhook)

    def malformed(self, invoice):
        bodies = {
            **MALFORMED_JSON,
            "no data": b'{"id":"evt_1","type":"payment.succeeded"}',
            "no payment id": event_body({"status": "succeeded"}, "payment.succeeded"),
        }
        return {label: signed(body) for label, body in bodies.items()}


# --- what only PayConnect has -------------------------------------------------------


def test_the_reference_test_vector_is_reproduced_exactly():
    body = fixture_bytes("test_vector_body.json")
    assert len(body) == 416
    assert sign(VECTOR_KEY, body) == VECTOR_SIGNATURE


@pytest.mark.parametrize("previous", [False, True])
def test_the_test_vector_is_accepted_and_pays(client, settings, previous):
    # The vector's key as the secret key, or as a previous key (a rotation).
    options = (
        {"secret_key": "sk_test_new", "previous_secret_keys": [VECTOR_KEY]}
        if previous
        else {"secret_key": VECTOR_KEY}
    )
    settings.PAYMENTS_RU = with_payconnect(settings.PAYMENTS_RU, **options)
    invoice = make_invoice(order_id="12345")
    Invoice.objects.filter(pk=invoice.pk).update(provider_payment_id="pay_0001")

    response = post(client, fixture_bytes("test_vector_body.json"), VECTOR_SIGNATURE)

    assert (response.status_code, response.content) == (200, b"OK")
    invoice.refresh_from_db()
    assert invoice.status == InvoiceStatus.PAID
    assert invoice.paid_amount == Decimal("10.00")
    row = WebhookEvent.objects.get()
    assert (row.dedupe_id, row.status) == ("evt_0001", "processed")


def test_an_uppercase_signature_is_the_same_signature(client):
    invoice = make_invoice()
    body = event_body(payment(invoice), "payment.succeeded")
    assert post(client, body, sign(SECRET, body).upper()).status_code == 200


def test_session_expired_becomes_expired_and_a_decline_failed():
    provider = get_provider("payconnect")
    invoice = make_invoice()

    class Request:
        def __init__(self, body: bytes) -> None:
            self.body = body

    expired = payment(invoice, "failed", failure_code="session_expired")
    declined = payment(
        invoice,
        "failed",
        failure_code="card_declined",
        failure_message="The card was declined.",
    )
    [one] = provider.parse_webhook(Request(event_body(expired, "payment.failed")))
    [two] = provider.parse_webhook(Request(event_body(declined, "payment.failed")))
    assert (one.type, two.type) == (EventType.EXPIRED, EventType.FAILED)
    assert two.reason == "The card was declined."
    assert one.invoice_ref == str(invoice.uuid)


def test_an_older_refund_event_never_lowers_the_refunded_total(client):
    invoice = make_invoice()
    post(client, event_body(payment(invoice), "payment.succeeded"))
    full = payment(invoice, "refunded", refunded_amount=1000)
    partial = payment(invoice, "succeeded", refunded_amount=300)
    post(client, event_body(full, "payment.refunded"))
    post(client, event_body(partial, "payment.refunded"))  # older, late
    invoice.refresh_from_db()
    assert invoice.status == InvoiceStatus.REFUNDED
    assert invoice.refunded_amount == Decimal("10.00")
    assert Payment.objects.filter(kind="refund").count() == 1


def test_a_late_failure_of_an_earlier_attempt_does_not_fail_the_new_one(client):
    invoice = make_invoice()
    services.apply_event(
        helper_event(invoice, EventType.PENDING, provider_payment_id="pay_second")
    )
    Invoice.objects.filter(pk=invoice.pk).update(provider_payment_id="pay_second")
    before = Invoice.objects.filter(pk=invoice.pk).values().get()
    old = payment(invoice, "failed", id="pay_first", failure_code="card_declined")
    assert post(client, event_body(old, "payment.failed")).status_code == 200
    # Stored (the services decide it is stale, DESIGN "state machine") and
    # never applied: the invoice's row is as it was.
    row = WebhookEvent.objects.get()
    assert row.status == WebhookEvent.Status.IGNORED
    assert Invoice.objects.filter(pk=invoice.pk).values().get() == before
    assert before["status"] == InvoiceStatus.PENDING
    assert Payment.objects.count() == 0


def test_an_unknown_type_is_acknowledged_and_never_applied(client):
    invoice = make_invoice()
    body = event_body(payment(invoice), "payment.disputed")
    assert post(client, body).status_code == 200
    assert WebhookEvent.objects.get().status == "ignored"
    invoice.refresh_from_db()
    assert invoice.status == InvoiceStatus.CREATED


def test_the_signature_header_name_is_the_documented_one():
    assert SIGNATURE_HEADER == "x-payconnect-signature"
