"""A create that times out never yields two invoices (A-11): POST /invoices
carries no idempotency key, so it is never retried blindly; the client lists
the PENDING invoices and matches our UUID in the description first."""

from __future__ import annotations

import copy

import pytest

from django_payments_ru import services
from django_payments_ru.emulator.models import EmulatedPayment
from django_payments_ru.exceptions import ProviderUnavailable
from django_payments_ru.models import Invoice
from django_payments_ru.providers.loveandpay.emulator import emulator
from tests.emulator_cases import wait_for

from .cases import LoveAndPayCase


class TestCreateTimeout(LoveAndPayCase):
    def short_timeouts(self) -> None:
        config = copy.deepcopy(self._settings.PAYMENTS_RU)
        config.update(HTTP_TIMEOUT=(5.0, 0.5), HTTP_RETRIES=2)
        self._settings.PAYMENTS_RU = config

    def test_a_create_answered_too_late_is_found_by_the_list(self):
        self.short_timeouts()
        # The invoice is created, then the answer takes 1.5 s: lost to us.
        self.set_emulator(
            faults={"create": {"delay": 1.5, "status": None, "after": True, "times": 1}}
        )
        invoice = self.create_invoice()

        checkout = services.start_payment(invoice)

        assert len(emulator.calls("create")) == 1  # never re-sent
        assert len(emulator.calls("list")) == 1
        [emulated] = EmulatedPayment.objects.filter(slug="loveandpay")
        assert checkout.payment_id == emulated.external_id
        assert Invoice.objects.count() == 1
        invoice.refresh_from_db()
        assert invoice.provider_payment_id == emulated.external_id
        assert invoice.status == "pending"

    def test_a_create_still_running_is_found_by_the_next_start(self):
        self.short_timeouts()
        # The emulator waits before creating: the list right after the
        # timeout finds nothing, and the start fails without a second create.
        self.set_emulator(faults={"create": {"delay": 1.5, "status": None, "times": 1}})
        invoice = self.create_invoice()
        with pytest.raises(ProviderUnavailable):
            services.start_payment(invoice)
        assert len(emulator.calls("create")) == 1
        assert wait_for(lambda: EmulatedPayment.objects.count() == 1)

        checkout = services.start_payment(invoice)

        assert len(emulator.calls("create")) == 1
        [emulated] = EmulatedPayment.objects.filter(slug="loveandpay")
        assert checkout.payment_id == emulated.external_id
        assert Invoice.objects.count() == 1
        [claim] = invoice.operations.filter(kind="start")
        assert (claim.state, claim.attempts) == ("confirmed", 2)
