"""Money: :class:`~decimal.Decimal` amounts with ISO 4217 exponents.

No float ever touches an amount: :func:`to_amount` refuses floats outright, because
``0.1 + 0.2`` is not a sum any accountant would sign. An amount with more decimals
than its currency allows (``10.001`` RUB) is refused with a clear error instead of
being rounded silently.
"""

from __future__ import annotations

from decimal import Decimal, InvalidOperation
from typing import Final

from django.utils.translation import gettext as _

from .exceptions import InvalidAmount, InvalidCurrency

#: ISO 4217 minor-unit exponents of the currencies the app knows. Currencies not
#: listed here are refused; add one with :func:`register_currency`.
CURRENCY_EXPONENTS: dict[str, int] = {
    # 0 decimals
    "BIF": 0, "CLP": 0, "DJF": 0, "GNF": 0, "ISK": 0, "JPY": 0, "KMF": 0,
    "KRW": 0, "PYG": 0, "RWF": 0, "UGX": 0, "UYI": 0, "VND": 0, "VUV": 0,
    "XAF": 0, "XOF": 0, "XPF": 0,
    # 3 decimals
    "BHD": 3, "IQD": 3, "JOD": 3, "KWD": 3, "LYD": 3, "OMR": 3, "TND": 3,
    # 2 decimals
    "AED": 2, "AMD": 2, "AUD": 2, "AZN": 2, "BGN": 2, "BRL": 2, "BYN": 2,
    "CAD": 2, "CHF": 2, "CNY": 2, "CZK": 2, "DKK": 2, "EUR": 2, "GBP": 2,
    "GEL": 2, "HKD": 2, "HUF": 2, "IDR": 2, "ILS": 2, "INR": 2, "KGS": 2,
    "KZT": 2, "MDL": 2, "MXN": 2, "NOK": 2, "NZD": 2, "PLN": 2, "RON": 2,
    "RSD": 2, "RUB": 2, "SEK": 2, "SGD": 2, "THB": 2, "TJS": 2, "TMT": 2,
    "TRY": 2, "UAH": 2, "USD": 2, "UZS": 2, "ZAR": 2,
}  # fmt: skip

#: Digits the database keeps: 18 in all, 3 after the point. Enough for amounts up
#: to 10^15 in any currency with up to three decimals.
MAX_DIGITS: Final = 18
DECIMAL_PLACES: Final = 3
MAX_AMOUNT: Final = Decimal(10) ** (MAX_DIGITS - DECIMAL_PLACES) - 1


def register_currency(code: str, exponent: int) -> None:
    """Teach the app a currency it does not know (``exponent`` = minor-unit digits)."""
    if not (isinstance(code, str) and len(code) == 3 and code.isalpha()):
        raise InvalidCurrency(_("A currency code is three letters."), field="currency")
    if exponent not in (0, 1, 2, 3):
        raise InvalidCurrency(
            _("A currency exponent is 0, 1, 2 or 3."), field="currency"
        )
    CURRENCY_EXPONENTS[code.upper()] = exponent


def normalize_currency(currency: object) -> str:
    """Return the upper-case ISO 4217 code, or raise :class:`InvalidCurrency`."""
    if not isinstance(currency, str):
        raise InvalidCurrency(
            _("The currency must be a three-letter ISO 4217 code."), field="currency"
        )
    code = currency.strip().upper()
    if code not in CURRENCY_EXPONENTS:
        raise InvalidCurrency(
            _("Unknown currency %(code)r: use an ISO 4217 code such as 'RUB'.")
            % {"code": currency},
            field="currency",
        )
    return code


def exponent(currency: str) -> int:
    """Minor-unit digits of ``currency`` (2 for RUB, 0 for JPY, 3 for KWD)."""
    return CURRENCY_EXPONENTS[normalize_currency(currency)]


