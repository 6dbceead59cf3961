"""Love&Pay webhooks through the generic webhook view (Django's test client):
the webhook contract, and what only Love&Pay has: the reference's vector (8.2),
dedupe by x-webhook-id across retries (A-5), the three spellings of event names
(8.4, A-6), A-4's amounts, KYC and unknown events."""

from __future__ import annotations

import json
from typing import Any

import pytest

from django_payments_ru import services
from django_payments_ru.events import EventType
from django_payments_ru.models import Invoice, Payment, WebhookEvent
from django_payments_ru.providers.loveandpay.auth import (
    WEBHOOK_ID_HEADER,
    WEBHOOK_SIGNATURE_HEADER,
    sign_webhook,
)
from django_payments_ru.status import InvoiceStatus
from tests.contracts.webhooks import (
    MALFORMED_JSON,
    Webhook,
    WebhookContract,
    reserialised_json,
)

from .cases import (
    ALIAS,
    WEBHOOK_SECRET,
    WEBHOOK_URL,
    encode,
    event_body,
    payment_id,
    signed_headers,
    with_loveandpay,
)

pytestmark = pytest.mark.django_db

#: loveandpay.md 8.2: secret, 335-byte body, signature.
VECTOR_SECRET = "whsec_test"
VECTOR_BODY = (
    b'{"id":"evt_1","event":"invoice.paid","timestamp":"2026-01-15T10:30:00.000Z",'
    b'"data":{"id":"550e8400-e29b-41d4-a716-446655440000","invoiceNumber":'
    b'"INV-1705312200000-a1b2c3","amount":1500.5,"currency":"RUB","status":"PAID",'
    b'"paidAt":"2026-01-15T10:30:00.000Z","createdAt":"2026-01-15T10:00:00.000Z"},'
    b'"partnerId":"partner-1","retryCount":0}'
)
VECTOR_HEADER = (
    "sha256=ba995507aac24496dd0ea68ad5802bed9e5c923e51c9875016aef95eb2e7717a"
)


def signed(
    raw: bytes, invoice: Invoice | None = None, secret: str = WEBHOOK_SECRET
) -> Webhook:
    headers = signed_headers(raw, secret)
    return Webhook(
        body=raw,
        headers=headers,
        payment_id=payment_id(invoice) if invoice is not None else "",
        signature=headers[WEBHOOK_SIGNATURE_HEADER].removeprefix("sha256="),
    )


class TestLoveAndPayWebhooks(WebhookContract):
    alias = ALIAS
    secret = WEBHOOK_SECRET
    secret_option = "webhook_secret"
    previous_secrets_option = "previous_webhook_secrets"
    signs_raw_body = True  # 8.2: HMAC over the raw body
    ack_body = b'{"ok": true}'
    lacks = {
        "failed": "Love&Pay has no failed payments (loveandpay.md 7)",
        "refunded": "Love&Pay has no refunds (loveandpay.md 10, A-8)",
        "stale": "x-webhook-timestamp is not signed (loveandpay.md 8.2); a replay "
        "is recognised by its x-webhook-id",
    }

    def configure(self, settings):
        settings.PAYMENTS_RU = with_loveandpay(settings.PAYMENTS_RU)

    def verification_refusal(self, code):
        return 401, code.encode()  # 401 on a bad signature

    def build(self, invoice, kind=EventType.PAID, *, secret=None):
        assert kind is EventType.PAID
        return signed(encode(event_body(invoice)), invoice, secret or self.secret)

    def resign(self, webhook, signature):
        headers = dict(webhook.headers)
        if signature:
            headers[WEBHOOK_SIGNATURE_HEADER] = signature
        else:
            headers.pop(WEBHOOK_SIGNATURE_HEADER)
        return webhook.but(headers=headers, signature=signature or webhook.signature)

    def tamper(self, webhook):
        data = json.loads(webhook.body)
        data["data"]["amountKopecks"] = 1
        return webhook.but(body=encode(data))

    def reserialise(self, webhook):
        return reserialised_json(webhook)

    def malformed(self, invoice):
        bad = {label: signed(body) for label, body in MALFORMED_JSON.items()}
        no_id = event_body(invoice)
        del no_id["data"]["id"]
        no_data = event_body(invoice)
        no_data["data"] = "PAID"
        odd_amount = event_body(
            invoice, amountKopecks=None, amountRub=None, amount=1.005
        )
        bad["no invoice id"] = signed(encode(no_id))
        bad["data not an object"] = signed(encode(no_data))
        bad["three decimals"] = signed(encode(odd_amount))
        return bad


