"""The merchant endpoints of the JSON API (django_payments_ru.api.merchant):
permissions, the list (filters, cursor), create, retrieve and the operations,
each through the services with the admin's checks and the one error shape.

The sandbox's calls to its emulator are replaced here to drive each outcome;
tests/test_api_merchant_sandbox.py runs the same endpoints against the emulator
over HTTP."""

from __future__ import annotations

import base64
import copy
import json
from datetime import timedelta
from decimal import Decimal
from typing import Any
from unittest import mock
from urllib.parse import parse_qs, urlsplit

import pytest
from django.conf import settings as django_settings
from django.contrib.auth.models import Permission
from django.test import Client
from django.utils import timezone

from django_payments_ru import services
from django_payments_ru.events import EventType, PaymentEvent
from django_payments_ru.exceptions import ProviderAPIError, ProviderUnavailable
from django_payments_ru.models import Invoice, Operation, Payment
from django_payments_ru.providers.base import Capability
from django_payments_ru.providers.sandbox import Provider as Sandbox
from django_payments_ru.status import InvoiceStatus
from tests.helpers import (
    event,
    make_invoice,
    payment_object,
    post_webhook,
    webhook_body,
)
from tests.test_receipt_services import LINES

pytestmark = pytest.mark.django_db

API = "/payments/api/invoices/"
ERROR_KEYS = {"code", "detail", "field", "fields"}


# --- helpers --------------------------------------------------------------------------


def user_with(*codenames: str, username: str = "") -> Any:
    """A staff user holding these permissions of the app (``view_invoice``...)."""
    from django.contrib.auth import get_user_model

    name = username or "clerk-" + "-".join(codenames or ("none",))
    user = get_user_model().objects.create_user(name, password="pw", is_staff=True)
    user.user_permissions.set(
        Permission.objects.filter(
            content_type__app_label="django_payments_ru", codename__in=codenames
        )
    )
    return user


def client_for(*codenames: str, username: str = "") -> Client:
    client = Client()
    client.force_login(user_with(*codenames, username=username))
    return client


def post(client: Client, url: str, data: Any = None, **kwargs: Any) -> Any:
    body = "" if data is None else json.dumps(data)
    return client.post(url, body, content_type="application/json", **kwargs)


def assert_error(response: Any, status: int, code: str, field: Any = ...) -> dict:
    """``response`` is the one error object with this status and code (and,
    when given, this field)."""
    assert response.status_code == status, (response.status_code, response.content)
    assert response["Content-Type"] == "application/json"
    data = response.json()
    assert set(data) == ERROR_KEYS, data
    assert data["code"] == code, data
    assert isinstance(data["detail"], str) and data["detail"]
    if field is not ...:
        assert data["field"] == field, data
    return data


def paid(amount: str = "100.00", **kwargs: Any) -> Invoice:
    invoice = make_invoice(amount, **kwargs)
    services.apply_event(event(invoice, EventType.PAID, provider_payment_id="pay_1"))
    invoice.refresh_from_db()
    return invoice


def on_hold(amount: str = "100.00") -> Invoice:
    invoice = make_invoice(amount)
    services.apply_event(event(invoice, EventType.HELD, provider_payment_id="pay_h"))
    invoice.refresh_from_db()
    assert invoice.status == InvoiceStatus.ON_HOLD
    return invoice


@pytest.fixture
def viewer() -> Client:
    return client_for("view_invoice")


@pytest.fixture
def creator() -> Client:
    return client_for("add_invoice")


@pytest.fixture
def operator() -> Client:
    return client_for("change_invoice")


@pytest.fixture
def holds():
    """The sandbox as a provider that takes holds (it declares none)."""
    with mock.patch.object(
        Sandbox, "capabilities", Sandbox.capabilities | {Capability.HOLD}
    ):
        yield


# --- permissions ----------------------------------------------------------------------

#: (method, path after the invoice's URL, body, the permission it needs)
ENDPOINTS = [
    ("get", None, None, "view_invoice"),
    ("post", None, {"provider": "sandbox", "amount": "1.00"}, "add_invoice"),
    ("get", "", None, "view_invoice"),
    ("post", "refresh/", None, "change_invoice"),
    ("post", "refund/", {}, "change_invoice"),
    ("post", "cancel/", None, "change_invoice"),
    ("post", "capture/", {}, "change_invoice"),
    ("post", "release/", None, "change_invoice"),
]


def _call(client: Client, method: str, where: str | None, body: Any) -> Any:
    invoice = make_invoice()
    url = API if where is None else f"{API}{invoice.uuid}/{where}"
    if method == "get":
        return client.get(url)
    return post(client, url, body)


