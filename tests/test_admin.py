"""The merchant admin: invoices through the services, the read-only inbox."""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import timedelta
from decimal import Decimal
from typing import Any

import pytest
from django import forms
from django.conf import settings
from django.contrib.admin.models import LogEntry
from django.contrib.auth.models import Permission, User
from django.contrib.messages import get_messages
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils import timezone, translation

from django_payments_ru import admin as payments_admin
from django_payments_ru import services
from django_payments_ru.admin.operations import CONFIRM_FIELD
from django_payments_ru.events import EventType, PaymentEvent
from django_payments_ru.exceptions import (
    InvalidInput,
    ProviderAPIError,
    ProviderUnavailable,
)
from django_payments_ru.formatting import format_money
from django_payments_ru.models import Invoice, Payment, WebhookEvent
from django_payments_ru.providers.base import AdminForm, Capability, Checkout
from django_payments_ru.providers.sandbox import Provider as Sandbox
from django_payments_ru.registry import get_provider
from django_payments_ru.results import log_message
from django_payments_ru.status import InvoiceStatus
from tests.helpers import event, make_invoice

pytestmark = pytest.mark.django_db

CONFIRM = CONFIRM_FIELD

CHANGELIST = reverse("admin:django_payments_ru_invoice_changelist")
ADD = reverse("admin:django_payments_ru_invoice_add")
EVENTS = reverse("admin:django_payments_ru_webhookevent_changelist")
PAY_URL = "https://pay.example.test/p/"


def change_url(invoice: Invoice) -> str:
    return reverse("admin:django_payments_ru_invoice_change", args=[invoice.pk])


def operation_url(invoice: Invoice, operation: str) -> str:
    return reverse(
        "admin:django_payments_ru_invoice_operation", args=[invoice.pk, operation]
    )


def refund_url(invoice: Invoice) -> str:
    return reverse("admin:django_payments_ru_invoice_refund", args=[invoice.pk])


def post_change(client: Client, invoice: Invoice, data: dict[str, str]) -> Any:
    """POST the change form, with the inlines' management forms the page had."""
    page = client.get(change_url(invoice))
    full = dict(data)
    for inline in page.context["inline_admin_formsets"]:
        management = inline.formset.management_form
        for name in management.fields:
            full[management.add_prefix(name)] = str(management[name].value())
    return client.post(change_url(invoice), full)


def texts(response: Any) -> list[str]:
    """The messages this response's request added (not older unread ones)."""
    storage = get_messages(response.wsgi_request)
    return [str(m) for m in storage._queued_messages]


@dataclass
class FakeSandbox:
    """What the sandbox provider's network hooks answer in these tests."""

    start_error: Exception | None = None
    checkout: Checkout | None = None
    status: PaymentEvent | None = None
    status_error: Exception | None = None
    refund_error: Exception | None = None
    calls: list[str] = field(default_factory=list)


@pytest.fixture
def sandbox(monkeypatch: pytest.MonkeyPatch) -> Iterator[FakeSandbox]:
    fake = FakeSandbox()

    def start(
        self: Sandbox, invoice: Invoice, request: Any = None, *, key: str = ""
    ) -> Checkout:
        fake.calls.append("start")
        if fake.start_error is not None:
            raise fake.start_error
        return fake.checkout or Checkout(
            method="GET",
            url=PAY_URL + invoice.uuid.hex,
            payment_id=f"pay_{invoice.uuid.hex[:12]}",
        )

    def fetch_status(self: Sandbox, invoice: Invoice) -> PaymentEvent | None:
        fake.calls.append("fetch_status")
        if fake.status_error is not None:
            raise fake.status_error
        return fake.status

    def refund(
        self: Sandbox, invoice: Invoice, amount: Decimal, *, key: str = ""
    ) -> PaymentEvent:
        fake.calls.append(f"refund {amount}")
        if fake.refund_error is not None:
            raise fake.refund_error
        return PaymentEvent(
            provider=invoice.provider,
            dedupe_id=f"refund:{len(fake.calls)}",
            type=EventType.REFUNDED,
            invoice_ref=str(invoice.uuid),
            currency=invoice.currency,
            refunded_total=invoice.refunded_amount + amount,
        )

    def cancel(self: Sandbox, invoice: Invoice, *, key: str = "") -> None:
        fake.calls.append("cancel")
        return None

    monkeypatch.setattr(Sandbox, "start", start)
    monkeypatch.setattr(Sandbox, "fetch_status", fetch_status)
    monkeypatch.setattr(Sandbox, "refund", refund)
    monkeypatch.setattr(Sandbox, "cancel", cancel)
    yield fake


def paid_invoice(amount: str = "100.00", **kwargs: Any) -> Invoice:
    invoice = make_invoice(amount, **kwargs)
    services.apply_event(event(invoice, EventType.PAID))
    invoice.refresh_from_db()
    assert invoice.status == InvoiceStatus.PAID
    return invoice


def add_data(**overrides: str) -> dict[str, str]:
    data = {
        "provider": "sandbox",
        "amount": "1500.50",
        "currency": "RUB",
        "order_id": "A-1001",
        "description": "Two books",
        "customer_email": "buyer@example.com",
        "customer_phone": "+79990000000",
    }
    data.update(overrides)
    return data


# --- the list -------------------------------------------------------------------


def test_changelist_renders_with_filters_and_columns(admin_client: Client) -> None:
    make_invoice("250.00", order_id="A-1")
    response = admin_client.get(CHANGELIST)
    assert response.status_code == 200
    content = response.content.decode()
    assert "A-1" in content
    assert format_money("250.00", "RUB") in content  # the currency's exponent
    assert "250.000" not in content
    filters = [spec.title for spec in response.context["cl"].filter_specs]
    assert [str(t) for t in filters] == [
        "status",
        "provider",
        "needs attention",
        "paid twice",
        "operation in flight",
        "created",
    ]
    # The filter choices are there: status and provider values.
    assert "?status__exact=paid" in content
    assert "?provider=sandbox" in content


