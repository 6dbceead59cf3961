"""The QuantaPay client without its emulator: the request signature and its
test vectors (quantapay.md §4), prices (A-11), and the transport against a
local HTTP server: the envelope decided by ``success`` (A-1), typed errors,
non-200 and non-JSON answers as transport errors, retries only for reads."""

from __future__ import annotations

import logging
from decimal import Decimal
from typing import Any
from urllib.parse import parse_qs

import pytest

from django_payments_ru.exceptions import ConfigurationError, InvalidCurrency
from django_payments_ru.providers.quantapay import Provider
from django_payments_ru.providers.quantapay.errors import (
    ERRORS,
    InvalidApiKey,
    QuantaPayAPIError,
    TransactionNotFound,
    TransportError,
)
from django_payments_ru.providers.quantapay.provider import (
    format_price,
    sign,
    signature_string,
)
from tests.local_http import LocalServer, exception_texts, record_texts

from .cases import API_KEY, SECRET

# quantapay.md §4: the reference's three vectors, exactly.
VECTORS = [
    (
        "49.99",
        "usd",
        "ORD-12345",
        "7ca38e2d5396c4e760173ab61835503eeaa7b16f73d3bcec80212c113e8d8c2d",
    ),
    (
        "49.99",
        "USD",
        "ORD-12345",
        "374f194e6636a74c1a71f8d6d2ab57b964dd4a2c8368af9ad8efced62c1bb13b",
    ),
    (
        "49.99",
        "usd",
        "",
        "bd1f6fed6fcbd7929c0883c2f38dd5a7c3da313e220c21099b58738f43db5f57",
    ),
]


@pytest.mark.parametrize(("price", "currency", "order_id", "expected"), VECTORS)
def test_the_reference_signature_vectors(price, currency, order_id, expected):
    assert signature_string(price, currency, order_id, 1700000000) == (
        f"{price}|{currency}|{order_id}|1700000000"
    )
    assert sign("your-webhook-secret-key", price, currency, order_id, 1700000000) == (
        expected
    )


@pytest.mark.parametrize(
    ("amount", "currency", "price"),
    [
        ("49.99", "USD", "49.99"),
        ("100", "RUB", "100.00"),
        ("0.5", "EUR", "0.50"),
        ("5000", "JPY", "5000"),
    ],
)
def test_prices_carry_two_decimals_or_none(amount, currency, price):
    #
    assert format_price(Decimal(amount), currency) == price


def test_a_three_decimal_currency_is_refused():
    with pytest.raises(InvalidCurrency):
        format_price(Decimal("1.000"), "KWD")
    assert "KWD" not in Provider.currencies
    assert {"USD", "EUR", "RUB", "JPY"} <= Provider.currencies


def test_options_are_validated():
    with pytest.raises(ConfigurationError, match="webhook_secret"):
        Provider("qp", {"api_key": API_KEY})
    with pytest.raises(ConfigurationError, match="sign_requests"):
        Provider(
            "qp", {"api_key": API_KEY, "webhook_secret": SECRET, "sign_requests": "y"}
        )
    provider = Provider("qp", {"api_key": API_KEY, "webhook_secret": SECRET})
    assert provider.config["api_url"] == "https://cloud.quantapay.app/api.php"
    assert provider.config["sign_requests"] is True
    assert provider.config["requests_per_minute"] == 100
    assert provider.config["previous_webhook_secrets"] == []
    assert API_KEY not in repr(provider) and SECRET not in repr(provider)


def test_every_error_code_has_its_class():
    assert set(ERRORS) == {
        "missing-function-name",
        "function-not-found",
        "api-key-not-found",
        "invalid-api-key",
        "missing-argument",
        "request-expired",
        "invalid-signature",
        "invalid-argument",
        "transaction-not-found",
        "rate-limited",
    }


class Scripted(LocalServer):
    """Answers each call with the next scripted ``(status, body)``."""

    def __init__(self) -> None:
        super().__init__()
        self.script: list[tuple[int, Any]] = []
        self.forms: list[dict[str, list[str]]] = []

    def respond(self, handler: Any, body: bytes) -> None:
        with self._lock:
            self.forms.append(parse_qs(body.decode()))
            status, answer = self.script.pop(0) if self.script else (200, {})
        self.send(handler, status, answer)


@pytest.fixture
def server(monkeypatch):
    # Backoff waits are not slept for real.
    monkeypatch.setattr(Provider, "sleep", staticmethod(lambda seconds: None))
    srv = Scripted()
    srv.start()
    try:
        yield srv
    finally:
        srv.stop()


def provider_at(server: Scripted, **options: Any) -> Provider:
    provider = Provider(
        "qp",
        {
            "api_key": API_KEY,
            "webhook_secret": SECRET,
            "api_url": f"{server.root}/api.php",
            "requests_per_minute": None,
            **options,
        },
    )
    return provider


