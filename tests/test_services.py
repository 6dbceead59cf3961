from __future__ import annotations

import uuid
from datetime import timedelta
from decimal import Decimal
from unittest import mock

import pytest
from django.test import override_settings
from django.utils import timezone, translation

from django_payments_ru import services
from django_payments_ru.events import EventType
from django_payments_ru.exceptions import (
    ConfigurationError,
    InvalidAmount,
    InvalidCurrency,
    InvalidInput,
    InvalidOperation,
    NotSupported,
    PaymentsError,
    UnknownProvider,
)
from django_payments_ru.formatting import format_money
from django_payments_ru.models import Invoice
from django_payments_ru.providers.base import Checkout
from django_payments_ru.providers.sandbox import Provider as Sandbox
from django_payments_ru.registry import get_provider
from django_payments_ru.status import InvoiceStatus
from tests.helpers import event, make_invoice

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.mark.parametrize(
    ("kwargs", "error", "field"),
    [
        ({"amount": "10.001"}, InvalidAmount, "amount"),
        ({"amount": 10.5}, InvalidAmount, "amount"),
        ({"amount": "-1"}, InvalidAmount, "amount"),
        ({"currency": "XXX"}, InvalidCurrency, "currency"),
        ({"currency": "JPY", "amount": "100"}, InvalidCurrency, "currency"),
        ({"order_id": "x" * 65}, InvalidInput, "order_id"),
        ({"description": "d" * 256}, InvalidInput, "description"),
        ({"customer_email": "not-an-email"}, InvalidInput, "customer_email"),
        ({"customer_phone": "call me"}, InvalidInput, "customer_phone"),
        # Digits of other scripts pass str.isdigit(); no provider dials them.
        ({"customer_phone": "+\u0661\u0662\u0663"}, InvalidInput, "customer_phone"),
        ({"customer_phone": "+"}, InvalidInput, "customer_phone"),
        ({"metadata": ["not", "a", "dict"]}, InvalidInput, "metadata"),
    ],
)
def test_create_invoice_refuses_bad_input_and_writes_nothing(kwargs, error, field):
    params = {"provider": "sandbox", "amount": "100.00", **kwargs}
    with pytest.raises(error) as info:
        services.create_invoice(**params)
    assert info.value.field == field
    assert isinstance(info.value, PaymentsError)
    assert Invoice.objects.count() == 0


def test_create_invoice_unknown_provider_names_the_setting():
    with pytest.raises(UnknownProvider) as info:
        services.create_invoice(provider="nope", amount="1.00")
    assert "PAYMENTS_RU['PROVIDERS']" in str(info.value)
    assert "sandbox" in str(info.value)
    assert isinstance(info.value, ConfigurationError)
    assert Invoice.objects.count() == 0


def test_create_invoice_with_a_uuid_named_in_advance():
    chosen = uuid.uuid4()
    invoice = services.create_invoice(provider="sandbox", amount="5.00", uuid=chosen)
    assert Invoice.objects.get(pk=invoice.pk).uuid == chosen
    with pytest.raises(InvalidInput) as info:
        services.create_invoice(provider="sandbox", amount="6.00", uuid=chosen)
    assert info.value.field == "uuid"
    with pytest.raises(InvalidInput) as info:
        services.create_invoice(provider="sandbox", amount="6.00", uuid=str(chosen))
    assert info.value.field == "uuid"
    assert Invoice.objects.count() == 1


def test_create_invoice_uuid_race_meets_the_unique_index(monkeypatch):
    # Another caller takes the uuid between the check and the insert.
    chosen = uuid.uuid4()

    def validate(self, invoice):
        monkeypatch.undo()  # once
        make_invoice(uuid=chosen)

    monkeypatch.setattr(Sandbox, "validate_invoice", validate)
    with pytest.raises(InvalidInput) as info:
        services.create_invoice(provider="sandbox", amount="6.00", uuid=chosen)
    assert info.value.field == "uuid"
    assert Invoice.objects.count() == 1


def test_create_invoice_large_amounts_are_exact():
    invoice = services.create_invoice(provider="sandbox", amount="1000000000000.01")
    invoice.refresh_from_db()
    assert invoice.amount == Decimal("1000000000000.01")
    assert invoice.status == InvoiceStatus.CREATED
    assert invoice.metadata == {}


def test_start_payment_stores_the_checkout_and_does_not_register_twice():
    invoice = make_invoice()
    checkout = Checkout(
        method="GET",
        url="https://pay.example/p/1",
        payment_id="pay_1",
        expires_at=timezone.now() + timedelta(minutes=30),
    )
    with mock.patch.object(Sandbox, "start", return_value=checkout) as start:
        first = services.start_payment(invoice)
        second = services.start_payment(invoice)
    assert first == second == checkout
    assert start.call_count == 1
    invoice.refresh_from_db()
    assert invoice.provider_payment_id == "pay_1"
    assert invoice.status == InvoiceStatus.PENDING
    assert invoice.get_checkout() == checkout


