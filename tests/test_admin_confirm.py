"""The merchant's admin, as a merchant runs a shop on it: a confirmation page
before refund, cancel, capture and release; a refund form that says what is
left and prefills nothing; the held amount; columns that fit; the webhook
event's own "Reprocess"; display names in messages and in the example shop."""

from __future__ import annotations

import re
from decimal import Decimal
from types import SimpleNamespace

import pytest
from django.contrib.auth.models import User
from django.test import Client
from django.urls import reverse

from django_payments_ru import services
from django_payments_ru.admin.operations import CONFIRM_FIELD
from django_payments_ru.events import EventType
from django_payments_ru.models import Invoice, Operation, WebhookEvent
from django_payments_ru.providers.lifepay.a1lite import A1LiteProvider
from django_payments_ru.providers.lifepay.ecom import EcomProvider
from django_payments_ru.registry import get_provider
from django_payments_ru.status import InvoiceStatus
from tests.helpers import event, make_invoice
from tests.test_admin import (  # fixtures and helpers, no tests
    CHANGELIST,
    EVENTS,
    FakeHolds,
    FakeSandbox,
    change_url,
    failed_event,
    held_invoice,
    holds,
    operation_url,
    paid_invoice,
    refund_url,
    sandbox,
    texts,
)

pytestmark = pytest.mark.django_db

__all__ = ["holds", "sandbox"]  # the fixtures, used by name


def form_data(html: str) -> dict[str, list[str]]:
    """The hidden fields of the page's confirmation form, as the browser sends
    them (without the CSRF token, which the test client does not check)."""
    form = re.search(r'<form method="post".*?</form>', html, re.S)
    assert form is not None, "no form on the page"
    data: dict[str, list[str]] = {}
    for name, value in re.findall(
        r'<input type="hidden" name="([^"]+)" value="([^"]*)">', form.group(0)
    ):
        if name != "csrfmiddlewaretoken":
            data.setdefault(name, []).append(value)
    return data


# --- the confirmation page: one invoice ------------------------------------------


def test_cancel_is_a_link_to_a_page_that_states_the_amount(
    admin_client: Client, sandbox: FakeSandbox
) -> None:
    invoice = make_invoice("1234.50", order_id="C-1")
    page = admin_client.get(change_url(invoice)).content.decode()
    # A link, not a form that would cancel at once.
    assert f'<a href="{operation_url(invoice, "cancel")}">Cancel</a>' in page

    response = admin_client.get(operation_url(invoice, "cancel"))
    assert response.status_code == 200
    html = response.content.decode()
    assert "The invoice for RUB1,234.50 will be cancelled" in html
    assert "the customer can no longer pay it" in html
    assert "csrfmiddlewaretoken" in html
    assert form_data(html) == {CONFIRM_FIELD: ["yes"]}
    invoice.refresh_from_db()
    assert invoice.status == InvoiceStatus.CREATED

    response = admin_client.post(operation_url(invoice, "cancel"), form_data(html))
    assert response.status_code == 302
    invoice.refresh_from_db()
    assert invoice.status == InvoiceStatus.CANCELLED


def test_a_post_without_the_confirmation_only_shows_the_page(
    admin_client: Client, sandbox: FakeSandbox
) -> None:
    invoice = make_invoice("10.00")
    response = admin_client.post(operation_url(invoice, "cancel"))
    assert response.status_code == 200
    assert "will be cancelled" in response.content.decode()
    invoice.refresh_from_db()
    assert invoice.status == InvoiceStatus.CREATED
    assert sandbox.calls == []


def test_the_confirming_post_needs_the_csrf_token(sandbox: FakeSandbox) -> None:
    User.objects.create_superuser("boss", "boss@example.com", "pw")
    client = Client(enforce_csrf_checks=True)
    client.login(username="boss", password="pw")
    invoice = make_invoice("10.00")
    url = operation_url(invoice, "cancel")
    assert client.post(url, {CONFIRM_FIELD: "yes"}).status_code == 403
    html = client.get(url).content.decode()
    token = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', html)
    assert token is not None
    response = client.post(
        url, {CONFIRM_FIELD: "yes", "csrfmiddlewaretoken": token.group(1)}
    )
    assert response.status_code == 302
    invoice.refresh_from_db()
    assert invoice.status == InvoiceStatus.CANCELLED


