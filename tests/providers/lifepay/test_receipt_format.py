"""A1Lite's ``invoice_data`` over many receipts (hypothesis): what the client
writes (:func:`~django_payments_ru.providers.lifepay.a1lite.invoice_items`) is
read back by the emulator's own check
(:mod:`django_payments_ru.providers.lifepay.emulator.invoice_data`) digit for
digit, never through a float; and a receipt off by one kopeck is refused by
both the client's validation and the emulator."""

from __future__ import annotations

import json
import re
from decimal import Decimal

import pytest
from hypothesis import given
from hypothesis import strategies as st

from django_payments_ru.exceptions import InvalidInput
from django_payments_ru.providers.lifepay.a1lite import invoice_items
from django_payments_ru.providers.lifepay.emulator import invoice_data
from django_payments_ru.providers.lifepay.metadata import dumps
from django_payments_ru.receipts import line_amount, parse_receipt

prices = st.integers(min_value=0, max_value=10**7).map(lambda k: Decimal(k) / 100)
quantities = st.integers(min_value=1, max_value=10**5).map(lambda m: Decimal(m) / 1000)
lines = st.lists(
    st.tuples(prices, quantities, st.sampled_from(["none", "vat10", "vat20"])),
    min_size=1,
    max_size=6,
)


def receipt_lines(drawn):
    return [
        {
            "name": f"Item {n}",
            "price": str(price),
            "quantity": str(quantity),
            "amount": str(line_amount(price, quantity, "RUB")),
            "vat": vat,
        }
        for n, (price, quantity, vat) in enumerate(drawn, 1)
    ]


@given(lines)
def test_the_emulator_reads_back_exactly_what_the_client_writes(drawn):
    data = receipt_lines(drawn)
    total = sum((Decimal(line["amount"]) for line in data), Decimal(0))
    receipt = parse_receipt(data, amount=total, currency="RUB")
    written = dumps({"items": invoice_items(receipt)})

    read = invoice_data.items(written, total)

    assert not re.search(r"\d[eE][-+]?\d", written)  # no exponent notation
    assert [(i["price"], i["quantity"], i["sum"], i["vat_mode"]) for i in read] == [
        (line.price, line.quantity, line.amount, line.vat) for line in receipt.lines
    ]
    # The JSON numbers are the Decimals' digits: 340.00 stays 340.00.
    raw = json.loads(written, parse_float=str, parse_int=str)["items"]
    assert [item["sum"] for item in raw] == [str(line.amount) for line in receipt.lines]


@given(lines, st.sampled_from([Decimal("0.01"), Decimal("-0.01")]))
def test_a_kopeck_off_is_refused_by_the_client_and_the_emulator(drawn, off):
    data = receipt_lines(drawn)
    total = sum((Decimal(line["amount"]) for line in data), Decimal(0)) + off
    if total <= 0:
        return
    with pytest.raises(InvalidInput):
        parse_receipt(data, amount=total, currency="RUB")
    items = json.loads(
        dumps(
            {
                "items": invoice_items(
                    parse_receipt(data, amount=total - off, currency="RUB")
                )
            }
        ),
        parse_float=Decimal,
    )["items"]
    with pytest.raises(InvalidInput) as caught:
        invoice_data.items(dumps({"items": items}), total)
    assert caught.value.field == "invoice_data.items"
