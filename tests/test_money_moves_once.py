"""Money moves once (DESIGN.md), on every provider, and its flows.

The cases are :class:`tests.contracts.money.MoneyContract` (a double click, a
repeat, concurrent starts and operations in flight never make a second
provider call for one operation, never refund more than was paid, and leave
every claim settled) and :class:`tests.contracts.flows.FlowContract` (pay,
decline, expire, a new attempt, refunds, a lost webhook, holds, cancel). Each
provider's test package runs them: it declares one adapter per alias in
``tests/providers/<slug>/adapter.py`` and subclasses both contracts with it, so
that a new provider adds its own files and edits none.

This module checks that none is left out: a provider package without an
adapter, or an adapter that a contract does not run, fails here.
"""

from __future__ import annotations

import importlib
from pathlib import Path

import pytest

from tests.contracts import provider_packages
from tests.contracts.flows import Adapter, ContractCase, FlowContract
from tests.contracts.money import MoneyContract

TESTS = Path(__file__).parent / "providers"


def provider_slugs() -> list[str]:
    """The provider packages of the app."""
    return sorted(provider_packages())


def adapters_by_package() -> dict[str, list[Adapter]]:
    """The adapters declared in each ``tests/providers/<slug>/adapter.py``."""
    found: dict[str, list[Adapter]] = {}
    for path in sorted(TESTS.glob("*/adapter.py")):
        module = importlib.import_module(f"tests.providers.{path.parent.name}.adapter")
        found[path.parent.name] = [
            v for v in vars(module).values() if isinstance(v, Adapter)
        ]
    return found


def runners(contract: type[ContractCase]) -> dict[str, list[str]]:
    """alias -> the collected subclasses of ``contract`` in the providers'
    test modules that name it."""
    for path in sorted(TESTS.glob("*/test_*.py")):
        if contract.__name__ in path.read_text(encoding="utf-8"):
            importlib.import_module(f"tests.providers.{path.parent.name}.{path.stem}")
    found: dict[str, list[str]] = {}
    pending = list(contract.__subclasses__())
    while pending:
        cls = pending.pop()
        pending += cls.__subclasses__()
        adapter = cls.__dict__.get("adapter")
        if adapter is not None and cls.__name__.startswith("Test"):
            found.setdefault(adapter.alias, []).append(cls.__qualname__)
    return found


ADAPTERS = [a for found in adapters_by_package().values() for a in found]


def test_every_provider_package_has_an_adapter():
    slugs = provider_slugs()
    assert slugs, "no provider package found"
    declared = adapters_by_package()
    missing = [s for s in slugs if not declared.get(s)]
    assert not missing, (
        f"no adapter in tests/providers/<slug>/adapter.py for {missing}: declare "
        "one per alias (tests.contracts.flows.Adapter) and run the contracts "
        "(FlowContract, MoneyContract) with it"
    )


@pytest.mark.parametrize("contract", [FlowContract, MoneyContract])
@pytest.mark.parametrize("adapter", ADAPTERS, ids=lambda a: a.alias)
def test_every_adapter_runs_the_contract(adapter, contract):
    runs = runners(contract).get(adapter.alias, [])
    assert len(runs) == 1, (
        f"{adapter.alias}: {len(runs)} subclasses of {contract.__name__} with its "
        f"adapter ({runs}); a provider's package needs exactly one"
    )


@pytest.mark.parametrize("adapter", ADAPTERS, ids=lambda a: a.alias)
def test_the_adapter_is_consistent(adapter):
    """What an adapter says about its emulator agrees with itself."""
    assert [a.alias for a in ADAPTERS].count(adapter.alias) == 1, "one per alias"
    assert adapter.keyed <= set(adapter.routes), "a keyed operation makes a call"
    keyed_create = "start" in adapter.keyed
    assert keyed_create != bool(adapter.unkeyed), (
        "unkeyed says why a create carries no key: set it exactly when 'start' "
        "is not keyed"
    )
    assert adapter.actions[0] == "pay"
    # A provider without a declined payment (a crypto transfer is sent or not)
    # says so in lacks, and its decline flows are skipped with the reason.
    assert ("decline" in adapter.actions) != ("decline" in adapter.lacks)
    needed = {"pending", "paid"} | (
        {"failed"} if "decline" in adapter.actions else set()
    )
    if "expire" in adapter.actions or "session_expiry" not in adapter.lacks:
        needed.add("expired")
    if "hold" in adapter.actions:
        needed |= {"held", "released"}
    assert needed <= set(adapter.statuses), needed - set(adapter.statuses)
    assert ("expire" in adapter.actions) != ("expire" in adapter.lacks)
    assert (adapter.session_lifetime is None) == ("session_expiry" in adapter.lacks)
    assert adapter.events.get("pay"), "a payment is announced by a webhook"
    assert adapter.amount_scale >= 1
