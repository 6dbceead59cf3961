"""The customer's return to the shop is never proof of payment."""

from __future__ import annotations

import uuid
from unittest import mock

import pytest
from django.test import override_settings

from django_payments_ru.events import EventType
from django_payments_ru.exceptions import ProviderUnavailable
from django_payments_ru.providers.sandbox import Provider as Sandbox
from django_payments_ru.status import InvoiceStatus
from tests.helpers import event, make_invoice

pytestmark = pytest.mark.django_db(transaction=True)


def _url(invoice):
    return f"/payments/return/{invoice.uuid}/"


def test_browser_parameters_are_ignored(client):
    invoice = make_invoice()
    with mock.patch.object(Sandbox, "fetch_status", return_value=None):
        response = client.get(_url(invoice), {"status": "succeeded", "paid": "1"})
        client.post(_url(invoice), {"command": "success", "cost": "100.00"})
    assert response.status_code == 200
    invoice.refresh_from_db()
    assert invoice.status == InvoiceStatus.CREATED
    assert b"Created" in response.content


def test_return_asks_the_provider_and_redirects_to_the_shop(client):
    invoice = make_invoice(return_url="http://testserver/orders/42/")
    paid = event(invoice, EventType.PAID, dedupe_id="poll:x")
    with mock.patch.object(Sandbox, "fetch_status", return_value=paid) as fetch:
        response = client.get(_url(invoice))
    fetch.assert_called_once()
    assert response.status_code == 302
    assert response["Location"] == "http://testserver/orders/42/"
    invoice.refresh_from_db()
    assert invoice.status == InvoiceStatus.PAID


def test_return_survives_a_provider_outage(client):
    invoice = make_invoice()
    with mock.patch.object(
        Sandbox, "fetch_status", side_effect=ProviderUnavailable("down")
    ):
        response = client.get(_url(invoice))
    assert response.status_code == 200


def test_return_does_not_poll_when_disabled_or_settled(client, settings):
    invoice = make_invoice()
    with mock.patch.object(Sandbox, "fetch_status") as fetch:
        with override_settings(
            PAYMENTS_RU=dict(settings.PAYMENTS_RU, REFRESH_ON_RETURN=False)
        ):
            client.get(_url(invoice))
        from django_payments_ru import services

        services.apply_event(event(invoice, EventType.PAID))
        client.get(_url(invoice))
    fetch.assert_not_called()


def test_unknown_reference_is_404(client):
    assert client.get(f"/payments/return/{uuid.uuid4()}/").status_code == 404


def test_the_page_is_styled_in_the_customers_language(client):
    from decimal import Decimal

    from django_payments_ru.models import Invoice

    invoice = make_invoice(amount="1234.50", description="Order 7: tea")
    Invoice.objects.filter(pk=invoice.pk).update(amount=Decimal("1234.500"))
    with mock.patch.object(Sandbox, "fetch_status", return_value=None):
        ru = client.get(_url(invoice), HTTP_ACCEPT_LANGUAGE="ru").content.decode()
        en = client.get(_url(invoice), HTTP_ACCEPT_LANGUAGE="en").content.decode()
    assert '<html lang="ru">' in ru and '<html lang="en">' in en
    assert 'name="viewport"' in en and "<style>" in en
    # The currency's exponent, not the column's three places.
    assert "1\xa0234,50\xa0₽" in ru and "1234,500" not in ru
    assert "RUB1,234.50" in en and "1234.500" not in en
    assert "Order 7: tea" in en
    assert 'data-payments-ru-status="created"' in en
    assert "The invoice is waiting to be paid." in en
    # No return_url: the way back is BASE_URL (the shop).
    assert '<a href="http://testserver">Back to the shop</a>' in en


def test_a_shop_overrides_the_base_template_in_one_place(client, tmp_path, settings):
    base = tmp_path / "django_payments_ru"
    base.mkdir()
    (base / "base.html").write_text(
        "<html><body class='my-shop'>{% block content %}{% endblock %}</body></html>"
    )
    settings.TEMPLATES = [
        {**settings.TEMPLATES[0], "DIRS": [str(tmp_path)]},
    ]
    invoice = make_invoice()
    with mock.patch.object(Sandbox, "fetch_status", return_value=None):
        page = client.get(_url(invoice)).content.decode()
    assert "class='my-shop'" in page
    assert 'data-payments-ru-status="created"' in page


@pytest.mark.parametrize(
    ("changes", "told"),
    [
        ({"amount": "60.00"}, True),  # arrived short (a crypto payment)
        ({"currency": "USD"}, True),
        ({}, False),  # flagged for another reason: nothing said about money
    ],
)
def test_a_payment_that_does_not_match_is_what_the_customer_reads(changes, told):
    from dataclasses import replace
    from decimal import Decimal

    from django.utils import translation

    from django_payments_ru import customer, services

    invoice = make_invoice("100.00")
    if changes:
        amount = Decimal(changes.get("amount", "100.00"))
        paid = event(invoice, EventType.PAID, amount=amount)
        services.apply_event(replace(paid, currency=changes.get("currency", "RUB")))
    else:
        type(invoice).objects.filter(pk=invoice.pk).update(needs_attention=True)
    invoice.refresh_from_db()
    assert invoice.status == InvoiceStatus.CREATED and invoice.needs_attention
    with translation.override("en"):
        said = customer.status_message(invoice)
    assert ("will contact you" in said) is told, said
    if told:
        with translation.override("ru"):
            said = customer.status_message(invoice)
            assert "свяжется с вами" in said  # noqa: RUF001