# --- Love&Pay only --------------------------------------------------------------


@pytest.fixture(autouse=True)
def loveandpay(settings: Any) -> None:
    settings.PAYMENTS_RU = with_loveandpay(settings.PAYMENTS_RU)


def post(client: Any, raw: bytes, **headers: str) -> Any:
    return client.post(
        WEBHOOK_URL,
        data=raw,
        content_type="application/json",
        headers={**signed_headers(raw), **headers},
    )


def make_invoice(**kwargs: Any) -> Invoice:
    kwargs.setdefault("customer_email", "customer@example.com")
    kwargs.setdefault("amount", "1500.50")
    return services.create_invoice(provider=ALIAS, **kwargs)


def test_the_reference_vector():
    assert len(VECTOR_BODY) == 335
    assert sign_webhook(VECTOR_SECRET, VECTOR_BODY) == VECTOR_HEADER


def test_the_reference_vector_is_accepted(client, settings):
    settings.PAYMENTS_RU = with_loveandpay(
        settings.PAYMENTS_RU, webhook_secret=VECTOR_SECRET
    )
    response = client.post(
        WEBHOOK_URL,
        data=VECTOR_BODY,
        content_type="application/json",
        headers={WEBHOOK_SIGNATURE_HEADER: VECTOR_HEADER, WEBHOOK_ID_HEADER: "evt_1"},
    )
    assert response.status_code == 200
    row = WebhookEvent.objects.get()
    assert (row.dedupe_id, row.event["type"], row.event["amount"]) == (
        "evt_1",
        "paid",
        "1500.50",
    )


def test_a_retry_with_a_higher_retry_count_is_one_event(
    client, django_capture_on_commit_callbacks
):
    invoice = make_invoice()
    first = event_body(invoice, event_id="evt_retry")
    retry = {**first, "retryCount": 3}
    with django_capture_on_commit_callbacks(execute=True):
        assert post(client, encode(first)).status_code == 200
        assert post(client, encode(retry)).status_code == 200
    row = WebhookEvent.objects.get()
    assert (row.deliveries, row.attempts) == (2, 1)
    invoice.refresh_from_db()
    assert invoice.status == InvoiceStatus.PAID
    assert Payment.objects.count() == 1


def test_the_webhook_id_header_wins_over_the_body_id(client):
    invoice = make_invoice()
    a = encode(event_body(invoice, event_id="evt_a"))
    b = encode(event_body(invoice, event_id="evt_b"))
    post(client, a, **{WEBHOOK_ID_HEADER: "wh_same"})
    post(client, b, **{WEBHOOK_ID_HEADER: "wh_same"})
    assert WebhookEvent.objects.get().dedupe_id == "wh_same"


@pytest.mark.parametrize(
    "name", ["invoice.paid", "INVOICE_PAID", "invoice_paid", "Invoice.Paid"]
)
def test_every_spelling_of_an_event_name(client, name):
    invoice = make_invoice()
    assert post(client, encode(event_body(invoice, name))).status_code == 200
    invoice.refresh_from_db()
    assert invoice.status == InvoiceStatus.PAID


