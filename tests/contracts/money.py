"""The money contract every provider's test package inherits: money moves once
(DESIGN.md). Against the alias's emulator over HTTP, a double click, a repeat,
concurrent starts and operations in flight never make a second provider call
for one operation, never refund more than was paid, and leave every claim
settled. A provider's package subclasses it with its adapter
(:mod:`tests.contracts.flows`)::

    class TestAcmeMoney(MoneyContract):
        adapter = ACME

Each test counts at the emulator (the requests that reached it, its refunds,
its payments, the holds it ended) and fails without the claim machinery of
:mod:`django_payments_ru.services`: without the claim both callers of a double
click would reach the provider; without the start lease every concurrent
caller would create a payment; without counting what is in flight a second
refund would be sent on top of one awaiting its answer; without releasing a
refused claim nothing could be refunded again. A capability a provider lacks
skips the case with the reason; so does a create the adapter says cannot be
found again by its key (``Adapter.unkeyed``).
"""

from __future__ import annotations

import json
import time
from datetime import timedelta
from decimal import Decimal

import pytest
import requests
from django.utils import timezone

from django_payments_ru import services
from django_payments_ru.exceptions import (
    InvalidAmount,
    InvalidOperation,
    OperationInFlight,
    ProviderAPIError,
    ProviderUnavailable,
)
from django_payments_ru.models import Operation
from django_payments_ru.paylinks import make_token
from django_payments_ru.providers.base import Capability
from django_payments_ru.status import InvoiceStatus
from tests.emulator_cases import wait_for
from tests.money_cases import MoneyCase, fresh, race, states

CONFIRMED = Operation.State.CONFIRMED
FAILED = Operation.State.FAILED
IN_FLIGHT = Operation.State.IN_FLIGHT


# --- 1. double click and repeat ---------------------------------------------------


