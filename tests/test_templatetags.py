"""``{% payment_button invoice %}``, ``{% payment_status %}`` and ``|money``."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import pytest
from django.db import connection
from django.template import Context, RequestContext, Template
from django.test import RequestFactory, override_settings
from django.test.utils import CaptureQueriesContext
from django.utils import translation

from django_payments_ru import services
from django_payments_ru.events import EventType
from django_payments_ru.models import Invoice
from django_payments_ru.paylinks import make_token
from django_payments_ru.providers.base import Checkout
from django_payments_ru.providers.sandbox import Provider as Sandbox
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


@pytest.fixture
def provider_calls(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Every call the page could make to the provider."""
    calls: list[str] = []

    def spy(name: str) -> Any:
        def call(*args: Any, **kwargs: Any) -> Any:
            calls.append(name)
            raise AssertionError(f"the page called the provider's {name}()")

        return call

    for name in ("start", "recover_start", "fetch_status"):
        monkeypatch.setattr(Sandbox, name, spy(name))
    return calls


def writes(queries: CaptureQueriesContext) -> list[str]:
    return [
        q["sql"]
        for q in queries.captured_queries
        if q["sql"].lstrip().split(" ", 1)[0].upper()
        in ("INSERT", "UPDATE", "DELETE", "REPLACE")
    ]


def test_rendering_never_calls_the_provider_nor_writes(
    provider_calls: list[str],
) -> None:
    invoices = [make_invoice(), make_invoice(), make_invoice()]
    request = RequestFactory().get("/checkout/")
    with CaptureQueriesContext(connection) as queries:
        for invoice in invoices:
            for _ in range(3):  # reloads of the page
                out = button(invoice, request=request)
                assert f"/payments/pay/{make_token(invoice)}/" in out
    assert provider_calls == []
    assert writes(queries) == []
    for invoice in invoices:
        invoice.refresh_from_db()
        assert invoice.status == "created"
        assert invoice.checkout == {}
        assert not invoice.operations.exists()


def test_the_button_is_a_link_to_the_pay_link(provider_calls: list[str]) -> None:
    invoice = make_invoice()
    out = button(invoice)
    assert out.startswith(
        f'<a href="http://testserver/payments/pay/{make_token(invoice)}/" '
        'class="payments-ru-button"'
    )
    assert ">Pay with Sandbox</a>" in out
    assert "<form" not in out and "<script" not in out


def test_the_link_follows_the_request_without_base_url(settings: Any) -> None:
    invoice = make_invoice()
    with override_settings(PAYMENTS_RU={**settings.PAYMENTS_RU, "BASE_URL": ""}):
        request = RequestFactory().get("/", HTTP_HOST="shop.example.test")
        assert 'href="http://shop.example.test/payments/pay/' in button(
            invoice, request=request
        )
        # No request, no BASE_URL: the path, which a page can still follow.
        assert f'href="/payments/pay/{make_token(invoice)}/"' in button(invoice)


def test_a_stored_checkout_is_not_rendered_directly() -> None:
    # The pay link decides whether a stored checkout is still good.
    invoice = make_invoice()
    Invoice.objects.filter(pk=invoice.pk).update(
        checkout=Checkout(method="GET", url="https://pay.example.test/a").to_json()
    )
    invoice.refresh_from_db()
    out = button(invoice)
    assert "pay.example.test" not in out
    assert "/payments/pay/" in out


def test_label_and_css_class_are_escaped() -> None:
    out = render(
        "{% payment_button invoice label=label css_class=cls %}",
        make_invoice(),
        label=EVIL,
        cls='btn "big"',
    )
    assert "<script>" not in out
    assert "&quot;&gt;&lt;script&gt;alert(&#x27;x&#x27;)&lt;/script&gt;" in out
    assert 'class="payments-ru-button btn &quot;big&quot;"' in out


