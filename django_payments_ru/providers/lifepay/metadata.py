"""What a Life-Pay invoice may carry in ``Invoice.metadata``, validated before
anything is saved or sent.

Documented keys (``docs/providers/lifepay.rst``):

``metadata["lifepay"]``
    ``comment`` (str), ``payment_type`` (A1Lite channel, e.g. ``"spg_test"``),
    ``recurrent`` (A1Lite registration, lifepay.md §8: ``{"comment", "url",
    "period"}``), and for ECOM: ``is_recurrent`` (bool),
    ``send_receipt_through`` (``email|sms|nothing``; an invoice with a receipt
    takes it from the receipt's ``delivery``), ``recurrent_schedule``
    (``{"interval", "frequency"}``), ``split_data`` (list of ``{"order_id",
    "amount", "comment", "merchant_id"}``), ``expire_date``
    (``"YYYY-MM-DD HH:MM:SS"``).

The 54-FZ receipt lines are no longer metadata: they are the invoice's neutral
receipt (:mod:`django_payments_ru.receipts`, ``create_invoice(receipt=...)``),
which the services validate and the old ``metadata["receipt"]`` is converted
into; A1Lite turns them into ``invoice_data`` (:mod:`.a1lite`, lifepay.md §10).
"""

from __future__ import annotations

import json
import re
import secrets
from collections.abc import Collection, Iterator, Mapping
from datetime import datetime
from decimal import Decimal, InvalidOperation
from typing import Any
from urllib.parse import urlsplit

from django.utils.translation import gettext as _
from django.utils.translation import ngettext

from ...exceptions import InvalidInput
from ...receipts import DELIVERIES

# lifepay.md §10 / §11.2: ECOM's send_receipt_through, the neutral deliveries.
RECEIPT_CHANNELS = DELIVERIES
# lifepay.md §11.4.
SCHEDULE_INTERVALS = ("day", "week", "month", "quarter")
LIFEPAY_KEYS = frozenset(
    {
        "comment",
        "payment_type",
        "recurrent",
        "is_recurrent",
        "send_receipt_through",
        "recurrent_schedule",
        "split_data",
        "expire_date",
    }
)
# lifepay.md §11.2.
SPLIT_KEYS = frozenset({"order_id", "amount", "comment", "merchant_id"})
_PAYMENT_TYPE = re.compile(r"^[a-z0-9_]{1,32}$")


def invalid(field: str, message: str) -> InvalidInput:
    return InvalidInput(f"{field}: {message}", field=field, provider="lifepay")


def text(value: Any, field: str, *, longest: int, shortest: int = 0) -> str:
    if not isinstance(value, str):
        raise invalid(field, _("must be a string."))
    if len(value) < shortest:
        raise invalid(
            field,
            ngettext(
                "must have at least %(min)d character.",
                "must have at least %(min)d characters.",
                shortest,
            )
            % {"min": shortest},
        )
    if len(value) > longest:
        raise invalid(
            field,
            ngettext(
                "is longer than %(max)d character.",
                "is longer than %(max)d characters.",
                longest,
            )
            % {"max": longest},
        )
    return value


def choice(value: Any, field: str, choices: tuple[str, ...]) -> str:
    if value not in choices:
        raise invalid(
            field, _("must be one of %(list)s.") % {"list": ", ".join(choices)}
        )
    return str(value)


def decimal(
    value: Any, field: str, *, places: int = 2, positive: bool = True
) -> Decimal:
    # Never a float: 0.1 + 0.2 is not a price (see money.py).
    if isinstance(value, bool) or not isinstance(value, str | int | Decimal):
        raise invalid(field, _("must be a decimal string such as '100.00'."))
    try:
        number = Decimal(str(value).strip())
    except InvalidOperation:
        raise invalid(field, _("is not a number.")) from None
    if not number.is_finite() or number.as_tuple().exponent < -places:  # type: ignore[operator]
        raise invalid(
            field,
            ngettext(
                "must have at most %(places)d decimal.",
                "must have at most %(places)d decimals.",
                places,
            )
            % {"places": places},
        )
    if number < 0 or (positive and number == 0):
        raise invalid(field, _("must be greater than zero."))
    return number


def url(value: Any, field: str, *, longest: int = 2000) -> str:
    value = text(value, field, longest=longest, shortest=1)
    parts = urlsplit(value)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise invalid(field, _("must be an absolute http(s) URL."))
    return value


def _objects(
    items: list[Any], where: str, keys: Collection[str], unknown: str
) -> Iterator[tuple[str, Mapping[str, Any]]]:
    """Each of ``items`` with its place (``where[index]``), refused unless it
    is an object of ``keys`` only (``unknown``: what a stray key is told)."""
    for index, item in enumerate(items):
        at = f"{where}[{index}]"
        if not isinstance(item, Mapping):
            raise invalid(at, _("must be an object."))
        for key in item:
            if key not in keys:
                raise invalid(f"{at}.{key}", unknown)
        yield at, item


def lifepay_options(metadata: Mapping[str, Any]) -> dict[str, Any]:
    """``metadata["lifepay"]`` with unknown keys refused (``{}`` if absent)."""
    options = metadata.get("lifepay")
    if options is None:
        return {}
    if not isinstance(options, Mapping):
        raise invalid("metadata.lifepay", _("must be an object."))
    for key in options:
        if key not in LIFEPAY_KEYS:
            raise invalid(
                f"metadata.lifepay.{key}",
                _("is not a Life-Pay option (known: %(list)s).")
                % {"list": ", ".join(sorted(LIFEPAY_KEYS))},
            )
    return dict(options)


