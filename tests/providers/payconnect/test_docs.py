"""docs/providers/payconnect.rst against the code: the docs contract, and the
list of the reference's assumptions."""

from __future__ import annotations

from django_payments_ru.providers.payconnect import Provider
from tests.contracts.docs import ProviderDocsContract, read


class TestPayConnectDocs(ProviderDocsContract):
    provider = Provider


def test_every_assumption_is_listed():
    text = read("providers/payconnect.rst")
    for n in range(1, 14):
        assert f"**A-{n}**" in text
