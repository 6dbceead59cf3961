"""The receipt (54-FZ) contracts: one for the providers that print receipts,
one for the providers that do not.

A provider's package subclasses one of them per alias, with its adapter
(:class:`tests.contracts.flows.Adapter`), in
``tests/providers/<slug>/test_receipts.py``.

:class:`ReceiptContract` (the provider declares ``Capability.RECEIPTS``): the
invoice's neutral lines arrive at the emulator in the provider's own format
(the subclass says how it reads them, :meth:`ReceiptContract.arrived`, and what
they must look like, :meth:`ReceiptContract.expected`); the emulator itself
refuses a receipt that does not add up (:meth:`ReceiptContract.send_unbalanced`
calls its endpoint directly, past our own validation, and
:meth:`ReceiptContract.assert_refused` reads its refusal); a partial refund
carries a subset of the lines (to the emulator where the provider's refund
takes lines, :meth:`ReceiptContract.refund_lines_arrived`; else they are
recorded by us only) and a refund of lines never paid is refused before any
call::

    class TestAcmeReceipts(ReceiptContract):
        adapter = ACME

        def arrived(self, invoice): ...
        def expected(self, receipt): ...
        def send_unbalanced(self, invoice): ...
        def assert_refused(self, response): ...

:class:`NoReceiptContract` (the provider does not): an invoice with a receipt
is refused before anything is written or sent, unless
``PAYMENTS_RU["RECEIPTS_PRINTED_ELSEWHERE"]`` says the shop prints its receipts
elsewhere; then it is accepted and paid, and nothing about the receipt reaches
the provider::

    class TestAcmeWithoutReceipts(NoReceiptContract):
        adapter = ACME
"""

from __future__ import annotations

import copy
from decimal import Decimal
from typing import Any, ClassVar

import pytest

from django_payments_ru import services
from django_payments_ru.exceptions import InvalidInput, NotSupported
from django_payments_ru.models import Invoice, Operation
from django_payments_ru.providers.base import Capability
from django_payments_ru.receipts import Receipt
from django_payments_ru.status import InvoiceStatus

from .flows import ContractCase

#: The example order of the docs' "Receipts (54-FZ)" page: three lines, 1000.00.
ORDER: dict[str, Any] = {
    "delivery": "email",
    "lines": [
        {
            "name": "Чай улун",
            "quantity": "2",
            "price": "350.00",
            "amount": "700.00",
            "vat": "vat20",
            "code": "TEA-100",
        },
        {
            "name": "Маракуя",
            "quantity": "0.5",
            "price": "340.00",
            "amount": "170.00",
            "vat": "none",
            "unit": "kg",
        },
        {
            "name": "Доставка",
            "quantity": "1",
            "price": "130.00",
            "amount": "130.00",
            "vat": "vat20",
            "unit": "service",
            "payment_object": "service",
        },
    ],
}
ORDER_TOTAL = "1000.00"


def order(**changes: Any) -> dict[str, Any]:
    """A deep copy of :data:`ORDER` with ``changes`` on the receipt."""
    return {**copy.deepcopy(ORDER), **changes}


