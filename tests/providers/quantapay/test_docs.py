"""docs/providers/quantapay.rst against the code: the docs contract, and the
list of the reference's assumptions."""

from __future__ import annotations

from django_payments_ru.providers.quantapay import Provider
from tests.contracts.docs import ProviderDocsContract, read


class TestQuantaPayDocs(ProviderDocsContract):
    provider = Provider
    described_emulator_defaults = {
        "balances": "BTC and ETH",
        "rates": "BTC, ETH, USDT",
        "fiat_rates": "six currencies",
    }


def test_every_assumption_is_listed():
    text = read("providers/quantapay.rst")
    for n in range(1, 12):
        assert f"**A-{n}**" in text