@pytest.mark.parametrize(
    "term",
    ["A-2002", "buyer2@example.com", "79995550000", "pay_searchable_42", "UUID"],
)
def test_search_finds_by_order_email_phone_provider_id_and_reference(
    admin_client: Client, term: str
) -> None:
    target = make_invoice(
        "10.00",
        order_id="A-2002",
        customer_email="buyer2@example.com",
        customer_phone="+79995550000",
    )
    Invoice.objects.filter(pk=target.pk).update(provider_payment_id="pay_searchable_42")
    other = make_invoice("20.00", order_id="B-1", customer_email="x@example.com")
    if term == "UUID":
        # A whole reference: a fragment of one finds nothing (test_admin_scale).
        term = str(target.uuid)
    response = admin_client.get(CHANGELIST, {"q": term})
    assert response.status_code == 200
    found = list(response.context["cl"].result_list)
    assert target in found
    assert other not in found


def test_changelist_makes_no_query_per_row(
    admin_client: Client, django_assert_max_num_queries: Any
) -> None:
    make_invoice("1.00")
    with CaptureQueriesContext(connection) as one_row:
        assert admin_client.get(CHANGELIST).status_code == 200
    for n in range(30):
        invoice = make_invoice(f"{n + 2}.00")
        if n % 3 == 0:
            services.apply_event(event(invoice, EventType.PAID))
    with django_assert_max_num_queries(len(one_row)):
        response = admin_client.get(CHANGELIST)
    assert len(response.context["cl"].result_list) == 31


def test_filters_narrow_the_list(admin_client: Client) -> None:
    paid = paid_invoice("5.00")
    unpaid = make_invoice("6.00")
    Invoice.objects.filter(pk=unpaid.pk).update(needs_attention=True)
    response = admin_client.get(CHANGELIST, {"status__exact": "paid"})
    assert list(response.context["cl"].result_list) == [paid]
    response = admin_client.get(CHANGELIST, {"needs_attention__exact": "1"})
    assert list(response.context["cl"].result_list) == [unpaid]


# --- adding an invoice --------------------------------------------------------


def test_add_form_offers_the_configured_providers(admin_client: Client) -> None:
    response = admin_client.get(ADD)
    assert response.status_code == 200
    content = response.content.decode()
    assert '<option value="sandbox" selected>Sandbox</option>' in content
    assert 'name="amount"' in content
    assert 'name="status"' not in content


def test_two_aliases_of_one_provider_are_told_apart(
    admin_client: Client, settings: Any
) -> None:
    providers = settings.PAYMENTS_RU["PROVIDERS"]
    settings.PAYMENTS_RU = {
        **settings.PAYMENTS_RU,
        "PROVIDERS": {**providers, "sandbox_b": providers["sandbox"]},
    }
    content = admin_client.get(ADD).content.decode()
    assert ">Sandbox (sandbox)</option>" in content
    assert ">Sandbox (sandbox_b)</option>" in content


def test_add_creates_through_the_services_and_shows_the_link(
    admin_client: Client, sandbox: FakeSandbox
) -> None:
    response = admin_client.post(ADD, add_data())
    invoice = Invoice.objects.get()
    assert response.status_code == 302
    assert response["Location"] == change_url(invoice)
    assert sandbox.calls == ["start"]
    assert invoice.amount == Decimal("1500.50")
    assert invoice.currency == "RUB"
    assert invoice.order_id == "A-1001"
    assert invoice.customer_email == "buyer@example.com"
    assert invoice.status == InvoiceStatus.PENDING
    assert invoice.provider_payment_id == f"pay_{invoice.uuid.hex[:12]}"
    assert any("was created" in m for m in texts(response))
    page = admin_client.get(response["Location"]).content.decode()
    link = PAY_URL + invoice.uuid.hex
    assert f'<a href="{link}" target="_blank" rel="noopener noreferrer">' in page
    # The addition is in the admin log.
    from django.contrib.admin.models import LogEntry

    assert LogEntry.objects.get().object_id == str(invoice.pk)


def test_add_with_a_post_checkout_shows_a_button_and_a_separate_form(
    admin_client: Client, sandbox: FakeSandbox
) -> None:
    sandbox.checkout = Checkout(
        method="POST",
        url="https://pay.example.test/form",
        fields={"amount": "10.00", "note": '"><script>alert(1)</script>'},
    )
    response = admin_client.post(ADD, add_data(amount="10"), follow=True)
    page = response.content.decode()
    assert 'form="payments-ru-admin-checkout"' in page
    form = re.search(r'<form id="payments-ru-admin-checkout".*?</form>', page, re.S)
    assert form is not None
    html = form.group(0)
    assert 'action="https://pay.example.test/form"' in html
    assert 'target="_blank"' in html
    assert '<input type="hidden" name="amount" value="10.00">' in html
    assert "&quot;&gt;&lt;script&gt;alert(1)&lt;/script&gt;" in html
    assert "<script>alert(1)" not in page
    # Not nested in the admin's own form.
    main = page.index('id="invoice_form"')
    assert page.index("</form>", main) < page.index('id="payments-ru-admin-checkout"')


@pytest.mark.parametrize("amount", ["10.001", "-5", "abc", "0", "1e3", "NaN"])
def test_a_bad_amount_is_a_form_error_and_writes_nothing(
    admin_client: Client, sandbox: FakeSandbox, amount: str
) -> None:
    response = admin_client.post(ADD, add_data(amount=amount))
    assert response.status_code == 200
    assert response.context["adminform"].form.errors["amount"]
    assert Invoice.objects.count() == 0
    assert sandbox.calls == []


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("currency", "XXX"),
        ("customer_phone", "call me"),
        ("customer_email", "not-an-email"),
        ("provider", "nope"),
        ("order_id", "x" * 65),
    ],
)
def test_other_bad_input_is_an_error_on_its_field(
    admin_client: Client, sandbox: FakeSandbox, field: str, value: str
) -> None:
    response = admin_client.post(ADD, add_data(**{field: value}))
    assert response.status_code == 200
    assert response.context["adminform"].form.errors[field]
    assert Invoice.objects.count() == 0