def test_a_call_is_one_form_post_with_function_and_api_key(server):
    server.script = [
        (200, {"success": True, "response": {"btc": {"amount": "1", "fiat": "2"}}})
    ]
    provider = provider_at(server)
    assert provider.call("get-balances") == {"btc": {"amount": "1", "fiat": "2"}}
    [form] = server.forms
    assert form == {"function": ["get-balances"], "api-key": [API_KEY]}


def test_the_envelope_decides_whatever_the_status_is_not(server):
    # an error envelope with HTTP 200 is an error; its code is typed.
    server.script = [
        (
            200,
            {
                "success": False,
                "error_code": "transaction-not-found",
                "message": "Gone",
            },
        )
    ]
    with pytest.raises(TransactionNotFound) as caught:
        provider_at(server).get_transaction("7")
    assert caught.value.code == "transaction-not-found"
    assert caught.value.provider_message == "Gone"
    assert isinstance(caught.value, QuantaPayAPIError)


def test_an_unknown_code_is_the_base_error(server):
    server.script = [
        (200, {"success": False, "error_code": "new-thing", "message": "?"})
    ]
    with pytest.raises(QuantaPayAPIError) as caught:
        provider_at(server).call("get-balances")
    assert type(caught.value) is QuantaPayAPIError
    assert caught.value.code == "new-thing"


@pytest.mark.parametrize(
    ("status", "body"),
    [
        (200, "<html>maintenance</html>"),
        (200, {"response": 1}),
        (200, [1, 2]),
        (201, {"success": True, "response": 1}),
        (400, {"success": False, "error_code": "invalid-api-key", "message": "x"}),
        (502, "bad gateway"),
    ],
    ids=["not-json", "no-success", "a-list", "201", "400", "502"],
)
def test_an_answer_that_is_not_the_envelope_is_a_transport_error(server, status, body):
    server.script = [(status, body)] * 5
    with pytest.raises(TransportError):
        provider_at(server, requests_per_minute=None).call("get-credit-balance")


def test_reads_are_retried_and_writes_are_not(server):
    server.script = [(503, "busy"), (200, {"success": True, "response": []})]
    provider = provider_at(server)
    assert provider.get_transactions(search="x") == []
    assert len(server.forms) == 2

    server.forms.clear()
    server.script = [(503, "busy"), (200, {"success": True, "response": {}})]
    with pytest.raises(TransportError):
        provider.call("create-checkout-session", read=False, price="1.00")
    assert len(server.forms) == 1


def test_decimals_never_floats(server):
    server.script = [
        (
            200,
            {
                "success": True,
                "response": {"credit_balance": 150.10, "credit_currency": "usd"},
            },
        ),
        (200, {"success": True, "response": "64850.25"}),
    ]
    provider = provider_at(server)
    credit, currency = provider.get_credit_balance()
    assert (credit, currency) == (Decimal("150.10"), "USD")
    assert isinstance(credit, Decimal)
    assert provider.get_exchange_rate("usd", "BTC") == Decimal("64850.25")
    assert server.forms[1]["currency_code"] == ["USD"]
    assert server.forms[1]["cryptocurrency_code"] == ["btc"]


def test_the_api_key_never_shows_in_errors_or_logs(server, caplog):
    echo = {
        "success": False,
        "error_code": "invalid-api-key",
        "message": f"bad {API_KEY}",
    }
    server.script = [(200, echo), (500, f"oops {API_KEY}")] + [
        (500, f"oops {API_KEY}")
    ] * 4
    provider = provider_at(server)
    caplog.set_level(logging.DEBUG)
    errors = []
    for _ in range(2):
        with pytest.raises(Exception) as caught:
            provider.call("get-balances")
        errors.append(caught.value)
    assert isinstance(errors[0], InvalidApiKey)
    assert isinstance(errors[1], TransportError)
    texts = [t for e in errors for t in exception_texts(e)]
    texts += [t for r in caplog.records for t in record_texts(r)]
    assert texts
    assert not [t for t in texts if API_KEY in t or SECRET in t]
    # A refused key is a health problem for the admin and the checks.
    assert provider.health() and "api_key" in provider.health()[0]


def test_the_limiter_is_shared_per_api_key(settings):
    settings.CACHES = {
        "default": {
            "BACKEND": "django.core.cache.backends.locmem.LocMemCache",
            "LOCATION": "qp-limiter",
        }
    }
    options = {"api_key": API_KEY, "webhook_secret": SECRET}
    one, two = Provider("a", options), Provider("b", options)
    other = Provider("c", {**options, "api_key": "another"})
    assert one.limiter.key == two.limiter.key != other.limiter.key
    assert one.limiter.limit == 100 and one.limiter.period == 60
    assert Provider("d", {**options, "requests_per_minute": None}).limiter is None