class DoubleClickCases(MoneyCase):
    """Two callers at the same instant, then the same call once more in a row:
    one provider call, a clear error for the others. The emulator takes 0.3 s
    over the call, so the second click always comes while the first one is in
    flight (without the claim it would be sent too)."""

    def test_refund(self):
        self.need(Capability.REFUND)
        invoice = self.paid_invoice("100.00")
        self.slow_down("refund")

        outcomes = race([lambda: services.refund_invoice(fresh(invoice))] * 2)

        self.assert_one_winner(outcomes, OperationInFlight)
        with pytest.raises((InvalidOperation, InvalidAmount)):  # nothing left
            services.refund_invoice(fresh(invoice))
        assert len(self.calls("refund")) == 1
        assert len(self.adapter.refunds(invoice)) == 1
        self.assert_settled(invoice)
        assert states(invoice, "refund") == [CONFIRMED]
        self.assert_invoice(invoice, InvoiceStatus.REFUNDED, refunds=1, refunded="100")
        self.assert_refunds_within_payment(invoice)
        assert self.adapter.payment(invoice).refunded_amount == Decimal("100")
        assert self.signals.count("invoice_refunded", invoice) == 1

    def test_partial_refund(self):
        """Two refunds of 60 of 100: the second would exceed what is left once
        the first is counted, in flight or done."""
        self.need(Capability.REFUND, Capability.PARTIAL_REFUND)
        invoice = self.paid_invoice("100.00")
        self.slow_down("refund")

        outcomes = race([lambda: services.refund_invoice(fresh(invoice), "60.00")] * 2)

        self.assert_one_winner(outcomes, InvalidAmount)  # only 40 not in flight
        with pytest.raises(InvalidAmount):
            services.refund_invoice(fresh(invoice), "60.00")
        assert len(self.calls("refund")) == 1
        self.assert_settled(invoice)
        assert states(invoice, "refund") == [CONFIRMED]
        self.assert_invoice(
            invoice, InvoiceStatus.PARTIALLY_REFUNDED, refunds=1, refunded="60.00"
        )
        self.assert_refunds_within_payment(invoice)

    def test_capture(self):
        self.need(Capability.HOLD)
        invoice = self.held_invoice()
        self.slow_down("capture")

        outcomes = race([lambda: services.capture_invoice(fresh(invoice))] * 2)

        self.assert_one_winner(outcomes, OperationInFlight)
        with pytest.raises(InvalidOperation):  # no longer on hold
            services.capture_invoice(fresh(invoice))
        assert len(self.calls("capture")) == 1
        assert self.adapter.holds_ended(invoice) == ["capture"]
        self.assert_settled(invoice)
        assert states(invoice, "capture") == [CONFIRMED]
        self.assert_invoice(invoice, InvoiceStatus.PAID, charges=1)
        assert self.signals.count("invoice_paid", invoice) == 1

    def test_release(self):
        self.need(Capability.HOLD)
        invoice = self.held_invoice()
        self.slow_down("release")

        outcomes = race([lambda: services.release_invoice(fresh(invoice))] * 2)

        self.assert_one_winner(outcomes, OperationInFlight)
        with pytest.raises(InvalidOperation):
            services.release_invoice(fresh(invoice))
        assert len(self.calls("release")) == 1
        assert self.adapter.holds_ended(invoice) == ["release"]
        self.assert_settled(invoice)
        assert states(invoice, "release") == [CONFIRMED]
        self.assert_invoice(invoice, InvoiceStatus.CANCELLED, charges=0)

    def test_capture_release_and_cancel_of_one_hold(self):
        """The merchant captures in one tab while another releases and a third
        cancels (a release at the provider): the hold ends once, one way."""
        self.need(Capability.HOLD)
        invoice = self.held_invoice()
        self.slow_down("capture", "release")

        outcomes = race(
            [
                lambda: services.capture_invoice(fresh(invoice)),
                lambda: services.release_invoice(fresh(invoice)),
                lambda: services.cancel_invoice(fresh(invoice)),
            ]
        )

        self.assert_one_winner(outcomes, OperationInFlight)
        ended = self.adapter.holds_ended(invoice)
        assert len(ended) == 1, ended
        assert len(self.calls("capture", "release")) == 1
        self.assert_settled(invoice)
        expected = (
            InvoiceStatus.PAID if ended == ["capture"] else InvoiceStatus.CANCELLED
        )
        self.assert_invoice(invoice, expected, charges=1 if ended == ["capture"] else 0)
        # The losers never claimed anything: one claim, the winner's, confirmed.
        [claim] = invoice.operations.exclude(kind=Operation.Kind.START)
        assert claim.state == CONFIRMED

    def test_cancel_at_the_provider(self):
        self.need(Capability.CANCEL)
        invoice = self.create_invoice()
        self.start(invoice)
        self.slow_down("cancel")

        outcomes = race([lambda: services.cancel_invoice(fresh(invoice))] * 2)

        self.assert_one_winner(outcomes, OperationInFlight)
        with pytest.raises(InvalidOperation):  # already cancelled
            services.cancel_invoice(fresh(invoice))
        assert len(self.calls("cancel")) == 1
        cancelled = self.adapter.statuses.get("cancelled", "cancelled")
        assert self.adapter.payment(invoice).status == cancelled
        self.assert_settled(invoice)
        assert states(invoice, "cancel") == [CONFIRMED]
        self.assert_invoice(invoice, InvoiceStatus.CANCELLED)

    def test_local_cancel(self):
        """A provider that cannot cancel through its API: the invoice is
        cancelled locally, once, and nothing is sent."""
        if self.provider.supports(Capability.CANCEL):
            pytest.skip(
                f"{self.alias} cancels at the provider: test_cancel_at_the_provider"
            )
        invoice = self.create_invoice()
        self.start(invoice)
        sent = [h for h in self.traffic.hits if h.method != "GET"]

        outcomes = race([lambda: services.cancel_invoice(fresh(invoice))] * 2)

        self.assert_one_winner(outcomes)
        with pytest.raises(InvalidOperation):
            services.cancel_invoice(fresh(invoice))
        assert [h for h in self.traffic.hits if h.method != "GET"] == sent
        assert states(invoice, "cancel") == [CONFIRMED]
        self.assert_invoice(invoice, InvoiceStatus.CANCELLED)


# --- 2. concurrent starts -----------------------------------------------------------


