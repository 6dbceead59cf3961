"""Receipts through the sandbox (:class:`tests.contracts.receipts.ReceiptContract`):
the neutral lines at create and at refund, as the sandbox API takes them, and
the emulator's own refusals (lines that do not add up, a line whose sum is not
price x quantity, a refund of lines never paid) with its error shape; the pay
page shows the lines."""

from __future__ import annotations

from typing import Any

import pytest
import requests

from django_payments_ru.exceptions import RemovedInDjangoPaymentsRu2Warning
from django_payments_ru.models import Invoice
from django_payments_ru.receipts import Receipt
from django_payments_ru.status import InvoiceStatus
from tests.contracts.receipts import ORDER_TOTAL, ReceiptContract, order
from tests.settings import SANDBOX_API_KEY

from .adapter import SANDBOX


class TestSandboxReceipts(ReceiptContract):
    adapter = SANDBOX

    def api(self, path: str, body: dict[str, Any]) -> requests.Response:
        return requests.post(
            self.emulator_url(path),
            json=body,
            headers={"Authorization": f"Bearer {SANDBOX_API_KEY}"},
            timeout=30,
        )

    def create_body(self, invoice: Invoice, receipt: Any) -> dict[str, Any]:
        return {
            "amount": str(invoice.amount),
            "currency": invoice.currency,
            "reference": str(invoice.uuid),
            "receipt": receipt,
        }

    # --- the contract's hooks -----------------------------------------------------

    def arrived(self, invoice: Invoice) -> Any:
        return self.adapter.payment(invoice).data["receipt"]

    def expected(self, receipt: Receipt) -> Any:
        # The sandbox takes the neutral format itself.
        return receipt.to_json()

    def send_unbalanced(self, invoice: Invoice) -> requests.Response:
        return self.api("api/payments", self.create_body(invoice, order()))

    def assert_refused(self, answer: requests.Response) -> None:
        assert answer.status_code == 400, answer.text
        error = answer.json()["error"]
        assert (error["code"], error["field"]) == ("invalid_request", "receipt.lines")
        assert error["message"] == (
            "The receipt's lines add up to 1000.00, not to the amount 1000.01."
        )

    def refund_lines_arrived(self, invoice: Invoice) -> list[Any] | None:
        return [r.get("receipt") for r in self.adapter.refunds(invoice)]

    # --- the sandbox's own -----------------------------------------------------------

    def test_the_old_metadata_receipt_arrives_as_neutral_lines(self):
        old = [
            {
                "name": "Маракуя",
                "price": "340.00",
                "quantity": "1",
                "sum": "340.00",
                "vat_mode": "none",
            }
        ]
        with pytest.warns(RemovedInDjangoPaymentsRu2Warning):
            invoice = self.create_invoice(amount="340.00", metadata={"receipt": old})

        self.start(invoice)

        assert self.arrived(invoice) == {
            "delivery": "email",
            "lines": [
                {
                    "name": "Маракуя",
                    "quantity": "1",
                    "price": "340.00",
                    "amount": "340.00",
                    "vat": "none",
                    "unit": "piece",
                    "payment_object": "commodity",
                    "payment_method": "full_payment",
                    "code": "",
                }
            ],
        }

    def test_the_pay_page_shows_the_lines(self):
        invoice = self.create_invoice(amount=ORDER_TOTAL, receipt=order())

        page = self.open_checkout(self.start(invoice))

        assert "Маракуя" in page.text and "Доставка" in page.text
        assert page.text.count('class="receipt-line"') == 3

    def test_the_emulator_refuses_a_line_that_is_not_price_times_quantity(self):
        invoice = self.create_invoice(amount=ORDER_TOTAL)
        receipt = order()
        receipt["lines"][1]["amount"] = "171.00"
        receipt["lines"][0]["amount"] = "699.00"

        answer = self.api("api/payments", self.create_body(invoice, receipt))

        assert answer.status_code == 400
        error = answer.json()["error"]
        assert error["field"] == "receipt.lines[0].amount"
        assert error["message"] == (
            "receipt.lines[0].amount is 699.00, not price x quantity (700.00)."
        )
        assert not self.adapter.payments(invoice).exists()

    def test_the_emulator_refuses_floats_and_unknown_fields(self):
        invoice = self.create_invoice(amount=ORDER_TOTAL)
        floats = order()
        floats["lines"][2]["price"] = 130.0
        unknown = order()
        unknown["lines"][0]["colour"] = "red"

        for receipt, field in (
            (floats, "receipt.lines[2].price"),
            (unknown, "receipt.lines[0].colour"),
        ):
            answer = self.api("api/payments", self.create_body(invoice, receipt))
            assert answer.status_code == 400
            assert answer.json()["error"]["field"] == field

    def test_the_emulator_refuses_a_refund_of_lines_not_paid(self):
        invoice = self.create_invoice(amount=ORDER_TOTAL, receipt=order())
        self.pay(invoice)
        self.assert_invoice(invoice, InvoiceStatus.PAID)
        coffee = {
            "name": "Кофе",
            "quantity": "1",
            "price": "100.00",
            "amount": "100.00",
            "vat": "vat20",
        }
        too_much = {**order()["lines"][2], "quantity": "2", "amount": "260.00"}
        path = f"api/payments/{invoice.provider_payment_id}/refunds"

        for line, amount in ((coffee, "100.00"), (too_much, "260.00")):
            answer = self.api(
                path,
                {"amount": amount, "receipt": {"delivery": "email", "lines": [line]}},
            )
            assert answer.status_code == 400, answer.text
            assert answer.json()["error"]["field"] == "receipt.lines[0]"

        # Lines that do not add up to the refund.
        answer = self.api(
            path,
            {"amount": "100.00", "receipt": {"lines": [order()["lines"][2]]}},
        )
        assert answer.status_code == 400
        assert answer.json()["error"]["field"] == "receipt.lines"
        assert self.adapter.payment(invoice).refunded_amount == 0
