"""Reconciliation by list (4.4, the seed's "Batch запросы"): many pending
invoices are refreshed with ``GET invoices?status=PENDING&limit=1000`` page by
page, and only those missing from the list are read one by one."""

from __future__ import annotations

import uuid
from datetime import timedelta
from decimal import Decimal

from django_payments_ru import services
from django_payments_ru.emulator import clock
from django_payments_ru.emulator.models import EmulatedPayment
from django_payments_ru.events import EventType
from django_payments_ru.models import Invoice
from django_payments_ru.providers.base import Capability
from django_payments_ru.providers.loveandpay.emulator import emulator
from django_payments_ru.status import InvoiceStatus

from .cases import ALIAS, API_KEY, LoveAndPayCase


def pending(count: int) -> list[Invoice]:
    """``count`` invoices pending at Love&Pay, written in bulk on both sides
    (the emulator's table and ours)."""
    now = clock.now()
    refs = [(uuid.uuid4(), str(uuid.uuid4())) for _ in range(count)]
    EmulatedPayment.objects.bulk_create(
        [
            EmulatedPayment(
                slug="loveandpay",
                external_id=invoice_id,
                status="PENDING",
                amount=Decimal("100.00"),
                currency="RUB",
                reference=f"INV-{i}",
                description=f"Order [{ref}]",
                created_at=now + timedelta(microseconds=i),
                expires_at=now + timedelta(hours=24),
                data={"account": API_KEY, "customer": {}, "webhook_urls": []},
            )
            for i, (ref, invoice_id) in enumerate(refs)
        ],
        batch_size=2000,
    )
    Invoice.objects.bulk_create(
        [
            Invoice(
                uuid=ref,
                provider=ALIAS,
                status=InvoiceStatus.PENDING,
                amount=Decimal("100.00"),
                currency="RUB",
                provider_payment_id=invoice_id,
            )
            for ref, invoice_id in refs
        ],
        batch_size=2000,
    )
    return list(Invoice.objects.filter(provider=ALIAS).order_by("id"))


class TestReconciliation(LoveAndPayCase):
    def test_batch_status_is_offered(self):
        assert self.provider.supports(Capability.BATCH_STATUS)

    def test_ten_thousand_pending_invoices_cost_ten_list_calls(self):
        invoices = pending(10_000)
        done = invoices[:3]
        EmulatedPayment.objects.filter(
            external_id__in=[i.provider_payment_id for i in done]
        ).update(status="PAID", data={"account": API_KEY, "paidAt": None})
        lapsed = invoices[3]
        EmulatedPayment.objects.filter(external_id=lapsed.provider_payment_id).update(
            status="EXPIRED"
        )

        events = self.provider.fetch_statuses(invoices)

        assert len(emulator.calls("list")) == 10
        assert len(emulator.calls("get")) == 4
        assert sorted((e.provider_payment_id, e.type) for e in events) == sorted(
            [(i.provider_payment_id, EventType.PAID) for i in done]
            + [(lapsed.provider_payment_id, EventType.EXPIRED)]
        )
        for event in events:
            services.apply_event(event)
        assert Invoice.objects.filter(status=InvoiceStatus.PAID).count() == 3
        assert Invoice.objects.filter(status=InvoiceStatus.EXPIRED).count() == 1
        assert Invoice.objects.filter(status=InvoiceStatus.PENDING).count() == 9_996

    def test_refresh_invoices_reconciles_through_the_list(self):
        # The service a job calls: one fetch_statuses for the alias, applied.
        invoices = pending(2_500)
        EmulatedPayment.objects.filter(
            external_id=invoices[7].provider_payment_id
        ).update(status="PAID", data={"account": API_KEY, "paidAt": None})

        fresh = services.refresh_invoices(invoices)

        assert len(emulator.calls("list")) == 3
        assert len(emulator.calls("get")) == 1
        assert [i.pk for i in fresh] == [i.pk for i in invoices]
        assert fresh[7].status == InvoiceStatus.PAID
        assert Invoice.objects.filter(status=InvoiceStatus.PENDING).count() == 2_499

    def test_the_list_stops_once_every_invoice_was_seen(self):
        invoices = pending(1_500)

        assert self.provider.fetch_statuses(invoices[:10]) == []

        assert len(emulator.calls("list")) == 1
        assert emulator.calls("get") == []

    def test_nothing_to_ask(self):
        assert self.provider.fetch_statuses([]) == []
        assert emulator.calls() == []
