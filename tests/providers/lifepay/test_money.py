"""Money moves once on Life-Pay's three aliases
(:class:`tests.contracts.money.MoneyContract`), and what only A1Lite has: a
refund is answered with nothing but "accepted" and confirmed by its
notification (ASSUMPTION A-16)."""

from __future__ import annotations

from decimal import Decimal

import pytest

from django_payments_ru import services
from django_payments_ru.emulator.models import WebhookDelivery
from django_payments_ru.exceptions import OperationInFlight
from django_payments_ru.models import Invoice, Operation
from django_payments_ru.status import InvoiceStatus
from tests.contracts.money import MoneyContract
from tests.emulator_cases import wait_for
from tests.money_cases import MoneyCase, fresh, states

from .adapter import LIFEPAY, LIFEPAY_ECOM, LIFEPAY_V1

CONFIRMED = Operation.State.CONFIRMED
IN_FLIGHT = Operation.State.IN_FLIGHT


class TestA1LiteMoney(MoneyContract):
    adapter = LIFEPAY


class TestA1LiteV1Money(MoneyContract):
    adapter = LIFEPAY_V1


class TestEcomMoney(MoneyContract):
    adapter = LIFEPAY_ECOM


class RefundConfirmedByNotification(MoneyCase):
    """Life-Pay A1Lite answers a refund with nothing but "accepted"; the refund
    notification confirms it (ASSUMPTION A-16). Here the notifications are held
    back (sent to a port nothing listens on, :meth:`LifePayAdapter.lose_webhooks`),
    then delivered."""

    def held_back(self, invoice: Invoice) -> list[WebhookDelivery]:
        rows = self.deliveries(invoice, event_type="refund")
        assert all(d.status == WebhookDelivery.Status.FAILED for d in rows)
        return rows

    def test_a_refund_is_in_flight_until_its_notification(self):
        invoice = self.paid_invoice("100.00")
        self.adapter.lose_webhooks(self)

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

        self.adapter.deliver(self, thirty)
        assert states(invoice, "refund") == [CONFIRMED, IN_FLIGHT]
        self.assert_invoice(
            invoice, InvoiceStatus.PARTIALLY_REFUNDED, refunds=1, refunded="30.00"
        )
        self.adapter.deliver(self, seventy)

        assert states(invoice, "refund") == [CONFIRMED, CONFIRMED]
        self.assert_invoice(invoice, InvoiceStatus.REFUNDED, refunds=2, refunded="100")
        self.assert_refunds_within_payment(invoice)


class TestA1LiteV1RefundNotifications(RefundConfirmedByNotification):
    adapter = LIFEPAY_V1


class TestA1LiteRefundNotifications(RefundConfirmedByNotification):
    adapter = LIFEPAY

    @pytest.mark.parametrize(
        ("first", "second"), [("30.00", "20.00"), ("30.00", "70.00")]
    )
    def test_notifications_out_of_order_confirm_their_own_refunds(self, first, second):
        """Two refunds in flight; the second one's notification comes first
        (the first one's delivery is retried later). Each notification confirms
        its own refund, and what is left can then be refunded."""
        invoice = self.paid_invoice("100.00")
        self.adapter.lose_webhooks(self)
        services.refund_invoice(fresh(invoice), first)
        services.refund_invoice(fresh(invoice), second)
        early, late = self.held_back(invoice)

        self.adapter.deliver(self, late)
        self.adapter.deliver(self, early)

        done = Decimal(first) + Decimal(second)
        status = (
            InvoiceStatus.REFUNDED if done == 100 else InvoiceStatus.PARTIALLY_REFUNDED
        )
        self.assert_invoice(invoice, status, refunds=2, refunded=done)
        assert states(invoice, "refund") == [CONFIRMED, CONFIRMED]
        if done < 100:
            services.refund_invoice(fresh(invoice))  # the rest
            wait_for(lambda: len(self.deliveries(invoice, event_type="refund")) == 3)
            self.adapter.deliver(
                self, self.deliveries(invoice, event_type="refund")[-1]
            )
            self.assert_invoice(
                invoice, InvoiceStatus.REFUNDED, refunds=3, refunded="100"
            )
        self.assert_settled(invoice)
        self.assert_refunds_within_payment(invoice)
