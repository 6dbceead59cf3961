"""Hostile input never becomes a 500 or a half-written row.

Signed but malformed webhooks, for every provider alias: a property test over
hostile bodies (deep nesting, NaN literals, huge integers, NUL and lone
surrogates, bytes that are not UTF-8, ids longer than their columns, amounts
that are not amounts, unknown currencies, missing and extra keys), each signed
correctly and posted through the webhook view; explicit examples of every case
that was measured to answer 500; the shared loader and the event check on their
own; the view's answers for an unknown alias and a broken configuration.
"""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from decimal import Decimal
from typing import Any, ClassVar
from urllib.parse import quote, quote_plus

import pytest
from django.db import DataError, connection, transaction
from django.http import HttpRequest, QueryDict
from django.test import Client
from hypothesis import HealthCheck, event, given
from hypothesis import settings as hsettings
from hypothesis import strategies as st

from django_payments_ru import services
from django_payments_ru.events import (
    INVOICE_REF_MAX,
    REASON_MAX,
    EventType,
    PaymentEvent,
    check_event,
)
from django_payments_ru.exceptions import (
    InvalidAmount,
    InvalidCurrency,
    ProviderUnavailable,
    WebhookParseError,
    WebhookVerificationError,
)
from django_payments_ru.models import Invoice, Payment, WebhookEvent
from django_payments_ru.money import MAX_AMOUNT
from django_payments_ru.providers import payload as payload_module
from django_payments_ru.providers.base import BaseProvider
from django_payments_ru.providers.lifepay.signature import sign_notification
from django_payments_ru.providers.payconnect.provider import sign as payconnect_sign
from django_payments_ru.providers.payload import (
    MAX_DEPTH,
    MAX_INT_DIGITS,
    UNSAFE_TEXT,
    check_json_value,
    json_depth,
    load_form,
    load_json,
    load_json_object,
    webhook_parsing,
    webhook_verifying,
)
from django_payments_ru.providers.sandbox.provider import sign as sandbox_sign
from django_payments_ru.registry import get_provider
from django_payments_ru.views import webhook
from tests.providers.lifepay.conftest import (
    SECRET,
    SECRET_ECOM,
    SECRET_V1,
    SERVICES,
    add_lifepay,
)
from tests.providers.payconnect.cases import SECRET as PAYCONNECT_SECRET
from tests.providers.payconnect.cases import with_payconnect

pytestmark = pytest.mark.django_db

SANDBOX_SECRET = "whsec_sandbox_canary_9b7e"
SANDBOX_API_KEY = "sk_sandbox_test_canary_4f1c"
TESTSERVER = "http://testserver"


@pytest.fixture(autouse=True)
def every_provider(settings: Any) -> None:
    """The sandbox (tests/settings.py), PayConnect and the three Life-Pay
    aliases."""
    settings.PAYMENTS_RU = with_payconnect(settings.PAYMENTS_RU)
    add_lifepay(settings)


# --- bodies: JSON written by hand, so that NaN, raw bytes and any nesting fit ---------


@dataclass(frozen=True)
class Raw:
    """Bytes written into the body verbatim (a NaN literal, a 10 000-deep array,
    a string that is not UTF-8, a %-escape in a form)."""

    data: bytes


def dump(value: Any) -> bytes:
    """``value`` as JSON; :class:`Raw` verbatim, floats with ``NaN``/``Infinity``
    as Python writes them, strings ASCII-escaped (``\\u0000``, ``\\ud800``)."""
    if isinstance(value, Raw):
        return value.data
    if isinstance(value, dict):
        items = (dump(str(k)) + b":" + dump(v) for k, v in value.items())
        return b"{" + b",".join(items) + b"}"
    if isinstance(value, list | tuple):
        return b"[" + b",".join(dump(v) for v in value) + b"]"
    return json.dumps(value).encode()


def encode_form(pairs: list[tuple[str, Any]]) -> bytes:
    """``pairs`` form-encoded; a :class:`Raw` value is written as it is."""
    parts = []
    for name, value in pairs:
        text = value.data if isinstance(value, Raw) else quote_plus(value).encode()
        parts.append(quote_plus(name).encode() + b"=" + text)
    return b"&".join(parts)


# --- one adapter per alias: a valid notification for an invoice, and how to post
# --- a body signed correctly ----------------------------------------------------------


class Target:
    alias: ClassVar[str]
    form: ClassVar[bool] = False

    def invoice(self) -> Invoice:
        return services.create_invoice(
            provider=self.alias,
            amount="10.00",
            order_id=f"order-{uuid.uuid4().hex[:8]}",
            description="Order 1001",
            customer_email="customer@example.com",
        )

    def document(self, invoice: Invoice) -> Any:
        raise NotImplementedError

    def body(self, document: Any) -> bytes:
        return encode_form(document) if self.form else dump(document)

    def post(self, client: Client, body: bytes) -> Any:
        raise NotImplementedError


class Sandbox(Target):
    alias = "sandbox"

    def document(self, invoice: Invoice) -> dict[str, Any]:
        return {
            "id": f"evt_{uuid.uuid4().hex[:16]}",
            "type": "payment.succeeded",
            "created_at": "2026-01-15T10:30:00+00:00",
            "data": {
                "id": f"pay_{invoice.uuid.hex[:16]}",
                "status": "succeeded",
                "amount": str(invoice.amount),
                "currency": invoice.currency,
                "reference": str(invoice.uuid),
                "refunded_amount": "0.00",
                "failure_reason": None,
            },
        }

    def post(self, client: Client, body: bytes) -> Any:
        timestamp = str(int(time.time()))
        return client.post(
            "/payments/webhooks/sandbox/",
            data=body,
            content_type="application/json",
            HTTP_X_SANDBOX_SIGNATURE=sandbox_sign(SANDBOX_SECRET, timestamp, body),
            HTTP_X_SANDBOX_TIMESTAMP=timestamp,
        )


