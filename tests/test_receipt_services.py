"""Receipts through the services: stored with the invoice, refused by a
provider that prints none, refunded line by line, the old metadata path."""

from __future__ import annotations

import copy
from decimal import Decimal
from unittest import mock

import pytest
from django.test import override_settings

from django_payments_ru import services
from django_payments_ru.events import EventType
from django_payments_ru.exceptions import (
    InvalidInput,
    NotSupported,
    RemovedInDjangoPaymentsRu2Warning,
)
from django_payments_ru.models import Invoice, Operation
from django_payments_ru.providers.base import Capability
from django_payments_ru.providers.sandbox import Provider as Sandbox
from django_payments_ru.receipts import Receipt
from tests.helpers import event, make_invoice
from tests.providers.payconnect.cases import ALIAS as PAYCONNECT
from tests.providers.payconnect.cases import provider_config

pytestmark = pytest.mark.django_db(transaction=True)

#: An order of three lines, 930.00 RUB (the example of docs/receipts.rst).
LINES = [
    {
        "name": "Маракуя",
        "quantity": "2",
        "price": "340.00",
        "amount": "680.00",
        "vat": "none",
        "unit": "kg",
        "code": "21321312122",
    },
    {
        "name": "Манго",
        "quantity": "0.5",
        "price": "300.00",
        "amount": "150.00",
        "vat": "vat10",
        "unit": "kg",
    },
    {
        "name": "Доставка",
        "quantity": "1",
        "price": "100.00",
        "amount": "100.00",
        "vat": "vat20",
        "unit": "service",
        "payment_object": "service",
    },
]


@pytest.fixture
def capable():
    """The sandbox as a provider that prints receipts (whatever its own
    declaration), its refund call recorded instead of sent."""
    with (
        mock.patch.object(
            Sandbox, "capabilities", Sandbox.capabilities | {Capability.RECEIPTS}
        ),
        mock.patch.object(Sandbox, "refund", autospec=True, return_value=None) as call,
    ):
        yield call


@pytest.fixture
def incapable():
    """The sandbox as a provider that prints no receipts."""
    with (
        mock.patch.object(
            Sandbox, "capabilities", Sandbox.capabilities - {Capability.RECEIPTS}
        ),
        mock.patch.object(Sandbox, "refund", autospec=True, return_value=None) as call,
    ):
        yield call


@pytest.fixture
def payconnect(settings):
    providers = {**settings.PAYMENTS_RU["PROVIDERS"], PAYCONNECT: provider_config()}
    settings.PAYMENTS_RU = {**settings.PAYMENTS_RU, "PROVIDERS": providers}
    return PAYCONNECT


def paid_invoice(**kwargs) -> Invoice:
    invoice = make_invoice("930.00", receipt=copy.deepcopy(LINES), **kwargs)
    services.apply_event(event(invoice, EventType.PAID))
    invoice.refresh_from_db()
    return invoice


# -- create_invoice ---------------------------------------------------------


def test_the_receipt_is_stored_with_the_invoice(capable):
    invoice = make_invoice("930.00", receipt={"lines": LINES, "delivery": "sms"})
    invoice.refresh_from_db()
    receipt = invoice.get_receipt()
    assert isinstance(receipt, Receipt)
    assert receipt.delivery == "sms"
    assert [line.name for line in receipt.lines] == ["Маракуя", "Манго", "Доставка"]
    assert receipt.total == Decimal("930.00")
    assert invoice.receipt["lines"][1]["quantity"] == "0.5"
    assert make_invoice().get_receipt() is None
    assert make_invoice().receipt == {}


@pytest.mark.parametrize(
    ("lines", "amount", "line", "field"),
    [
        ([{**LINES[0], "amount": "679.99"}, *LINES[1:]], "930.00", 1, "amount"),
        ([*LINES[:2], {**LINES[2], "price": 100.0}], "930.00", 3, "price"),
        (LINES, "931.00", None, "lines"),
    ],
)
def test_a_bad_receipt_writes_nothing(capable, lines, amount, line, field):
    with pytest.raises(InvalidInput) as info:
        make_invoice(amount, receipt=lines)
    assert info.value.field == "receipt"
    assert info.value.details.get("line") == line
    assert info.value.details["field"] == field
    assert Invoice.objects.count() == 0


