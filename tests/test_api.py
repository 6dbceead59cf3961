"""The customer endpoints of the JSON API (docs/api.rst): an invoice's public
state and its checkout, reached with the pay link's signed token."""

from __future__ import annotations

import json
import uuid
from typing import Any
from unittest import mock

import pytest
from django.core.cache import cache
from django.test import override_settings
from rest_framework.throttling import ScopedRateThrottle

from django_payments_ru import services
from django_payments_ru.events import EventType
from django_payments_ru.exceptions import (
    InvalidInput,
    OperationInFlight,
    ProviderAPIError,
    ProviderRateLimited,
    ProviderUnavailable,
)
from django_payments_ru.models import Invoice, Operation
from django_payments_ru.paylinks import make_token
from django_payments_ru.providers.base import Capability, Checkout
from django_payments_ru.providers.lifepay.signature import sign_v2
from django_payments_ru.providers.sandbox import Provider as Sandbox
from django_payments_ru.status import InvoiceStatus
from tests.helpers import event, make_invoice
from tests.providers.lifepay.conftest import SECRET, add_lifepay

pytestmark = pytest.mark.django_db(transaction=True)

API = "/payments/api"
EMAIL = "canary.buyer@example.com"
PHONE = "+79991234567"
SECRET_META = "meta-canary-5c1d"

#: What the state answers, and nothing else.
STATE_KEYS = {
    "reference",
    "status",
    "status_display",
    "status_message",
    "payable",
    "is_paid",
    "amount",
    "amount_display",
    "currency",
    "order_id",
    "description",
    "provider_name",
    "expires_at",
    "back_url",
    "receipt_lines",
}
ERROR_KEYS = {"code", "detail", "field", "fields"}


def state_url(invoice: Invoice) -> str:
    return f"{API}/pay/{make_token(invoice)}/"


def checkout_url(invoice: Invoice) -> str:
    return f"{API}/pay/{make_token(invoice)}/checkout/"


def contact_invoice(**kwargs: Any) -> Invoice:
    return make_invoice(
        "1234.50",
        order_id="A-1",
        description="Tea",
        customer_email=EMAIL,
        customer_phone=PHONE,
        metadata={"note": SECRET_META},
        **kwargs,
    )


def assert_error(response: Any, status: int, code: str) -> dict[str, Any]:
    assert response.status_code == status, response.content
    assert response["Content-Type"] == "application/json"
    body = response.json()
    assert set(body) == ERROR_KEYS
    assert body["code"] == code
    assert isinstance(body["detail"], str) and body["detail"]
    return body


def assert_private_data_absent(response: Any) -> None:
    text = response.content.decode()
    for private in (EMAIL, PHONE, PHONE.lstrip("+"), SECRET_META, "metadata"):
        assert private not in text, private


# --- the state ----------------------------------------------------------------------


def test_the_state_is_what_a_checkout_page_needs(client):
    invoice = contact_invoice()

    response = client.get(state_url(invoice))

    assert response.status_code == 200
    assert response["Content-Type"] == "application/json"
    data = response.json()
    assert set(data) == STATE_KEYS
    assert data["reference"] == str(invoice.uuid)
    assert data["status"] == "created"
    assert data["status_display"] == "Created"
    assert data["status_message"] == "The invoice is waiting to be paid."
    assert data["payable"] is True and data["is_paid"] is False
    assert data["amount"] == "1234.50"
    assert data["amount_display"] == "RUB1,234.50"
    assert (data["currency"], data["order_id"], data["description"]) == (
        "RUB",
        "A-1",
        "Tea",
    )
    assert data["provider_name"] == "Sandbox"
    assert data["expires_at"] is None
    assert data["back_url"] == "http://testserver"
    assert data["receipt_lines"] == []
    assert_private_data_absent(response)


def test_the_state_speaks_the_requests_language(client):
    invoice = make_invoice("1234.50")

    data = client.get(state_url(invoice), HTTP_ACCEPT_LANGUAGE="ru").json()

    assert data["status_display"] == "Создан"
    assert data["amount_display"] == "1\xa0234,50\xa0₽"
    assert data["amount"] == "1234.50"  # for machines: never localised


def test_the_state_of_a_paid_invoice(client):
    invoice = make_invoice()
    services.apply_event(event(invoice, EventType.PAID))

    data = client.get(state_url(invoice)).json()

    assert data["status"] == "paid" and data["is_paid"] is True
    assert data["payable"] is False
    assert data["status_message"] == "The payment has been received. Thank you!"