class PayConnect(Target):
    alias = "payconnect"

    def document(self, invoice: Invoice) -> dict[str, Any]:
        return {
            "id": f"evt_{uuid.uuid4().hex[:16]}",
            "type": "payment.succeeded",
            "created_at": "2026-01-15T10:30:00Z",
            "data": {
                "object": {
                    "id": f"pay_{invoice.uuid.hex[:16]}",
                    "object": "payment",
                    "status": "succeeded",
                    "amount": 1000,
                    "currency": "RUB",
                    "metadata": {
                        "invoice_id": str(invoice.uuid),
                        "order_id": invoice.order_id,
                    },
                    "refunded_amount": 0,
                    "failure_code": None,
                    "failure_message": None,
                    "paid_at": "2026-01-15T10:30:00Z",
                }
            },
        }

    def post(self, client: Client, body: bytes) -> Any:
        return client.post(
            "/payments/webhooks/payconnect/",
            data=body,
            content_type="application/json",
            HTTP_X_PAYCONNECT_SIGNATURE=payconnect_sign(PAYCONNECT_SECRET, body),
        )


class LifePay(Target):
    alias = "lifepay"
    form = True
    version: ClassVar[str] = "2.0"
    secret: ClassVar[str] = SECRET

    def document(self, invoice: Invoice) -> list[tuple[str, Any]]:
        amount = str(invoice.amount)
        return [
            ("tid", f"1{uuid.uuid4().int % 10**9:09d}"),
            ("name", invoice.description),
            ("comment", ""),
            ("partner_id", "1"),
            ("service_id", str(SERVICES[self.alias])),
            ("order_id", invoice.order_id),
            ("type", "spg_test"),
            ("cost", amount),
            ("income_total", amount),
            ("income", amount),
            ("partner_income", amount),
            ("system_income", amount),
            ("command", "success"),
            ("phone_number", ""),
            ("email", ""),
            ("resultStr", ""),
            ("date_created", "2024-01-15 10:30:00"),
            ("version", self.version),
            ("currency", "RUB"),
        ]

    def post(self, client: Client, body: bytes) -> Any:
        # Signed over the fields as Django reads them (what Life-Pay would have
        # signed to get this body verified), then posted byte for byte.
        fields = QueryDict(body, encoding="utf-8").dict()
        version = fields.get("version", self.version)
        url = f"{TESTSERVER}/payments/webhooks/{self.alias}/"
        check = sign_notification(version, self.secret, url, fields)
        signed = body + b"&check=" + quote(check, safe="").encode()
        return client.post(
            f"/payments/webhooks/{self.alias}/",
            data=signed,
            content_type="application/x-www-form-urlencoded",
        )


class LifePayV1(LifePay):
    alias = "lifepay_v1"
    version = "1.0"
    secret = SECRET_V1


class LifePayEcom(LifePay):
    alias = "lifepay_ecom"
    secret = SECRET_ECOM


TARGETS: list[Target] = [Sandbox(), PayConnect(), LifePay(), LifePayV1(), LifePayEcom()]
JSON_TARGETS = [t for t in TARGETS if not t.form]
FORM_TARGETS = [t for t in TARGETS if t.form]


def by_alias(targets: list[Target]) -> Any:
    return pytest.mark.parametrize("target", targets, ids=[t.alias for t in targets])


def snapshot() -> tuple[int, int, list[dict[str, Any]]]:
    return (
        WebhookEvent.objects.count(),
        Payment.objects.count(),
        list(Invoice.objects.order_by("pk").values()),
    )


def assert_safe(response: Any, before: Any) -> None:
    """Never a 5xx; a 4xx wrote nothing and changed no invoice."""
    assert response.status_code < 500, response.content[:300]
    if 400 <= response.status_code < 500:
        assert snapshot() == before


def assert_refused(target: Target, client: Client, body: bytes) -> Any:
    before = snapshot()
    response = target.post(client, body)
    assert response.status_code == 400, response.content[:300]
    assert snapshot() == before
    return response


def test_the_valid_notification_of_every_target_pays(client):
    # The adapters are right: without hostility, every alias accepts and pays.
    for target in TARGETS:
        invoice = target.invoice()
        response = target.post(client, target.body(target.document(invoice)))
        assert response.status_code == 200, (target.alias, response.content)
        invoice.refresh_from_db()
        assert invoice.status == "paid", target.alias


# --- the property test ----------------------------------------------------------------

BAD_CHARACTERS = ["\x00", "\x01", "\x08", "\x0b", "\x1b", "\x1f"]
SURROGATES = ["\ud800", "\udbff", "\udc00", "\udfff"]


def bad_text(characters: list[str]) -> st.SearchStrategy[str]:
    return st.builds(
        lambda a, c, b: a + c + b,
        st.text(max_size=6),
        st.sampled_from(characters),
        st.text(max_size=6),
    )


