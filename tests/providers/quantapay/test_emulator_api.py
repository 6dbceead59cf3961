"""The emulator's ``api.php`` (quantapay.md §13) and the client against it over
HTTP: every error code of A-1/A-2 raised as its typed error from the
emulator's real answer, the check order of A-2, the ±5-minute signature window
(§4), the rate limit of A-10, balances and rates (§5.3)."""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal

import pytest
import requests

from django_payments_ru.emulator import clock
from django_payments_ru.exceptions import ProviderAuthError, ProviderRateLimited
from django_payments_ru.providers.quantapay import Provider
from django_payments_ru.providers.quantapay.emulator import emulator
from django_payments_ru.providers.quantapay.errors import (
    ApiKeyNotFound,
    FunctionNotFound,
    InvalidApiKey,
    InvalidArgument,
    InvalidSignature,
    MissingArgument,
    MissingFunctionName,
    RateLimited,
    RequestExpired,
    TransactionNotFound,
)
from django_payments_ru.providers.quantapay.provider import sign

from .cases import API_KEY, SECRET, QuantaPayCase


class TestEnvelopeAndErrors(QuantaPayCase):
    def signed(self, timestamp: int, **form: str) -> dict[str, str]:
        values = {"price": "49.99", "currency": "usd", "order_id": "ORD-1", **form}
        values["timestamp"] = str(timestamp)
        values["signature"] = sign(
            SECRET, values["price"], values["currency"], values["order_id"], timestamp
        )
        return values

    def test_every_answer_is_http_200_with_the_envelope(self):
        answers = [
            self.post_api(),
            self.post_api(**{"api-key": "nope", "function": "get-balances"}),
            self.post_api(**{"api-key": API_KEY, "function": "get-balances"}),
        ]
        assert [a["success"] for a in answers] == [False, False, True]
        assert set(answers[0]) == {"success", "error_code", "message"}
        assert set(answers[2]) == {"success", "response"}

    @pytest.mark.parametrize(
        ("form", "code"),
        [
            # A-2 step 1: the key before anything else.
            ({}, "api-key-not-found"),
            ({"function": "nope"}, "api-key-not-found"),
            ({"api-key": "wrong"}, "invalid-api-key"),
            ({"api-key": "wrong", "function": "nope"}, "invalid-api-key"),
            # Step 2: the function.
            ({"api-key": API_KEY}, "missing-function-name"),
            ({"api-key": API_KEY, "function": "nope"}, "function-not-found"),
            # Step 3: the arguments, before the signature.
            (
                {
                    "api-key": API_KEY,
                    "function": "create-checkout-session",
                    "currency": "usd",
                    "signature": "00",
                    "timestamp": "1",
                },
                "missing-argument",
            ),
        ],
    )
    def test_the_check_order_of_a2(self, form, code):
        answer = self.post_api(**form)
        assert (answer["success"], answer["error_code"]) == (False, code)

    def test_missing_argument_names_it(self):
        answer = self.post_api(**{"api-key": API_KEY, "function": "get-transaction"})
        assert answer["error_code"] == "missing-argument"
        assert "transaction_id" in answer["message"]

    def test_every_code_is_its_typed_error_through_the_client(self):
        provider = self.provider
        other_key = Provider(
            "qp-x",
            {**provider.config, "api_key": "wrong-key"},  # type: ignore[arg-type]
        )
        no_key = Provider("qp-y", {**provider.config, "api_key": ""})
        now = clock.timestamp()
        cases = [
            (lambda: no_key.call("get-balances"), ApiKeyNotFound),
            (lambda: other_key.call("get-balances"), InvalidApiKey),
            (lambda: provider.call(""), MissingFunctionName),
            (lambda: provider.call("refund"), FunctionNotFound),
            (lambda: provider.call("get-transaction"), MissingArgument),
            (
                lambda: provider.call(
                    "create-checkout-session", read=False, **self.signed(now - 301)
                ),
                RequestExpired,
            ),
            (
                lambda: provider.call(
                    "create-checkout-session",
                    read=False,
                    **{**self.signed(now), "price": "49.98"},
                ),
                InvalidSignature,
            ),
            (
                lambda: provider.call(
                    "create-checkout-session", read=False, price="-1", currency="usd"
                ),
                InvalidArgument,
            ),
            (lambda: provider.get_transaction("999999"), TransactionNotFound),
        ]
        for call, cls in cases:
            with pytest.raises(cls) as caught:
                call()
            error = caught.value
            assert error.code == cls.default_code, cls
            assert error.provider_message, cls
            assert API_KEY not in str(error) and SECRET not in str(error)
        assert issubclass(InvalidApiKey, ProviderAuthError)
        assert issubclass(RateLimited, ProviderRateLimited)

    def test_the_documented_expiry_text(self, monkeypatch):
        base = clock.now().replace(microsecond=0)
        monkeypatch.setattr(clock, "now", lambda: base)
        answer = self.post_api(
            **{
                "api-key": API_KEY,
                "function": "create-checkout-session",
                **self.signed(int(base.timestamp()) + 301),
            }
        )
        assert answer == {
            "success": False,
            "error_code": "request-expired",
            "message": "Request expired",
        }

    @pytest.mark.parametrize("offset", [-301, 301])
    def test_a_timestamp_301_s_off_is_refused(self, offset, monkeypatch):
        # The emulator's clock stands still: a second passing between signing
        # and checking (a slow machine) cannot turn 301 s into 300.
        base = clock.now().replace(microsecond=0)
        monkeypatch.setattr(clock, "now", lambda: base)
        with pytest.raises(RequestExpired):
            self.provider.call(
                "create-checkout-session",
                read=False,
                **self.signed(int(base.timestamp()) + offset),
            )
        assert emulator.calls("create-checkout-session")

    @pytest.mark.parametrize("offset", [-300, 0, 300])
    def test_a_timestamp_within_300_s_is_taken(self, offset, monkeypatch):
        base = clock.now().replace(microsecond=0)
        monkeypatch.setattr(clock, "now", lambda: base)
        stamp = int(base.timestamp()) + offset
        session = self.provider.call(
            "create-checkout-session", read=False, **self.signed(stamp)
        )
        assert session["checkout_id"].startswith("cs-cs_")
        assert len(session["checkout_id"]) == len("cs-cs_") + 20
        assert session["payment_url"].endswith(
            f"/emulator/quantapay/pay.php?checkout_id={session['checkout_id']}"
        )
        assert (session["price"], session["currency"]) == ("49.99", "usd")
        assert session["external_reference"] == "ORD-1"

    def test_the_signature_covers_the_values_exactly_as_sent(self):
        # "USD" signed is not "usd" signed.
        form = self.signed(clock.timestamp())
        form["currency"] = "USD"
        with pytest.raises(InvalidSignature):
            self.provider.call("create-checkout-session", read=False, **form)
        form = self.signed(clock.timestamp(), currency="USD")
        assert self.provider.call("create-checkout-session", read=False, **form)

    def test_the_client_never_sends_a_timestamp_outside_the_window(self, monkeypatch):
        invoice = self.create_invoice(currency="USD", amount="49.99")
        self.start(invoice)
        [call] = emulator.calls("create-checkout-session")
        sent = int(call.form["timestamp"])
        assert abs(sent - int(call.at.timestamp())) <= 5
        assert call.form["signature"] == sign(
            SECRET, "49.99", "usd", str(invoice.uuid), sent
        )
        # The emulator's clock 301 s ahead of ours: the client's own stamp is
        # refused; it does not invent another.
        later = clock.now() + timedelta(seconds=301)
        monkeypatch.setattr(clock, "now", lambda: later)
        with pytest.raises(RequestExpired):
            self.start(self.create_invoice(currency="USD"))

    def test_balances_and_rates_are_decimals(self):
        provider = self.provider
        balances = provider.get_balances()
        assert balances == {
            "btc": {"amount": Decimal("0.5432"), "fiat": Decimal("35210.50")},
            "eth": {"amount": Decimal("2.1000"), "fiat": Decimal("6552.84")},
        }
        credit = provider.get_credit_balance()
        assert credit == (Decimal("150.00"), "USD")
        assert str(credit[0]) == "150.00"
        assert provider.get_exchange_rate("USD", "btc") == Decimal("64850.25")
        assert provider.get_exchange_rate("EUR", "btc") == Decimal("59662.23")
        assert provider.get_fiat_value(Decimal("0.5"), "btc", "USD") == Decimal(
            "32425.12"
        )
        with pytest.raises(InvalidArgument):
            provider.get_exchange_rate("USD", "nocoin")
        with pytest.raises(MissingArgument):
            provider.call("get-fiat-value", amount="1", currency_code="USD")

    def test_a_low_credit_balance_is_a_health_problem(self):
        assert self.provider.health() == []
        self.set_emulator(credit_balance="3.50")
        assert self.provider.get_credit_balance() == (Decimal("3.50"), "USD")
        [problem] = self.provider.health()
        assert "3.50" in problem
        self.set_emulator(credit_balance="80")
        self.provider.get_credit_balance()
        assert self.provider.health() == []


