"""The flow contract every provider's test package inherits, and the adapter
that tells it (and :class:`tests.contracts.money.MoneyContract`) how to drive
one alias's emulator.

A provider's package declares one :class:`Adapter` per alias in
``tests/providers/<slug>/adapter.py`` and subclasses the contract with it::

    # tests/providers/acme/adapter.py
    ACME = AcmeAdapter(
        alias="acme",
        slug="acme",
        routes={"start": Route("POST", r"^/emulator/acme/payments$", "create")},
        actions=("pay", "decline", "expire"),
        statuses={"pending": "new", "paid": "done", ...},
        events={"pay": "paid", "decline": "declined", ...},
    )

    # tests/providers/acme/test_flows.py
    class TestAcmeFlows(FlowContract):
        adapter = ACME

The contract then runs, through the services, the emulator's pay page and the
webhooks it posts to the live server: pay, decline, expire (a button and a
session left to lapse), a new attempt after a failure, a partial then a full
refund, a refund of more than is left refused locally, a lost webhook recovered
by polling, a hold captured, released or cancelled, a cancel at the provider,
and a paid invoice that cannot be cancelled. Each case checks the invoice's
status and amounts, its ``Payment`` rows, the signals, and the emulator's own
record of the payment (and of the calls that reached it).

A case is skipped, with the reason, when the alias's provider lacks the
capability (``get_provider(alias).supports(...)``) or the adapter says its
emulator cannot drive that flow (:attr:`Adapter.lacks`). A provider package
without an adapter, or an adapter that either contract does not run, fails
``tests/test_money_moves_once.py``.

What an adapter defines (fields of the frozen dataclass; methods a subclass
overrides):

``alias``, ``slug``
    The alias under test and its emulator's slug.
``routes``
    ``{operation: Route}`` for ``start``, ``refund``, ``capture``, ``release``,
    ``cancel``: the call that carries each operation to the emulator (method,
    path pattern, the emulator's endpoint name for fault injection). An
    operation that makes no call is absent (a signed form that the browser
    posts registers nothing at start).
``keyed``
    The operations whose call carries the claim's key as ``Idempotency-Key``.
``unkeyed``
    Why a lost create cannot be found again by its key ("" when it can).
``amount_scale``
    What the emulator's amounts are multiplied by (100: minor units).
``refunds_key``
    The key under ``EmulatedPayment.data`` listing the refunds made.
``actions``, ``act(case, checkout, action, *, follow=True)``
    The pay page's buttons while the payment waits, in page order (``pay``
    first, then ``decline``, ``expire``, ``hold`` or the provider's own, such
    as QuantaPay's ``underpay``; a provider without a declined payment names
    ``decline`` in ``lacks``); and doing one of them as the customer
    sent to ``checkout`` (default: open the pay page, press the button).
``statuses``
    The emulator's status of the payment: ``pending`` (waiting on the page),
    ``paid``, ``failed``, ``expired``, ``refunded``, ``held``, ``released``,
    ``cancelled``.
``events``
    The event type of the webhook each flow sends (``pay``, ``decline``,
    ``expire``, ``refund``, ``hold``, ``capture``, ``release``, ``cancel``);
    absent or ``""``: that flow sends none.
``records``
    ``{flow: {key: value}}``: what the emulator's record of the payment
    (``EmulatedPayment.data``) carries after ``decline``, ``expire`` or
    ``release``.
``session_lifetime``
    How long the pay page takes the payment after the start.
``lacks``
    ``{flow: what}`` for the flows the emulator cannot drive (``expire``,
    ``session_expiry``...): skipped as "<alias>: <provider> has no <what>".
``providers()``, ``emulators(live_url)``, ``reset()``
    The ``PAYMENTS_RU["PROVIDERS"]`` entries to add (URLs on
    ``http://testserver``, moved to the live server), the
    ``PAYMENTS_RU_EMULATOR`` entries, and forgetting the emulator's state kept
    in memory (default: nothing to add, nothing to forget).
``payments(invoice)``
    The emulator's payments of an invoice (default: by its reference).
``holds_ended(invoice)``
    How the emulator ended the payment's hold: ``["capture"]``, ``["release"]``.
``refund_totals(deliveries)``
    The refunded totals the refund webhooks carry (``None``: they carry none).
``lose_webhooks(case)``, ``deliver(case, delivery)``
    From now on the emulator's webhooks do not reach the shop; and post one
    of them, lost, to the shop after all (default: to the alias's webhook URL).
"""