LONG_TEXT = st.integers(min_value=60, max_value=600).map(lambda n: "x" * n)
AMOUNT_TEXT = st.sampled_from(
    [
        "NaN",
        "Infinity",
        "-1.00",
        "1e100000",
        "1E+3",
        "10.001",
        " 5 ",
        "0x10",
        "",
        "1" * 40,
    ]
)
# The last: "EVR" in Cyrillic letters.
CURRENCY_TEXT = st.sampled_from(
    ["XXX", "rub", "", "RUBB", "R\x00B", "\u0415\u0412\u0420"]
)
SCALARS = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(10**20), max_value=10**20),
    st.floats(allow_nan=False, allow_infinity=False),
    st.text(max_size=10),
)
PLAIN_JSON = st.recursive(
    SCALARS,
    lambda inner: (
        st.lists(inner, max_size=3)
        | st.dictionaries(st.text(max_size=5), inner, max_size=3)
    ),
    max_leaves=6,
)

JSON_HOSTILE = st.one_of(
    # nesting past the limit, arrays or objects
    st.integers(min_value=MAX_DEPTH, max_value=5000).map(
        lambda n: Raw(b"[" * n + b"]" * n)
    ),
    st.integers(min_value=MAX_DEPTH, max_value=3000).map(
        lambda n: Raw(b'{"a":' * n + b"1" + b"}" * n)
    ),
    st.sampled_from(
        [
            Raw(b"NaN"),
            Raw(b"Infinity"),
            Raw(b"-Infinity"),
            Raw(b"1e400"),
            Raw(b"-1E999"),
        ]
    ),
    st.integers(min_value=MAX_INT_DIGITS + 1, max_value=400).map(
        lambda n: Raw(b"9" * n)
    ),
    st.integers(min_value=10**30, max_value=10**250),
    bad_text(BAD_CHARACTERS + SURROGATES),
    st.sampled_from([Raw(b'"\xff"'), Raw(b'"\xed\xa0\x80"'), Raw(b'"\xc3"')]),
    LONG_TEXT,
    AMOUNT_TEXT,
    CURRENCY_TEXT,
    st.floats(),
    st.sampled_from([643, True, [], {}, ["RUB"], {"value": "10.00"}]),
    PLAIN_JSON,
)
FORM_HOSTILE = st.one_of(
    bad_text(BAD_CHARACTERS),
    st.sampled_from(
        [
            Raw(b"%00"),
            Raw(b"a%00b"),
            Raw(b"%FF"),
            Raw(b"\xff"),
            Raw(b"%ED%A0%80"),
            Raw(b"%C3"),
            Raw(b"%1B"),
        ]
    ),
    LONG_TEXT,
    AMOUNT_TEXT,
    CURRENCY_TEXT,
    st.text(max_size=12),
)


def json_paths(value: Any, prefix: tuple[str, ...] = ()) -> Iterator[tuple[str, ...]]:
    if isinstance(value, dict):
        for key, child in value.items():
            yield (*prefix, key)
            yield from json_paths(child, (*prefix, key))


def mutate_json(draw: Any, document: dict[str, Any]) -> Any:
    if draw(st.integers(min_value=0, max_value=9)) == 0:
        # The whole body: not an object, or not JSON at all.
        return draw(
            st.sampled_from(
                [Raw(b""), Raw(b"[]"), Raw(b'"x"'), Raw(b"{"), Raw(b"{}garbage"), None]
            )
            | JSON_HOSTILE
        )
    for _ in range(draw(st.integers(min_value=1, max_value=3))):
        paths = list(json_paths(document))
        path = draw(st.sampled_from(paths))
        parent = document
        for key in path[:-1]:
            parent = parent[key]
        if not isinstance(parent, dict):
            continue
        operation = draw(st.sampled_from(["set", "set", "delete", "add"]))
        if operation == "set":
            parent[path[-1]] = draw(JSON_HOSTILE)
        elif operation == "delete":
            parent.pop(path[-1], None)
        else:
            key = draw(st.text(max_size=8) | bad_text(BAD_CHARACTERS + SURROGATES))
            parent[key] = draw(JSON_HOSTILE)
    return document


def mutate_form(draw: Any, pairs: list[tuple[str, Any]]) -> list[tuple[str, Any]]:
    for _ in range(draw(st.integers(min_value=1, max_value=3))):
        index = draw(st.integers(min_value=0, max_value=len(pairs) - 1))
        name = pairs[index][0]
        operation = draw(st.sampled_from(["set", "set", "delete", "add", "repeat"]))
        if operation == "set":
            pairs[index] = (name, draw(FORM_HOSTILE))
        elif operation == "delete" and len(pairs) > 1:
            del pairs[index]
        elif operation == "add":
            pairs.append((draw(st.text(min_size=1, max_size=8)), draw(FORM_HOSTILE)))
        elif operation == "repeat":
            pairs.append((name, draw(FORM_HOSTILE)))
    return pairs


HOSTILE_SETTINGS = hsettings(
    max_examples=60,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)


@by_alias(TARGETS)
@HOSTILE_SETTINGS
@given(data=st.data())
def test_signed_hostile_bodies_never_answer_5xx_nor_write_on_4xx(client, target, data):
    invoice = target.invoice()
    document = target.document(invoice)
    if target.form:
        body = encode_form(mutate_form(data.draw, document))
    else:
        body = dump(mutate_json(data.draw, document))
    before = snapshot()
    response = target.post(client, body)
    event(f"HTTP {response.status_code}")  # --hypothesis-show-statistics
    assert_safe(response, before)


# --- what was measured, case by case --------------------------------------------------


