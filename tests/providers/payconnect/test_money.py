"""Minor units (payconnect.md F-7): exact both ways, for currencies with 0, 2
and 3 decimals; anything that does not convert exactly is refused; no float."""

from __future__ import annotations

import ast
import inspect
from decimal import Decimal

import pytest
from hypothesis import given
from hypothesis import strategies as st

from django_payments_ru.exceptions import InvalidAmount
from django_payments_ru.providers.payconnect import emulator, provider
from django_payments_ru.providers.payconnect.provider import major_units, minor_units

CURRENCIES = {"JPY": 0, "RUB": 2, "USD": 2, "KWD": 3, "BHD": 3}


@given(
    currency=st.sampled_from(sorted(CURRENCIES)),
    # The largest amount the app keeps is 10**15 - 1 in major units.
    minor=st.integers(min_value=0, max_value=10**15 - 1),
)
def test_minor_units_round_trip_exactly(currency, minor):
    amount = major_units(minor, currency)
    assert isinstance(amount, Decimal)
    assert amount.as_tuple().exponent == -CURRENCIES[currency]
    assert minor_units(amount, currency) == minor
    assert minor_units(str(amount), currency) == minor


@given(
    currency=st.sampled_from(sorted(CURRENCIES)),
    amount=st.decimals(
        min_value=Decimal("0.0001"),
        max_value=Decimal("999999999999"),
        places=4,
        allow_nan=False,
        allow_infinity=False,
    ),
)
def test_an_amount_converts_only_when_exact(currency, amount):
    places = CURRENCIES[currency]
    exact = amount == amount.quantize(Decimal(1).scaleb(-places))
    if exact:
        minor = minor_units(amount, currency)
        assert Decimal(minor) == amount.scaleb(places)
        assert major_units(minor, currency) == amount
    else:
        with pytest.raises(InvalidAmount):
            minor_units(amount, currency)


@given(st.floats(allow_nan=True, allow_infinity=True))
def test_floats_are_refused(value):
    with pytest.raises(InvalidAmount):
        minor_units(value, "RUB")  # type: ignore[arg-type]


@pytest.mark.parametrize("value", [1.5, True, "10", None])
def test_major_units_take_only_integers(value):
    with pytest.raises(InvalidAmount):
        major_units(value, "RUB")


@pytest.mark.parametrize("module", [provider, emulator])
def test_no_float_anywhere(module):
    tree = ast.parse(inspect.getsource(module))
    floats = [
        node.lineno
        for node in ast.walk(tree)
        if isinstance(node, ast.Call)
        and isinstance(node.func, ast.Name)
        and node.func.id == "float"
    ]
    # float() only for times and durations, never next to an amount.
    source = inspect.getsource(module).splitlines()
    for line in floats:
        assert "amount" not in source[line - 1], source[line - 1]