def test_a_provider_without_receipts_refuses_them(payconnect):
    with pytest.raises(NotSupported) as info:
        services.create_invoice(
            provider=payconnect,
            amount="930.00",
            receipt=copy.deepcopy(LINES),
            customer_email="buyer@example.com",
        )
    assert info.value.code == "receipts_not_supported"
    assert "PayConnect" in str(info.value)
    assert "RECEIPTS_PRINTED_ELSEWHERE" in str(info.value)
    assert Invoice.objects.count() == 0
    # Without lines it is an ordinary invoice.
    services.create_invoice(
        provider=payconnect, amount="930.00", customer_email="buyer@example.com"
    )


def test_the_refusal_is_in_russian(payconnect):
    from django.utils import translation

    with translation.override("ru"), pytest.raises(NotSupported) as info:
        services.create_invoice(provider=payconnect, amount="930.00", receipt=LINES)
    assert "чек" in str(info.value)


def test_a_shop_printing_receipts_elsewhere_may_give_lines(payconnect, settings):
    settings.PAYMENTS_RU = {**settings.PAYMENTS_RU, "RECEIPTS_PRINTED_ELSEWHERE": True}
    invoice = services.create_invoice(
        provider=payconnect,
        amount="930.00",
        receipt=copy.deepcopy(LINES),
        customer_email="buyer@example.com",
    )
    assert invoice.get_receipt().total == Decimal("930.00")


def test_bad_lines_are_refused_before_the_capability(payconnect):
    """Even for a provider that prints none, a receipt that does not add up is
    named as such (the shop fixes one thing at a time)."""
    with pytest.raises(InvalidInput):
        services.create_invoice(provider=payconnect, amount="1.00", receipt=LINES)


# -- refunds ----------------------------------------------------------------


def _sent(call) -> Receipt | None:
    assert call.call_count == 1
    return call.call_args.kwargs["receipt"]


def test_a_full_refund_carries_every_line(capable):
    invoice = paid_invoice()
    services.refund_invoice(invoice)
    sent = _sent(capable)
    assert sent == invoice.get_receipt()
    assert capable.call_args.args[2] == Decimal("930.00")
    operation = Operation.objects.get(kind=Operation.Kind.REFUND)
    assert operation.get_receipt() == sent


def test_a_partial_refund_with_a_subset_of_lines(capable):
    invoice = paid_invoice()
    mango = {**LINES[1], "quantity": "0.25", "amount": "75.00"}
    with pytest.raises(InvalidInput, match="175"):
        services.refund_invoice(invoice, "100.00", receipt=[LINES[2], mango])
    capable.assert_not_called()
    services.refund_invoice(invoice, receipt=[LINES[2], mango])
    sent = _sent(capable)
    assert [(x.name, x.quantity) for x in sent.lines] == [
        ("Доставка", Decimal("1")),
        ("Манго", Decimal("0.25")),
    ]
    # The amount defaults to the lines' total and is checked against it.
    assert capable.call_args.args[2] == Decimal("175.00")
    # The refund above is in flight: what is left is counted without it.
    capable.reset_mock()
    services.refund_invoice(invoice, "75.00", receipt=[mango])
    assert _sent(capable).total == Decimal("75.00")
    # The rest: both Маракуя, nothing else.
    capable.reset_mock()
    services.refund_invoice(invoice)
    rest = _sent(capable)
    assert [(x.name, x.quantity, x.amount) for x in rest.lines] == [
        ("Маракуя", Decimal("2"), Decimal("680.00"))
    ]
    assert capable.call_args.args[2] == Decimal("680.00")


