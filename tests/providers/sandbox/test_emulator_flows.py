"""The sandbox client (through the services) against its emulator, over HTTP:
the flow contract (:class:`tests.contracts.flows.FlowContract`) with the
sandbox's adapter, and what only the sandbox has: its pay page and payment
URLs, its signed webhook, the return view asking the emulator, a failed
webhook retried on schedule, a payment without a return URL or webhook URL."""

from __future__ import annotations

import json
import time
from datetime import timedelta

from django_payments_ru.emulator.models import EmulatedPayment, WebhookDelivery
from django_payments_ru.emulator.webhooks import retry_due
from django_payments_ru.providers.sandbox.provider import (
    EVENT_ID_HEADER,
    SIGNATURE_HEADER,
    TIMESTAMP_HEADER,
    sign,
)
from django_payments_ru.status import InvoiceStatus
from tests.contracts.flows import FlowContract

from .adapter import OTHER_SECRET, SANDBOX

SECRET = "whsec_sandbox_canary_9b7e"


class TestSandboxFlows(FlowContract):
    adapter = SANDBOX

    def test_start_registers_the_payment_with_the_shops_urls(self):
        invoice = self.create_invoice(amount="250.50")
        checkout = self.start(invoice)

        assert checkout.method == "GET"
        assert checkout.url.startswith(self.emulator_url("pay/"))
        emulated = self.emulated(invoice)
        assert emulated.reference == str(invoice.uuid)
        assert emulated.webhook_url == f"{self.live_url}/payments/webhooks/sandbox/"
        assert emulated.return_url == (
            f"{self.live_url}/payments/return/{invoice.uuid}/"
        )
        page = self.open_checkout(checkout)
        assert "250.50" in page.text and "RUB" in page.text
        assert "no real money" in page.text

    def test_the_customer_comes_back_through_the_return_view(self):
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
        self.assert_invoice(invoice, InvoiceStatus.PAID, charges=1)
        # The page now offers nothing more.
        again = self.open_checkout(invoice.get_checkout(), page.session)
        assert (again.actions, again.status) == ([], "succeeded")
        assert "no longer waiting" in again.text

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

    def test_the_return_view_asks_the_emulator(self):
        self.set_emulator(webhook_secret=OTHER_SECRET)
        invoice = self.create_invoice()

        response = self.pay(invoice)  # follows the redirect to the return view

        assert response.url == f"{self.live_url}/payments/return/{invoice.uuid}/"
        self.assert_invoice(invoice, InvoiceStatus.PAID, charges=1)

    def test_a_failed_webhook_is_retried_on_schedule(self):
        self.set_emulator(webhook_secret=OTHER_SECRET)
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
