"""docs/providers/lifepay.rst against the code: the docs contract (a row of the
feature matrix per surface)."""

from __future__ import annotations

from django_payments_ru.providers.lifepay import Provider
from tests.contracts.docs import ProviderDocsContract


class TestLifePayDocs(ProviderDocsContract):
    provider = Provider
    # Computed from PAYMENTS_RU["BASE_URL"] and the alias.
    described_defaults = {"webhook_url": "this alias's webhook URL under BASE_URL"}
    emulator_table_marker = "   * - Emulator setting"
    described_emulator_defaults = {
        "jwt_secret": '"lifepay-emulator-jwt-secret-" + 48 zeros (64 bytes)'
    }
