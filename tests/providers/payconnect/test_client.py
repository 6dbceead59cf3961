"""The PayConnect client's calls against the emulator over HTTP: the token
cache, idempotent retries, rate limits, errors, checks before sending."""

from __future__ import annotations

import logging
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any

import pytest

from django_payments_ru.emulator import clock
from django_payments_ru.emulator.models import EmulatedPayment
from django_payments_ru.exceptions import (
    InvalidAmount,
    InvalidInput,
    ProviderAPIError,
    ProviderAuthError,
    ProviderRateLimited,
    ProviderUnavailable,
)
from django_payments_ru.models import Invoice
from django_payments_ru.providers.payconnect import Provider
from django_payments_ru.providers.payconnect.emulator import emulator
from django_payments_ru.status import InvoiceStatus
from tests.emulator_cases import wait_for

from .cases import SECRET, PayConnectCase


class FakeTime:
    """One clock for both sides; the client's waits move it forward."""

    def __init__(self) -> None:
        self.now = clock.now()
        self.sleeps: list[float] = []

    def emulator_now(self) -> datetime:
        return self.now

    def timestamp(self) -> float:
        return self.now.timestamp()

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += timedelta(seconds=seconds)

    def advance(self, **kwargs: float) -> None:
        self.now += timedelta(**kwargs)


@pytest.fixture
def fake_time(monkeypatch: pytest.MonkeyPatch) -> FakeTime:
    fake = FakeTime()
    monkeypatch.setattr(clock, "now", fake.emulator_now)
    monkeypatch.setattr(Provider, "clock", staticmethod(fake.timestamp))
    monkeypatch.setattr(Provider, "sleep", staticmethod(fake.sleep))
    return fake


def body(n: int = 0) -> dict[str, Any]:
    return {
        "amount": 1000 + n,
        "currency": "RUB",
        "customer": {"email": "customer@example.com"},
        "metadata": {"n": str(n)},
    }