def test_a_currency_the_provider_refuses_is_an_error_on_currency(
    admin_client: Client, sandbox: FakeSandbox
) -> None:
    response = admin_client.post(ADD, add_data(currency="JPY", amount="100"))
    assert response.status_code == 200
    assert "JPY" in response.context["adminform"].form.errors["currency"][0]
    assert Invoice.objects.count() == 0


def test_a_provider_failure_keeps_the_created_invoice_and_says_so(
    admin_client: Client, sandbox: FakeSandbox
) -> None:
    sandbox.start_error = ProviderUnavailable(
        "The sandbox did not answer.", provider="sandbox"
    )
    response = admin_client.post(ADD, add_data())
    invoice = Invoice.objects.get()
    assert response.status_code == 302
    assert response["Location"] == change_url(invoice)
    assert invoice.status == InvoiceStatus.CREATED
    assert invoice.checkout == {}
    [message] = texts(response)
    assert "did not start the payment" in message
    assert "The sandbox did not answer." in message
    assert f'<a href="{change_url(invoice)}">' in message

    page = admin_client.get(change_url(invoice)).content.decode()
    assert "Not started yet: the provider is called when the link is opened." in page
    assert "/payments/pay/" in page  # the customer can still be sent the link
    assert operation_url(invoice, "start") in page

    sandbox.start_error = None
    response = admin_client.post(operation_url(invoice, "start"))
    assert response.status_code == 302
    invoice.refresh_from_db()
    assert invoice.status == InvoiceStatus.PENDING
    assert invoice.get_checkout() is not None
    assert Invoice.objects.count() == 1


def test_an_unexpected_start_error_is_reported_not_a_500(
    admin_client: Client, sandbox: FakeSandbox
) -> None:
    sandbox.start_error = RuntimeError("boom")
    response = admin_client.post(ADD, add_data())
    assert response.status_code == 302
    [message] = texts(response)
    assert "RuntimeError" in message


# --- the change page ------------------------------------------------------------


def test_money_and_status_are_read_only(admin_client: Client) -> None:
    invoice = make_invoice("100.00", description="Original")
    page = admin_client.get(change_url(invoice))
    assert page.status_code == 200
    form = page.context["adminform"].form
    assert set(form.fields) == {"needs_attention", "attention_note"}
    response = post_change(
        admin_client,
        invoice,
        {
            "status": "paid",
            "amount": "1.00",
            "currency": "USD",
            "provider": "evil",
            "paid_amount": "100.00",
            "description": "Changed",
            "attention_note": "",
        },
    )
    assert response.status_code == 302
    invoice.refresh_from_db()
    assert invoice.status == InvoiceStatus.CREATED
    assert invoice.amount == Decimal("100.00")
    assert invoice.currency == "RUB"
    assert invoice.provider == "sandbox"
    assert invoice.paid_amount == 0
    assert invoice.description == "Original"


def test_clearing_attention_needs_a_note_and_keeps_the_history(
    admin_client: Client,
) -> None:
    invoice = make_invoice("100.00")
    Invoice.objects.filter(pk=invoice.pk).update(
        needs_attention=True, attention_reason="2026-01-01 10:00: paid after expiry"
    )
    response = post_change(admin_client, invoice, {"attention_note": ""})
    assert response.status_code == 200
    assert response.context["adminform"].form.errors["attention_note"]
    invoice.refresh_from_db()
    assert invoice.needs_attention

    response = post_change(
        admin_client, invoice, {"attention_note": "Shipped the order anyway"}
    )
    assert response.status_code == 302
    invoice.refresh_from_db()
    assert not invoice.needs_attention
    lines = invoice.attention_text.splitlines()
    assert lines[0] == "2026-01-01 10:00: paid after expiry"
    assert lines[1].endswith("admin cleared the flag: Shipped the order anyway")


def test_saving_the_page_never_reverts_a_status_a_webhook_set(
    admin_client: Client, monkeypatch: pytest.MonkeyPatch
) -> None:
    invoice = make_invoice("100.00")
    # The page's copy is loaded first; the webhook lands before the save.
    original = payments_admin.InvoiceAdmin.get_object

    def get_object(self: Any, request: Any, object_id: str, from_field: Any = None):
        obj = original(self, request, object_id, from_field)
        if request.method == "POST" and obj is not None:
            services.apply_event(event(obj, EventType.PAID))
        return obj

    monkeypatch.setattr(payments_admin.InvoiceAdmin, "get_object", get_object)
    response = post_change(
        admin_client,
        invoice,
        {
            "needs_attention": "on",
            "attention_note": "Call the customer",
        },
    )
    assert response.status_code == 302
    invoice.refresh_from_db()
    assert invoice.status == InvoiceStatus.PAID
    assert invoice.paid_amount == Decimal("100.00")
    assert invoice.needs_attention
    assert invoice.attention_text.endswith("admin: Call the customer")


def test_inlines_show_payments_and_events_read_only(admin_client: Client) -> None:
    invoice = paid_invoice("100.00")
    provider = get_provider("sandbox")
    [row] = services.record_events(
        provider, [event(invoice, EventType.PAID, dedupe_id="evt_inline_1")]
    )
    services.process_webhook_event(row.pk)
    response = admin_client.get(change_url(invoice))
    content = response.content.decode()
    formsets = response.context["inline_admin_formsets"]
    assert len(formsets) == 3  # money movements, operations, webhook events
    for formset in formsets:
        assert not formset.has_add_permission
        assert not formset.has_change_permission
        assert not formset.has_delete_permission
    assert Payment.objects.filter(invoice=invoice).count() == 1
    assert "Charge" in content
    assert (
        reverse("admin:django_payments_ru_webhookevent_change", args=[row.pk])
        in content
    )


def test_invoices_cannot_be_deleted(admin_client: Client) -> None:
    invoice = make_invoice("1.00")
    url = reverse("admin:django_payments_ru_invoice_delete", args=[invoice.pk])
    assert admin_client.get(url).status_code == 403
    assert admin_client.post(url, {"post": "yes"}).status_code == 403
    assert Invoice.objects.filter(pk=invoice.pk).exists()


