"""The pay link ``/payments/pay/<token>/``: it starts the payment when opened."""

from __future__ import annotations

import html
import logging
import re
from datetime import timedelta
from typing import Any
from unittest import mock

import pytest
from django.core import signing
from django.test import RequestFactory, override_settings
from django.utils import timezone

from django_payments_ru import services
from django_payments_ru.events import EventType
from django_payments_ru.exceptions import ConfigurationError, ProviderUnavailable
from django_payments_ru.models import Invoice
from django_payments_ru.paylinks import SALT, make_token, read_token
from django_payments_ru.providers.base import Checkout
from django_payments_ru.providers.sandbox import Provider as Sandbox
from django_payments_ru.status import InvoiceStatus
from tests.helpers import event, make_invoice

pytestmark = pytest.mark.django_db(transaction=True)

EVIL = "\"><script>alert('x')</script>"
PNG = (
    "data:image/png;base64,iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR4"
    "nGNgYGD4DwABBAEAwS2OUAAAAABJRU5ErkJggg=="
)


class StartSpy:
    """Stands in for the sandbox's ``start``: counts the provider calls."""

    def __init__(
        self, checkout: Checkout | None = None, error: Exception | None = None
    ) -> None:
        self.checkout = checkout
        self.error = error
        self.requests: list[Any] = []

    def __call__(self, invoice: Invoice, request: Any = None) -> Checkout:
        self.requests.append(request)
        if self.error is not None:
            raise self.error
        return self.checkout or Checkout(
            method="GET",
            url=f"https://pay.example.test/{invoice.uuid.hex}",
            payment_id=f"pay_{invoice.uuid.hex[:10]}",
        )


@pytest.fixture
def start(monkeypatch: pytest.MonkeyPatch) -> StartSpy:
    spy = StartSpy()

    def start(
        self: Sandbox, invoice: Invoice, request: Any = None, *, key: str = ""
    ) -> Checkout:
        return spy(invoice, request)

    monkeypatch.setattr(Sandbox, "start", start)
    return spy


def path(invoice: Invoice) -> str:
    return f"/payments/pay/{make_token(invoice)}/"


def post_checkout(**fields: str) -> Checkout:
    return Checkout(
        method="POST", url="https://pay.example.test/form?x=1&y=2", fields=fields
    )


# --- the link -----------------------------------------------------------------


def test_the_link_is_absolute_on_base_url_and_signed() -> None:
    invoice = make_invoice()
    link = services.pay_link(invoice)
    assert link == invoice.get_pay_url()
    assert link.startswith("http://testserver/payments/pay/")
    token = link.rsplit("/", 2)[1]
    assert read_token(token) == invoice.uuid
    # Another invoice, another token; the same invoice, the same link, even
    # later (no timestamp in the token).
    assert services.pay_link(make_invoice()) != link
    with mock.patch("django.core.signing.time.time", return_value=4102444800):
        assert services.pay_link(invoice) == link


def test_without_base_url_the_request_gives_the_host(settings: Any) -> None:
    invoice = make_invoice()
    with override_settings(PAYMENTS_RU={**settings.PAYMENTS_RU, "BASE_URL": ""}):
        request = RequestFactory().get("/", HTTP_HOST="shop.example.test")
        assert services.pay_link(invoice, request).startswith(
            "http://shop.example.test/payments/pay/"
        )
        with pytest.raises(ConfigurationError, match="BASE_URL"):
            services.pay_link(invoice)


def test_a_tampered_or_foreign_token_is_404(client: Any, start: StartSpy) -> None:
    invoice = make_invoice()
    token = make_token(invoice)
    forged = signing.Signer(salt="another.salt").sign(invoice.uuid.hex)
    unsigned = token.split(":", 1)[0]
    for bad in (token[:-1] + ("A" if token[-1] != "A" else "B"), forged, unsigned):
        assert read_token(bad) is None
        assert client.get(f"/payments/pay/{bad}/").status_code == 404
    # A valid signature over something that is not a reference.
    other = signing.Signer(salt=SALT).sign("not-a-reference")
    assert client.get(f"/payments/pay/{other}/").status_code == 404
    assert start.requests == []


def test_a_signed_link_of_a_deleted_invoice_is_404(client: Any) -> None:
    invoice = make_invoice()
    url = path(invoice)
    Invoice.objects.filter(pk=invoice.pk).delete()
    assert client.get(url).status_code == 404


# --- GET checkouts ------------------------------------------------------------


def test_the_first_visit_starts_the_payment_and_redirects(
    client: Any, start: StartSpy
) -> None:
    invoice = make_invoice()
    response = client.get(path(invoice))
    assert response.status_code == 302
    assert response["Location"] == f"https://pay.example.test/{invoice.uuid.hex}"
    assert (
        "no-cache" in response["Cache-Control"]
        or "max-age=0" in (response["Cache-Control"])
    )
    assert len(start.requests) == 1
    assert start.requests[0] is not None  # the request went to the provider
    invoice.refresh_from_db()
    assert invoice.status == InvoiceStatus.PENDING
    # A second visit reuses the stored checkout: no new provider call.
    again = client.get(path(invoice))
    assert again["Location"] == response["Location"]
    assert len(start.requests) == 1