def test_a_literal_label_and_the_old_autosubmit_option() -> None:
    out = button(make_invoice(), 'label="Buy now" css_class="btn" autosubmit=False')
    assert 'class="payments-ru-button btn"' in out
    assert ">Buy now</a>" in out


def test_a_failed_invoice_offers_the_link_again() -> None:
    invoice = make_invoice()
    services.apply_event(event(invoice, EventType.FAILED))
    invoice.refresh_from_db()
    assert "/payments/pay/" in button(invoice)


@pytest.mark.parametrize(
    ("event_type", "label", "words"),
    [
        (EventType.PAID, "Paid", "The payment has been received. Thank you!"),
        (EventType.CANCELLED, "Cancelled", "can no longer be paid"),
        (EventType.EXPIRED, "Expired", "The time to pay this invoice has run out."),
        (
            EventType.HELD,
            "On hold",
            "The amount is held; you will be charged when the order ships.",
        ),
    ],
)
def test_an_invoice_that_cannot_be_paid_shows_its_state(
    provider_calls: list[str], event_type: EventType, label: str, words: str
) -> None:
    invoice = make_invoice()
    services.apply_event(event(invoice, event_type))
    invoice.refresh_from_db()
    out = button(invoice)
    assert f'data-payments-ru-status="{invoice.status}"' in out
    assert f'<span class="payments-ru-status-label">{label}</span>' in out
    assert words in out
    assert "payments-ru-button" not in out
    assert out == render("{% payment_status invoice %}", invoice)  # one snippet
    assert provider_calls == []


def test_refunds_say_how_much(provider_calls: list[str]) -> None:
    invoice = make_invoice(amount="1234.50")
    services.apply_event(event(invoice, EventType.PAID))
    services.apply_event(event(invoice, EventType.REFUNDED, amount=Decimal("100")))
    invoice.refresh_from_db()
    assert invoice.status == "partially_refunded"
    out = render("{% payment_status invoice %}", invoice)
    assert "RUB100.00 of RUB1,234.50 has been refunded." in out
    services.apply_event(event(invoice, EventType.REFUNDED, amount=Decimal("1134.50")))
    invoice.refresh_from_db()
    assert "The payment of RUB1,234.50 has been refunded in full." in render(
        "{% payment_status invoice %}", invoice
    )


def test_a_decline_gives_the_providers_reason() -> None:
    from django_payments_ru.registry import get_provider

    invoice = make_invoice()
    services.apply_event(event(invoice, EventType.FAILED))
    invoice.refresh_from_db()
    plain = render("{% payment_status invoice %}", invoice)
    assert "The payment did not go through. You can try again." in plain
    declined = event(invoice, EventType.FAILED, reason="Insufficient funds")
    assert services.receive_webhook_events(get_provider("sandbox"), [declined])
    invoice.refresh_from_db()
    out = render("{% payment_status invoice %}", invoice)
    assert "The payment did not go through: Insufficient funds. You can try" in out


def test_no_invoice_renders_nothing() -> None:
    template = Template(
        "{% load payments_ru %}[{% payment_button order.invoice %}"
        "{% payment_status order.invoice %}]"
    )
    assert template.render(Context({"order": {"invoice": None}})) == "[]"
    assert template.render(Context({})) == "[]"


def test_the_default_label_and_the_state_are_translated() -> None:
    with translation.override("ru"):
        assert ">Оплатить: Sandbox</a>" in button(make_invoice())
        paid = make_invoice()
        services.apply_event(event(paid, EventType.PAID))
        paid.refresh_from_db()
        assert ">Оплачен</span>" in button(paid)


def test_the_money_filter() -> None:
    invoice = make_invoice(amount="1234.50")
    Invoice.objects.filter(pk=invoice.pk).update(amount=Decimal("1234.500"))
    invoice.refresh_from_db()
    source = "{{ invoice.amount|money:invoice.currency }}"
    with translation.override("ru"):
        assert render(source, invoice) == "1\xa0234,50\xa0₽"
    with translation.override("en"):
        assert render(source, invoice) == "RUB1,234.50"
