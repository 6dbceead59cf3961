"""PayConnect webhooks through the generic webhook view (Django's test client):
the reference's test vector, forgeries refused with nothing written, rotation,
parsing and out-of-order events."""

from __future__ import annotations

import json
from decimal import Decimal
from typing import Any

import pytest
from django.test import Client

from django_payments_ru import services
from django_payments_ru.events import EventType
from django_payments_ru.models import Invoice, Payment, WebhookEvent
from django_payments_ru.providers.payconnect.provider import (
    SIGNATURE_HEADER,
    sign,
)
from django_payments_ru.registry import get_provider
from django_payments_ru.status import InvoiceStatus
from tests.helpers import event as helper_event

from .cases import SECRET, WEBHOOK_URL, event_body, fixture_bytes, with_payconnect

pytestmark = pytest.mark.django_db(transaction=True)

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


def counts() -> tuple[int, int, int]:
    return (
        WebhookEvent.objects.count(),
        Payment.objects.count(),
        Invoice.objects.exclude(status=InvoiceStatus.CREATED).count(),
    )


def make_invoice(**kwargs: Any) -> Invoice:
    kwargs.setdefault("customer_email", "customer@example.com")
    return services.create_invoice(provider="payconnect", amount="10.00", **kwargs)


def payment(invoice: Invoice, status: str = "succeeded", **extra: Any) -> dict:
    data = json.loads(fixture_bytes("payment_object.json"))
    data.update(
        id=invoice.provider_payment_id or "pay_0001",
        status=status,
        amount=1000,
        metadata={"invoice_id": str(invoice.uuid)},
        paid_at="2026-01-15T10:30:00Z" if status != "failed" else None,
    )
    data.update(extra)
    return data


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


@pytest.mark.parametrize(
    "forgery",
    ["tampered_body", "wrong_key", "reserialised_json", "missing", "garbage", "empty"],
)
def test_forgeries_are_refused_with_nothing_written(client, forgery):
    invoice = make_invoice()
    body = event_body(payment(invoice), "payment.succeeded")
    signature = sign(SECRET, body)
    sent = body
    if forgery == "tampered_body":
        sent = body.replace(b'"amount":1000', b'"amount":100')
    elif forgery == "wrong_key":
        signature = sign("sk_test_someone_else", body)
    elif forgery == "reserialised_json":
        # The same content, spelled differently: the signature covers bytes.
        sent = json.dumps(json.loads(body), indent=2, sort_keys=True).encode()
    elif forgery == "missing":
        signature = ""
    elif forgery == "garbage":
        signature = "deadbeef"
    elif forgery == "empty":
        sent = b""
    assert forgery in ("missing", "garbage", "wrong_key") or sent != body
    before = counts()

    response = post(client, sent, signature)

    assert response.status_code == 400
    if forgery != "missing":
        assert response.content == b"Invalid signature"  # F-10
    assert counts() == before


def test_an_uppercase_signature_is_the_same_signature(client):
    invoice = make_invoice()
    body = event_body(payment(invoice), "payment.succeeded")
    assert post(client, body, sign(SECRET, body).upper()).status_code == 200


def test_a_redelivered_event_is_stored_and_applied_once(client):
    invoice = make_invoice()
    body = event_body(payment(invoice), "payment.succeeded", event_id="evt_dup")
    assert post(client, body).status_code == post(client, body).status_code == 200
    row = WebhookEvent.objects.get()
    assert (row.deliveries, row.attempts) == (2, 1)
    assert Payment.objects.count() == 1


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


def test_out_of_order_failed_after_succeeded_keeps_paid(client):
    invoice = make_invoice()
    post(client, event_body(payment(invoice), "payment.succeeded"))
    late = event_body(
        payment(invoice, "failed", failure_code="card_declined"),
        "payment.failed",
        created_at="2026-01-15T10:25:00Z",
    )
    assert post(client, late).status_code == 200
    invoice.refresh_from_db()
    assert invoice.status == InvoiceStatus.PAID
    assert WebhookEvent.objects.filter(status="ignored").count() == 1


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
    old = payment(invoice, "failed", id="pay_first", failure_code="card_declined")
    assert post(client, event_body(old, "payment.failed")).status_code == 200
    invoice.refresh_from_db()
    assert invoice.status == InvoiceStatus.PENDING
    assert WebhookEvent.objects.get().event_type == EventType.INFO


def test_an_unknown_type_is_acknowledged_and_never_applied(client):
    invoice = make_invoice()
    body = event_body(payment(invoice), "payment.disputed")
    assert post(client, body).status_code == 200
    assert WebhookEvent.objects.get().status == "ignored"
    invoice.refresh_from_db()
    assert invoice.status == InvoiceStatus.CREATED


@pytest.mark.parametrize(
    "body", [b"not json", b"{}", b"[]", b'{"id":"evt_1","type":"payment.succeeded"}']
)
def test_signed_but_malformed_is_a_400_and_writes_nothing(client, body):
    response = post(client, body)
    assert response.status_code == 400
    assert WebhookEvent.objects.count() == 0


def test_the_signature_header_name_is_the_documented_one():
    assert SIGNATURE_HEADER == "x-payconnect-signature"
