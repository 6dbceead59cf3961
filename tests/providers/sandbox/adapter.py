"""How the contract tests drive the sandbox's emulator (see
:mod:`tests.contracts.flows`): the alias is in tests/settings.py; creates,
refunds and cancels carry the claim's key; the pay page can let a payment
expire, and an unpaid one expires 30 minutes after the start."""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import timedelta
from decimal import Decimal
from typing import TYPE_CHECKING

from django_payments_ru.emulator.models import WebhookDelivery
from tests.contracts.flows import Adapter, Route
from tests.settings import SANDBOX_WEBHOOK_SECRET

if TYPE_CHECKING:
    from tests.contracts.flows import ContractCase

#: A secret the shop does not know: the emulator's webhooks are refused.
OTHER_SECRET = "whsec_someone_else"


class SandboxAdapter(Adapter):
    def refund_totals(
        self, deliveries: Sequence[WebhookDelivery]
    ) -> list[Decimal] | None:
        # Each refund's webhook carries the payment's running total.
        return [
            Decimal(json.loads(d.body)["data"]["refunded_amount"]) for d in deliveries
        ]

    def lose_webhooks(self, case: ContractCase) -> None:
        case.set_emulator(webhook_secret=OTHER_SECRET)

    def deliver(self, case: ContractCase, delivery: WebhookDelivery) -> None:
        # The secrets agree again; the retry is signed afresh.
        case.set_emulator(webhook_secret=SANDBOX_WEBHOOK_SECRET)
        super().deliver(case, delivery)


SANDBOX = SandboxAdapter(
    alias="sandbox",
    slug="sandbox",
    routes={
        "start": Route("POST", r"^/emulator/sandbox/api/payments$", "create"),
        "refund": Route(
            "POST", r"^/emulator/sandbox/api/payments/[^/]+/refunds$", "refund"
        ),
        "cancel": Route(
            "POST", r"^/emulator/sandbox/api/payments/[^/]+/cancel$", "cancel"
        ),
    },
    keyed=frozenset({"start", "refund", "cancel"}),
    actions=("pay", "decline", "expire"),
    statuses={
        "pending": "pending",
        "paid": "succeeded",
        "failed": "failed",
        "expired": "expired",
        "refunded": "refunded",
        "cancelled": "cancelled",
    },
    events={
        "pay": "payment.succeeded",
        "decline": "payment.failed",
        "expire": "payment.expired",
        "refund": "payment.refunded",
        "cancel": "payment.cancelled",
    },
    records={"decline": {"failure_reason": "declined by the customer"}},
    session_lifetime=timedelta(minutes=30),
)
