"""The merchant endpoints' OpenAPI description (drf-spectacular), their answers
to hostile input (always a 4xx in the error shape, never a 500), and the
throttling hook."""

from __future__ import annotations

import json
from typing import Any

import pytest
from django.core.cache import cache
from django.test import Client
from drf_spectacular.drainage import GENERATOR_STATS
from rest_framework.throttling import ScopedRateThrottle

from django_payments_ru.api import merchant, urls
from django_payments_ru.api.schema import generate_schema, schema_warnings
from django_payments_ru.models import IdempotencyKey, Invoice, Operation
from tests.test_api_merchant import (
    API,
    ERROR_KEYS,
    LINES,
    assert_error,
    client_for,
    paid,
    post,
)

pytestmark = pytest.mark.django_db

#: operation id -> (path, method)
OPERATIONS = {
    "invoices_list": ("/invoices/", "get"),
    "invoices_create": ("/invoices/", "post"),
    "invoices_retrieve": ("/invoices/{ref}/", "get"),
    "invoices_refresh": ("/invoices/{ref}/refresh/", "post"),
    "invoices_refund": ("/invoices/{ref}/refund/", "post"),
    "invoices_cancel": ("/invoices/{ref}/cancel/", "post"),
    "invoices_capture": ("/invoices/{ref}/capture/", "post"),
    "invoices_release": ("/invoices/{ref}/release/", "post"),
}


def generate(patterns: list[Any]) -> tuple[dict[str, Any], list[str]]:
    """The schema of ``patterns`` as a client reads it (JSON) and the
    generator's warnings and errors."""
    from drf_spectacular.renderers import OpenApiJsonRenderer

    GENERATOR_STATS.reset()
    try:
        # The API's own drf-spectacular settings, the paths as they are.
        schema = generate_schema("/", patterns=patterns)
        problems = schema_warnings()
    finally:
        GENERATOR_STATS.reset()
    return json.loads(OpenApiJsonRenderer().render(schema)), problems


@pytest.fixture(scope="module")
def schema_and_warnings() -> tuple[dict[str, Any], list[str]]:
    return generate(urls.urlpatterns)


@pytest.fixture(scope="module")
def schema(schema_and_warnings) -> dict[str, Any]:
    return schema_and_warnings[0]


def test_the_merchant_endpoints_generate_no_warnings():
    _, problems = generate(merchant.urlpatterns)
    assert problems == []


def test_the_whole_api_has_no_warning_about_them(schema_and_warnings):
    _, problems = schema_and_warnings
    ours = [
        p
        for p in problems
        if "merchant" in p.lower() or any(op in p for op in OPERATIONS)
    ]
    assert ours == []


@pytest.mark.parametrize("operation_id", OPERATIONS)
def test_every_endpoint_is_described(schema, operation_id):
    path, method = OPERATIONS[operation_id]
    operation = schema["paths"][path][method]
    assert operation["operationId"] == operation_id
    assert operation["tags"] == ["merchant"]
    assert operation["description"] and operation["summary"]
    responses = operation["responses"]
    ok = {"invoices_create": "201"}.get(operation_id, "200")
    assert ok in responses
    errors = {code for code in responses if code >= "400"}
    assert {"401", "403", "429"} <= errors
    for code in errors:
        ref = responses[code]["content"]["application/json"]["schema"]["$ref"]
        assert ref == "#/components/schemas/Error"
    if "{ref}" in path:
        assert "404" in errors
        [ref] = [p for p in operation["parameters"] if p["in"] == "path"]
        assert ref["schema"] == {"type": "string", "format": "uuid"}
    if operation_id in ("invoices_refund", "invoices_cancel", "invoices_capture"):
        assert {"400", "409", "502", "503"} <= errors


def test_the_errors_each_endpoint_answers_with(schema):
    def errors(operation_id: str) -> set[str]:
        path, method = OPERATIONS[operation_id]
        return {c for c in schema["paths"][path][method]["responses"] if c >= "400"}

    assert errors("invoices_list") == {"400", "401", "403", "404", "429"}
    assert errors("invoices_create") == {"400", "401", "403", "409", "422", "429"}
    assert errors("invoices_retrieve") == {"401", "403", "404", "429"}