def test_a_head_request_starts_nothing(client: Any, start: StartSpy) -> None:
    invoice = make_invoice()
    assert client.head(path(invoice)).status_code == 200
    assert start.requests == []
    assert client.post(path(invoice)).status_code == 405


def test_an_expired_checkout_is_replaced(client: Any, start: StartSpy) -> None:
    invoice = make_invoice()
    Invoice.objects.filter(pk=invoice.pk).update(
        checkout=Checkout(
            method="GET",
            url="https://pay.example.test/old",
            expires_at=timezone.now() - timedelta(seconds=1),
        ).to_json()
    )
    response = client.get(path(invoice))
    assert "old" not in response["Location"]
    assert len(start.requests) == 1


def test_a_failed_invoice_gets_a_new_attempt(client: Any, start: StartSpy) -> None:
    invoice = make_invoice()
    services.start_payment(invoice)
    services.apply_event(event(invoice, EventType.FAILED))
    assert client.get(path(invoice)).status_code == 302
    assert len(start.requests) == 2


def test_a_qr_code_is_shown_beside_the_link(client: Any, start: StartSpy) -> None:
    start.checkout = Checkout(
        method="GET",
        url="https://pay.example.test/x",
        qr_image=PNG,
        qr_payload="https://qr.example.test/AD100004",
    )
    page = client.get(path(make_invoice())).content.decode()
    assert f'<img src="{PNG}"' in page
    assert '<a href="https://qr.example.test/AD100004"' in page
    assert '<a href="https://pay.example.test/x"' in page
    assert page.index("pay.example.test/x") < page.index("<figure")  # link first


@pytest.mark.parametrize(
    ("image", "payload"),
    [
        ("data:image/svg+xml;base64,PHN2Zz48L3N2Zz4=", ""),  # SVG can carry script
        ("javascript:alert(1)", ""),
        ("data:text/html;base64,PGI+", ""),
        (PNG, "javascript:alert(1)"),
    ],
)
def test_an_unsafe_qr_code_is_dropped(
    client: Any,
    start: StartSpy,
    image: str,
    payload: str,
    caplog: pytest.LogCaptureFixture,
) -> None:
    start.checkout = Checkout(
        method="GET",
        url="https://pay.example.test/x",
        qr_image=image,
        qr_payload=payload,
    )
    with caplog.at_level(logging.WARNING):
        response = client.get(path(make_invoice()))
    # Without a QR code worth showing, the customer goes straight to the page.
    assert response.status_code == 302
    assert response["Location"] == "https://pay.example.test/x"
    assert "QR code" in caplog.text


# --- POST checkouts -----------------------------------------------------------


def test_a_post_checkout_renders_an_auto_submitting_form(
    client: Any, start: StartSpy
) -> None:
    start.checkout = post_checkout(
        amount="100.00", name=EVIL, note='say "hi"', submit="1", items="3"
    )
    invoice = make_invoice()
    response = client.get(path(invoice))
    assert response.status_code == 200
    out = response.content.decode()
    form = re.search(r"<form [^>]*>", out).group(0)
    assert 'method="post"' in form
    assert 'action="https://pay.example.test/form?x=1&amp;y=2"' in form
    assert 'accept-charset="UTF-8"' in form
    assert f'id="payments-ru-checkout-{invoice.uuid}"' in form
    inputs = re.findall(r'<input type="hidden" name="([^"]*)" value="([^"]*)">', out)
    # Sorted: PostgreSQL's jsonb does not keep the stored checkout's key order.
    assert sorted((name, html.unescape(value)) for name, value in inputs) == [
        ("amount", "100.00"),
        ("items", "3"),
        ("name", EVIL),
        ("note", 'say "hi"'),
        ("submit", "1"),
    ]
    # The button for a browser without JavaScript.
    assert '<button type="submit" class="payments-ru-button">Pay with Sandbox' in out
    assert out.count("<script") == 1
    script = re.search(r"<script>(.*?)</script>", out, re.S).group(1)
    assert "alert" not in script
    assert f'getElementById("payments-ru-checkout-{invoice.uuid}")' in script
    # A field named "submit" shadows form.submit: the prototype's is called.
    assert "HTMLFormElement.prototype.submit.call" in script


def test_a_csp_nonce_is_used_when_the_request_has_one(start: StartSpy) -> None:
    from django_payments_ru.views import pay_view

    start.checkout = post_checkout(a="1")
    invoice = make_invoice()
    request = RequestFactory().get(path(invoice))
    request.csp_nonce = "abc123"
    out = pay_view(request, make_token(invoice)).content.decode()
    assert '<script nonce="abc123">' in out


# --- invoices that cannot be paid ---------------------------------------------


