"""Whole flows: the QuantaPay client (through the services) against its
emulator over HTTP, webhooks coming back to the live server. The flow
contract runs with QuantaPay's adapter; here is what only QuantaPay has: what
a session carries (A-4), the exact payment, an underpayment (A-6), a session
that silently disappears (A-6), a webhook sent once and lost (A-7), a webhook
sent twice, a key rotation (§9), the API down when the webhook arrives (A-8)."""

from __future__ import annotations

import json
from datetime import timedelta
from decimal import Decimal
from urllib.parse import urlsplit

import pytest
import requests

from django_payments_ru import services
from django_payments_ru.emulator import clock
from django_payments_ru.emulator.models import WebhookDelivery
from django_payments_ru.models import Payment, WebhookEvent
from django_payments_ru.providers.quantapay.emulator import emulator
from django_payments_ru.status import InvoiceStatus
from tests.contracts.flows import FlowContract

from .adapter import QUANTAPAY
from .cases import ALIAS, SECRET

NO_EXPIRY = (
    "QuantaPay sends no expiry notice (quantapay.md A-6: an unpaid session "
    "silently disappears after 48 h); test_a_lapsed_session_expires_after_48_hours "
    "covers the poll that finds it gone"
)


class TestQuantaPayFlows(FlowContract):
    adapter = QUANTAPAY

    # --- contract cases QuantaPay cannot run ------------------------------------

    def test_expire(self):
        pytest.skip(NO_EXPIRY)

    # --- helpers --------------------------------------------------------------------

    def resend(self, invoice) -> WebhookDelivery:
        response = requests.post(
            self.emulator_url(f"control/resend/{invoice.provider_payment_id}/"),
            timeout=30,
        )
        assert response.status_code == 200, response.text
        return WebhookDelivery.objects.get(pk=response.json()["delivery"])

    # --- what only QuantaPay has ---------------------------------------------------

    def test_the_session_carries_the_invoice_uuid_and_a_signature(self):
        invoice = self.create_invoice(amount="250.50", description="Two books")
        checkout = self.start(invoice)

        assert checkout.method == "GET"
        assert checkout.payment_id.startswith("cs-cs_")
        parts = urlsplit(checkout.url)
        assert parts.path == "/emulator/quantapay/pay.php"
        assert parts.query == f"checkout_id={checkout.payment_id}"
        [call] = emulator.calls("create-checkout-session")
        assert call.form["price"] == "250.50"
        assert call.form["currency"] == "rub"  # lower case
        assert call.form["order_id"] == str(invoice.uuid)
        assert call.form["title"] == invoice.order_id
        assert call.form["description"] == "Two books"
        assert (
            call.form["redirect"] == f"{self.live_url}/payments/return/{invoice.uuid}/"
        )
        assert call.form["signature"] and call.form["timestamp"].isdigit()
        # the session lives 48 hours.
        assert checkout.expires_at - clock.now() > timedelta(hours=47, minutes=59)

    def test_unsigned_when_sign_requests_is_off(self):
        self.set_provider_options(sign_requests=False)
        self.start(self.create_invoice())
        [call] = emulator.calls("create-checkout-session")
        assert "signature" not in call.form and "timestamp" not in call.form
        # An account that requires the signature refuses it.
        self.set_emulator(require_signature=True)
        from django_payments_ru.providers.quantapay.errors import MissingArgument

        with pytest.raises(MissingArgument):
            self.start(self.create_invoice())

    def test_pay_exact_sends_one_webhook_confirmed_through_the_api(self):
        invoice = self.create_invoice(amount="49.99", currency="USD")

        response = self.pay(invoice, "pay")

        # back to our return view, unchanged.
        location = response.history[0].headers["Location"]
        assert location == f"{self.live_url}/payments/return/{invoice.uuid}/"
        self.assert_invoice(invoice, InvoiceStatus.PAID, charges=1)
        [delivery] = self.deliveries(invoice)
        assert delivery.retry_schedule == []  # one attempt
        body = json.loads(delivery.body)
        assert body["key"] == SECRET
        tx = body["transaction"]
        assert tx["status"] == "C" and tx["amount_fiat"] == "49.99000000"
        assert tx["currency"] == "usd" and tx["external_reference"] == str(invoice.uuid)
        # confirmed by get-transaction before it was applied.
        assert [
            c.form["transaction_id"] for c in emulator.calls("get-transaction")
        ] == [tx["id"]]
        row = WebhookEvent.objects.get(invoice=invoice)
        assert row.status == "processed" and row.dedupe_id == f"transaction:{tx['id']}"
        assert "key" not in row.payload  # only the transaction is kept
        assert SECRET not in json.dumps([row.payload, row.event, row.result_text])
        invoice.refresh_from_db()
        assert invoice.provider_transaction_id == tx["id"]
        assert invoice.provider_payment_id == tx["checkout_id"]

    def test_underpay_flags_the_amounts(self):
        invoice = self.create_invoice(amount="100.00")

        page = self.pay(invoice, "underpay")  # the return view polls

        invoice.refresh_from_db()
        assert invoice.status == InvoiceStatus.PENDING
        # The customer is told what happened, not "awaiting payment".
        assert "has been told and will contact you" in page.text, page.text[:2000]
        assert invoice.paid_amount == 0
        assert not invoice.payments.exists()
        assert invoice.needs_attention
        assert "60" in invoice.attention_text and "100" in invoice.attention_text
        assert self.deliveries(invoice) == []
        assert self.signals.count("invoice_paid", invoice) == 0
        assert self.adapter.payment(invoice).status == "X"

    def test_a_lapsed_session_expires_after_48_hours(self, monkeypatch):
        invoice = self.create_invoice()
        checkout = self.start(invoice)

        self.press(self.open_checkout(checkout), "expire")

        # Back on the return view: QuantaPay no longer knows the session, but
        # it is not 48 hours old: still pending.
        self.assert_invoice(invoice, InvoiceStatus.PENDING)
        self.move_clock(monkeypatch, clock.now() + timedelta(hours=48, seconds=1))
        services.refresh_invoice(invoice)
        self.assert_invoice(invoice, InvoiceStatus.EXPIRED, charges=0)
        assert self.changes_to(invoice, InvoiceStatus.EXPIRED) == 1
        services.refresh_invoice(invoice)
        assert self.changes_to(invoice, InvoiceStatus.EXPIRED) == 1

    def test_an_unpaid_session_left_open_expires_after_48_hours(self, monkeypatch):
        invoice = self.create_invoice()
        checkout = self.start(invoice)
        self.move_clock(monkeypatch, clock.now() + timedelta(hours=48, seconds=1))

        page = self.open_checkout(checkout)

        assert (page.actions, page.status) == ([], "expired")
        services.refresh_invoice(invoice)
        self.assert_invoice(invoice, InvoiceStatus.EXPIRED, charges=0)

    def test_a_lost_webhook_is_recovered_when_the_customer_returns(self):
        self.adapter.lose_webhooks(self)
        invoice = self.create_invoice()

        self.pay(invoice, "pay")  # followed: the return view polls

        self.assert_invoice(invoice, InvoiceStatus.PAID, charges=1)
        [lost] = self.deliveries(invoice)
        assert (lost.status, lost.attempts, lost.next_attempt_at) == (
            WebhookDelivery.Status.FAILED,
            1,
            None,
        )
        assert self.signals.count("invoice_paid", invoice) == 1

    def test_a_duplicate_webhook_is_one_event(self):
        invoice = self.paid_invoice()
        [first] = self.deliveries(invoice)

        again = self.resend(invoice)

        assert again.status == WebhookDelivery.Status.DELIVERED
        assert again.body == first.body
        row = WebhookEvent.objects.get(invoice=invoice)
        assert (row.deliveries, row.attempts, row.status) == (2, 1, "processed")
        self.assert_invoice(invoice, InvoiceStatus.PAID, charges=1)
        assert self.signals.count("invoice_paid", invoice) == 1

    def test_key_rotation(self):
        # A transaction paid under the old secret, its webhook lost.
        self.adapter.lose_webhooks(self)
        old = self.create_invoice()
        self.press(self.open_checkout(self.start(old)), "pay", follow=False)
        # The merchant rotates: QuantaPay now uses the new secret, the shop
        # accepts both for a while.
        new_secret = f"{SECRET}-rotated"
        self.set_emulator(webhook_secret=new_secret, webhook_url=None)
        self.set_provider_options(
            webhook_secret=new_secret, previous_webhook_secrets=[SECRET]
        )
        new = self.create_invoice()
        self.pay(new, "pay")  # signed with the new secret, webhook with it
        self.assert_invoice(new, InvoiceStatus.PAID, charges=1)
        assert json.loads(self.deliveries(new)[0].body)["key"] == new_secret
        # The old webhook, re-sent to the shop, still carries the old key.
        WebhookDelivery.objects.filter(payment=self.adapter.payment(old)).update(
            url=self.webhook_url
        )
        self.adapter.payments(old).update(webhook_url=self.webhook_url)
        assert self.resend(old).status == WebhookDelivery.Status.DELIVERED
        self.assert_invoice(old, InvoiceStatus.PAID, charges=1)
        # Once the old secret is dropped, its key is refused.
        self.set_provider_options(previous_webhook_secrets=[])
        before = WebhookEvent.objects.count()
        refused = self.resend(old)
        assert (refused.status, refused.last_status_code) == ("failed", 401)
        assert WebhookEvent.objects.count() == before

    def test_the_api_down_when_the_webhook_arrives(self):
        """A-8: stored, not paid; once the API is back, the reprocess pays
        exactly once."""
        self.set_faults(**{"get-transaction": {"status": 503}})
        invoice = self.create_invoice()
        self.press(self.open_checkout(self.start(invoice)), "pay", follow=False)
        [delivery] = self.deliveries(invoice)
        assert delivery.last_status_code == 500  # answered as failed
        row = WebhookEvent.objects.get(provider=ALIAS)
        assert row.status == "failed" and row.result_text
        invoice.refresh_from_db()
        assert invoice.status == InvoiceStatus.PENDING and invoice.paid_amount == 0
        assert not Payment.objects.filter(invoice=invoice).exists()

        self.set_faults()
        services.process_webhook_event(row.pk)

        self.assert_invoice(invoice, InvoiceStatus.PAID, charges=1)
        row.refresh_from_db()
        assert row.status == "processed"
        services.process_webhook_event(row.pk)
        services.refresh_invoice(invoice)
        self.assert_invoice(invoice, InvoiceStatus.PAID, charges=1)
        assert self.signals.count("invoice_paid", invoice) == 1
        assert invoice.paid_amount == Decimal("100.00")

    def set_faults(self, **faults):
        from django_payments_ru.emulator import faults as shared

        shared.reset()
        self.set_emulator(faults=faults)