def test_an_invoice_whose_order_was_paid_elsewhere_is_not_payable(client):
    first = make_invoice(order_key="order-77")
    second = make_invoice(order_key="order-77")
    # The row as a race leaves it: paid through its sibling, itself still open.
    Invoice.objects.filter(pk=first.pk).update(status=InvoiceStatus.PAID)

    data = client.get(state_url(second)).json()

    assert (data["status"], data["payable"]) == ("created", False)
    assert data["status_message"] == "This order has already been paid."
    response = client.post(checkout_url(second))
    body = assert_error(response, 409, "invalid_operation")
    assert body["detail"] == "This order has already been paid."
    assert str(first.uuid) not in response.content.decode()


def test_the_receipt_lines(client):
    lines = [
        {"name": "Маракуя", "quantity": "2", "price": "340.00", "amount": "680.00"},
        {"name": "Манго", "quantity": "0.5", "price": "300", "amount": "150"},
    ]
    for line in lines:
        line.update(vat="vat10", unit="kg" if line["name"] == "Манго" else "piece")
    with mock.patch.object(
        Sandbox, "capabilities", Sandbox.capabilities | {Capability.RECEIPTS}
    ):
        invoice = make_invoice("830.00", receipt={"lines": lines, "delivery": "email"})

    data = client.get(state_url(invoice)).json()

    assert data["receipt_lines"] == [
        {
            "name": "Маракуя",
            "quantity": "2",
            "unit": "piece",
            "price": "340.00",
            "amount": "680.00",
        },
        {
            "name": "Манго",
            "quantity": "0.5",
            "unit": "kg",
            "price": "300.00",
            "amount": "150.00",
        },
    ]


@pytest.mark.parametrize(
    ("amount", "currency", "shown", "display"),
    [
        ("15.5", "RUB", "15.50", "RUB15.50"),
        ("1234", "JPY", "1234", "¥1,234"),
        ("1.234", "BHD", "1.234", "BHD1.234"),
        ("7", "BHD", "7.000", "BHD7.000"),
    ],
)
def test_the_amount_has_the_currencys_decimals(
    client, amount, currency, shown, display
):
    invoice = make_invoice()
    # The sandbox takes RUB only: the row as another provider would store it.
    Invoice.objects.filter(pk=invoice.pk).update(amount=amount, currency=currency)

    data = client.get(state_url(invoice)).json()

    assert (data["amount"], data["currency"]) == (shown, currency)
    assert data["amount_display"] == display


# --- the token ----------------------------------------------------------------------


def test_a_bare_reference_gets_nothing(client):
    invoice = make_invoice()
    for ref in (str(invoice.uuid), invoice.uuid.hex):
        assert_error(client.get(f"{API}/pay/{ref}/"), 404, "not_found")
        assert_error(client.post(f"{API}/pay/{ref}/checkout/"), 404, "not_found")
    # The endpoint of the bare reference is gone.
    assert_error(
        client.post(f"{API}/invoices/{invoice.uuid}/checkout/"), 404, "not_found"
    )
    invoice.refresh_from_db()
    assert invoice.status == InvoiceStatus.CREATED
    assert not Operation.objects.filter(invoice=invoice).exists()


def test_a_tampered_token_is_404(client):
    invoice = make_invoice()
    token = make_token(invoice)
    ref, signature = token.split(":")
    other = make_invoice()
    flipped = signature[:-1] + ("A" if signature[-1] != "A" else "B")
    tampered = [
        f"{ref}:{flipped}",
        f"{other.uuid.hex}:{signature}",  # another invoice under this signature
        ref,
        f"{ref}:",
        token + "x",
        token.upper(),
    ]
    with override_settings(SECRET_KEY="another-shop-entirely"):
        tampered.append(make_token(invoice))  # signed with another key
    for bad in tampered:
        body = assert_error(client.get(f"{API}/pay/{bad}/"), 404, "not_found")
        assert body == {
            "code": "not_found",
            "detail": "No such invoice.",
            "field": None,
            "fields": {},
        }
        assert_error(client.post(f"{API}/pay/{bad}/checkout/"), 404, "not_found")
    assert not Operation.objects.exists()


def test_the_token_of_a_deleted_invoice_is_404(client):
    invoice = make_invoice()
    url = state_url(invoice)
    invoice.delete()
    assert_error(client.get(url), 404, "not_found")