class TestTokens(PayConnectCase):
    # Fast enough for a thousand creates: no limit on either side.
    provider_options = {"requests_per_minute": None}
    emulator_options = {"requests_per_minute": None}

    def test_a_thousand_payments_use_one_token(self):
        provider = self.provider
        started = time.monotonic()
        # Four workers of the shop, sharing the cached token.
        with ThreadPoolExecutor(4) as pool:
            ids = set(
                pool.map(
                    lambda n: provider.call("POST", "payments", json=body(n))["id"],
                    range(1000),
                )
            )
        elapsed = time.monotonic() - started

        assert len(ids) == 1000
        assert EmulatedPayment.objects.filter(slug="payconnect").count() == 1000
        assert len(emulator.calls("token")) == 1
        assert len(emulator.calls("create")) == 1000
        print(f"1000 creates over HTTP in {elapsed:.1f} s")

    def test_a_token_expiring_mid_run_is_refreshed_once(self, fake_time):
        provider = self.provider
        for n in range(5):
            provider.call("POST", "payments", json=body(n))
        fake_time.advance(hours=24, seconds=-30)  # inside the refresh margin
        for n in range(5):
            provider.call("POST", "payments", json=body(n))
        assert len(emulator.calls("token")) == 2
        assert len(emulator.calls("create")) == 10

    def test_a_token_the_api_calls_expired_is_replaced_once(
        self, fake_time, monkeypatch
    ):
        provider = self.provider
        provider.call("GET", "payments")
        # Only the provider's clock moves: to us the token is still fresh.
        fake_time.advance(hours=25)
        monkeypatch.setattr(
            Provider,
            "clock",
            staticmethod(lambda: fake_time.timestamp() - 25 * 3600),
        )

        provider.call("GET", "payments")
        provider.call("GET", "payments")

        assert len(emulator.calls("token")) == 2
        assert [c.endpoint for c in emulator.calls()] == [
            "token",
            "list",
            "list",  # 401 token_expired
            "token",
            "list",
            "list",
        ]

    def test_eight_threads_make_one_token_request(self):
        # The token answer takes a while, so every thread asks while it is out.
        self.set_emulator(faults={"token": {"delay": 0.3, "status": None}})
        provider = self.provider
        barrier = threading.Barrier(8)
        tokens: list[str] = []
        errors: list[BaseException] = []

        def ask() -> None:
            try:
                barrier.wait()
                tokens.append(provider.tokens.get())
            except BaseException as exc:  # reported below
                errors.append(exc)

        threads = [threading.Thread(target=ask) for _ in range(8)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(30)

        assert errors == []
        assert len(tokens) == 8 and len(set(tokens)) == 1
        assert len(emulator.calls("token")) == 1

    def test_a_token_rejected_twice_is_a_clear_error(self, monkeypatch):
        monkeypatch.setattr(emulator, "read_token", lambda token: None)
        with pytest.raises(ProviderAuthError) as caught:
            self.provider.call("GET", "payments")
        assert "freshly issued token" in str(caught.value)
        assert (caught.value.status, caught.value.code) == (401, "invalid_token")
        assert len(emulator.calls("token")) == 2
        assert len(emulator.calls("list")) == 2

    def test_a_missing_scope_is_not_cured_by_a_new_token(self):
        self.set_provider_options(scope="payments.read")
        invoice = self.create_invoice()
        with pytest.raises(ProviderAuthError) as caught:
            self.start(invoice)
        assert (caught.value.status, caught.value.code) == (403, "insufficient_scope")
        assert len(emulator.calls("token")) == 1
        assert len(emulator.calls("create")) == 1

    def test_a_wrong_secret_key_is_refused_at_the_token(self, caplog):
        caplog.set_level(logging.DEBUG)
        self.set_provider_options(secret_key="sk_test_wrong_canary")
        with pytest.raises(ProviderAuthError) as caught:
            self.provider.call("GET", "payments")
        assert (caught.value.status, caught.value.code) == (401, "invalid_api_key")
        assert caught.value.details["docs_url"] == (
            "https://docs.payconnect.com/errors#invalid_api_key"
        )
        assert "sk_test_wrong_canary" not in str(caught.value)
        assert "sk_test_wrong_canary" not in caplog.text

    def test_no_secret_or_token_reaches_logs_or_errors(self, caplog):
        caplog.set_level(logging.DEBUG)
        invoice = self.create_invoice()
        self.start(invoice)
        with pytest.raises(ProviderAPIError) as caught:
            self.provider.call("GET", "payments/pay_unknown")
        token = self.provider.tokens.get()
        text = caplog.text + str(caught.value) + repr(self.provider)
        assert SECRET not in text
        assert token not in text
        assert caught.value.code == "resource_not_found"


class TestRetries(PayConnectCase):
    provider_options = {"requests_per_minute": None}

    def test_a_create_that_times_out_is_retried_with_the_same_key(
        self, settings, monkeypatch
    ):
        monkeypatch.setattr(Provider, "sleep", staticmethod(lambda s: None))
        config = dict(settings.PAYMENTS_RU, HTTP_TIMEOUT=(5.0, 0.5))
        settings.PAYMENTS_RU = config
        # The first create is answered too late: the client has given up on it.
        self.set_emulator(faults={"create": {"delay": 1.5, "status": None, "times": 1}})
        invoice = self.create_invoice()

        checkout = self.start(invoice)

        calls = wait_for(lambda: len(emulator.calls("create")) == 2 or None)
        assert calls
        keys = {c.idempotency_key for c in emulator.calls("create")}
        # The key of the services' claim on the start, sent with both tries.
        [claim] = invoice.operations.filter(kind="start")
        assert keys == {claim.key}
        time.sleep(1.5)  # the first, slow attempt finishes: it finds the key
        assert [p.external_id for p in EmulatedPayment.objects.all()] == [
            checkout.payment_id
        ]

    def test_429_with_retry_after_waits_as_told(self, fake_time):
        self.set_emulator(requests_per_minute=3)
        provider = self.provider
        provider.call("GET", "payments")  # token + list: 2 of 3
        provider.call("GET", "payments")  # 3 of 3
        fake_time.advance(seconds=45)

        data = provider.call("GET", "payments")  # 429, Retry-After: 15

        assert data["object"] == "list"
        assert fake_time.sleeps == [15.0]
        assert [c.endpoint for c in emulator.calls()] == ["token"] + ["list"] * 4

    def test_a_retry_after_too_long_fails_clearly_without_waiting(self, fake_time):
        self.set_emulator(requests_per_minute=2)
        provider = self.provider
        provider.call("GET", "payments")
        with pytest.raises(ProviderRateLimited) as caught:
            provider.call("GET", "payments")
        assert caught.value.retry_after == 60
        assert fake_time.sleeps == []

    def test_500_then_success_is_retried_within_the_bound(self, fake_time):
        self.set_emulator(faults={"create": {"status": 500, "times": 1}})
        invoice = self.create_invoice()

        checkout = self.start(invoice)

        assert checkout.payment_id
        creates = emulator.calls("create")
        assert len(creates) == 2
        assert len({c.idempotency_key for c in creates}) == 1
        assert EmulatedPayment.objects.count() == 1
        # urllib3 retries the first failure at once, later ones after a backoff.
        assert all(s <= 10.0 for s in fake_time.sleeps)

    def test_500_every_time_gives_up_after_the_retries(self, fake_time, settings):
        self.set_emulator(faults={"create": {"status": 500}})
        invoice = self.create_invoice()
        with pytest.raises(ProviderUnavailable) as caught:
            self.start(invoice)
        assert (caught.value.status, caught.value.code) == (500, "internal_error")
        retries = settings.PAYMENTS_RU.get("HTTP_RETRIES", 3)
        assert len(emulator.calls("create")) == 1 + retries
        assert all(s <= 10.0 for s in fake_time.sleeps)

    def test_400_is_not_retried_and_carries_every_field(self, fake_time):
        self.set_emulator(currencies=["USD"])
        invoice = self.create_invoice()
        with pytest.raises(ProviderAPIError) as caught:
            self.start(invoice)
        error = caught.value
        assert type(error) is ProviderAPIError
        assert (error.status, error.code) == (400, "unsupported_currency")
        assert error.provider_message == "currency must be one of USD."
        assert error.details["docs_url"] == (
            "https://docs.payconnect.com/errors#unsupported_currency"
        )
        assert error.details["param"] == "currency"
        assert len(emulator.calls("create")) == 1
        assert fake_time.sleeps == []
        invoice.refresh_from_db()
        assert invoice.status == InvoiceStatus.CREATED


class TestChecksBeforeSending(PayConnectCase):
    def test_no_email_is_refused_before_anything_is_sent(self):
        with pytest.raises(InvalidInput) as caught:
            self.create_invoice(customer_email="")
        assert caught.value.field == "customer_email"
        assert "e-mail" in str(caught.value)
        invoice = Invoice.objects.create(provider=self.alias, amount=Decimal("10"))
        with pytest.raises(InvalidInput):
            self.start(invoice)
        assert emulator.calls() == []

    def test_the_200000_rub_limit_is_checked_before_sending(self):
        with pytest.raises(InvalidInput) as caught:
            self.create_invoice(amount="200000.01")
        assert "at most 200000 RUB" in str(caught.value)
        assert caught.value.field == "amount"
        invoice = self.create_invoice(amount="200000.00")
        self.start(invoice)  # the limit itself is fine
        big = Invoice.objects.create(
            provider=self.alias,
            amount=Decimal("250000"),
            customer_email="customer@example.com",
        )
        with pytest.raises(InvalidInput, match="at most 200000 RUB"):
            self.start(big)
        assert len(emulator.calls("create")) == 1

    def test_an_amount_that_is_not_whole_kopecks_is_refused(self):
        invoice = Invoice.objects.create(
            provider=self.alias,
            amount=Decimal("10.005"),
            customer_email="customer@example.com",
        )
        with pytest.raises(InvalidAmount):
            self.start(invoice)
        assert emulator.calls() == []
