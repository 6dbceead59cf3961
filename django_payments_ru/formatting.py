"""Amounts as people read them: the currency's decimals, the locale's signs.

``format_money(Decimal("1234.500"), "RUB")`` is ``"1 234,50 ₽"`` in Russian and
``"RUB1,234.50"`` in English (the group separator and the space before the
sign are no-break spaces, as CLDR has them). The locale's formats and currency
signs come from Babel (CLDR); the number of decimals is the currency's
exponent, whatever the column keeps (three places for every currency).

The exponent is the app's (:func:`django_payments_ru.money.exponent`, ISO 4217)
for a currency the app takes, so that an amount the app accepts is never shown
rounded: CLDR shows HUF, IDR and IQD without decimals (cash rounding) while
ISO 4217, the providers and :mod:`~django_payments_ru.money` use 2, 2 and 3.
Any other currency gets Babel's :func:`~babel.numbers.get_currency_precision`.
"""

from __future__ import annotations

import copy
from decimal import ROUND_HALF_UP, Decimal, InvalidOperation
from functools import lru_cache

from babel import Locale, UnknownLocaleError
from babel.numbers import format_currency, get_currency_precision
from django.conf import settings
from django.utils import translation

from . import money
from .exceptions import InvalidCurrency

__all__ = ["currency_digits", "format_money", "plain_amount"]


def currency_digits(currency: str) -> int:
    """How many decimals ``currency`` is shown with."""
    code = str(currency).upper()
    try:
        return money.exponent(code)
    except InvalidCurrency:
        return int(get_currency_precision(code))


@lru_cache(maxsize=64)
def _locale(name: str) -> Locale:
    try:
        return Locale.parse(translation.to_locale(name))
    except (UnknownLocaleError, ValueError, TypeError):
        try:
            return Locale.parse(name.split("-")[0].split("_")[0])
        except (UnknownLocaleError, ValueError, TypeError):
            return Locale.parse("en")


def _decimal(amount: object) -> Decimal:
    if isinstance(amount, Decimal):
        return amount
    if isinstance(amount, float):
        # Never an amount: a float is a display value at best.
        return Decimal(repr(amount))
    return Decimal(str(amount).strip())


def plain_amount(amount: object, currency: str) -> str:
    """``"1234.50"``: the amount with exactly the currency's decimals, a point
    and no grouping, for machines (the API, a form's initial value)."""
    digits = currency_digits(currency)
    value = _decimal(amount).quantize(Decimal(1).scaleb(-digits), ROUND_HALF_UP)
    return f"{value:f}"


def format_money(amount: object, currency: str, locale: str | None = None) -> str:
    """``amount`` in ``currency`` for people, in ``locale`` (a language code
    such as ``"ru"`` or ``"en-us"``; default: the active language). Never
    raises on a value a template may hold: ``None`` or ``""`` is ``""``, and
    what is not a number is shown as it is."""
    if amount is None or amount == "":
        return ""
    try:
        value = _decimal(amount)
    except (InvalidOperation, ValueError):
        return str(amount)
    if not value.is_finite():
        return str(amount)
    code = str(currency or "").upper()
    where = _locale(
        locale or translation.get_language() or settings.LANGUAGE_CODE or "en"
    )
    if not code:
        return f"{value:f}"
    digits = currency_digits(code)
    value = value.quantize(Decimal(1).scaleb(-digits), ROUND_HALF_UP)
    if digits == get_currency_precision(code):
        return format_currency(value, code, locale=where)
    # Babel's precision differs from the exponent the app uses: the locale's
    # pattern with the app's number of decimals.
    pattern = copy.copy(where.currency_formats["standard"])
    pattern.frac_prec = (digits, digits)
    return pattern.apply(value, where, currency=code, currency_digits=False)
