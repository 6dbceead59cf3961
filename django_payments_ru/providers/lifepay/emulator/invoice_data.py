"""The emulator's check of an A1Lite ``invoice_data`` (lifepay.md §10).

What Life-Pay would refuse to print: ``items[]`` empty or not a list, an item
field it does not know, a name of more than 128 characters, a ``vat_mode``,
``unit``, ``payment_method`` or ``payment_object`` outside §10's value lists,
a ``sum`` that is not ``price`` x ``quantity`` (rounded half up to kopecks, as
a fiscal register rounds it), and items that do not add up to the form's
``cost``. The check is the emulator's own, independent of the client's
validation (:mod:`django_payments_ru.receipts`), so that a test can prove the
emulator refuses what the client would never send.

Numbers arrive as JSON numbers (the example of §10 writes ``340.00``); they
are read as :class:`~decimal.Decimal` (``parse_float``), never as floats.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from decimal import ROUND_HALF_UP, Decimal
from typing import Any

from django.utils.translation import gettext as _

from ....receipts import PAYMENT_METHODS, PAYMENT_OBJECTS, UNITS, VAT_RATES
from .. import metadata as meta
from .common import rubles

#: The item fields of lifepay.md §10 (``payment_object`` and
#: ``payment_method`` as the plugins send them, C-DRUPAL).
ITEM_KEYS = frozenset(
    {
        "code",
        "name",
        "unit",
        "price",
        "quantity",
        "sum",
        "vat_mode",
        "payment_method",
        "payment_object",
    }
)
KOPECK = Decimal("0.01")


def _number(value: Any, field: str, *, places: int, positive: bool) -> Decimal:
    # A JSON number read with parse_float=Decimal, or an int; a string passes
    # too (RFI plugins send "340.00").
    if isinstance(value, Decimal):
        value = str(value)
    return meta.decimal(value, field, places=places, positive=positive)


def items(invoice_data: str, cost: Decimal) -> list[dict[str, Any]]:
    """The checked items of the form's ``invoice_data`` for ``cost``; raises
    :class:`~django_payments_ru.exceptions.InvalidInput` naming
    ``invoice_data.items[<n>].<field>``."""
    try:
        data = json.loads(invoice_data, parse_float=Decimal)
    except ValueError:
        raise meta.invalid("invoice_data", _("is not valid JSON.")) from None
    if not isinstance(data, Mapping) or set(data) - {"items", "vat_total"}:
        raise meta.invalid(
            "invoice_data", _("must be an object with items and vat_total only.")
        )
    found = data.get("items")
    if not isinstance(found, list) or not found:
        # lifepay.md §10: items[] is non-empty.
        raise meta.invalid("invoice_data.items", _("must be a non-empty list."))
    checked: list[dict[str, Any]] = []
    total = Decimal(0)
    unknown = _("is not a receipt field.")
    for where, item in meta._objects(found, "invoice_data.items", ITEM_KEYS, unknown):
        line: dict[str, Any] = {}
        if "code" in item:
            line["code"] = meta.text(item["code"], f"{where}.code", longest=64)
        line["name"] = meta.text(
            item.get("name"), f"{where}.name", longest=128, shortest=1
        )
        if "unit" in item:
            line["unit"] = meta.choice(item["unit"], f"{where}.unit", UNITS)
        line["price"] = _number(
            item.get("price"), f"{where}.price", places=2, positive=False
        )
        line["quantity"] = _number(
            item.get("quantity"), f"{where}.quantity", places=3, positive=True
        )
        line["sum"] = _number(item.get("sum"), f"{where}.sum", places=2, positive=False)
        line["vat_mode"] = meta.choice(
            item.get("vat_mode"), f"{where}.vat_mode", VAT_RATES
        )
        for name, choices in (
            ("payment_method", PAYMENT_METHODS),
            ("payment_object", PAYMENT_OBJECTS),
        ):
            if name in item:
                line[name] = meta.choice(item[name], f"{where}.{name}", choices)
        exact = (line["price"] * line["quantity"]).quantize(
            KOPECK, rounding=ROUND_HALF_UP
        )
        if line["sum"] != exact:
            raise meta.invalid(f"{where}.sum", _("is not price times quantity."))
        total += line["sum"]
        checked.append(line)
    if total != cost:
        raise meta.invalid(
            "invoice_data.items",
            _("the lines add up to %(total)s, not to the invoice amount %(amount)s.")
            % {"total": rubles(total), "amount": rubles(cost)},
        )
    return checked


__all__ = ["ITEM_KEYS", "items"]