class StartCases(MoneyCase):
    """Concurrent and interrupted starts: one payment at the provider."""

    def need_keyed_create(self) -> None:
        """Skip unless a lost create can be found again by the claim's key."""
        if self.adapter.unkeyed:
            pytest.skip(f"{self.alias}: {self.adapter.unkeyed}")
        assert self.registers and "start" in self.adapter.keyed

    @pytest.mark.parametrize("callers", [2, 8])
    def test_concurrent_starts_make_one_payment(self, callers):
        """Double clicks and tabs on "pay": every caller waits for the one start
        in flight (the create takes 0.3 s) and gets its checkout."""
        invoice = self.create_invoice()
        self.slow_down("start")

        outcomes = race([lambda: services.start_payment(fresh(invoice))] * callers)

        assert all(o.ok for o in outcomes), [repr(o.error) for o in outcomes]
        answers = {json.dumps(o.value.to_json(), sort_keys=True) for o in outcomes}
        assert len(answers) == 1, answers
        checkout = outcomes[0].value
        [start] = self.operations(invoice, "start")
        assert (start.state, start.attempts) == (CONFIRMED, 1)
        expected = 1 if self.registers else 0
        assert len(self.calls("start")) == expected
        assert self.adapter.payments(invoice).count() == expected
        invoice.refresh_from_db()
        assert invoice.get_checkout().to_json() == checkout.to_json()
        if self.registers:
            assert checkout.payment_id
            assert invoice.provider_payment_id == checkout.payment_id
        else:
            assert checkout.method == "POST" and checkout.fields
        # The one checkout everybody got is the one the customer pays through.
        self.press(self.open_checkout(checkout), "pay")
        self.assert_invoice(invoice, InvoiceStatus.PAID, charges=1)
        assert self.adapter.payments(invoice).count() == 1

    def test_concurrent_checkouts_through_the_api(self):
        """Four browsers post to the checkout API at once: four 200s with the
        same checkout, never a 500."""
        invoice = self.create_invoice()
        url = f"{self.live_url}/payments/api/pay/{make_token(invoice)}/checkout/"
        self.slow_down("start")

        outcomes = race([lambda: requests.post(url, timeout=30)] * 4)

        assert all(o.ok for o in outcomes), [repr(o.error) for o in outcomes]
        codes = [o.value.status_code for o in outcomes]
        assert codes == [200] * 4, [o.value.text[:500] for o in outcomes]
        assert len({json.dumps(o.value.json(), sort_keys=True) for o in outcomes}) == 1
        assert len(self.operations(invoice, "start")) == 1
        expected = 1 if self.registers else 0
        assert len(self.calls("start")) == expected
        assert self.adapter.payments(invoice).count() == expected

    def test_a_start_whose_caller_died_is_taken_over(self):
        """A start in flight whose lease ran out (its process died before its
        call got out): the next caller takes it over at once, under the same
        claim and key, instead of waiting for it."""
        invoice = self.create_invoice()
        dead = Operation.objects.create(
            invoice=invoice,
            kind=Operation.Kind.START,
            key="start-dead0000000000000000000000000000",
            lease_until=timezone.now() - timedelta(seconds=1),
        )
        began = time.monotonic()

        checkout = services.start_payment(fresh(invoice))

        assert time.monotonic() - began < services.START_WAIT / 2
        [start] = self.operations(invoice, "start")
        assert start.pk == dead.pk
        assert (start.state, start.attempts) == (CONFIRMED, 2)
        expected = 1 if self.registers else 0
        assert self.adapter.payments(invoice).count() == expected
        creates = self.calls("start")
        assert len(creates) == expected
        if "start" in self.adapter.keyed:
            assert {c.idempotency_key for c in creates} == {dead.key}
            assert invoice.operations.get().key == dead.key
        assert checkout.payment_id == fresh(invoice).provider_payment_id

    def test_a_dead_start_that_reached_the_provider_is_found_again(self):
        """The dead caller's create did reach the provider: taking it over
        re-sends the same idempotency key and finds that payment; the emulator
        has one payment and the customer is sent to it."""
        self.need_keyed_create()
        invoice = self.create_invoice()
        dead = Operation.objects.create(
            invoice=invoice,
            kind=Operation.Kind.START,
            key="start-dead1111111111111111111111111111",
            lease_until=timezone.now() + timedelta(minutes=5),
        )
        lost = self.provider.start(fresh(invoice), key=dead.key)  # its answer died
        Operation.objects.filter(pk=dead.pk).update(
            lease_until=timezone.now() - timedelta(seconds=1)
        )

        checkout = services.start_payment(fresh(invoice))

        assert checkout.payment_id == lost.payment_id
        assert self.adapter.payments(invoice).count() == 1
        assert {c.idempotency_key for c in self.calls("start")} == {dead.key}
        dead.refresh_from_db()
        assert (dead.state, dead.attempts) == (CONFIRMED, 2)
        self.press(self.open_checkout(checkout), "pay")
        self.assert_invoice(invoice, InvoiceStatus.PAID, charges=1)

    def test_a_start_that_timed_out_is_resent_with_the_same_key(self):
        """The first create is answered after the client gave up (it is done at
        the provider all the same); the next start re-sends the same key and
        the emulator still has one payment."""
        self.need_keyed_create()
        self.set_http(HTTP_TIMEOUT=(5.0, 0.5), HTTP_RETRIES=0)
        self.set_faults(create={"delay": 1.5, "status": None, "times": 1})
        invoice = self.create_invoice()
        began = time.monotonic()
        with pytest.raises(ProviderUnavailable):
            services.start_payment(fresh(invoice))
        [claim] = self.operations(invoice, "start")
        assert claim.state == IN_FLIGHT and claim.reason_text

        checkout = services.start_payment(fresh(invoice))

        # Let the first, slow create finish at the emulator: it finds the key.
        time.sleep(max(0.0, began + 2.0 - time.monotonic()))
        creates = self.calls("start")
        assert len(creates) == 2
        assert {c.idempotency_key for c in creates} == {claim.key}
        [payment] = self.adapter.payments(invoice)
        assert payment.external_id == checkout.payment_id
        claim.refresh_from_db()
        assert (claim.state, claim.attempts) == (CONFIRMED, 2)
        assert len(self.operations(invoice, "start")) == 1


