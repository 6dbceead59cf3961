"""Shared set-up of the "money moves once" tests: an alias against its emulator
over HTTP, configured from its adapter (:class:`tests.contracts.flows.Adapter`,
declared in ``tests/providers/<slug>/adapter.py``), the requests that reached
the emulator, faults injected into it, and a helper that releases several
callers at the same instant.

Nothing is mocked: the services call the providers, the providers call the
emulators through their HTTP clients, and the emulators post their webhooks
back to the live server. The cases themselves are
:class:`tests.contracts.money.MoneyContract`; a provider's own money tests
subclass :class:`MoneyCase`.
"""

from __future__ import annotations

import copy
import threading
from collections.abc import Callable
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from django.db import connections

from django_payments_ru.emulator import faults
from django_payments_ru.exceptions import (
    InvalidAmount,
    InvalidOperation,
    OperationInFlight,
)
from django_payments_ru.models import Invoice, Operation
from tests.contracts.flows import ContractCase
from tests.emulator_cases import wait_for

__all__ = [
    "LOSER_ERRORS",
    "MoneyCase",
    "Outcome",
    "fresh",
    "race",
    "states",
]

#: What a caller that lost a race may be told: someone else's operation is in
#: flight, or it is done and nothing is left to do. Never a provider error (that
#: would mean its call reached the provider), never an IntegrityError.
LOSER_ERRORS = (OperationInFlight, InvalidOperation, InvalidAmount)


def fresh(invoice: Invoice) -> Invoice:
    """The invoice as another request (another thread) loads it."""
    return Invoice.objects.get(pk=invoice.pk)


def states(invoice: Invoice, kind: str) -> list[str]:
    return list(
        invoice.operations.filter(kind=kind)
        .order_by("id")
        .values_list("state", flat=True)
    )


# --- racing callers -------------------------------------------------------------------


@dataclass
class Outcome:
    value: Any = None
    error: BaseException | None = None

    @property
    def ok(self) -> bool:
        return self.error is None


def race(callers: list[Callable[[], Any]], timeout: float = 60.0) -> list[Outcome]:
    """Run each caller in its own thread, all released at the same instant
    (a double click, two tabs); every thread closes its database connections
    when it is done."""
    barrier = threading.Barrier(len(callers))
    outcomes = [Outcome() for _ in callers]

    def worker(index: int, call: Callable[[], Any]) -> None:
        try:
            barrier.wait(timeout=10)
            outcomes[index].value = call()
        except BaseException as exc:  # reported by the test
            outcomes[index].error = exc
        finally:
            connections.close_all()

    threads = [
        threading.Thread(target=worker, args=(i, c), daemon=True)
        for i, c in enumerate(callers)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout)
    assert not any(t.is_alive() for t in threads), "a caller never returned"
    return outcomes


# --- the base class -------------------------------------------------------------


class MoneyCase(ContractCase):
    """An alias (named by the subclass's ``adapter``) against its emulator,
    with faults to inject and claims to check."""

    # --- the provider's side --------------------------------------------------

    def slow_down(self, *operations: str, seconds: float = 0.3) -> None:
        """Make the emulator take ``seconds`` over each call of ``operations``,
        so that a second click surely comes while the first is in flight."""
        endpoints = {
            self.adapter.routes[op].endpoint
            for op in operations
            if op in self.adapter.routes
        }
        self.set_faults(
            **{name: {"delay": seconds, "status": None} for name in endpoints}
        )

    def set_http(self, **values: Any) -> None:
        """Change ``PAYMENTS_RU``'s HTTP settings (timeouts, retries)."""
        config = copy.deepcopy(self._settings.PAYMENTS_RU)
        config.update(values)
        self._settings.PAYMENTS_RU = config

    def set_faults(self, **specs: dict[str, Any]) -> None:
        """Inject faults into this alias's emulator endpoints (see
        ``django_payments_ru.emulator.faults``)."""
        faults.reset()
        self.set_emulator(faults=specs)

    # --- claims -----------------------------------------------------------------

    def assert_settled(self, invoice: Invoice, timeout: float = 5.0) -> None:
        """No operation of ``invoice`` is left in flight (waiting briefly for
        the webhooks that settle them)."""
        left = wait_for(
            lambda: (
                not invoice.operations.filter(state=Operation.State.IN_FLIGHT).exists()
            ),
            timeout=timeout,
        )
        assert left, [
            (op.kind, op.amount, op.state, op.reason_text)
            for op in invoice.operations.all()
        ]

    def assert_one_winner(
        self,
        outcomes: list[Outcome],
        losers: type[BaseException] | tuple[type[BaseException], ...] = LOSER_ERRORS,
    ) -> Outcome:
        """Exactly one caller did it; every other was told clearly why not
        (``losers``: the errors they may get)."""
        winners = [o for o in outcomes if o.ok]
        assert len(winners) == 1, [repr(o.error) for o in outcomes]
        for outcome in outcomes:
            if not outcome.ok:
                assert isinstance(outcome.error, losers), repr(outcome.error)
                assert str(outcome.error)
        return winners[0]

    def assert_refunds_within_payment(self, invoice: Invoice) -> None:
        invoice.refresh_from_db()
        assert invoice.refunded_amount <= invoice.paid_amount
        at_provider = self.adapter.payment(invoice)
        assert at_provider.refunded_amount <= at_provider.amount
        done = sum(self.adapter.refunded(invoice), Decimal(0))
        assert done == at_provider.refunded_amount