def test_an_expired_checkout_is_marked_and_can_be_restarted(
    admin_client: Client, sandbox: FakeSandbox
) -> None:
    invoice = make_invoice("100.00")
    Invoice.objects.filter(pk=invoice.pk).update(
        checkout=Checkout(
            method="GET",
            url=PAY_URL + "old",
            expires_at=timezone.now() - timedelta(minutes=1),
        ).to_json()
    )
    page = admin_client.get(change_url(invoice)).content.decode()
    assert "(expired)" in page
    assert operation_url(invoice, "start") in page


def test_a_javascript_checkout_url_is_never_a_link(admin_client: Client) -> None:
    invoice = make_invoice("100.00")
    Invoice.objects.filter(pk=invoice.pk).update(
        checkout={"method": "GET", "url": "javascript:alert(1)", "fields": {}}
    )
    page = admin_client.get(change_url(invoice)).content.decode()
    assert 'href="javascript:' not in page


# --- actions --------------------------------------------------------------------


def action(client: Client, name: str, *invoices: Invoice) -> Any:
    """Run the list action, confirmed (the confirmation page's POST; the page
    itself is tested in test_admin_confirm.py). Actions that need no
    confirmation ignore the field."""
    return client.post(
        CHANGELIST,
        {
            "action": name,
            "_selected_action": [str(i.pk) for i in invoices],
            CONFIRM: "yes",
        },
    )


def confirmed_post(client: Client, url: str, **data: str) -> Any:
    """The confirming POST of an operation or refund page."""
    return client.post(url, {**data, CONFIRM: "yes"})


def test_refresh_action_applies_the_providers_answer(
    admin_client: Client, sandbox: FakeSandbox
) -> None:
    invoice = make_invoice("100.00")
    sandbox.status = event(invoice, EventType.PAID, dedupe_id="poll:1")
    response = action(admin_client, "refresh_from_provider", invoice)
    assert response.status_code == 302
    invoice.refresh_from_db()
    assert invoice.status == InvoiceStatus.PAID
    [message] = texts(response)
    assert "Created → Paid" in message


def test_messages_are_shown_as_written_not_capitalised(
    admin_client: Client, sandbox: FakeSandbox
) -> None:
    # Django's admin capitalises a message's first letter: an order id or an
    # alias at the start would read "Order-7" or "Lifepay_ecom".
    invoice = make_invoice("100.00", order_id="order-7")
    sandbox.status = event(invoice, EventType.PAID, dedupe_id="poll:7")
    response = action(admin_client, "refresh_from_provider", invoice)
    [message] = texts(response)
    assert message.startswith("order-7"), message
    page = admin_client.get(response["Location"]).content.decode()
    assert '<li class="success">order-7' in page, page[:2000]
    assert "Order-7" not in page


def test_actions_report_each_invoice_and_never_fail_with_500(
    admin_client: Client, sandbox: FakeSandbox
) -> None:
    good = make_invoice("1.00", order_id="GOOD")
    paid = paid_invoice("2.00", order_id="PAID")
    response = action(admin_client, "cancel_invoices", good, paid)
    assert response.status_code == 302
    messages = texts(response)
    assert len(messages) == 2
    assert any(m.startswith("GOOD") and "Cancelled" in m for m in messages)
    assert any(m.startswith("PAID") and "cannot be cancelled" in m for m in messages)
    good.refresh_from_db()
    paid.refresh_from_db()
    assert good.status == InvoiceStatus.CANCELLED
    assert paid.status == InvoiceStatus.PAID

    sandbox.status_error = ProviderAPIError(
        "Payment not found.", provider="sandbox", status=404, code="not_found"
    )
    response = action(admin_client, "refresh_from_provider", good, paid)
    assert response.status_code == 302
    messages = texts(response)
    assert len(messages) == 2
    assert all("Payment not found." in m and "HTTP 404" in m for m in messages)

    sandbox.status_error = RuntimeError("bug")
    response = action(admin_client, "refresh_from_provider", good)
    assert response.status_code == 302
    assert "RuntimeError" in texts(response)[0]


def test_an_invoice_of_a_removed_provider_is_reported(
    admin_client: Client, settings: Any
) -> None:
    invoice = make_invoice("1.00", order_id="ORPHAN")
    Invoice.objects.filter(pk=invoice.pk).update(provider="gone")
    response = action(admin_client, "refresh_from_provider", invoice)
    assert response.status_code == 302
    assert "No payment provider 'gone'" in texts(response)[0]
    assert admin_client.get(change_url(invoice)).status_code == 200


def test_change_page_buttons_run_operations(
    admin_client: Client, sandbox: FakeSandbox
) -> None:
    invoice = make_invoice("1.00")
    page = admin_client.get(change_url(invoice)).content.decode()
    assert operation_url(invoice, "refresh") in page
    assert operation_url(invoice, "cancel") in page
    assert refund_url(invoice) not in page  # nothing paid yet
    # Refresh moves no money: a POST runs it. Cancel first shows its page.
    assert admin_client.get(operation_url(invoice, "refresh")).status_code == 405
    assert admin_client.get(operation_url(invoice, "cancel")).status_code == 200
    assert admin_client.post(operation_url(invoice, "explode")).status_code == 404
    response = confirmed_post(admin_client, operation_url(invoice, "cancel"))
    assert response.status_code == 302
    invoice.refresh_from_db()
    assert invoice.status == InvoiceStatus.CANCELLED


# --- refunds --------------------------------------------------------------------


def test_refund_in_part_then_in_full(
    admin_client: Client, sandbox: FakeSandbox
) -> None:
    invoice = paid_invoice("100.00")
    page = admin_client.get(change_url(invoice)).content.decode()
    assert refund_url(invoice) in page
    form = admin_client.get(refund_url(invoice))
    assert form.status_code == 200
    # Not prefilled: the help text says what an empty field refunds.
    assert 'name="amount"' in form.content.decode()
    assert 'value="100.00"' not in form.content.decode()

    response = confirmed_post(admin_client, refund_url(invoice), amount="30.00")
    assert response.status_code == 302
    invoice.refresh_from_db()
    assert invoice.status == InvoiceStatus.PARTIALLY_REFUNDED
    assert invoice.refunded_amount == Decimal("30.00")
    assert f"Refunded {format_money(Decimal('30.00'), 'RUB')};" in texts(response)[0]

    # The confirmation page of an empty field posts what was left then.
    page = admin_client.post(refund_url(invoice), {"amount": ""})
    assert page.context["hidden"] == [("amount", "70.00")]
    response = confirmed_post(admin_client, refund_url(invoice), amount="70.00")
    assert response.status_code == 302
    invoice.refresh_from_db()
    assert invoice.status == InvoiceStatus.REFUNDED
    refunds = [Decimal(call.split()[1]) for call in sandbox.calls]
    assert refunds == [Decimal("30.00"), Decimal("70.00")]