def comment(options: Mapping[str, Any], *, longest: int = 512) -> str:
    if "comment" not in options:
        return ""
    # lifepay.md §11.2: comment 1..512.
    return text(
        options["comment"], "metadata.lifepay.comment", longest=longest, shortest=1
    )


def payment_type(options: Mapping[str, Any]) -> str:
    if "payment_type" not in options:
        return ""
    value = text(options["payment_type"], "metadata.lifepay.payment_type", longest=32)
    if not _PAYMENT_TYPE.match(value):
        raise invalid("metadata.lifepay.payment_type", _("is not a channel code."))
    return value


def recurrent_registration(
    options: Mapping[str, Any], *, order_id: str, email: str
) -> dict[str, str]:
    """A1Lite's ``recurrent_*`` fields of a first recurrent payment (lifepay.md
    §8), or ``{}``."""
    recurrent = options.get("recurrent")
    if recurrent is None:
        return {}
    where = "metadata.lifepay.recurrent"
    if not isinstance(recurrent, Mapping):
        raise invalid(where, _("must be an object."))
    for key in recurrent:
        if key not in ("comment", "url", "period"):
            raise invalid(f"{where}.{key}", _("is not a recurrent field."))
    # lifepay.md §8: consent text and offer URL are required; order_id 6-20
    # characters and an e-mail are mandatory for a recurrent registration.
    fields = {
        "recurrent_type": "first",
        "recurrent_comment": text(
            recurrent.get("comment"), f"{where}.comment", longest=255, shortest=1
        ),
        "recurrent_url": url(recurrent.get("url"), f"{where}.url", longest=255),
        "recurrent_period": text(
            recurrent.get("period", "byrequest"), f"{where}.period", longest=32
        ),
    }
    if not 6 <= len(order_id) <= 20:
        raise invalid(
            "order_id",
            _("a recurrent registration needs an order id of 6 to 20 characters."),
        )
    if not email:
        raise invalid(
            "customer_email", _("a recurrent registration needs the payer's e-mail.")
        )
    return fields


def receipt_channel(
    value: Any, field: str = "metadata.lifepay.send_receipt_through"
) -> str:
    return choice(value, field, RECEIPT_CHANNELS)


def schedule(
    value: Any, field: str = "metadata.lifepay.recurrent_schedule"
) -> dict[str, Any]:
    """A validated ``recurrent_schedule`` (lifepay.md §11.4)."""
    if not isinstance(value, Mapping):
        raise invalid(field, _("must be an object with interval and frequency."))
    for key in value:
        if key not in ("interval", "frequency"):
            raise invalid(f"{field}.{key}", _("is not a schedule field."))
    frequency = value.get("frequency")
    if isinstance(frequency, bool) or not isinstance(frequency, int) or frequency < 1:
        raise invalid(f"{field}.frequency", _("must be an integer of at least 1."))
    return {
        "interval": choice(
            value.get("interval"), f"{field}.interval", SCHEDULE_INTERVALS
        ),
        "frequency": frequency,
    }


def split_lines(options: Mapping[str, Any], amount: Decimal) -> list[dict[str, Any]]:
    """Validated ``split_data`` (lifepay.md §11.2): each line's order id ≤ 64,
    comment ≤ 64, a merchant id, a positive amount; together not above the
    invoice."""
    lines = options.get("split_data")
    if lines is None:
        return []
    where = "metadata.lifepay.split_data"
    if not isinstance(lines, list) or not lines:
        raise invalid(where, _("must be a non-empty list."))
    result = []
    total = Decimal(0)
    unknown = _("is not a field of a split_data line.")
    for at, line in _objects(lines, where, SPLIT_KEYS, unknown):
        item: dict[str, Any] = {
            "order_id": text(
                line.get("order_id"), f"{at}.order_id", longest=64, shortest=1
            ),
            "amount": decimal(line.get("amount"), f"{at}.amount"),
            "merchant_id": text(
                line.get("merchant_id"), f"{at}.merchant_id", longest=64, shortest=1
            ),
        }
        if "comment" in line:
            item["comment"] = text(line["comment"], f"{at}.comment", longest=64)
        total += item["amount"]
        result.append(item)
    if total > amount:
        raise invalid(
            where,
            _("the lines add up to %(total)s, more than the invoice amount %(amount)s.")
            % {"total": total, "amount": amount},
        )
    return result


def expire_date(options: Mapping[str, Any]) -> str:
    if "expire_date" not in options:
        return ""
    value = text(options["expire_date"], "metadata.lifepay.expire_date", longest=19)
    try:
        datetime.strptime(value, "%Y-%m-%d %H:%M:%S")
    except ValueError:
        raise invalid(
            "metadata.lifepay.expire_date", _("must look like '2026-05-15 23:59:59'.")
        ) from None
    return value


def is_recurrent(options: Mapping[str, Any]) -> bool:
    value = options.get("is_recurrent", False)
    if not isinstance(value, bool):
        raise invalid("metadata.lifepay.is_recurrent", _("must be true or false."))
    return value


def dumps(value: Any) -> str:
    """Compact JSON with :class:`~decimal.Decimal` values written as JSON numbers
    digit for digit (``340.00`` stays ``340.00``): no float ever carries an
    amount."""
    # A random marker per call, so no string in the data can pose as a number.
    marker = secrets.token_hex(8)

    def encode(obj: Any) -> Any:
        if isinstance(obj, Decimal):
            return f"{marker}:{obj}:{marker}"
        if isinstance(obj, Mapping):
            return {k: encode(v) for k, v in obj.items()}
        if isinstance(obj, list | tuple):
            return [encode(v) for v in obj]
        return obj

    encoded = json.dumps(encode(value), separators=(",", ":"), ensure_ascii=False)
    return re.sub(f'"{marker}:([-0-9.E+]+):{marker}"', r"\1", encoded)
