"""The emulator's notifications (lifepay.md §6): their fields and signature.

Both surfaces notify alike: an ECOM invoice is paid on the A1Lite pipeline and
its notification is the same form plus ``invoice_id`` and ``short_id``
(ASSUMPTION A-5). :meth:`.service.LifePayEmulator.notify` posts what these
functions build.
"""

from __future__ import annotations

from collections.abc import Mapping
from decimal import Decimal
from typing import Any

from ....emulator.models import EmulatedPayment
from ..signature import sign_notification
from .common import ECOM, rubles

#: lifepay.md §6.1: notifications are always form-encoded.
HEADERS = {"Content-Type": "application/x-www-form-urlencoded"}


def fields(
    payment: EmulatedPayment, command: str, *, fee_percent: Any, **extra: str
) -> dict[str, str]:
    """Every field of §6.2 (A-7), money per A-1, plus ``currency`` (A-17);
    ``extra`` overrides them. ``version`` and ``check`` are :func:`signed`'s."""
    data = payment.data
    cost = payment.amount
    paid = command in ("success", "process")
    fee = (cost * Decimal(str(fee_percent)) / 100).quantize(Decimal("0.01"))
    income = rubles(cost) if paid else "0.00"
    result = {
        "tid": str(data.get("tid", "")),
        "name": payment.description,
        "comment": str(data.get("comment", "")),
        "partner_id": str(data.get("partner_id", "")),
        "service_id": str(data.get("service_id", "")),
        "order_id": payment.order_id,
        "type": str(data.get("payment_type") or "spg_test"),
        "cost": rubles(cost),
        "income_total": income,
        "income": income,
        "partner_income": rubles(cost - fee) if paid else "0.00",
        "system_income": income,
        "command": command,
        "phone_number": str(data.get("phone_number", "")),
        "email": payment.customer_email,
        "resultStr": "",
        "date_created": str(data.get("date_created", "")),
        "version": "",
        "currency": "RUB",
    }
    if data.get("kind") == ECOM:
        result["invoice_id"] = payment.external_id
        result["short_id"] = str(data.get("short_id", ""))
    if data.get("recurrent_order_id"):
        result["recurrent_order_id"] = str(data["recurrent_order_id"])
    result.update(extra)
    return result


def signed(fields: Mapping[str, str], service: Mapping[str, Any]) -> dict[str, str]:
    """``fields`` with the service's signature ``version`` and their ``check``:
    v1.0 MD5 or v2.0 HMAC over the URL posted to (§6.4, A-4)."""
    version = str(service["signature_version"])
    result = {**fields, "version": version}
    url = str(service.get("webhook_url") or "")
    result["check"] = sign_notification(version, service["secret_key"], url, result)
    return result