def test_anything_else_under_the_prefix_is_a_json_404(client):
    token = make_token(make_invoice())
    for path in (
        f"{API}/pay/{token}",  # no trailing slash: no redirect either
        f"{API}/pay/{token}/extra/",
        f"{API}/pay//",
        f"{API}/pay/a%2Fb/",
        f"{API}/pay/a%0Ab/",
        f"{API}/nothing-here/",
    ):
        assert_error(client.get(path), 404, "not_found")


def test_the_pay_link_and_the_api_share_the_token(client):
    invoice = make_invoice()
    link = services.pay_link(invoice)
    token = link.rstrip("/").rsplit("/", 1)[1]
    assert client.get(f"{API}/pay/{token}/").status_code == 200


# --- the checkout -------------------------------------------------------------------


def test_a_redirect_checkout(client):
    invoice = contact_invoice()
    redirect = Checkout(
        method="GET", url="https://pay.example/1", payment_id="pay_canary_913"
    )
    with mock.patch.object(Sandbox, "start", return_value=redirect):
        response = client.post(checkout_url(invoice))

    assert response.status_code == 200, response.content
    assert response.json() == {
        "method": "GET",
        "url": "https://pay.example/1",
        "fields": {},
        "qr": None,
        "expires_at": None,
    }
    assert "pay_canary_913" not in response.content.decode()  # the provider's id
    assert_private_data_absent(response)
    # The state after it: pending, no provider id either.
    state = client.get(state_url(invoice))
    assert state.json()["status"] == "pending"
    assert "pay_canary_913" not in state.content.decode()


def test_a_second_checkout_reuses_the_first(client):
    invoice = make_invoice()
    redirect = Checkout(method="GET", url="https://pay.example/2", payment_id="p2")
    with mock.patch.object(Sandbox, "start", return_value=redirect) as start:
        first = client.post(checkout_url(invoice)).json()
        second = client.post(checkout_url(invoice)).json()
    assert first == second
    assert start.call_count == 1


def test_a_form_checkout(client):
    invoice = make_invoice()
    form = Checkout(
        method="POST",
        url="https://pay.example/form",
        fields={"cost": "100.00", "check": "a+b/c=", "empty": ""},
    )
    with mock.patch.object(Sandbox, "start", return_value=form):
        data = client.post(checkout_url(invoice)).json()

    assert data["method"] == "POST"
    assert data["url"] == "https://pay.example/form"
    assert data["fields"] == {"cost": "100.00", "check": "a+b/c=", "empty": ""}
    assert data["qr"] is None


def test_a_checkout_with_a_qr_code(client):
    invoice = make_invoice()
    qr = Checkout(
        method="GET",
        url="https://pay.example/sbp",
        payment_id="p3",
        expires_at=Checkout.from_json(
            {"method": "GET", "url": "x", "expires_at": "2031-05-01T10:00:00+00:00"}
        ).expires_at,
        qr_image="data:image/png;base64,iVBORw0KGgo=",
        qr_payload="https://qr.nspk.ru/AS100001",
    )
    with mock.patch.object(Sandbox, "start", return_value=qr):
        data = client.post(checkout_url(invoice)).json()

    assert data["qr"] == {
        "image": "data:image/png;base64,iVBORw0KGgo=",
        "payload": "https://qr.nspk.ru/AS100001",
    }
    assert data["expires_at"] == "2031-05-01T10:00:00Z"
    assert client.get(state_url(invoice)).json()["expires_at"] == (
        "2031-05-01T10:00:00Z"
    )


def test_an_unsafe_qr_code_is_not_shown(client):
    invoice = make_invoice()
    qr = Checkout(
        method="GET",
        url="https://pay.example/sbp",
        payment_id="p4",
        qr_image="javascript:alert(1)",
        qr_payload="https://qr.nspk.ru/AS100002",
    )
    with mock.patch.object(Sandbox, "start", return_value=qr):
        data = client.post(checkout_url(invoice)).json()
    assert data["qr"] is None
    assert data["url"] == "https://pay.example/sbp"