class TestRateLimit(QuantaPayCase):
    emulator_options = {"requests_per_minute": 3}

    def test_above_the_limit_per_api_key_is_rate_limited_with_http_200(self):
        form = {"api-key": API_KEY, "function": "get-balances"}
        assert [self.post_api(**form)["success"] for _ in range(3)] == [True] * 3
        response = requests.post(self.api_url, data=form, timeout=30)
        assert response.status_code == 200
        assert response.json() == {
            "success": False,
            "error_code": "rate-limited",
            "message": "Too many requests",
        }
        with pytest.raises(RateLimited):
            self.provider.get_balances()

    def test_the_client_stays_under_it(self, monkeypatch):
        # Our budget equals the emulator's; the fourth call waits a minute (on
        # both injected clocks) instead of being throttled.
        self.set_provider_options(requests_per_minute=3)
        self._settings.PAYMENTS_RU = {
            **self._settings.PAYMENTS_RU,
            "HTTP_MAX_RETRY_AFTER": 120,
        }
        start = clock.now()
        now = [start.timestamp()]
        waits: list[float] = []

        def sleep(seconds: float) -> None:
            waits.append(seconds)
            now[0] += seconds

        provider_class = type(self.provider)
        monkeypatch.setattr(provider_class, "clock", staticmethod(lambda: now[0]))
        monkeypatch.setattr(provider_class, "sleep", staticmethod(sleep))
        monkeypatch.setattr(
            clock, "now", lambda: start + timedelta(seconds=now[0] - start.timestamp())
        )
        self.set_emulator(requests_per_minute=3)
        provider = self.provider
        for _ in range(4):
            provider.get_balances()
        assert waits and 59 <= sum(waits) <= 60
