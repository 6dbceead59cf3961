"""The Love&Pay client: the reference's request-signature vectors (2.2), both
error shapes as typed errors (3, A-2), options, and the create body validated
before anything is sent (4.1)."""

from __future__ import annotations

import json
from decimal import Decimal
from typing import Any

import pytest
import requests

from django_payments_ru import services
from django_payments_ru.exceptions import (
    ConfigurationError,
    InvalidAmount,
    InvalidCurrency,
    InvalidInput,
    ProviderAuthError,
    ProviderRateLimited,
    ProviderUnavailable,
)
from django_payments_ru.providers.loveandpay import errors
from django_payments_ru.providers.loveandpay.auth import (
    EMPTY_BODY_SHA256,
    body_sha256,
    sign_request,
    signing_message,
)
from django_payments_ru.providers.loveandpay.provider import (
    Provider,
    dumps,
    normalise_event,
    our_ref,
)
from django_payments_ru.registry import get_provider

from .cases import ALIAS, API_KEY, SECRET_KEY, WEBHOOK_SECRET, with_loveandpay

#: loveandpay.md 2.2: the two vectors (secret sk_test_secret, ts 1706012345678).
VECTOR_SECRET = "sk_test_secret"
VECTOR_TS = "1706012345678"
VECTOR_POST_BODY = (
    b'{"amount":999.0,"currency":"RUB","description":"Order 1001","customer":{},'
    b'"expiresInHours":24}'
)


def test_the_post_vector():
    assert body_sha256(VECTOR_POST_BODY) == (
        "c82e246380930e8de7b9227bea04f4f8017b9f36df50657d4473203c27b587a5"
    )
    assert (
        sign_request(
            VECTOR_SECRET, "POST", "/api/v2/invoices", VECTOR_TS, VECTOR_POST_BODY
        )
        == "bd6c2921c5e5e4848f4a5ce204ed359e3264ba0d6591ddc011d642c2f9a9921f"
    )


def test_the_get_vector():
    assert body_sha256(b"") == EMPTY_BODY_SHA256
    path = "/api/v2/invoices/550e8400-e29b-41d4-a716-446655440000"
    assert sign_request(VECTOR_SECRET, "GET", path, VECTOR_TS, b"") == (
        "f76e216986787344421d9354c644149a758494d44d0058e3d443c7204d72ab52"
    )


def test_the_query_is_not_signed_and_the_method_is_upper_case():
    assert signing_message("get", "/api/v2/rates?base=USDT", "1", b"") == (
        f"GET/api/v2/rates1{EMPTY_BODY_SHA256}"
    )


@pytest.fixture
def provider(settings: Any) -> Provider:
    settings.PAYMENTS_RU = with_loveandpay(settings.PAYMENTS_RU)
    found = get_provider(ALIAS)
    assert isinstance(found, Provider)
    return found


def response(status: int, body: Any, **headers: str) -> requests.Response:
    answer = requests.Response()
    answer.status_code = status
    answer._content = json.dumps(body).encode() if body is not None else b""
    answer.headers.update({"Content-Type": "application/json", **headers})
    answer.url = "https://api.prod.loveandpay.io/api/v2/invoices"
    return answer


NESTED = {
    "success": False,
    "error": {"code": "", "message": "Bad thing", "requestId": "req_nested"},
}


@pytest.mark.parametrize(
    "status, code, cls, base",
    [
        (401, "MISSING_HEADERS", errors.MissingHeaders, ProviderAuthError),
        (401, "INVALID_API_KEY", errors.InvalidApiKey, ProviderAuthError),
        (401, "INVALID_SIGNATURE", errors.InvalidSignature, ProviderAuthError),
        (401, "TIMESTAMP_EXPIRED", errors.TimestampExpired, ProviderAuthError),
        (403, "PARTNER_INACTIVE", errors.PartnerInactive, ProviderAuthError),
        (403, "DOMAIN_NOT_VERIFIED", errors.DomainNotVerified, ProviderAuthError),
        (403, "SOURCE_IP_NOT_ALLOWED", errors.SourceIpNotAllowed, ProviderAuthError),
        (400, "VALIDATION_ERROR", errors.ValidationFailed, errors.LoveAndPayAPIError),
        (404, "NOT_FOUND", errors.NotFound, errors.LoveAndPayAPIError),
        (429, "RATE_LIMIT_EXCEEDED", errors.RateLimitExceeded, ProviderRateLimited),
        (429, "CYCLE_BLOCKED", errors.CycleBlocked, ProviderRateLimited),
        (500, "INTERNAL_ERROR", errors.InternalError, ProviderUnavailable),
    ],
)
def test_every_code_is_a_typed_error_in_both_shapes(provider, status, code, cls, base):
    nested = {**NESTED, "error": {**NESTED["error"], "code": code}}
    flat = {"error": "Unauthorized", "message": "Bad thing", "hint": "h", "code": code}
    for body, request_id in ((nested, "req_nested"), (flat, "req_header")):
        error = provider._typed(
            response(status, body, **{"x-request-id": "req_header"}), body
        )
        assert isinstance(error, cls) and isinstance(error, base)
        assert (error.code, error.provider_message, error.request_id) == (
            code,
            "Bad thing",
            request_id,
        )
        assert request_id in str(error)


