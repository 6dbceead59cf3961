"""Money moves once (DESIGN.md): on every provider alias, against its emulator
over HTTP, a double click, a repeat, concurrent starts and operations in flight
never make a second provider call for one operation, never refund more than
was paid, and leave every claim settled.

Each test counts at the emulator (the requests that reached it, its refunds,
its payments, the holds it ended) and fails without the claim machinery of
:mod:`django_payments_ru.services`: without the claim both callers of a double
click would reach the provider; without the start lease every concurrent
caller would create a payment; without counting what is in flight a second
refund would be sent on top of one awaiting its answer; without releasing a
refused claim nothing could be refunded again. A capability a provider lacks
skips the case with the reason.
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
from django_payments_ru.emulator.models import WebhookDelivery
from django_payments_ru.emulator.webhooks import send_webhook
from django_payments_ru.exceptions import (
    InvalidAmount,
    InvalidOperation,
    OperationInFlight,
    ProviderAPIError,
    ProviderUnavailable,
)
from django_payments_ru.models import Invoice, Operation
from django_payments_ru.providers.base import Capability
from django_payments_ru.status import InvoiceStatus
from tests.emulator_cases import wait_for
from tests.money_cases import ALIASES, MoneyCase, closed_port, race
from tests.providers.lifepay.conftest import SERVICES, emulator_services

CONFIRMED = Operation.State.CONFIRMED
FAILED = Operation.State.FAILED
IN_FLIGHT = Operation.State.IN_FLIGHT

#: Aliases whose creates carry the claim's key as an idempotency key.
KEYED = ("sandbox", "payconnect")


def fresh(invoice: Invoice) -> Invoice:
    """The invoice as another request (another thread) loads it."""
    return Invoice.objects.get(pk=invoice.pk)


def states(invoice: Invoice, kind: str) -> list[str]:
    return list(
        invoice.operations.filter(kind=kind)
        .order_by("id")
        .values_list("state", flat=True)
    )


# --- 1. double click and repeat ---------------------------------------------------


class TestDoubleClick(MoneyCase):
    """Two callers at the same instant, then the same call once more in a row:
    one provider call, a clear error for the others. The emulator takes 0.3 s
    over the call, so the second click always comes while the first one is in
    flight (without the claim it would be sent too)."""

    @pytest.mark.parametrize("alias", ALIASES)
    def test_refund(self, alias):
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

    @pytest.mark.parametrize("alias", ALIASES)
    def test_partial_refund(self, alias):
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

    @pytest.mark.parametrize("alias", ALIASES)
    def test_capture(self, alias):
        self.need(Capability.HOLD)
        invoice = self.held_invoice()
        self.slow_down("capture")

        outcomes = race([lambda: services.capture_invoice(fresh(invoice))] * 2)

        self.assert_one_winner(outcomes, OperationInFlight)
        with pytest.raises(InvalidOperation):  # no longer on hold
            services.capture_invoice(fresh(invoice))
        assert len(self.calls("capture")) == 1
        assert self.adapter.hold_operations(invoice) == ["charge"]
        self.assert_settled(invoice)
        assert states(invoice, "capture") == [CONFIRMED]
        self.assert_invoice(invoice, InvoiceStatus.PAID, charges=1)
        assert self.signals.count("invoice_paid", invoice) == 1

    @pytest.mark.parametrize("alias", ALIASES)
    def test_release(self, alias):
        self.need(Capability.HOLD)
        invoice = self.held_invoice()
        self.slow_down("release")

        outcomes = race([lambda: services.release_invoice(fresh(invoice))] * 2)

        self.assert_one_winner(outcomes, OperationInFlight)
        with pytest.raises(InvalidOperation):
            services.release_invoice(fresh(invoice))
        assert len(self.calls("release")) == 1
        assert self.adapter.hold_operations(invoice) == ["unblock"]
        self.assert_settled(invoice)
        assert states(invoice, "release") == [CONFIRMED]
        self.assert_invoice(invoice, InvoiceStatus.CANCELLED, charges=0)

    @pytest.mark.parametrize("alias", ALIASES)
    def test_capture_release_and_cancel_of_one_hold(self, alias):
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
        ended = self.adapter.hold_operations(invoice)
        assert len(ended) == 1, ended
        assert len(self.calls("capture", "release")) == 1
        self.assert_settled(invoice)
        expected = (
            InvoiceStatus.PAID if ended == ["charge"] else InvoiceStatus.CANCELLED
        )
        self.assert_invoice(invoice, expected, charges=1 if ended == ["charge"] else 0)
        # The losers never claimed anything: one claim, the winner's, confirmed.
        [claim] = invoice.operations.exclude(kind=Operation.Kind.START)
        assert claim.state == CONFIRMED

    @pytest.mark.parametrize("alias", ALIASES)
    def test_cancel_at_the_provider(self, alias):
        self.need(Capability.CANCEL)
        invoice = self.create_invoice()
        self.start(invoice)
        self.slow_down("cancel")

        outcomes = race([lambda: services.cancel_invoice(fresh(invoice))] * 2)

        self.assert_one_winner(outcomes, OperationInFlight)
        with pytest.raises(InvalidOperation):  # already cancelled
            services.cancel_invoice(fresh(invoice))
        assert len(self.calls("cancel")) == 1
        assert self.adapter.payment(invoice).status == "cancelled"
        self.assert_settled(invoice)
        assert states(invoice, "cancel") == [CONFIRMED]
        self.assert_invoice(invoice, InvoiceStatus.CANCELLED)

    @pytest.mark.parametrize("alias", ALIASES)
    def test_local_cancel(self, alias):
        """A provider that cannot cancel through its API: the invoice is
        cancelled locally, once, and nothing is sent."""
        if self.provider.supports(Capability.CANCEL):
            pytest.skip(f"{alias} cancels at the provider: test_cancel_at_the_provider")
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


class TestStart(MoneyCase):
    def registers(self) -> bool:
        """Whether a start registers a payment at the provider (A1Lite's form
        registers nothing: the browser posts it)."""
        return "start" in self.adapter.routes

    def need_keyed_create(self) -> None:
        if not self.registers():
            pytest.skip(f"{self.alias}: A1Lite registers nothing at start")
        if self.alias not in KEYED:
            pytest.skip(
                f"{self.alias}: Life-Pay ECOM takes no idempotency key and has no "
                "lookup by order_id (lifepay.md §11): a lost create cannot be "
                "found again (docs/providers/lifepay.rst, limitations)"
            )

    @pytest.mark.parametrize("callers", [2, 8])
    @pytest.mark.parametrize("alias", ALIASES)
    def test_concurrent_starts_make_one_payment(self, alias, callers):
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
        expected = 1 if self.registers() else 0
        assert len(self.calls("start")) == expected
        assert self.adapter.payments(invoice).count() == expected
        invoice.refresh_from_db()
        assert invoice.get_checkout().to_json() == checkout.to_json()
        if self.registers():
            assert checkout.payment_id
            assert invoice.provider_payment_id == checkout.payment_id
        else:
            assert checkout.method == "POST" and checkout.fields
        # The one checkout everybody got is the one the customer pays through.
        self.press(self.open_checkout(checkout), "pay")
        self.assert_invoice(invoice, InvoiceStatus.PAID, charges=1)
        assert self.adapter.payments(invoice).count() == 1

    @pytest.mark.parametrize("alias", ALIASES)
    def test_concurrent_checkouts_through_the_api(self, alias):
        """Four browsers post to the checkout API at once: four 200s with the
        same checkout, never a 500."""
        invoice = self.create_invoice()
        url = f"{self.live_url}/payments/api/invoices/{invoice.uuid}/checkout/"
        self.slow_down("start")

        outcomes = race([lambda: requests.post(url, timeout=30)] * 4)

        assert all(o.ok for o in outcomes), [repr(o.error) for o in outcomes]
        codes = [o.value.status_code for o in outcomes]
        assert codes == [200] * 4, [o.value.text[:500] for o in outcomes]
        assert len({json.dumps(o.value.json(), sort_keys=True) for o in outcomes}) == 1
        assert len(self.operations(invoice, "start")) == 1
        expected = 1 if self.registers() else 0
        assert len(self.calls("start")) == expected
        assert self.adapter.payments(invoice).count() == expected

    @pytest.mark.parametrize("alias", ALIASES)
    def test_a_start_whose_caller_died_is_taken_over(self, alias):
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
        expected = 1 if self.registers() else 0
        assert self.adapter.payments(invoice).count() == expected
        creates = self.calls("start")
        assert len(creates) == expected
        if alias in KEYED:
            assert {c.idempotency_key for c in creates} == {dead.key}
            assert invoice.operations.get().key == dead.key
        assert checkout.payment_id == fresh(invoice).provider_payment_id

    @pytest.mark.parametrize("alias", ALIASES)
    def test_a_dead_start_that_reached_the_provider_is_found_again(self, alias):
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

    @pytest.mark.parametrize("alias", ALIASES)
    def test_a_start_that_timed_out_is_resent_with_the_same_key(self, alias):
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
        assert claim.state == IN_FLIGHT and claim.reason

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


class TestInFlight(MoneyCase):
    @pytest.mark.parametrize("alias", ALIASES)
    def test_a_refund_without_an_answer_counts_against_the_next(self, alias):
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
        assert "no answer" in unknown.reason

        with pytest.raises(InvalidAmount):
            services.refund_invoice(fresh(invoice), "50.00")  # only 40 left
        assert len(self.calls("refund")) == 1
        services.refund_invoice(fresh(invoice))  # the default: the 40 left
        with pytest.raises(OperationInFlight):
            services.refund_invoice(fresh(invoice), "0.01")

        assert len(self.calls("refund")) == 2
        assert [Decimal(r["amount"]) for r in self.adapter.refunds(invoice)] == [
            Decimal("40") * (100 if alias == "payconnect" else 1)
        ]
        self.assert_invoice(
            invoice, InvoiceStatus.PARTIALLY_REFUNDED, refunds=1, refunded="40.00"
        )
        # The unanswered one stays in flight; the one answered is confirmed
        # (for Life-Pay by its notification, which arrived during the call).
        wait_for(lambda: states(invoice, "refund") == [IN_FLIGHT, CONFIRMED], 2.0)
        assert states(invoice, "refund") == [IN_FLIGHT, CONFIRMED]
        self.assert_refunds_within_payment(invoice)

    @pytest.mark.parametrize("alias", ALIASES)
    def test_a_refund_whose_answer_was_lost_is_settled_by_its_webhook(self, alias):
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
        assert "no answer" not in claim.reason, claim.reason
        self.assert_invoice(invoice, InvoiceStatus.REFUNDED, refunds=1, refunded="100")
        with pytest.raises(InvalidOperation):
            services.refund_invoice(fresh(invoice))
        assert len(self.calls("refund")) == 1
        self.assert_refunds_within_payment(invoice)

    @pytest.mark.parametrize("alias", ALIASES)
    def test_a_refusal_releases_the_claim(self, alias):
        self.need(Capability.REFUND)
        invoice = self.paid_invoice("100.00")
        self.set_faults(refund={"status": 409, "times": 1})
        with pytest.raises(ProviderAPIError):
            services.refund_invoice(fresh(invoice))
        [refused] = self.operations(invoice, "refund")
        assert refused.state == FAILED
        assert "409" in refused.reason
        assert refused.settled_at is not None
        assert self.adapter.refunds(invoice) == []

        services.refund_invoice(fresh(invoice))

        assert len(self.calls("refund")) == 2
        self.assert_settled(invoice)
        assert states(invoice, "refund") == [FAILED, CONFIRMED]
        self.assert_invoice(invoice, InvoiceStatus.REFUNDED, refunds=1, refunded="100")
        self.assert_refunds_within_payment(invoice)


class TestRefundConfirmedByNotification(MoneyCase):
    """Life-Pay A1Lite answers a refund with nothing but "accepted"; the refund
    notification confirms it (ASSUMPTION A-16). Here the notifications are held
    back (sent to a port nothing listens on), then delivered."""

    def hold_back_notifications(self) -> None:
        dead = f"http://127.0.0.1:{closed_port()}/payments/webhooks/{self.alias}/"
        # The provider checks the signature over its configured URL: both
        # sides name the same one, so the notification verifies when it comes.
        self.set_provider_options(webhook_url=dead)
        services_config = emulator_services(self.live_url)
        for service in services_config:
            if service["service_id"] == SERVICES[self.alias]:
                service["webhook_url"] = dead
        self.set_emulator(services=services_config)

    def held_back(self, invoice: Invoice) -> list[WebhookDelivery]:
        rows = self.deliveries(invoice, event_type="refund")
        assert all(d.status == WebhookDelivery.Status.FAILED for d in rows)
        return rows

    def deliver(self, delivery: WebhookDelivery) -> None:
        WebhookDelivery.objects.filter(pk=delivery.pk).update(
            url=f"{self.live_url}/payments/webhooks/{self.alias}/"
        )
        assert send_webhook(delivery).status == WebhookDelivery.Status.DELIVERED

    @pytest.mark.parametrize("alias", ["lifepay", "lifepay_v1"])
    def test_a_refund_is_in_flight_until_its_notification(self, alias):
        invoice = self.paid_invoice("100.00")
        self.hold_back_notifications()

        services.refund_invoice(fresh(invoice), "30.00")
        [first] = self.operations(invoice, "refund")
        assert first.state == IN_FLIGHT
        assert fresh(invoice).refunded_amount == 0
        services.refund_invoice(fresh(invoice))  # the default: 70, not 100
        with pytest.raises(OperationInFlight):
            services.refund_invoice(fresh(invoice), "1.00")
        assert len(self.calls("refund")) == 2
        assert [r["amount"] for r in self.adapter.refunds(invoice)] == [
            "30.00",
            "70.00",
        ]
        assert states(invoice, "refund") == [IN_FLIGHT, IN_FLIGHT]
        thirty, seventy = self.held_back(invoice)

        self.deliver(thirty)
        assert states(invoice, "refund") == [CONFIRMED, IN_FLIGHT]
        self.assert_invoice(
            invoice, InvoiceStatus.PARTIALLY_REFUNDED, refunds=1, refunded="30.00"
        )
        self.deliver(seventy)

        assert states(invoice, "refund") == [CONFIRMED, CONFIRMED]
        self.assert_invoice(invoice, InvoiceStatus.REFUNDED, refunds=2, refunded="100")
        self.assert_refunds_within_payment(invoice)

    @pytest.mark.parametrize(
        ("first", "second"), [("30.00", "20.00"), ("30.00", "70.00")]
    )
    @pytest.mark.parametrize("alias", ["lifepay"])
    def test_notifications_out_of_order_confirm_their_own_refunds(
        self, alias, first, second
    ):
        """Two refunds in flight; the second one's notification comes first
        (the first one's delivery is retried later). Each notification confirms
        its own refund, and what is left can then be refunded."""
        invoice = self.paid_invoice("100.00")
        self.hold_back_notifications()
        services.refund_invoice(fresh(invoice), first)
        services.refund_invoice(fresh(invoice), second)
        early, late = self.held_back(invoice)

        self.deliver(late)
        self.deliver(early)

        done = Decimal(first) + Decimal(second)
        status = (
            InvoiceStatus.REFUNDED if done == 100 else InvoiceStatus.PARTIALLY_REFUNDED
        )
        self.assert_invoice(invoice, status, refunds=2, refunded=done)
        assert states(invoice, "refund") == [CONFIRMED, CONFIRMED]
        if done < 100:
            services.refund_invoice(fresh(invoice))  # the rest
            wait_for(lambda: len(self.deliveries(invoice, event_type="refund")) == 3)
            self.deliver(self.deliveries(invoice, event_type="refund")[-1])
            self.assert_invoice(
                invoice, InvoiceStatus.REFUNDED, refunds=3, refunded="100"
            )
        self.assert_settled(invoice)
        self.assert_refunds_within_payment(invoice)
