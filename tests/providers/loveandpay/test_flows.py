"""Whole flows over HTTP through the Love&Pay emulator: the flow contract, and
what only Love&Pay has: pay by card, the SBP QR on the checkout, the three
spellings of event names, retried, duplicate and out-of-order deliveries,
a webhook secret rotation."""

from __future__ import annotations

import json

import requests

from django_payments_ru import services
from django_payments_ru.emulator.models import WebhookDelivery
from django_payments_ru.emulator.webhooks import send_webhook
from django_payments_ru.models import WebhookEvent
from django_payments_ru.providers.base import Capability
from django_payments_ru.providers.loveandpay.emulator import emulator
from django_payments_ru.status import InvoiceStatus
from tests.contracts.flows import FlowContract

from .adapter import LOVEANDPAY
from .cases import LoveAndPayCase


class TestLoveAndPayFlows(FlowContract):
    adapter = LOVEANDPAY

    # --- Love&Pay only ----------------------------------------------------------

    def test_pay_by_card(self):
        invoice = self.create_invoice(amount="1500.50")

        self.pay(invoice, "pay_card")

        self.assert_invoice(invoice, InvoiceStatus.PAID, charges=1)
        emulated = self.adapter.payment(invoice)
        assert (emulated.status, emulated.data["paymentMethod"]) == ("PAID", "card")
        assert self.event_types(invoice) == ["invoice.paid"]
        self.assert_delivered(invoice)

    def test_the_checkout_keeps_the_sbp_qr(self):
        invoice = self.create_invoice()

        checkout = self.start(invoice)

        assert checkout.qr_image.startswith("data:image/png;base64,")
        assert checkout.qr_payload.startswith("https://qr.nspk.ru/")
        invoice.refresh_from_db()
        assert invoice.get_checkout().qr_payload == checkout.qr_payload
        emulated = self.adapter.payment(invoice)
        assert checkout.url.endswith(f"/pay/{emulated.reference}")

    def test_the_pay_link_shows_the_qr(self):
        from django.test import Client

        invoice = self.create_invoice()

        response = Client().get(services.pay_link(invoice))

        assert response.status_code == 200
        html = response.content.decode()
        checkout = services.start_payment(invoice)  # the stored one, no new call
        assert len(self.calls("start")) == 1
        assert 'class="payments-ru-qr"' in html
        assert checkout.qr_image in html and checkout.qr_payload in html
        assert f'href="{checkout.url}"' in html

    def test_the_customer_cancels_on_the_page(self):
        invoice = self.create_invoice()

        self.pay(invoice, "cancel")

        self.assert_invoice(invoice, InvoiceStatus.CANCELLED, charges=0)
        assert self.event_types(invoice) == ["invoice.cancelled"]

    def test_the_test_panels_upper_case_body_pays(self):
        """8.4: the cabinet's test panel posts INVOICE_PAID with
        data.invoiceId and no currency."""
        invoice = self.create_invoice()
        checkout = self.start(invoice)
        emulated = self.adapter.payment(invoice)
        emulated.status = "PAID"
        emulated.save(update_fields=["status"])

        answer = requests.post(
            self.emulator_url("_control/test-webhook"),
            json={"invoiceId": checkout.payment_id, "event": "invoice.paid"},
            timeout=30,
        )

        assert answer.status_code == 200, answer.text
        [delivery] = self.deliveries(invoice)
        body = json.loads(delivery.body)
        assert body["event"] == "INVOICE_PAID"
        assert "currency" not in body["data"] and "invoiceId" in body["data"]
        assert delivery.headers["X-Webhook-Event"] == "INVOICE_PAID"
        self.assert_invoice(invoice, InvoiceStatus.PAID, charges=1)

    def test_a_retried_delivery_is_one_event(self):
        """A-5: a retry carries retryCount 1 (so another body and signature)
        and the same x-webhook-id: one event, one transition."""
        invoice = self.create_invoice()
        self.pay(invoice)
        self.assert_invoice(invoice, InvoiceStatus.PAID, charges=1)
        [delivery] = self.deliveries(invoice)
        first = delivery.body

        again = send_webhook(delivery)  # the emulator's retry

        assert again.status == WebhookDelivery.Status.DELIVERED
        assert json.loads(again.body)["retryCount"] == 1 and again.body != first
        row = WebhookEvent.objects.get(invoice=invoice)
        assert row.deliveries == 2
        assert self.changes_to(invoice, InvoiceStatus.PAID) == 1
        self.assert_invoice(invoice, InvoiceStatus.PAID, charges=1)

    def test_a_lost_webhook_is_retried_on_the_a5_schedule(self):
        from datetime import timedelta

        self.adapter.lose_webhooks(self)
        invoice = self.create_invoice()
        self.adapter.act(self, self.start(invoice), "pay", follow=False)

        [lost] = self.deliveries(invoice)

        assert lost.status == WebhookDelivery.Status.FAILED
        assert lost.retry_schedule == [60, 300, 900, 3600, 21600]
        assert lost.next_attempt_at - lost.last_attempt_at == timedelta(seconds=60)

    def test_out_of_order_deliveries_never_undo_a_payment(self):
        """The payment arrives, then a late expiry of the same invoice (the
        expiry webhook retried after a lost first attempt): the payment stays."""
        invoice = self.create_invoice()
        checkout = self.start(invoice)
        emulated = self.adapter.payment(invoice)
        self.press(self.open_checkout(checkout), "pay")
        self.assert_invoice(invoice, InvoiceStatus.PAID, charges=1)
        emulated.refresh_from_db()
        [late] = emulator.post(
            emulated,
            [self.webhook_url],
            emulator.webhook_body(emulated, "invoice.expired", "evt_late_expiry"),
        )

        assert WebhookDelivery.objects.get(pk=late.pk).status == "delivered"
        self.assert_invoice(invoice, InvoiceStatus.PAID, charges=1)
        assert WebhookEvent.objects.get(dedupe_id="evt_late_expiry").status == "ignored"
        assert self.changes_to(invoice, InvoiceStatus.EXPIRED) == 0

    def test_a_webhook_secret_rotation(self):
        """The emulator signs with the new secret while the shop still lists
        the old one as previous: both are accepted."""
        old = self._settings.PAYMENTS_RU["PROVIDERS"][self.alias]["OPTIONS"][
            "webhook_secret"
        ]
        self.set_emulator(webhook_secret="whsec_rotated_new")
        self.set_provider_options(
            webhook_secret="whsec_rotated_new", previous_webhook_secrets=[old]
        )
        invoice = self.create_invoice()
        self.pay(invoice)
        self.assert_invoice(invoice, InvoiceStatus.PAID, charges=1)
        self.set_emulator(webhook_secret=old)  # a retry signed the old way
        other = self.create_invoice()
        self.pay(other)
        self.assert_invoice(other, InvoiceStatus.PAID, charges=1)

    def test_a_paid_invoice_is_read_back_by_refresh(self):
        invoice = self.create_invoice()
        self.pay(invoice)
        self.assert_invoice(invoice, InvoiceStatus.PAID, charges=1)
        services.refresh_invoice(invoice)
        self.assert_invoice(invoice, InvoiceStatus.PAID, charges=1)


class TestDefaults(LoveAndPayCase):
    """The default options: cancel is local (A-7); v1 works with the key alone."""

    def test_cancel_is_local_by_default(self):
        assert not self.provider.supports(Capability.CANCEL)
        invoice = self.create_invoice()
        checkout = self.start(invoice)

        services.cancel_invoice(invoice)

        invoice.refresh_from_db()
        assert invoice.status == InvoiceStatus.CANCELLED
        assert emulator.calls("cancel") == []
        page = self.open_checkout(checkout)
        assert page.status == "PENDING"  # Love&Pay still offers it

    def test_a_v1_alias_pays(self):
        self.set_provider_options(
            api_version="v1", api_url=self.emulator_url("api/v1").rstrip("/")
        )
        invoice = self.create_invoice()

        self.pay(invoice)

        self.assert_invoice(invoice, InvoiceStatus.PAID, charges=1)
        [create] = emulator.calls("create")
        assert create.path.endswith("/api/v1/invoices")