def to_amount(value: object, currency: str, *, allow_zero: bool = False) -> Decimal:
    """Validate ``value`` as an amount of ``currency`` and return it as a Decimal.

    Accepts :class:`~decimal.Decimal`, :class:`int` and decimal strings
    (``"1234.50"``). Refuses floats, non-finite values, negative amounts, zero
    (unless ``allow_zero``), more decimals than the currency has, and amounts
    beyond :data:`MAX_AMOUNT`. The result is quantized to the currency's exponent.
    """
    code = normalize_currency(currency)
    if isinstance(value, (bool, float)):
        raise InvalidAmount(
            _(
                "Amounts must be Decimal, int or a decimal string, never float: "
                "floats cannot hold sums of money exactly."
            ),
            field="amount",
        )
    if isinstance(value, Decimal):
        amount = value
    elif isinstance(value, int):
        amount = Decimal(value)
    elif isinstance(value, str):
        text = value.strip()
        try:
            amount = Decimal(text)
        except (InvalidOperation, ValueError):
            raise InvalidAmount(
                _("%(value)r is not a decimal number.") % {"value": value},
                field="amount",
            ) from None
        # Refuse exponent notation and other spellings a person would not write.
        if not text or any(ch not in "0123456789.-+" for ch in text):
            raise InvalidAmount(
                _("%(value)r is not a plain decimal number such as '1234.50'.")
                % {"value": value},
                field="amount",
            )
    else:
        raise InvalidAmount(
            _("An amount must be a Decimal, an int or a decimal string."),
            field="amount",
        )
    if not amount.is_finite():
        raise InvalidAmount(_("An amount must be a finite number."), field="amount")
    if amount < 0 or (amount == 0 and not allow_zero):
        raise InvalidAmount(_("The amount must be greater than zero."), field="amount")
    # The ceiling first: quantizing an absurd exponent (1E+100000) would raise
    # decimal.InvalidOperation instead of a clear InvalidAmount.
    if amount > MAX_AMOUNT:
        raise InvalidAmount(
            _("The amount is larger than the largest supported (%(max)s).")
            % {"max": MAX_AMOUNT},
            field="amount",
        )
    exp = CURRENCY_EXPONENTS[code]
    quantum = Decimal(1).scaleb(-exp)
    if amount != amount.quantize(quantum, rounding="ROUND_DOWN"):
        raise InvalidAmount(
            _(
                "%(amount)s has more decimals than %(currency)s allows "
                "(%(exp)d after the point)."
            )
            % {"amount": amount, "currency": code, "exp": exp},
            field="amount",
        )
    return amount.quantize(quantum)


def to_minor(amount: object, currency: str) -> int:
    """Convert an amount to integer minor units exactly: 10.50 RUB -> 1050.

    Raises :class:`InvalidAmount` when the amount does not convert exactly.
    """
    value = to_amount(amount, currency, allow_zero=True)
    return int(value.scaleb(exponent(currency)))


def from_minor(minor: object, currency: str) -> Decimal:
    """Convert integer minor units back to a Decimal amount (1050 RUB -> 10.50)."""
    if isinstance(minor, bool) or not isinstance(minor, int):
        raise InvalidAmount(
            _("Minor units must be an integer, got %(type)s.")
            % {"type": type(minor).__name__},
            field="amount",
        )
    if minor < 0:
        raise InvalidAmount(_("The amount must not be negative."), field="amount")
    exp = exponent(currency)
    if minor > MAX_AMOUNT.scaleb(exp):
        raise InvalidAmount(
            _("The amount is larger than the largest supported (%(max)s).")
            % {"max": MAX_AMOUNT},
            field="amount",
        )
    return Decimal(minor).scaleb(-exp).quantize(Decimal(1).scaleb(-exp))


def format_amount(amount: Decimal, currency: str) -> str:
    """Plain string with exactly the currency's decimals and a dot: ``"1234.50"``."""
    value = to_amount(amount, currency, allow_zero=True)
    return f"{value:.{exponent(currency)}f}"


def parse_amount(value: object, currency: str) -> Decimal:
    """Parse an amount a provider sent (decimal string or int; never float).

    Trailing zeros are accepted (``"49.99000000"`` USD is 49.99, as QuantaPay
    sends it), extra significant decimals are not (``"49.991"`` USD is refused).
    """
    if isinstance(value, str):
        try:
            dec = Decimal(value.strip())
        except (InvalidOperation, ValueError):
            raise InvalidAmount(
                _("%(value)r is not a decimal number.") % {"value": value},
                field="amount",
            ) from None
        value = dec.normalize() if dec.is_finite() else dec
    return to_amount(value, currency, allow_zero=True)