@pytest.mark.parametrize(("method", "where", "body", "perm"), ENDPOINTS)
def test_anonymous_callers_are_refused_in_the_error_shape(method, where, body, perm):
    response = _call(Client(), method, where, body)
    # SessionAuthentication comes first (DRF's default): 403, not 401.
    assert_error(response, 403, "not_authenticated", None)


@pytest.mark.parametrize(("method", "where", "body", "perm"), ENDPOINTS)
def test_staff_without_the_permission_is_refused(method, where, body, perm):
    others = {"view_invoice", "add_invoice", "change_invoice"} - {perm}
    client = client_for(*sorted(others))
    response = _call(client, method, where, body)
    assert_error(response, 403, "permission_denied", None)
    assert Invoice.objects.count() == 1  # nothing created, nothing changed
    assert not Operation.objects.exists()


@pytest.mark.parametrize(("method", "where", "body", "perm"), ENDPOINTS)
def test_the_permission_lets_the_caller_in(method, where, body, perm):
    response = _call(client_for(perm), method, where, body)
    # In: the endpoint answers (a refusal of the invoice's state at most).
    assert response.status_code not in (401, 403), response.content


def test_a_superuser_holds_every_permission(admin_client):
    assert admin_client.get(API).status_code == 200
    response = post(admin_client, API, {"provider": "sandbox", "amount": "5.00"})
    assert response.status_code == 201


def test_basic_authentication_works(django_user_model):
    user_with("view_invoice", username="basic")
    token = base64.b64encode(b"basic:pw").decode()
    response = Client().get(API, HTTP_AUTHORIZATION=f"Basic {token}")
    assert response.status_code == 200
    bad = base64.b64encode(b"basic:wrong").decode()
    response = Client().get(API, HTTP_AUTHORIZATION=f"Basic {bad}")
    assert_error(response, 403, "authentication_failed")


def test_permission_classes_come_from_the_settings(settings, viewer):
    settings.PAYMENTS_RU = {
        **settings.PAYMENTS_RU,
        "API_MERCHANT_PERMISSION_CLASSES": ["rest_framework.permissions.IsAdminUser"],
    }
    # A staff user without view_invoice: IsAdminUser lets staff in.
    assert client_for().get(API).status_code == 200


# --- the list -------------------------------------------------------------------------


def _ids(response: Any) -> list[str]:
    assert response.status_code == 200, response.content
    return [item["reference"] for item in response.json()["results"]]


def test_the_list_is_newest_first_with_amounts_in_the_currencys_decimals(viewer):
    old = make_invoice("1234.5")
    new = make_invoice("10")
    data = viewer.get(API).json()
    assert set(data) == {"next", "previous", "results"}
    assert [item["reference"] for item in data["results"]] == [
        str(new.uuid),
        str(old.uuid),
    ]
    first = data["results"][1]
    assert first["amount"] == "1234.50"
    assert first["paid"] == "0.00"
    assert first["refunded"] == "0.00"
    assert first["status"] == "created"
    assert first["pay_link"].startswith("http://testserver/payments/pay/")
    # The list carries no history: the detail does.
    assert "payments" not in first and "events" not in first


def test_the_list_reads_a_constant_number_of_queries(
    viewer, django_assert_max_num_queries
):
    make_invoice()
    viewer.get(API)  # the session and the permissions, once
    with django_assert_max_num_queries(5) as few:
        viewer.get(API)
    for _ in range(6):
        paid()
    with django_assert_max_num_queries(len(few.captured_queries)):
        assert len(viewer.get(API).json()["results"]) == 7


def test_filters(viewer):
    created = make_invoice(order_id="A-1", order_key="order-1")
    done = paid(order_id="A-2")
    attention = make_invoice(order_id="A-3")
    Invoice.objects.filter(pk=attention.pk).update(needs_attention=True)
    Invoice.objects.filter(pk=created.pk).update(
        created_at=timezone.now() - timedelta(days=3)
    )

    def ids(**query: Any) -> set[str]:
        return set(_ids(viewer.get(API, query)))

    every = {str(i.uuid) for i in (created, done, attention)}
    assert ids() == every
    assert ids(status="paid") == {str(done.uuid)}
    assert ids(status=["paid", "created"]) == every
    assert ids(status="refunded") == set()
    assert ids(provider="sandbox") == every
    assert ids(provider="lifepay") == set()
    assert ids(order_id="A-2") == {str(done.uuid)}
    assert ids(order_id=" A-2") == set()  # as sent, not trimmed
    assert ids(order_key="order-1") == {str(created.uuid)}
    assert ids(needs_attention="true") == {str(attention.uuid)}
    assert ids(needs_attention="false") == {str(created.uuid), str(done.uuid)}
    yesterday = (timezone.now() - timedelta(days=1)).isoformat()
    assert ids(created_after=yesterday) == {str(done.uuid), str(attention.uuid)}
    assert ids(created_before=yesterday) == {str(created.uuid)}
    assert ids(created_after=yesterday, status="created") == {str(attention.uuid)}


