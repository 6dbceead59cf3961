"""Receipts through the Life-Pay emulator (:mod:`tests.contracts.receipts`).

A1Lite (lifepay.md §10): the neutral lines arrive as the form's
``invoice_data``, the reference's example item reproduced exactly; the
emulator refuses items that do not add up, in the language of the request.
Refunds (``alba/refund/``, §5) take no lines: they are recorded by us.
ECOM (§11.2): the invoice takes no lines; the receipt's delivery arrives as
``send_receipt_through``."""

from __future__ import annotations

import copy
import json
from decimal import Decimal
from typing import Any

import requests

from django_payments_ru.models import Invoice
from django_payments_ru.providers.lifepay.metadata import dumps
from django_payments_ru.providers.lifepay.signature import sign_v2
from django_payments_ru.receipts import Receipt
from django_payments_ru.status import InvoiceStatus
from tests.contracts.receipts import ORDER, ReceiptContract

from .adapter import LIFEPAY, LIFEPAY_ECOM, LIFEPAY_V1
from .conftest import SECRET

#: lifepay.md §10's example item, character for character.
EXAMPLE = (
    '[{"code":"21321312122","name":"Маракуя","unit":"kg","price":340.00,'
    '"quantity":1,"sum":340.00,"vat_mode":"none"}]'
)
#: tests.contracts.receipts.ORDER as invoice_data.
ORDER_ITEMS = (
    '{"items":['
    '{"code":"TEA-100","name":"Чай улун","unit":"piece","price":350.00,'
    '"quantity":2,"sum":700.00,"vat_mode":"vat20"},'
    '{"name":"Маракуя","unit":"kg","price":340.00,"quantity":0.5,"sum":170.00,'
    '"vat_mode":"none"},'
    '{"name":"Доставка","unit":"service","price":130.00,"quantity":1,'
    '"sum":130.00,"vat_mode":"vat20","payment_object":"service"}]}'
)
#: ORDER's items as Life-Pay takes them, for a form sent past our checks.
RAW_ITEMS = json.loads(ORDER_ITEMS, parse_float=Decimal)["items"]


def items_json(items: list[dict[str, Any]]) -> str:
    return dumps({"items": items})


class A1LiteReceipts(ReceiptContract):
    def arrived(self, invoice: Invoice) -> Any:
        return self.adapter.payment(invoice).data["invoice_data"]

    def expected(self, receipt: Receipt) -> Any:
        assert receipt.to_json()["lines"] == [
            Receipt.from_json({"lines": ORDER["lines"]}).lines[i].to_json()
            for i in range(3)
        ]
        return ORDER_ITEMS

    def post_form(
        self, invoice: Invoice, invoice_data: str, language: str = "en"
    ) -> requests.Response:
        """The invoice's pay form with ``invoice_data`` replaced (and signed
        again), posted straight to the emulator."""
        provider = self.provider
        fields = dict(provider.checkout_data(invoice, None))
        fields["invoice_data"] = invoice_data
        if "check" in fields:
            del fields["check"]
            fields["check"] = sign_v2(SECRET, "POST", provider.input_url(), fields)
        return requests.post(
            provider.input_url(),
            data=fields,
            headers={"Accept-Language": language},
            allow_redirects=False,
            timeout=30,
        )

    def send_unbalanced(self, invoice: Invoice) -> requests.Response:
        return self.post_form(invoice, items_json(RAW_ITEMS))

    def assert_refused(self, answer: requests.Response) -> None:
        # ASSUMPTION A-15: alba errors are HTTP 200 {"status": "error", ...}.
        assert answer.status_code == 200, answer.text
        assert answer.json() == {
            "status": "error",
            "code": "common",
            "message": "invoice_data.items: the lines add up to 1000.00, not to "
            "the invoice amount 1000.01.",
        }


class TestLifePayReceipts(A1LiteReceipts):
    adapter = LIFEPAY

    def test_the_references_example_item_arrives_exactly(self):
        invoice = self.create_invoice(
            amount="340.00",
            receipt=[
                {
                    "code": "21321312122",
                    "name": "Маракуя",
                    "unit": "kg",
                    "price": "340.00",
                    "quantity": "1",
                    "amount": "340.00",
                    "vat": "none",
                }
            ],
        )

        self.pay(invoice)

        self.assert_invoice(invoice, InvoiceStatus.PAID)
        assert self.arrived(invoice) == '{"items":' + EXAMPLE + "}"

    def test_the_pay_page_shows_the_items(self):
        invoice = self.receipt_invoice()

        page = self.open_checkout(self.start(invoice))

        assert page.text.count('class="receipt-line"') == 3
        assert "<td>Маракуя</td><td>0.5</td><td>340.00</td><td>170.00</td>" in (
            page.text
        )

    def test_the_emulator_refuses_in_the_requests_language(self):
        invoice = self.create_invoice(amount="1000.00")
        items = copy.deepcopy(RAW_ITEMS)
        items[1]["sum"] = 171

        english = self.post_form(invoice, items_json(items))
        russian = self.post_form(invoice, items_json(items), "ru")

        assert english.json()["message"] == (
            "invoice_data.items[1].sum: is not price times quantity."
        )
        assert russian.json()["message"] == (
            "invoice_data.items[1].sum: не равно цене, умноженной на количество."
        )
        assert not self.adapter.payments(invoice).exists()

    def test_the_emulator_refuses_an_item_outside_the_value_lists(self):
        invoice = self.create_invoice(amount="1000.00")
        for field, value in (("vat_mode", "vat99"), ("unit", "bag"), ("colour", "x")):
            items = copy.deepcopy(RAW_ITEMS)
            items[0][field] = value

            answer = self.post_form(invoice, items_json(items))

            assert answer.json()["code"] == "common"
            assert f"invoice_data.items[0].{field}" in answer.json()["message"]
        assert not self.adapter.payments(invoice).exists()


class TestLifePayV1Receipts(A1LiteReceipts):
    adapter = LIFEPAY_V1


class TestLifePayEcomReceipts(ReceiptContract):
    adapter = LIFEPAY_ECOM
    no_lines = (
        "Life-Pay ECOM invoices take no receipt lines (lifepay.md §11.2), only "
        "send_receipt_through"
    )

    def arrived(self, invoice: Invoice) -> Any:
        return self.adapter.payment(invoice).data["send_receipt_through"]

    def expected(self, receipt: Receipt) -> Any:
        return receipt.delivery