# --- 3. what is in flight counts ------------------------------------------------------


class InFlightCases(MoneyCase):
    """What is in flight counts against what may still be done."""

    def test_a_refund_without_an_answer_counts_against_the_next(self):
        """A refund whose call failed without an answer may have been made: it
        stays in flight and what may still be refunded shrinks by it."""
        self.need(Capability.REFUND, Capability.PARTIAL_REFUND)
        invoice = self.paid_invoice("100.00")
        self.set_http(HTTP_RETRIES=0)
        self.set_faults(refund={"status": 500, "times": 1})
        with pytest.raises(ProviderUnavailable):
            services.refund_invoice(fresh(invoice), "60.00")
        [unknown] = self.operations(invoice, "refund")
        assert unknown.state == IN_FLIGHT and unknown.amount == Decimal("60")
        assert "no answer" in unknown.reason_text

        with pytest.raises(InvalidAmount):
            services.refund_invoice(fresh(invoice), "50.00")  # only 40 left
        assert len(self.calls("refund")) == 1
        services.refund_invoice(fresh(invoice))  # the default: the 40 left
        with pytest.raises(OperationInFlight):
            services.refund_invoice(fresh(invoice), "0.01")

        assert len(self.calls("refund")) == 2
        assert self.adapter.refunded(invoice) == [Decimal("40")]
        self.assert_invoice(
            invoice, InvoiceStatus.PARTIALLY_REFUNDED, refunds=1, refunded="40.00"
        )
        # The unanswered one stays in flight; the one answered is confirmed
        # (by its answer, or by its webhook, which arrived during the call).
        wait_for(lambda: states(invoice, "refund") == [IN_FLIGHT, CONFIRMED], 2.0)
        assert states(invoice, "refund") == [IN_FLIGHT, CONFIRMED]
        self.assert_refunds_within_payment(invoice)

    def test_a_refund_whose_answer_was_lost_is_settled_by_its_webhook(self):
        """The provider made the refund but its answer was lost (HTTP 500 after
        the work): the caller sees the error, the webhook confirms the claim,
        and the confirmed claim keeps what confirmed it."""
        self.need(Capability.REFUND)
        invoice = self.paid_invoice("100.00")
        self.set_http(HTTP_RETRIES=0)
        self.set_faults(refund={"status": 500, "after": True, "times": 1})
        with pytest.raises(ProviderUnavailable):
            services.refund_invoice(fresh(invoice))

        self.assert_settled(invoice)
        [claim] = self.operations(invoice, "refund")
        assert claim.state == CONFIRMED
        assert claim.lease_until is None
        assert "no answer" not in claim.reason_text, claim.reason_text
        self.assert_invoice(invoice, InvoiceStatus.REFUNDED, refunds=1, refunded="100")
        with pytest.raises(InvalidOperation):
            services.refund_invoice(fresh(invoice))
        assert len(self.calls("refund")) == 1
        self.assert_refunds_within_payment(invoice)

    def test_a_refusal_releases_the_claim(self):
        self.need(Capability.REFUND)
        invoice = self.paid_invoice("100.00")
        self.set_faults(refund={"status": 409, "times": 1})
        with pytest.raises(ProviderAPIError):
            services.refund_invoice(fresh(invoice))
        [refused] = self.operations(invoice, "refund")
        assert refused.state == FAILED
        assert "409" in refused.reason_text
        assert refused.settled_at is not None
        assert self.adapter.refunds(invoice) == []

        services.refund_invoice(fresh(invoice))

        assert len(self.calls("refund")) == 2
        self.assert_settled(invoice)
        assert states(invoice, "refund") == [FAILED, CONFIRMED]
        self.assert_invoice(invoice, InvoiceStatus.REFUNDED, refunds=1, refunded="100")
        self.assert_refunds_within_payment(invoice)


# --- all of it --------------------------------------------------------------------


class MoneyContract(DoubleClickCases, StartCases, InFlightCases):
    """Every money case (not collected itself: no ``Test`` prefix); a
    provider's package subclasses it with its ``adapter``."""
