"""Operations are claimed before the provider is called, settled exactly once.

The provider's hooks are replaced by fakes here, to drive each outcome (an
answer, no answer, a refusal, a confirmation by webhook later); the same
machinery against every provider's emulator is in test_money_moves_once.py.
"""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal
from typing import Any

import pytest
from django.db import transaction
from django.utils import timezone

from django_payments_ru import services
from django_payments_ru.events import EventType, PaymentEvent
from django_payments_ru.exceptions import (
    InvalidAmount,
    NotSupported,
    OperationInFlight,
    ProviderAPIError,
    ProviderUnavailable,
    TransactionOpen,
)
from django_payments_ru.formatting import format_money
from django_payments_ru.models import Invoice, Operation
from django_payments_ru.providers.base import Capability, Checkout
from django_payments_ru.providers.sandbox.provider import Provider as Sandbox
from django_payments_ru.status import InvoiceStatus
from tests.helpers import event, make_invoice

pytestmark = pytest.mark.django_db


def paid(amount: str = "100.00") -> Invoice:
    invoice = make_invoice(amount)
    services.apply_event(event(invoice, EventType.PAID))
    invoice.refresh_from_db()
    return invoice


def refunded_event(invoice: Invoice, amount: str) -> PaymentEvent:
    return event(invoice, EventType.REFUNDED, amount=Decimal(amount))


class Calls:
    def __init__(self) -> None:
        self.keys: list[str] = []
        self.error: Exception | None = None
        self.answer: Any = None


@pytest.fixture
def calls(monkeypatch: pytest.MonkeyPatch) -> Calls:
    """Sandbox hooks that record the claim's key and answer as told."""
    record = Calls()

    def hook(name: str) -> Any:
        def call(self: Sandbox, invoice: Invoice, *args: Any, key: str = "") -> Any:
            record.keys.append(f"{name}:{key}")
            if record.error is not None:
                raise record.error
            return record.answer(invoice) if callable(record.answer) else None

        return call

    for name in ("refund", "cancel", "capture", "release"):
        monkeypatch.setattr(Sandbox, name, hook(name))
    return record


def states(invoice: Invoice, kind: str) -> list[str]:
    return list(invoice.operations.filter(kind=kind).values_list("state", flat=True))


# --- refunds ---------------------------------------------------------------------


def test_a_refund_confirmed_later_is_in_flight_until_its_webhook(calls: Calls):
    invoice = paid()
    services.refund_invoice(invoice, "40.00")  # the provider answers nothing yet
    [claim] = invoice.operations.all()
    assert (claim.kind, claim.state, claim.amount) == (
        "refund",
        "in_flight",
        Decimal("40.00"),
    )
    assert calls.keys == [f"refund:{claim.key}"]
    # In flight counts against what may still be refunded.
    with pytest.raises(InvalidAmount) as left:
        services.refund_invoice(invoice, "70.00")
    assert f"only {format_money('60.00', 'RUB')} is left" in str(left.value)
    # The notification settles it, once.
    services.apply_event(refunded_event(invoice, "40.00"))
    claim.refresh_from_db()
    assert claim.state == "confirmed" and claim.settled_at is not None
    invoice.refresh_from_db()
    assert invoice.refunded_amount == Decimal("40.00")


def test_a_whole_refund_provider_gets_no_second_refund_in_flight(
    calls: Calls, monkeypatch: pytest.MonkeyPatch
):
    monkeypatch.setattr(
        Sandbox, "capabilities", Sandbox.capabilities - {Capability.PARTIAL_REFUND}
    )
    invoice = paid()
    services.refund_invoice(invoice)
    with pytest.raises(OperationInFlight, match="awaits its confirmation"):
        services.refund_invoice(invoice)
    assert len(calls.keys) == 1


def test_a_refused_refund_releases_its_claim_with_the_reason(calls: Calls):
    invoice = paid()
    calls.error = ProviderAPIError(
        "Refund refused", provider="sandbox", status=422, code="too_late"
    )
    with pytest.raises(ProviderAPIError):
        services.refund_invoice(invoice)
    [claim] = invoice.operations.all()
    assert claim.state == "failed" and "Refund refused" in claim.reason_text
    # Nothing is in flight any more: the next refund is sent.
    calls.error = None
    services.refund_invoice(invoice)
    assert len(calls.keys) == 2
    assert len(set(calls.keys)) == 2  # a new claim, a new key


def test_a_refund_without_an_answer_stays_in_flight(calls: Calls):
    invoice = paid()
    calls.error = ProviderUnavailable("timed out", provider="sandbox")
    with pytest.raises(ProviderUnavailable):
        services.refund_invoice(invoice)
    [claim] = invoice.operations.all()
    # It may have reached the provider: still counted, never silently retried.
    assert claim.state == "in_flight" and "ProviderUnavailable" in claim.reason_text
    with pytest.raises(OperationInFlight):
        services.refund_invoice(invoice)


