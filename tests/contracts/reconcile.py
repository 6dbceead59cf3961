"""The reconciliation contract: a webhook that never came, for every provider.

Each provider's package subclasses :class:`ReconcileContract` once per alias,
with its adapter (:class:`tests.contracts.flows.Adapter`), in
``tests/providers/<slug>/test_reconcile_contract.py``::

    class TestAcmeReconcile(ReconcileContract):
        adapter = ACME

The customer pays on the emulator's page while its webhooks are lost
(:meth:`Adapter.lose_webhooks`); the reconciliation job
(:func:`django_payments_ru.jobs.reconcile`, what ``manage.py
payments_reconcile`` and the beat task run) asks the provider, in its batch
where it has one, and marks the invoice paid exactly once: one transition,
one ``invoice_paid`` signal; a second run asks nobody and changes nothing, and
the webhook delivered late at last changes nothing either.
"""

from __future__ import annotations

from decimal import Decimal

from django_payments_ru import jobs
from django_payments_ru.emulator.models import WebhookDelivery
from django_payments_ru.providers.base import Capability
from django_payments_ru.status import InvoiceStatus

from .flows import ContractCase


class ReconcileContract(ContractCase):
    """Reconciliation against the alias's emulator (not collected itself)."""

    lacking = "has no"

    def paid_without_webhook(self, amount: str = "100.00"):
        """An invoice paid on the emulator whose webhook was lost."""
        self.adapter.lose_webhooks(self)
        invoice = self.create_invoice(amount=amount)
        # Not followed: the return view would ask the provider itself.
        self.adapter.act(self, self.start(invoice), "pay", follow=False)
        for lost in self.deliveries(invoice):
            assert lost.status == WebhookDelivery.Status.FAILED
        invoice.refresh_from_db()
        assert invoice.status in jobs.RECONCILED and invoice.paid_amount == 0
        return invoice

    def test_a_webhook_that_never_came_is_reconciled_once(self):
        self.need(Capability.STATUS)
        invoice = self.paid_without_webhook("250.00")
        old = invoice.status

        report = jobs.reconcile(alias=self.alias, older_than=0)

        assert report.asked == [invoice.pk]
        assert (report.unreachable, report.errors) == ({}, [])
        assert [(c.invoice, c.old, c.new) for c in report.changes] == [
            (invoice.pk, old, InvoiceStatus.PAID)
        ]
        self.assert_invoice(invoice, InvoiceStatus.PAID, charges=1)
        assert invoice.paid_amount == Decimal("250.00")
        assert self.signals.count("invoice_paid", invoice) == 1
        assert self.changes_to(invoice, InvoiceStatus.PAID) == 1
        assert self.adapter.payment(invoice).status == self.adapter.statuses["paid"]
        assert jobs.last_run("reconcile")["changed"] == 1

        again = jobs.reconcile(alias=self.alias, older_than=0)

        assert (again.asked, again.changes) == ([], [])
        self.assert_invoice(invoice, InvoiceStatus.PAID, charges=1)
        assert self.signals.count("invoice_paid", invoice) == 1

    def test_the_lost_webhook_delivered_after_reconciliation_changes_nothing(self):
        self.need(Capability.STATUS)
        invoice = self.paid_without_webhook()
        jobs.reconcile(alias=self.alias, older_than=0)
        self.assert_invoice(invoice, InvoiceStatus.PAID, charges=1)

        for lost in self.deliveries(invoice):
            self.adapter.deliver(self, lost)

        self.assert_invoice(invoice, InvoiceStatus.PAID, charges=1)
        assert self.signals.count("invoice_paid", invoice) == 1
        assert self.changes_to(invoice, InvoiceStatus.PAID) == 1
