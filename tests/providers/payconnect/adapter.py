"""How the contract tests drive the PayConnect emulator (see
:mod:`tests.contracts.flows`): the alias added with its secret key, the rate
limiter off on both sides (concurrent callers would wait on it), amounts in
minor units (payconnect.md F-7), idempotency keys on creates and refunds, a
session of 30 minutes (A-4) whose expiry is a ``session_expired`` failure (A-5)."""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import timedelta
from decimal import Decimal
from typing import TYPE_CHECKING, Any

from django_payments_ru.emulator.models import WebhookDelivery
from django_payments_ru.providers.payconnect.emulator import emulator
from tests.contracts.flows import Adapter, Route, nowhere

from .cases import ALIAS, SECRET, provider_config

if TYPE_CHECKING:
    from tests.contracts.flows import ContractCase


class PayConnectAdapter(Adapter):
    def providers(self) -> dict[str, dict[str, Any]]:
        return {self.alias: provider_config(requests_per_minute=None)}

    def emulators(self, live_url: str) -> dict[str, dict[str, Any]]:
        return {self.slug: {"secret_keys": [SECRET], "requests_per_minute": None}}

    def reset(self) -> None:
        emulator.reset()

    def refund_totals(
        self, deliveries: Sequence[WebhookDelivery]
    ) -> list[Decimal] | None:
        # The payment object's running total, in minor units.
        return [
            Decimal(json.loads(d.body)["data"]["object"]["refunded_amount"])
            / self.amount_scale
            for d in deliveries
        ]

    def lose_webhooks(self, case: ContractCase) -> None:
        # A payment takes the URLs configured when it is created (§3.7).
        case.set_emulator(webhook_urls=[nowhere(self.alias)])


PAYCONNECT = PayConnectAdapter(
    alias=ALIAS,
    slug="payconnect",
    routes={
        "start": Route("POST", r"^/emulator/payconnect/v1/payments$", "create"),
        "refund": Route(
            "POST", r"^/emulator/payconnect/v1/payments/[^/]+/refunds$", "refund"
        ),
    },
    keyed=frozenset({"start", "refund"}),
    amount_scale=100,
    actions=("pay", "decline", "expire"),
    statuses={
        "pending": "pending",
        "paid": "succeeded",
        "failed": "failed",
        # §3.4, A-5: an expired session is a failed payment.
        "expired": "failed",
        "refunded": "refunded",
    },
    events={
        "pay": "payment.succeeded",
        "decline": "payment.failed",
        "expire": "payment.failed",
        "refund": "payment.refunded",
    },
    records={
        "decline": {"failure_code": "card_declined"},
        "expire": {"failure_code": "session_expired"},
    },
    session_lifetime=timedelta(minutes=30),
)
