"""docs/providers/loveandpay.rst against the code: the docs contract, the
reference's assumptions, and the section on a blocked key."""

from __future__ import annotations

from django_payments_ru.providers.loveandpay import Provider
from tests.contracts.docs import ProviderDocsContract, read


class TestLoveAndPayDocs(ProviderDocsContract):
    provider = Provider


def test_every_assumption_is_listed():
    text = read("providers/loveandpay.rst")
    for n in range(1, 13):
        assert f"**A-{n}**" in text


def test_the_blocked_key_section_names_both_steps():
    text = read("providers/loveandpay.rst")
    section = text[text.index("When the API key is blocked\n~~~") :]
    assert "support chat" in section and "Переиндексировать" in section
    assert "payments_ru.W004" in section