def _set(*path: str, value: Any) -> Callable[[dict[str, Any]], None]:
    def change(document: dict[str, Any]) -> None:
        for key in path[:-1]:
            document = document[key]
        document[path[-1]] = value

    return change


#: (case, where in a sandbox body, where in a PayConnect body, value)
JSON_CASES: list[tuple[str, tuple[str, ...], tuple[str, ...], Any]] = [
    (
        "deep-array",
        ("data", "extra"),
        ("data", "extra"),
        Raw(b"[" * 10_000 + b"]" * 10_000),
    ),
    ("deep-object", ("extra",), ("extra",), Raw(b'{"a":' * 5000 + b"1" + b"}" * 5000)),
    ("nesting-33", ("extra",), ("extra",), Raw(b"[" * 33 + b"]" * 33)),
    ("nan", ("data", "extra"), ("data", "object", "extra"), Raw(b"NaN")),
    ("infinity", ("extra",), ("extra",), Raw(b"Infinity")),
    ("-infinity", ("data", "amount"), ("data", "object", "amount"), Raw(b"-Infinity")),
    ("overflow-float", ("extra",), ("extra",), Raw(b"1e400")),
    ("200-digit-int", ("data", "extra"), ("data", "object", "amount"), Raw(b"9" * 200)),
    (
        "nul-value",
        ("data", "failure_reason"),
        ("data", "object", "failure_message"),
        "a\x00b",
    ),
    ("nul-only", ("extra",), ("extra",), "\x00"),
    (
        "control-char",
        ("data", "reference"),
        ("data", "object", "metadata", "order_id"),
        "a\x1bb",
    ),
    ("lone-surrogate", ("data", "id"), ("data", "object", "id"), "pay_\ud800"),
    ("low-surrogate", ("extra",), ("extra",), "\udfff"),
    ("not-utf8", ("data", "id"), ("data", "object", "id"), Raw(b'"pay_\xff"')),
    ("utf8-surrogate", ("extra",), ("extra",), Raw(b'"\xed\xa0\x80"')),
    ("long-dedupe-id", ("id",), ("id",), "e" * 256),
    ("long-payment-id", ("data", "id"), ("data", "object", "id"), "p" * 129),
    (
        "long-invoice-ref",
        ("data", "reference"),
        ("data", "object", "metadata", "invoice_id"),
        "r" * 65,
    ),
    ("unknown-currency", ("data", "currency"), ("data", "object", "currency"), "XXX"),
    ("currency-number", ("data", "currency"), ("data", "object", "currency"), 643),
    ("amount-list", ("data", "amount"), ("data", "object", "amount"), [1000]),
    ("amount-object", ("data", "amount"), ("data", "object", "amount"), {"v": 1}),
    ("amount-bool", ("data", "amount"), ("data", "object", "amount"), True),
    ("amount-huge", ("data", "amount"), ("data", "object", "amount"), "1e100000"),
    ("amount-negative", ("data", "amount"), ("data", "object", "amount"), "-10.00"),
    ("data-not-object", ("data",), ("data",), "payment"),
]


@pytest.mark.parametrize(
    "case, sandbox_path, payconnect_path, value",
    JSON_CASES,
    ids=[case[0] for case in JSON_CASES],
)
@by_alias(JSON_TARGETS)
def test_measured_json_cases_are_400_with_nothing_written(
    client, target, case, sandbox_path, payconnect_path, value
):
    document = target.document(target.invoice())
    path = sandbox_path if target.alias == "sandbox" else payconnect_path
    _set(*path, value=value)(document)
    assert_refused(target, client, dump(document))


def test_sandbox_non_string_amounts_are_parse_errors():
    # The sandbox's own parse_webhook, not only the view: InvalidAmount and
    # InvalidCurrency no longer escape it.
    provider = get_provider("sandbox")
    for field, value in [
        ("amount", 100.0),
        ("amount", [1]),
        ("amount", {"v": "1"}),
        ("amount", "ten"),
        ("currency", "XXX"),
        ("refunded_amount", 1.5),
    ]:
        document = Sandbox().document(
            services.create_invoice(provider="sandbox", amount="1")
        )
        document["type"] = "payment.refunded"
        document["data"][field] = value
        request = HttpRequest()
        request._body = dump(document)
        with pytest.raises(WebhookParseError):
            provider.parse_webhook(request)


def test_payconnect_parse_errors_name_no_secret():
    provider = get_provider("payconnect")
    document = PayConnect().document(PayConnect().invoice())
    document["data"]["object"]["amount"] = "1000"
    request = HttpRequest()
    request._body = dump(document)
    with pytest.raises(WebhookParseError) as info:
        provider.parse_webhook(request)
    assert info.value.code == "invalid_amount"
    assert PAYCONNECT_SECRET not in str(info.value)


def test_a_malformed_payconnect_invoice_id_on_a_failure_is_not_a_500(client):
    # The stale-payment check looked the invoice up by a malformed UUID, which
    # Django answers with ValidationError.
    target = PayConnect()
    document = target.document(target.invoice())
    document["type"] = "payment.failed"
    document["data"]["object"]["status"] = "failed"
    document["data"]["object"]["metadata"]["invoice_id"] = "not-a-uuid"
    response = target.post(client, dump(document))
    assert response.status_code == 200


