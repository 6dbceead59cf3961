"""Contract test bases: each provider's test package subclasses them with a small
adapter (how to sign its webhooks, where its docs page is...) and inherits their
cases; a case the provider has no feature for is skipped with the reason.

Among them (a provider without a subclass of each fails ``tests/test_docs.py``):

* :class:`tests.contracts.webhooks.WebhookContract`, in the provider's
  ``test_webhooks.py``: the webhook view against the provider's signature
  scheme (forgeries, rotation, duplicates, late and malformed events).
* :class:`tests.contracts.docs.ProviderDocsContract`, in its ``test_docs.py``:
  its page and its rows of the feature matrix against the provider class.

And, each with one adapter per alias from the provider's ``adapter.py``
(:class:`tests.contracts.flows.Adapter`; a provider package without one, or an
adapter without a subclass of each, fails ``tests/test_money_moves_once.py``):

* :class:`tests.contracts.flows.FlowContract`, in its ``test_flows.py``: pay,
  decline, expire, a new attempt, refunds, a lost webhook, holds, cancel,
  through the emulator's pay page and webhooks on a live server.
* :class:`tests.contracts.money.MoneyContract`, in its ``test_money*.py``: money
  moves once (double clicks, concurrent starts, operations in flight).
"""

from __future__ import annotations

import importlib
import pkgutil

from django_payments_ru import providers
from django_payments_ru.providers.base import BaseProvider


def provider_packages() -> dict[str, type[BaseProvider]]:
    """``{slug: Provider}`` of every package under django_payments_ru/providers:
    what the guards hold every provider to (found here, not by the docs'
    generator, so that a provider the generator missed is noticed)."""
    found = {}
    for info in pkgutil.iter_modules(providers.__path__):
        if info.ispkg:
            module = importlib.import_module(f"{providers.__name__}.{info.name}")
            cls = getattr(module, "Provider", None)
            if isinstance(cls, type) and issubclass(cls, BaseProvider):
                found[info.name] = cls
    return found
