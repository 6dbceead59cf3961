"""The sandbox client (through the services) against its emulator, over HTTP."""

from __future__ import annotations

import json
import time
from datetime import timedelta
from decimal import Decimal

import pytest

from django_payments_ru import services
from django_payments_ru.emulator import clock
from django_payments_ru.emulator.models import EmulatedPayment, WebhookDelivery
from django_payments_ru.emulator.webhooks import retry_due
from django_payments_ru.exceptions import InvalidAmount, InvalidOperation
from django_payments_ru.models import WebhookEvent
from django_payments_ru.providers.sandbox import Provider
from django_payments_ru.providers.sandbox.provider import (
    EVENT_ID_HEADER,
    SIGNATURE_HEADER,
    TIMESTAMP_HEADER,
    sign,
)
from django_payments_ru.status import InvoiceStatus
from tests.emulator_cases import EmulatorCase

SECRET = "whsec_sandbox_canary_9b7e"


class TestSandboxFlows(EmulatorCase):
    alias = "sandbox"

    def test_start_gives_the_pay_page(self):
        invoice = self.create_invoice(amount="250.50", description="Two books")
        checkout = self.start(invoice)

        assert checkout.method == "GET"
        assert checkout.url.startswith(self.emulator_url("pay/"))
        invoice.refresh_from_db()
        assert invoice.status == InvoiceStatus.PENDING
        assert invoice.provider_payment_id == checkout.payment_id
        emulated = self.emulated(invoice)
        assert emulated.status == "pending"
        assert emulated.amount == Decimal("250.50")
        assert emulated.reference == str(invoice.uuid)
        assert emulated.webhook_url == f"{self.live_url}/payments/webhooks/sandbox/"
        assert emulated.expires_at == checkout.expires_at
        assert (emulated.expires_at - emulated.created_at) == timedelta(minutes=30)

        page = self.open_checkout(checkout)
        assert page.actions == ["pay", "decline", "expire"]
        assert page.status == "pending"
        assert "250.50" in page.text and "RUB" in page.text
        assert "Two books" in page.text
        assert "no real money" in page.text

    def test_pay(self):
        invoice = self.create_invoice()
        page = self.open_checkout(self.start(invoice))

        response = self.press(page, "pay")

        # Back through the return view to its page (the invoice has no
        # return_url of its own).
        assert response.status_code == 200
        assert response.history[0].status_code == 303
        assert response.history[0].headers["Location"] == (
            f"{self.live_url}/payments/return/{invoice.uuid}/"
        )
        self.assert_invoice(invoice, InvoiceStatus.PAID, charges=1, refunds=0)
        assert invoice.paid_amount == Decimal("100.00")
        assert self.signals.count("invoice_paid", invoice) == 1
        assert self.event_types(invoice) == ["payment.succeeded"]
        self.assert_delivered(invoice)
        assert WebhookEvent.objects.get(invoice=invoice).status == "processed"
        assert self.emulated(invoice).status == "succeeded"

        # The page now offers nothing more; a replayed press changes nothing.
        again = self.open_checkout(invoice.get_checkout(), page.session)
        assert again.actions == []
        assert again.status == "succeeded"
        refused = page.session.post(
            page.url,
            data={"csrfmiddlewaretoken": page.csrf_token, "action": "pay"},
            timeout=30,
        )
        assert refused.status_code == 409
        assert "no longer waiting" in refused.text
        assert self.event_types(invoice) == ["payment.succeeded"]
        assert self.signals.count("invoice_paid", invoice) == 1

    def test_the_webhook_is_signed(self):
        invoice = self.create_invoice()
        self.pay(invoice)

        [delivery] = self.deliveries(invoice)
        body = delivery.body.encode()
        event = json.loads(body)
        assert event["id"].startswith("evt_")
        assert event["type"] == "payment.succeeded"
        assert event["data"]["id"] == invoice.provider_payment_id
        assert event["data"]["amount"] == "100.00"
        assert event["data"]["refunded_amount"] == "0.00"
        assert delivery.headers[EVENT_ID_HEADER] == event["id"]
        assert abs(int(delivery.headers[TIMESTAMP_HEADER]) - time.time()) < 60
        assert delivery.headers[SIGNATURE_HEADER] == sign(
            SECRET, delivery.headers[TIMESTAMP_HEADER], body
        )
        assert (delivery.status, delivery.attempts, delivery.last_status_code) == (
            "delivered",
            1,
            200,
        )

    def test_decline(self):
        invoice = self.create_invoice()
        self.pay(invoice, "decline")

        self.assert_invoice(invoice, InvoiceStatus.FAILED, charges=0)
        assert self.signals.count("invoice_failed", invoice) == 1
        assert self.signals.count("invoice_paid", invoice) == 0
        emulated = self.emulated(invoice)
        assert emulated.status == "failed"
        assert emulated.data["failure_reason"] == "declined by the customer"
        assert self.event_types(invoice) == ["payment.failed"]

    def test_a_declined_invoice_can_be_paid_in_a_new_attempt(self):
        invoice = self.create_invoice()
        self.pay(invoice, "decline")
        self.assert_invoice(invoice, InvoiceStatus.FAILED)
        first = invoice.provider_payment_id

        self.pay(invoice, "pay")

        self.assert_invoice(invoice, InvoiceStatus.PAID, charges=1)
        assert invoice.provider_payment_id != first
        assert EmulatedPayment.objects.filter(reference=str(invoice.uuid)).count() == 2

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
        assert (emulated.status, emulated.refunded_amount) == (
            "refunded",
            Decimal("100.00"),
        )
        assert [r["amount"] for r in emulated.data["refunds"]] == ["30.00", "70.00"]
        # One webhook per refund, carrying the running total; neither the
        # webhook nor the API answer counted a refund twice.
        refunds = self.deliveries(invoice, event_type="payment.refunded")
        totals = [json.loads(d.body)["data"]["refunded_amount"] for d in refunds]
        assert totals == ["30.00", "100.00"]
        self.assert_delivered(invoice)
        assert sorted(p.amount for p in invoice.payments.filter(kind="refund")) == [
            Decimal("30.00"),
            Decimal("70.00"),
        ]
        assert self.signals.count("invoice_refunded", invoice) == 2

    def test_refund_more_than_left_is_refused_locally(self):
        invoice = self.create_invoice()
        self.pay(invoice)
        self.assert_invoice(invoice, InvoiceStatus.PAID)
        services.refund_invoice(invoice, "60.00")

        with pytest.raises(InvalidAmount) as caught:
            services.refund_invoice(invoice, "50.00")

        assert caught.value.field == "amount"
        self.assert_invoice(
            invoice, InvoiceStatus.PARTIALLY_REFUNDED, refunds=1, refunded="60.00"
        )
        assert self.emulated(invoice).refunded_amount == Decimal("60.00")

    def test_cancel(self):
        invoice = self.create_invoice()
        checkout = self.start(invoice)

        services.cancel_invoice(invoice)

        self.assert_invoice(invoice, InvoiceStatus.CANCELLED, charges=0)
        assert self.emulated(invoice).status == "cancelled"
        assert self.event_types(invoice) == ["payment.cancelled"]
        self.assert_delivered(invoice)
        # The page no longer takes the payment.
        page = self.open_checkout(checkout)
        assert page.actions == []
        assert page.status == "cancelled"

    def test_cancel_after_payment_is_refused(self):
        invoice = self.create_invoice()
        self.pay(invoice)
        self.assert_invoice(invoice, InvoiceStatus.PAID)
        with pytest.raises(InvalidOperation):
            services.cancel_invoice(invoice)

    def test_refresh_reads_the_status_when_the_webhook_is_lost(self):
        # The emulator signs with a secret the client does not know: the webhook
        # is refused, so only a status read can tell the invoice it is paid.
        self.set_emulator(webhook_secret="whsec_someone_else")
        invoice = self.create_invoice()
        self.press(self.open_checkout(self.start(invoice)), "pay", follow=False)

        [delivery] = self.deliveries(invoice)
        assert (delivery.status, delivery.last_status_code) == ("failed", 400)
        invoice.refresh_from_db()
        assert invoice.status == InvoiceStatus.PENDING

        services.refresh_invoice(invoice)

        self.assert_invoice(invoice, InvoiceStatus.PAID, charges=1)
        assert self.signals.count("invoice_paid", invoice) == 1

    def test_the_return_view_asks_the_emulator(self):
        self.set_emulator(webhook_secret="whsec_someone_else")
        invoice = self.create_invoice()

        response = self.pay(invoice)  # follows the redirect to the return view

        assert response.url == f"{self.live_url}/payments/return/{invoice.uuid}/"
        self.assert_invoice(invoice, InvoiceStatus.PAID, charges=1)

    def test_a_failed_webhook_is_retried_on_schedule(self):
        self.set_emulator(webhook_secret="whsec_someone_else")
        invoice = self.create_invoice()
        self.press(self.open_checkout(self.start(invoice)), "pay", follow=False)
        [delivery] = self.deliveries(invoice)
        first = delivery.last_attempt_at
        assert delivery.next_attempt_at == first + timedelta(minutes=1)

        # Not due yet.
        assert retry_due(now=first + timedelta(seconds=59)) == []
        # Due, still refused: the next one in 5 minutes.
        [again] = retry_due(now=first + timedelta(seconds=61))
        assert (again.status, again.attempts) == ("failed", 2)
        assert again.next_attempt_at == first + timedelta(seconds=61 + 300)

        # The secrets agree again: the retry is signed afresh and accepted.
        self.set_emulator(webhook_secret=SECRET)
        [done] = retry_due(now=first + timedelta(minutes=10))
        assert (done.status, done.attempts, done.next_attempt_at) == (
            "delivered",
            3,
            None,
        )
        self.assert_invoice(invoice, InvoiceStatus.PAID, charges=1)
        assert done.body == delivery.body  # the same event, re-signed
        assert done.headers[SIGNATURE_HEADER] != delivery.headers[SIGNATURE_HEADER]

    def test_expire_button(self):
        invoice = self.create_invoice()
        self.pay(invoice, "expire")

        self.assert_invoice(invoice, InvoiceStatus.EXPIRED)
        assert self.event_types(invoice) == ["payment.expired"]

    def test_a_payment_opened_after_it_expired_expires(self, monkeypatch):
        invoice = self.create_invoice()
        checkout = self.start(invoice)
        later = clock.now() + timedelta(minutes=31)
        # Both sides' clocks move on: the emulator's and the client's (which
        # checks the webhook's timestamp).
        monkeypatch.setattr(clock, "now", lambda: later)
        monkeypatch.setattr(Provider, "clock", staticmethod(lambda: later.timestamp()))

        page = self.open_checkout(checkout)

        assert page.actions == []
        assert page.status == "expired"
        self.assert_invoice(invoice, InvoiceStatus.EXPIRED)
        assert self.event_types(invoice) == ["payment.expired"]
        # Reading it again sends nothing more.
        self.open_checkout(checkout)
        assert self.event_types(invoice) == ["payment.expired"]

    def test_a_payment_without_a_return_url_ends_on_the_done_page(self):
        invoice = self.create_invoice()
        checkout = self.start(invoice)
        EmulatedPayment.objects.filter(external_id=checkout.payment_id).update(
            return_url=""
        )

        response = self.press(self.open_checkout(checkout), "pay")

        assert response.url == (
            f"{self.live_url}/emulator/done/sandbox/{checkout.payment_id}/"
        )
        assert response.status_code == 200
        assert "Paid" in response.text
        self.assert_invoice(invoice, InvoiceStatus.PAID)

    def test_a_payment_without_a_webhook_url_sends_no_webhook(self):
        invoice = self.create_invoice()
        checkout = self.start(invoice)
        EmulatedPayment.objects.filter(external_id=checkout.payment_id).update(
            webhook_url=""
        )

        self.press(self.open_checkout(checkout), "pay", follow=False)

        assert not WebhookDelivery.objects.exists()
        invoice.refresh_from_db()
        assert invoice.status == InvoiceStatus.PENDING
