"""Whole flows: the PayConnect client (through the services) against its
emulator over HTTP, webhooks coming back signed to the live server."""

from __future__ import annotations

import json
from datetime import timedelta
from decimal import Decimal
from urllib.parse import parse_qs, urlsplit

from django_payments_ru import services
from django_payments_ru.emulator import clock
from django_payments_ru.emulator.webhooks import retry_due
from django_payments_ru.models import WebhookEvent
from django_payments_ru.providers.payconnect import Provider
from django_payments_ru.providers.payconnect.emulator import emulator
from django_payments_ru.providers.payconnect.provider import SIGNATURE_HEADER, sign
from django_payments_ru.status import InvoiceStatus

from .cases import SECRET, PayConnectCase, event_body


class TestPayConnectFlows(PayConnectCase):
    def test_start_creates_the_payment_in_minor_units(self):
        invoice = self.create_invoice(amount="250.50", description="Two books")
        checkout = self.start(invoice)

        assert checkout.method == "GET"
        assert checkout.url == self.emulator_url(f"pay/s/{checkout.payment_id}/")
        assert checkout.payment_id.startswith("pay_") and len(checkout.payment_id) == 20
        invoice.refresh_from_db()
        assert invoice.status == InvoiceStatus.PENDING
        emulated = self.emulated(invoice)
        assert emulated.amount == Decimal("250.50")
        assert emulated.data["metadata"] == {
            "invoice_id": str(invoice.uuid),
            "order_id": invoice.order_id,
        }
        assert emulated.data["customer"] == {"email": "customer@example.com"}
        assert emulated.expires_at == checkout.expires_at
        assert emulated.expires_at - emulated.created_at == timedelta(minutes=30)
        assert invoice.expires_at == checkout.expires_at
        [create] = emulator.calls("create")
        [claim] = invoice.operations.filter(kind="start")
        assert create.idempotency_key == claim.key
        assert len(emulator.calls("token")) == 1

        page = self.open_checkout(checkout)
        assert page.actions == ["pay", "decline", "expire"]
        assert "250.50" in page.text and "Two books" in page.text

    def test_pay(self):
        invoice = self.create_invoice()
        response = self.pay(invoice)

        # §3.6: back to return_url?payment_id=<id>, our return view.
        location = response.history[0].headers["Location"]
        parts = urlsplit(location)
        assert parts.path == f"/payments/return/{invoice.uuid}/"
        assert parse_qs(parts.query) == {"payment_id": [invoice.provider_payment_id]}
        self.assert_invoice(invoice, InvoiceStatus.PAID, charges=1, refunds=0)
        assert invoice.paid_amount == Decimal("100.00")
        assert self.signals.count("invoice_paid", invoice) == 1
        assert self.event_types(invoice) == ["payment.succeeded"]
        self.assert_delivered(invoice)
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

    def test_decline(self):
        invoice = self.create_invoice()
        self.pay(invoice, "decline")

        self.assert_invoice(invoice, InvoiceStatus.FAILED, charges=0)
        assert self.signals.count("invoice_failed", invoice) == 1
        emulated = self.emulated(invoice)
        assert (emulated.status, emulated.data["failure_code"]) == (
            "failed",
            "card_declined",
        )
        assert self.event_types(invoice) == ["payment.failed"]

    def test_a_declined_invoice_is_paid_in_a_new_attempt_with_a_new_key(self):
        invoice = self.create_invoice()
        self.pay(invoice, "decline")
        self.assert_invoice(invoice, InvoiceStatus.FAILED)
        first = invoice.provider_payment_id

        self.pay(invoice, "pay")

        self.assert_invoice(invoice, InvoiceStatus.PAID, charges=1)
        assert invoice.provider_payment_id != first
        keys = [c.idempotency_key for c in emulator.calls("create")]
        claims = [op.key for op in invoice.operations.filter(kind="start")]
        assert keys == claims
        assert len(set(keys)) == 2

    def test_expire_button_is_a_session_expired_failure(self):
        invoice = self.create_invoice()
        self.pay(invoice, "expire")

        self.assert_invoice(invoice, InvoiceStatus.EXPIRED)
        assert self.event_types(invoice) == ["payment.failed"]
        assert self.emulated(invoice).data["failure_code"] == "session_expired"
        assert self.signals.count("invoice_failed", invoice) == 0

    def test_a_session_left_for_30_minutes_expires(self, monkeypatch):
        invoice = self.create_invoice()
        checkout = self.start(invoice)
        later = clock.now() + timedelta(minutes=30, seconds=1)
        monkeypatch.setattr(clock, "now", lambda: later)
        monkeypatch.setattr(Provider, "clock", staticmethod(later.timestamp))

        page = self.open_checkout(checkout)

        assert (page.actions, page.status) == ([], "failed")
        assert "Expired" in page.text
        self.assert_invoice(invoice, InvoiceStatus.EXPIRED)
        assert self.event_types(invoice) == ["payment.failed"]

    def test_partial_then_full_refund(self):
        invoice = self.create_invoice(amount="100.00")
        self.pay(invoice)
        self.assert_invoice(invoice, InvoiceStatus.PAID)

        services.refund_invoice(invoice, Decimal("30.00"))

        self.assert_invoice(
            invoice, InvoiceStatus.PARTIALLY_REFUNDED, refunds=1, refunded="30.00"
        )
        emulated = self.emulated(invoice)
        assert (emulated.status, emulated.refunded_amount) == (
            "succeeded",
            Decimal("30.00"),
        )

        services.refund_invoice(invoice)  # the rest

        self.assert_invoice(
            invoice, InvoiceStatus.REFUNDED, charges=1, refunds=2, refunded="100.00"
        )
        emulated.refresh_from_db()
        assert emulated.status == "refunded"
        assert [r["amount"] for r in emulated.data["refunds"]] == [3000, 7000]
        refunds = self.deliveries(invoice, event_type="payment.refunded")
        totals = [
            json.loads(d.body)["data"]["object"]["refunded_amount"] for d in refunds
        ]
        assert totals == [3000, 10000]
        self.assert_delivered(invoice)
        # Neither the synchronous answer nor the webhook counted a refund twice.
        assert sorted(p.amount for p in invoice.payments.filter(kind="refund")) == [
            Decimal("30.00"),
            Decimal("70.00"),
        ]
        assert self.signals.count("invoice_refunded", invoice) == 2
        # Each refund was claimed first and sent with its claim's key, and both
        # claims are settled.
        claims = list(invoice.operations.filter(kind="refund"))
        keys = [c.idempotency_key for c in emulator.calls("refund")]
        assert keys == [claim.key for claim in claims]
        assert [(c.amount, c.state) for c in claims] == [
            (Decimal("30.00"), "confirmed"),
            (Decimal("70.00"), "confirmed"),
        ]

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

    def test_refresh_reads_the_status_when_the_webhook_is_lost(self):
        # The webhook goes to a URL that refuses it: only a status read can tell
        # the invoice it is paid.
        self.set_emulator(webhook_urls=[f"{self.live_url}/payments/webhooks/nope/"])
        invoice = self.create_invoice()
        self.press(self.open_checkout(self.start(invoice)), "pay", follow=False)
        [delivery] = self.deliveries(invoice)
        assert (delivery.status, delivery.last_status_code) == ("failed", 404)
        invoice.refresh_from_db()
        assert invoice.status == InvoiceStatus.PENDING

        services.refresh_invoice(invoice)

        self.assert_invoice(invoice, InvoiceStatus.PAID, charges=1)
        assert self.signals.count("invoice_paid", invoice) == 1
        # §3.7: a retry carries the same body and signature, on the schedule
        # 1 min, 5 min, 30 min, 2 h, 6 h, 12 h, 24 h.
        assert delivery.retry_schedule == [60, 300, 1800, 7200, 21600, 43200, 86400]
        [again] = retry_due(now=delivery.last_attempt_at + timedelta(minutes=1))
        assert again.headers[SIGNATURE_HEADER] == delivery.headers[SIGNATURE_HEADER]
        assert again.body == delivery.body
        assert again.next_attempt_at == again.last_attempt_at + timedelta(minutes=5)
