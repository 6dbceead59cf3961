"""Normalized payment events.

Every provider turns what it receives (a webhook, a status poll, a synchronous
refund answer) into :class:`PaymentEvent` values; the services apply them to
invoices through the transition table of :mod:`django_payments_ru.status`.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from types import MappingProxyType
from typing import Any

from django.db import models
from django.utils import timezone
from django.utils.translation import gettext_lazy as _


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
