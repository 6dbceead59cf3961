"""Normalized payment events.

Every provider turns what it receives (a webhook, a status poll, a synchronous
refund answer) into :class:`PaymentEvent` values; the services apply them to
invoices through the transition table of :mod:`django_payments_ru.status`.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from datetime import datetime
from decimal import Decimal
from types import MappingProxyType
from typing import Any, NoReturn

from django.db import models
from django.utils import timezone
from django.utils.translation import gettext
from django.utils.translation import gettext_lazy as _

from .exceptions import InvalidCurrency, WebhookParseError


class EventType(models.TextChoices):
    """What happened to a payment, in the app's own words."""

    #: The customer started paying (payment page opened, session registered).
    PENDING = "pending", _("Payment pending")
    #: The funds are held (two-stage payment) and await capture or release.
    HELD = "held", _("Funds held")
    #: The money was taken.
    PAID = "paid", _("Paid")
    #: The payment attempt was declined or failed.
    FAILED = "failed", _("Failed")
    #: The payment session ran out before the customer paid.
    EXPIRED = "expired", _("Expired")
    #: The payment was cancelled (by the merchant, the customer or a released hold).
    CANCELLED = "cancelled", _("Cancelled")
    #: Money was returned; ``amount`` says how much (``None`` = all of it).
    REFUNDED = "refunded", _("Refunded")
    #: Information that moves no money and changes no status (e.g. a recurrent
    #: consent cancelled). Kept in the inbox, never applied.
    INFO = "info", _("Information")


def _freeze(value: Any) -> Any:
    if isinstance(value, Mapping):
        return MappingProxyType({k: _freeze(v) for k, v in value.items()})
    if isinstance(value, list | tuple):
        return tuple(_freeze(v) for v in value)
    return value


def _thaw(value: Any) -> Any:
    if isinstance(value, Mapping):
        return {k: _thaw(v) for k, v in value.items()}
    if isinstance(value, tuple):
        return [_thaw(v) for v in value]
    return value


