from __future__ import annotations

import uuid
from unittest import mock

import pytest

from django_payments_ru import services
from django_payments_ru.events import EventType
from django_payments_ru.exceptions import ProviderUnavailable
from django_payments_ru.providers.base import Checkout
from django_payments_ru.providers.sandbox import Provider as Sandbox
from tests.helpers import event, make_invoice

pytestmark = pytest.mark.django_db(transaction=True)


def test_invoice_state(client):
    invoice = make_invoice("1234.50", order_id="A-1")
    response = client.get(f"/payments/api/invoices/{invoice.uuid}/")
    assert response.status_code == 200
    data = response.json()
    assert data["reference"] == str(invoice.uuid)
    assert data["status"] == "created"
    assert data["amount"] == "1234.50"  # the currency's decimals, not the column's
    assert data["is_paid"] is False
    assert "metadata" not in data and "checkout" not in data


def test_unknown_invoice_is_404(client):
    assert client.get(f"/payments/api/invoices/{uuid.uuid4()}/").status_code == 404
    assert client.get("/payments/api/invoices/not-a-uuid/").status_code == 404


def test_checkout_redirect_and_form(client):
    invoice = make_invoice()
    redirect = Checkout(method="GET", url="https://pay.example/1", payment_id="p1")
    with mock.patch.object(Sandbox, "start", return_value=redirect):
        response = client.post(f"/payments/api/invoices/{invoice.uuid}/checkout/")
    assert response.status_code == 200
    assert response.json() == {
        "method": "GET",
        "url": "https://pay.example/1",
        "fields": {},
        "expires_at": None,
    }

    other = make_invoice()
    form = Checkout(
        method="POST",
        url="https://pay.example/form",
        fields={"cost": "100.00", "check": "a+b/c="},
    )
    with mock.patch.object(Sandbox, "start", return_value=form):
        data = client.post(f"/payments/api/invoices/{other.uuid}/checkout/").json()
    assert data["method"] == "POST"
    assert data["fields"] == {"cost": "100.00", "check": "a+b/c="}


def test_checkout_errors_are_json_not_500(client):
    invoice = make_invoice()
    with mock.patch.object(Sandbox, "start", side_effect=ProviderUnavailable("down")):
        response = client.post(f"/payments/api/invoices/{invoice.uuid}/checkout/")
    assert response.status_code == 502
    assert response.json()["code"] == "provider_unavailable"

    services.apply_event(event(invoice, EventType.PAID))
    response = client.post(f"/payments/api/invoices/{invoice.uuid}/checkout/")
    assert response.status_code == 409
    assert response.json()["code"] == "invalid_operation"


@pytest.mark.parametrize(
    ("amount", "currency", "shown"),
    [("1234.5", "RUB", "1234.50"), ("1234", "JPY", "1234"), ("1.234", "BHD", "1.234")],
)
def test_the_amount_has_the_currencys_decimals(client, amount, currency, shown):
    from django_payments_ru.models import Invoice

    invoice = make_invoice()
    # The sandbox takes RUB only: the row as another provider would store it.
    Invoice.objects.filter(pk=invoice.pk).update(amount=amount, currency=currency)
    data = client.get(f"/payments/api/invoices/{invoice.uuid}/").json()
    assert data["amount"] == shown
    assert data["currency"] == currency