def test_an_invoice_that_no_longer_allows_it_shows_why_and_no_form(
    admin_client: Client, sandbox: FakeSandbox
) -> None:
    invoice = paid_invoice("100.00", order_id="P-1")
    response = admin_client.get(operation_url(invoice, "cancel"))
    assert response.status_code == 200
    html = response.content.decode()
    assert "This invoice is Paid: only an invoice not yet paid can be cancelled" in html
    assert CONFIRM_FIELD not in html
    assert '<form method="post"' not in html


@pytest.mark.parametrize(
    ("operation", "sentence"),
    [
        ("capture", "The RUB100.00 held at Sandbox will be charged to the customer"),
        ("release", "The RUB100.00 held at Sandbox will be released to the customer"),
    ],
)
def test_capture_and_release_state_the_held_amount(
    admin_client: Client, holds: FakeHolds, operation: str, sentence: str
) -> None:
    invoice = held_invoice("100.00")
    page = admin_client.get(change_url(invoice)).content.decode()
    assert f'<a href="{operation_url(invoice, operation)}">' in page
    html = admin_client.get(operation_url(invoice, operation)).content.decode()
    assert sentence in html
    assert holds.calls == []
    response = admin_client.post(operation_url(invoice, operation), form_data(html))
    assert response.status_code == 302
    assert holds.calls == [operation]


def test_a_provider_without_holds_is_said_on_the_page(
    admin_client: Client, sandbox: FakeSandbox
) -> None:
    invoice = held_invoice("100.00")
    html = admin_client.get(operation_url(invoice, "capture")).content.decode()
    assert "Sandbox does not support holds." in html
    assert CONFIRM_FIELD not in html


# --- the confirmation page of a list action --------------------------------------


def test_a_list_action_confirms_first_and_leaves_the_impossible_alone(
    admin_client: Client, sandbox: FakeSandbox
) -> None:
    open_one = make_invoice("5.00", order_id="OPEN")
    paid = paid_invoice("7.00", order_id="PAID")
    response = admin_client.post(
        CHANGELIST,
        {"action": "cancel_invoices", "_selected_action": [open_one.pk, paid.pk]},
    )
    assert response.status_code == 200
    html = response.content.decode()
    assert "OPEN (RUB5.00)" in html
    assert "The invoice for RUB5.00 will be cancelled" in html
    assert "PAID (RUB7.00)" in html
    assert "This invoice is Paid" in html
    assert 'value="Cancel 1 invoice"' in html
    data = form_data(html)
    assert data == {
        "action": ["cancel_invoices"],
        "_selected_action": [str(open_one.pk)],
        CONFIRM_FIELD: ["yes"],
    }
    open_one.refresh_from_db()
    assert open_one.status == InvoiceStatus.CREATED

    response = admin_client.post(CHANGELIST, data)
    assert response.status_code == 302
    open_one.refresh_from_db()
    paid.refresh_from_db()
    assert (open_one.status, paid.status) == (
        InvoiceStatus.CANCELLED,
        InvoiceStatus.PAID,
    )
    [message] = texts(response)
    assert message.startswith("OPEN")


def test_refresh_needs_no_confirmation(
    admin_client: Client, sandbox: FakeSandbox
) -> None:
    invoice = make_invoice("5.00")
    response = admin_client.post(
        CHANGELIST,
        {"action": "refresh_from_provider", "_selected_action": [invoice.pk]},
    )
    assert response.status_code == 302
    assert sandbox.calls == ["fetch_status"]


# --- refunds ----------------------------------------------------------------------


def test_the_refund_form_says_what_is_left_and_prefills_nothing(
    admin_client: Client, sandbox: FakeSandbox
) -> None:
    invoice = paid_invoice("1234.50")
    response = admin_client.get(refund_url(invoice))
    html = response.content.decode()
    assert "up to RUB1,234.50 can still be refunded" in html
    assert response.context["form"]["amount"].value() is None
    assert re.search(r'<input type="text" name="amount"(?![^>]*value=)', html)
    assert "Leave empty to refund everything not yet refunded (RUB1,234.50)." in html