from __future__ import annotations

import copy
import re
import socket
import threading
import uuid
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from datetime import timedelta
from decimal import Decimal
from typing import TYPE_CHECKING, Any, ClassVar

import pytest
import requests
from django.core.signals import request_started
from django.db.models import QuerySet

from django_payments_ru import services
from django_payments_ru.emulator import clock, faults
from django_payments_ru.emulator.models import EmulatedPayment, WebhookDelivery
from django_payments_ru.emulator.webhooks import send_webhook
from django_payments_ru.exceptions import InvalidAmount, InvalidOperation
from django_payments_ru.models import Invoice, Operation, Payment, WebhookEvent
from django_payments_ru.providers.base import Capability, Checkout
from django_payments_ru.status import InvoiceStatus
from tests.emulator_cases import EmulatorCase

if TYPE_CHECKING:
    from collections.abc import Sequence

LOCMEM = "django.core.cache.backends.locmem.LocMemCache"
CONFIRMED = Operation.State.CONFIRMED


def closed_port() -> int:
    """A local TCP port nothing listens on (a webhook sent there is lost)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def nowhere(alias: str) -> str:
    """A webhook URL of ``alias`` on a port nothing listens on."""
    return f"http://127.0.0.1:{closed_port()}/payments/webhooks/{alias}/"


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


# --- the adapter --------------------------------------------------------------------


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
    """How one alias's emulator is driven and read (see the module docstring)."""

    alias: str
    slug: str
    routes: Mapping[str, Route] = field(default_factory=dict)
    keyed: frozenset[str] = frozenset()
    unkeyed: str = ""
    amount_scale: int = 1
    refunds_key: str = "refunds"
    actions: tuple[str, ...] = ("pay", "decline")
    statuses: Mapping[str, str] = field(default_factory=dict)
    events: Mapping[str, str] = field(default_factory=dict)
    records: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)
    session_lifetime: timedelta | None = None
    lacks: Mapping[str, str] = field(default_factory=dict)

    # --- configuration ------------------------------------------------------------

    def providers(self) -> dict[str, dict[str, Any]]:
        """``PAYMENTS_RU["PROVIDERS"]`` entries to add (default: none, the alias
        is in tests/settings.py)."""
        return {}

    def emulators(self, live_url: str) -> dict[str, dict[str, Any]]:
        """``PAYMENTS_RU_EMULATOR`` entries to set (default: none)."""
        return {}

    def reset(self) -> None:
        """Forget what the emulator keeps in memory between tests."""

    # --- the emulator's records ---------------------------------------------------

    def payments(self, invoice: Invoice) -> QuerySet[EmulatedPayment]:
        """The emulator's payments (transactions, invoices) of ``invoice``."""
        return EmulatedPayment.objects.filter(
            slug=self.slug, reference=str(invoice.uuid)
        ).order_by("id")

    def payment(self, invoice: Invoice) -> EmulatedPayment:
        [payment] = self.payments(invoice)
        return payment

    def refunds(self, invoice: Invoice) -> list[dict[str, Any]]:
        return list(self.payment(invoice).data.get(self.refunds_key, []))

    def refunded(self, invoice: Invoice) -> list[Decimal]:
        """The amounts the emulator refunded, in major units."""
        return [
            Decimal(str(r["amount"])) / self.amount_scale for r in self.refunds(invoice)
        ]

    def holds_ended(self, invoice: Invoice) -> list[str]:
        """How the emulator ended the hold, in order: ``capture``/``release``."""
        raise NotImplementedError(f"{type(self).__name__} must define holds_ended()")

    def refund_totals(
        self, deliveries: Sequence[WebhookDelivery]
    ) -> list[Decimal] | None:
        """The refunded totals the refund webhooks carry (None: none)."""
        return None

    # --- the customer -------------------------------------------------------------

    def act(
        self,
        case: ContractCase,
        checkout: Checkout,
        action: str,
        *,
        follow: bool = True,
    ) -> requests.Response:
        """Do ``action`` (one of :attr:`actions`) as the customer who was sent
        to ``checkout``: by default, open the pay page and press its button
        (following the redirects back to the shop unless ``follow`` is off)."""
        return case.press(case.open_checkout(checkout), action, follow=follow)

    # --- webhooks -----------------------------------------------------------------

    def lose_webhooks(self, case: ContractCase) -> None:
        """From now on the emulator's webhooks do not reach the shop."""
        raise NotImplementedError(f"{type(self).__name__} must define lose_webhooks()")

    def deliver(self, case: ContractCase, delivery: WebhookDelivery) -> None:
        """Post the lost ``delivery`` to the shop after all (a retry)."""
        WebhookDelivery.objects.filter(pk=delivery.pk).update(url=case.webhook_url)
        sent = send_webhook(delivery)
        assert sent.status == WebhookDelivery.Status.DELIVERED, (
            sent.last_status_code,
            sent.last_error,
        )


