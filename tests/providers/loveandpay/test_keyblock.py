"""Key blocking end to end through the emulator (seed, loveandpay.md 2.1): a
burst (or repeated failed authentications) makes the emulator block the key;
the client remembers it in the shared cache, so no process calls Love&Pay any
more (counted at the emulator); the error, the admin and ``manage.py check``
name both recovery steps; re-index at the emulator plus the admin's "the key
was re-indexed" (one probe call) clears it."""

from __future__ import annotations

from typing import Any

import pytest
import requests
from django.core.checks import run_checks
from django.urls import reverse

from django_payments_ru import services
from django_payments_ru.emulator.models import EmulatedPayment
from django_payments_ru.providers.loveandpay import Provider
from django_payments_ru.providers.loveandpay.emulator import emulator
from django_payments_ru.providers.loveandpay.errors import ApiBlocked, InvalidSignature

from .cases import API_KEY, LoveAndPayCase

UNLIMITED = {"requests_per_minute": None, "requests_per_hour": None}


def assert_recovery_steps(text: str) -> None:
    assert "support chat on loveandpay.io" in text
    assert "Переиндексировать" in text


class TestKeyBlocking(LoveAndPayCase):
    provider_options = UNLIMITED
    emulator_options = {**UNLIMITED, "anomaly_requests": [5, 60]}

    def other_process(self) -> Provider:
        """A provider built from the same settings, as another worker would:
        nothing in common with ours but the Django cache."""
        options = self._settings.PAYMENTS_RU["PROVIDERS"][self.alias]["OPTIONS"]
        return Provider(self.alias, options)

    def burst(self) -> ApiBlocked:
        provider = self.provider
        for _ in range(5):
            provider.probe()
        with pytest.raises(ApiBlocked) as caught:
            provider.probe()
        return caught.value

    def test_a_burst_blocks_the_key_and_every_process_stops(self):
        blocked = self.burst()

        assert blocked.status == 403 and blocked.request_id.startswith("req_")
        assert_recovery_steps(str(blocked))
        assert emulator.is_blocked(API_KEY)
        sent = len(emulator.calls())
        assert sent == 6
        for worker in (self.provider, self.other_process(), self.other_process()):
            with pytest.raises(ApiBlocked) as again:
                worker.get_invoice("x")
            assert_recovery_steps(str(again.value))
        invoice = self.create_invoice()
        with pytest.raises(ApiBlocked):
            services.start_payment(invoice)
        assert len(emulator.calls()) == sent  # nothing more reached Love&Pay
        assert EmulatedPayment.objects.count() == 0

    def test_manage_py_check_warns(self):
        self.burst()
        warnings = [m for m in run_checks() if m.id == "payments_ru.W004"]
        assert len(warnings) == 1
        assert self.alias in warnings[0].msg
        assert_recovery_steps(warnings[0].msg)

    def test_reindex_and_the_admin_action_clear_it(self, admin_client: Any):
        self.burst()
        url = reverse(
            "admin:django_payments_ru_invoice_provider_view",
            args=[self.alias, "api-key"],
        )
        page = admin_client.get(url)
        assert page.status_code == 200
        assert_recovery_steps(page.content.decode())
        assert 'data-blocked="yes"' in page.content.decode()
        listing = admin_client.get(
            reverse("admin:django_payments_ru_invoice_changelist")
        )
        assert_recovery_steps(listing.content.decode())

        # Pressed too early: the probe is refused, the block stays.
        calls = len(emulator.calls())
        admin_client.post(url)
        assert len(emulator.calls()) == calls + 1
        assert self.provider.health()

        # Support unblocked it and the merchant pressed "Переиндексировать".
        done = requests.post(
            self.emulator_url("_control/reindex"), json={"apiKey": API_KEY}, timeout=30
        )
        assert done.json() == {"success": True, "wasBlocked": True}
        assert self.other_process().health()  # still remembered until confirmed
        answer = admin_client.post(url, follow=True)

        assert answer.status_code == 200
        text = answer.content.decode()
        assert 'data-blocked="no"' in text, text[text.find("content-main") :][:3000]
        assert len(emulator.calls()) == calls + 2  # one probe
        assert self.provider.health() == []
        assert self.other_process().health() == []
        assert [m for m in run_checks() if m.id == "payments_ru.W004"] == []
        self.provider.probe()  # works again


class TestFailedAuthentications(LoveAndPayCase):
    provider_options = {**UNLIMITED, "secret_key": "sk_test_wrong_secret"}
    emulator_options = {**UNLIMITED, "anomaly_failed_auth": [3, 300]}

    def test_repeated_failed_authentications_block_the_key(self):
        provider = self.provider
        for _ in range(4):
            with pytest.raises(InvalidSignature):
                provider.probe()
        assert emulator.is_blocked(API_KEY)
        self.set_provider_options(secret_key=self.emulator_secret())
        with pytest.raises(ApiBlocked):
            self.provider.probe()
        assert self.provider.health()

    def emulator_secret(self) -> str:
        return emulator.config["api_keys"][API_KEY]
