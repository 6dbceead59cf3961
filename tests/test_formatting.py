"""Money as people read it: the currency's decimals, the locale's signs."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import pytest
from django.utils import translation

from django_payments_ru.admin.forms import AmountField, InvoiceAddForm, RefundForm
from django_payments_ru.emulator.models import EmulatedPayment
from django_payments_ru.formatting import currency_digits, format_money, plain_amount
from django_payments_ru.models import Invoice

NBSP = "\xa0"


@pytest.mark.parametrize(
    ("amount", "currency", "locale", "shown"),
    [
        # The column keeps three places; RUB has two.
        (Decimal("1234.500"), "RUB", "ru", f"1{NBSP}234,50{NBSP}₽"),
        (Decimal("1234.500"), "RUB", "en", "RUB1,234.50"),
        (Decimal("1234.500"), "RUB", "en-us", "RUB1,234.50"),
        (Decimal("0.5"), "USD", "en", "$0.50"),
        (Decimal("1234"), "JPY", "ru", f"1{NBSP}234{NBSP}¥"),
        (Decimal("1.234"), "BHD", "en", "BHD1.234"),
        # CLDR shows HUF without decimals; the app takes (and charges) fillér.
        (Decimal("100.50"), "HUF", "en", "HUF100.50"),
        ("2490.5", "RUB", "ru", f"2{NBSP}490,50{NBSP}₽"),
        (Decimal("-5"), "RUB", "ru", f"-5,00{NBSP}₽"),
    ],
)
def test_format_money(amount: Any, currency: str, locale: str, shown: str) -> None:
    assert format_money(amount, currency, locale) == shown


def test_the_active_language_is_the_default() -> None:
    with translation.override("ru"):
        assert format_money(Decimal("10.5"), "RUB") == f"10,50{NBSP}₽"
    with translation.override("en"):
        assert format_money(Decimal("10.5"), "RUB") == "RUB10.50"


def test_what_a_template_may_hold_never_raises() -> None:
    assert format_money(None, "RUB") == ""
    assert format_money("", "RUB") == ""
    assert format_money("abc", "RUB") == "abc"
    assert format_money(Decimal("NaN"), "RUB") == "NaN"
    assert format_money(Decimal("1.5"), "", "en") == "1.5"
    assert format_money(Decimal("1"), "RUB", "xx-nowhere") == "RUB1.00"


def test_plain_amount_and_digits() -> None:
    assert plain_amount(Decimal("1234.500"), "RUB") == "1234.50"
    assert plain_amount(Decimal("1234"), "JPY") == "1234"
    assert plain_amount(Decimal("1.2"), "BHD") == "1.200"
    assert [currency_digits(c) for c in ("RUB", "JPY", "KWD", "IQD", "XXX")] == [
        2,
        0,
        3,
        3,  # the app's (ISO 4217) exponent, where CLDR says 0
        2,  # unknown to the app: Babel's
    ]


# --- the admin ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("language", "typed", "sent"),
    [
        ("ru", "10,50", "10.50"),
        ("ru", "10.50", "10.50"),
        ("ru", f"1{NBSP}234,50", "1234.50"),
        ("ru", "1 234,50", "1234.50"),
        ("en", "10.50", "10.50"),
        # In English a comma is not a decimal point: the services refuse it.
        ("en", "10,50", "10,50"),
        ("ru", "", ""),
    ],
)
def test_amount_inputs_take_the_locales_separator(
    language: str, typed: str, sent: str
) -> None:
    with translation.override(language):
        assert AmountField(required=False).clean(typed) == sent
        form = RefundForm({"amount": typed})
        assert form.is_valid()
        assert form.cleaned_data["amount"] == sent


def test_the_add_forms_help_shows_the_locales_separator() -> None:
    with translation.override("ru"):
        assert "1234,50" in str(InvoiceAddForm().fields["amount"].help_text)
    with translation.override("en"):
        assert "1234.50" in str(InvoiceAddForm().fields["amount"].help_text)


@pytest.mark.django_db
def test_the_russian_admin_adds_an_invoice_of_10_50(
    admin_client: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    from django_payments_ru.providers.base import Checkout
    from django_payments_ru.providers.sandbox import Provider as Sandbox

    monkeypatch.setattr(
        Sandbox,
        "start",
        lambda self, invoice, request=None, *, key="": Checkout(
            method="GET", url="https://pay.example.test/x"
        ),
    )
    response = admin_client.post(
        "/admin/django_payments_ru/invoice/add/",
        {"provider": "sandbox", "amount": "10,50", "currency": "RUB"},
        HTTP_ACCEPT_LANGUAGE="ru",
    )
    assert response.status_code == 302, response.content.decode()[:3000]
    invoice = Invoice.objects.get()
    assert invoice.amount == Decimal("10.50")
    listing = admin_client.get(
        "/admin/django_payments_ru/invoice/", HTTP_ACCEPT_LANGUAGE="ru"
    ).content.decode()
    assert f"10,50{NBSP}₽" in listing
    assert "10.500" not in listing
    english = admin_client.get("/admin/django_payments_ru/invoice/").content.decode()
    assert "RUB10.50" in english


# --- the emulators' pages ---------------------------------------------------------


@pytest.mark.django_db
def test_the_emulators_pay_page_shows_money_and_declares_the_language(
    client: Any,
) -> None:
    # As the sandbox's emulator stores it: three places.
    payment = EmulatedPayment.objects.create(
        slug="sandbox",
        external_id="pay_0123456789abcdef",
        status="succeeded",
        amount=Decimal("2490.500"),
        currency="RUB",
    )
    url = f"/emulator/done/sandbox/{payment.external_id}/"
    ru = client.get(url, HTTP_ACCEPT_LANGUAGE="ru").content.decode()
    en = client.get(url, HTTP_ACCEPT_LANGUAGE="en").content.decode()
    assert '<html lang="ru">' in ru and f"2{NBSP}490,50{NBSP}₽" in ru
    assert '<html lang="en">' in en and "RUB2,490.50" in en
