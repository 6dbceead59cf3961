"""Whole flows through the Life-Pay emulator over HTTP. The flow contract
(:class:`tests.contracts.flows.FlowContract`) runs on the three aliases with
their adapters (``adapter.py``: pay, decline, a new attempt, refunds, a lost
notification, holds); here is what only Life-Pay has: the A1Lite form and its
signed notifications (v2.0 over the URL, v1.0 MD5), the seed's form verbatim,
receipts and recurrent payments, an order paid once, a tampered form, the
emulator's field checks; ECOM's create fields, PATCH, seed requests and
tokens. Holds' own cases are in test_holds.py."""

from __future__ import annotations

import json
from datetime import timedelta
from decimal import Decimal
from typing import Any
from urllib.parse import parse_qsl, urlsplit

import pytest
import requests

from django_payments_ru import services
from django_payments_ru.emulator import clock
from django_payments_ru.emulator.models import EmulatedPayment
from django_payments_ru.exceptions import ProviderAPIError
from django_payments_ru.models import Invoice, WebhookEvent
from django_payments_ru.providers.base import Checkout
from django_payments_ru.providers.lifepay.signature import sign_notification
from django_payments_ru.status import InvoiceStatus
from tests.contracts.flows import FlowContract
from tests.emulator_cases import EmulatorCase

from .adapter import LIFEPAY, LIFEPAY_ECOM, LIFEPAY_V1
from .conftest import (
    SECRET,
    SECRET_V1,
    SERVICES,
    emulator_services,
    fixture,
    provider_options,
)


class LifePayCase(EmulatorCase):
    alias = "lifepay"
    slug = "lifepay"

    def payments_settings(self, config: dict[str, Any], live_url: str) -> Any:
        config["PROVIDERS"].update(provider_options())
        return super().payments_settings(config, live_url)

    @pytest.fixture(autouse=True)
    def _lifepay_emulator(self, _emulated: None) -> None:
        self.set_emulator(services=emulator_services(self.live_url))

    def transaction(self, invoice: Invoice) -> EmulatedPayment:
        invoice.refresh_from_db()
        return EmulatedPayment.objects.get(
            slug="lifepay", data__tid=invoice.provider_payment_id
        )


class TestA1LiteFlows(FlowContract):
    """A1Lite v2.0: the signed form registers nothing; no expiry, no cancel."""

    adapter = LIFEPAY


class TestA1LiteV1Flows(FlowContract):
    """A1Lite with signature 1.0 on the form and MD5 notifications."""

    adapter = LIFEPAY_V1


class TestEcomFlows(FlowContract):
    """ECOM: an invoice created through the API (JWT); holds, no refunds."""

    adapter = LIFEPAY_ECOM