def test_api_blocked_names_both_recovery_steps_and_is_remembered(provider):
    body = {**NESTED, "error": {**NESTED["error"], "code": "API_BLOCKED"}}
    error = provider._typed(response(403, body), body)
    assert isinstance(error, errors.ApiBlocked)
    text = str(error)
    assert "support chat on loveandpay.io" in text and "Переиндексировать" in text
    assert provider.keyblock.get() is not None
    assert provider.health() == [provider.blocked_message()]


def test_a_bare_v1_403_is_a_blocked_key(settings):
    settings.PAYMENTS_RU = with_loveandpay(settings.PAYMENTS_RU, api_version="v1")
    v1 = get_provider(ALIAS)
    body = {"error": "Forbidden", "message": "API key is blocked"}
    assert isinstance(v1._typed(response(403, body), body), errors.ApiBlocked)
    other = {"error": "Forbidden", "message": "x", "code": "DOMAIN_NOT_VERIFIED"}
    assert isinstance(v1._typed(response(403, other), other), errors.DomainNotVerified)


def test_an_unknown_code_keeps_its_class_by_status(provider):
    body = {"error": "Gone", "message": "odd", "code": "SOMETHING_NEW"}
    error = provider._typed(response(409, body), body)
    assert type(error) is errors.LoveAndPayAPIError and error.code == "SOMETHING_NEW"


def test_secrets_never_reach_an_error(provider):
    body = {
        "error": "Bad",
        "message": f"key {API_KEY} secret {SECRET_KEY}",
        "code": "X",
    }
    error = provider._typed(response(400, body), body)
    assert API_KEY not in str(error) and SECRET_KEY not in repr(error.details)


@pytest.mark.parametrize(
    "options, problem",
    [
        ({"secret_key": ""}, "secret_key"),
        ({"expires_in_hours": 73}, "expires_in_hours"),
        ({"expires_in_hours": 0}, "expires_in_hours"),
        ({"payment_method": "cash"}, "payment_method"),
        ({"api_version": "v3"}, "api_version"),
        ({"requests_per_hour": 0}, "requests_per_hour"),
    ],
)
def test_options_are_checked(options, problem):
    config = with_loveandpay({"PROVIDERS": {}}, **options)["PROVIDERS"][ALIAS]
    with pytest.raises(ConfigurationError, match=problem):
        Provider(ALIAS, config["OPTIONS"])


def test_v1_needs_no_secret_key():
    Provider(
        ALIAS,
        {"api_key": API_KEY, "webhook_secret": WEBHOOK_SECRET, "api_version": "v1"},
    )


# --- the create body -------------------------------------------------------------


@pytest.mark.django_db
class TestCreateBody:
    def invoice(self, **kwargs: Any) -> Any:
        kwargs.setdefault("amount", "1500.50")
        return services.create_invoice(provider=ALIAS, **kwargs)

    def test_optional_fields_are_left_out(self, provider):
        invoice = self.invoice(order_id="1001")
        body = provider.invoice_body(invoice)
        assert set(body) == {
            "amount",
            "currency",
            "description",
            "customer",
            "expiresInHours",
            "successUrl",
        }
        assert body["customer"] == {}
        raw = dumps(body)
        assert b"null" not in raw and b'"amount":1500.5,' in raw
        assert (
            str(invoice.uuid) in body["description"] and "1001" in body["description"]
        )

    def test_every_field_is_sent_when_set(self, settings):
        settings.PAYMENTS_RU = with_loveandpay(
            settings.PAYMENTS_RU,
            payment_method="sbp",
            kyc_required=True,
            expires_in_hours=2,
        )
        invoice = self.invoice(
            customer_email="a@example.com", customer_phone="+79991234567"
        )
        body = get_provider(ALIAS).invoice_body(invoice)
        assert body["customer"] == {"email": "a@example.com", "phone": "+79991234567"}
        assert (body["paymentMethod"], body["kycRequired"], body["expiresInHours"]) == (
            "sbp",
            True,
            2,
        )

    def test_a_long_description_keeps_the_uuid(self, provider):
        invoice = self.invoice(description="x" * 255, order_id="o-1")
        text = provider.description(invoice)
        assert len(text) == 255 and text.endswith(f"[{invoice.uuid}]")
        assert our_ref(text) == str(invoice.uuid)

    @pytest.mark.parametrize(
        "kwargs, error, field",
        [
            ({"customer_phone": "89991234567"}, InvalidInput, "customer_phone"),
            ({"customer_phone": "+19991234567"}, InvalidInput, "customer_phone"),
            ({"currency": "USD"}, InvalidCurrency, "currency"),
            ({"amount": "10.005"}, InvalidAmount, "amount"),
        ],
    )
    def test_limits_are_refused_before_anything_is_sent(
        self, provider, kwargs, error, field
    ):
        with pytest.raises(error) as caught:
            self.invoice(**kwargs)
        assert caught.value.field == field


def test_event_names_are_normalised():
    assert {
        normalise_event(n) for n in ("INVOICE_PAID", "invoice_paid", "invoice.paid")
    } == {"invoice.paid"}


def test_amounts_are_decimals():
    from django_payments_ru.providers.loveandpay.provider import (
        parse_rubles,
        rubles_number,
    )

    assert parse_rubles(1500.5) == Decimal("1500.50")
    assert rubles_number(Decimal("0.10")) == 0.1
    with pytest.raises(InvalidAmount):
        parse_rubles(1.005)
