"""One order, one payment: invoices grouped by ``order_key``.

When one invoice of an order is paid the others still open are cancelled; a
payment that still arrives on another is applied (the money moved) and flagged
as paid twice, with a signal and an admin filter.
"""

from __future__ import annotations

import copy
from collections.abc import Iterator
from typing import Any

import pytest
from django.test import Client

from django_payments_ru import services, signals
from django_payments_ru.emulator.models import EmulatedPayment
from django_payments_ru.events import EventType
from django_payments_ru.exceptions import InvalidOperation
from django_payments_ru.models import Invoice, Payment
from django_payments_ru.status import InvoiceStatus
from tests.emulator_cases import EmulatorCase
from tests.helpers import event, make_invoice
from tests.providers.lifepay.conftest import emulator_services, provider_options
from tests.providers.payconnect.cases import (
    SECRET as PAYCONNECT_SECRET,
)
from tests.providers.payconnect.cases import (
    fresh_caches,
    provider_config,
)

CHANGELIST = "/admin/django_payments_ru/invoice/"


@pytest.fixture
def paid_twice_log() -> Iterator[list[dict[str, Any]]]:
    sent: list[dict[str, Any]] = []

    def receiver(sender: Any, **kwargs: Any) -> None:
        sent.append(kwargs)

    signals.invoice_paid_twice.connect(receiver, weak=False)
    try:
        yield sent
    finally:
        signals.invoice_paid_twice.disconnect(receiver)


def order_of(count: int, key: str = "order-42") -> list[Invoice]:
    return [make_invoice("100.00", order_key=key) for _ in range(count)]


# --- with the sandbox only, events applied directly ------------------------------


@pytest.mark.django_db
def test_paying_one_invoice_cancels_the_others(
    django_capture_on_commit_callbacks: Any,
) -> None:
    first, second, third = order_of(3)
    alone = make_invoice("100.00")  # no order: untouched
    with django_capture_on_commit_callbacks(execute=True):
        services.apply_event(event(second, EventType.PAID))
    for invoice in (first, second, third, alone):
        invoice.refresh_from_db()
    assert second.status == InvoiceStatus.PAID
    assert (first.status, third.status) == (InvoiceStatus.CANCELLED,) * 2
    assert alone.status == InvoiceStatus.CREATED
    assert not (first.paid_twice or second.paid_twice or third.paid_twice)


@pytest.mark.django_db
def test_with_celery_the_order_is_closed_in_a_task(
    django_capture_on_commit_callbacks: Any, settings: Any
) -> None:
    from celery.signals import task_prerun

    settings.PAYMENTS_RU = {**settings.PAYMENTS_RU, "WEBHOOK_PROCESSING": "celery"}
    ran: list[tuple[str, tuple[Any, ...]]] = []

    def record(sender: Any, args: tuple[Any, ...], **kwargs: Any) -> None:
        ran.append((sender.name, tuple(args)))

    task_prerun.connect(record, weak=False)
    try:
        first, second = order_of(2)
        with django_capture_on_commit_callbacks(execute=True):
            services.apply_event(event(first, EventType.PAID))
    finally:
        task_prerun.disconnect(record)
    assert ran == [("django_payments_ru.close_order", (first.pk,))]
    second.refresh_from_db()
    assert second.status == InvoiceStatus.CANCELLED


@pytest.mark.django_db
def test_a_failure_to_close_the_order_never_undoes_the_payment(
    django_capture_on_commit_callbacks: Any, monkeypatch: Any, caplog: Any
) -> None:
    def broken(invoice: Invoice) -> None:
        raise RuntimeError("boom")

    monkeypatch.setattr(services, "close_order", broken)
    first, _second = order_of(2)
    with django_capture_on_commit_callbacks(execute=True):
        services.apply_event(event(first, EventType.PAID))
    first.refresh_from_db()
    assert first.status == InvoiceStatus.PAID
    assert "Closing the order" in caplog.text


@pytest.mark.django_db
def test_a_payment_on_a_cancelled_sibling_is_applied_and_flagged(
    django_capture_on_commit_callbacks: Any,
    paid_twice_log: list[dict[str, Any]],
    admin_client: Client,
) -> None:
    first, second = order_of(2)
    with django_capture_on_commit_callbacks(execute=True):
        services.apply_event(event(first, EventType.PAID))
    second.refresh_from_db()
    assert second.status == InvoiceStatus.CANCELLED

    with django_capture_on_commit_callbacks(execute=True):
        services.apply_event(event(second, EventType.PAID))

    second.refresh_from_db()
    # The money moved: the payment is recorded, and the order has two.
    assert second.status == InvoiceStatus.PAID
    assert Payment.objects.filter(invoice=second, kind="charge").count() == 1
    assert second.paid_twice and second.needs_attention
    assert str(first.uuid) in second.attention_text
    [sent] = paid_twice_log
    assert sent["invoice"].pk == second.pk
    assert sent["other_invoice"].pk == first.pk
    first.refresh_from_db()
    assert not first.paid_twice

    # The admin's "paid twice" filter finds it, and only it.
    response = admin_client.get(CHANGELIST, {"paid_twice__exact": "1"})
    assert list(response.context["cl"].queryset) == [second]
    # The order filter lists the order's invoices.
    response = admin_client.get(CHANGELIST, {"order_key": "order-42"})
    assert set(response.context["cl"].queryset) == {first, second}