@pytest.mark.parametrize("amount", ["100.01", "abc", "-1", "1.001"])
def test_a_bad_refund_amount_is_a_form_error(
    admin_client: Client, sandbox: FakeSandbox, amount: str
) -> None:
    invoice = paid_invoice("100.00")
    response = admin_client.post(refund_url(invoice), {"amount": amount})
    assert response.status_code == 200
    assert response.context["form"].errors["amount"]
    assert sandbox.calls == []


def test_a_refused_refund_is_shown_on_the_form(
    admin_client: Client, sandbox: FakeSandbox
) -> None:
    invoice = paid_invoice("100.00")
    sandbox.refund_error = ProviderAPIError(
        "Refunds are disabled.", provider="sandbox", status=403
    )
    response = confirmed_post(admin_client, refund_url(invoice), amount="10")
    assert response.status_code == 200
    assert "Refunds are disabled." in response.content.decode()
    unpaid = make_invoice("5.00")
    response = confirmed_post(admin_client, refund_url(unpaid), amount="")
    assert response.status_code == 200
    # Nothing paid: the reason instead of a form, and nothing sent.
    assert "nothing has been paid" in response.context["refusal"]
    assert 'name="amount"' not in response.content.decode()
    assert sandbox.calls == ["refund 10.00"]


# --- holds ----------------------------------------------------------------------


@dataclass
class FakeHolds:
    """The sandbox given holds: what its capture and release answer."""

    error: Exception | None = None
    calls: list[str] = field(default_factory=list)


@pytest.fixture
def holds(monkeypatch: pytest.MonkeyPatch) -> FakeHolds:
    fake = FakeHolds()

    def answer(invoice: Invoice, name: str, type_: EventType) -> PaymentEvent:
        fake.calls.append(name)
        if fake.error is not None:
            raise fake.error
        return event(invoice, type_, dedupe_id=f"{name}:{invoice.uuid}")

    def capture(
        self: Sandbox, invoice: Invoice, amount: Decimal | None = None, *, key: str = ""
    ) -> PaymentEvent:
        return answer(invoice, "capture", EventType.PAID)

    def release(self: Sandbox, invoice: Invoice, *, key: str = "") -> PaymentEvent:
        return answer(invoice, "release", EventType.CANCELLED)

    monkeypatch.setattr(
        Sandbox, "capabilities", Sandbox.capabilities | {Capability.HOLD}
    )
    monkeypatch.setattr(Sandbox, "capture", capture)
    monkeypatch.setattr(Sandbox, "release", release)
    return fake


def held_invoice(amount: str = "100.00", **kwargs: Any) -> Invoice:
    invoice = make_invoice(amount, **kwargs)
    services.apply_event(event(invoice, EventType.HELD))
    invoice.refresh_from_db()
    assert invoice.status == InvoiceStatus.ON_HOLD
    return invoice


def logged(invoice: Invoice) -> list[str]:
    return [
        log_message(entry)
        for entry in LogEntry.objects.filter(object_id=str(invoice.pk)).order_by("pk")
    ]


@pytest.mark.parametrize(
    ("operation", "status", "done"),
    [
        ("capture", InvoiceStatus.PAID, "hold captured; status On hold → Paid."),
        (
            "release",
            InvoiceStatus.CANCELLED,
            "hold released; status On hold → Cancelled.",
        ),
    ],
)
def test_capture_and_release_buttons(
    admin_client: Client, holds: FakeHolds, operation: str, status: str, done: str
) -> None:
    invoice = held_invoice("100.00", order_id="HOLD-1")
    page = admin_client.get(change_url(invoice)).content.decode()
    assert operation_url(invoice, "capture") in page
    assert operation_url(invoice, "release") in page
    # The button opens the confirmation page; nothing is sent before its POST.
    assert admin_client.get(operation_url(invoice, operation)).status_code == 200
    assert holds.calls == []

    response = confirmed_post(admin_client, operation_url(invoice, operation))

    assert response.status_code == 302
    assert response["Location"] == change_url(invoice)
    invoice.refresh_from_db()
    assert invoice.status == status
    assert holds.calls == [operation]
    assert texts(response) == [f"HOLD-1 (RUB100.00): {done}"]
    assert logged(invoice) == [done.split(";")[0]]
    page = admin_client.get(change_url(invoice)).content.decode()
    assert operation_url(invoice, "capture") not in page
    assert operation_url(invoice, "release") not in page


def test_no_hold_buttons_when_not_on_hold_or_not_supported(
    admin_client: Client, sandbox: FakeSandbox
) -> None:
    held = held_invoice("100.00", order_id="HOLD-2")
    page = admin_client.get(change_url(held)).content.decode()
    # The sandbox takes no holds.
    assert operation_url(held, "capture") not in page
    assert operation_url(held, "release") not in page
    response = confirmed_post(admin_client, operation_url(held, "capture"))
    assert response.status_code == 302
    assert texts(response) == [
        "HOLD-2 (RUB100.00): “Capture hold” failed. Sandbox does not support holds."
    ]
    held.refresh_from_db()
    assert held.status == InvoiceStatus.ON_HOLD
    assert logged(held) == []


def test_no_hold_buttons_for_an_invoice_not_on_hold(
    admin_client: Client, holds: FakeHolds
) -> None:
    invoice = make_invoice("1.00", order_id="NOHOLD")
    page = admin_client.get(change_url(invoice)).content.decode()
    assert operation_url(invoice, "capture") not in page
    assert operation_url(invoice, "release") not in page
    response = confirmed_post(admin_client, operation_url(invoice, "release"))
    assert texts(response) == [
        "NOHOLD (RUB1.00): “Release hold” failed. Only an invoice on hold can be "
        "released."
    ]
    assert holds.calls == []