@pytest.mark.parametrize(
    ("query", "field"),
    [
        ({"status": "bogus"}, "status"),
        ({"status": ""}, "status"),
        ({"needs_attention": "maybe"}, "needs_attention"),
        ({"created_after": "yesterday"}, "created_after"),
        ({"created_before": "2026-13-45T00:00:00Z"}, "created_before"),
        ({"created_after": "0001-01-01T00:00:00+01:00"}, "created_after"),
        ({"provider": "x" * 65}, "provider"),
        ({"provider": ""}, "provider"),
        ({"order_key": ""}, "order_key"),
        ({"needs_attention": ""}, "needs_attention"),
        ({"needs_attention": "null"}, "needs_attention"),
        ({"order_id": "a\x00b"}, "order_id"),
        ({"page_size": "0"}, "page_size"),
        ({"page_size": "-1"}, "page_size"),
        ({"page_size": "ten"}, "page_size"),
        ({"page_size": "\u0663"}, "page_size"),  # an Arabic-Indic three
    ],
)
def test_a_bad_filter_is_a_400(viewer, query, field):
    make_invoice()
    data = assert_error(viewer.get(API, query), 400, "invalid_input", field)
    assert list(data["fields"]) == [field]


def test_unknown_query_parameters_are_ignored(viewer):
    make_invoice()
    assert len(_ids(viewer.get(API, {"colour": "blue"}))) == 1


def test_cursor_pagination_walks_every_invoice_once(viewer):
    made = [make_invoice(f"{n}.00") for n in range(1, 8)]
    newest_first = [str(i.uuid) for i in reversed(made)]
    # Two invoices created in the same microsecond: the id breaks the tie.
    same = timezone.now() - timedelta(hours=1)
    Invoice.objects.filter(pk__in=[made[0].pk, made[1].pk]).update(created_at=same)
    newest_first = [*newest_first[:-2], str(made[1].uuid), str(made[0].uuid)]

    seen: list[str] = []
    url: str | None = f"{API}?page_size=3"
    pages = 0
    while url:
        data = viewer.get(url).json()
        assert len(data["results"]) <= 3
        seen += [item["reference"] for item in data["results"]]
        url = data["next"]
        pages += 1
    assert seen == newest_first
    assert pages == 3

    # And back: the previous link of the last page.
    data = viewer.get(f"{API}?page_size=3").json()
    second = viewer.get(data["next"]).json()
    back = viewer.get(second["previous"]).json()
    assert [item["reference"] for item in back["results"]] == newest_first[:3]


def test_page_size_is_capped_by_the_setting(viewer, settings):
    settings.PAYMENTS_RU = {**settings.PAYMENTS_RU, "API_PAGE_SIZE": 2}
    for _ in range(3):
        make_invoice()
    data = viewer.get(API, {"page_size": "100"}).json()
    assert len(data["results"]) == 2
    assert data["next"]
    assert len(viewer.get(API).json()["results"]) == 2


@pytest.mark.parametrize(
    "cursor",
    [
        "not base64!",
        "aGVsbG8",  # base64, no padding
        base64.b64encode(b"o=-1").decode(),
        base64.b64encode(b"r=x").decode(),
        base64.b64encode(b"p=abc").decode(),
        base64.b64encode(b"p=2026-01-01 00:00:00").decode(),  # no time zone
        base64.b64encode(b"p=9999-12-31 23:59:59.999999-23:59").decode(),
        base64.b64encode(b"p=0001-01-01 00:00:00+23:59").decode(),
        "\u00e9t\u00e9",
    ],
)
def test_a_tampered_cursor_is_a_404_not_a_500(viewer, cursor):
    make_invoice()
    # DRF's answer to a cursor it did not make: the page does not exist.
    assert_error(viewer.get(API, {"cursor": cursor}), 404, "invalid_cursor", "cursor")


def test_a_cursor_of_another_page_size_still_works(viewer):
    for _ in range(3):
        make_invoice()
    data = viewer.get(API, {"page_size": "1"}).json()
    query = parse_qs(urlsplit(data["next"]).query)
    rest = viewer.get(API, {"cursor": query["cursor"][0]}).json()
    assert len(rest["results"]) == 2


# --- create ---------------------------------------------------------------------------


