"""Under ``ATOMIC_REQUESTS`` the app's views stay outside the request's
transaction: no provider call is ever made inside one.

The sandbox provider calls its emulator on the live server; every call through
the HTTP client records whether the calling thread's connection was inside an
atomic block (other than a test case's own: these tests are transactional, so
there is none).
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest
import requests
from django.core.handlers.base import BaseHandler
from django.db import connection, connections, transaction
from shop.models import Order, Product

from django_payments_ru import services
from django_payments_ru.api import customer as api_customer
from django_payments_ru.api import schema as api_schema
from django_payments_ru.exceptions import ProviderUnavailable
from django_payments_ru.models import Invoice
from django_payments_ru.paylinks import make_token
from django_payments_ru.providers.http import HttpClient
from django_payments_ru.providers.sandbox import Provider as Sandbox
from django_payments_ru.status import InvoiceStatus
from django_payments_ru.views import pay_view, return_view, webhook
from tests.helpers import payment_object, post_webhook, webhook_body

pytestmark = [pytest.mark.live, pytest.mark.django_db(transaction=True)]


@dataclass
class Call:
    what: str
    thread: str
    in_transaction: bool


def _in_transaction() -> bool:
    # The atomic blocks Django's test cases open are marked _from_testcase.
    return connection.in_atomic_block and any(
        not getattr(block, "_from_testcase", False)
        for block in connection.atomic_blocks
    )


@pytest.fixture
def calls(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[Call]]:
    """Every provider HTTP call and webhook verification, with whether it ran
    inside a transaction; ``ATOMIC_REQUESTS`` turned on for the test."""
    recorded: list[Call] = []
    # connections.settings is what the request handler reads (and the dict the
    # connections were built from): override_settings(DATABASES=...) would not
    # reach it.
    monkeypatch.setitem(connections.settings["default"], "ATOMIC_REQUESTS", True)
    assert connection.settings_dict["ATOMIC_REQUESTS"] is True

    request_raw = HttpClient.request_raw
    verify = Sandbox.verify_webhook

    def recording_request(self: HttpClient, method: str, path: str, **kw: Any) -> Any:
        recorded.append(
            Call(
                f"{method} {path}",
                threading.current_thread().name,
                _in_transaction(),
            )
        )
        return request_raw(self, method, path, **kw)

    def recording_verify(self: Sandbox, request: Any) -> None:
        recorded.append(
            Call("verify_webhook", threading.current_thread().name, _in_transaction())
        )
        verify(self, request)

    monkeypatch.setattr(HttpClient, "request_raw", recording_request)
    monkeypatch.setattr(Sandbox, "verify_webhook", recording_verify)
    yield recorded


def test_the_app_views_opt_out_of_atomic_requests(calls: list[Call]) -> None:
    # What the request handler does with each view under ATOMIC_REQUESTS.
    handler = BaseHandler()

    def plain(request: Any) -> None:
        return None

    assert handler.make_view_atomic(plain) is not plain  # the setting is on
    for view in (
        webhook,
        return_view,
        pay_view,
        api_customer.PayCheckoutView.as_view(),
        api_customer.PayStateView.as_view(),
        api_schema.SchemaView.as_view(),
    ):
        assert handler.make_view_atomic(view) is view, view


def test_the_recorder_sees_a_transaction(calls: list[Call]) -> None:
    # The checks below mean something only if a call inside atomic() shows.
    # Nothing listens on the port: the call fails at once, holding no lock
    # that another thread would wait for.
    client = HttpClient(provider="x", base_url="http://127.0.0.1:9/", retries=0)
    with transaction.atomic(), pytest.raises(ProviderUnavailable):
        client.request_raw("GET", "nothing")
    client.close()
    assert [c.in_transaction for c in calls] == [True]


def test_no_provider_call_inside_a_transaction(
    calls: list[Call], client: Any, live_payments: Any
) -> None:
    invoice = services.create_invoice(
        provider="sandbox",
        amount="100.00",
        order_id="atomic-1",
        return_url=f"{live_payments.url}/orders/atomic-1/",
    )

    # The API checkout starts the payment at the provider.
    response = client.post(f"/payments/api/pay/{make_token(invoice)}/checkout/")
    assert response.status_code == 200, response.content
    invoice.refresh_from_db()
    assert invoice.status == InvoiceStatus.PENDING

    # The return view asks the provider for the status, then redirects.
    response = client.get(f"/payments/return/{invoice.uuid}/")
    assert response.status_code == 302
    assert response["Location"] == f"{live_payments.url}/orders/atomic-1/"

    # The provider's webhook marks it paid.
    body = webhook_body(payment_object(invoice, "succeeded"))
    assert post_webhook(client, body).status_code == 200
    invoice.refresh_from_db()
    assert invoice.status == InvoiceStatus.PAID

    kinds = [c.what.split(" ")[0] for c in calls]
    assert kinds == ["POST", "GET", "verify_webhook"], calls
    assert not [c for c in calls if c.in_transaction], calls


def test_the_example_shop_starts_payments_outside_the_transaction(
    calls: list[Call], live_payments: Any
) -> None:
    # The shop's order page calls no provider; the pay link it renders starts
    # the payment, outside any transaction (the view is non_atomic_requests,
    # as docs/configuration.rst asks of such views). Through the live server,
    # like a browser.
    product = Product.objects.create(name="Tea", price="250.00")
    order = Order.objects.create(
        product=product, amount=product.price, email="buyer@example.com"
    )
    response = requests.get(
        f"{live_payments.url}{order.get_absolute_url()}", timeout=30
    )
    assert response.status_code == 200
    invoice = Invoice.objects.get(shop_attempt__order=order, provider="sandbox")
    assert invoice.status == InvoiceStatus.CREATED
    assert not [c for c in calls if c.what == "POST api/payments"], calls
    response = requests.get(
        services.pay_link(invoice), timeout=30, allow_redirects=False
    )
    assert response.status_code == 302
    invoice.refresh_from_db()
    assert invoice.status == InvoiceStatus.PENDING  # started: the call was made
    starts = [c for c in calls if c.what == "POST api/payments"]
    assert starts, calls
    assert not [c for c in calls if c.in_transaction], calls