# --- the base of the contracts --------------------------------------------------------


def fresh_caches() -> dict[str, Any]:
    """A cache of its own: tokens and rate limiters start empty."""
    return {"default": {"BACKEND": LOCMEM, "LOCATION": f"contract-{uuid.uuid4().hex}"}}


class ContractCase(EmulatorCase):
    """An alias configured from its adapter, against its emulator on the live
    server, with the requests that reached the emulator recorded.

    A subclass names its ``adapter``; ``alias`` and ``slug`` follow from it."""

    adapter: ClassVar[Adapter]
    traffic: EmulatorTraffic

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        adapter = cls.__dict__.get("adapter")
        if adapter is not None:
            cls.alias = adapter.alias
            cls.slug = adapter.slug

    def payments_settings(
        self, config: dict[str, Any], live_url: str
    ) -> dict[str, Any]:
        config["PROVIDERS"].update(copy.deepcopy(self.adapter.providers()))
        return super().payments_settings(config, live_url)

    @pytest.fixture(autouse=True)
    def _contract(
        self, _emulated: None, settings: Any, live_server: Any
    ) -> Iterator[None]:
        # The live server writes a response's headers and body separately; with
        # Nagle's algorithm and the client's delayed ACK every keep-alive call
        # then waits 40 ms. Accepted sockets inherit TCP_NODELAY.
        live_server.thread.httpd.socket.setsockopt(
            socket.IPPROTO_TCP, socket.TCP_NODELAY, 1
        )
        settings.CACHES = fresh_caches()
        emulated = copy.deepcopy(getattr(settings, "PAYMENTS_RU_EMULATOR", {}))
        emulated.update(copy.deepcopy(self.adapter.emulators(self.live_url)))
        settings.PAYMENTS_RU_EMULATOR = emulated
        self.adapter.reset()
        faults.reset()
        self.traffic = EmulatorTraffic()
        self.traffic.connect()
        try:
            yield
        finally:
            self.traffic.disconnect()
            faults.reset()

    # --- what may run -------------------------------------------------------------

    #: How a skip says the provider lacks a capability.
    lacking: ClassVar[str] = "does not support"

    def need(self, *capabilities: Capability) -> None:
        """Skip unless the alias's provider has every one of ``capabilities``."""
        provider = self.provider
        for capability in capabilities:
            if not provider.supports(capability):
                pytest.skip(
                    f"{self.alias}: {provider.display_name} {self.lacking} "
                    f"{capability.value}"
                )

    def need_flow(self, flow: str) -> None:
        """Skip unless the adapter's emulator can drive ``flow``."""
        if flow in self.adapter.lacks:
            pytest.skip(
                f"{self.alias}: {self.provider.display_name} has no "
                f"{self.adapter.lacks[flow]}"
            )

    @property
    def registers(self) -> bool:
        """Whether a start registers a payment at the provider."""
        return "start" in self.adapter.routes

    @property
    def webhook_url(self) -> str:
        return f"{self.live_url}/payments/webhooks/{self.alias}/"

    # --- the provider's side ------------------------------------------------------

    def calls(self, *operations: str) -> list[Hit]:
        """The requests of ``operations`` that reached the emulator."""
        routes = {
            self.adapter.routes[op] for op in operations if op in self.adapter.routes
        }
        hits: list[Hit] = []
        for route in routes:
            hits += self.traffic.matching(route.method, route.path)
        return hits

    def deliveries(
        self, invoice: Invoice | None = None, **filters: Any
    ) -> list[WebhookDelivery]:
        """The emulator's webhook deliveries (of every payment of ``invoice``),
        oldest first."""
        qs = WebhookDelivery.objects.filter(slug=self.emulator_slug, **filters)
        if invoice is not None:
            qs = qs.filter(payment__in=self.adapter.payments(invoice))
        return list(qs.order_by("created_at", "id"))

    def expected_events(self, *flows: str) -> list[str]:
        """The webhooks ``flows`` send, in order (a flow that sends none is
        left out)."""
        return [self.adapter.events[f] for f in flows if self.adapter.events.get(f)]

    def move_clock(self, monkeypatch: pytest.MonkeyPatch, later: Any) -> None:
        """Both sides' clocks move on: the emulator's and the client's (which
        checks a webhook's timestamp, where the scheme signs one)."""
        monkeypatch.setattr(clock, "now", lambda: later)
        provider_class = type(self.provider)
        if hasattr(provider_class, "clock"):
            monkeypatch.setattr(provider_class, "clock", staticmethod(later.timestamp))

    # --- invoices in a given state ------------------------------------------------

    def pay(self, invoice: Invoice, action: str = "pay") -> requests.Response:
        """Start ``invoice`` and do ``action`` as its customer (the adapter's
        :meth:`Adapter.act`)."""
        return self.adapter.act(self, self.start(invoice), action)

    def create_invoice(self, **kwargs: Any) -> Invoice:
        kwargs.setdefault("customer_email", "customer@example.com")
        return super().create_invoice(**kwargs)

    def paid_invoice(self, amount: str = "100.00") -> Invoice:
        invoice = self.create_invoice(amount=amount)
        self.pay(invoice, "pay")
        return self.assert_invoice(invoice, InvoiceStatus.PAID, charges=1)

    def held_invoice(self, amount: str = "100.00") -> Invoice:
        invoice = self.create_invoice(amount=amount)
        self.pay(invoice, "hold")
        return self.assert_invoice(invoice, InvoiceStatus.ON_HOLD, charges=0)

    def operations(self, invoice: Invoice, kind: str) -> list[Operation]:
        return list(invoice.operations.filter(kind=kind).order_by("id"))

    def changes_to(self, invoice: Invoice, status: str) -> int:
        """How many ``invoice_status_changed`` signals moved it to ``status``."""
        changes = self.signals.named("invoice_status_changed", invoice)
        return sum(1 for s in changes if s.new_status == status)

    def assert_record(self, payment: EmulatedPayment, flow: str) -> None:
        """The emulator's record carries what ``flow`` leaves on it."""
        for key, value in self.adapter.records.get(flow, {}).items():
            assert payment.data.get(key) == value, (key, payment.data)