def test_the_list_documents_its_filters_and_cursor(schema):
    operation = schema["paths"]["/invoices/"]["get"]
    parameters = {p["name"]: p for p in operation["parameters"]}
    assert set(parameters) == {
        "status",
        "provider",
        "order_id",
        "order_key",
        "created_after",
        "created_before",
        "needs_attention",
        "cursor",
        "page_size",
    }
    assert all(p["in"] == "query" for p in parameters.values())
    assert parameters["status"]["schema"]["type"] == "array"
    assert "paid" in parameters["status"]["schema"]["items"]["enum"]
    assert parameters["created_after"]["schema"]["format"] == "date-time"
    assert parameters["needs_attention"]["schema"]["type"] == "boolean"
    assert parameters["page_size"]["schema"] == {"type": "integer", "minimum": 1}
    page = operation["responses"]["200"]["content"]["application/json"]["schema"]
    paginated = schema["components"]["schemas"][page["$ref"].rsplit("/", 1)[1]]
    assert set(paginated["properties"]) == {"next", "previous", "results"}
    item = paginated["properties"]["results"]["items"]["$ref"]
    assert item == "#/components/schemas/MerchantInvoice"


def test_create_documents_the_idempotency_key(schema):
    operation = schema["paths"]["/invoices/"]["post"]
    [header] = [p for p in operation["parameters"] if p["in"] == "header"]
    assert header["name"] == "Idempotency-Key"
    assert not header.get("required", False)
    assert "pattern" in header["schema"]
    assert set(operation["responses"]["201"]["headers"]) == {
        "Location",
        "Idempotent-Replayed",
    }
    body = operation["requestBody"]["content"]["application/json"]["schema"]
    assert body == {"$ref": "#/components/schemas/MerchantInvoiceCreateRequest"}


def test_amounts_are_described_as_strings(schema):
    components = schema["components"]["schemas"]
    invoice = components["MerchantInvoiceDetail"]["properties"]
    for name in ("amount", "paid", "refunded"):
        assert invoice[name]["type"] == "string"
        assert "pattern" in invoice[name]
    assert components["MerchantPayment"]["properties"]["amount"]["type"] == "string"
    create = components["MerchantInvoiceCreateRequest"]["properties"]
    assert create["amount"]["type"] == "string"
    refund = components["MerchantRefundRequest"]["properties"]
    assert refund["amount"]["type"] == "string" and refund["amount"]["nullable"]
    assert create["provider"]["allOf"] == [
        {"$ref": "#/components/schemas/ProviderEnum"}
    ]
    assert components["ProviderEnum"]["enum"] == ["sandbox"]  # the configured ones
    text = create["description"]["oneOf"][0]  # or "" (spectacular's blank)
    assert text["pattern"].startswith("^[^\\u0000-\\u001f")
    # Empty when the shop gave none: not format "email".
    assert "format" not in invoice["customer_email"]
    receipt = create["receipt"]["allOf"][0]["$ref"]
    assert receipt == "#/components/schemas/MerchantReceiptRequest"
    # The events never describe a payload.
    event = components["MerchantWebhookEvent"]["properties"]
    assert "payload" not in event and "event" not in event


def test_statuses_are_named_enums(schema):
    components = schema["components"]["schemas"]
    assert "paid" in components["InvoiceStatusEnum"]["enum"]
    assert "processed" in components["WebhookEventStatusEnum"]["enum"]
    assert components["OperationStateEnum"]["enum"] == [
        "in_flight",
        "confirmed",
        "failed",
    ]


# --- hostile input --------------------------------------------------------------------


def _send(client: Client, url: str, body: bytes | str, **extra: Any) -> Any:
    # generic(): the body as it is, whatever charset the content type names.
    content_type = extra.pop("content_type", "application/json")
    return client.generic("POST", url, body, content_type=content_type, **extra)


