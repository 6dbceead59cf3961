"""54-FZ receipts, provider-neutral.

A receipt is a list of lines (name, quantity, unit price, line sum, VAT rate,
unit, payment subject and payment method) plus how the customer gets it
(e-mail, SMS, nothing). It is validated once, here, before anything is
written: amounts are :class:`~decimal.Decimal` in the invoice's currency
exponent, quantities have at most three decimals, every line sum is its price
times its quantity, and the lines add up exactly to the invoice amount. Every
error is an :class:`~django_payments_ru.exceptions.InvalidInput` whose message
names the line (counted from 1) and the field.

The value lists are Life-Pay's (lifepay.md section 10, the value lists of the
official-style plugins), used as the provider-neutral vocabulary: each provider
that prints receipts translates them into its own format.

No float anywhere: a float given for an amount or a quantity is refused.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from decimal import ROUND_HALF_UP, Decimal, InvalidOperation
from typing import Any

from django.utils.translation import gettext as _
from django.utils.translation import ngettext

from . import money
from .exceptions import InvalidInput
from .validation import check_text

# lifepay.md section 10 (C-DRUPAL value lists). ``vat0`` (0 %) is a 54-FZ rate
# the list of the reference leaves out; the Life-Pay provider has accepted it
# since its first release.
VAT_RATES: tuple[str, ...] = (
    "none",
    "vat0",
    "vat10",
    "vat110",
    "vat18",
    "vat118",
    "vat20",
    "vat120",
)
UNITS: tuple[str, ...] = (
    "piece",
    "service",
    "package",
    "g",
    "kg",
    "t",
    "ml",
    "m3",
    "hr",
    "m",
    "km",
)
PAYMENT_METHODS: tuple[str, ...] = (
    "full_prepayment",
    "prepayment",
    "advance",
    "full_payment",
    "partial_payment",
    "credit",
    "credit_payment",
)
PAYMENT_OBJECTS: tuple[str, ...] = (
    "commodity",
    "excise",
    "job",
    "service",
    "gambling_bet",
    "gambling_prize",
    "lottery",
    "lottery_prize",
    "intellectual_activity",
    "payment",
    "agent_commission",
    "composite",
    "another",
)
# lifepay.md section 10 / 11.2 (ECOM send_receipt_through).
DELIVERIES: tuple[str, ...] = ("email", "sms", "nothing")

#: The longest item name a provider accepts: 128 (none of the references gives a
#: shorter limit; Life-Pay's plugins cut names at 128).
NAME_MAX_LENGTH = 128
#: The longest item code (Life-Pay's ``code``, lifepay.md section 10).
CODE_MAX_LENGTH = 64
#: Digits after the point of a quantity (54-FZ: up to three, e.g. 0.125 kg).
QUANTITY_PLACES = 3
#: The most lines one receipt may have (ASSUMPTION: fiscal data operators take
#: at most 100 items per receipt; no reference gives another limit).
MAX_LINES = 100

LINE_KEYS = frozenset(
    {
        "name",
        "quantity",
        "price",
        "amount",
        "vat",
        "unit",
        "payment_object",
        "payment_method",
        "code",
    }
)
#: Accepted spellings of a line key (Life-Pay's ``invoice_data`` names).
LINE_ALIASES = {"sum": "amount", "vat_mode": "vat"}


@dataclass(frozen=True)
class ReceiptLine:
    """One line of a receipt: ``amount`` is ``price`` x ``quantity`` rounded
    half up to the currency's exponent."""

    name: str
    quantity: Decimal
    price: Decimal
    amount: Decimal
    vat: str
    unit: str = "piece"
    payment_object: str = "commodity"
    payment_method: str = "full_payment"
    code: str = ""

    @property
    def key(self) -> tuple[str, Decimal]:
        """What a refund line is matched by against the paid lines."""
        return (self.name, self.price)

    def to_json(self) -> dict[str, str]:
        return {
            "name": self.name,
            "quantity": _plain(self.quantity),
            "price": str(self.price),
            "amount": str(self.amount),
            "vat": self.vat,
            "unit": self.unit,
            "payment_object": self.payment_object,
            "payment_method": self.payment_method,
            "code": self.code,
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> ReceiptLine:
        return cls(
            name=str(data["name"]),
            quantity=Decimal(str(data["quantity"])),
            price=Decimal(str(data["price"])),
            amount=Decimal(str(data["amount"])),
            vat=str(data["vat"]),
            unit=str(data.get("unit", "piece")),
            payment_object=str(data.get("payment_object", "commodity")),
            payment_method=str(data.get("payment_method", "full_payment")),
            code=str(data.get("code", "")),
        )


@dataclass(frozen=True)
class Receipt:
    """The lines of a receipt and how it reaches the customer."""

    lines: tuple[ReceiptLine, ...]
    delivery: str = "email"

    @property
    def total(self) -> Decimal:
        return sum((line.amount for line in self.lines), Decimal(0))

    def to_json(self) -> dict[str, Any]:
        """A JSON-safe dict, decimals as strings (what ``Invoice.receipt``
        stores)."""
        return {
            "delivery": self.delivery,
            "lines": [line.to_json() for line in self.lines],
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Receipt:
        """The receipt :meth:`to_json` wrote (stored data, not re-validated)."""
        return cls(
            lines=tuple(ReceiptLine.from_json(line) for line in data["lines"]),
            delivery=str(data.get("delivery", "email")),
        )


def _plain(value: Decimal) -> str:
    """``value`` without trailing zeros and never in exponent notation
    (``Decimal("10.000")`` -> ``"10"``)."""
    text = f"{value.normalize():f}"
    return text


def round_amount(value: Decimal, currency: str) -> Decimal:
    """``value`` rounded half up to ``currency``'s exponent (how a fiscal
    register rounds price x quantity)."""
    quantum = Decimal(1).scaleb(-money.exponent(currency))
    return value.quantize(quantum, rounding=ROUND_HALF_UP)


def line_amount(price: Decimal, quantity: Decimal, currency: str) -> Decimal:
    """The sum of a line: ``price`` x ``quantity`` rounded half up."""
    return round_amount(price * quantity, currency)


# -- validation --------------------------------------------------------------


def _line_error(line: int, field: str, message: str) -> InvalidInput:
    return InvalidInput(
        _("Receipt line %(line)d, %(field)s: %(error)s")
        % {"line": line, "field": field, "error": message},
        field="receipt",
        details={"line": line, "field": field},
    )


def _receipt_error(message: str, field: str = "receipt") -> InvalidInput:
    return InvalidInput(
        _("Receipt: %(error)s") % {"error": message},
        field="receipt",
        details={"field": field},
    )


def _decimal(
    value: Any, line: int, field: str, *, places: int, positive: bool
) -> Decimal:
    # Never a float: 0.1 + 0.2 is not a price (see money.py).
    if isinstance(value, bool) or not isinstance(value, str | int | Decimal):
        if isinstance(value, float):
            message = _("must be a decimal string such as '100.00', never a float.")
        elif value is None:
            message = _("is required.")
        else:
            message = _("must be a decimal string such as '100.00'.")
        raise _line_error(line, field, message)
    if isinstance(value, str):
        text = value.strip()
        if not text or any(ch not in "0123456789.-+" for ch in text):
            raise _line_error(
                line, field, _("is not a plain decimal number such as '100.00'.")
            )
        try:
            number = Decimal(text)
        except InvalidOperation:
            raise _line_error(line, field, _("is not a number.")) from None
    else:
        number = Decimal(value)
    if not number.is_finite():
        raise _line_error(line, field, _("must be a finite number."))
    if number < 0 or (positive and number == 0):
        raise _line_error(
            line,
            field,
            _("must be greater than zero.") if positive else _("must not be negative."),
        )
    if number > money.MAX_AMOUNT:
        raise _line_error(
            line,
            field,
            _("is larger than the largest supported (%(max)s).")
            % {"max": money.MAX_AMOUNT},
        )
    quantum = Decimal(1).scaleb(-places)
    if number != number.quantize(quantum, rounding="ROUND_DOWN"):
        raise _line_error(
            line,
            field,
            ngettext(
                "must have at most %(places)d decimal.",
                "must have at most %(places)d decimals.",
                places,
            )
            % {"places": places},
        )
    return number


def _choice(value: Any, line: int, field: str, choices: tuple[str, ...]) -> str:
    if value not in choices:
        raise _line_error(
            line, field, _("must be one of %(list)s.") % {"list": ", ".join(choices)}
        )
    return str(value)


def _text(value: Any, line: int, field: str, *, longest: int, required: bool) -> str:
    if not isinstance(value, str):
        raise _line_error(
            line, field, _("is required.") if value is None else _("must be text.")
        )
    value = value.strip()
    if required and not value:
        raise _line_error(line, field, _("must not be empty."))
    if len(value) > longest:
        raise _line_error(
            line,
            field,
            ngettext(
                "is longer than %(max)d character.",
                "is longer than %(max)d characters.",
                longest,
            )
            % {"max": longest},
        )
    try:
        check_text(value, "receipt", field)
    except InvalidInput as exc:
        raise _line_error(line, field, exc.message) from None
    return value


def _parse_line(item: Any, line: int, currency: str) -> ReceiptLine:
    if isinstance(item, ReceiptLine):
        item = item.to_json()
    if not isinstance(item, Mapping):
        raise _line_error(line, _("line"), _("must be an object."))
    data: dict[str, Any] = {}
    for key, value in item.items():
        name = LINE_ALIASES.get(key, key)
        if name not in LINE_KEYS:
            raise _line_error(line, str(key), _("is not a receipt line field."))
        if name in data:
            raise _line_error(
                line, str(key), _("is given twice (%(key)s).") % {"key": name}
            )
        data[name] = value
    places = money.exponent(currency)
    parsed = ReceiptLine(
        name=_text(
            data.get("name"), line, "name", longest=NAME_MAX_LENGTH, required=True
        ),
        quantity=_decimal(
            data.get("quantity"),
            line,
            "quantity",
            places=QUANTITY_PLACES,
            positive=True,
        ),
        price=_decimal(data.get("price"), line, "price", places=places, positive=False),
        amount=_decimal(
            data.get("amount"), line, "amount", places=places, positive=False
        ),
        vat=_choice(data.get("vat"), line, "vat", VAT_RATES),
        unit=_choice(data.get("unit", "piece"), line, "unit", UNITS),
        payment_object=_choice(
            data.get("payment_object", "commodity"),
            line,
            "payment_object",
            PAYMENT_OBJECTS,
        ),
        payment_method=_choice(
            data.get("payment_method", "full_payment"),
            line,
            "payment_method",
            PAYMENT_METHODS,
        ),
        code=_text(
            data.get("code", ""), line, "code", longest=CODE_MAX_LENGTH, required=False
        ),
    )
    expected = line_amount(parsed.price, parsed.quantity, currency)
    if parsed.amount != expected:
        raise _line_error(
            line,
            "amount",
            _("is %(amount)s, but price x quantity is %(expected)s.")
            % {"amount": parsed.amount, "expected": expected},
        )
    # One spelling per value: what is stored and sent is the same for equal
    # inputs ("340" and "340.00" are both 340.00 RUB).
    quantum = Decimal(1).scaleb(-places)
    return ReceiptLine(
        name=parsed.name,
        quantity=Decimal(_plain(parsed.quantity)),
        price=parsed.price.quantize(quantum),
        amount=parsed.amount.quantize(quantum),
        vat=parsed.vat,
        unit=parsed.unit,
        payment_object=parsed.payment_object,
        payment_method=parsed.payment_method,
        code=parsed.code,
    )


def _parse_lines(data: Any, currency: str) -> tuple[tuple[ReceiptLine, ...], str]:
    delivery: Any = "email"
    if isinstance(data, Receipt):
        lines: Any = data.lines
        delivery = data.delivery
    elif isinstance(data, Mapping):
        for key in data:
            if key not in ("lines", "delivery"):
                raise _receipt_error(
                    _("%(key)s is not a receipt field (known: lines, delivery).")
                    % {"key": key},
                    str(key),
                )
        lines = data.get("lines")
        delivery = data.get("delivery", "email")
    else:
        lines = data
    if delivery not in DELIVERIES:
        raise _receipt_error(
            _("delivery must be one of %(list)s.") % {"list": ", ".join(DELIVERIES)},
            "delivery",
        )
    if isinstance(lines, str | bytes) or not isinstance(lines, Iterable):
        raise _receipt_error(_("the lines must be a list."), "lines")
    lines = list(lines)
    if not lines:
        raise _receipt_error(_("a receipt needs at least one line."), "lines")
    if len(lines) > MAX_LINES:
        raise _receipt_error(
            ngettext(
                "a receipt has at most %(max)d line.",
                "a receipt has at most %(max)d lines.",
                MAX_LINES,
            )
            % {"max": MAX_LINES},
            "lines",
        )
    parsed = tuple(
        _parse_line(item, number, currency) for number, item in enumerate(lines, 1)
    )
    return parsed, str(delivery)


def parse_receipt(data: Any, *, amount: Decimal, currency: str) -> Receipt:
    """The validated receipt of an invoice of ``amount`` ``currency``.

    ``data`` is a :class:`Receipt`, a mapping ``{"lines": [...], "delivery":
    "email"}`` or a plain list of lines; each line a mapping of
    :class:`ReceiptLine`'s fields (``sum`` is accepted for ``amount`` and
    ``vat_mode`` for ``vat``). Raises :class:`InvalidInput` naming the line
    (from 1) and the field.
    """
    lines, delivery = _parse_lines(data, currency)
    receipt = Receipt(lines=lines, delivery=delivery)
    if receipt.total != amount:
        raise _receipt_error(
            _("the lines add up to %(total)s, not to the invoice amount %(amount)s.")
            % {
                "total": receipt.total,
                "amount": money.format_amount(amount, currency),
            },
            "lines",
        )
    return receipt


# -- refunds -----------------------------------------------------------------


@dataclass
class _Left:
    line: ReceiptLine
    quantity: Decimal
    amount: Decimal


def _left(
    paid: Receipt, refunded: Iterable[Receipt]
) -> dict[tuple[str, Decimal], _Left]:
    """What may still be refunded of each paid line (by name and price)."""
    left: dict[tuple[str, Decimal], _Left] = {}
    for line in paid.lines:
        if line.key in left:
            left[line.key].quantity += line.quantity
            left[line.key].amount += line.amount
        else:
            left[line.key] = _Left(line, line.quantity, line.amount)
    for receipt in refunded:
        for line in receipt.lines:
            entry = left.get(line.key)
            if entry is not None:
                entry.quantity -= line.quantity
                entry.amount -= line.amount
    return left


def refundable_lines(
    paid: Receipt, refunded: Iterable[Receipt] = ()
) -> tuple[ReceiptLine, ...]:
    """The paid lines not refunded yet, each with the quantity and sum left
    (what a refund of everything carries)."""
    lines = []
    for entry in _left(paid, refunded).values():
        if entry.quantity > 0 and entry.amount > 0:
            lines.append(
                ReceiptLine(
                    name=entry.line.name,
                    quantity=entry.quantity,
                    price=entry.line.price,
                    amount=entry.amount,
                    vat=entry.line.vat,
                    unit=entry.line.unit,
                    payment_object=entry.line.payment_object,
                    payment_method=entry.line.payment_method,
                    code=entry.line.code,
                )
            )
    return tuple(lines)


def parse_refund_lines(
    paid: Receipt,
    refunded: list[Receipt],
    data: Any,
    *,
    amount: Decimal | None,
    currency: str,
) -> Receipt:
    """The lines of a refund of an invoice whose receipt is ``paid`` and whose
    earlier refunds (confirmed or in flight) carried ``refunded``.

    ``data=None``: every line not yet refunded (``amount``, if given, must be
    their total: a partial refund names its lines). Otherwise ``data`` is
    parsed like :func:`parse_receipt`'s and each line must be a paid line (same
    name, price and VAT rate) with at most the quantity still refundable; the
    refund ``amount``, if given, must equal the lines' total.
    """
    left = _left(paid, refunded)
    if data is None:
        lines = refundable_lines(paid, refunded)
        if not lines:
            raise _receipt_error(_("every line of the receipt is already refunded."))
        receipt = Receipt(lines=lines, delivery=paid.delivery)
        if amount is not None and amount != receipt.total:
            raise _receipt_error(
                _(
                    "the lines not yet refunded add up to %(total)s, not to "
                    "%(amount)s: name the lines of a partial refund."
                )
                % {
                    "total": receipt.total,
                    "amount": money.format_amount(amount, currency),
                },
                "lines",
            )
        return receipt
    if isinstance(data, Mapping) and "delivery" not in data:
        data = {**data, "delivery": paid.delivery}
    parsed, delivery = _parse_lines(data, currency)
    if not isinstance(data, Mapping | Receipt):
        delivery = paid.delivery
    wanted: dict[tuple[str, Decimal], Decimal] = {}
    for number, line in enumerate(parsed, 1):
        entry = left.get(line.key)
        if entry is None:
            raise _line_error(
                number,
                "name",
                _("%(name)s at %(price)s is not a line of the paid receipt.")
                % {"name": line.name, "price": line.price},
            )
        if line.vat != entry.line.vat:
            raise _line_error(
                number,
                "vat",
                _("is %(vat)s, but the paid line has %(paid)s.")
                % {"vat": line.vat, "paid": entry.line.vat},
            )
        wanted[line.key] = wanted.get(line.key, Decimal(0)) + line.quantity
        if wanted[line.key] > entry.quantity:
            raise _line_error(
                number,
                "quantity",
                _("%(quantity)s is more than the %(left)s left to refund.")
                % {
                    "quantity": _plain(wanted[line.key]),
                    "left": _plain(max(entry.quantity, Decimal(0))),
                },
            )
    receipt = Receipt(lines=parsed, delivery=delivery)
    if amount is not None and receipt.total != amount:
        raise _receipt_error(
            _("the refunded lines add up to %(total)s, not to the refund %(amount)s.")
            % {
                "total": receipt.total,
                "amount": money.format_amount(amount, currency),
            },
            "lines",
        )
    return receipt


# -- the deprecated metadata["receipt"] ---------------------------------------


def from_legacy_metadata(metadata: Mapping[str, Any]) -> dict[str, Any] | None:
    """The neutral receipt data of Life-Pay's old ``metadata["receipt"]``
    (``vat_mode`` -> ``vat``, ``sum`` -> ``amount``; the delivery from
    ``metadata["lifepay"]["send_receipt_through"]``, else e-mail), or ``None``
    when the metadata has none."""
    items = metadata.get("receipt")
    if items is None:
        return None
    options = metadata.get("lifepay")
    delivery: Any = "email"
    if isinstance(options, Mapping) and "send_receipt_through" in options:
        delivery = options["send_receipt_through"]
    if not isinstance(items, list):
        return {"lines": items, "delivery": delivery}
    lines = [
        {LINE_ALIASES.get(k, k): v for k, v in item.items()}
        if isinstance(item, Mapping)
        else item
        for item in items
    ]
    return {"lines": lines, "delivery": delivery}