def test_a_synchronous_answer_settles_the_claim(calls: Calls):
    invoice = paid()
    calls.answer = lambda inv: refunded_event(inv, "25.00")
    services.refund_invoice(invoice, "25.00")
    assert states(invoice, "refund") == ["confirmed"]
    invoice.refresh_from_db()
    assert invoice.refunded_amount == Decimal("25.00")


# --- holds and cancels -----------------------------------------------------------


def held(monkeypatch: pytest.MonkeyPatch) -> Invoice:
    monkeypatch.setattr(Sandbox, "capabilities", Sandbox.capabilities | {"hold"})
    invoice = make_invoice("100.00")
    services.apply_event(event(invoice, EventType.HELD))
    invoice.refresh_from_db()
    return invoice


def test_a_capture_confirmed_by_webhook(calls: Calls, monkeypatch):
    invoice = held(monkeypatch)
    services.capture_invoice(invoice)
    assert states(invoice, "capture") == ["in_flight"]
    with pytest.raises(OperationInFlight):
        services.release_invoice(invoice)
    with pytest.raises(OperationInFlight):
        services.capture_invoice(invoice)
    services.apply_event(event(invoice, EventType.PAID))
    assert states(invoice, "capture") == ["confirmed"]
    assert calls.keys[0].startswith("capture:capture-") and len(calls.keys) == 1


def test_a_release_accepted_cancels_the_invoice(calls: Calls, monkeypatch):
    invoice = held(monkeypatch)
    services.release_invoice(invoice)
    invoice.refresh_from_db()
    assert invoice.status == InvoiceStatus.CANCELLED
    assert states(invoice, "release") == ["confirmed"]


def test_cancelling_a_hold_releases_it_at_the_provider(calls: Calls, monkeypatch):
    invoice = held(monkeypatch)
    services.cancel_invoice(invoice)
    invoice.refresh_from_db()
    assert invoice.status == InvoiceStatus.CANCELLED
    assert [k.split(":")[0] for k in calls.keys] == ["release"]


def test_a_hold_that_cannot_be_released_is_not_cancelled(calls: Calls):
    invoice = make_invoice("100.00")
    services.apply_event(event(invoice, EventType.HELD))  # sandbox: no holds
    with pytest.raises(NotSupported, match="dashboard"):
        services.cancel_invoice(invoice)
    invoice.refresh_from_db()
    assert invoice.status == InvoiceStatus.ON_HOLD
    assert calls.keys == [] and not invoice.operations.exists()


def test_a_refused_release_keeps_the_hold(calls: Calls, monkeypatch):
    invoice = held(monkeypatch)
    calls.error = ProviderAPIError("No", provider="sandbox", status=400)
    with pytest.raises(ProviderAPIError):
        services.cancel_invoice(invoice)
    invoice.refresh_from_db()
    assert invoice.status == InvoiceStatus.ON_HOLD
    assert states(invoice, "release") == ["failed"]


def test_a_payment_defeats_a_cancel_in_flight(calls: Calls):
    invoice = make_invoice("100.00")
    Invoice.objects.filter(pk=invoice.pk).update(provider_payment_id="pay_1")
    calls.error = ProviderUnavailable("timed out", provider="sandbox")
    with pytest.raises(ProviderUnavailable):
        services.cancel_invoice(invoice)
    assert states(invoice, "cancel") == ["in_flight"]
    services.apply_event(event(invoice, EventType.PAID))
    [claim] = invoice.operations.filter(kind="cancel")
    assert claim.state == "failed" and "Paid" in claim.reason_text


# --- starts ----------------------------------------------------------------------


def test_a_start_whose_caller_died_is_reconciled_first(
    monkeypatch: pytest.MonkeyPatch,
):
    invoice = make_invoice("100.00")
    dead = Operation.objects.create(
        invoice=invoice,
        kind="start",
        key="start-dead",
        lease_until=timezone.now() - timedelta(seconds=1),
    )
    seen: list[tuple[str, str]] = []
    found = Checkout(method="GET", url="https://pay.example/1", payment_id="pay_1")

    def recover(self: Sandbox, inv: Invoice, key: str) -> Checkout:
        seen.append(("recover", key))
        return found

    def start(self: Sandbox, inv: Invoice, request: Any = None, *, key: str = ""):
        seen.append(("start", key))
        raise AssertionError("a second create must not be sent")

    monkeypatch.setattr(Sandbox, "recover_start", recover)
    monkeypatch.setattr(Sandbox, "start", start)
    assert services.start_payment(invoice) == found
    assert seen == [("recover", "start-dead")]
    dead.refresh_from_db()
    assert dead.state == "confirmed" and dead.attempts == 2
    invoice.refresh_from_db()
    assert invoice.provider_payment_id == "pay_1"