def _assert_4xx_shape(response: Any) -> dict[str, Any]:
    assert 400 <= response.status_code < 500, (response.status_code, response.content)
    data = response.json()
    assert set(data) == ERROR_KEYS
    return data


HOSTILE_BODIES: list[bytes | str] = [
    b"{",
    b"[",
    b"\xff\xfe\x00",
    b"null",
    b"123",
    b'"amount"',
    b"[]",
    b"[" * 100_000 + b"]" * 100_000,
    b"{" * 50_000,
    b'{"amount": NaN}',
    b'{"amount": Infinity}',
    b'{"amount": -Infinity}',
    b'{"amount": 1e400}',
    b'{"amount": 1' + b"0" * 5000 + b"}",
    b'{"amount": "1' + b"0" * 5000 + b'"}',
    b'{"amount": "1e99999999"}',
    b'{"amount": "0x10"}',
    b'{"amount": "\\u0661\\u0660"}',  # Arabic-Indic digits
    b'{"amount": ["1"]}',
    b'{"amount": {"value": "1"}}',
    b'{"amount": true}',
    b'{"amount": "1.00\\u0000"}',
    b'{"receipt": {"lines": [{"\\ud800": 1}]}}',
    b'{"receipt": {"\\udfff": 1}}',
    b'{"receipt": {"lines": "all"}}',
    b'{"receipt": {"lines": [null, 1, "x"]}}',
    b'{"receipt": {"lines": [{"name": {"a": 1}, "quantity": [], "price": {}}]}}',
    b'{"receipt": 5}',
]

CREATE_BODIES: list[bytes | str] = [
    b'{"provider": "sandbox\\u0000", "amount": "1"}',
    b'{"provider": "\\ud800", "amount": "1"}',
    b'{"provider": 5, "amount": "1"}',
    b'{"provider": null, "amount": "1"}',
    b'{"provider": "sandbox", "amount": "1", "currency": "\\u0000\\u0000\\u0000"}',
    b'{"provider": "sandbox", "amount": "1", "currency": 643}',
    b'{"provider": "sandbox", "amount": "1", "order_id": "\\ud800"}',
    b'{"provider": "sandbox", "amount": "1", "order_id": "a\\u0085b"}',
    b'{"provider": "sandbox", "amount": "1", "description": ["x"]}',
    b'{"provider": "sandbox", "amount": "1", "customer_email": "a@\\ud800.ru"}',
    b'{"provider": "sandbox", "amount": "1", "return_url": "javascript:alert(1)"}',
    b'{"provider": "sandbox", "amount": "1", "metadata": {"\\ud800": 1}}',
    b'{"provider": "sandbox", "amount": "1", "metadata": {"a": "\\u0000"}}',
    b'{"provider": "sandbox", "amount": "1", "metadata": 7}',
    b'{"provider": "../../etc/passwd", "amount": "1"}',
    b'{"provider": "sandbox", "amount": "930.00", "receipt": {"lines": [{"name": '
    b'"\\ud800", "quantity": "1", "price": "930.00", "amount": "930.00", '
    b'"vat": "none"}]}}',
]


@pytest.mark.parametrize("body", HOSTILE_BODIES + CREATE_BODIES)
def test_hostile_create_bodies_are_4xx(body):
    client = client_for("add_invoice")
    _assert_4xx_shape(_send(client, API, body))
    assert not Invoice.objects.exists()
    assert not IdempotencyKey.objects.exists()


@pytest.mark.parametrize("where", ["refund/", "capture/"])
@pytest.mark.parametrize("body", HOSTILE_BODIES)
def test_hostile_operation_bodies_are_4xx(where, body):
    invoice = paid()
    client = client_for("change_invoice")
    _assert_4xx_shape(_send(client, f"{API}{invoice.uuid}/{where}", body))
    assert not Operation.objects.exists()