def test_create_answers_201_with_the_invoice_and_its_pay_link(creator):
    response = post(
        creator,
        API,
        {
            "provider": "sandbox",
            "amount": "1234.50",
            "order_id": "A-1001",
            "order_key": "cart-9",
            "description": "Two mangoes",
            "customer_email": "buyer@example.com",
            "customer_phone": "+79990000000",
            "return_url": "http://testserver/orders/A-1001/",
            "metadata": {"cart": [1, 2]},
        },
    )
    assert response.status_code == 201, response.content
    data = response.json()
    invoice = Invoice.objects.get()
    assert data["reference"] == str(invoice.uuid)
    assert response["Location"] == f"http://testserver{API}{invoice.uuid}/"
    assert data["amount"] == "1234.50"
    assert data["status"] == "created"
    assert data["order_key"] == "cart-9"
    assert data["metadata"] == {"cart": [1, 2]}
    assert data["payments"] == data["operations"] == data["events"] == []
    assert data["pay_link"] == services.pay_link(invoice)
    assert invoice.amount == Decimal("1234.50")
    assert invoice.customer_phone == "+79990000000"
    # Nothing was sent to the provider.
    assert not Operation.objects.exists()


def test_create_defaults(creator):
    data = post(creator, API, {"provider": "sandbox", "amount": "7"}).json()
    assert data["currency"] == "RUB"
    assert data["amount"] == "7.00"
    assert data["order_id"] == "" and data["receipt"] is None


@pytest.mark.parametrize(
    ("body", "code", "field"),
    [
        ({"amount": "1.00"}, "invalid_input", "provider"),
        ({"provider": "sandbox"}, "invalid_input", "amount"),
        ({"provider": "nope", "amount": "1.00"}, "invalid_input", "provider"),
        ({"provider": "sandbox", "amount": 10}, "invalid_input", "amount"),
        ({"provider": "sandbox", "amount": 10.5}, "invalid_input", "amount"),
        ({"provider": "sandbox", "amount": "10.001"}, "invalid_amount", "amount"),
        ({"provider": "sandbox", "amount": "0"}, "invalid_amount", "amount"),
        ({"provider": "sandbox", "amount": "-5"}, "invalid_amount", "amount"),
        ({"provider": "sandbox", "amount": "NaN"}, "invalid_amount", "amount"),
        ({"provider": "sandbox", "amount": "Infinity"}, "invalid_amount", "amount"),
        ({"provider": "sandbox", "amount": "1e5"}, "invalid_amount", "amount"),
        ({"provider": "sandbox", "amount": "9" * 30}, "invalid_amount", "amount"),
        ({"provider": "sandbox", "amount": "1" * 41}, "invalid_input", "amount"),
        ({"provider": "sandbox", "amount": "1", "currency": "XYZ"}, None, "currency"),
        ({"provider": "sandbox", "amount": "1", "currency": "JPY"}, None, "currency"),
        (
            {"provider": "sandbox", "amount": "1", "customer_email": "nope"},
            "invalid_input",
            "customer_email",
        ),
        (
            {"provider": "sandbox", "amount": "1", "description": "a\x07b"},
            "invalid_input",
            "description",
        ),
        (
            {"provider": "sandbox", "amount": "1", "description": 123},
            "invalid_input",
            "description",
        ),
        (
            {"provider": "sandbox", "amount": "1", "order_id": "x" * 65},
            "invalid_input",
            "order_id",
        ),
        (
            {"provider": "sandbox", "amount": "1", "return_url": "https://evil.test/"},
            "invalid_input",
            "return_url",
        ),
        (
            {"provider": "sandbox", "amount": "1", "metadata": ["a"]},
            "invalid_input",
            "metadata",
        ),
        (
            {"provider": "sandbox", "amount": "1", "metadata": {"k": "\x00"}},
            "invalid_input",
            "metadata",
        ),
        (
            {"provider": "sandbox", "amount": "1", "receipt": "lines"},
            "invalid_input",
            "receipt",
        ),
    ],
)
def test_create_refuses_bad_input_and_writes_nothing(creator, body, code, field):
    data = assert_error(post(creator, API, body), 400, code or "invalid_currency")
    assert data["field"] == field, data
    if data["code"] == "invalid_input":
        assert list(data["fields"]) == [field]
    assert not Invoice.objects.exists()


def test_create_into_a_paid_order_is_a_409(creator):
    paid(order_key="cart-1")
    response = post(
        creator, API, {"provider": "sandbox", "amount": "1.00", "order_key": "cart-1"}
    )
    assert_error(response, 409, "invalid_operation")
    assert Invoice.objects.count() == 1


def test_create_with_a_receipt(creator):
    body = {
        "provider": "sandbox",
        "amount": "930.00",
        "receipt": {"lines": LINES, "delivery": "sms"},
    }
    data = post(creator, API, body).json()
    assert data["receipt"]["delivery"] == "sms"
    assert [line["amount"] for line in data["receipt"]["lines"]] == [
        "680.00",
        "150.00",
        "100.00",
    ]
    assert Invoice.objects.get().get_receipt().total == Decimal("930.00")


