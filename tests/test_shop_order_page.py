"""The example shop's order page: the right words, and buttons only when they
make sense. Rendering it never calls a provider."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import pytest
from shop.models import Order, Product

from django_payments_ru import services
from django_payments_ru.events import EventType
from django_payments_ru.models import Invoice
from django_payments_ru.providers.sandbox import Provider as Sandbox
from tests.helpers import event

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture(autouse=True)
def no_provider_calls(monkeypatch: pytest.MonkeyPatch) -> None:
    def refuse(*args: Any, **kwargs: Any) -> Any:
        raise AssertionError("the order page called the provider")

    monkeypatch.setattr(Sandbox, "start", refuse)


@pytest.fixture
def order() -> Order:
    product = Product.objects.create(name="Tea", price=Decimal("1234.50"))
    return Order.objects.create(
        product=product, amount=product.price, email="buyer@example.com"
    )


def page(client: Any, order: Order, language: str = "en") -> str:
    response = client.get(order.get_absolute_url(), HTTP_ACCEPT_LANGUAGE=language)
    assert response.status_code == 200
    return response.content.decode()


def invoice_of(order: Order) -> Invoice:
    return Invoice.objects.filter(shop_attempt__order=order).latest("id")


def test_an_open_order_offers_pay_links(client: Any, order: Order) -> None:
    html = page(client, order)
    assert "Choose how to pay" in html
    assert "/payments/pay/" in html
    assert "RUB1,234.50" in html
    assert "1\xa0234,50\xa0₽" in page(client, order, "ru")
    assert invoice_of(order).status == "created"  # nothing was started


def test_a_hold_says_so_and_offers_no_payment(client: Any, order: Order) -> None:
    page(client, order)
    services.apply_event(event(invoice_of(order), EventType.HELD))
    html = page(client, order)
    assert "The amount is held; you will be charged when the order ships." in html
    assert 'data-order-status="on_hold"' in html
    assert "Choose how to pay" not in html
    assert "/payments/pay/" not in html


def test_a_full_refund_says_so_and_offers_no_payment(client: Any, order: Order) -> None:
    page(client, order)
    invoice = invoice_of(order)
    services.apply_event(event(invoice, EventType.PAID))
    services.apply_event(event(invoice, EventType.REFUNDED, amount=invoice.amount))
    html = page(client, order)
    assert "The payment of RUB1,234.50 has been refunded in full." in html
    assert "Choose how to pay" not in html
    assert "/payments/pay/" not in html


def test_a_partial_refund_says_how_much(client: Any, order: Order) -> None:
    page(client, order)
    invoice = invoice_of(order)
    services.apply_event(event(invoice, EventType.PAID))
    services.apply_event(event(invoice, EventType.REFUNDED, amount=Decimal("34.50")))
    html = page(client, order)
    assert "RUB34.50 of RUB1,234.50 has been refunded." in html
    assert "Choose how to pay" not in html


def test_an_expired_attempt_says_so_and_offers_a_new_one(
    client: Any, order: Order
) -> None:
    page(client, order)
    expired = invoice_of(order)
    services.apply_event(event(expired, EventType.EXPIRED))
    html = page(client, order)
    assert "The time to pay this invoice has run out." in html
    assert "Choose how to pay" in html
    assert invoice_of(order) != expired  # a fresh invoice behind the new link


def test_a_cancelled_attempt_says_so_and_offers_a_new_one(
    client: Any, order: Order
) -> None:
    # Love&Pay's customer may cancel on its page (loveandpay.md section 5),
    # and a merchant may cancel an invoice in the admin: the order is still
    # open, and the page says why that attempt is over.
    page(client, order)
    cancelled = invoice_of(order)
    services.apply_event(event(cancelled, EventType.CANCELLED))
    html = page(client, order)
    assert "This invoice was cancelled and can no longer be paid." in html
    assert 'data-order-status="awaiting_payment"' in html
    assert "Choose how to pay" in html
    assert invoice_of(order) != cancelled