class TestA1LiteV2(LifePayCase):
    def test_the_return_and_the_notification_are_signed_over_the_url(self):
        invoice = self.create_invoice(customer_email="buyer@example.com")
        page = self.open_checkout(self.start(invoice))
        assert "/emulator/lifepay/alba/pay/" in page.url

        response = self.press(page, "pay")

        # The customer comes back by GET with the notification's fields; the
        # return view ignores them.
        back = response.history[0].headers["Location"]
        query = dict(parse_qsl(urlsplit(back).query))
        assert back.startswith(f"{self.live_url}/payments/return/{invoice.uuid}/?")
        assert query["command"] == "success" and query["check"]
        self.assert_invoice(invoice, InvoiceStatus.PAID, charges=1)
        [delivery] = self.deliveries()
        fields = dict(parse_qsl(delivery.body, keep_blank_values=True))
        assert fields["version"] == "2.0"
        assert fields["cost"] == fields["income_total"] == "100.00"
        assert fields["check"] == sign_notification(
            "2.0",
            SECRET,
            f"{self.live_url}/payments/webhooks/lifepay/",
            fields,
        )

    def test_notification_retry_is_a_duplicate(self):
        invoice = self.create_invoice()
        self.pay(invoice)
        self.assert_invoice(invoice, InvoiceStatus.PAID)
        [delivery] = self.deliveries()
        again = requests.post(
            delivery.url,
            data=delivery.body.encode(),
            headers=delivery.headers,
            timeout=10,
        )
        assert again.status_code == 200
        row = WebhookEvent.objects.get(invoice=invoice)
        assert row.deliveries == 2
        assert invoice.payments.count() == 1

    def test_refresh_asks_details(self):
        invoice = self.create_invoice()
        page = self.open_checkout(self.start(invoice))
        assert services.refresh_invoice(invoice).status == InvoiceStatus.CREATED
        self.press(page, "pay")
        self.assert_invoice(invoice, InvoiceStatus.PAID)
        assert services.refresh_invoice(invoice).status == InvoiceStatus.PAID

    def test_emulator_never_refunds_more_than_paid(self):
        invoice = self.create_invoice(amount="100.00")
        self.pay(invoice)
        self.assert_invoice(invoice, InvoiceStatus.PAID)
        provider = self.provider
        with pytest.raises(ProviderAPIError) as caught:
            provider.refund(invoice, Decimal("100.01"))
        assert caught.value.code == "common"

    def test_receipt_and_recurrent_are_accepted(self):
        invoice = self.create_invoice(
            amount="680.00",
            order_id="rec-000777",
            customer_email="buyer@example.com",
            receipt=[
                {
                    "name": "Маракуя",
                    "price": "340.00",
                    "quantity": "2",
                    "amount": "680.00",
                    "vat": "none",
                }
            ],
            metadata={
                "lifepay": {
                    "recurrent": {
                        "comment": "Monthly",
                        "url": "https://shop.example.com/offer",
                    }
                },
            },
        )
        self.pay(invoice)
        self.assert_invoice(invoice, InvoiceStatus.PAID)
        emulated = self.transaction(invoice)
        assert emulated.data["receipt"][0]["name"] == "Маракуя"
        recurrent_id = emulated.data["recurrent_order_id"]

        self.provider.cancel_recurrent(recurrent_id)
        assert self.event_types()[-1] == "recurrent_cancel"
        self.assert_delivered()

    def test_an_order_is_paid_once(self):
        first = self.create_invoice(order_id="order-once-1")
        self.pay(first)
        self.assert_invoice(first, InvoiceStatus.PAID)
        second = self.create_invoice(order_id="order-once-1")
        checkout = self.start(second)
        answer = requests.post(checkout.url, data=dict(checkout.fields), timeout=10)
        assert answer.json()["code"] == "unique"

    def test_tampered_form_is_refused(self):
        invoice = self.create_invoice()
        checkout = self.start(invoice)
        fields = {**checkout.fields, "cost": "1.00"}
        answer = requests.post(checkout.url, data=fields, timeout=10)
        assert answer.status_code == 200
        assert answer.json() == {
            "status": "error",
            "code": "auth",
            "message": "неверная подпись",
        }
        assert not EmulatedPayment.objects.filter(slug="lifepay").exists()

    def test_emulator_checks_fields(self):
        checkout = self.start(self.create_invoice())
        fields = {**checkout.fields, "name": "x" * 129}
        assert requests.post(checkout.url, data=fields, timeout=10).json()["code"] in (
            "auth",
            "common",
        )


class TestA1LiteV1(LifePayCase):
    alias = "lifepay_v1"

    def test_pay_with_an_md5_signed_notification(self):
        invoice = self.create_invoice()
        self.pay(invoice)
        self.assert_invoice(invoice, InvoiceStatus.PAID, charges=1)
        [delivery] = self.deliveries()
        fields = dict(parse_qsl(delivery.body, keep_blank_values=True))
        assert fields["version"] == "1.0"
        assert fields["check"] == sign_notification("1.0", SECRET_V1, "", fields)
        self.assert_delivered()

    def test_seed_form_verbatim(self):
        # SEED-003's form with its placeholders filled in and the image
        # button's coordinates a browser adds.
        url = self.emulator_url("alba/input/")
        set_key = {"key": provider_options()["lifepay_v1"]["OPTIONS"]["key"]}
        fields = {
            **set_key,
            "cost": "150",
            "name": "Order",
            "email": "buyer@example.com",
            "order_id": "0",
            "x": "10",
            "y": "7",
        }
        page = self.open_checkout(Checkout(method="POST", url=url, fields=fields))
        assert page.actions == ["pay", "decline", "hold"]

    def test_forced_signature_refuses_the_unsigned_form(self):
        services_config = emulator_services(self.live_url)
        services_config[1]["forced_signature"] = True
        self.set_emulator(services=services_config)
        checkout = self.start(self.create_invoice())
        answer = requests.post(checkout.url, data=dict(checkout.fields), timeout=10)
        assert answer.json()["code"] == "auth"


