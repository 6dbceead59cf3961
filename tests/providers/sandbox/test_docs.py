"""docs/providers/sandbox.rst against the code: the docs contract."""

from __future__ import annotations

from django_payments_ru.providers.sandbox import Provider
from tests.contracts.docs import ProviderDocsContract


class TestSandboxDocs(ProviderDocsContract):
    provider = Provider