FORM_CASES: list[tuple[str, str, Any]] = [
    ("nul-in-name", "name", Raw(b"Order%00 1")),
    ("nul-in-tid", "tid", Raw(b"100%00")),
    ("nul-in-result", "resultStr", Raw(b"%00")),
    ("control-char", "comment", Raw(b"a%1Bb")),
    ("not-utf8-escape", "name", Raw(b"%FF")),
    ("not-utf8-raw", "name", Raw(b"\xff\xfe")),
    ("truncated-utf8", "comment", Raw(b"%D0")),
    ("utf8-surrogate", "email", Raw(b"%ED%A0%80")),
    ("long-tid", "tid", "1" * 129),
    ("long-order-id", "order_id", "o" * 65),
    ("unknown-currency", "currency", "XXX"),
    ("cost-nan", "cost", "NaN"),
    ("cost-huge", "cost", "1e100000"),
    ("cost-too-precise", "income_total", "10.001"),
]


@pytest.mark.parametrize(
    "case, field, value", FORM_CASES, ids=[case[0] for case in FORM_CASES]
)
@by_alias(FORM_TARGETS)
def test_measured_form_cases_are_400_with_nothing_written(
    client, target, case, field, value
):
    pairs = target.document(target.invoice())
    pairs = [(name, value if name == field else old) for name, old in pairs]
    assert_refused(target, client, encode_form(pairs))


def test_an_extra_form_field_with_nul_is_refused(client):
    target = LifePay()
    pairs = [*target.document(target.invoice()), ("extra", "a\x00b")]
    assert_refused(target, client, encode_form(pairs))


@by_alias(TARGETS)
def test_a_long_reason_is_cut_not_refused(client, target):
    invoice = target.invoice()
    document = target.document(invoice)
    if target.form:
        document = [
            (name, "x" * 2000 if name == "resultStr" else value)
            for name, value in document
        ]
        document = [
            (name, "cancel" if name == "command" else value) for name, value in document
        ]
    elif target.alias == "sandbox":
        document["type"] = "payment.failed"
        document["data"].update(status="failed", failure_reason="x" * 2000)
    else:
        document["type"] = "payment.failed"
        document["data"]["object"].update(status="failed", failure_message="x" * 2000)
    response = target.post(client, target.body(document))
    assert response.status_code == 200, response.content
    row = WebhookEvent.objects.get(provider=target.alias)
    assert len(row.event["reason"]) == REASON_MAX


# --- the view -------------------------------------------------------------------------


def test_unknown_alias_is_404(client):
    response = client.post(
        "/payments/webhooks/nope/", data=b"{}", content_type="application/json"
    )
    assert response.status_code == 404


def test_a_broken_configuration_is_a_logged_500_naming_the_setting(
    client, settings, caplog
):
    config = dict(settings.PAYMENTS_RU)
    config["PROVIDERS"] = dict(config["PROVIDERS"])
    config["PROVIDERS"]["sandbox"] = {
        "BACKEND": "django_payments_ru.providers.sandbox.Provider",
        "OPTIONS": {"base_url": "http://testserver/", "api_key": SANDBOX_API_KEY},
    }
    settings.PAYMENTS_RU = config
    with caplog.at_level("ERROR", logger="django_payments_ru.webhooks"):
        response = client.post(
            "/payments/webhooks/sandbox/", data=b"{}", content_type="application/json"
        )
    assert response.status_code == 500
    assert SANDBOX_API_KEY.encode() not in response.content
    assert b"webhook_secret" not in response.content
    assert "webhook_secret" in caplog.text
    assert SANDBOX_API_KEY not in caplog.text
    assert WebhookEvent.objects.count() == 0


def test_an_unimportable_backend_is_a_500_not_a_404(client, settings):
    config = dict(settings.PAYMENTS_RU)
    config["PROVIDERS"] = {
        **config["PROVIDERS"],
        "broken": {"BACKEND": "no.such.Provider", "OPTIONS": {}},
    }
    settings.PAYMENTS_RU = config
    response = client.post(
        "/payments/webhooks/broken/", data=b"{}", content_type="application/json"
    )
    assert response.status_code == 500


def test_the_webhook_view_is_non_atomic_and_csrf_exempt():
    assert "default" in webhook._non_atomic_requests
    assert webhook.csrf_exempt is True


@pytest.mark.django_db(transaction=True)
def test_processing_never_runs_inside_the_request_transaction(monkeypatch):
    seen: list[bool] = []
    receive = services.receive_webhook_events

    def spy(*args: Any, **kwargs: Any) -> Any:
        seen.append(transaction.get_connection().in_atomic_block)
        return receive(*args, **kwargs)

    monkeypatch.setattr(services, "receive_webhook_events", spy)
    monkeypatch.setitem(connection.settings_dict, "ATOMIC_REQUESTS", True)
    target = Sandbox()
    response = target.post(Client(), dump(target.document(target.invoice())))
    assert response.status_code == 200
    assert seen == [False]


@pytest.mark.django_db(transaction=True)
def test_hostile_body_under_atomic_requests_is_still_a_clean_400(monkeypatch):
    monkeypatch.setitem(connection.settings_dict, "ATOMIC_REQUESTS", True)
    target = Sandbox()
    document = target.document(target.invoice())
    document["data"]["failure_reason"] = "\x00"
    assert_refused(target, Client(), dump(document))


# --- a provider that forgets the shared loader: the view still holds ------------------


