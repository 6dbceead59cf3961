"""Receipts in the admin: typed on the add form, shown as a table on the
invoice's page, chosen line by line on the refund page."""

from __future__ import annotations

from decimal import Decimal
from typing import Any
from unittest import mock

import pytest
from django.test import Client
from django.urls import reverse
from django.utils import translation

from django_payments_ru import services
from django_payments_ru.admin.operations import CONFIRM_FIELD
from django_payments_ru.events import EventType
from django_payments_ru.models import Invoice, Operation
from django_payments_ru.providers.base import Capability, Checkout
from django_payments_ru.providers.sandbox import Provider as Sandbox
from tests.helpers import event, make_invoice
from tests.test_receipt_services import LINES

pytestmark = pytest.mark.django_db

ADD = reverse("admin:django_payments_ru_invoice_add")
ROWS = "\n".join(
    [
        "Маракуя | 2 | 340,00 | none | kg",
        "Манго | 0,5 | 300 | vat10",
        "Доставка | 1 | 100 | vat20 | service | service",
    ]
)


def change_url(invoice: Invoice) -> str:
    return reverse("admin:django_payments_ru_invoice_change", args=[invoice.pk])


def refund_url(invoice: Invoice) -> str:
    return reverse("admin:django_payments_ru_invoice_refund", args=[invoice.pk])


@pytest.fixture
def calls():
    """The sandbox printing receipts, its network calls recorded."""
    made: list[tuple[str, Any]] = []

    def start(self, invoice, request=None, *, key=""):
        made.append(("start", invoice.get_receipt()))
        return Checkout(method="GET", url="https://pay.example.test/p/1")

    def refund(self, invoice, amount, *, key="", receipt=None):
        made.append(("refund", (amount, receipt)))

    with (
        mock.patch.object(
            Sandbox, "capabilities", Sandbox.capabilities | {Capability.RECEIPTS}
        ),
        mock.patch.object(Sandbox, "start", start),
        mock.patch.object(Sandbox, "refund", refund),
    ):
        yield made


def add_data(**overrides: str) -> dict[str, str]:
    data = {
        "provider": "sandbox",
        "amount": "930.00",
        "currency": "RUB",
        "order_id": "A-1001",
        "customer_email": "buyer@example.com",
        "receipt": ROWS,
        "receipt_delivery": "sms",
    }
    data.update(overrides)
    return data


def test_the_add_form_takes_receipt_lines(admin_client: Client, calls) -> None:
    page = admin_client.get(ADD).content.decode()
    assert 'name="receipt"' in page and 'name="receipt_delivery"' in page
    response = admin_client.post(ADD, add_data())
    assert response.status_code == 302
    invoice = Invoice.objects.get()
    receipt = invoice.get_receipt()
    assert receipt.delivery == "sms"
    assert [(x.name, x.quantity, x.amount, x.vat) for x in receipt.lines] == [
        ("Маракуя", Decimal("2"), Decimal("680.00"), "none"),
        ("Манго", Decimal("0.5"), Decimal("150.00"), "vat10"),
        ("Доставка", Decimal("1"), Decimal("100.00"), "vat20"),
    ]
    assert receipt.lines[2].payment_object == "service"
    assert calls[0] == ("start", receipt)


@pytest.mark.parametrize(
    ("rows", "needle"),
    [
        ("Маракуя | 2 | 340,00 | vat7", "line 1, vat"),
        (
            "Маракуя | 2 | 340,00 | none\nМанго | abc | 300 | vat10",  # noqa: RUF001
            "line 2, quantity",
        ),
        ("Маракуя | 1 | 340,00 | none", "add up to 340.00"),
        ("Маракуя | 2 | 340,001 | none", "line 1, price"),
    ],
)
def test_a_bad_line_is_an_error_on_the_receipt_field(
    admin_client: Client, calls, rows: str, needle: str
) -> None:
    response = admin_client.post(ADD, add_data(amount="680.00", receipt=rows))
    assert response.status_code == 200
    errors = response.context["adminform"].form.errors
    assert needle in " ".join(errors["receipt"])
    assert Invoice.objects.count() == 0
    assert calls == []