def test_a_refused_capture_is_reported_and_changes_nothing(
    admin_client: Client, holds: FakeHolds
) -> None:
    invoice = held_invoice("100.00", order_id="HOLD-3")
    holds.error = ProviderAPIError(
        "The hold has expired.", provider="sandbox", status=409
    )
    response = confirmed_post(admin_client, operation_url(invoice, "capture"))
    assert response.status_code == 302
    [message] = texts(response)
    assert message.startswith(
        "HOLD-3 (RUB100.00): “Capture hold” failed. Sandbox refused the request. "
        "Its answer: “The hold has expired.” (HTTP 409)"
    )
    assert "HTTP 409" in message
    holds.error = RuntimeError("bug")
    response = confirmed_post(admin_client, operation_url(invoice, "release"))
    assert response.status_code == 302
    assert "RuntimeError" in texts(response)[0]
    invoice.refresh_from_db()
    assert invoice.status == InvoiceStatus.ON_HOLD
    assert logged(invoice) == []


def test_capture_and_release_actions_report_each_invoice(
    admin_client: Client, holds: FakeHolds
) -> None:
    first = held_invoice("1.00", order_id="H-1")
    second = held_invoice("2.00", order_id="H-2")
    unpaid = make_invoice("3.00", order_id="H-3")
    response = action(admin_client, "capture_holds", first, unpaid)
    assert response.status_code == 302
    messages = texts(response)
    assert len(messages) == 2
    assert any(m.startswith("H-1") and "On hold → Paid" in m for m in messages)
    assert any(m.startswith("H-3") and "on hold can be captured" in m for m in messages)
    response = action(admin_client, "release_holds", second)
    assert "On hold → Cancelled" in texts(response)[0]
    first.refresh_from_db()
    second.refresh_from_db()
    assert (first.status, second.status) == (
        InvoiceStatus.PAID,
        InvoiceStatus.CANCELLED,
    )
    assert holds.calls == ["capture", "release"]


# --- the providers' own forms ---------------------------------------------------


class NoteForm(forms.Form):
    note = forms.CharField(max_length=20)
    urgent = forms.BooleanField(required=False)


@dataclass
class FakeForms:
    """What the sandbox's admin form hook offers and answers in these tests."""

    error: Exception | None = None
    result: str | None = None
    handled: list[dict[str, Any]] = field(default_factory=list)
    broken: bool = False


@pytest.fixture
def provider_forms(monkeypatch: pytest.MonkeyPatch) -> FakeForms:
    fake = FakeForms()

    def handle(invoice: Invoice, data: dict[str, Any]) -> str | None:
        if fake.error is not None:
            raise fake.error
        fake.handled.append(data)
        return fake.result

    def admin_forms(self: Sandbox, invoice: Invoice) -> list[AdminForm]:
        if fake.broken:
            raise RuntimeError("broken hook")
        return [
            AdminForm(
                slug="note",
                label="Note at the provider",
                form_class=NoteForm,
                initial=lambda invoice: {"note": invoice.order_id},
                handle=handle,
                help_text="Sent to the provider.",
            )
        ]

    monkeypatch.setattr(Sandbox, "admin_forms", admin_forms)
    return fake


def form_url(invoice: Invoice, slug: str = "note") -> str:
    return reverse(
        "admin:django_payments_ru_invoice_provider_form", args=[invoice.pk, slug]
    )


def test_base_provider_offers_no_forms() -> None:
    invoice = make_invoice("1.00")
    assert get_provider("sandbox").admin_forms(invoice) == []
    with pytest.raises(ValueError, match="letters, digits"):
        AdminForm(slug="a/b", label="x", form_class=NoteForm, handle=lambda i, d: None)
    assert (
        AdminForm(
            slug="a", label="x", form_class=NoteForm, handle=lambda i, d: None
        ).initial_for(invoice)
        == {}
    )


def test_no_form_buttons_without_the_hook(admin_client: Client) -> None:
    invoice = make_invoice("1.00")
    page = admin_client.get(change_url(invoice)).content.decode()
    assert "/form/" not in page
    assert admin_client.get(form_url(invoice)).status_code == 404


def test_a_provider_form_is_shown_filled_in_and_handled(
    admin_client: Client, provider_forms: FakeForms
) -> None:
    invoice = make_invoice("1.00", order_id="F-1")
    page = admin_client.get(change_url(invoice)).content.decode()
    assert f'<a href="{form_url(invoice)}">Note at the provider</a>' in page
    assert admin_client.get(form_url(invoice, "other")).status_code == 404

    response = admin_client.get(form_url(invoice))
    assert response.status_code == 200
    content = response.content.decode()
    assert 'value="F-1"' in content
    assert "Sent to the provider." in content
    assert "csrfmiddlewaretoken" in content

    response = admin_client.post(form_url(invoice), {"note": "call me", "urgent": "on"})

    assert response.status_code == 302
    assert response["Location"] == change_url(invoice)
    assert provider_forms.handled == [{"note": "call me", "urgent": True}]
    message = "F-1 (RUB1.00), Note at the provider: done."
    assert texts(response) == [message]
    # The history names no invoice (it is the invoice's own history).
    assert logged(invoice) == ["Note at the provider: done."]

    provider_forms.result = "the provider took it."
    response = admin_client.post(form_url(invoice), {"note": "again"})
    assert texts(response) == [
        "F-1 (RUB1.00), Note at the provider: the provider took it."
    ]


def test_an_invalid_provider_form_is_not_handled(
    admin_client: Client, provider_forms: FakeForms
) -> None:
    invoice = make_invoice("1.00")
    response = admin_client.post(form_url(invoice), {"note": "x" * 21})
    assert response.status_code == 200
    assert response.context["form"].errors["note"]
    assert provider_forms.handled == []


