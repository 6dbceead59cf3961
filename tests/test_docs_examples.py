"""The examples of docs/testing.rst, run as they are printed there.

The page includes these tests (``literalinclude`` by function name), so what a
shop copies from it is what the suite runs: a paid event fed to the services,
a signed sandbox webhook posted with Django's test client, and a customer who
pays on the sandbox emulator's page through a live server. The example shop's
``Order`` (``example_project/shop/``) stands for the reader's order.
"""

from __future__ import annotations

# docs: imports
import json
import re
import time
import uuid

import pytest
import requests
from shop.models import Order, PaymentAttempt, Product

from django_payments_ru import services
from django_payments_ru.events import EventType, PaymentEvent
from django_payments_ru.providers.sandbox.provider import sign
from django_payments_ru.status import InvoiceStatus

# docs: end imports


# docs: helpers
def make_order():
    product = Product.objects.create(name="Chair", price="990.00")
    order = Order.objects.create(
        product=product, amount=product.price, email="buyer@example.com"
    )
    invoice = services.create_invoice(
        provider="sandbox",
        amount=order.amount,
        order_id=order.number,
        order_key=str(order.uuid),
    )
    PaymentAttempt.objects.create(order=order, invoice=invoice)
    return order, invoice


# docs: end helpers


@pytest.mark.django_db
def test_a_paid_event_marks_the_order_paid(django_capture_on_commit_callbacks):
    order, invoice = make_order()
    event = PaymentEvent(
        provider="sandbox",
        dedupe_id=f"test-{uuid.uuid4()}",  # one per event: a repeat changes nothing
        type=EventType.PAID,
        invoice_ref=str(invoice.uuid),
        amount=invoice.amount,
        currency=invoice.currency,
    )
    # The signals are sent after the commit: run those callbacks.
    with django_capture_on_commit_callbacks(execute=True):
        services.apply_event(event)
    invoice.refresh_from_db()
    order.refresh_from_db()
    assert invoice.status == InvoiceStatus.PAID
    assert order.paid_at is not None  # the shop's invoice_paid receiver ran


@pytest.mark.django_db
def test_a_signed_webhook_pays_the_invoice(
    client, settings, django_capture_on_commit_callbacks
):
    order, invoice = make_order()
    payment = {
        "id": "pay_test_1",
        "status": "succeeded",
        "amount": "990.00",
        "currency": "RUB",
        "reference": str(invoice.uuid),
    }
    body = json.dumps(
        {"id": "evt_test_1", "type": "payment.succeeded", "data": payment}
    ).encode()
    timestamp = str(int(time.time()))
    secret = settings.PAYMENTS_RU["PROVIDERS"]["sandbox"]["OPTIONS"]["webhook_secret"]
    with django_capture_on_commit_callbacks(execute=True):
        response = client.post(
            "/payments/webhooks/sandbox/",
            data=body,
            content_type="application/json",
            headers={
                "X-Sandbox-Timestamp": timestamp,
                "X-Sandbox-Signature": sign(secret, timestamp, body),
            },
        )
    assert response.status_code == 200
    invoice.refresh_from_db()
    order.refresh_from_db()
    assert invoice.status == InvoiceStatus.PAID
    assert invoice.provider_payment_id == "pay_test_1"
    assert order.paid_at is not None


# docs: live settings
@pytest.fixture
def sandbox_on_live_server(live_server, settings):
    """The sandbox pointed at its emulator on the live server, and the shop's
    URLs (webhooks, return) built on it too."""
    config = json.loads(json.dumps(settings.PAYMENTS_RU))  # a deep copy
    options = config["PROVIDERS"]["sandbox"]["OPTIONS"]
    options["base_url"] = f"{live_server.url}/emulator/sandbox/"
    config["BASE_URL"] = live_server.url
    settings.PAYMENTS_RU = config
    return live_server


# docs: end live settings


@pytest.mark.live
@pytest.mark.django_db(transaction=True)
def test_the_customer_pays_on_the_emulator(sandbox_on_live_server):
    order, invoice = make_order()
    checkout = services.start_payment(invoice)  # the sandbox API, over HTTP
    browser = requests.Session()
    page = browser.get(checkout.url, timeout=10)  # the emulated pay page
    token = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', page.text)
    assert token is not None
    browser.post(
        checkout.url,
        data={"csrfmiddlewaretoken": token.group(1), "action": "pay"},
        timeout=10,
    )
    # The emulator posts its signed webhook to the live server, whose thread
    # processes it; wait for it (never a fixed sleep).
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        invoice.refresh_from_db()
        if invoice.status == InvoiceStatus.PAID:
            break
        time.sleep(0.05)
    order.refresh_from_db()
    assert invoice.status == InvoiceStatus.PAID
    assert order.paid_at is not None