class CarelessProvider(BaseProvider):
    """Accepts every body (the tests post nothing unsigned) and parses it with
    plain ``json.loads``; ``?mode=`` in the body picks what goes wrong."""

    slug = "careless"
    display_name = "Careless"
    base_url_option = None

    def verify_webhook(self, request: HttpRequest) -> None:
        if request.body == b"verify-type-error":
            raise TypeError("verification code that trips over the body")

    def parse_webhook(self, request: HttpRequest) -> list[PaymentEvent]:
        data = json.loads(request.body)  # deliberately not load_json
        mode = data["mode"]
        if mode == "key":
            data["missing"]
        if mode == "amount":
            raise InvalidAmount("bad amount", field="amount")
        if mode == "currency":
            raise InvalidCurrency("bad currency", field="currency")
        if mode == "recursion":
            raise RecursionError
        if mode == "overflow":
            raise OverflowError
        if mode == "unavailable":
            raise ProviderUnavailable("down")
        return [
            PaymentEvent(
                provider=self.alias,
                dedupe_id=str(data.get("id", "evt")),
                type=EventType.INFO,
                provider_payment_id=str(data.get("payment", "")),
                raw=data,
            )
        ]


@pytest.fixture
def careless(settings: Any) -> str:
    config = dict(settings.PAYMENTS_RU)
    config["PROVIDERS"] = {
        **config["PROVIDERS"],
        "careless": {"BACKEND": f"{__name__}.CarelessProvider", "OPTIONS": {}},
    }
    settings.PAYMENTS_RU = config
    return "/payments/webhooks/careless/"


@pytest.mark.parametrize(
    "body",
    [
        b"not json",
        b"[" * 100_000 + b"]" * 100_000,
        b'{"mode": "key"}',
        b'{"mode": "amount"}',
        b'{"mode": "currency"}',
        b'{"mode": "recursion"}',
        b'{"mode": "overflow"}',
        b'{"mode": "ok", "id": "' + b"e" * 300 + b'"}',
        b'{"mode": "ok", "payment": "' + b"p" * 200 + b'"}',
        b'{"mode": "ok", "note": "a\\u0000b"}',
        b'{"mode": "ok", "note": "\\ud800"}',
        b'{"mode": "ok", "note": NaN}',
        b'{"mode": "ok", "note": 1e400}',
        b'{"mode": "ok", "n\\u0000te": 1}',
        b"verify-type-error",
    ],
)
def test_the_view_refuses_what_a_careless_provider_lets_through(client, careless, body):
    before = snapshot()
    response = client.post(careless, data=body, content_type="application/json")
    assert response.status_code == 400
    assert snapshot() == before


def test_a_transient_failure_while_parsing_is_not_a_400(client, careless):
    # The provider's next delivery may well succeed: not answered as refused.
    client.raise_request_exception = False
    response = client.post(
        careless, data=b'{"mode": "unavailable"}', content_type="application/json"
    )
    assert response.status_code == 500


def test_a_careless_provider_still_stores_a_sane_event(client, careless):
    response = client.post(
        careless, data=b'{"mode": "ok", "id": "e1"}', content_type="application/json"
    )
    assert response.status_code == 200
    assert WebhookEvent.objects.get().dedupe_id == "e1"


# --- record_events --------------------------------------------------------------------


def _event(**changes: Any) -> PaymentEvent:
    values: dict[str, Any] = {
        "provider": "sandbox",
        "dedupe_id": f"evt_{uuid.uuid4().hex}",
        "type": EventType.PAID,
        "invoice_ref": str(uuid.uuid4()),
        "provider_payment_id": "pay_1",
        "order_id": "order-1",
        "amount": Decimal("10.00"),
        "currency": "RUB",
        "raw": {"id": "evt"},
    }
    values.update(changes)
    return PaymentEvent(**values)


def test_record_events_stores_all_or_nothing():
    provider = get_provider("sandbox")
    with pytest.raises(WebhookParseError):
        services.record_events(provider, [_event(), _event(order_id="o" * 65)])
    assert WebhookEvent.objects.count() == 0
    rows = services.record_events(provider, [_event(), _event()])
    assert len(rows) == 2


def test_record_events_refuses_a_payload_the_redaction_left_unsafe():
    provider = get_provider("sandbox")
    with pytest.raises(WebhookParseError):
        services.record_events(provider, [_event(raw={"note": "a\x00b"})])
    assert WebhookEvent.objects.count() == 0


def test_a_database_refusal_is_a_parse_error_with_nothing_written(monkeypatch):
    provider = get_provider("sandbox")
    create = WebhookEvent.objects.create
    calls = []

    def refuse_second(**kwargs: Any) -> Any:
        calls.append(kwargs)
        if len(calls) == 2:
            raise DataError("value too long")
        return create(**kwargs)

    monkeypatch.setattr(WebhookEvent.objects, "create", refuse_second)
    with pytest.raises(WebhookParseError) as info:
        services.record_events(provider, [_event(), _event()])
    assert info.value.code == "unstorable"
    assert WebhookEvent.objects.count() == 0


# --- the event check ------------------------------------------------------------------


def test_a_sane_event_passes_unchanged():
    event = _event()
    assert check_event(event) is event