def test_the_test_panel_body(client):
    """8.4: data.invoiceId, no id, no currency, X-Webhook-Event."""
    invoice = make_invoice()
    Invoice.objects.filter(pk=invoice.pk).update(provider_payment_id="lp-panel-1")
    raw = encode(
        {
            "event": "INVOICE_PAID",
            "timestamp": "2026-01-15T10:30:00.000Z",
            "data": {
                "invoiceId": "lp-panel-1",
                "invoiceNumber": "INV-1",
                "amount": 1500.5,
                "status": "PAID",
            },
        }
    )
    response = post(
        client, raw, **{WEBHOOK_ID_HEADER: "", "X-Webhook-Event": "INVOICE_PAID"}
    )
    assert response.status_code == 200
    invoice.refresh_from_db()
    assert invoice.status == InvoiceStatus.PAID


@pytest.mark.parametrize(
    "fields, paid",
    [
        ({"amountKopecks": 150050, "amountRub": 1.0, "amount": 1.0}, True),
        ({"amountKopecks": None, "amountRub": 1500.5, "amount": 150050}, True),
        ({"amountKopecks": None, "amountRub": None, "amount": 1500.5}, True),
        ({"amountKopecks": 100, "amountRub": 1500.5, "amount": 1500.5}, False),
    ],
    ids=["kopecks first", "then amountRub", "then amount", "kopecks disagree"],
)
def test_amounts_per_a4(client, fields, paid):
    invoice = make_invoice()
    post(client, encode(event_body(invoice, **fields)))
    invoice.refresh_from_db()
    assert (invoice.status == InvoiceStatus.PAID) is paid
    if not paid:
        assert invoice.needs_attention
        assert WebhookEvent.objects.get().status == "rejected"


def test_invoice_created_never_checks_money(client):
    """6: invoice.created may carry kopecks in amount; it is never compared."""
    invoice = make_invoice()
    raw = encode(
        event_body(
            invoice,
            "invoice.created",
            status="PENDING",
            amount=150050,
            amountRub=None,
            amountKopecks=None,
        )
    )
    assert post(client, raw).status_code == 200
    invoice.refresh_from_db()
    assert invoice.status == InvoiceStatus.PENDING
    assert not invoice.needs_attention


def test_a_kyc_event_is_recorded_without_a_status_change(client):
    invoice = make_invoice()
    raw = encode(
        {
            "id": "evt_kyc001",
            "type": "kyc.completed",
            "createdAt": "2026-01-15T10:30:00.000Z",
            "data": {
                "session": {"id": "kyc_1", "level": "basic", "status": "completed"}
            },
        }
    )
    assert post(client, raw).status_code == 200
    row = WebhookEvent.objects.get()
    assert (row.dedupe_id, row.event["type"]) == ("evt_kyc001", "info")
    invoice.refresh_from_db()
    assert invoice.status == InvoiceStatus.CREATED


@pytest.mark.parametrize("name", ["INVOICE_UPDATED", "transaction.completed", "x.y"])
def test_an_unknown_event_is_acknowledged(client, name):
    invoice = make_invoice()
    response = post(client, encode(event_body(invoice, name)))
    assert (response.status_code, response.json()) == (200, {"ok": True})
    invoice.refresh_from_db()
    assert invoice.status == InvoiceStatus.CREATED


def test_an_expiry_after_the_payment_keeps_it_paid(client):
    invoice = make_invoice()
    post(client, encode(event_body(invoice)))
    post(client, encode(event_body(invoice, "invoice.expired", status="EXPIRED")))
    invoice.refresh_from_db()
    assert invoice.status == InvoiceStatus.PAID


def test_a_signature_without_the_prefix_is_refused(client):
    invoice = make_invoice()
    raw = encode(event_body(invoice))
    bare = sign_webhook(WEBHOOK_SECRET, raw).removeprefix("sha256=")
    response = post(client, raw, **{WEBHOOK_SIGNATURE_HEADER: bare})
    assert response.status_code == 401
    assert WebhookEvent.objects.count() == 0