def test_a_refund_is_confirmed_with_its_amount_before_it_is_sent(
    admin_client: Client, sandbox: FakeSandbox
) -> None:
    invoice = paid_invoice("100.00")
    response = admin_client.post(refund_url(invoice), {"amount": "30"})
    assert response.status_code == 200
    html = response.content.decode()
    assert (
        "RUB30.00 will be returned to the customer through Sandbox; RUB70.00 "
        "can still be refunded afterwards." in html
    )
    assert 'value="Refund RUB30.00"' in html
    assert sandbox.calls == []

    response = admin_client.post(refund_url(invoice), form_data(html))
    assert response.status_code == 302
    assert sandbox.calls == ["refund 30.00"]

    # Empty: everything left, stated as an amount, and that amount is sent.
    html = admin_client.post(refund_url(invoice), {"amount": ""}).content.decode()
    assert "RUB70.00 will be returned to the customer through Sandbox" in html
    assert "everything not yet refunded" in html
    assert form_data(html)["amount"] == ["70.00"]
    admin_client.post(refund_url(invoice), form_data(html))
    invoice.refresh_from_db()
    assert invoice.status == InvoiceStatus.REFUNDED
    assert sandbox.calls == ["refund 30.00", "refund 70.00"]


def test_a_fully_refunded_invoice_shows_a_sentence_not_a_form(
    admin_client: Client, sandbox: FakeSandbox
) -> None:
    invoice = paid_invoice("100.00")
    services.refund_invoice(invoice)
    invoice.refresh_from_db()
    assert invoice.status == InvoiceStatus.REFUNDED
    response = admin_client.get(refund_url(invoice))
    html = response.content.decode()
    assert "This invoice is refunded in full (RUB100.00)" in html
    assert 'name="amount"' not in html
    response = admin_client.post(refund_url(invoice), {CONFIRM_FIELD: "yes"})
    assert 'name="amount"' not in response.content.decode()
    assert sandbox.calls == ["refund 100.00"]


def test_a_refund_larger_than_what_is_left_is_refused_before_confirming(
    admin_client: Client, sandbox: FakeSandbox
) -> None:
    invoice = paid_invoice("100.00")
    Operation.objects.create(
        invoice=invoice,
        kind=Operation.Kind.REFUND,
        state=Operation.State.IN_FLIGHT,
        amount=Decimal("60.00"),
        key="refund-in-flight",
    )
    page = admin_client.get(refund_url(invoice)).content.decode()
    # A refund in flight counts against what is left.
    assert "up to RUB40.00 can still be refunded" in page
    response = admin_client.post(refund_url(invoice), {"amount": "50"})
    assert response.status_code == 200
    assert response.context["form"].errors["amount"] == [
        "At most RUB40.00 can be refunded."
    ]
    assert CONFIRM_FIELD not in response.content.decode()


# --- what the pages show ------------------------------------------------------------


def test_an_invoice_on_hold_shows_the_held_amount(
    admin_client: Client, sandbox: FakeSandbox
) -> None:
    invoice = held_invoice("250.00", order_id="HELD-1")
    page = admin_client.get(change_url(invoice)).content.decode()
    assert "RUB250.00 held: charged when you capture the hold" in page
    listing = admin_client.get(CHANGELIST).content.decode()
    assert "On hold: RUB250.00 held" in listing


def test_the_list_columns(admin_client: Client, sandbox: FakeSandbox) -> None:
    quiet = make_invoice("1.00", order_id="QUIET", customer_email="q@example.com")
    flagged = make_invoice("2.00", order_id="LOUD")
    Invoice.objects.filter(pk=flagged.pk).update(needs_attention=True)
    response = admin_client.get(CHANGELIST)
    html = response.content.decode()
    assert "q@example.com" in html
    # The flag is written only where it is set: no column of red crosses.
    assert "icon-no.svg" not in html
    assert html.count('class="payments-ru-attention"') == 1
    rows = {row.order_id: row for row in response.context["cl"].result_list}
    admin = response.context["cl"].model_admin
    assert admin.attention_display(rows["QUIET"]) == ""
    assert "needs attention" in admin.attention_display(rows["LOUD"])
    assert admin.provider_display(quiet) == "Sandbox"
    assert "order_id" not in admin.list_display  # the reference shows it


