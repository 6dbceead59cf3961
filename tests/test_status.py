"""The full (status x event) matrix, applied through the services to real rows."""

from __future__ import annotations

from decimal import Decimal

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from django_payments_ru import services
from django_payments_ru.events import EventType
from django_payments_ru.models import Invoice, Payment
from django_payments_ru.status import (
    PAID_STATES,
    TRANSITIONS,
    InvoiceStatus,
    Outcome,
    rule_for,
)
from tests.helpers import event, make_invoice, record_signals

S = InvoiceStatus
E = EventType

# The expected matrix, written independently of status.TRANSITIONS.
# Columns: PENDING HELD PAID FAILED EXPIRED CANCELLED REFUNDED.
# A status name = moves there ("!" suffix: and flags the invoice),
# "=" = same state (no-op), "x" = ignored (would go backwards / makes no sense),
# "R" = refund (partially_refunded or refunded by amount).
EXPECTED = """
status              PENDING  HELD      PAID     FAILED   EXPIRED  CANCELLED  REFUNDED
created             pending  on_hold   paid     failed   expired  cancelled  x
pending             =        on_hold   paid     failed   expired  cancelled  x
on_hold             x        =         paid     failed   expired  cancelled  x
paid                x        x         =        x        x        x          R
partially_refunded  x        x         =        x        x        x          R
refunded            x        x         =        x        x        x          =
failed              pending  on_hold   paid     =        expired  cancelled  x
expired             x        on_hold!  paid!    x        =        cancelled  x
cancelled           x        on_hold!  paid!    x        x        =          x
"""

ROWS = [line.split() for line in EXPECTED.strip().splitlines()]
COLUMNS = [EventType[name] for name in ROWS[0][1:]]
MATRIX = {
    (S(row[0]), col): cell
    for row in ROWS[1:]
    for col, cell in zip(COLUMNS, row[1:], strict=True)
}
ORDER = {
    S.CREATED: 0,
    S.PENDING: 1,
    S.FAILED: 1,
    S.ON_HOLD: 2,
    S.EXPIRED: 3,
    S.CANCELLED: 3,
    S.PAID: 4,
    S.PARTIALLY_REFUNDED: 5,
    S.REFUNDED: 6,
}


def test_the_table_covers_every_pair():
    assert set(TRANSITIONS) == set(S)
    for status in S:
        assert set(TRANSITIONS[status]) == set(E) - {E.INFO}
    assert len(MATRIX) == len(S) * 7


def _bring_to(invoice: Invoice, status: S) -> None:
    """Drive an invoice into ``status`` through the services only."""
    path = {
        S.CREATED: [],
        S.PENDING: [E.PENDING],
        S.ON_HOLD: [E.HELD],
        S.PAID: [E.PAID],
        S.PARTIALLY_REFUNDED: [E.PAID, ("refund", Decimal("10.00"))],
        S.REFUNDED: [E.PAID, ("refund", None)],
        S.FAILED: [E.FAILED],
        S.EXPIRED: [E.EXPIRED],
        S.CANCELLED: [E.CANCELLED],
    }[status]
    for step in path:
        if isinstance(step, tuple):
            services.apply_event(event(invoice, E.REFUNDED, amount=step[1]))
        else:
            services.apply_event(event(invoice, step))
    invoice.refresh_from_db()
    assert invoice.status == status


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize(("status", "event_type"), sorted(MATRIX, key=str))
def test_matrix(status, event_type):
    invoice = make_invoice("100.00")
    _bring_to(invoice, status)
    before = Invoice.objects.get(pk=invoice.pk)
    payments_before = Payment.objects.count()
    cell = MATRIX[(status, event_type)]

    with record_signals() as log:
        result = services.apply_event(event(invoice, event_type))
    invoice.refresh_from_db()

    if cell in ("=", "x"):
        assert result.result == (
            services.Result.NOOP if cell == "=" else services.Result.IGNORED
        )
        assert invoice.status == status
        assert invoice.updated_at == before.updated_at  # no write at all
        assert Payment.objects.count() == payments_before
        assert log.calls == []
        return

    assert result.result == services.Result.APPLIED
    if cell == "R":
        left = before.paid_amount - before.refunded_amount
        assert invoice.status == S.REFUNDED
        assert invoice.refunded_amount == before.refunded_amount + left
        assert log.count("invoice_refunded") == 1
    else:
        target = S(cell.rstrip("!"))
        assert invoice.status == target
        assert invoice.needs_attention is cell.endswith("!")
        assert log.count("invoice_status_changed") == 1
        assert log.count("invoice_paid") == (1 if target == S.PAID else 0)
        assert log.count("invoice_failed") == (1 if target == S.FAILED else 0)
        if target == S.PAID:
            assert invoice.paid_amount == invoice.amount
            assert Payment.objects.filter(invoice=invoice, kind="charge").count() == 1