@pytest.mark.parametrize(
    ("receipt", "field"),
    [
        (
            {"lines": [LINES[0], {**LINES[1], "amount": "150.01"}, LINES[2]]},
            "receipt.lines[1].amount",
        ),
        (
            {"lines": [LINES[0], LINES[1], {**LINES[2], "vat": "vat99"}]},
            "receipt.lines[2].vat",
        ),
        (
            {"lines": [{**LINES[0], "quantity": 2.0}, *LINES[1:]]},
            "receipt.lines[0].quantity",
        ),
        ({"lines": LINES[:2]}, "receipt.lines"),  # 830.00, not 930.00
        ({"lines": []}, "receipt.lines"),
        ({"lines": LINES, "delivery": "pigeon"}, "receipt.delivery"),
        ({"lines": LINES, "colour": "red"}, "receipt.colour"),
    ],
)
def test_a_bad_receipt_names_its_field(creator, receipt, field):
    body = {"provider": "sandbox", "amount": "930.00", "receipt": receipt}
    data = assert_error(post(creator, API, body), 400, "invalid_input", field)
    assert data["fields"] == {field: [data["detail"]]}
    assert "Receipt" in data["detail"]
    assert not Invoice.objects.exists()


def test_a_provider_without_receipts_refuses_them(creator):
    body = {"provider": "sandbox", "amount": "930.00", "receipt": {"lines": LINES}}
    with mock.patch.object(
        Sandbox, "capabilities", Sandbox.capabilities - {Capability.RECEIPTS}
    ):
        response = post(creator, API, body)
    assert_error(response, 400, "receipts_not_supported", "receipt")
    assert not Invoice.objects.exists()


def test_create_errors_are_in_the_request_language(creator):
    response = post(
        creator,
        API,
        {"provider": "sandbox", "amount": "0"},
        HTTP_ACCEPT_LANGUAGE="ru",
    )
    data = assert_error(response, 400, "invalid_amount", "amount")
    assert "больше нуля" in data["detail"]


# --- retrieve -------------------------------------------------------------------------


def test_retrieve_shows_payments_operations_and_events_without_payloads(viewer, client):
    invoice = make_invoice("150.00")
    Invoice.objects.filter(pk=invoice.pk).update(provider_payment_id="pay_abc")
    invoice.refresh_from_db()
    body = webhook_body(payment_object(invoice), event_id="evt_detail_1")
    assert post_webhook(client, body).status_code == 200
    with mock.patch.object(Sandbox, "refund", return_value=None):
        services.refund_invoice(invoice, "50.00")

    response = viewer.get(f"{API}{invoice.uuid}/")
    assert response.status_code == 200
    data = response.json()
    assert data["status"] == "paid"
    assert data["paid"] == "150.00"
    assert data["refunded"] == "0.00"
    [charge] = data["payments"]
    assert charge["kind"] == "charge"
    assert charge["amount"] == "150.00"
    assert charge["provider_payment_id"] == "pay_abc"
    [refund] = data["operations"]
    assert refund["kind"] == "refund"
    assert refund["state"] == "in_flight"
    assert refund["amount"] == "50.00"
    [delivered] = data["events"]
    assert charge["event"] == delivered["id"]
    assert delivered["event_id"] == "evt_detail_1"
    assert delivered["event_type"] == "paid"
    assert delivered["status"] == "processed"
    assert set(delivered) == {
        "id",
        "provider",
        "event_id",
        "event_type",
        "status",
        "result",
        "attempts",
        "deliveries",
        "needs_attention",
        "received_at",
        "processed_at",
    }
    text = response.content.decode()
    assert "payload" not in text and "traceback" not in text
    for secret in (
        django_settings.SANDBOX_WEBHOOK_SECRET,
        django_settings.SANDBOX_API_KEY,
    ):
        assert secret not in text


def test_retrieve_reads_a_constant_number_of_queries(
    viewer, django_assert_max_num_queries
):
    invoice = paid()
    viewer.get(f"{API}{invoice.uuid}/")
    with django_assert_max_num_queries(8) as few:
        viewer.get(f"{API}{invoice.uuid}/")
    for n in range(4):
        services.apply_event(event(invoice, EventType.REFUNDED, amount=Decimal(n + 1)))
    with django_assert_max_num_queries(len(few.captured_queries)):
        data = viewer.get(f"{API}{invoice.uuid}/").json()
    assert len(data["payments"]) == 5


@pytest.mark.parametrize("ref", ["00000000-0000-0000-0000-000000000000", "nope", "1"])
def test_an_unknown_invoice_is_a_404_in_the_error_shape(viewer, operator, ref):
    assert_error(viewer.get(f"{API}{ref}/"), 404, "not_found", None)
    assert_error(post(operator, f"{API}{ref}/cancel/"), 404, "not_found")


