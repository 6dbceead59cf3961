"""How the contract tests drive the QuantaPay emulator (see
:mod:`tests.contracts.flows`): the alias with its API key and webhook secret,
the rate limiter off on both sides (concurrent callers would wait on it),
amounts in major units (A-11), one ``api.php`` for every call (§1), a pay page
that pays exactly, underpays or lets the session lapse (§13), and webhooks
only for completed transactions, sent once (A-6, A-7)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from django_payments_ru.providers.quantapay.emulator import emulator
from tests.contracts.flows import Adapter, Route, nowhere

from .cases import ALIAS, API_PATH, emulator_config, provider_config

if TYPE_CHECKING:
    from tests.contracts.flows import ContractCase


class QuantaPayAdapter(Adapter):
    def providers(self) -> dict[str, dict[str, Any]]:
        return {self.alias: provider_config(requests_per_minute=None)}

    def emulators(self, live_url: str) -> dict[str, dict[str, Any]]:
        return {self.slug: emulator_config(requests_per_minute=None)}

    def reset(self) -> None:
        emulator.reset()

    def lose_webhooks(self, case: ContractCase) -> None:
        # A transaction keeps the webhook URL of its account when it is created.
        case.set_emulator(webhook_url=nowhere(self.alias))


QUANTAPAY = QuantaPayAdapter(
    alias=ALIAS,
    slug="quantapay",
    routes={
        # §1: every function is a POST of api.php; the endpoint name is the
        # function's (fault injection).
        "start": Route("POST", rf"^{API_PATH}$", "create-checkout-session"),
    },
    unkeyed=(
        "create-checkout-session takes no idempotency key (quantapay.md A-4): a "
        "create whose answer was lost cannot be found again by a key"
    ),
    actions=("pay", "underpay", "expire"),
    statuses={
        "pending": "P",
        "paid": "C",
        # an underpaid transaction is X; a lapsed session disappears.
        "failed": "X",
        "expired": "expired",
    },
    events={"pay": "transaction.completed"},
    lacks={
        "decline": "declined payment (quantapay.md A-6: a crypto transfer is "
        "sent or not); its nearest, an underpayment, is "
        "test_underpay_flags_the_amounts",
        "session_expiry": "expiry notice (A-6: an unpaid session silently "
        "disappears after 48 h; test_flows covers the poll that finds it gone)",
    },
)