def test_nothing_goes_backwards_from_money():
    """FAILED/EXPIRED/CANCELLED/PENDING/HELD never override a paid state."""
    for status in PAID_STATES:
        for kind in (E.PENDING, E.HELD, E.FAILED, E.EXPIRED, E.CANCELLED):
            assert rule_for(status, kind).outcome is Outcome.IGNORE


@given(st.sampled_from(list(S)), st.sampled_from(list(E)))
@settings(max_examples=200)
def test_every_rule_is_well_formed(status, kind):
    rule = rule_for(status, kind)
    if rule.outcome is Outcome.APPLY:
        assert rule.target is not None
        if status in PAID_STATES:  # once paid, only refunds move it, forward
            assert kind is E.REFUNDED
            assert ORDER[rule.target] >= ORDER[status]
    else:
        assert rule.target is None
    if kind is E.INFO:
        assert rule.outcome is Outcome.IGNORE


@pytest.mark.django_db(transaction=True)
def test_paid_after_expired_is_applied_and_flagged():
    invoice = make_invoice("250.00")
    services.apply_event(event(invoice, E.EXPIRED))
    with record_signals() as log:
        services.apply_event(event(invoice, E.PAID))
    invoice.refresh_from_db()
    assert invoice.status == S.PAID
    assert invoice.needs_attention
    assert "expired" in invoice.attention_text.lower()
    assert log.count("invoice_paid") == 1


@pytest.mark.django_db(transaction=True)
def test_partial_refunds_accumulate_and_never_exceed_paid():
    invoice = make_invoice("100.00")
    services.apply_event(event(invoice, E.PAID))
    services.apply_event(event(invoice, E.REFUNDED, amount=Decimal("30.00")))
    invoice.refresh_from_db()
    assert invoice.status == S.PARTIALLY_REFUNDED
    assert invoice.refunded_amount == Decimal("30.00")

    with record_signals() as log:
        result = services.apply_event(
            event(invoice, E.REFUNDED, amount=Decimal("80.00"))
        )
    invoice.refresh_from_db()
    assert result.result == services.Result.REJECTED
    assert invoice.refunded_amount == Decimal("30.00")
    assert invoice.needs_attention
    assert log.calls == []

    services.apply_event(event(invoice, E.REFUNDED, amount=Decimal("70.00")))
    invoice.refresh_from_db()
    assert invoice.status == S.REFUNDED
    assert invoice.refunded_amount == invoice.paid_amount == Decimal("100.00")
    assert list(
        Payment.objects.filter(invoice=invoice).values_list("kind", "amount")
    ) == [
        ("charge", Decimal("100.000")),
        ("refund", Decimal("30.000")),
        ("refund", Decimal("70.000")),
    ]


@pytest.mark.django_db(transaction=True)
def test_running_refund_total_counts_each_refund_once():
    invoice = make_invoice("100.00")
    services.apply_event(event(invoice, E.PAID))
    # The synchronous refund answer and the webhook for the same refund both
    # report the running total: the second one records nothing.
    first = services.apply_event(
        event(invoice, E.REFUNDED, amount=None, refunded_total=Decimal("40.00"))
    )
    second = services.apply_event(
        event(invoice, E.REFUNDED, amount=None, refunded_total=Decimal("40.00"))
    )
    invoice.refresh_from_db()
    assert first.result == services.Result.APPLIED
    assert second.result == services.Result.NOOP
    assert invoice.refunded_amount == Decimal("40.00")
    assert Payment.objects.filter(invoice=invoice, kind="refund").count() == 1


@pytest.mark.django_db(transaction=True)
def test_database_refuses_refund_above_paid():
    from django.db import IntegrityError

    invoice = make_invoice("100.00")
    with pytest.raises(IntegrityError):
        Invoice.objects.filter(pk=invoice.pk).update(refunded_amount=Decimal("1"))


@pytest.mark.django_db(transaction=True)
def test_second_payment_with_another_id_is_flagged_not_swallowed():
    invoice = make_invoice("100.00")
    services.apply_event(event(invoice, E.PAID, provider_payment_id="tid-1"))
    same = services.apply_event(event(invoice, E.PAID, provider_payment_id="tid-1"))
    assert same.result == services.Result.NOOP
    invoice.refresh_from_db()
    assert not invoice.needs_attention

    with record_signals() as log:
        second = services.apply_event(
            event(invoice, E.PAID, provider_payment_id="tid-2")
        )
    invoice.refresh_from_db()
    assert second.result == services.Result.REJECTED
    assert invoice.needs_attention
    assert "tid-2" in invoice.attention_text
    assert invoice.paid_amount == Decimal("100.00")
    assert Payment.objects.filter(invoice=invoice, kind="charge").count() == 1
    assert log.calls == []