def test_start_payment_again_after_expiry_or_failure():
    invoice = make_invoice()
    old = Checkout(
        method="GET",
        url="https://pay.example/p/1",
        payment_id="pay_1",
        expires_at=timezone.now() - timedelta(seconds=1),
    )
    new = Checkout(method="GET", url="https://pay.example/p/2", payment_id="pay_2")
    with mock.patch.object(Sandbox, "start", side_effect=[old, new]) as start:
        services.start_payment(invoice)
        assert services.start_payment(invoice) == new
    assert start.call_count == 2


def test_start_payment_provider_error_leaves_invoice_untouched():
    from django_payments_ru.exceptions import ProviderUnavailable

    invoice = make_invoice()
    with (
        mock.patch.object(Sandbox, "start", side_effect=ProviderUnavailable("down")),
        pytest.raises(ProviderUnavailable),
    ):
        services.start_payment(invoice)
    invoice.refresh_from_db()
    assert invoice.checkout == {}
    assert invoice.status == InvoiceStatus.CREATED


def test_start_payment_refuses_a_paid_invoice():
    invoice = make_invoice()
    services.apply_event(event(invoice, EventType.PAID))
    with pytest.raises(InvalidOperation):
        services.start_payment(invoice)


def test_refund_guards():
    invoice = make_invoice("100.00")
    with pytest.raises(InvalidOperation):
        services.refund_invoice(invoice)  # not paid
    services.apply_event(event(invoice, EventType.PAID))
    with pytest.raises(InvalidAmount):
        services.refund_invoice(invoice, "100.01")
    with pytest.raises(InvalidAmount):
        services.refund_invoice(invoice, "0")
    with mock.patch.object(Sandbox, "refund", return_value=None) as refund:
        services.refund_invoice(invoice, "40.00")
    refund.assert_called_once()
    assert refund.call_args.args[1] == Decimal("40.00")


def test_refund_errors_show_money_as_money():
    invoice = make_invoice("100.00")
    services.apply_event(event(invoice, EventType.PAID))
    with translation.override("ru"), pytest.raises(InvalidAmount) as too_much:
        services.refund_invoice(invoice, "150.00")
    # The currency's exponent and sign, the locale's separators: not "150.00".
    assert format_money("150.00", "RUB", "ru") in str(too_much.value)
    assert format_money("100.00", "RUB", "ru") in str(too_much.value)
    assert "150.00" not in str(too_much.value)


def test_refund_not_supported_by_provider():
    invoice = make_invoice("100.00")
    services.apply_event(event(invoice, EventType.PAID))
    with (
        mock.patch.object(Sandbox, "capabilities", frozenset()),
        pytest.raises(NotSupported),
    ):
        services.refund_invoice(invoice)


def test_cancel_locally_when_nothing_registered_and_late_payment_is_flagged():
    invoice = make_invoice("100.00")
    services.cancel_invoice(invoice)
    invoice.refresh_from_db()
    assert invoice.status == InvoiceStatus.CANCELLED
    with pytest.raises(InvalidOperation):
        services.cancel_invoice(invoice)
    services.apply_event(event(invoice, EventType.PAID))
    invoice.refresh_from_db()
    assert invoice.status == InvoiceStatus.PAID
    assert invoice.needs_attention


def test_cancel_asks_the_provider_when_registered():
    invoice = make_invoice("100.00")
    Invoice.objects.filter(pk=invoice.pk).update(provider_payment_id="pay_9")
    cancelled = event(invoice, EventType.CANCELLED, dedupe_id="cancel:pay_9")
    with mock.patch.object(Sandbox, "cancel", return_value=cancelled) as cancel:
        services.cancel_invoice(invoice)
    cancel.assert_called_once()
    invoice.refresh_from_db()
    assert invoice.status == InvoiceStatus.CANCELLED


def test_capture_and_release_need_a_hold():
    invoice = make_invoice("100.00")
    with pytest.raises(InvalidOperation):
        services.capture_invoice(invoice)
    with pytest.raises(InvalidOperation):
        services.release_invoice(invoice)
    services.apply_event(event(invoice, EventType.HELD))
    with pytest.raises(NotSupported):
        services.capture_invoice(invoice)


def test_refresh_applies_the_polled_status():
    invoice = make_invoice("100.00")
    paid = event(invoice, EventType.PAID, dedupe_id="poll:1")
    with mock.patch.object(Sandbox, "fetch_status", return_value=paid):
        result = services.refresh_invoice(invoice)
    assert result.status == InvoiceStatus.PAID


