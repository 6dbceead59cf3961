"""Every alias runs one receipt contract (:mod:`tests.contracts.receipts`):
:class:`ReceiptContract` when its provider prints receipts, else
:class:`NoReceiptContract` (each checks that the provider's capability agrees).
A new provider's package that runs neither fails here; so does a provider
that prints receipts whose ``refund`` does not take the refunded lines."""

from __future__ import annotations

import inspect
from importlib import import_module

import pytest

from django_payments_ru.providers.base import BaseProvider, Capability
from tests.contracts import provider_packages
from tests.contracts.receipts import NoReceiptContract, ReceiptContract
from tests.test_money_moves_once import ADAPTERS, runners


@pytest.mark.parametrize("adapter", ADAPTERS, ids=lambda a: a.alias)
def test_every_adapter_runs_one_receipt_contract(adapter):
    runs = runners(ReceiptContract).get(adapter.alias, []) + runners(
        NoReceiptContract
    ).get(adapter.alias, [])
    assert len(runs) == 1, (
        f"{adapter.alias}: {runs or 'no'} receipt contract runs with its adapter; "
        "subclass ReceiptContract (the provider declares Capability.RECEIPTS) or "
        "NoReceiptContract (it does not) once in tests/providers/<slug>/"
        "test_receipts.py"
    )


def provider_classes() -> list[type[BaseProvider]]:
    """Every built-in provider class an alias can be (Life-Pay's surfaces)."""
    classes: list[type[BaseProvider]] = []
    for slug in sorted(provider_packages()):
        cls = import_module(f"django_payments_ru.providers.{slug}").Provider
        classes += list(getattr(cls, "surfaces", ()) or (cls,))
    return classes


@pytest.mark.parametrize("cls", provider_classes(), ids=lambda c: c.__name__)
def test_a_refund_of_a_receipt_capable_provider_takes_the_lines(cls):
    """The services pass ``receipt=`` to the refund of a provider that prints
    receipts (services.refund_invoice): its ``refund`` must take it."""
    if not {Capability.RECEIPTS, Capability.REFUND} <= cls.capabilities:
        pytest.skip(f"{cls.__module__}.{cls.__name__} does not refund receipts")
    parameter = inspect.signature(cls.refund).parameters.get("receipt")
    assert parameter is not None, f"{cls.__name__}.refund takes no receipt"
    assert parameter.kind is inspect.Parameter.KEYWORD_ONLY
    assert parameter.default is None