@pytest.mark.parametrize(
    "changes, code",
    [
        ({"dedupe_id": "e" * 256}, "too_long"),
        ({"provider_payment_id": "p" * 129}, "too_long"),
        ({"order_id": "o" * 65}, "too_long"),
        ({"invoice_ref": "r" * (INVOICE_REF_MAX + 1)}, "too_long"),
        ({"provider": "a" * 65}, "too_long"),
        ({"dedupe_id": "e\x00"}, "unsafe_text"),
        ({"provider_payment_id": "\ud800"}, "unsafe_text"),
        ({"order_id": "a\x1bb"}, "unsafe_text"),
        ({"invoice_ref": "\udfff"}, "unsafe_text"),
        ({"reason": "a\x00b"}, "unsafe_text"),
        ({"order_id": 12}, "invalid_id"),
        ({"currency": "XXX"}, "invalid_currency"),
        ({"currency": "R\x00B"}, "invalid_currency"),
        ({"amount": Decimal("NaN")}, "invalid_amount"),
        ({"amount": Decimal("Infinity")}, "invalid_amount"),
        ({"amount": Decimal("-0.01")}, "invalid_amount"),
        ({"amount": MAX_AMOUNT + 1}, "invalid_amount"),
        ({"amount": Decimal("1E+100000")}, "invalid_amount"),
        ({"amount": Decimal("10.001")}, "invalid_amount"),
        ({"amount": Decimal("10.5"), "currency": "JPY"}, "invalid_amount"),
        ({"amount": Decimal("0.0001"), "currency": ""}, "invalid_amount"),
        ({"refunded_total": Decimal("-1")}, "invalid_amount"),
        (
            {"type": EventType.REFUNDED, "refunded_total": Decimal("1.001")},
            "invalid_amount",
        ),
        ({"raw": {"a": "\x00"}}, "unsafe_text"),
        ({"raw": {"\ud800": 1}}, "unsafe_text"),
        ({"raw": {"a": float("nan")}}, "unsafe_number"),
        ({"raw": {"a": 10**40}}, "unsafe_number"),
        ({"raw": {"a": Decimal("1")}}, "invalid_json"),
    ],
)
def test_check_event_refuses(changes, code):
    with pytest.raises(WebhookParseError) as info:
        check_event(_event(**changes))
    assert info.value.code == code


def test_check_event_cuts_the_reason_and_normalizes_the_currency():
    event = check_event(_event(reason="x" * 2000, currency="rub"))
    assert len(event.reason) == REASON_MAX
    assert event.currency == "RUB"


def test_check_event_takes_the_currency_decimals_and_the_column_without_one():
    assert check_event(_event(amount=Decimal("10.125"), currency="KWD"))
    assert check_event(_event(amount=Decimal("10.125"), currency=""))
    assert check_event(_event(amount=Decimal("0"), currency="RUB"))
    assert check_event(_event(amount=MAX_AMOUNT, currency="JPY"))


# --- the loader -----------------------------------------------------------------------


def test_load_json_reads_ordinary_json():
    assert load_json(b'{"a": [1, 2.5, "\\u0416", null, true], "b": {"c": "d"}}') == {
        "a": [1, 2.5, "Ж", None, True],
        "b": {"c": "d"},
    }
    # A valid surrogate pair is one character, not a lone surrogate.
    assert load_json(b'"\\ud83d\\ude00"') == "\U0001f600"
    assert load_json(b"9" * MAX_INT_DIGITS) == int("9" * MAX_INT_DIGITS)
    nested = b"[" * MAX_DEPTH + b"]" * MAX_DEPTH
    assert json_depth(nested.decode()) == MAX_DEPTH
    load_json(nested)


@pytest.mark.parametrize(
    "body, code",
    [
        (b"NaN", "unsafe_number"),
        (b'{"a": Infinity}', "unsafe_number"),
        (b"[-Infinity]", "unsafe_number"),
        (b"1e400", "unsafe_number"),
        (b"9" * (MAX_INT_DIGITS + 1), "unsafe_number"),
        (b"-" + b"9" * 5000, "unsafe_number"),
        (b"[" * (MAX_DEPTH + 1) + b"]" * (MAX_DEPTH + 1), "too_deep"),
        (b"[" * 1_000_000, "too_deep"),
        (b'{"a":' * 100_000 + b"1" + b"}" * 100_000, "too_deep"),
        (b'"a\\u0000b"', "unsafe_text"),
        (b'{"a\\u0000": 1}', "unsafe_text"),
        (b'["\\ud800"]', "unsafe_text"),
        (b'"\\udc00x"', "unsafe_text"),
        (b'"\\u001b"', "unsafe_text"),
        (b'"\xff"', "not_utf8"),
        (b'"\xed\xa0\x80"', "not_utf8"),
        (b"\xef\xbb\xbf{}", "invalid_json"),
        (b"{", "invalid_json"),
        (b"", "invalid_json"),
        (b"{} x", "invalid_json"),
    ],
)
def test_load_json_refuses(body, code):
    with pytest.raises(WebhookParseError) as info:
        load_json(body, provider="sandbox")
    assert info.value.code == code
    assert info.value.provider == "sandbox"


def test_brackets_in_strings_are_not_nesting():
    text = '{"a": "' + "[" * 1000 + '\\"' + "{" * 1000 + '"}'
    assert json_depth(text) == 1
    assert load_json(text.encode())["a"].startswith("[[[")


def test_the_depth_scan_is_linear_on_pathological_quotes():
    started = time.monotonic()
    json_depth('"\\"' * 300_000)
    json_depth('"' * 600_000)
    assert time.monotonic() - started < 2


def test_load_json_object_refuses_other_documents():
    assert load_json_object(b"{}") == {}
    for body in (b"[]", b'"x"', b"1", b"null"):
        with pytest.raises(WebhookParseError):
            load_json_object(body)