class ReceiptContract(ContractCase):
    """Receipts through a provider that prints them (not collected itself)."""

    lacking = "does not support"
    #: Why the emulator cannot be sent lines at all ("" when it can): a
    #: provider whose API takes no lines (Life-Pay ECOM, lifepay.md §11.2).
    no_lines: ClassVar[str] = ""

    # --- what the subclass says ---------------------------------------------------

    def arrived(self, invoice: Invoice) -> Any:
        """What the emulator received of ``invoice``'s receipt, as it arrived
        (the provider's format)."""
        raise NotImplementedError(f"{type(self).__name__} must define arrived()")

    def expected(self, receipt: Receipt) -> Any:
        """What :meth:`arrived` must be for ``receipt``."""
        raise NotImplementedError(f"{type(self).__name__} must define expected()")

    def send_unbalanced(self, invoice: Invoice) -> Any:
        """Send ``invoice`` to the emulator directly, its lines adding up to
        less than its amount (our validation would never let it through);
        return the emulator's answer."""
        raise NotImplementedError(
            f"{type(self).__name__} must define send_unbalanced()"
        )

    def assert_refused(self, answer: Any) -> None:
        """``answer`` (of :meth:`send_unbalanced`) is the emulator's refusal,
        in the provider's error shape, naming the lines."""
        raise NotImplementedError(f"{type(self).__name__} must define assert_refused()")

    def refund_lines_arrived(self, invoice: Invoice) -> list[Any] | None:
        """The lines each refund of ``invoice`` carried to the emulator, oldest
        first; ``None`` when the provider's refund takes no lines."""
        return None

    def expected_refund(self, receipt: Receipt) -> Any:
        """What :meth:`refund_lines_arrived` holds for a refund of
        ``receipt`` (default: :meth:`expected`)."""
        return self.expected(receipt)

    # --- the cases ------------------------------------------------------------------

    def receipt_invoice(self, **changes: Any) -> Invoice:
        return self.create_invoice(amount=ORDER_TOTAL, receipt=order(**changes))

    def test_the_provider_declares_receipts(self):
        assert self.provider.supports(Capability.RECEIPTS)

    def test_the_lines_arrive_in_the_providers_format(self):
        invoice = self.receipt_invoice(delivery="sms")
        receipt = invoice.get_receipt()
        assert receipt is not None and receipt.delivery == "sms"

        self.pay(invoice)

        self.assert_invoice(invoice, InvoiceStatus.PAID, charges=1)
        assert self.arrived(invoice) == self.expected(receipt)

    def test_the_emulator_refuses_a_receipt_that_does_not_add_up(self):
        if self.no_lines:
            pytest.skip(f"{self.alias}: {self.no_lines}")
        # Valid for 1000.00; sent for an invoice of 1000.01 past our checks.
        invoice = self.create_invoice(amount="1000.01")

        answer = self.send_unbalanced(invoice)

        self.assert_refused(answer)
        assert not self.adapter.payments(invoice).exists()

    def test_a_partial_refund_carries_a_subset_of_the_lines(self):
        self.need(Capability.REFUND, Capability.PARTIAL_REFUND)
        invoice = self.receipt_invoice()
        self.pay(invoice)
        self.assert_invoice(invoice, InvoiceStatus.PAID)
        delivery = {"name": "Доставка", "quantity": "1", "price": "130.00"}
        tea = {"name": "Чай улун", "quantity": "1", "price": "350.00"}
        lines = [
            {**delivery, "amount": "130.00", "vat": "vat20", "unit": "service"},
            {**tea, "amount": "350.00", "vat": "vat20"},
        ]

        services.refund_invoice(invoice, Decimal("480.00"), receipt=lines)

        self.assert_invoice(
            invoice, InvoiceStatus.PARTIALLY_REFUNDED, refunds=1, refunded="480.00"
        )
        [claim] = invoice.operations.filter(kind="refund")
        assert claim.state == Operation.State.CONFIRMED
        stored = Receipt.from_json(claim.receipt)
        assert [(line.name, line.quantity, line.amount) for line in stored.lines] == [
            ("Доставка", Decimal(1), Decimal("130.00")),
            ("Чай улун", Decimal(1), Decimal("350.00")),
        ]
        arrived = self.refund_lines_arrived(invoice)
        if arrived is not None:
            assert arrived == [self.expected_refund(stored)]

        # The rest: every line not refunded yet, by default.
        services.refund_invoice(invoice)

        self.assert_invoice(invoice, InvoiceStatus.REFUNDED, refunds=2)
        first, rest = invoice.operations.filter(kind="refund").order_by("id")
        rest_lines = Receipt.from_json(rest.receipt).lines
        assert sorted((line.name, line.quantity) for line in rest_lines) == [
            ("Маракуя", Decimal("0.5")),
            ("Чай улун", Decimal(1)),
        ]
        arrived = self.refund_lines_arrived(invoice)
        if arrived is not None:
            assert arrived == [
                self.expected_refund(Receipt.from_json(first.receipt)),
                self.expected_refund(Receipt.from_json(rest.receipt)),
            ]

    def test_a_refund_of_lines_never_paid_is_refused_before_any_call(self):
        self.need(Capability.REFUND, Capability.PARTIAL_REFUND)
        invoice = self.receipt_invoice()
        self.pay(invoice)
        self.assert_invoice(invoice, InvoiceStatus.PAID)
        never = {
            "name": "Кофе",
            "quantity": "1",
            "price": "100.00",
            "amount": "100.00",
            "vat": "vat20",
        }

        with pytest.raises(InvalidInput) as caught:
            services.refund_invoice(invoice, Decimal("100.00"), receipt=[never])

        assert caught.value.field == "receipt"
        assert self.calls("refund") == []
        assert not invoice.operations.filter(kind="refund").exists()
        self.assert_invoice(invoice, InvoiceStatus.PAID, refunds=0)


class NoReceiptContract(ContractCase):
    """Receipts and a provider that prints none (not collected itself)."""

    def printed_elsewhere(self, value: bool) -> None:
        config = copy.deepcopy(self._settings.PAYMENTS_RU)
        config["RECEIPTS_PRINTED_ELSEWHERE"] = value
        self._settings.PAYMENTS_RU = config

    def test_the_provider_does_not_declare_receipts(self):
        assert not self.provider.supports(Capability.RECEIPTS)

    def test_a_receipt_is_refused_unless_printed_elsewhere(self):
        self.printed_elsewhere(False)
        before = Invoice.objects.count()

        with pytest.raises(NotSupported) as caught:
            self.create_invoice(amount=ORDER_TOTAL, receipt=order())

        message = str(caught.value)
        assert str(self.provider.display_name) in message
        assert "RECEIPTS_PRINTED_ELSEWHERE" in message
        assert Invoice.objects.count() == before
        assert self.traffic.hits == []

    def test_printed_elsewhere_the_receipt_is_kept_and_not_sent(self):
        self.printed_elsewhere(True)
        invoice = self.create_invoice(amount=ORDER_TOTAL, receipt=order())
        receipt = invoice.get_receipt()
        assert receipt is not None and len(receipt.lines) == 3

        self.pay(invoice)

        self.assert_invoice(invoice, InvoiceStatus.PAID, charges=1)
        # Nothing of the receipt reached the provider.
        record = self.adapter.payment(invoice)
        text = repr(record.data) + record.description
        assert "Маракуя" not in text and "receipt" not in record.data


__all__ = ["ORDER", "ORDER_TOTAL", "NoReceiptContract", "ReceiptContract", "order"]