def test_an_a1lite_form_carries_only_what_life_pay_signs(client, settings):
    """Life-Pay's A1Lite form: the browser posts signed fields. The payer's
    e-mail and phone are in it because Life-Pay's form takes them and the
    signature covers them (lifepay.md section 3.2); every field the answer
    carries is needed: without any one of them Life-Pay refuses the form."""
    add_lifepay(settings)
    invoice = services.create_invoice(
        provider="lifepay",
        amount="340.00",
        order_id="lp-api-1",
        customer_email=EMAIL,
        customer_phone=PHONE,
        metadata={"note": SECRET_META},
    )

    data = client.post(checkout_url(invoice)).json()

    assert data["method"] == "POST"
    assert data["url"] == "http://testserver/emulator/lifepay/alba/input/"
    fields = data["fields"]
    assert fields["email"] == EMAIL and fields["phone_number"] == PHONE[1:]
    assert SECRET_META not in json.dumps(data)
    unsigned = {k: v for k, v in fields.items() if k != "check"}
    assert fields["check"] == sign_v2(SECRET, "POST", data["url"], unsigned)
    # The emulator takes the form as the browser posts it...
    posted = client.post("/emulator/lifepay/alba/input/", fields)
    assert posted.status_code == 302, posted.content
    # ...and refuses it without any one of its fields.
    for name in unsigned:
        short = {k: v for k, v in fields.items() if k != name}
        refused = client.post("/emulator/lifepay/alba/input/", short)
        assert refused.status_code == 200 and refused.json()["status"] == "error"
    # The state shows neither the e-mail nor the phone.
    state = client.get(state_url(invoice))
    assert state.json()["provider_name"] == "Life-Pay"
    assert_private_data_absent(state)


# --- errors -------------------------------------------------------------------------


def test_a_paid_invoice_cannot_be_checked_out(client):
    invoice = make_invoice()
    services.apply_event(event(invoice, EventType.PAID))

    response = client.post(checkout_url(invoice))

    body = assert_error(response, 409, "invalid_operation")
    assert body["detail"] == "The payment has been received. Thank you!"
    assert str(invoice.uuid) not in body["detail"]


def test_a_start_in_flight_elsewhere_is_409(client):
    invoice = make_invoice()
    busy = OperationInFlight("This invoice's payment is being started.")
    with mock.patch.object(services, "start_payment", side_effect=busy):
        body = assert_error(
            client.post(checkout_url(invoice)), 409, "operation_in_flight"
        )
    assert body["detail"] == "This invoice's payment is being started."


@pytest.mark.parametrize(
    ("error", "status", "code"),
    [
        (
            ProviderUnavailable("connection refused to 10.0.0.7"),
            503,
            "provider_unavailable",
        ),
        (
            ProviderAPIError(
                "Refused: merchant 8812 blocked",
                code="merchant_blocked_8812",
                provider_message="merchant 8812 blocked",
            ),
            502,
            "api_error",
        ),
        (RuntimeError("a provider bug at 10.0.0.7"), 502, "provider_error"),
    ],
)
def test_a_failing_provider_is_502_or_503_never_500(client, error, status, code):
    invoice = make_invoice()
    with mock.patch.object(Sandbox, "start", side_effect=error):
        response = client.post(checkout_url(invoice))

    body = assert_error(response, status, code)
    # The customer is told to try again; the provider's words stay in the log.
    assert body["detail"] == (
        "The payment cannot be started right now. Please try again in a few minutes."
    )
    for private in ("10.0.0.7", "8812", "blocked"):
        assert private not in response.content.decode()


def test_a_rate_limited_provider_says_when_to_retry(client):
    invoice = make_invoice()
    limited = ProviderRateLimited("slow down", retry_after=12.2)
    with mock.patch.object(Sandbox, "start", side_effect=limited):
        response = client.post(checkout_url(invoice))
    assert_error(response, 503, "rate_limited")
    assert response["Retry-After"] == "13"


def test_a_provider_no_longer_configured_is_503(client, settings):
    invoice = make_invoice()
    config = dict(settings.PAYMENTS_RU, PROVIDERS={})
    settings.PAYMENTS_RU = config

    assert_error(client.post(checkout_url(invoice)), 503, "provider_unavailable")
    data = client.get(state_url(invoice)).json()
    assert data["provider_name"] == "sandbox"  # the alias, for want of a name


def test_a_payment_url_that_is_not_http_is_502(client):
    invoice = make_invoice()
    bad = Checkout(method="GET", url="javascript:alert(1)", payment_id="p5")
    with mock.patch.object(Sandbox, "start", return_value=bad):
        response = client.post(checkout_url(invoice))
    assert_error(response, 502, "bad_response")
    assert "javascript" not in response.content.decode()


