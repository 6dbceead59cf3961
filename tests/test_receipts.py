"""The provider-neutral receipt (django_payments_ru.receipts): validation of
lines, the refund arithmetic, the JSON form."""

from __future__ import annotations

from decimal import Decimal

import pytest
from hypothesis import given
from hypothesis import strategies as st

from django_payments_ru import receipts
from django_payments_ru.exceptions import InvalidInput
from django_payments_ru.receipts import (
    Receipt,
    ReceiptLine,
    parse_receipt,
    parse_refund_lines,
)

EXPONENTS = {"RUB": 2, "JPY": 0, "KWD": 3}


def line(**overrides):
    data = {
        "name": "Маракуя",
        "quantity": "1",
        "price": "340.00",
        "amount": "340.00",
        "vat": "none",
    }
    data.update(overrides)
    return data


def error(data, amount="340.00", currency="RUB") -> InvalidInput:
    with pytest.raises(InvalidInput) as info:
        parse_receipt(data, amount=Decimal(amount), currency=currency)
    assert info.value.field == "receipt"
    return info.value


# -- the property: accepted exactly when the sums hold ------------------------


def _text(minor: int, exp: int) -> str:
    """``minor`` minor units as a decimal string of exponent ``exp``, built
    from integers only (no Decimal, no float)."""
    if exp == 0:
        return str(minor)
    whole, frac = divmod(minor, 10**exp)
    return f"{whole}.{frac:0{exp}d}"


@st.composite
def line_sets(draw):
    currency = draw(st.sampled_from(sorted(EXPONENTS)))
    exp = EXPONENTS[currency]
    count = draw(st.integers(1, 6))
    lines, sums_hold, total = [], True, 0
    for _ in range(count):
        price = draw(st.integers(0, 10**7))
        milli = draw(st.integers(1, 10**6))  # the quantity in thousandths
        # The fiscal sum, rounded half up, in integers: the oracle shares no
        # code with the implementation.
        exact = (price * milli * 2 + 1000) // 2000
        delta = draw(st.sampled_from([0, 0, 0, 1, -1, 10**exp, 7]))
        amount = max(exact + delta, 0)
        sums_hold &= amount == exact
        total += amount
        kind = draw(st.sampled_from(["str", "decimal"]))
        values = (_text(price, exp), _text(milli, 3), _text(amount, exp))
        if kind == "decimal":
            values = tuple(Decimal(v) for v in values)
        lines.append(
            {
                "name": f"Товар {len(lines) + 1}",
                "price": values[0],
                "quantity": values[1],
                "amount": values[2],
                "vat": draw(st.sampled_from(receipts.VAT_RATES)),
            }
        )
    invoice_delta = draw(st.sampled_from([0, 0, 0, 1, -1]))
    invoice = max(total + invoice_delta, 0)
    sums_hold &= invoice == total
    return currency, lines, Decimal(_text(invoice, exp)), sums_hold


@given(line_sets())
def test_accepted_exactly_when_the_sums_hold(case):
    currency, lines, amount, sums_hold = case
    try:
        receipt = parse_receipt(lines, amount=amount, currency=currency)
    except InvalidInput as exc:
        assert not sums_hold, str(exc)
        assert exc.details["field"] in ("amount", "lines")
        return
    assert sums_hold
    assert receipt.total == amount
    for parsed in receipt.lines:
        for value in (parsed.price, parsed.quantity, parsed.amount):
            assert type(value) is Decimal
        assert parsed.price.as_tuple().exponent == -EXPONENTS[currency]
        assert parsed.amount.as_tuple().exponent == -EXPONENTS[currency]
    # The stored form reads back to the same receipt, with no float in it.
    stored = receipt.to_json()
    assert Receipt.from_json(stored) == receipt
    assert all(
        isinstance(value, str) for item in stored["lines"] for value in item.values()
    )


@given(
    st.sampled_from(["price", "quantity", "amount"]),
    st.floats(allow_nan=True, allow_infinity=True),
)
def test_a_float_is_refused_anywhere(field, value):
    exc = error([line(**{field: value})])
    assert exc.details == {"line": 1, "field": field}
    assert "float" in str(exc)


# -- per-field errors -----------------------------------------------------------


@pytest.mark.parametrize(
    ("overrides", "field"),
    [
        ({"name": ""}, "name"),
        ({"name": None}, "name"),
        ({"name": "a\x00b"}, "name"),
        ({"quantity": "0"}, "quantity"),
        ({"quantity": "-1"}, "quantity"),
        ({"quantity": "1e3"}, "quantity"),
        ({"price": "abc"}, "price"),
        ({"price": "-340.00"}, "price"),
        ({"price": "NaN"}, "price"),
        ({"price": True}, "price"),
        ({"amount": None}, "amount"),
        ({"vat": "vat7"}, "vat"),
        ({"unit": "barrel"}, "unit"),
        ({"payment_object": "x"}, "payment_object"),
        ({"payment_method": "x"}, "payment_method"),
        ({"code": "9" * 65}, "code"),
        ({"colour": "red"}, "colour"),
    ],
)
def test_each_error_names_the_line_and_the_field(overrides, field):
    good = line(name="Хлеб", price="10.00", amount="10.00")
    exc = error([good, line(**overrides)], amount="350.00")
    assert exc.details == {"line": 2, "field": field}
    assert "line 2" in str(exc)
    assert field in str(exc)