@pytest.mark.parametrize(
    ("event_type", "words"),
    [
        (EventType.PAID, "The payment has been received."),
        (EventType.CANCELLED, "cancelled and can no longer be paid"),
        (EventType.EXPIRED, "The time to pay this invoice has run out."),
        (EventType.HELD, "The amount is held; you will be charged when the order"),
    ],
)
def test_an_invoice_that_cannot_be_paid_shows_its_state(
    client: Any, start: StartSpy, event_type: EventType, words: str
) -> None:
    invoice = make_invoice()
    services.apply_event(event(invoice, event_type))
    invoice.refresh_from_db()
    response = client.get(path(invoice))
    assert response.status_code == 200
    page = response.content.decode()
    assert f'data-payments-ru-status="{invoice.status}"' in page
    assert words in page
    assert start.requests == []


def test_an_order_paid_through_another_invoice(client: Any, start: StartSpy) -> None:
    first = make_invoice(order_key="order-7")
    second = make_invoice(order_key="order-7")
    services.apply_event(event(first, EventType.PAID))
    # The app closed the order's other invoice after the payment committed.
    second.refresh_from_db()
    assert second.status == InvoiceStatus.CANCELLED
    page = client.get(path(second)).content.decode()
    assert 'data-payments-ru-status="cancelled"' in page
    # Before it is closed (the closing job has not run yet): still open, but
    # the order is paid, so nothing is started.
    third = make_invoice(order_key="order-8")
    fourth = make_invoice(order_key="order-8")
    Invoice.objects.filter(pk=third.pk).update(
        status=InvoiceStatus.PAID, paid_amount=third.amount
    )
    response = client.get(path(fourth))
    assert response.status_code == 200
    assert "This order has already been paid." in response.content.decode()
    assert start.requests == []


# --- failures: "try again", 503, never a 500 ------------------------------------


def test_a_provider_failure_is_a_503_with_try_again(
    client: Any, start: StartSpy, caplog: pytest.LogCaptureFixture
) -> None:
    start.error = ProviderUnavailable("The sandbox is down.", provider="sandbox")
    invoice = make_invoice()
    with caplog.at_level(logging.WARNING, logger="django_payments_ru"):
        response = client.get(path(invoice))
    assert response.status_code == 503
    page = response.content.decode()
    assert "cannot be started right now" in page
    assert page.count("cannot be started right now") == 1
    assert "sandbox is down" not in page  # provider details are for the log
    assert "ProviderUnavailable" in caplog.text
    assert str(invoice.uuid) in caplog.text


def test_an_unexpected_error_is_a_503(
    client: Any, start: StartSpy, caplog: pytest.LogCaptureFixture
) -> None:
    start.error = KeyError("payment_url")
    with caplog.at_level(logging.ERROR, logger="django_payments_ru"):
        response = client.get(path(make_invoice()))
    assert response.status_code == 503
    assert "KeyError" in caplog.text


def test_a_provider_that_is_no_longer_configured(client: Any) -> None:
    invoice = make_invoice()
    Invoice.objects.filter(pk=invoice.pk).update(provider="gone")
    assert client.get(path(invoice)).status_code == 503


def test_a_non_http_payment_url_is_never_followed(client: Any, start: StartSpy) -> None:
    start.checkout = Checkout(method="GET", url="javascript:alert(1)")
    response = client.get(path(make_invoice()))
    assert response.status_code == 503
    assert b"javascript" not in response.content


# --- the page -----------------------------------------------------------------


def test_the_page_has_a_viewport_the_language_and_a_way_back(
    client: Any, start: StartSpy
) -> None:
    invoice = make_invoice(return_url="http://testserver/orders/42/")
    services.apply_event(event(invoice, EventType.PAID))
    page = client.get(path(invoice), HTTP_ACCEPT_LANGUAGE="ru").content.decode()
    assert '<html lang="ru">' in page
    assert 'name="viewport"' in page
    assert 'href="http://testserver/orders/42/"' in page
    english = client.get(path(invoice), HTTP_ACCEPT_LANGUAGE="en").content.decode()
    assert '<html lang="en">' in english
    assert "Back to the shop" in english
    assert "100.00" in english and "RUB" in english


# --- the admin ------------------------------------------------------------------


def change_page(admin_client: Any, invoice: Invoice) -> str:
    url = f"/admin/django_payments_ru/invoice/{invoice.pk}/change/"
    response = admin_client.get(url)
    assert response.status_code == 200
    return response.content.decode()


@pytest.mark.parametrize("method", ["none", "GET", "POST"])
def test_the_admin_shows_the_pay_link_with_a_copy_button(
    admin_client: Any, start: StartSpy, method: str
) -> None:
    invoice = make_invoice()
    if method == "POST":
        start.checkout = post_checkout(a="1")
    if method != "none":
        services.start_payment(invoice)
    page = change_page(admin_client, invoice)
    link = services.pay_link(invoice)
    assert f'id="payments-ru-pay-link" value="{link}" readonly' in page
    assert 'data-payments-ru-copy="payments-ru-pay-link">Copy</button>' in page
    assert "navigator.clipboard" in page
    if method == "POST":
        assert 'form="payments-ru-admin-checkout"' in page
    # Showing the page started nothing.
    assert len(start.requests) == (0 if method == "none" else 1)