@pytest.mark.parametrize(
    ("currency", "stored", "shown", "refunded"),
    [
        ("RUB", "1234.5", "1234.50", "0.50"),
        ("JPY", "1234", "1234", "1"),
        ("BHD", "1.234", "1.234", "0.001"),
    ],
)
def test_every_amount_has_the_currencys_decimals(
    viewer, currency, stored, shown, refunded
):
    invoice = paid()
    with mock.patch.object(Sandbox, "refund", return_value=None):
        services.refund_invoice(invoice, "1.00")
    # The sandbox takes RUB only: the rows as another provider would store them.
    Invoice.objects.filter(pk=invoice.pk).update(
        amount=stored, paid_amount=stored, refunded_amount=refunded, currency=currency
    )
    Payment.objects.filter(invoice=invoice).update(amount=stored, currency=currency)
    Operation.objects.filter(invoice=invoice).update(amount=refunded)
    data = viewer.get(f"{API}{invoice.uuid}/").json()
    assert data["currency"] == currency
    assert (data["amount"], data["paid"], data["refunded"]) == (shown, shown, refunded)
    assert data["payments"][0]["amount"] == shown
    assert data["operations"][0]["amount"] == refunded
    listed = viewer.get(API).json()["results"][0]
    assert (listed["amount"], listed["paid"], listed["refunded"]) == (
        shown,
        shown,
        refunded,
    )


# --- refresh --------------------------------------------------------------------------


def test_refresh_applies_the_providers_answer(operator):
    invoice = make_invoice()
    answer = event(invoice, EventType.PAID, provider_payment_id="pay_r")
    with mock.patch.object(Sandbox, "fetch_status", return_value=answer) as ask:
        response = post(operator, f"{API}{invoice.uuid}/refresh/")
    assert response.status_code == 200, response.content
    assert ask.call_count == 1
    data = response.json()
    assert data["status"] == "paid"
    assert data["payments"][0]["amount"] == "100.00"


def test_refresh_at_a_provider_that_cannot_be_asked_is_a_400(operator):
    invoice = make_invoice()
    with mock.patch.object(
        Sandbox, "capabilities", Sandbox.capabilities - {Capability.STATUS}
    ):
        response = post(operator, f"{API}{invoice.uuid}/refresh/")
    assert_error(response, 400, "not_supported")


@pytest.mark.parametrize(
    ("error", "status", "code"),
    [
        (ProviderUnavailable("down"), 503, "provider_unavailable"),
        # The library's code: the provider's own ("E42") is not one of ours.
        (ProviderAPIError("no", code="E42"), 502, "api_error"),
    ],
)
def test_provider_failures_are_502_or_503(operator, error, status, code):
    invoice = make_invoice()
    with mock.patch.object(Sandbox, "fetch_status", side_effect=error):
        response = post(operator, f"{API}{invoice.uuid}/refresh/")
    assert_error(response, status, code)


def test_an_invoice_of_a_provider_no_longer_configured_is_a_409(operator):
    invoice = make_invoice()
    Invoice.objects.filter(pk=invoice.pk).update(provider="gone")
    assert_error(
        post(operator, f"{API}{invoice.uuid}/refund/", {}),
        409,
        "unknown_provider",
        "provider",
    )


# --- refunds --------------------------------------------------------------------------


def _refund_answer(
    provider: Sandbox, invoice: Invoice, amount: Decimal, **kwargs: Any
) -> PaymentEvent:
    """The provider's answer to a refund: it is done."""
    return event(invoice, EventType.REFUNDED, amount=amount)


def test_refund_everything_by_default(operator):
    invoice = paid("100.00")
    with mock.patch.object(
        Sandbox, "refund", autospec=True, side_effect=_refund_answer
    ) as refund:
        response = post(operator, f"{API}{invoice.uuid}/refund/", {})
    assert response.status_code == 200, response.content
    assert refund.call_args.args[2] == Decimal("100.00")
    data = response.json()
    assert data["status"] == "refunded"
    assert data["refunded"] == "100.00"
    assert [op["state"] for op in data["operations"]] == ["confirmed"]


def test_a_partial_refund(operator):
    invoice = paid("100.00")
    with mock.patch.object(
        Sandbox, "refund", autospec=True, side_effect=_refund_answer
    ) as refund:
        response = post(operator, f"{API}{invoice.uuid}/refund/", {"amount": "30"})
    assert response.status_code == 200, response.content
    assert refund.call_args.args[2] == Decimal("30.00")
    data = response.json()
    assert data["status"] == "partially_refunded"
    assert data["refunded"] == "30.00"
    assert [(p["kind"], p["amount"]) for p in data["payments"]] == [
        ("charge", "100.00"),
        ("refund", "30.00"),
    ]