def test_the_messages_are_translated():
    from django.utils import translation

    with translation.override("ru"):
        exc = error([line(quantity="1.5")])
    assert "Строка чека 1" in str(exc)


def test_name_length():
    name = "Я" * receipts.NAME_MAX_LENGTH
    ok = parse_receipt([line(name=name)], amount=Decimal("340"), currency="RUB")
    assert ok.lines[0].name == name
    exc = error([line(name=name + "Я")])
    assert exc.details == {"line": 1, "field": "name"}
    assert str(receipts.NAME_MAX_LENGTH) in str(exc)


@pytest.mark.parametrize(
    ("quantity", "accepted"),
    [
        ("1", True),
        ("0.125", True),
        ("2.500", True),
        ("0.0005", False),
        ("1.0001", False),
    ],
)
def test_quantity_has_at_most_three_places(quantity, accepted):
    price = Decimal("8.00")
    amount = receipts.line_amount(price, Decimal(quantity), "RUB")
    data = [line(quantity=quantity, price="8.00", amount=str(amount))]
    if accepted:
        receipt = parse_receipt(data, amount=amount, currency="RUB")
        assert receipt.lines[0].quantity == Decimal(quantity)
    else:
        assert error(data, amount=str(amount)).details["field"] == "quantity"


@pytest.mark.parametrize(
    ("currency", "price", "accepted"),
    [
        ("RUB", "340.00", True),
        ("RUB", "340.5", True),
        ("RUB", "340.005", False),
        ("JPY", "340", True),
        ("JPY", "340.5", False),
        ("KWD", "340.125", True),
        ("KWD", "340.1255", False),
    ],
)
def test_prices_and_sums_follow_the_currency_exponent(currency, price, accepted):
    data = [line(price=price, amount=price)]
    if accepted:
        receipt = parse_receipt(data, amount=Decimal(price), currency=currency)
        exp = -EXPONENTS[currency]
        assert receipt.lines[0].price.as_tuple().exponent == exp
        assert receipt.lines[0].amount == Decimal(price)
    else:
        assert error(data, amount=price, currency=currency).details == {
            "line": 1,
            "field": "price",
        }


def test_the_sum_is_price_times_quantity_rounded_half_up():
    # 0.333 kg at 10.05 = 3.34665 -> 3.35
    data = [line(quantity="0.333", price="10.05", amount="3.35")]
    assert parse_receipt(data, amount=Decimal("3.35"), currency="RUB").total == Decimal(
        "3.35"
    )
    # 0.5 x 0.05 = 0.025 -> 0.03 (half up, not half even)
    data = [line(quantity="0.5", price="0.05", amount="0.03")]
    assert parse_receipt(data, amount=Decimal("0.03"), currency="RUB")
    exc = error([line(quantity="0.5", price="0.05", amount="0.02")], amount="0.02")
    assert exc.details == {"line": 1, "field": "amount"}
    assert "0.03" in str(exc)


def test_lines_must_add_up_to_the_invoice():
    exc = error([line()], amount="341.00")
    assert exc.details == {"field": "lines"}
    assert "340.00" in str(exc) and "341.00" in str(exc)


@pytest.mark.parametrize(
    "data",
    [[], "lines", {"lines": []}, {"lines": [line()], "delivery": "fax"}, {"x": 1}],
)
def test_malformed_receipts_are_refused(data):
    error(data)


def test_too_many_lines():
    lines = [line(price="1.00", amount="1.00")] * (receipts.MAX_LINES + 1)
    error(lines, amount=str(receipts.MAX_LINES + 1))


def test_shapes_and_aliases():
    """A list, a mapping with a delivery, a Receipt; Life-Pay's ``sum`` and
    ``vat_mode`` spellings; defaults for unit, subject and method."""
    item = {"name": "Маракуя", "price": 340, "quantity": 1, "sum": "340.00"}
    item["vat_mode"] = "vat20"
    as_list = parse_receipt([item], amount=Decimal("340.00"), currency="RUB")
    as_map = parse_receipt(
        {"lines": [item], "delivery": "sms"}, amount=Decimal("340"), currency="RUB"
    )
    again = parse_receipt(as_map, amount=Decimal("340"), currency="RUB")
    assert as_list.delivery == "email" and as_map.delivery == "sms"
    assert again == as_map
    assert as_list.lines == as_map.lines
    only = as_list.lines[0]
    assert (only.vat, only.amount, only.unit) == ("vat20", Decimal("340.00"), "piece")
    assert (only.payment_object, only.payment_method) == ("commodity", "full_payment")
    both = {**item, "amount": "340.00"}
    assert error([both]).details == {"line": 1, "field": "amount"}


