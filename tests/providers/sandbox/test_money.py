"""Money moves once on the sandbox (:class:`tests.contracts.money.MoneyContract`)."""

from __future__ import annotations

from tests.contracts.money import MoneyContract

from .adapter import SANDBOX


class TestSandboxMoney(MoneyContract):
    adapter = SANDBOX