def test_an_invoice_the_provider_refuses_is_400_naming_the_field(client):
    invoice = make_invoice()
    refusal = InvalidInput("currency: not taken here.", field="currency")
    with mock.patch.object(Sandbox, "start", side_effect=refusal):
        body = assert_error(client.post(checkout_url(invoice)), 400, "invalid_input")
    assert body["field"] == "currency"


def test_other_methods_are_405_in_the_error_shape(client):
    invoice = make_invoice()
    response = client.get(checkout_url(invoice))
    assert_error(response, 405, "method_not_allowed")
    assert "POST" in response["Allow"]
    assert_error(client.delete(state_url(invoice)), 405, "method_not_allowed")
    invoice.refresh_from_db()
    assert invoice.status == InvoiceStatus.CREATED


# --- JSON, whatever asks ------------------------------------------------------------


BROWSER_ACCEPT = "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8"


@pytest.mark.parametrize("accept", [BROWSER_ACCEPT, "text/html", "application/xml"])
def test_a_browser_gets_json(client, accept):
    invoice = make_invoice()
    response = client.get(state_url(invoice), HTTP_ACCEPT=accept)
    assert response.status_code == 200
    assert response["Content-Type"] == "application/json"
    assert response.json()["reference"] == str(invoice.uuid)
    assert_error(
        client.get(f"{API}/pay/nothing/", HTTP_ACCEPT=accept), 404, "not_found"
    )


def test_it_works_without_rest_framework_installed(client, settings):
    installed = [app for app in settings.INSTALLED_APPS if app != "rest_framework"]
    invoice = make_invoice()
    redirect = Checkout(method="GET", url="https://pay.example/9", payment_id="p9")
    with (
        override_settings(INSTALLED_APPS=installed),
        mock.patch.object(Sandbox, "start", return_value=redirect),
    ):
        state = client.get(state_url(invoice), HTTP_ACCEPT=BROWSER_ACCEPT)
        checkout = client.post(checkout_url(invoice), HTTP_ACCEPT=BROWSER_ACCEPT)
        missing = client.get(f"{API}/pay/x/", HTTP_ACCEPT="text/html")
        wrong = client.get(checkout_url(invoice), HTTP_ACCEPT="text/html")
    assert state.status_code == 200 and state.json()["status"] == "created"
    assert checkout.status_code == 200 and checkout.json()["url"].endswith("/9")
    assert_error(missing, 404, "not_found")
    assert_error(wrong, 405, "method_not_allowed")


# --- throttling ---------------------------------------------------------------------


def test_a_configured_scoped_throttle_answers_429(client, settings, monkeypatch):
    cache.clear()
    settings.PAYMENTS_RU = dict(
        settings.PAYMENTS_RU,
        API_CUSTOMER_THROTTLE_CLASSES=["rest_framework.throttling.ScopedRateThrottle"],
    )
    # DRF reads DEFAULT_THROTTLE_RATES once, at import: what a project sets in
    # REST_FRAMEWORK at start-up.
    monkeypatch.setattr(
        ScopedRateThrottle, "THROTTLE_RATES", {"payments_ru_customer": "2/min"}
    )
    invoice = make_invoice()
    try:
        assert client.get(state_url(invoice)).status_code == 200
        assert client.get(state_url(invoice)).status_code == 200
        response = client.get(state_url(invoice))
        body = assert_error(response, 429, "throttled")
        assert 0 < int(response["Retry-After"]) <= 60
        assert "throttled" in body["detail"]
        # The scope is the audience's: the checkout shares it.
        assert_error(client.post(checkout_url(invoice)), 429, "throttled")
    finally:
        cache.clear()


def test_no_throttle_by_default(client):
    cache.clear()
    invoice = make_invoice()
    for _ in range(5):
        assert client.get(state_url(invoice)).status_code == 200


def test_unknown_tokens_are_throttled_too(client, settings, monkeypatch):
    """Guessing tokens costs the guesser the same rate."""
    cache.clear()
    settings.PAYMENTS_RU = dict(
        settings.PAYMENTS_RU,
        API_CUSTOMER_THROTTLE_CLASSES=["rest_framework.throttling.ScopedRateThrottle"],
    )
    monkeypatch.setattr(
        ScopedRateThrottle, "THROTTLE_RATES", {"payments_ru_customer": "1/min"}
    )
    try:
        assert client.get(f"{API}/pay/{uuid.uuid4().hex}:x/").status_code == 404
        assert_error(client.get(f"{API}/pay/{uuid.uuid4().hex}:y/"), 429, "throttled")
    finally:
        cache.clear()
