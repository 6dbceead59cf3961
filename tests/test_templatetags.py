"""``{% payment_button invoice %}``."""

from __future__ import annotations

import html
import logging
import re
from datetime import timedelta
from typing import Any

import pytest
from django.template import Context, RequestContext, Template
from django.test import RequestFactory
from django.utils import timezone, translation

from django_payments_ru import services
from django_payments_ru.events import EventType
from django_payments_ru.exceptions import ProviderUnavailable
from django_payments_ru.models import Invoice
from django_payments_ru.providers.base import Checkout
from django_payments_ru.providers.sandbox import Provider as Sandbox
from django_payments_ru.status import InvoiceStatus
from tests.helpers import event, make_invoice

pytestmark = pytest.mark.django_db

EVIL = "\"><script>alert('x')</script>"


def render(source: str, invoice: Invoice, request: Any = None, **extra: Any) -> str:
    template = Template("{% load payments_ru %}" + source)
    if request is not None:
        return template.render(RequestContext(request, {"invoice": invoice, **extra}))
    return template.render(Context({"invoice": invoice, **extra}))


def button(invoice: Invoice, args: str = "", **kwargs: Any) -> str:
    return render("{% payment_button invoice " + args + " %}", invoice, **kwargs)


def store(invoice: Invoice, checkout: Checkout) -> Invoice:
    Invoice.objects.filter(pk=invoice.pk).update(checkout=checkout.to_json())
    invoice.refresh_from_db()
    return invoice


class StartSpy:
    def __init__(
        self, checkout: Checkout | None = None, error: Exception | None = None
    ) -> None:
        self.checkout = checkout
        self.error = error
        self.requests: list[Any] = []

    def __call__(
        self, provider: Sandbox, invoice: Invoice, request: Any = None
    ) -> Checkout:
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
        return spy(self, invoice, request)

    monkeypatch.setattr(Sandbox, "start", start)
    return spy


# --- GET checkouts --------------------------------------------------------------


def test_a_stored_redirect_checkout_renders_a_link(start: StartSpy) -> None:
    invoice = store(
        make_invoice(), Checkout(method="GET", url="https://pay.example.test/a?b=1&c=2")
    )
    out = button(invoice)
    assert out.startswith(
        '<a href="https://pay.example.test/a?b=1&amp;c=2" '
        'class="payments-ru-button" rel="noopener"'
    )
    assert ">Pay with Sandbox</a>" in out
    assert "<form" not in out
    assert start.requests == []  # the stored checkout was used: no provider call


def test_label_and_css_class_are_escaped(start: StartSpy) -> None:
    invoice = store(make_invoice(), Checkout(method="GET", url="https://p.test/x"))
    out = render(
        "{% payment_button invoice label=label css_class=cls %}",
        invoice,
        label=EVIL,
        cls='btn "big"',
    )
    assert "<script>" not in out
    assert "&quot;&gt;&lt;script&gt;alert(&#x27;x&#x27;)&lt;/script&gt;" in out
    assert 'class="payments-ru-button btn &quot;big&quot;"' in out


def test_a_literal_label(start: StartSpy) -> None:
    invoice = store(make_invoice(), Checkout(method="GET", url="https://p.test/x"))
    out = button(invoice, 'label="Buy now" css_class="btn btn-primary"')
    assert 'class="payments-ru-button btn btn-primary"' in out
    assert ">Buy now</a>" in out


def test_without_a_stored_checkout_the_payment_is_started_with_the_request(
    start: StartSpy,
) -> None:
    invoice = make_invoice()
    request = RequestFactory().get("/checkout/")
    out = button(invoice, request=request)
    assert start.requests == [request]
    assert f'href="https://pay.example.test/{invoice.uuid.hex}"' in out
    invoice.refresh_from_db()
    assert invoice.status == InvoiceStatus.PENDING
    assert invoice.get_checkout() is not None
    # Rendering again reuses what was stored.
    button(invoice, request=request)
    assert len(start.requests) == 1


