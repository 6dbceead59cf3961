"""Whole flows: the PayConnect client (through the services) against its
emulator over HTTP, webhooks coming back signed to the live server. The flow
contract (:class:`tests.contracts.flows.FlowContract`) runs with PayConnect's
adapter (minor units, 30-minute sessions, idempotency keys); here is what only
PayConnect has: what a create carries, the return URL with the payment id
(§3.6), webhooks that arrive out of order or never, retried with the same
signature (§3.7)."""

from __future__ import annotations

import json
from datetime import timedelta
from decimal import Decimal
from typing import Any
from urllib.parse import parse_qs, urlsplit

import requests

from django_payments_ru.emulator.webhooks import retry_due
from django_payments_ru.models import WebhookEvent
from django_payments_ru.providers.payconnect.emulator import emulator
from django_payments_ru.providers.payconnect.provider import SIGNATURE_HEADER, sign
from django_payments_ru.status import InvoiceStatus
from tests.contracts.flows import FlowContract

from .adapter import PAYCONNECT
from .cases import SECRET, WEBHOOK_URL, event_body, signed_headers


class TestPayConnectFlows(FlowContract):
    adapter = PAYCONNECT

    def post_webhook(self, body: bytes) -> Any:
        return requests.post(
            f"{self.live_url}{WEBHOOK_URL}",
            data=body,
            headers=signed_headers(body),
            timeout=30,
        )

    def test_start_creates_the_payment_in_minor_units(self):
        invoice = self.create_invoice(amount="250.50", description="Two books")
        checkout = self.start(invoice)

        assert checkout.method == "GET"
        assert checkout.url == self.emulator_url(f"pay/s/{checkout.payment_id}/")
        assert checkout.payment_id.startswith("pay_") and len(checkout.payment_id) == 20
        emulated = self.emulated(invoice)
        assert emulated.amount == Decimal("250.50")
        assert emulator.payment_object(emulated)["amount"] == 25050
        assert emulated.data["metadata"] == {
            "invoice_id": str(invoice.uuid),
            "order_id": invoice.order_id,
        }
        assert emulated.data["customer"] == {"email": "customer@example.com"}
        assert len(emulator.calls("token")) == 1

    def test_the_customer_returns_with_the_payment_id(self):
        invoice = self.create_invoice()
        response = self.pay(invoice)

        # §3.6: back to return_url?payment_id=<id>, our return view.
        location = response.history[0].headers["Location"]
        parts = urlsplit(location)
        assert parts.path == f"/payments/return/{invoice.uuid}/"
        assert parse_qs(parts.query) == {"payment_id": [invoice.provider_payment_id]}
        self.assert_invoice(invoice, InvoiceStatus.PAID, charges=1)
        [delivery] = self.deliveries(invoice)
        assert delivery.last_status_code == 200
        assert delivery.headers[SIGNATURE_HEADER] == sign(
            SECRET, delivery.body.encode()
        )
        assert delivery.headers["User-Agent"] == "PayConnect-Webhooks/1.0"
        event = json.loads(delivery.body)
        assert event["data"]["object"]["status"] == "succeeded"
        assert event["data"]["object"]["amount"] == 10000
        row = WebhookEvent.objects.get(invoice=invoice)
        assert (row.status, row.dedupe_id) == ("processed", event["id"])

    def test_out_of_order_failed_after_succeeded_is_ignored(self):
        invoice = self.create_invoice()
        self.pay(invoice)
        self.assert_invoice(invoice, InvoiceStatus.PAID)
        payment = emulator.payment_object(self.emulated(invoice))
        # An older payment.failed, delivered late (§3.7: no ordering).
        stale = dict(payment, status="failed", failure_code="card_declined")
        body = event_body(stale, "payment.failed", created_at="2026-01-01T00:00:00Z")

        response = self.post_webhook(body)

        assert (response.status_code, response.text) == (200, "OK")
        self.assert_invoice(invoice, InvoiceStatus.PAID, charges=1)
        assert self.signals.count("invoice_failed", invoice) == 0
        row = WebhookEvent.objects.get(dedupe_id=json.loads(body)["id"])
        assert row.status == "ignored"

    def test_a_refund_webhook_overtaking_the_payment_webhook_records_both(self):
        # The payment's webhooks go nowhere at first: the refund's arrives first.
        self.set_emulator(webhook_urls=["http://127.0.0.1:9/unreachable"])
        invoice = self.create_invoice()
        self.press(self.open_checkout(self.start(invoice)), "pay", follow=False)
        emulated = self.emulated(invoice)
        refunded = dict(emulator.payment_object(emulated), refunded_amount=2500)

        response = self.post_webhook(event_body(refunded, "payment.refunded"))

        assert response.status_code == 200
        self.assert_invoice(
            invoice, InvoiceStatus.PARTIALLY_REFUNDED, charges=1, refunds=1
        )
        assert invoice.refunded_amount == Decimal("25.00")
        # The late payment.succeeded changes nothing.
        late = event_body(emulator.payment_object(emulated), "payment.succeeded")
        assert self.post_webhook(late).status_code == 200
        self.assert_invoice(
            invoice, InvoiceStatus.PARTIALLY_REFUNDED, charges=1, refunds=1
        )

    def test_a_retry_carries_the_same_body_and_signature_on_schedule(self):
        # The webhook goes to a URL that refuses it.
        self.set_emulator(webhook_urls=[f"{self.live_url}/payments/webhooks/nope/"])
        invoice = self.create_invoice()
        self.press(self.open_checkout(self.start(invoice)), "pay", follow=False)
        [delivery] = self.deliveries(invoice)
        assert (delivery.status, delivery.last_status_code) == ("failed", 404)

        # §3.7: a retry carries the same body and signature, on the schedule
        # 1 min, 5 min, 30 min, 2 h, 6 h, 12 h, 24 h.
        assert delivery.retry_schedule == [60, 300, 1800, 7200, 21600, 43200, 86400]
        assert retry_due(now=delivery.last_attempt_at + timedelta(seconds=59)) == []
        [again] = retry_due(now=delivery.last_attempt_at + timedelta(minutes=1))
        assert again.headers[SIGNATURE_HEADER] == delivery.headers[SIGNATURE_HEADER]
        assert again.body == delivery.body
        assert (again.status, again.attempts) == ("failed", 2)
        assert again.next_attempt_at == again.last_attempt_at + timedelta(minutes=5)
