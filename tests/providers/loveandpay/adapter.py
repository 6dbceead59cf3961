"""How the contract tests drive the Love&Pay emulator (see
:mod:`tests.contracts.flows`): the alias with its keys, both limiters off on
both sides (concurrent callers would wait on them), cancel through the
emulator's call (A-7), amounts in rubles (4.1), no idempotency key (A-11), and
a page with Pay by SBP, Pay by card, Let expire and Cancel."""

from __future__ import annotations

from datetime import timedelta
from typing import TYPE_CHECKING, Any

from django.db.models import QuerySet

from django_payments_ru.emulator.models import EmulatedPayment
from django_payments_ru.providers.loveandpay.emulator import emulator
from tests.contracts.flows import Adapter, Route, nowhere

from .cases import ALIAS, emulator_config, provider_config

if TYPE_CHECKING:
    from django_payments_ru.models import Invoice
    from tests.contracts.flows import ContractCase

UNLIMITED = {"requests_per_minute": None, "requests_per_hour": None}


class LoveAndPayAdapter(Adapter):
    def providers(self) -> dict[str, dict[str, Any]]:
        return {self.alias: provider_config(cancel_via_api=True, **UNLIMITED)}

    def emulators(self, live_url: str) -> dict[str, dict[str, Any]]:
        return {self.slug: emulator_config(**UNLIMITED)}

    def reset(self) -> None:
        emulator.reset()

    def payments(self, invoice: Invoice) -> QuerySet[EmulatedPayment]:
        # Love&Pay knows our invoice by the UUID its description carries (4.1).
        return EmulatedPayment.objects.filter(
            slug=self.slug, description__contains=str(invoice.uuid)
        ).order_by("id")

    def lose_webhooks(self, case: ContractCase) -> None:
        # An invoice takes the account's webhook URLs when it is created (4.9).
        case.set_emulator(webhook_urls=[nowhere(self.alias)])


LOVEANDPAY = LoveAndPayAdapter(
    alias=ALIAS,
    slug="loveandpay",
    routes={
        "start": Route("POST", r"^/emulator/loveandpay/api/v2/invoices$", "create"),
        "cancel": Route(
            "POST", r"^/emulator/loveandpay/api/v2/invoices/[^/]+/cancel$", "cancel"
        ),
    },
    unkeyed=(
        "Love&Pay takes no idempotency key (loveandpay.md 3, A-11): a create "
        "whose answer was lost is found by listing the PENDING invoices "
        "(test_timeout.py)"
    ),
    amount_scale=1,
    actions=("pay", "pay_card", "expire", "cancel"),
    statuses={
        "pending": "PENDING",
        "paid": "PAID",
        "expired": "EXPIRED",
        "cancelled": "CANCELLED",
    },
    events={
        "pay": "invoice.paid",
        "expire": "invoice.expired",
        "cancel": "invoice.cancelled",
    },
    session_lifetime=timedelta(hours=24),  # expiresInHours 24
    lacks={
        "decline": "declined state (loveandpay.md 7: a customer who does not "
        "pay lets the invoice expire or cancels it)",
    },
)
