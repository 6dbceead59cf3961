"""Money moves once on Love&Pay (:class:`tests.contracts.money.MoneyContract`);
a create that timed out is in test_timeout.py (no idempotency key, A-11)."""

from __future__ import annotations

from tests.contracts.money import MoneyContract

from .adapter import LOVEANDPAY


class TestLoveAndPayMoney(MoneyContract):
    adapter = LOVEANDPAY