def test_without_a_request_in_the_context_it_still_starts(start: StartSpy) -> None:
    invoice = make_invoice()
    out = button(invoice)
    assert start.requests == [None]
    assert "<a href=" in out


def test_an_expired_checkout_is_replaced(start: StartSpy) -> None:
    invoice = store(
        make_invoice(),
        Checkout(
            method="GET",
            url="https://pay.example.test/old",
            expires_at=timezone.now() - timedelta(seconds=1),
        ),
    )
    out = button(invoice)
    assert "old" not in out
    assert len(start.requests) == 1


def test_a_failed_invoice_gets_a_new_attempt(start: StartSpy) -> None:
    invoice = make_invoice()
    services.start_payment(invoice)
    services.apply_event(event(invoice, EventType.FAILED))
    invoice.refresh_from_db()
    assert invoice.status == InvoiceStatus.FAILED
    button(invoice)
    assert len(start.requests) == 2


# --- POST checkouts -------------------------------------------------------------


def post_checkout(**fields: str) -> Checkout:
    return Checkout(
        method="POST", url="https://pay.example.test/form?x=1&y=2", fields=fields
    )


def test_a_post_checkout_renders_an_auto_submitting_form(start: StartSpy) -> None:
    invoice = store(
        make_invoice(),
        post_checkout(
            amount="100.00",
            name=EVIL,
            note='say "hi"',
            submit="1",
            items="3",
        ),
    )
    out = button(invoice, 'css_class="btn"')
    form = re.search(r"<form [^>]*>", out).group(0)
    assert 'method="post"' in form
    assert 'action="https://pay.example.test/form?x=1&amp;y=2"' in form
    assert 'accept-charset="UTF-8"' in form
    assert 'data-payments-ru-autosubmit="true"' in form
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
    assert (
        '<button type="submit" class="payments-ru-button btn">Pay with Sandbox' in out
    )
    # Only our own script: the field values are escaped.
    assert out.count("<script") == 1
    assert "alert" not in out.split("<script", 1)[1]
    script = re.search(r"<script>(.*?)</script>", out, re.S).group(1)
    assert f'getElementById("payments-ru-checkout-{invoice.uuid}")' in script
    # A field named "submit" shadows form.submit: the prototype's is called.
    assert "HTMLFormElement.prototype.submit.call" in script


def test_autosubmit_false_renders_the_form_without_the_script(
    start: StartSpy,
) -> None:
    invoice = store(make_invoice(), post_checkout(a="1"))
    out = button(invoice, "autosubmit=False")
    assert "<script" not in out
    assert 'data-payments-ru-autosubmit="false"' in out
    assert "<button" in out


def test_a_csp_nonce_is_used_when_the_request_has_one(start: StartSpy) -> None:
    invoice = store(make_invoice(), post_checkout(a="1"))
    request = RequestFactory().get("/")
    request.csp_nonce = "abc123"
    out = button(invoice, request=request)
    assert '<script nonce="abc123">' in out


# --- invoices that cannot be paid -----------------------------------------------


@pytest.mark.parametrize(
    ("event_type", "label"),
    [
        (EventType.PAID, "Paid"),
        (EventType.CANCELLED, "Cancelled"),
        (EventType.EXPIRED, "Expired"),
        (EventType.HELD, "On hold"),
    ],
)
def test_an_invoice_that_cannot_be_paid_shows_its_status(
    start: StartSpy, event_type: EventType, label: str
) -> None:
    invoice = make_invoice()
    services.apply_event(event(invoice, event_type))
    invoice.refresh_from_db()
    out = button(invoice).strip()
    assert out == (
        f'<span class="payments-ru-status payments-ru-status-'
        f'{invoice.status}">{label}</span>'
    )
    assert start.requests == []


def test_an_invoice_paid_while_rendering_shows_its_status(
    start: StartSpy,
) -> None:
    invoice = make_invoice()
    stale = Invoice.objects.get(pk=invoice.pk)
    services.apply_event(event(invoice, EventType.PAID))
    out = button(stale)
    assert "payments-ru-status-paid" in out