def test_a_receipt_key_with_a_surrogate_is_named_escaped():
    client = client_for("add_invoice")
    body = (
        b'{"provider": "sandbox", "amount": "930.00", "receipt": {"lines": '
        b'[{"\\ud800": 1}]}}'
    )
    data = assert_error(_send(client, API, body), 400, "invalid_input")
    assert data["field"] == "receipt.lines[0].\\ud800"


@pytest.mark.parametrize(
    ("content_type", "status", "code"),
    [
        ("text/plain", 415, "unsupported_media_type"),
        ("application/x-www-form-urlencoded", 415, "unsupported_media_type"),
        ("multipart/form-data; boundary=x", 415, "unsupported_media_type"),
        ("application/json; charset=utf-16", 400, "parse_error"),
        ("application/json; charset=latin-1", 201, None),
        ("application/json; charset=no-such-charset", 201, None),
    ],
)
def test_other_media_types(content_type, status, code):
    client = client_for("add_invoice")
    response = _send(
        client,
        API,
        b'{"provider": "sandbox", "amount": "1.00"}',
        content_type=content_type,
    )
    if code is None:
        assert response.status_code == status
    else:
        assert_error(response, status, code)


def test_a_client_that_accepts_no_json_gets_json():
    # One language: a browser's Accept gets the JSON, not a 406 (base.JSONOnly).
    client = client_for("view_invoice")
    response = client.get(API, HTTP_ACCEPT="text/html")
    assert response.status_code == 200
    assert response["Content-Type"] == "application/json"
    assert "results" in response.json()


@pytest.mark.parametrize(
    "query",
    [
        "status=%ff",
        "status=paid&status=%00",
        "created_after=%00",
        "created_after=2026-01-01T00:00:00%2B99:00",
        "order_id=%00",
        "order_key=" + "x" * 10_000,
        "needs_attention=%00",
        "page_size=99999999999999999999999999",
        "page_size=1e3",
        "cursor=%00",
        "cursor=" + "A" * 10_000,
    ],
)
def test_hostile_query_strings_are_4xx_or_ignored(query):
    client = client_for("view_invoice")
    response = client.get(f"{API}?{query}")
    if response.status_code != 200:
        _assert_4xx_shape(response)


@pytest.mark.parametrize(
    "ref",
    ["%00", "..", "%E2%80%AE", "0" * 500, "{00000000-0000-0000-0000-000000000000}"],
)
def test_hostile_references_are_404(ref):
    client = client_for("view_invoice", "change_invoice")
    assert_error(client.get(f"{API}{ref}/"), 404, "not_found")
    assert_error(client.post(f"{API}{ref}/cancel/"), 404, "not_found")


def test_unknown_body_fields_are_ignored():
    client = client_for("add_invoice")
    response = post(
        client, API, {"provider": "sandbox", "amount": "1.00", "status": "paid"}
    )
    assert response.json()["status"] == "created"


def test_the_receipt_lines_of_docs_example_are_taken():
    client = client_for("add_invoice")
    body = {"provider": "sandbox", "amount": "930.00", "receipt": {"lines": LINES}}
    assert post(client, API, body).status_code == 201


# --- throttling -----------------------------------------------------------------------


def test_a_configured_scoped_throttle_answers_429_in_the_error_shape(
    settings, monkeypatch
):
    settings.PAYMENTS_RU = {
        **settings.PAYMENTS_RU,
        "API_MERCHANT_THROTTLE_CLASSES": [
            "rest_framework.throttling.ScopedRateThrottle"
        ],
    }
    # DRF reads the rates into the class when it is imported.
    monkeypatch.setattr(
        ScopedRateThrottle, "THROTTLE_RATES", {"payments_ru_merchant": "2/min"}
    )
    cache.clear()
    try:
        client = client_for("view_invoice")
        assert client.get(API).status_code == 200
        assert client.get(API).status_code == 200
        response = client.get(API)
        data = assert_error(response, 429, "throttled", None)
        assert int(response["Retry-After"]) > 0
        assert data["fields"] == {}
    finally:
        cache.clear()
