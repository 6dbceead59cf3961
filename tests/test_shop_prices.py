"""The example shop sells nothing at a zero or negative price: the models
validate it, the database refuses it, and the checkout makes no invoice for it."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import pytest
from django.contrib.auth import get_user_model
from django.core.exceptions import ValidationError
from django.db import IntegrityError, transaction
from django.test import RequestFactory
from shop.checkout import payment_options
from shop.models import Order, Product

from django_payments_ru.models import Invoice

pytestmark = pytest.mark.django_db

BAD = [Decimal("0"), Decimal("0.00"), Decimal("-0.01"), Decimal("-100")]


@pytest.mark.parametrize("price", BAD)
def test_model_validation_refuses_a_non_positive_price(price: Decimal) -> None:
    with pytest.raises(ValidationError) as caught:
        Product(name="Free tea", price=price).full_clean()
    assert "price" in caught.value.message_dict
    order = Order(product=Product(pk=1), amount=price, email="a@example.com")
    with pytest.raises(ValidationError) as caught:
        order.full_clean(exclude=["product"])
    assert "amount" in caught.value.message_dict


def test_the_smallest_price_is_accepted() -> None:
    Product(name="Tea", price=Decimal("0.01")).full_clean()


@pytest.mark.parametrize("price", BAD)
def test_the_database_refuses_a_non_positive_price(price: Decimal) -> None:
    with pytest.raises(IntegrityError), transaction.atomic():
        Product.objects.create(name="Free tea", price=price)
    product = Product.objects.create(name="Tea", price=Decimal("10.00"))
    # Also for writes that skip validation altogether.
    with pytest.raises(IntegrityError), transaction.atomic():
        Product.objects.filter(pk=product.pk).update(price=price)
    with pytest.raises(IntegrityError), transaction.atomic():
        Order.objects.create(product=product, amount=price, email="a@example.com")


def test_the_admin_refuses_a_free_product(client: Any) -> None:
    user = get_user_model().objects.create_superuser("admin", "a@example.com", "pw")
    client.force_login(user)
    response = client.post(
        "/admin/shop/product/add/",
        {"name": "Free tea", "description": "", "price": "0", "currency": "RUB"},
    )
    assert response.status_code == 200  # the form again, with the error
    assert b"errorlist" in response.content
    assert not Product.objects.filter(name="Free tea").exists()


def test_checkout_makes_no_invoice_for_a_non_positive_amount() -> None:
    # An order the constraints would refuse, never saved: the checkout code
    # path refuses it on its own.
    product = Product(name="Free tea", price=Decimal("0"))
    order = Order(product=product, amount=Decimal("0"), email="a@example.com")
    request = RequestFactory().get("/orders/x/")
    options = payment_options(order, request)
    assert options, "one option per configured provider"
    assert all(not option.payable and option.error for option in options)
    assert not Invoice.objects.exists()
