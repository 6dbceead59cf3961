"""Shared set-up of the "money moves once" tests: every provider alias against
its emulator over HTTP, a per-alias adapter saying where each operation shows
up at the emulator, a log of the requests that reached the emulators, and a
helper that releases several callers at the same instant.

Nothing is mocked: the services call the providers, the providers call the
emulators through their HTTP clients, and the emulators post their webhooks
back to the live server. Aliases (see ``tests/providers/*``):

==================  ==========================================================
``sandbox``         the built-in provider (idempotency keys, cancel at the API)
``payconnect``      bearer token, idempotency keys, partial refunds
``lifepay``         Life-Pay A1Lite v2.0: a signed form, nothing registered at
                    start, refunds confirmed by notification, holds
``lifepay_v1``      the same with signature 1.0 on the form
``lifepay_ecom``    Life-Pay ECOM: invoices API (JWT), holds, no refunds
==================  ==========================================================
"""

from __future__ import annotations

import copy
import re
import socket
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

import pytest
from django.core.signals import request_started
from django.db import connections
from django.db.models import QuerySet

from django_payments_ru.emulator import faults
from django_payments_ru.emulator.models import EmulatedPayment
from django_payments_ru.exceptions import (
    InvalidAmount,
    InvalidOperation,
    OperationInFlight,
)
from django_payments_ru.models import Invoice, Operation
from django_payments_ru.providers.base import Capability
from django_payments_ru.providers.lifepay.provider import lifepay_order_id
from django_payments_ru.providers.payconnect.emulator import (
    emulator as payconnect_emulator,
)
from django_payments_ru.status import InvoiceStatus
from tests.emulator_cases import EmulatorCase, wait_for
from tests.providers.lifepay.conftest import (
    SERVICES,
    emulator_services,
    provider_options,
)
from tests.providers.payconnect.cases import SECRET as PAYCONNECT_SECRET
from tests.providers.payconnect.cases import fresh_caches, provider_config

ALIASES = ("sandbox", "payconnect", "lifepay", "lifepay_v1", "lifepay_ecom")

#: What a caller that lost a race may be told: someone else's operation is in
#: flight, or it is done and nothing is left to do. Never a provider error (that
#: would mean its call reached the provider), never an IntegrityError.
LOSER_ERRORS = (OperationInFlight, InvalidOperation, InvalidAmount)


# --- the requests that reached the emulators ---------------------------------------


@dataclass(frozen=True)
class Hit:
    method: str
    path: str
    idempotency_key: str


class EmulatorTraffic:
    """Every request the live server received under ``/emulator/``, recorded
    from Django's ``request_started`` signal (it carries the WSGI environ), so
    that every emulator's calls can be counted the same way."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.hits: list[Hit] = []

    def _receiver(self, sender: Any, environ: Any = None, **kwargs: Any) -> None:
        if not environ:
            return
        path = environ.get("PATH_INFO", "")
        if not path.startswith("/emulator/"):
            return
        hit = Hit(
            environ.get("REQUEST_METHOD", ""),
            path,
            environ.get("HTTP_IDEMPOTENCY_KEY", ""),
        )
        with self._lock:
            self.hits.append(hit)

    def connect(self) -> None:
        request_started.connect(self._receiver, weak=False)

    def disconnect(self) -> None:
        request_started.disconnect(self._receiver)

    def matching(self, method: str, pattern: str) -> list[Hit]:
        regex = re.compile(pattern)
        with self._lock:
            return [h for h in self.hits if h.method == method and regex.search(h.path)]


# --- per-alias adapters ---------------------------------------------------------------


@dataclass(frozen=True)
class Route:
    """The call that carries an operation to the emulator."""

    method: str
    #: A regular expression on the path.
    path: str
    #: The emulator's name of the endpoint, for fault injection.
    endpoint: str


@dataclass(frozen=True)
class Adapter:
    """Where an alias's operations show up at its emulator."""

    alias: str
    slug: str
    #: operation -> its call; an operation that makes no call is absent.
    routes: dict[str, Route] = field(default_factory=dict)
    #: The key under ``EmulatedPayment.data`` listing the refunds made.
    refunds_key: str = "refunds"

    def payments(self, invoice: Invoice) -> QuerySet[EmulatedPayment]:
        """The emulator's payments (transactions, invoices) of ``invoice``."""
        qs = EmulatedPayment.objects.filter(slug=self.slug)
        if self.slug == "lifepay":
            return qs.filter(
                order_id=lifepay_order_id(invoice),
                data__service_id=SERVICES[self.alias],
            )
        return qs.filter(reference=str(invoice.uuid))

    def payment(self, invoice: Invoice) -> EmulatedPayment:
        [payment] = self.payments(invoice)
        return payment

    def refunds(self, invoice: Invoice) -> list[dict[str, Any]]:
        return list(self.payment(invoice).data.get(self.refunds_key, []))

    def hold_operations(self, invoice: Invoice) -> list[str]:
        """The holds the emulator ended, in order: ``charge`` or ``unblock``."""
        data = self.payment(invoice).data
        return [op["action"] for op in data.get("hold_operations", [])]


_ALBA_FUNDS = Route("POST", r"^/emulator/lifepay/alba/process_funds_blocked/$", "funds")
_ECOM_BLOCKED = r"^/emulator/lifepay/v1/services/\d+/charges/[^/]+/blocked$"