@dataclass(frozen=True)
class PaymentEvent:
    """One normalized fact about a payment.

    The invoice is found by ``invoice_ref`` (our invoice's UUID, when the provider
    echoes it back), else by ``provider_payment_id``, else by ``order_id``.
    """

    provider: str
    dedupe_id: str
    type: EventType
    invoice_ref: str = ""
    provider_payment_id: str = ""
    order_id: str = ""
    #: The provider's id of the money movement, where it differs from the
    #: payment's (Life-Pay's ``tid`` of a charge or hold): the services keep it
    #: on the invoice (``provider_transaction_id``) for later calls about it.
    transaction_id: str = ""
    amount: Decimal | None = None
    currency: str = ""
    #: For REFUNDED: everything refunded so far, when the provider reports the
    #: running total (PayConnect's ``refunded_amount``). The services then record
    #: only the difference, so a synchronous API answer and the webhook for the
    #: same refund never count it twice.
    refunded_total: Decimal | None = None
    occurred_at: datetime = field(default_factory=timezone.now)
    #: Why (a decline reason, a refund id...): shown to the merchant.
    reason: str = ""
    #: The payload as received, with secrets removed by the provider.
    raw: Mapping[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        for name in ("amount", "refunded_total"):
            value = getattr(self, name)
            if value is not None and not isinstance(value, Decimal):
                raise TypeError(f"PaymentEvent.{name} must be a Decimal or None")
        if not self.dedupe_id:
            raise ValueError("PaymentEvent.dedupe_id must not be empty")
        object.__setattr__(self, "type", EventType(self.type))
        object.__setattr__(self, "raw", _freeze(self.raw))

    def to_json(self) -> dict[str, Any]:
        """A JSON-safe dict from which :meth:`from_json` rebuilds the event."""
        return {
            "provider": self.provider,
            "dedupe_id": self.dedupe_id,
            "type": str(self.type),
            "invoice_ref": self.invoice_ref,
            "provider_payment_id": self.provider_payment_id,
            "order_id": self.order_id,
            "transaction_id": self.transaction_id,
            "amount": None if self.amount is None else str(self.amount),
            "currency": self.currency,
            "refunded_total": (
                None if self.refunded_total is None else str(self.refunded_total)
            ),
            "occurred_at": self.occurred_at.isoformat(),
            "reason": self.reason,
        }

    @classmethod
    def from_json(
        cls, data: Mapping[str, Any], raw: Mapping[str, Any] | None = None
    ) -> PaymentEvent:
        return cls(
            provider=data["provider"],
            dedupe_id=data["dedupe_id"],
            type=EventType(data["type"]),
            invoice_ref=data.get("invoice_ref", ""),
            provider_payment_id=data.get("provider_payment_id", ""),
            order_id=data.get("order_id", ""),
            transaction_id=data.get("transaction_id", ""),
            amount=None if data.get("amount") is None else Decimal(data["amount"]),
            currency=data.get("currency", ""),
            refunded_total=(
                None
                if data.get("refunded_total") is None
                else Decimal(data["refunded_total"])
            ),
            occurred_at=datetime.fromisoformat(data["occurred_at"]),
            reason=data.get("reason", ""),
            raw=raw or {},
        )

    def raw_json(self) -> Any:
        """The raw payload as plain JSON-compatible data."""
        return _thaw(self.raw)


def stable_hash(*parts: object) -> str:
    """A stable id for a payload that carries none of its own: the SHA-256 of its
    canonical JSON. The same signed notification retried by the provider hashes to
    the same id, so a retry is recognised as a duplicate."""
    canonical = json.dumps(parts, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(canonical.encode()).hexdigest()


#: The longest :attr:`PaymentEvent.reason` kept: it is only shown to the
#: merchant, so a longer one is cut rather than refused.
REASON_MAX = 500
#: The longest :attr:`PaymentEvent.invoice_ref`. No column holds it (it is
#: looked up as our invoice's UUID, 36 characters, or its 32 hex digits), so it
#: is bounded like an order id.
INVOICE_REF_MAX = 64


def _refuse(event: PaymentEvent, message: str, code: str) -> NoReturn:
    raise WebhookParseError(message, provider=event.provider, code=code)


def _text_limits() -> dict[str, int]:
    # Imported here: the models import this module.
    from .models import Invoice, Payment, WebhookEvent

    def length(model: Any, name: str) -> int:
        return int(model._meta.get_field(name).max_length)

    return {
        "provider": length(WebhookEvent, "provider"),
        "dedupe_id": length(WebhookEvent, "dedupe_id"),
        "invoice_ref": INVOICE_REF_MAX,
        "provider_payment_id": min(
            length(Invoice, "provider_payment_id"),
            length(Payment, "provider_payment_id"),
        ),
        "order_id": length(Invoice, "order_id"),
    }


def check_event(event: PaymentEvent) -> PaymentEvent:
    """Check that ``event`` fits what stores it, before anything is written.

    Refuses with :class:`~django_payments_ru.exceptions.WebhookParseError` (the
    webhook is answered 400 and nothing is written): ids longer than their
    columns, text holding NUL, control characters or lone surrogates, an unknown
    currency, an amount or refunded total that is not a finite non-negative
    Decimal up to :data:`~django_payments_ru.money.MAX_AMOUNT` with at most the
    currency's decimals (the column's 3 when the event names no currency), and
    a raw payload that is not plain JSON data (see
    :func:`~django_payments_ru.providers.payload.check_json_value`).

    Returns the event to store: the same one, or a copy with the currency in
    upper case and the reason cut to :data:`REASON_MAX` characters.
    """
    from .money import DECIMAL_PLACES, MAX_AMOUNT, exponent, normalize_currency
    from .providers.payload import check_json_value, unsafe_text

    for name, limit in _text_limits().items():
        value = getattr(event, name)
        if not isinstance(value, str):
            _refuse(
                event, gettext("%(field)s is not text.") % {"field": name}, "invalid_id"
            )
        if unsafe_text(value):
            _refuse(
                event,
                gettext("%(field)s has a control character or a broken character.")
                % {"field": name},
                "unsafe_text",
            )
        if len(value) > limit:
            _refuse(
                event,
                gettext("%(field)s is longer than %(max)d characters.")
                % {"field": name, "max": limit},
                "too_long",
            )
    reason = event.reason
    if not isinstance(reason, str):
        _refuse(
            event, gettext("%(field)s is not text.") % {"field": "reason"}, "invalid_id"
        )
    if unsafe_text(reason):
        _refuse(
            event,
            gettext("%(field)s has a control character or a broken character.")
            % {"field": "reason"},
            "unsafe_text",
        )
    if len(reason) > REASON_MAX:
        reason = reason[: REASON_MAX - 1] + "\u2026"
    currency = event.currency
    if not isinstance(currency, str) or unsafe_text(currency):
        _refuse(
            event, gettext("The currency is not a currency code."), "invalid_currency"
        )
    if currency:
        try:
            currency = normalize_currency(currency)
        except InvalidCurrency:
            _refuse(
                event,
                gettext("The currency %(code)r is unknown.") % {"code": currency[:8]},
                "invalid_currency",
            )
    places = exponent(currency) if currency else DECIMAL_PLACES
    for name in ("amount", "refunded_total"):
        value = getattr(event, name)
        if value is None:
            continue
        # Compared in this order: the ceiling before the quantize, which would
        # raise on an absurd exponent (1E+100000).
        if not (
            isinstance(value, Decimal)
            and value.is_finite()
            and Decimal(0) <= value <= MAX_AMOUNT
            and value == value.quantize(Decimal(1).scaleb(-places), "ROUND_DOWN")
        ):
            _refuse(
                event,
                gettext(
                    "%(field)s is not an amount of %(currency)s: at most %(max)s, "
                    "not negative, with at most %(places)d decimals."
                )
                % {
                    "field": name,
                    "currency": currency or gettext("any currency"),
                    "max": MAX_AMOUNT,
                    "places": places,
                },
                "invalid_amount",
            )
    if not isinstance(event.occurred_at, datetime):
        _refuse(event, gettext("The event has no valid time."), "invalid_time")
    check_json_value(event.raw, provider=event.provider)
    if reason == event.reason and currency == event.currency:
        return event
    return replace(event, reason=reason, currency=currency)