@pytest.mark.django_db
def test_a_second_payment_on_one_invoice_is_flagged_paid_twice(
    django_capture_on_commit_callbacks: Any,
    paid_twice_log: list[dict[str, Any]],
) -> None:
    invoice = make_invoice("100.00")
    services.apply_event(event(invoice, EventType.PAID, provider_payment_id="pay_1"))
    with django_capture_on_commit_callbacks(execute=True):
        services.apply_event(
            event(invoice, EventType.PAID, provider_payment_id="pay_2")
        )
    invoice.refresh_from_db()
    assert invoice.paid_twice
    [sent] = paid_twice_log
    assert sent["invoice"].pk == sent["other_invoice"].pk == invoice.pk


@pytest.mark.django_db
def test_a_paid_order_takes_no_new_invoice_and_no_new_start() -> None:
    first, second = order_of(2)
    services.apply_event(event(first, EventType.PAID))  # siblings left open here
    with pytest.raises(InvalidOperation, match="already paid"):
        make_invoice("100.00", order_key="order-42")
    with pytest.raises(InvalidOperation, match="already paid"):
        services.start_payment(second)
    assert Invoice.objects.filter(order_key="order-42").count() == 2


@pytest.mark.django_db
def test_invoices_without_an_order_key_are_not_grouped(
    django_capture_on_commit_callbacks: Any,
) -> None:
    first = make_invoice("100.00", order_id="same")
    second = make_invoice("100.00", order_id="same")
    with django_capture_on_commit_callbacks(execute=True):
        services.apply_event(event(first, EventType.PAID))
    second.refresh_from_db()
    assert second.status == InvoiceStatus.CREATED
    assert list(second.siblings()) == []


@pytest.mark.django_db
def test_the_change_page_links_the_order(admin_client: Client) -> None:
    first, _second = order_of(2)
    response = admin_client.get(f"{CHANGELIST}{first.pk}/change/")
    content = response.content.decode()
    assert "?order_key=order-42" in content
    assert "1 other invoice" in content


# --- three providers through their emulators ------------------------------------


class TestOneOrderThreeProviders(EmulatorCase):
    """Sandbox, PayConnect and Life-Pay ECOM offered for one order."""

    alias = "sandbox"

    def payments_settings(
        self, config: dict[str, Any], live_url: str
    ) -> dict[str, Any]:
        config["PROVIDERS"]["payconnect"] = provider_config()
        config["PROVIDERS"]["lifepay_ecom"] = provider_options()["lifepay_ecom"]
        return super().payments_settings(config, live_url)

    @pytest.fixture(autouse=True)
    def _emulators(self, _emulated: None, settings: Any) -> None:
        from django_payments_ru.providers.payconnect.emulator import emulator

        settings.CACHES = fresh_caches()
        emulated = copy.deepcopy(getattr(settings, "PAYMENTS_RU_EMULATOR", {}))
        emulated["payconnect"] = {"secret_keys": [PAYCONNECT_SECRET]}
        emulated["lifepay"] = {"services": emulator_services(self.live_url)}
        settings.PAYMENTS_RU_EMULATOR = emulated
        emulator.reset()

    def make_order(self) -> dict[str, Invoice]:
        invoices = {}
        for alias in ("sandbox", "payconnect", "lifepay_ecom"):
            invoices[alias] = services.create_invoice(
                provider=alias,
                amount="2490.50",
                order_id=f"7-{alias}",
                order_key="order-7",
                description="Order 7",
                customer_email="buyer@example.com",
            )
        return invoices

    def test_pay_one_the_others_are_cancelled_a_second_is_flagged(
        self, admin_client: Client
    ) -> None:
        invoices = self.make_order()
        # The customer opened every pay page (three tabs).
        pages = {
            alias: self.open_checkout(services.start_payment(invoice))
            for alias, invoice in invoices.items()
        }
        sent = []

        def receiver(sender: Any, **kwargs: Any) -> None:
            sent.append(kwargs["invoice"].provider)

        signals.invoice_paid_twice.connect(receiver, weak=False)
        try:
            self.press(pages["sandbox"], "pay")
            self.assert_invoice(invoices["sandbox"], InvoiceStatus.PAID, charges=1)
            for alias in ("payconnect", "lifepay_ecom"):
                self.assert_invoice(invoices[alias], InvoiceStatus.CANCELLED)
            assert not any(
                i.paid_twice for i in Invoice.objects.filter(order_key="order-7")
            )

            # PayConnect cannot cancel through its API: its page still takes
            # the money, and the payment that arrives is applied and flagged.
            self.press(pages["payconnect"], "pay")
            second = self.assert_invoice(
                invoices["payconnect"], InvoiceStatus.PAID, charges=1
            )
        finally:
            signals.invoice_paid_twice.disconnect(receiver)
        assert second.paid_twice and second.needs_attention
        assert sent == ["payconnect"]
        assert EmulatedPayment.objects.filter(
            slug="payconnect", status="succeeded"
        ).exists()
        invoices["lifepay_ecom"].refresh_from_db()
        assert invoices["lifepay_ecom"].status == InvoiceStatus.CANCELLED

        response = admin_client.get(CHANGELIST, {"paid_twice__exact": "1"})
        assert [i.provider for i in response.context["cl"].queryset] == ["payconnect"]