ADAPTERS: dict[str, Adapter] = {
    "sandbox": Adapter(
        "sandbox",
        "sandbox",
        {
            "start": Route("POST", r"^/emulator/sandbox/api/payments$", "create"),
            "refund": Route(
                "POST", r"^/emulator/sandbox/api/payments/[^/]+/refunds$", "refund"
            ),
            "cancel": Route(
                "POST", r"^/emulator/sandbox/api/payments/[^/]+/cancel$", "cancel"
            ),
        },
    ),
    "payconnect": Adapter(
        "payconnect",
        "payconnect",
        {
            "start": Route("POST", r"^/emulator/payconnect/v1/payments$", "create"),
            "refund": Route(
                "POST", r"^/emulator/payconnect/v1/payments/[^/]+/refunds$", "refund"
            ),
        },
    ),
    **{
        alias: Adapter(
            alias,
            "lifepay",
            {
                # A1Lite registers nothing at start: the browser posts the form.
                "refund": Route("POST", r"^/emulator/lifepay/alba/refund/$", "refund"),
                # Capture and release are one endpoint (action=charge|unblock);
                # the emulator's hold_operations tells them apart.
                "capture": _ALBA_FUNDS,
                "release": _ALBA_FUNDS,
            },
            "paybacks",
        )
        for alias in ("lifepay", "lifepay_v1")
    },
    "lifepay_ecom": Adapter(
        "lifepay_ecom",
        "lifepay",
        {
            "start": Route("POST", r"^/emulator/lifepay/v1/invoices/?$", "create"),
            "capture": Route("PATCH", _ECOM_BLOCKED, "blocked"),
            "release": Route("DELETE", _ECOM_BLOCKED, "blocked"),
        },
        "paybacks",
    ),
}


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


def closed_port() -> int:
    """A local TCP port nothing listens on (a webhook sent there is lost)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


# --- the base class -------------------------------------------------------------


class MoneyCase(EmulatorCase):
    """Every alias configured against its emulator on the live server.

    A test names its alias by parametrizing ``alias``; ``self.adapter`` and
    ``self.traffic`` then count what reached that alias's emulator."""

    adapter: Adapter
    traffic: EmulatorTraffic

    def payments_settings(
        self, config: dict[str, Any], live_url: str
    ) -> dict[str, Any]:
        config["PROVIDERS"]["payconnect"] = provider_config(requests_per_minute=None)
        config["PROVIDERS"].update(provider_options())
        return super().payments_settings(config, live_url)

    @pytest.fixture  # type: ignore[override]
    def alias(self) -> str:
        """The alias under test: each test parametrizes it."""
        return "sandbox"

    @pytest.fixture(autouse=True)
    def _money(
        self, _emulated: None, alias: str, settings: Any, live_server: Any
    ) -> Iterator[None]:
        # Accepted sockets inherit TCP_NODELAY: no 40 ms Nagle wait per call.
        live_server.thread.httpd.socket.setsockopt(
            socket.IPPROTO_TCP, socket.TCP_NODELAY, 1
        )
        self.alias = alias  # type: ignore[misc]
        self.adapter = ADAPTERS[alias]
        settings.CACHES = fresh_caches()  # tokens and rate limiters start empty
        emulated = copy.deepcopy(getattr(settings, "PAYMENTS_RU_EMULATOR", {}))
        emulated["payconnect"] = {
            "secret_keys": [PAYCONNECT_SECRET],
            "requests_per_minute": None,
        }
        emulated["lifepay"] = {"services": emulator_services(self.live_url)}
        settings.PAYMENTS_RU_EMULATOR = emulated
        payconnect_emulator.reset()
        faults.reset()
        self.traffic = EmulatorTraffic()
        self.traffic.connect()
        try:
            yield
        finally:
            self.traffic.disconnect()
            faults.reset()

    # --- capabilities ---------------------------------------------------------

    def need(self, *capabilities: Capability) -> None:
        provider = self.provider
        for capability in capabilities:
            if not provider.supports(capability):
                pytest.skip(
                    f"{self.alias}: {provider.display_name} does not support "
                    f"{capability.value}"
                )

    # --- the provider's side --------------------------------------------------

    def calls(self, *operations: str) -> list[Hit]:
        """The requests of ``operations`` that reached the emulator."""
        routes = {
            self.adapter.routes[op] for op in operations if op in self.adapter.routes
        }
        hits: list[Hit] = []
        for route in routes:
            hits += self.traffic.matching(route.method, route.path)
        return hits

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

    def set_emulator(self, **values: Any) -> None:
        config = copy.deepcopy(self._settings.PAYMENTS_RU_EMULATOR)
        config.setdefault(self.adapter.slug, {}).update(values)
        self._settings.PAYMENTS_RU_EMULATOR = config

    # --- invoices in a given state --------------------------------------------

    def create_invoice(self, **kwargs: Any) -> Invoice:
        kwargs.setdefault("customer_email", "customer@example.com")  # PayConnect
        return super().create_invoice(**kwargs)

    def paid_invoice(self, amount: str = "100.00") -> Invoice:
        invoice = self.create_invoice(amount=amount)
        self.pay(invoice, "pay")
        return self.assert_invoice(invoice, InvoiceStatus.PAID, charges=1)

    def held_invoice(self, amount: str = "100.00") -> Invoice:
        invoice = self.create_invoice(amount=amount)
        self.pay(invoice, "hold")
        return self.assert_invoice(invoice, InvoiceStatus.ON_HOLD, charges=0)

    # --- claims -----------------------------------------------------------------

    def operations(self, invoice: Invoice, kind: str) -> list[Operation]:
        return list(invoice.operations.filter(kind=kind).order_by("id"))

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
            (op.kind, op.amount, op.state, op.reason) for op in invoice.operations.all()
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
        done = sum(
            (Decimal(r["amount"]) for r in self.adapter.refunds(invoice)), Decimal(0)
        )
        if self.alias == "payconnect":  # minor units (payconnect.md §3.5)
            done = done / 100
        assert done == at_provider.refunded_amount