# --- the webhook inbox ----------------------------------------------------------


def test_long_event_ids_are_shortened_with_the_full_id_on_hover(
    admin_client: Client,
) -> None:
    invoice = make_invoice("1.00")
    long_id = "sha256:" + "0123456789abcdef" * 4
    services.record_events(
        get_provider("sandbox"), [event(invoice, EventType.PENDING, dedupe_id=long_id)]
    )
    html = admin_client.get(EVENTS).content.decode()
    assert f'<span title="{long_id}">sha256:0123456789ab…</span>' in html
    assert f">{long_id}<" not in html


def test_reprocess_is_a_button_on_a_failed_events_page(
    admin_client: Client, monkeypatch: pytest.MonkeyPatch
) -> None:
    invoice = make_invoice("100.00")
    row = failed_event(invoice, monkeypatch)
    url = reverse("admin:django_payments_ru_webhookevent_reprocess", args=[row.pk])
    page = admin_client.get(
        reverse("admin:django_payments_ru_webhookevent_change", args=[row.pk])
    ).content.decode()
    assert f'action="{url}"' in page
    assert admin_client.get(url).status_code == 405

    response = admin_client.post(url)
    assert response.status_code == 302
    assert response["Location"] == reverse(
        "admin:django_payments_ru_webhookevent_change", args=[row.pk]
    )
    row.refresh_from_db()
    invoice.refresh_from_db()
    assert row.status == WebhookEvent.Status.PROCESSED
    assert invoice.status == InvoiceStatus.PAID
    # The provider by its name, not its alias.
    assert texts(response) == ["Sandbox, Paid, evt_broken_1: Processed"]

    page = admin_client.get(
        reverse("admin:django_payments_ru_webhookevent_change", args=[row.pk])
    ).content.decode()
    assert url not in page  # processed: nothing to reprocess


def test_a_view_only_user_has_no_reprocess_button(
    client: Client, monkeypatch: pytest.MonkeyPatch
) -> None:
    from django.contrib.auth.models import Permission

    row = failed_event(make_invoice("1.00"), monkeypatch)
    user = User.objects.create_user("viewer", password="pw", is_staff=True)
    user.user_permissions.add(Permission.objects.get(codename="view_webhookevent"))
    client.login(username="viewer", password="pw")
    url = reverse("admin:django_payments_ru_webhookevent_reprocess", args=[row.pk])
    page = client.get(
        reverse("admin:django_payments_ru_webhookevent_change", args=[row.pk])
    ).content.decode()
    assert url not in page
    assert client.post(url).status_code == 403
    row.refresh_from_db()
    assert row.status == WebhookEvent.Status.FAILED


# --- the example shop's names ---------------------------------------------------


def test_the_shop_names_providers_by_display_name_and_surface(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from shop import checkout

    providers = {
        alias: SimpleNamespace(
            display_name=cls.display_name, surface_label=cls.surface_label
        )
        for alias, cls in (
            ("lifepay", A1LiteProvider),
            ("lifepay_ecom", EcomProvider),
        )
    }
    providers["sandbox"] = SimpleNamespace(display_name="Sandbox", surface_label="")
    monkeypatch.setattr(checkout, "get_provider", providers.__getitem__)
    names = checkout._names(["lifepay", "lifepay_ecom", "sandbox"])
    assert names == {
        "lifepay": "Life-Pay",
        "lifepay_ecom": "Life-Pay: ECOM",
        "sandbox": "Sandbox",
    }


@pytest.mark.django_db(transaction=True)
def test_the_shop_shows_the_payment_reference_of_the_admin(
    client: Client, monkeypatch: pytest.MonkeyPatch
) -> None:
    from shop.models import Order, Product

    product = Product.objects.create(name="Tea", price=Decimal("10.00"))
    order = Order.objects.create(
        product=product, amount=product.price, email="buyer@example.com"
    )
    html = client.get(order.get_absolute_url()).content.decode()
    invoice = Invoice.objects.filter(shop_attempt__order=order).latest("id")
    assert invoice.order_id == f"{order.number}-1"
    assert f"Order {order.number}, payment {invoice.order_id}" in html
    assert "Pay with Sandbox" in html
    assert "(sandbox)" not in html