@pytest.mark.parametrize(
    "lines",
    [
        [{**LINES[0], "name": "Киви"}],  # never on the receipt
        [{**LINES[0], "quantity": "3", "amount": "1020.00"}],  # more than paid
        [{**LINES[2], "vat": "vat10"}],  # another VAT rate
        [LINES[2], LINES[2]],  # the one delivery twice
    ],
)
def test_a_refund_of_lines_never_paid_is_refused_before_any_call(capable, lines):
    invoice = paid_invoice()
    with pytest.raises(InvalidInput) as info:
        services.refund_invoice(invoice, receipt=lines)
    assert info.value.field == "receipt"
    assert "line" in str(info.value)
    capable.assert_not_called()
    assert not Operation.objects.filter(kind=Operation.Kind.REFUND).exists()


def test_an_amount_without_lines_needs_them(capable):
    invoice = paid_invoice()
    with pytest.raises(InvalidInput, match="name the lines"):
        services.refund_invoice(invoice, "100.00")
    capable.assert_not_called()


def test_lines_on_an_invoice_without_receipt_are_refused(capable):
    invoice = make_invoice("100.00")
    services.apply_event(event(invoice, EventType.PAID))
    with pytest.raises(InvalidInput, match="no receipt"):
        services.refund_invoice(invoice, receipt=LINES[:1])
    capable.assert_not_called()
    services.refund_invoice(invoice)
    assert capable.call_count == 1
    assert "receipt" not in capable.call_args.kwargs


@override_settings()
def test_a_provider_without_receipts_gets_no_receipt_keyword(incapable, settings):
    settings.PAYMENTS_RU = {**settings.PAYMENTS_RU, "RECEIPTS_PRINTED_ELSEWHERE": True}
    invoice = paid_invoice()
    services.refund_invoice(invoice, receipt=[LINES[2]])
    assert incapable.call_count == 1
    assert "receipt" not in incapable.call_args.kwargs
    # The lines are still kept for the shop's own register.
    operation = Operation.objects.get(kind=Operation.Kind.REFUND)
    assert operation.get_receipt().total == Decimal("100.00")


# -- the deprecated metadata["receipt"] -----------------------------------------


def test_metadata_receipt_warns_and_is_converted(capable):
    legacy = [
        {"name": "Маракуя", "price": "340.00", "quantity": "1", "sum": "340.00"}
        | {"vat_mode": "none", "unit": "kg", "code": "21321312122"}
    ]
    metadata = {"receipt": legacy, "lifepay": {"send_receipt_through": "sms"}, "x": 1}
    with pytest.warns(RemovedInDjangoPaymentsRu2Warning, match="receipt="):
        invoice = make_invoice("340.00", metadata=metadata)
    invoice.refresh_from_db()
    assert invoice.metadata == {"lifepay": {"send_receipt_through": "sms"}, "x": 1}
    receipt = invoice.get_receipt()
    assert receipt.delivery == "sms"
    line = receipt.lines[0]
    assert (line.name, line.vat, line.amount, line.unit, line.code) == (
        "Маракуя",
        "none",
        Decimal("340.00"),
        "kg",
        "21321312122",
    )


def test_metadata_receipt_is_validated_like_the_new_path(capable):
    bad = [{"name": "A", "price": "1.00", "quantity": "1", "vat_mode": "none"}]
    with (
        pytest.warns(RemovedInDjangoPaymentsRu2Warning),
        pytest.raises(InvalidInput) as info,
    ):
        make_invoice("1.00", metadata={"receipt": bad})
    assert info.value.details == {"line": 1, "field": "amount"}
    assert Invoice.objects.count() == 0


def test_both_paths_at_once_are_refused(capable):
    with (
        pytest.warns(RemovedInDjangoPaymentsRu2Warning),
        pytest.raises(InvalidInput, match="once"),
    ):
        make_invoice("930.00", receipt=LINES, metadata={"receipt": LINES})
    assert Invoice.objects.count() == 0