def test_registry_rebuilds_on_setting_change(settings):
    first = get_provider("sandbox")
    assert get_provider("sandbox") is first
    config = dict(settings.PAYMENTS_RU)
    with override_settings(PAYMENTS_RU=config):
        assert get_provider("sandbox") is not first
    assert repr(first) == "<Provider alias='sandbox'>"  # no option values


def test_provider_options_are_validated_naming_the_setting():
    with pytest.raises(ConfigurationError) as info:
        Sandbox("shop", {"base_url": "http://x/", "api_key": "k"})
    assert "PAYMENTS_RU['PROVIDERS']['shop']['OPTIONS']['webhook_secret']" in str(
        info.value
    )
    with pytest.raises(ConfigurationError) as info:
        Sandbox(
            "shop",
            {
                "base_url": "http://x/",
                "api_key": "k",
                "webhook_secret": "s",
                "colour": "red",
            },
        )
    assert "Unknown option 'colour'" in str(info.value)
    with pytest.raises(ConfigurationError) as info:
        Sandbox(
            "shop",
            {
                "base_url": "http://x/",
                "api_key": "k",
                "webhook_secret": "s",
                "webhook_tolerance": "300",
            },
        )
    assert "must be of type int" in str(info.value)


def test_missing_hook_names_class_and_method():
    from django_payments_ru.providers.base import BaseProvider

    class Half(BaseProvider):
        slug = "half"
        display_name = "Half"

    provider = Half("half", {})
    with pytest.raises(NotImplementedError, match=r"Half must implement start\(\)"):
        provider.start(make_invoice())
    with pytest.raises(NotImplementedError, match="verify_webhook"):
        provider.verify_webhook(None)  # type: ignore[arg-type]
    with pytest.raises(NotSupported):
        provider.fetch_status(make_invoice())


def test_cancel_a_failed_payment_locally_without_asking_the_provider():
    invoice = make_invoice("100.00")
    Invoice.objects.filter(pk=invoice.pk).update(provider_payment_id="pay_dead")
    services.apply_event(event(invoice, EventType.FAILED))
    with mock.patch.object(Sandbox, "cancel") as cancel:
        services.cancel_invoice(invoice)
    cancel.assert_not_called()
    invoice.refresh_from_db()
    assert invoice.status == InvoiceStatus.CANCELLED


def test_refresh_invoices_asks_each_invoice_without_batch_status(monkeypatch):
    paid, waiting = make_invoice("10.00"), make_invoice("20.00")
    asked = []

    def fetch_status(self, invoice):
        asked.append(invoice.pk)
        return event(invoice, EventType.PAID) if invoice.pk == paid.pk else None

    monkeypatch.setattr(Sandbox, "fetch_status", fetch_status)
    fresh = services.refresh_invoices([waiting, paid])
    assert sorted(asked) == sorted([paid.pk, waiting.pk])
    assert [i.pk for i in fresh] == [waiting.pk, paid.pk]
    assert [i.status for i in fresh] == [InvoiceStatus.CREATED, InvoiceStatus.PAID]


def test_refresh_invoices_asks_a_batch_provider_once(monkeypatch):
    from django_payments_ru.providers.base import Capability

    invoices = [make_invoice("10.00") for _ in range(3)]
    calls = []

    def fetch_statuses(self, given):
        calls.append(sorted(i.pk for i in given))
        return [event(given[0], EventType.PAID)]

    def fetch_status(self, invoice):  # never: the batch call answers for all
        raise AssertionError("asked one by one")

    monkeypatch.setattr(
        Sandbox, "capabilities", Sandbox.capabilities | {Capability.BATCH_STATUS}
    )
    monkeypatch.setattr(Sandbox, "fetch_statuses", fetch_statuses, raising=False)
    monkeypatch.setattr(Sandbox, "fetch_status", fetch_status)
    fresh = services.refresh_invoices(invoices)
    assert calls == [sorted(i.pk for i in invoices)]
    assert sum(i.status == InvoiceStatus.PAID for i in fresh) == 1


def test_the_same_problem_found_again_is_noted_once():
    # A poll that finds the same underpayment at every refresh: one note.
    invoice = make_invoice("100.00")
    for n in range(3):
        services.apply_event(
            event(invoice, EventType.PAID, Decimal("60.00"), dedupe_id=f"poll:{n}")
        )
    invoice.refresh_from_db()
    assert invoice.needs_attention
    assert invoice.attention_text.count("60.00") == 1
    services.apply_event(
        event(invoice, EventType.PAID, Decimal("70.00"), dedupe_id="poll:other")
    )
    invoice.refresh_from_db()
    assert invoice.attention_text.count("\n") == 1  # a new problem is a new line
