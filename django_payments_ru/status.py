"""Invoice statuses and the transition table.

:data:`TRANSITIONS` is the only definition of what may follow what; the services
apply it and nothing else changes an invoice's status. Its rules:

* Money facts win: a verified PAID is applied from any unpaid state, because the
  money moved. Arriving after ``cancelled`` or ``expired`` it is applied *and*
  flagged for the merchant's attention.
* Nothing goes backwards: FAILED, EXPIRED and CANCELLED never override ``paid``;
  a refund never exceeds what was paid (checked by the services and the database).
* A repeated or same-state event is a no-op: no write, no signal.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from django.db import models
from django.utils.translation import gettext_lazy as _

from .events import EventType
from .results import Message, msg


class InvoiceStatus(models.TextChoices):
    CREATED = "created", _("Created")
    PENDING = "pending", _("Pending")
    ON_HOLD = "on_hold", _("On hold")
    PAID = "paid", _("Paid")
    PARTIALLY_REFUNDED = "partially_refunded", _("Partially refunded")
    REFUNDED = "refunded", _("Refunded")
    FAILED = "failed", _("Failed")
    EXPIRED = "expired", _("Expired")
    CANCELLED = "cancelled", _("Cancelled")


S = InvoiceStatus
E = EventType

#: Statuses in which no money has been taken yet.
UNPAID = frozenset({S.CREATED, S.PENDING, S.ON_HOLD, S.FAILED, S.EXPIRED, S.CANCELLED})
#: Statuses in which money was taken (and perhaps partly or wholly returned).
PAID_STATES = frozenset({S.PAID, S.PARTIALLY_REFUNDED, S.REFUNDED})
#: Statuses a customer can still pay from without the merchant's attention.
PAYABLE = frozenset({S.CREATED, S.PENDING, S.FAILED})
#: Statuses the merchant may cancel.
CANCELLABLE = frozenset({S.CREATED, S.PENDING, S.ON_HOLD, S.FAILED})
#: Statuses that wait for the provider (the return view and reconciliation ask it).
AWAITING = frozenset({S.CREATED, S.PENDING, S.ON_HOLD})


class Outcome(StrEnum):
    APPLY = "apply"  # change the status
    NOOP = "noop"  # same state: nothing to do
    IGNORE = "ignore"  # would go backwards or make no sense: keep the event, do nothing


@dataclass(frozen=True)
class Rule:
    outcome: Outcome
    #: The new status for APPLY; for REFUNDED the services pick
    #: ``partially_refunded`` or ``refunded`` by the amounts.
    target: InvoiceStatus | None = None
    #: Apply, but flag the invoice for the merchant's attention.
    flag: bool = False
    #: Why (stored as a code, see :mod:`django_payments_ru.results`).
    reason: Message | None = None


def _apply(
    target: InvoiceStatus, flag: bool = False, reason: Message | None = None
) -> Rule:
    return Rule(Outcome.APPLY, target, flag, reason)


NOOP = Rule(Outcome.NOOP, reason=msg("same_state"))


def _ignore(reason: Message) -> Rule:
    return Rule(Outcome.IGNORE, None, False, reason)


_REFUND = _apply(S.REFUNDED)  # services narrow it to partially_refunded by amount
_NO_MONEY = msg("refund_before_payment")


def _late_paid(status: str) -> Message:
    return msg("late_payment", status=status)


def _late_hold(status: str) -> Message:
    return msg("late_hold", status=status)


def _backwards(event: str, status: str) -> Message:
    return msg("backwards", event=event, status=status)


TRANSITIONS: dict[InvoiceStatus, dict[EventType, Rule]] = {
    S.CREATED: {
        E.PENDING: _apply(S.PENDING),
        E.HELD: _apply(S.ON_HOLD),
        E.PAID: _apply(S.PAID),
        E.FAILED: _apply(S.FAILED),
        E.EXPIRED: _apply(S.EXPIRED),
        E.CANCELLED: _apply(S.CANCELLED),
        E.REFUNDED: _ignore(_NO_MONEY),
    },
    S.PENDING: {
        E.PENDING: NOOP,
        E.HELD: _apply(S.ON_HOLD),
        E.PAID: _apply(S.PAID),
        E.FAILED: _apply(S.FAILED),
        E.EXPIRED: _apply(S.EXPIRED),
        E.CANCELLED: _apply(S.CANCELLED),
        E.REFUNDED: _ignore(_NO_MONEY),
    },
    S.ON_HOLD: {
        E.PENDING: _ignore(_backwards("pending", "on_hold")),
        E.HELD: NOOP,
        E.PAID: _apply(S.PAID),  # the hold was captured
        E.FAILED: _apply(S.FAILED),  # the capture failed
        E.EXPIRED: _apply(S.EXPIRED),  # the hold lapsed
        E.CANCELLED: _apply(S.CANCELLED),  # the hold was released
        E.REFUNDED: _ignore(_NO_MONEY),
    },
    S.PAID: {
        E.PENDING: _ignore(_backwards("pending", "paid")),
        E.HELD: _ignore(_backwards("held", "paid")),
        E.PAID: NOOP,
        E.FAILED: _ignore(_backwards("failed", "paid")),
        E.EXPIRED: _ignore(_backwards("expired", "paid")),
        E.CANCELLED: _ignore(_backwards("cancelled", "paid")),
        E.REFUNDED: _REFUND,
    },
    S.PARTIALLY_REFUNDED: {
        E.PENDING: _ignore(_backwards("pending", "partially_refunded")),
        E.HELD: _ignore(_backwards("held", "partially_refunded")),
        E.PAID: NOOP,
        E.FAILED: _ignore(_backwards("failed", "partially_refunded")),
        E.EXPIRED: _ignore(_backwards("expired", "partially_refunded")),
        E.CANCELLED: _ignore(_backwards("cancelled", "partially_refunded")),
        E.REFUNDED: _REFUND,
    },
    S.REFUNDED: {
        E.PENDING: _ignore(_backwards("pending", "refunded")),
        E.HELD: _ignore(_backwards("held", "refunded")),
        E.PAID: NOOP,
        E.FAILED: _ignore(_backwards("failed", "refunded")),
        E.EXPIRED: _ignore(_backwards("expired", "refunded")),
        E.CANCELLED: _ignore(_backwards("cancelled", "refunded")),
        E.REFUNDED: NOOP,
    },
    S.FAILED: {
        E.PENDING: _apply(S.PENDING),  # the customer tries again
        E.HELD: _apply(S.ON_HOLD),
        E.PAID: _apply(S.PAID),
        E.FAILED: NOOP,
        E.EXPIRED: _apply(S.EXPIRED),
        E.CANCELLED: _apply(S.CANCELLED),
        E.REFUNDED: _ignore(_NO_MONEY),
    },
    S.EXPIRED: {
        E.PENDING: _ignore(_backwards("pending", "expired")),
        E.HELD: _apply(S.ON_HOLD, True, _late_hold("expired")),
        E.PAID: _apply(S.PAID, True, _late_paid("expired")),
        E.FAILED: _ignore(_backwards("failed", "expired")),
        E.EXPIRED: NOOP,
        E.CANCELLED: _apply(S.CANCELLED),
        E.REFUNDED: _ignore(_NO_MONEY),
    },
    S.CANCELLED: {
        E.PENDING: _ignore(_backwards("pending", "cancelled")),
        E.HELD: _apply(S.ON_HOLD, True, _late_hold("cancelled")),
        E.PAID: _apply(S.PAID, True, _late_paid("cancelled")),
        E.FAILED: _ignore(_backwards("failed", "cancelled")),
        E.EXPIRED: _ignore(_backwards("expired", "cancelled")),
        E.CANCELLED: NOOP,
        E.REFUNDED: _ignore(_NO_MONEY),
    },
}


def rule_for(status: str, event_type: str) -> Rule:
    """The rule for an event arriving at an invoice in ``status``."""
    event = EventType(event_type)
    if event is EventType.INFO:
        return _ignore(msg("informational"))
    return TRANSITIONS[InvoiceStatus(status)][event]


def refund_target(paid: object, refunded: object) -> InvoiceStatus:
    """``refunded`` when everything paid has been returned, else
    ``partially_refunded``."""
    return S.REFUNDED if refunded >= paid else S.PARTIALLY_REFUNDED  # type: ignore[operator]