def test_a_refund_confirmed_later_answers_with_the_operation_in_flight(operator):
    invoice = paid("100.00")
    with mock.patch.object(Sandbox, "refund", return_value=None):
        response = post(operator, f"{API}{invoice.uuid}/refund/", {"amount": "40.00"})
    data = response.json()
    assert data["status"] == "paid"
    assert data["operations"][0]["state"] == "in_flight"
    assert data["operations"][0]["amount"] == "40.00"


def test_refund_when_nothing_is_paid_is_a_409(operator):
    invoice = make_invoice()
    with mock.patch.object(Sandbox, "refund") as refund:
        response = post(operator, f"{API}{invoice.uuid}/refund/", {})
    assert_error(response, 409, "invalid_operation")
    assert not refund.called
    assert not Operation.objects.exists()


def test_a_second_refund_click_while_the_first_is_in_flight_is_a_409(operator):
    invoice = paid("100.00")
    url = f"{API}{invoice.uuid}/refund/"
    with mock.patch.object(Sandbox, "refund", return_value=None) as refund:
        assert post(operator, url, {}).status_code == 200
        response = post(operator, url, {})
    assert_error(response, 409, "operation_in_flight")
    assert refund.call_count == 1
    assert Operation.objects.filter(kind="refund").count() == 1


@pytest.mark.parametrize(
    ("body", "code"),
    [
        ({"amount": "150.00"}, "invalid_amount"),  # more than was paid
        ({"amount": "0.001"}, "invalid_amount"),
        ({"amount": "abc"}, "invalid_amount"),
        ({"amount": 5}, "invalid_input"),
        ({"amount": ""}, "invalid_input"),
    ],
)
def test_a_bad_refund_amount_is_a_400_and_sends_nothing(operator, body, code):
    invoice = paid("100.00")
    with mock.patch.object(Sandbox, "refund") as refund:
        response = post(operator, f"{API}{invoice.uuid}/refund/", body)
    assert_error(response, 400, code, "amount")
    assert not refund.called
    assert not Operation.objects.exists()


def test_a_refund_at_a_provider_without_refunds_is_a_400(operator):
    invoice = paid()
    with mock.patch.object(Sandbox, "capabilities", frozenset()):
        response = post(operator, f"{API}{invoice.uuid}/refund/", {})
    assert_error(response, 400, "not_supported")


def _receipt_invoice() -> Invoice:
    return paid("930.00", receipt={"lines": copy.deepcopy(LINES), "delivery": "sms"})


def test_a_partial_refund_of_some_receipt_lines(operator):
    invoice = _receipt_invoice()
    mango = {**LINES[1], "quantity": "0.25", "amount": "75.00"}
    with mock.patch.object(Sandbox, "refund", autospec=True, return_value=None) as call:
        response = post(
            operator,
            f"{API}{invoice.uuid}/refund/",
            {"receipt": {"lines": [mango, LINES[2]]}},
        )
    assert response.status_code == 200, response.content
    assert call.call_args.args[2] == Decimal("175.00")
    sent = call.call_args.kwargs["receipt"]
    assert [(line.name, line.amount) for line in sent.lines] == [
        ("Манго", Decimal("75.00")),
        ("Доставка", Decimal("100.00")),
    ]
    [operation] = response.json()["operations"]
    assert operation["amount"] == "175.00"
    assert operation["receipt"]["delivery"] == "sms"
    assert [line["quantity"] for line in operation["receipt"]["lines"]] == [
        "0.25",
        "1",
    ]


def test_a_full_refund_of_an_invoice_with_a_receipt_carries_every_line(operator):
    invoice = _receipt_invoice()
    with mock.patch.object(Sandbox, "refund", autospec=True, return_value=None) as call:
        post(operator, f"{API}{invoice.uuid}/refund/", {})
    assert len(call.call_args.kwargs["receipt"].lines) == 3


@pytest.mark.parametrize(
    ("body", "field"),
    [
        (
            {"receipt": {"lines": [{**LINES[1], "name": "Papaya"}]}},
            "receipt.lines[0].name",
        ),
        (
            {
                "receipt": {
                    "lines": [
                        LINES[2],
                        {**LINES[1], "quantity": "1", "amount": "300.00"},
                    ]
                }
            },
            "receipt.lines[1].quantity",
        ),
        ({"receipt": {"lines": [LINES[2]]}, "amount": "99.00"}, "receipt.lines"),
        ({"amount": "100.00"}, "receipt.lines"),  # an amount alone: name the lines
        ({"receipt": [LINES[2]]}, "receipt"),
    ],
)
def test_bad_refund_lines_name_their_field(operator, body, field):
    invoice = _receipt_invoice()
    with mock.patch.object(Sandbox, "refund") as refund:
        response = post(operator, f"{API}{invoice.uuid}/refund/", body)
    assert_error(response, 400, "invalid_input", field)
    assert not refund.called


