"""Client etiquette (the seed, loveandpay.md 9, A-11, A-12): both limits of
section 9 through the shared limiter, reads retried after Retry-After, the
create never retried."""

from __future__ import annotations

import copy
import time
from typing import Any

import pytest

from django_payments_ru import services
from django_payments_ru.exceptions import ProviderRateLimited, ProviderUnavailable
from django_payments_ru.providers.loveandpay import Provider
from django_payments_ru.providers.loveandpay.emulator import emulator

from .cases import LoveAndPayCase


class FakeTime:
    def __init__(self) -> None:
        self.now = time.time()
        self.slept: list[float] = []

    def time(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        self.now += seconds


@pytest.fixture
def fake(monkeypatch: Any) -> FakeTime:
    clock = FakeTime()
    monkeypatch.setattr(Provider, "clock", staticmethod(clock.time))
    monkeypatch.setattr(Provider, "sleep", staticmethod(clock.sleep))
    return clock


class TestBothLimits(LoveAndPayCase):
    provider_options = {"requests_per_minute": 2, "requests_per_hour": 3}

    @pytest.fixture(autouse=True)
    def _patient(self, _loveandpay: None) -> None:
        # A caller may wait up to 2 minutes for the budget (the default, 30 s,
        # would refuse the minute's wait at once).
        config = copy.deepcopy(self._settings.PAYMENTS_RU)
        config["HTTP_MAX_RETRY_AFTER"] = 120.0
        self._settings.PAYMENTS_RU = config

    def test_the_minute_then_the_hour(self, fake):
        provider = self.provider
        provider.probe()
        provider.probe()
        assert fake.slept == []

        provider.probe()  # the minute is full: waits for its oldest call

        assert fake.slept == [pytest.approx(60.0)]
        with pytest.raises(ProviderRateLimited) as caught:
            provider.probe()  # the hour is full: far longer than one may wait
        assert caught.value.retry_after > 3000
        assert len(emulator.calls("list")) == 3

    def test_every_process_shares_the_budget(self, fake):
        options = self._settings.PAYMENTS_RU["PROVIDERS"][self.alias]["OPTIONS"]
        Provider(self.alias, options).probe()
        Provider(self.alias, options).probe()
        Provider(self.alias, options).probe()
        assert fake.slept == [pytest.approx(60.0)]


class TestRetries(LoveAndPayCase):
    def test_a_read_waits_for_retry_after(self, fake):
        self.set_emulator(
            faults={"list": {"status": 429, "retry_after": 2, "times": 1}}
        )

        self.provider.probe()

        assert fake.slept == [2.0]
        assert len(emulator.calls("list")) == 2

    def test_a_read_backs_off_on_5xx(self, fake):
        self.set_emulator(faults={"list": {"status": 503, "times": 2}})

        self.provider.probe()

        assert fake.slept  # urllib3's backoff: none before the first retry
        assert len(emulator.calls("list")) == 3

    def test_the_create_is_never_retried(self, fake):
        self.set_emulator(faults={"create": {"status": 503, "times": 5}})
        invoice = self.create_invoice()

        with pytest.raises(ProviderUnavailable):
            services.start_payment(invoice)

        assert len(emulator.calls("create")) == 1
        # It looked for the invoice instead: nothing was there.
        assert len(emulator.calls("list")) == 1
