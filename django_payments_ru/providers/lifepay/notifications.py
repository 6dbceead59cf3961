"""Life-Pay's notifications: reading, verifying and parsing them (lifepay.md §6).

Shared by both surfaces: ECOM invoices are paid on the A1Lite pipeline and
notify like it, plus ``invoice_id`` and ``short_id`` (ASSUMPTION A-5). The
functions take what they need explicitly; :class:`.provider.Provider` calls them
with its options from ``verify_webhook`` and ``parse_webhook``.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from datetime import datetime, timedelta, timezone
from decimal import Decimal

from django.http import HttpRequest
from django.utils import timezone as dj_timezone

from ...events import EventType, PaymentEvent, stable_hash
from ...exceptions import InvalidInput, WebhookParseError, WebhookVerificationError
from ...money import parse_amount
from ..signing import matches_any
from .signature import UNSIGNED_FIELDS, sign_notification, signed_fields

#: ASSUMPTION A-8: ``date_created`` is Moscow time.
MOSCOW = timezone(timedelta(hours=3))
#: How notifications are authenticated, for the docs' feature matrix (§6.4).
WEBHOOK_AUTH = "MD5 (v1.0) or HMAC-SHA256 (v2.0) over the form fields"
_HEX_UUID = re.compile(r"^[0-9a-f]{32}$")

#: lifepay.md §6.3 commands.
COMMANDS: dict[str, EventType] = {
    "success": EventType.PAID,
    "process": EventType.PENDING,
    "cancel": EventType.FAILED,
    "refund": EventType.REFUNDED,
    "funds_blocked": EventType.HELD,
    "recurrent_cancel": EventType.INFO,
    "recurrent_expire": EventType.INFO,
}


def form_fields(request: HttpRequest, *, alias: str) -> dict[str, str]:
    """The notification's fields, each given once."""
    content_type = request.content_type or ""
    if content_type != "application/x-www-form-urlencoded":
        # lifepay.md §6.1: always form-encoded.
        raise WebhookVerificationError(
            "A Life-Pay notification is form-encoded.",
            provider=alias,
            code="invalid_content_type",
        )
    fields: dict[str, str] = {}
    for name, values in request.POST.lists():
        if len(values) != 1:
            raise WebhookVerificationError(
                f"The field {name!r} is repeated.",
                provider=alias,
                code="ambiguous_field",
            )
        fields[name] = values[0]
    return fields


def verify(
    fields: Mapping[str, str],
    *,
    alias: str,
    version: str,
    secrets: Sequence[str],
    url: str,
    service_id: int | None,
) -> None:
    """Raise unless ``fields`` carry a ``check`` of ``version`` made with one of
    ``secrets`` (v2.0 over ``url``, ASSUMPTION A-4) for ``service_id``."""
    given = fields.get("check", "")
    if not given:
        raise WebhookVerificationError(
            "The notification is not signed (no check).",
            provider=alias,
            code="missing_signature",
        )
    if fields.get("version", "") != version:
        # The cabinet's "signature version" decides the scheme: a
        # notification claiming another one is a downgrade attempt.
        raise WebhookVerificationError(
            f"The notification uses signature version "
            f"{fields.get('version', '')!r}, not {version!r}.",
            provider=alias,
            code="wrong_signature_version",
        )

    def expected(secret: str | bytes) -> str:
        key = secret if isinstance(secret, str) else secret.decode()
        return sign_notification(version, key, url, fields)

    # §6.4: v1.0 checks are lower-case hex; compare case-insensitively.
    if version == "1.0":
        given = given.lower()
    if not matches_any(given, secrets, expected):
        raise WebhookVerificationError(
            "The notification's check does not match.", provider=alias
        )
    if service_id is not None and fields.get("service_id") not in (
        "",
        str(service_id),
    ):
        raise WebhookVerificationError(
            "The notification is for another service.",
            provider=alias,
            code="wrong_service",
        )


def parse(fields: Mapping[str, str], *, alias: str, version: str) -> PaymentEvent:
    """The event of one verified notification (lifepay.md §6.2, §6.3)."""
    command = fields.get("command", "")
    tid = fields.get("tid", "")
    if not command or not (tid or fields.get("invoice_id")):
        raise WebhookParseError(
            "Not a Life-Pay notification (no command or tid).", provider=alias
        )
    kind = COMMANDS.get(command, EventType.INFO)
    currency = fields.get("currency") or "RUB"
    try:
        cost = parse_amount(fields.get("cost") or "0", currency)
        income = parse_amount(fields.get("income") or "0", currency)
        income_total = parse_amount(fields.get("income_total") or "0", currency)
    except InvalidInput:
        raise WebhookParseError(
            "The notification's amounts are not decimal numbers.", provider=alias
        ) from None
    amount: Decimal | None = None
    if kind is EventType.PAID:
        # ASSUMPTION A-1: what the customer paid in all; must match.
        amount = income_total or cost
    elif kind is EventType.HELD:
        amount = cost
    elif kind is EventType.PENDING and cost and income_total >= cost:
        # lifepay.md §6.3: "process" is any payment; a complete one pays.
        kind, amount = EventType.PAID, income_total
    elif kind is EventType.REFUNDED:
        if fields.get("result", "ok") != "ok":
            kind = EventType.INFO  # a failed refund moves no money
        else:
            # ASSUMPTION A-16: income is this refund's amount.
            amount = income
    # Dedupe: the signed fields identify the notification, so Life-Pay's
    # retries (same body) share an id while a later refund of the same tid
    # (other command, amount, date, payback id) does not.
    dedupe = "lp:" + stable_hash(command, signed_fields(version, fields))
    order_id = fields.get("order_id", "")
    invoice_id = fields.get("invoice_id", "")
    return PaymentEvent(
        provider=alias,
        dedupe_id=dedupe,
        type=kind,
        invoice_ref=order_id if _HEX_UUID.match(order_id) else "",
        provider_payment_id=invoice_id or tid,
        order_id=order_id,
        # The tid of the money: the services keep it on the invoice, where
        # refunds and the end of a hold find it (§5, §9; ASSUMPTION L-6). Set
        # on A1Lite too, where it is also the payment id: the invoice's payment
        # id may be an earlier, declined attempt's tid.
        transaction_id=tid if kind in (EventType.PAID, EventType.HELD) else "",
        amount=amount,
        currency=currency,
        occurred_at=moscow_time(fields.get("date_created", "")),
        reason=fields.get("resultStr", "") or command,
        raw={k: v for k, v in fields.items() if k not in UNSIGNED_FIELDS},
    )


def moscow_time(value: str) -> datetime:
    """A ``date_created`` (ASSUMPTION A-8), or now when it is not one."""
    try:
        return datetime.strptime(value, "%Y-%m-%d %H:%M:%S").replace(tzinfo=MOSCOW)
    except ValueError:
        return dj_timezone.now()


__all__ = [
    "COMMANDS",
    "MOSCOW",
    "WEBHOOK_AUTH",
    "form_fields",
    "moscow_time",
    "parse",
    "verify",
]
