"""Money moves once on PayConnect (:class:`tests.contracts.money.MoneyContract`);
the minor-unit conversions are in test_money.py."""

from __future__ import annotations

from tests.contracts.money import MoneyContract

from .adapter import PAYCONNECT


class TestPayConnectMoney(MoneyContract):
    adapter = PAYCONNECT
