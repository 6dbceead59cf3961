from __future__ import annotations

from decimal import Decimal

import pytest
from hypothesis import given
from hypothesis import strategies as st

from django_payments_ru import money
from django_payments_ru.exceptions import InvalidAmount, InvalidCurrency

CURRENCIES = {"RUB": 2, "JPY": 0, "KWD": 3, "USD": 2, "BHD": 3, "KRW": 0}


@pytest.mark.parametrize(
    ("value", "currency", "expected"),
    [
        ("100", "RUB", Decimal("100.00")),
        ("100.5", "RUB", Decimal("100.50")),
        (Decimal("0.01"), "RUB", Decimal("0.01")),
        (12, "JPY", Decimal("12")),
        ("1.234", "KWD", Decimal("1.234")),
        ("1000000000000.00", "RUB", Decimal("1000000000000.00")),  # 10^12 RUB
        (" 7.10 ", "usd", Decimal("7.10")),
    ],
)
def test_to_amount_accepts(value, currency, expected):
    result = money.to_amount(value, currency)
    assert result == expected
    assert result.as_tuple().exponent == -CURRENCIES.get(currency.upper(), 2)


@pytest.mark.parametrize(
    ("value", "currency", "needle"),
    [
        (0.1, "RUB", "float"),
        (True, "RUB", "float"),
        ("10.001", "RUB", "more decimals than RUB"),
        ("1.5", "JPY", "more decimals than JPY"),
        ("1.2345", "KWD", "more decimals than KWD"),
        ("0", "RUB", "greater than zero"),
        ("-5", "RUB", "greater than zero"),
        ("abc", "RUB", "not a decimal number"),
        ("1e3", "RUB", "plain decimal"),
        (Decimal("NaN"), "RUB", "finite"),
        ("NaN", "RUB", "plain decimal"),
        (Decimal("Infinity"), "RUB", "finite"),
        ("1" * 20, "RUB", "largest supported"),
        (None, "RUB", "Decimal, an int or a decimal string"),
    ],
)
def test_to_amount_refuses_with_a_clear_error(value, currency, needle):
    with pytest.raises(InvalidAmount) as info:
        money.to_amount(value, currency)
    assert needle in str(info.value)
    assert info.value.field == "amount"
    assert isinstance(info.value, ValueError)


@pytest.mark.parametrize("currency", ["", "RU", "XXX", "rubles", 643, None])
def test_unknown_currency(currency):
    with pytest.raises(InvalidCurrency):
        money.to_amount("1.00", currency)


@given(
    currency=st.sampled_from(sorted(CURRENCIES)),
    minor=st.integers(min_value=0, max_value=10**14),
)
def test_minor_round_trip(currency, minor):
    amount = money.from_minor(minor, currency)
    assert isinstance(amount, Decimal)
    assert money.to_minor(amount, currency) == minor
    assert money.to_minor(money.format_amount(amount, currency), currency) == minor


@given(
    currency=st.sampled_from(sorted(CURRENCIES)),
    digits=st.integers(min_value=0, max_value=10**12),
    extra=st.integers(min_value=1, max_value=9),
)
def test_too_many_decimals_never_convert(currency, digits, extra):
    exp = CURRENCIES[currency]
    # One more decimal place than the currency has, non-zero: never exact.
    value = Decimal(digits).scaleb(-exp) + Decimal(extra).scaleb(-(exp + 1))
    with pytest.raises(InvalidAmount):
        money.to_minor(value, currency)


def test_to_minor_examples():
    assert money.to_minor(Decimal("10.50"), "RUB") == 1050
    assert money.to_minor("200000", "RUB") == 20_000_000
    assert money.to_minor("5", "JPY") == 5
    assert money.to_minor("1.005", "KWD") == 1005
    assert money.from_minor(1050, "RUB") == Decimal("10.50")
    with pytest.raises(InvalidAmount):
        money.from_minor(10.5, "RUB")
    with pytest.raises(InvalidAmount):
        money.from_minor(-1, "RUB")


def test_format_amount():
    assert money.format_amount(Decimal("1234.5"), "RUB") == "1234.50"
    assert money.format_amount(Decimal("100"), "JPY") == "100"
    assert money.format_amount(Decimal("1000000000000"), "RUB") == "1000000000000.00"


def test_parse_amount_accepts_trailing_zeros_only():
    assert money.parse_amount("49.99000000", "USD") == Decimal("49.99")
    assert money.parse_amount("100", "RUB") == Decimal("100.00")
    with pytest.raises(InvalidAmount):
        money.parse_amount("49.991", "USD")
    with pytest.raises(InvalidAmount):
        money.parse_amount(49.99, "USD")


def test_register_currency():
    money.register_currency("XTS", 2)
    try:
        assert money.to_minor("1.23", "XTS") == 123
    finally:
        del money.CURRENCY_EXPONENTS["XTS"]
    with pytest.raises(InvalidCurrency):
        money.register_currency("XT", 2)
