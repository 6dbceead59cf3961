"""Receipts in the JSON API: the merchant's invoice carries them (create with
lines and refunds of lines: tests/test_api_merchant.py)."""

from __future__ import annotations

from unittest import mock

import pytest

from django_payments_ru.providers.base import Capability
from django_payments_ru.providers.sandbox import Provider as Sandbox
from tests.helpers import make_invoice
from tests.test_receipt_services import LINES

pytestmark = pytest.mark.django_db


def test_the_invoice_shows_its_receipt(admin_client):
    with mock.patch.object(
        Sandbox, "capabilities", Sandbox.capabilities | {Capability.RECEIPTS}
    ):
        invoice = make_invoice("930.00", receipt={"lines": LINES, "delivery": "sms"})
    data = admin_client.get(f"/payments/api/invoices/{invoice.uuid}/").json()
    receipt = data["receipt"]
    assert receipt["delivery"] == "sms"
    assert [line["name"] for line in receipt["lines"]] == [
        "Маракуя",
        "Манго",
        "Доставка",
    ]
    # Decimals as strings in the currency's exponent: no float in the JSON.
    assert receipt["lines"][1] | {} == {
        "name": "Манго",
        "quantity": "0.5",
        "price": "300.00",
        "amount": "150.00",
        "vat": "vat10",
        "unit": "kg",
        "payment_object": "commodity",
        "payment_method": "full_payment",
        "code": "",
    }


def test_an_invoice_without_receipt_shows_null(admin_client):
    invoice = make_invoice()
    data = admin_client.get(f"/payments/api/invoices/{invoice.uuid}/").json()
    assert data["receipt"] is None