def test_a_provider_without_receipts_is_an_error_on_the_form(
    admin_client: Client,
) -> None:
    with mock.patch.object(
        Sandbox, "capabilities", Sandbox.capabilities - {Capability.RECEIPTS}
    ):
        response = admin_client.post(ADD, add_data())
    assert response.status_code == 200
    assert "RECEIPTS_PRINTED_ELSEWHERE" in response.content.decode()
    assert Invoice.objects.count() == 0


def paid_invoice() -> Invoice:
    invoice = make_invoice("930.00", receipt=LINES)
    services.apply_event(event(invoice, EventType.PAID))
    invoice.refresh_from_db()
    return invoice


def test_the_invoice_page_shows_the_receipt_as_a_table(
    admin_client: Client, calls
) -> None:
    invoice = paid_invoice()
    with translation.override("en"):
        page = admin_client.get(
            change_url(invoice), HTTP_ACCEPT_LANGUAGE="ru"
        ).content.decode()
    assert 'class="payments-ru-receipt"' in page
    for text in ("Маракуя", "Манго", "Доставка", "vat10", "service"):
        assert text in page
    assert "Чек (54-ФЗ)" in page
    with translation.override("en"):
        plain = admin_client.get(
            change_url(make_invoice()), HTTP_ACCEPT_LANGUAGE="en"
        ).content.decode()
    assert "No receipt lines." in plain


def test_the_refund_page_refunds_every_line_by_default(
    admin_client: Client, calls
) -> None:
    invoice = paid_invoice()
    form = admin_client.get(refund_url(invoice))
    html = form.content.decode()
    assert 'name="line_0"' in html and 'name="line_2"' in html
    page = admin_client.post(refund_url(invoice), {"amount": ""})
    assert page.context["hidden"] == [("amount", "930.00")]
    response = admin_client.post(
        refund_url(invoice), {"amount": "930.00", CONFIRM_FIELD: "yes"}
    )
    assert response.status_code == 302
    [(kind, (amount, receipt))] = calls
    assert (kind, amount) == ("refund", Decimal("930.00"))
    assert receipt == invoice.get_receipt()


def test_the_refund_page_refunds_the_lines_chosen(admin_client: Client, calls) -> None:
    invoice = paid_invoice()
    page = admin_client.post(refund_url(invoice), {"line_1": "0,25", "line_2": "1"})
    assert page.status_code == 200
    assert page.context["hidden"] == [
        ("amount", "175.00"),
        ("line_1", "0.25"),
        ("line_2", "1"),
    ]
    assert "Манго" in page.content.decode()
    response = admin_client.post(
        refund_url(invoice), {**dict(page.context["hidden"]), CONFIRM_FIELD: "yes"}
    )
    assert response.status_code == 302
    [(_kind, (amount, receipt))] = calls
    assert amount == Decimal("175.00")
    assert [(x.name, x.quantity) for x in receipt.lines] == [
        ("Манго", Decimal("0.25")),
        ("Доставка", Decimal("1")),
    ]
    assert Operation.objects.get(kind="refund").get_receipt() == receipt
    # The refund page now offers what is left: Маракуя and 0.25 of Манго.
    html = admin_client.get(refund_url(invoice)).content.decode()
    assert "up to 0.25" in html and 'name="line_2"' not in html


def test_the_refund_page_refuses_more_than_was_paid_before_any_call(
    admin_client: Client, calls
) -> None:
    invoice = paid_invoice()
    response = admin_client.post(
        refund_url(invoice), {"line_0": "3", CONFIRM_FIELD: "yes"}
    )
    assert response.status_code == 200
    errors = response.context["form"].errors
    assert "left to refund" in " ".join(errors["line_0"])
    # An amount alone that is not every line asks for the lines.
    response = admin_client.post(refund_url(invoice), {"amount": "100"})
    assert "name the lines" in " ".join(response.context["form"].errors["amount"])
    assert calls == []