def test_check_json_value_walks_frozen_payloads_without_recursion():
    from types import MappingProxyType

    assert check_json_value(MappingProxyType({"a": (1, "b")}))
    deep: Any = []
    for _ in range(10_000):
        deep = [deep]
    with pytest.raises(WebhookParseError) as info:
        check_json_value(deep)
    assert info.value.code == "too_deep"
    with pytest.raises(WebhookParseError):
        check_json_value({1: "a"})
    with pytest.raises(WebhookParseError):
        check_json_value({"a": object()})


def test_load_form_reads_ordinary_forms():
    assert load_form(b"a=1&b=%D0%96&c=x+y&d=&a=2") == [
        ("a", "1"),
        ("b", "Ж"),
        ("c", "x y"),
        ("d", ""),
        ("a", "2"),
    ]
    assert load_form(b"text=line%0Anext%09tab%0D") == [("text", "line\nnext\ttab\r")]


@pytest.mark.parametrize(
    "body, code",
    [
        (b"a=%00", "unsafe_text"),
        (b"a%00=1", "unsafe_text"),
        (b"a=x%01", "unsafe_text"),
        (b"a=%1B", "unsafe_text"),
        (b"a=%FF", "invalid_form"),
        (b"a=%D0", "invalid_form"),
        (b"a=%ED%A0%80", "invalid_form"),
        (b"a=\xff", "not_utf8"),
    ],
)
def test_load_form_refuses(body, code):
    with pytest.raises(WebhookParseError) as info:
        load_form(body)
    assert info.value.code == code


def test_load_form_keeps_the_field_limit(settings):
    settings.DATA_UPLOAD_MAX_NUMBER_FIELDS = 3
    with pytest.raises(WebhookParseError):
        load_form(b"a=1&b=2&c=3&d=4")


def test_webhook_parsing_converts_hostile_errors_and_passes_the_others():
    for error in (
        InvalidAmount("x", field="amount"),
        InvalidCurrency("x"),
        KeyError("id"),
        TypeError(),
        ValueError(),
        RecursionError(),
        OverflowError(),
        UnicodeDecodeError("utf-8", b"\xff", 0, 1, "bad"),
        AttributeError(),
        IndexError(),
    ):
        with pytest.raises(WebhookParseError) as info, webhook_parsing("sandbox"):
            raise error
        assert info.value.provider == "sandbox"
    with pytest.raises(WebhookParseError) as info, webhook_parsing("sandbox"):
        raise InvalidAmount("x", field="amount")
    assert info.value.code == "invalid_amount"
    with pytest.raises(WebhookVerificationError), webhook_parsing("sandbox"):
        raise WebhookVerificationError("forged")
    with pytest.raises(ProviderUnavailable), webhook_parsing("sandbox"):
        raise ProviderUnavailable("down")
    with pytest.raises(RuntimeError), webhook_parsing("sandbox"):
        raise RuntimeError("a bug, not input")


def test_webhook_verifying_turns_hostile_errors_into_verification_failures():
    with pytest.raises(WebhookVerificationError) as info, webhook_verifying("x"):
        raise TypeError
    assert info.value.code == "unverifiable"


# --- one walk at most -------------------------------------------------------------

_JSON_TEXT = st.text(
    alphabet=st.characters(
        categories=["L", "N", "P", "Zs", "Cc", "Cs"], max_codepoint=0xE000
    ),
    max_size=8,
)
_JSON_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers(-(10**6), 10**6) | _JSON_TEXT,
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(_JSON_TEXT, inner, max_size=3)
    ),
    max_leaves=12,
)


def _holds_unsafe_text(value: Any) -> bool:
    if isinstance(value, str):
        return bool(UNSAFE_TEXT.search(value))
    if isinstance(value, dict):
        return any(
            _holds_unsafe_text(k) or _holds_unsafe_text(v) for k, v in value.items()
        )
    if isinstance(value, list):
        return any(_holds_unsafe_text(v) for v in value)
    return False


@given(value=_JSON_VALUES, ascii_only=st.booleans())
@hsettings(max_examples=300, deadline=None)
def test_load_json_refuses_exactly_the_values_that_hold_unsafe_text(
    value: Any, ascii_only: bool
) -> None:
    # Escaped (\\u0000, \\ud800, \\b) or as the characters themselves, in a key
    # or a value: the text's own check stands for the walk of the value.
    text = json.dumps(value, ensure_ascii=ascii_only)
    refused = False
    try:
        load_json(text, provider="sandbox")
    except WebhookParseError:
        refused = True
    assert refused == _holds_unsafe_text(value), text


def test_a_clean_body_is_not_walked_and_its_event_not_walked_again(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    walked: list[Any] = []
    real = payload_module.check_text

    def counting(value: str, **kwargs: Any) -> str:
        walked.append(value)
        return real(value, **kwargs)

    monkeypatch.setattr(payload_module, "check_text", counting)
    body = json.dumps({"id": "evt_1", "data": {"name": "Маракуя", "tags": ["a"]}})
    data = load_json(body.encode(), provider="sandbox")
    assert walked == []
    assert check_json_value(data, provider="sandbox") is data
    assert walked == []
    # Anything else is walked: a copy of it, or a body with an escape that
    # may hide a control character.
    check_json_value(json.loads(body), provider="sandbox")
    assert "Маракуя" in walked
    walked.clear()
    load_json('{"tab": "a\\u0009b"}', provider="sandbox")
    assert walked == ["tab", "a\tb"]  # the key and the value