@pytest.mark.parametrize(
    ("error", "field", "text"),
    [
        (
            InvalidInput("note: too rude.", field="note", provider="sandbox"),
            "note",
            "note: too rude.",
        ),
        (
            InvalidInput("order: closed.", field="order", provider="sandbox"),
            None,
            "order: closed.",
        ),
        (
            ProviderAPIError("Refused.", provider="sandbox", status=400),
            None,
            "Sandbox refused the request. Its answer: “Refused.” (HTTP 400)",
        ),
        (RuntimeError("bug"), None, "Unexpected error (RuntimeError)"),
    ],
)
def test_a_refused_provider_form_shows_the_error(
    admin_client: Client,
    provider_forms: FakeForms,
    error: Exception,
    field: str | None,
    text: str,
) -> None:
    invoice = make_invoice("1.00")
    provider_forms.error = error
    response = admin_client.post(form_url(invoice), {"note": "hello"})
    assert response.status_code == 200
    errors = response.context["form"].errors
    assert list(errors) == [field or "__all__"]
    assert text in errors[field or "__all__"][0]
    assert text.split(" (")[0] in response.content.decode()
    assert logged(invoice) == []


def test_a_broken_form_hook_does_not_break_the_page(
    admin_client: Client, provider_forms: FakeForms
) -> None:
    provider_forms.broken = True
    invoice = make_invoice("1.00")
    response = admin_client.get(change_url(invoice))
    assert response.status_code == 200
    assert "/form/" not in response.content.decode()
    assert admin_client.get(form_url(invoice)).status_code == 404


# --- permissions ----------------------------------------------------------------


@pytest.fixture
def viewer_client(db: Any) -> Client:
    user = User.objects.create_user("viewer", password="pw", is_staff=True)
    user.user_permissions.set(
        Permission.objects.filter(
            codename__in=["view_invoice", "view_webhookevent", "view_payment"]
        )
    )
    client = Client()
    client.force_login(user)
    return client


def test_a_view_only_user_sees_no_operations(
    viewer_client: Client, sandbox: FakeSandbox
) -> None:
    invoice = paid_invoice("100.00")
    response = viewer_client.get(change_url(invoice))
    assert response.status_code == 200
    page = response.content.decode()
    assert refund_url(invoice) not in page
    assert operation_url(invoice, "refresh") not in page
    assert viewer_client.post(operation_url(invoice, "refresh")).status_code == 403
    assert viewer_client.get(refund_url(invoice)).status_code == 403
    assert viewer_client.get(ADD).status_code == 403
    assert viewer_client.get(CHANGELIST).context["action_form"] is None
    assert sandbox.calls == []


def test_a_view_only_user_cannot_capture_release_or_use_provider_forms(
    viewer_client: Client, holds: FakeHolds, provider_forms: FakeForms
) -> None:
    invoice = held_invoice("100.00")
    page = viewer_client.get(change_url(invoice)).content.decode()
    assert operation_url(invoice, "capture") not in page
    assert form_url(invoice) not in page
    for operation in ("capture", "release"):
        assert viewer_client.post(operation_url(invoice, operation)).status_code == 403
    assert viewer_client.get(form_url(invoice)).status_code == 403
    assert viewer_client.post(form_url(invoice), {"note": "hi"}).status_code == 403
    invoice.refresh_from_db()
    assert invoice.status == InvoiceStatus.ON_HOLD
    assert holds.calls == []
    assert provider_forms.handled == []


# --- the webhook inbox ----------------------------------------------------------


def failed_event(invoice: Invoice, monkeypatch: pytest.MonkeyPatch) -> WebhookEvent:
    """An event stored by the pipeline whose processing failed."""
    provider = get_provider("sandbox")
    [row] = services.record_events(
        provider, [event(invoice, EventType.PAID, dedupe_id="evt_broken_1")]
    )

    def broken(*args: Any, **kwargs: Any) -> None:
        raise RuntimeError("database hiccup")

    with monkeypatch.context() as patch:
        patch.setattr(services, "_apply_locked", broken)
        with pytest.raises(RuntimeError):
            services.process_webhook_event(row.pk)
    row.refresh_from_db()
    assert row.status == WebhookEvent.Status.FAILED
    return row


def test_webhook_events_are_read_only(
    admin_client: Client, monkeypatch: pytest.MonkeyPatch
) -> None:
    invoice = make_invoice("100.00", order_id="WH-1")
    row = failed_event(invoice, monkeypatch)
    url = reverse("admin:django_payments_ru_webhookevent_change", args=[row.pk])

    response = admin_client.get(EVENTS)
    assert response.status_code == 200
    assert "evt_broken_1" in response.content.decode()
    assert (
        admin_client.get(
            reverse("admin:django_payments_ru_webhookevent_add")
        ).status_code
        == 403
    )
    assert (
        admin_client.get(
            reverse("admin:django_payments_ru_webhookevent_delete", args=[row.pk])
        ).status_code
        == 403
    )

    page = admin_client.get(url)
    assert page.status_code == 200
    content = page.content.decode()
    assert 'name="_save"' not in content
    assert re.search(
        r"<pre>Traceback \(most recent call last\):.*RuntimeError: "
        r"database hiccup\s*</pre>",
        content,
        re.S,
    )
    assert admin_client.post(url, {"status": "processed"}).status_code == 403
    row.refresh_from_db()
    assert row.status == WebhookEvent.Status.FAILED


@pytest.mark.parametrize("term", ["evt_broken_1", "WH-2", "UUID"])
def test_webhook_events_search(
    admin_client: Client, monkeypatch: pytest.MonkeyPatch, term: str
) -> None:
    invoice = make_invoice("100.00", order_id="WH-2")
    row = failed_event(invoice, monkeypatch)
    services.record_events(
        get_provider("sandbox"),
        [PaymentEvent(provider="sandbox", dedupe_id="evt_other", type=EventType.INFO)],
    )
    if term == "UUID":
        term = str(invoice.uuid)
    # The failed event has no invoice link until processing finds it.
    WebhookEvent.objects.filter(pk=row.pk).update(invoice=invoice)
    response = admin_client.get(EVENTS, {"q": term})
    assert [r.pk for r in response.context["cl"].result_list] == [row.pk]