def test_lines_on_an_invoice_without_receipt_are_refused(operator):
    invoice = paid("100.00")
    body = {"receipt": {"lines": [LINES[2]]}}
    with mock.patch.object(Sandbox, "refund") as refund:
        response = post(operator, f"{API}{invoice.uuid}/refund/", body)
    assert_error(response, 400, "invalid_input", "receipt")
    assert not refund.called


# --- cancel, capture, release ---------------------------------------------------------


def test_cancel_an_unpaid_invoice(operator):
    invoice = make_invoice()
    response = post(operator, f"{API}{invoice.uuid}/cancel/")
    assert response.status_code == 200, response.content
    assert response.json()["status"] == "cancelled"
    assert [op["kind"] for op in response.json()["operations"]] == ["cancel"]


def test_cancel_asks_the_provider_when_the_payment_is_registered(operator):
    invoice = make_invoice()
    Invoice.objects.filter(pk=invoice.pk).update(
        provider_payment_id="pay_c", status=InvoiceStatus.PENDING
    )
    with mock.patch.object(Sandbox, "cancel", return_value=None) as cancel:
        response = post(operator, f"{API}{invoice.uuid}/cancel/")
    assert cancel.call_count == 1
    assert response.json()["status"] == "cancelled"


def test_cancel_a_paid_invoice_is_a_409(operator):
    invoice = paid()
    assert_error(
        post(operator, f"{API}{invoice.uuid}/cancel/"), 409, "invalid_operation"
    )


def test_capture_the_whole_hold(operator, holds):
    invoice = on_hold("100.00")
    captured = event(invoice, EventType.PAID, provider_payment_id="pay_h")
    with mock.patch.object(Sandbox, "capture", return_value=captured) as capture:
        response = post(operator, f"{API}{invoice.uuid}/capture/", {})
    assert response.status_code == 200, response.content
    assert capture.call_args.args[1] is None
    assert response.json()["status"] == "paid"


def test_capture_part_of_the_hold(operator, holds):
    invoice = on_hold("100.00")
    with mock.patch.object(Sandbox, "capture", return_value=None) as capture:
        response = post(operator, f"{API}{invoice.uuid}/capture/", {"amount": "60.00"})
    assert response.status_code == 200, response.content
    assert capture.call_args.args[1] == Decimal("60.00")
    [operation] = response.json()["operations"][-1:]
    assert (operation["kind"], operation["amount"]) == ("capture", "60.00")


def test_capture_refusals(operator, holds):
    created = make_invoice()
    assert_error(
        post(operator, f"{API}{created.uuid}/capture/", {}), 409, "invalid_operation"
    )
    held = on_hold()
    assert_error(
        post(operator, f"{API}{held.uuid}/capture/", {"amount": 60}),
        400,
        "invalid_input",
        "amount",
    )
    assert_error(
        post(operator, f"{API}{held.uuid}/capture/", {"amount": "1.001"}),
        400,
        "invalid_amount",
        "amount",
    )


def test_capture_at_a_provider_without_holds_is_a_400(operator):
    invoice = on_hold()
    assert_error(
        post(operator, f"{API}{invoice.uuid}/capture/", {}), 400, "not_supported"
    )
    assert_error(post(operator, f"{API}{invoice.uuid}/release/"), 400, "not_supported")


def test_release_the_hold(operator, holds):
    invoice = on_hold()
    with mock.patch.object(Sandbox, "release", return_value=None) as release:
        response = post(operator, f"{API}{invoice.uuid}/release/")
    assert response.status_code == 200, response.content
    assert release.call_count == 1
    assert response.json()["status"] == "cancelled"
    assert_error(
        post(operator, f"{API}{invoice.uuid}/release/"), 409, "invalid_operation"
    )


def test_a_second_operation_while_one_is_in_flight_is_a_409(operator, holds):
    invoice = on_hold()
    with mock.patch.object(Sandbox, "capture", side_effect=ProviderUnavailable("x")):
        assert_error(
            post(operator, f"{API}{invoice.uuid}/capture/", {}),
            503,
            "provider_unavailable",
        )
    # No answer: the capture may have happened, so it stays in flight.
    response = post(operator, f"{API}{invoice.uuid}/release/")
    assert_error(response, 409, "operation_in_flight")


def test_methods_not_offered_are_405_in_the_error_shape(admin_client):
    viewer = operator = admin_client
    invoice = make_invoice()
    assert_error(viewer.delete(API), 405, "method_not_allowed")
    assert_error(
        operator.get(f"{API}{invoice.uuid}/refund/"), 405, "method_not_allowed"
    )
    assert_error(
        operator.put(f"{API}{invoice.uuid}/", "{}", content_type="application/json"),
        405,
        "method_not_allowed",
    )