def test_json_form():
    receipt = parse_receipt(
        [line(quantity="1.000", code="21321312122", unit="kg")],
        amount=Decimal("340"),
        currency="RUB",
    )
    assert receipt.to_json() == {
        "delivery": "email",
        "lines": [
            {
                "name": "Маракуя",
                "quantity": "1",
                "price": "340.00",
                "amount": "340.00",
                "vat": "none",
                "unit": "kg",
                "payment_object": "commodity",
                "payment_method": "full_payment",
                "code": "21321312122",
            }
        ],
    }
    big = parse_receipt(
        [line(quantity="10", price="34.00")], amount=Decimal("340"), currency="RUB"
    )
    assert big.to_json()["lines"][0]["quantity"] == "10"


# -- refunds ----------------------------------------------------------------


@pytest.fixture
def paid() -> Receipt:
    return parse_receipt(
        [
            line(name="Маракуя", quantity="2", price="340.00", amount="680.00"),
            line(name="Манго", quantity="0.5", price="300.00", amount="150.00"),
            line(name="Доставка", price="100.00", amount="100.00", vat="vat20"),
        ],
        amount=Decimal("930.00"),
        currency="RUB",
    )


def test_a_refund_of_everything_carries_every_line(paid):
    refund = parse_refund_lines(paid, [], None, amount=None, currency="RUB")
    assert refund == paid
    assert (
        parse_refund_lines(paid, [], None, amount=Decimal("930.00"), currency="RUB")
        == paid
    )


def test_a_partial_refund_names_its_lines(paid):
    with pytest.raises(InvalidInput, match="name the lines"):
        parse_refund_lines(paid, [], None, amount=Decimal("100"), currency="RUB")
    subset = [line(name="Маракуя", quantity="1", price="340.00", amount="340.00")]
    first = parse_refund_lines(
        paid, [], subset, amount=Decimal("340.00"), currency="RUB"
    )
    assert first.total == Decimal("340.00")
    assert first.delivery == paid.delivery
    # What is left after it: one Маракуя and the rest.
    rest = parse_refund_lines(paid, [first], None, amount=None, currency="RUB")
    assert [(x.name, x.quantity, x.amount) for x in rest.lines] == [
        ("Маракуя", Decimal("1"), Decimal("340.00")),
        ("Манго", Decimal("0.5"), Decimal("150.00")),
        ("Доставка", Decimal("1"), Decimal("100.00")),
    ]
    # The same line again is fine once; a third time there is none left.
    second = parse_refund_lines(paid, [first], subset, amount=None, currency="RUB")
    with pytest.raises(InvalidInput) as info:
        parse_refund_lines(paid, [first, second], subset, amount=None, currency="RUB")
    assert info.value.details == {"line": 1, "field": "quantity"}


@pytest.mark.parametrize(
    ("refund_line", "field"),
    [
        (line(name="Киви", price="340.00"), "name"),
        (line(name="Маракуя", price="341.00", amount="341.00"), "name"),
        (line(name="Маракуя", quantity="3", amount="1020.00"), "quantity"),
        (line(name="Доставка", price="100.00", amount="100.00"), "vat"),
        (line(name="Маракуя", quantity="1", amount="300.00"), "amount"),
    ],
)
def test_lines_never_paid_are_refused(paid, refund_line, field):
    with pytest.raises(InvalidInput) as info:
        parse_refund_lines(paid, [], [refund_line], amount=None, currency="RUB")
    assert info.value.details == {"line": 1, "field": field}


def test_the_refund_amount_must_be_the_lines_total(paid):
    subset = [line(name="Маракуя", quantity="1", amount="340.00")]
    with pytest.raises(InvalidInput, match=r"340\.00") as info:
        parse_refund_lines(paid, [], subset, amount=Decimal("300"), currency="RUB")
    assert info.value.details == {"field": "lines"}


def test_nothing_left_to_refund(paid):
    with pytest.raises(InvalidInput, match="already refunded"):
        parse_refund_lines(paid, [paid], None, amount=None, currency="RUB")


def test_legacy_metadata_is_converted():
    metadata = {
        "receipt": [
            {"name": "Маракуя", "price": "340", "quantity": 1, "sum": "340"}
            | {"vat_mode": "none"}
        ],
        "lifepay": {"send_receipt_through": "sms"},
    }
    data = receipts.from_legacy_metadata(metadata)
    receipt = parse_receipt(data, amount=Decimal("340"), currency="RUB")
    assert receipt.delivery == "sms"
    assert receipt.lines[0] == ReceiptLine(
        name="Маракуя",
        quantity=Decimal("1"),
        price=Decimal("340.00"),
        amount=Decimal("340.00"),
        vat="none",
    )
    assert receipts.from_legacy_metadata({}) is None
