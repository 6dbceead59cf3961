"""Money moves once on QuantaPay (:class:`tests.contracts.money.MoneyContract`)."""

from __future__ import annotations

from tests.contracts.money import MoneyContract

from .adapter import QUANTAPAY


class TestQuantaPayMoney(MoneyContract):
    adapter = QUANTAPAY