# --- failures never raise -------------------------------------------------------


def test_a_provider_failure_renders_a_message_and_is_logged(
    start: StartSpy, caplog: pytest.LogCaptureFixture
) -> None:
    start.error = ProviderUnavailable("The sandbox is down.", provider="sandbox")
    invoice = make_invoice()
    with caplog.at_level(logging.WARNING, logger="django_payments_ru"):
        out = button(invoice)
    assert 'class="payments-ru-error"' in out
    assert "cannot be started right now" in out
    assert "sandbox is down" not in out  # provider details are for the log
    assert "ProviderUnavailable" in caplog.text
    assert str(invoice.uuid) in caplog.text


def test_an_unexpected_error_renders_a_message_and_is_logged(
    start: StartSpy, caplog: pytest.LogCaptureFixture
) -> None:
    start.error = KeyError("payment_url")
    invoice = make_invoice()
    with caplog.at_level(logging.ERROR, logger="django_payments_ru"):
        out = button(invoice)
    assert "payments-ru-error" in out
    assert "KeyError" in caplog.text


def test_a_provider_that_is_no_longer_configured(start: StartSpy) -> None:
    invoice = make_invoice()
    Invoice.objects.filter(pk=invoice.pk).update(provider="gone")
    invoice.refresh_from_db()
    assert "payments-ru-error" in button(invoice)


def test_a_non_http_payment_url_is_never_rendered(start: StartSpy) -> None:
    start.checkout = Checkout(method="GET", url="javascript:alert(1)")
    out = button(make_invoice())
    assert "javascript" not in out
    assert "payments-ru-error" in out


PNG = (
    "data:image/png;base64,iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR4"
    "nGNgYGD4DwABBAEAwS2OUAAAAABJRU5ErkJggg=="
)


def test_a_qr_code_is_shown_beside_the_link(start: StartSpy) -> None:
    checkout = Checkout(
        method="GET",
        url="https://pay.example.test/x",
        qr_image=PNG,
        qr_payload="https://qr.example.test/AD100004",
    )
    assert Checkout.from_json(checkout.to_json()) == checkout
    out = button(store(make_invoice(), checkout))
    assert f'<img src="{PNG}"' in out
    assert '<a href="https://qr.example.test/AD100004"' in out
    assert out.index("</a>") < out.index("<figure")  # the link first


@pytest.mark.parametrize(
    ("image", "payload"),
    [
        ("data:image/svg+xml;base64,PHN2Zz48L3N2Zz4=", ""),  # SVG can carry script
        ("javascript:alert(1)", ""),
        ("data:text/html;base64,PGI+", ""),
        (PNG, "javascript:alert(1)"),
    ],
)
def test_an_unsafe_qr_code_is_not_shown(
    start: StartSpy, image: str, payload: str, caplog: pytest.LogCaptureFixture
) -> None:
    checkout = Checkout(
        method="GET",
        url="https://pay.example.test/x",
        qr_image=image,
        qr_payload=payload,
    )
    with caplog.at_level(logging.WARNING):
        out = button(store(make_invoice(), checkout))
    assert "<figure" not in out and "javascript" not in out and "svg" not in out
    assert '<a href="https://pay.example.test/x"' in out  # the link still works
    assert "QR code" in caplog.text


def test_no_invoice_renders_nothing(start: StartSpy) -> None:
    template = Template("{% load payments_ru %}[{% payment_button order.invoice %}]")
    assert template.render(Context({"order": {"invoice": None}})) == "[]"
    assert template.render(Context({})) == "[]"


# --- translation ----------------------------------------------------------------


def test_the_default_label_is_translated(start: StartSpy) -> None:
    invoice = store(make_invoice(), Checkout(method="GET", url="https://p.test/x"))
    with translation.override("ru"):
        assert ">Оплатить через Sandbox</a>" in button(invoice)
        paid = make_invoice()
        services.apply_event(event(paid, EventType.PAID))
        paid.refresh_from_db()
        assert ">Оплачен</span>" in button(paid)