def test_a_start_without_an_answer_is_retried_with_the_same_key(
    monkeypatch: pytest.MonkeyPatch,
):
    invoice = make_invoice("100.00")
    keys: list[str] = []

    def start(self: Sandbox, inv: Invoice, request: Any = None, *, key: str = ""):
        keys.append(key)
        if len(keys) == 1:
            raise ProviderUnavailable("timed out", provider="sandbox")
        return Checkout(method="GET", url="https://pay.example/2", payment_id="p2")

    monkeypatch.setattr(Sandbox, "start", start)
    with pytest.raises(ProviderUnavailable):
        services.start_payment(invoice)
    services.start_payment(invoice)
    assert len(keys) == 2 and keys[0] == keys[1]
    assert states(invoice, "start") == ["confirmed"]


def test_a_start_in_flight_makes_others_wait_then_gives_up(
    monkeypatch: pytest.MonkeyPatch,
):
    invoice = make_invoice("100.00")
    Operation.objects.create(
        invoice=invoice,
        kind="start",
        key="start-busy",
        lease_until=timezone.now() + timedelta(minutes=1),
    )
    monkeypatch.setattr(services, "START_WAIT", 0.2)
    with pytest.raises(OperationInFlight, match="being started"):
        services.start_payment(invoice)
    # Nor can it be cancelled while its payment is being created.
    with pytest.raises(OperationInFlight, match="being started"):
        services.cancel_invoice(invoice)


def test_one_exclusive_operation_in_flight_is_a_database_rule():
    from django.db import IntegrityError

    invoice = make_invoice("100.00")
    Operation.objects.create(invoice=invoice, kind="start", key="k1")
    with pytest.raises(IntegrityError), transaction.atomic():
        Operation.objects.create(invoice=invoice, kind="cancel", key="k2")
    # Refunds are not exclusive; settled operations do not count.
    Operation.objects.create(invoice=invoice, kind="refund", key="k3", amount=1)
    Operation.objects.filter(key="k1").update(state="confirmed")
    Operation.objects.create(invoice=invoice, kind="cancel", key="k4")


# --- the transaction boundary ----------------------------------------------------


@pytest.mark.parametrize(
    "call",
    [
        lambda i: services.start_payment(i),
        lambda i: services.refund_invoice(i),
        lambda i: services.cancel_invoice(i),
        lambda i: services.capture_invoice(i),
        lambda i: services.release_invoice(i),
        lambda i: services.refresh_invoice(i),
    ],
    ids=["start", "refund", "cancel", "capture", "release", "refresh"],
)
def test_no_provider_call_inside_an_open_transaction(call: Any, calls: Calls):
    invoice = make_invoice("100.00")
    with transaction.atomic(), pytest.raises(TransactionOpen, match="non_atomic"):
        call(invoice)
    assert calls.keys == [] and not invoice.operations.exists()


# --- the admin -------------------------------------------------------------------


def test_the_admin_shows_operations_in_flight(calls: Calls, admin_client: Any):
    invoice = paid()
    other = paid()
    services.refund_invoice(invoice, "40.00")  # confirmed later, by webhook
    changelist = "/admin/django_payments_ru/invoice/"
    response = admin_client.get(changelist, {"in_flight": "yes"})
    assert list(response.context["cl"].queryset) == [invoice]
    response = admin_client.get(changelist, {"in_flight": "no"})
    assert other in response.context["cl"].queryset
    assert invoice not in response.context["cl"].queryset
    page = admin_client.get(f"{changelist}{invoice.pk}/change/").content.decode()
    assert "Operations sent to the provider" in page
    assert "In flight" in page and "40.00" in page


# --- releasing a claim left in flight ------------------------------------------


def test_a_claim_without_an_answer_is_released_by_the_merchant(
    calls: Calls, admin_client: Any
):
    invoice = paid()
    calls.error = ProviderUnavailable("timed out", provider="sandbox")
    with pytest.raises(ProviderUnavailable):
        services.refund_invoice(invoice)
    [claim] = invoice.operations.all()
    assert claim.state == "in_flight"
    response = admin_client.post(
        "/admin/django_payments_ru/operation/",
        {"action": "release", "_selected_action": [str(claim.pk)]},
    )
    assert response.status_code == 302
    claim.refresh_from_db()
    assert claim.state == "failed" and "released by admin" in claim.reason_text
    # It no longer blocks: the next refund is sent.
    calls.error = None
    services.refund_invoice(invoice)
    assert len(calls.keys) == 2
    # Settled operations and live starts are not released.
    with pytest.raises(Exception, match="already failed"):
        services.release_claim(claim)
    live = Operation.objects.create(
        invoice=make_invoice("10.00"),
        kind="start",
        key="start-live",
        lease_until=timezone.now() + timedelta(minutes=1),
    )
    with pytest.raises(OperationInFlight):
        services.release_claim(live)


def test_the_operations_admin_is_read_only(admin_client: Any, calls: Calls):
    invoice = paid()
    services.refund_invoice(invoice, "10.00")
    [claim] = invoice.operations.all()
    page = admin_client.get(f"/admin/django_payments_ru/operation/{claim.pk}/change/")
    assert page.status_code == 200
    assert claim.key in page.content.decode()
    assert (
        admin_client.get("/admin/django_payments_ru/operation/add/").status_code == 403
    )