# --- the flows ---------------------------------------------------------------------


class FlowContract(ContractCase):
    """The flows every provider's emulator runs (not collected itself: no
    ``Test`` prefix). See the module docstring for the adapter."""

    lacking = "has no"

    def test_pay(self):
        invoice = self.create_invoice(amount="250.50", description="Two books")
        checkout = self.start(invoice)

        assert bool(checkout.payment_id) == self.registers
        invoice.refresh_from_db()
        started = InvoiceStatus.PENDING if self.registers else InvoiceStatus.CREATED
        assert invoice.status == started
        page = self.open_checkout(checkout)
        assert page.actions == list(self.adapter.actions)
        assert "250.50" in page.text and "Two books" in page.text
        emulated = self.adapter.payment(invoice)
        assert (emulated.status, emulated.amount) == (
            self.adapter.statuses["pending"],
            Decimal("250.50"),
        )
        [claim] = self.operations(invoice, "start")
        if "start" in self.adapter.keyed:
            assert [h.idempotency_key for h in self.calls("start")] == [claim.key]

        self.press(page, "pay")

        self.assert_invoice(invoice, InvoiceStatus.PAID, charges=1, refunds=0)
        assert invoice.paid_amount == Decimal("250.50")
        assert invoice.provider_payment_id
        if self.registers:
            assert invoice.provider_payment_id == checkout.payment_id
        assert self.signals.count("invoice_paid", invoice) == 1
        assert self.signals.count("invoice_failed", invoice) == 0
        emulated.refresh_from_db()
        assert emulated.status == self.adapter.statuses["paid"]
        assert self.event_types(invoice) == self.expected_events("pay")
        self.assert_delivered(invoice)
        assert WebhookEvent.objects.get(invoice=invoice).status == "processed"
        # The same press once more is refused by the page and changes nothing.
        again = page.session.post(
            page.url,
            data={"csrfmiddlewaretoken": page.csrf_token, "action": "pay"},
            headers={"Referer": page.url},
            timeout=30,
        )
        assert again.status_code == 409
        assert self.event_types(invoice) == self.expected_events("pay")
        self.assert_invoice(invoice, InvoiceStatus.PAID, charges=1)
        assert self.signals.count("invoice_paid", invoice) == 1

    def test_decline(self):
        self.need_flow("decline")
        invoice = self.create_invoice()

        self.pay(invoice, "decline")

        self.assert_invoice(invoice, InvoiceStatus.FAILED, charges=0, refunds=0)
        assert invoice.paid_amount == 0
        assert self.signals.count("invoice_failed", invoice) == 1
        assert self.signals.count("invoice_paid", invoice) == 0
        emulated = self.adapter.payment(invoice)
        assert emulated.status == self.adapter.statuses["failed"]
        self.assert_record(emulated, "decline")
        assert self.event_types(invoice) == self.expected_events("decline")
        self.assert_delivered(invoice)

    def test_expire(self):
        """The customer lets the payment expire (the page's button)."""
        self.need_flow("expire")
        invoice = self.create_invoice()

        self.pay(invoice, "expire")

        self.assert_invoice(invoice, InvoiceStatus.EXPIRED, charges=0)
        assert self.signals.count("invoice_failed", invoice) == 0
        assert self.signals.count("invoice_paid", invoice) == 0
        emulated = self.adapter.payment(invoice)
        assert emulated.status == self.adapter.statuses["expired"]
        self.assert_record(emulated, "expire")
        assert self.event_types(invoice) == self.expected_events("expire")

    def test_an_unpaid_session_expires(self, monkeypatch):
        """A pay page left open past the session's lifetime no longer takes
        the payment; the expiry is announced once."""
        self.need_flow("session_expiry")
        lifetime = self.adapter.session_lifetime
        assert lifetime, "an adapter without session_expiry in lacks needs a lifetime"
        invoice = self.create_invoice()
        checkout = self.start(invoice)
        emulated = self.adapter.payment(invoice)
        invoice.refresh_from_db()
        assert emulated.expires_at == checkout.expires_at == invoice.expires_at
        assert emulated.expires_at - emulated.created_at == lifetime
        self.move_clock(monkeypatch, clock.now() + lifetime + timedelta(seconds=1))

        page = self.open_checkout(checkout)

        assert (page.actions, page.status) == ([], self.adapter.statuses["expired"])
        self.assert_invoice(invoice, InvoiceStatus.EXPIRED, charges=0)
        assert self.event_types(invoice) == self.expected_events("expire")
        # Reading it again sends nothing more.
        self.open_checkout(checkout)
        assert self.event_types(invoice) == self.expected_events("expire")
        assert self.changes_to(invoice, InvoiceStatus.EXPIRED) == 1

    def test_a_new_attempt_after_a_failure_pays(self):
        self.need_flow("decline")
        invoice = self.create_invoice()
        self.pay(invoice, "decline")
        self.assert_invoice(invoice, InvoiceStatus.FAILED)
        first = invoice.provider_payment_id

        self.pay(invoice, "pay")

        self.assert_invoice(invoice, InvoiceStatus.PAID, charges=1)
        failed, paid = self.adapter.payments(invoice)
        assert (failed.status, paid.status) == (
            self.adapter.statuses["failed"],
            self.adapter.statuses["paid"],
        )
        # The money is the new attempt's.
        charge = invoice.payments.get(kind=Payment.Kind.CHARGE)
        assert charge.provider_payment_id == paid.external_id != failed.external_id
        if self.registers:
            assert invoice.provider_payment_id == paid.external_id != first
        claims = self.operations(invoice, "start")
        assert len({c.key for c in claims}) == 2
        assert {c.state for c in claims} == {CONFIRMED}
        if "start" in self.adapter.keyed:
            keys = [h.idempotency_key for h in self.calls("start")]
            assert keys == [c.key for c in claims]
        assert self.signals.count("invoice_failed", invoice) == 1
        assert self.signals.count("invoice_paid", invoice) == 1
        assert self.event_types(invoice) == self.expected_events("decline", "pay")
        if self.provider.supports(Capability.REFUND):
            # A refund goes to the attempt that was paid.
            services.refund_invoice(invoice)
            self.assert_invoice(invoice, InvoiceStatus.REFUNDED, refunded="100.00")
            paid.refresh_from_db()
            assert paid.refunded_amount == Decimal("100.00")
            failed.refresh_from_db()
            assert failed.refunded_amount == 0

    def test_partial_then_full_refund(self):
        self.need(Capability.REFUND, Capability.PARTIAL_REFUND)
        invoice = self.paid_invoice("100.00")

        services.refund_invoice(invoice, Decimal("30.00"))

        self.assert_invoice(
            invoice, InvoiceStatus.PARTIALLY_REFUNDED, refunds=1, refunded="30.00"
        )
        emulated = self.adapter.payment(invoice)
        assert (emulated.status, emulated.refunded_amount) == (
            self.adapter.statuses["paid"],
            Decimal("30.00"),
        )

        services.refund_invoice(invoice)  # the rest

        self.assert_invoice(
            invoice, InvoiceStatus.REFUNDED, charges=1, refunds=2, refunded="100.00"
        )
        emulated.refresh_from_db()
        assert (emulated.status, emulated.refunded_amount) == (
            self.adapter.statuses["refunded"],
            Decimal("100.00"),
        )
        assert self.adapter.refunded(invoice) == [Decimal("30"), Decimal("70")]
        # One webhook per refund; neither the webhook nor the call's answer
        # counted a refund twice.
        assert self.event_types(invoice) == self.expected_events(
            "pay", "refund", "refund"
        )
        self.assert_delivered(invoice)
        refunds = self.deliveries(invoice, event_type=self.adapter.events["refund"])
        totals = self.adapter.refund_totals(refunds)
        if totals is not None:
            assert totals == [Decimal("30"), Decimal("100")]
        rows = invoice.payments.filter(kind=Payment.Kind.REFUND).order_by("id")
        assert [p.amount for p in rows] == [Decimal("30.00"), Decimal("70.00")]
        assert self.signals.count("invoice_refunded", invoice) == 2
        # Each refund was claimed first (sent with its claim's key where the
        # provider takes one), and both claims are settled.
        claims = self.operations(invoice, "refund")
        assert [(c.amount, c.state) for c in claims] == [
            (Decimal("30.00"), CONFIRMED),
            (Decimal("70.00"), CONFIRMED),
        ]
        if "refund" in self.adapter.keyed:
            keys = [h.idempotency_key for h in self.calls("refund")]
            assert keys == [c.key for c in claims]

    def test_a_refund_of_more_than_is_left_is_refused_locally(self):
        self.need(Capability.REFUND, Capability.PARTIAL_REFUND)
        invoice = self.paid_invoice("100.00")
        services.refund_invoice(invoice, "60.00")
        self.assert_invoice(
            invoice, InvoiceStatus.PARTIALLY_REFUNDED, refunds=1, refunded="60.00"
        )

        with pytest.raises(InvalidAmount) as caught:
            services.refund_invoice(invoice, "50.00")

        assert caught.value.field == "amount"
        assert len(self.calls("refund")) == 1  # nothing was sent
        assert [op.state for op in self.operations(invoice, "refund")] == [CONFIRMED]
        self.assert_invoice(
            invoice, InvoiceStatus.PARTIALLY_REFUNDED, refunds=1, refunded="60.00"
        )
        assert self.adapter.payment(invoice).refunded_amount == Decimal("60.00")
        assert self.adapter.refunded(invoice) == [Decimal("60")]
        assert self.signals.count("invoice_refunded", invoice) == 1

    def test_a_lost_webhook_is_recovered_by_polling(self):
        """The payment's webhook never arrives: a status read finds the
        payment; the webhook, delivered late at last, changes nothing."""
        self.need(Capability.STATUS)
        self.adapter.lose_webhooks(self)
        invoice = self.create_invoice()
        # Not followed: the return view would ask the provider itself.
        self.adapter.act(self, self.start(invoice), "pay", follow=False)
        [lost] = self.deliveries(invoice)
        assert lost.status == WebhookDelivery.Status.FAILED
        invoice.refresh_from_db()
        assert invoice.status in (InvoiceStatus.CREATED, InvoiceStatus.PENDING)
        assert invoice.paid_amount == 0

        services.refresh_invoice(invoice)

        self.assert_invoice(invoice, InvoiceStatus.PAID, charges=1)
        assert invoice.paid_amount == Decimal("100.00")
        assert self.signals.count("invoice_paid", invoice) == 1
        assert self.adapter.payment(invoice).status == self.adapter.statuses["paid"]

        self.adapter.deliver(self, lost)

        self.assert_invoice(invoice, InvoiceStatus.PAID, charges=1)
        assert self.signals.count("invoice_paid", invoice) == 1
        assert self.changes_to(invoice, InvoiceStatus.PAID) == 1

    def test_hold_then_capture(self):
        self.need(Capability.HOLD)
        invoice = self.held_invoice()
        assert self.adapter.payment(invoice).status == self.adapter.statuses["held"]
        assert self.signals.count("invoice_paid", invoice) == 0

        services.capture_invoice(invoice)

        self.assert_invoice(invoice, InvoiceStatus.PAID, charges=1)
        assert invoice.paid_amount == Decimal("100.00")
        assert self.adapter.holds_ended(invoice) == ["capture"]
        assert self.adapter.payment(invoice).status == self.adapter.statuses["paid"]
        assert [op.state for op in self.operations(invoice, "capture")] == [CONFIRMED]
        # The capture's webhook and the call's answer are one payment.
        assert self.event_types(invoice) == self.expected_events("hold", "capture")
        self.assert_delivered(invoice)
        assert self.signals.count("invoice_paid", invoice) == 1
        services.refresh_invoice(invoice)
        self.assert_invoice(invoice, InvoiceStatus.PAID, charges=1)
        assert self.signals.count("invoice_paid", invoice) == 1

    def test_hold_then_release(self):
        self.need(Capability.HOLD)
        invoice = self.held_invoice()

        services.release_invoice(invoice)

        self.assert_invoice(invoice, InvoiceStatus.CANCELLED, charges=0)
        assert invoice.paid_amount == 0
        assert self.adapter.holds_ended(invoice) == ["release"]
        emulated = self.adapter.payment(invoice)
        assert emulated.status == self.adapter.statuses["released"]
        self.assert_record(emulated, "release")
        assert [op.state for op in self.operations(invoice, "release")] == [CONFIRMED]
        assert self.event_types(invoice) == self.expected_events("hold", "release")
        assert self.signals.count("invoice_paid", invoice) == 0
        services.refresh_invoice(invoice)
        self.assert_invoice(invoice, InvoiceStatus.CANCELLED, charges=0)

    def test_cancelling_a_hold_releases_it(self):
        self.need(Capability.HOLD)
        invoice = self.held_invoice()

        services.cancel_invoice(invoice)

        self.assert_invoice(invoice, InvoiceStatus.CANCELLED, charges=0)
        assert self.adapter.holds_ended(invoice) == ["release"]
        emulated = self.adapter.payment(invoice)
        assert emulated.status == self.adapter.statuses["released"]
        self.assert_record(emulated, "release")
        # The provider no longer reports a hold: a refresh keeps it cancelled.
        services.refresh_invoice(invoice)
        self.assert_invoice(invoice, InvoiceStatus.CANCELLED, charges=0)
        assert not invoice.needs_attention
        assert self.signals.count("invoice_paid", invoice) == 0

    def test_cancel(self):
        """Cancelled at the provider: the pay page no longer takes it."""
        self.need(Capability.CANCEL)
        invoice = self.create_invoice()
        checkout = self.start(invoice)

        services.cancel_invoice(invoice)

        self.assert_invoice(invoice, InvoiceStatus.CANCELLED, charges=0)
        assert (
            self.adapter.payment(invoice).status == self.adapter.statuses["cancelled"]
        )
        assert [op.state for op in self.operations(invoice, "cancel")] == [CONFIRMED]
        assert len(self.calls("cancel")) == 1
        assert self.event_types(invoice) == self.expected_events("cancel")
        self.assert_delivered(invoice)
        page = self.open_checkout(checkout)
        assert (page.actions, page.status) == ([], self.adapter.statuses["cancelled"])
        assert self.signals.count("invoice_paid", invoice) == 0

    def test_a_paid_invoice_cannot_be_cancelled(self):
        invoice = self.paid_invoice()

        with pytest.raises(InvalidOperation):
            services.cancel_invoice(invoice)

        self.assert_invoice(invoice, InvoiceStatus.PAID, charges=1)
        assert self.calls("cancel", "release") == []
        assert self.operations(invoice, "cancel") == []
        assert self.adapter.payment(invoice).status == self.adapter.statuses["paid"]
        assert self.changes_to(invoice, InvoiceStatus.CANCELLED) == 0
