"""The merchant API against the sandbox's emulator over HTTP: nothing mocked.
A back office creates invoices through the API (HTTP Basic), the customer pays
on the emulated page, and the back office reads, refreshes, refunds (a part,
then receipt lines, then the rest) and cancels through the API; the provider
calls go to the emulator and its webhooks come back to the live server."""

from __future__ import annotations

import copy
from typing import Any

import requests

from django_payments_ru.emulator.models import EmulatedPayment
from django_payments_ru.models import Invoice
from tests.emulator_cases import EmulatorCase
from tests.test_api_merchant import user_with
from tests.test_receipt_services import LINES


class TestMerchantAPIThroughTheSandbox(EmulatorCase):
    alias = "sandbox"

    def api(self, method: str, path: str = "", body: Any = None) -> requests.Response:
        return requests.request(
            method,
            f"{self.live_url}/payments/api/invoices/{path}",
            json=body,
            auth=("back-office", "pw"),
            timeout=30,
        )

    def create(self, **body: Any) -> dict[str, Any]:
        body.setdefault("provider", self.alias)
        response = self.api("POST", body=body)
        assert response.status_code == 201, response.text
        return response.json()

    def pay_through_the_link(self, created: dict[str, Any]) -> None:
        # The pay link starts the payment and sends the customer on.
        page = self.open_pay_page(created["pay_link"])
        self.press(page, "pay")

    def back_office(self) -> None:
        user_with(
            "view_invoice", "add_invoice", "change_invoice", username="back-office"
        )

    def test_create_pay_read_refund_refresh(self):
        self.back_office()
        created = self.create(amount="300.00", order_id="API-1")
        assert created["status"] == "created"
        self.pay_through_the_link(created)
        invoice = Invoice.objects.get(uuid=created["reference"])
        self.assert_invoice(invoice, "paid", charges=1)

        detail = self.api("GET", f"{invoice.uuid}/").json()
        assert detail["status"] == "paid"
        assert detail["paid"] == "300.00"
        assert [p["amount"] for p in detail["payments"]] == ["300.00"]
        assert [e["status"] for e in detail["events"]] == ["processed"]
        assert [op["kind"] for op in detail["operations"]] == ["start"]

        listed = self.api("GET", "?status=paid&order_id=API-1").json()["results"]
        assert [item["reference"] for item in listed] == [created["reference"]]

        part = self.api("POST", f"{invoice.uuid}/refund/", {"amount": "100.00"})
        assert part.status_code == 200, part.text
        assert part.json()["status"] == "partially_refunded"
        assert part.json()["refunded"] == "100.00"

        rest = self.api("POST", f"{invoice.uuid}/refund/", {})
        assert rest.status_code == 200, rest.text
        assert rest.json()["status"] == "refunded"
        assert rest.json()["refunded"] == "300.00"
        assert self.emulated(invoice).refunded_amount == 300

        again = self.api("POST", f"{invoice.uuid}/refund/", {})
        assert again.status_code == 409
        assert again.json()["code"] == "invalid_operation"

        refreshed = self.api("POST", f"{invoice.uuid}/refresh/")
        assert refreshed.status_code == 200, refreshed.text
        assert refreshed.json()["status"] == "refunded"
        self.assert_delivered(invoice)

    def test_receipt_lines_at_create_and_at_refund(self):
        self.back_office()
        created = self.create(
            amount="930.00", receipt={"lines": copy.deepcopy(LINES), "delivery": "sms"}
        )
        self.pay_through_the_link(created)
        invoice = Invoice.objects.get(uuid=created["reference"])
        self.assert_invoice(invoice, "paid")
        payment = EmulatedPayment.objects.get(external_id=invoice.provider_payment_id)
        assert len(payment.data["receipt"]["lines"]) == 3

        delivery = {**LINES[2]}
        response = self.api(
            "POST", f"{invoice.uuid}/refund/", {"receipt": {"lines": [delivery]}}
        )
        assert response.status_code == 200, response.text
        data = response.json()
        assert data["refunded"] == "100.00"
        [refund] = [op for op in data["operations"] if op["kind"] == "refund"]
        assert [line["name"] for line in refund["receipt"]["lines"]] == ["Доставка"]

        # The delivery line is refunded: a second time is refused before any call.
        response = self.api(
            "POST", f"{invoice.uuid}/refund/", {"receipt": {"lines": [delivery]}}
        )
        assert response.status_code == 400
        assert response.json()["field"] == "receipt.lines[0].quantity"

    def test_cancel_an_invoice_the_customer_opened(self):
        self.back_office()
        created = self.create(amount="50.00")
        self.open_pay_page(created["pay_link"])  # started, not paid
        invoice = Invoice.objects.get(uuid=created["reference"])
        assert invoice.provider_payment_id
        response = self.api("POST", f"{invoice.uuid}/cancel/")
        assert response.status_code == 200, response.text
        assert response.json()["status"] == "cancelled"
        assert self.emulated(invoice).status == "cancelled"