class TestEcom(LifePayCase):
    alias = "lifepay_ecom"

    def test_create_pay_and_refresh(self):
        invoice = self.create_invoice(
            amount="213.00",
            customer_email="acq_integration@life-test.ru",
            customer_phone="79999999999",
            metadata={
                "lifepay": {
                    "send_receipt_through": "nothing",
                    "comment": "internal note",
                    "split_data": [
                        {
                            "order_id": "part-1",
                            "amount": "100.00",
                            "merchant_id": "m-1",
                            "comment": "first",
                        }
                    ],
                }
            },
        )
        checkout = self.start(invoice)
        assert checkout.method == "GET"
        assert checkout.url == self.emulator_url(f"pay/{checkout.payment_id}/")
        invoice.refresh_from_db()
        assert invoice.status == InvoiceStatus.PENDING
        assert invoice.provider_payment_id == checkout.payment_id
        data = self.provider.get_invoice(checkout.payment_id)
        assert data["status"] == "open"
        assert data["split_data"][0]["order_id"] == "part-1"
        assert data["phone"] == 79999999999

        page = self.open_checkout(checkout)
        self.press(page, "pay")
        self.assert_invoice(invoice, InvoiceStatus.PAID, charges=1)
        [delivery] = self.deliveries()
        fields = dict(parse_qsl(delivery.body, keep_blank_values=True))
        assert fields["invoice_id"] == checkout.payment_id
        assert int(fields["short_id"]) >= 491883531
        self.assert_delivered()
        assert services.refresh_invoice(invoice).status == InvoiceStatus.PAID

    def test_patch(self):
        invoice = self.create_invoice(metadata={"lifepay": {"is_recurrent": True}})
        self.start(invoice)
        provider = self.provider
        provider.update_invoice(
            invoice,
            email="new@example.com",
            phone="+79990000000",
            send_receipt_through="sms",
            recurrent_schedule={"interval": "month", "frequency": 1},
        )
        invoice.refresh_from_db()
        assert invoice.customer_email == "new@example.com"
        assert invoice.customer_phone == "79990000000"
        assert invoice.metadata["lifepay"]["send_receipt_through"] == "sms"
        data = provider.get_invoice(invoice.provider_payment_id)
        assert data["email"] == "new@example.com"
        assert data["recurrent_schedule"] == {"interval": "month", "frequency": 1}

    def test_refused_patch_saves_nothing(self):
        invoice = self.create_invoice(customer_email="old@example.com")
        self.start(invoice)
        # The emulator refuses a schedule without consent (§11.4); the client
        # would refuse it too, so the check is made on the emulator directly.
        token = self.provider.tokens.get()
        answer = requests.patch(
            self.emulator_url(f"v1/invoices/{invoice.provider_payment_id}"),
            json={"recurrent_schedule": {"interval": "week", "frequency": 2}},
            headers={"Authorization": f"Bearer {token}"},
            timeout=10,
        )
        assert answer.status_code == 400
        assert answer.json()["status"] == "invalid_parameter_value"
        invoice.refresh_from_db()
        assert invoice.customer_email == "old@example.com"

    def test_seed_requests_verbatim(self):
        self.set_emulator(
            services=[
                {**s, "service_id": 80715} if s["service_id"] == 80717 else s
                for s in emulator_services(self.live_url)
                if s["service_id"] != 80715
            ]
        )
        self.set_provider_options(service_id=80715)
        token = self.provider.tokens.get()
        headers = {
            "Accept": "*/*",
            "User-Agent": "Thunder Client (https://www.thunderclient.com)",
            "Content-Type": "application/json",
            "Authorization": f"Bearer {token}",
        }
        created = requests.post(
            self.emulator_url("v1/invoices"),
            data=json.dumps(fixture("seed_create_request.json")),
            headers=headers,
            timeout=10,
        )
        assert created.status_code == 201, created.text
        body = created.json()
        assert body["amount"] == 213
        assert body["status"] == "open"
        shape = set(fixture("seed_get_response.json"))
        got = requests.get(
            self.emulator_url(f"v1/invoices/{body['id']}"), headers=headers, timeout=10
        )
        assert shape <= set(got.json())
        patched = requests.patch(
            self.emulator_url(f"v1/invoices/{body['id']}"),
            data=json.dumps(fixture("seed_patch_request.json")),
            headers=headers,
            timeout=10,
        )
        assert (patched.status_code, patched.content) == (200, b"")
        # The seed's own token has long expired (exp in 2023).
        stale = {
            **headers,
            "Authorization": "Bearer " + fixture("seed_tokens.json")["create"]["token"],
        }
        refused = requests.get(
            self.emulator_url(f"v1/invoices/{body['id']}"), headers=stale, timeout=10
        )
        assert refused.status_code == 401

    def test_expired_token_is_renewed_once(self, monkeypatch):
        invoice = self.create_invoice()
        self.start(invoice)
        provider = self.provider
        first = provider.tokens.get()
        later = clock.now() + timedelta(hours=4)
        monkeypatch.setattr(clock, "now", lambda: later)
        data = provider.get_invoice(invoice.provider_payment_id)
        assert data["status"] == "open"
        assert provider.tokens.get() != first

    def test_token_for_another_service_is_498(self):
        invoice = self.create_invoice()
        self.start(invoice)
        from django_payments_ru.providers.lifepay.emulator import emulator

        other = emulator.issue_jwt(SERVICES["lifepay"])
        answer = requests.get(
            self.emulator_url(f"v1/invoices/{invoice.provider_payment_id}"),
            headers={"Authorization": f"Bearer {other}"},
            timeout=10,
        )
        assert answer.status_code == 498
        assert answer.json()["status"] == "invalid_token"