def test_webhook_event_list_makes_no_query_per_row(
    admin_client: Client, django_assert_max_num_queries: Any
) -> None:
    provider = get_provider("sandbox")
    invoice = make_invoice("1.00")
    [first] = services.record_events(provider, [event(invoice, EventType.PENDING)])
    services.process_webhook_event(first.pk)
    with CaptureQueriesContext(connection) as one_row:
        admin_client.get(EVENTS)
    for _n in range(20):
        other = make_invoice("1.00")
        [row] = services.record_events(provider, [event(other, EventType.PENDING)])
        services.process_webhook_event(row.pk)
    with django_assert_max_num_queries(len(one_row)):
        response = admin_client.get(EVENTS)
    assert len(response.context["cl"].result_list) == 21


def test_reprocess_fixes_a_failed_event(
    admin_client: Client, monkeypatch: pytest.MonkeyPatch
) -> None:
    invoice = make_invoice("100.00", order_id="WH-3")
    row = failed_event(invoice, monkeypatch)
    response = admin_client.post(
        EVENTS,
        {
            "action": "reprocess",
            "_selected_action": [str(row.pk)],
        },
    )
    assert response.status_code == 302
    row.refresh_from_db()
    invoice.refresh_from_db()
    assert row.status == WebhookEvent.Status.PROCESSED
    assert row.traceback == ""
    assert row.attempts == 2
    assert invoice.status == InvoiceStatus.PAID
    assert "Processed" in texts(response)[0]

    # A processed event is not run again.
    response = admin_client.post(
        EVENTS,
        {
            "action": "reprocess",
            "_selected_action": [str(row.pk)],
        },
    )
    assert "nothing to do" in texts(response)[0]
    row.refresh_from_db()
    assert row.attempts == 2


def test_reprocess_that_fails_again_is_reported_and_kept(
    admin_client: Client, monkeypatch: pytest.MonkeyPatch
) -> None:
    invoice = make_invoice("100.00")
    row = failed_event(invoice, monkeypatch)

    def broken(*args: Any, **kwargs: Any) -> None:
        raise RuntimeError("still broken")

    monkeypatch.setattr(services, "_apply_locked", broken)
    response = admin_client.post(
        EVENTS,
        {
            "action": "reprocess",
            "_selected_action": [str(row.pk)],
        },
    )
    assert response.status_code == 302
    [message] = texts(response)
    assert "failed again" in message
    assert "still broken" in message
    row.refresh_from_db()
    assert row.status == WebhookEvent.Status.FAILED
    assert row.attempts == 2
    assert "still broken" in row.traceback


# --- secrets and translations -------------------------------------------------


def test_no_secret_appears_in_the_admin(
    admin_client: Client, monkeypatch: pytest.MonkeyPatch, sandbox: FakeSandbox
) -> None:
    invoice = paid_invoice("100.00")
    row = failed_event(make_invoice("2.00"), monkeypatch)
    pages = [
        admin_client.get(CHANGELIST),
        admin_client.get(change_url(invoice)),
        admin_client.get(refund_url(invoice)),
        admin_client.get(ADD),
        admin_client.get(EVENTS),
        admin_client.get(
            reverse("admin:django_payments_ru_webhookevent_change", args=[row.pk])
        ),
    ]
    for page in pages:
        assert page.status_code == 200
        body = page.content.decode()
        assert settings.SANDBOX_API_KEY not in body
        assert settings.SANDBOX_WEBHOOK_SECRET not in body


def test_russian_translations() -> None:
    with translation.override("ru"):
        assert str(InvoiceStatus.PAID.label) == "Оплачен"
        assert str(InvoiceStatus.PARTIALLY_REFUNDED.label) == "Частично возвращён"
        assert str(Invoice._meta.verbose_name) == "счёт"
        assert (
            str(payments_admin.InvoiceAdmin.refresh_from_provider.short_description)
            == "Обновить у провайдера"  # noqa: RUF001
        )
        assert str(payments_admin.WebhookEventAdmin.reprocess.short_description) == (
            "Обработать повторно"
        )


def test_the_admin_speaks_russian(admin_client: Client) -> None:
    make_invoice("1.00")
    # LocaleMiddleware activates the language for the thread and leaves it active:
    # the override puts the previous one back for the tests that follow.
    with translation.override("en"):
        response = admin_client.get(CHANGELIST, HTTP_ACCEPT_LANGUAGE="ru")
    content = response.content.decode()
    assert "Создан" in content
    assert "Обновить у провайдера" in content  # noqa: RUF001


# --- against the sandbox emulator -----------------------------------------------


@pytest.mark.live
@pytest.mark.django_db(transaction=True)
def test_add_and_cancel_through_the_sandbox_emulator(
    live_payments: Any, admin_client: Client
) -> None:
    response = admin_client.post(ADD, add_data(amount="990.00"))
    invoice = Invoice.objects.get()
    assert response.status_code == 302, texts(response)
    assert invoice.status == InvoiceStatus.PENDING
    checkout = invoice.get_checkout()
    assert checkout is not None
    assert checkout.url.startswith(live_payments.url + "/emulator/sandbox/")
    page = admin_client.get(change_url(invoice)).content.decode()
    assert f'<a href="{checkout.url}"' in page

    response = action(admin_client, "refresh_from_provider", invoice)
    assert "status unchanged (Pending)" in texts(response)[0]
    response = action(admin_client, "cancel_invoices", invoice)
    invoice.refresh_from_db()
    assert invoice.status == InvoiceStatus.CANCELLED, texts(response)


def test_the_invoice_page_shows_money_by_the_currency_and_no_alias(
    admin_client: Client,
) -> None:
    # The model keeps three places for every currency; the page shows the
    # currency's own (the issue: "Charge 2490.500 RUB", "2490,500").
    invoice = paid_invoice("2490.50", order_id="M-1")
    assert invoice.payments.get().amount == Decimal("2490.500")
    with translation.override("ru"):
        page = admin_client.get(change_url(invoice), HTTP_ACCEPT_LANGUAGE="ru")
        content = page.content.decode()
        assert format_money("2490.50", "RUB") in content
    assert "2490.500" not in content and "2490,500" not in content
    assert '<div class="readonly">sandbox</div>' not in content
    # "Paid twice" in words, not a red cross that reads as an error.
    assert "icon-no.svg" not in content
