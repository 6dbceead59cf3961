"""The webhook contract every provider's test package inherits.

A provider's ``tests/providers/<slug>/test_webhooks.py`` declares one small
subclass, the adapter: how its webhooks are built and signed, how a forger
would change them, and what the provider answers. The base then posts them to
the generic webhook view with Django's test client and checks the pipeline's
promises (docs: ``webhooks.rst``, DESIGN "The webhook pipeline")::

    class TestAcmeWebhooks(WebhookContract):
        alias = "acme"
        secret = ACME_SECRET
        secret_option = "webhook_secret"
        previous_secrets_option = "previous_webhook_secrets"
        ack_body = b"OK"
        lacks = {"stale": "Acme signs no timestamp (acme.md §4)"}

        def build(self, invoice, kind=EventType.PAID, *, secret=None): ...
        def resign(self, webhook, signature): ...
        def tamper(self, webhook): ...
        def reserialise(self, webhook): ...
        def malformed(self, invoice): ...

What an adapter defines:

``alias``
    The alias posted to (``/payments/webhooks/<alias>/``).
``configure(settings)``
    Adds the alias to ``PAYMENTS_RU`` for the test (default: nothing, the alias
    is in ``tests/settings.py``).
``secret``, ``secret_option``, ``previous_secrets_option``
    The signing secret configured for the alias, and the option names that
    hold the current secret and the previous ones (rotation).
``build(invoice, kind, *, secret=None)``
    A validly signed :class:`Webhook` announcing ``kind`` (``EventType.PAID``,
    ``FAILED`` or ``REFUNDED``: the whole amount) for ``invoice``, signed with
    ``secret`` (default: :attr:`secret`). Built twice with the same arguments
    it may differ (a fresh event id); posted twice, the same object is the
    same delivery.
``resign(webhook, signature)``
    ``webhook`` carrying ``signature`` instead of its own (``""``: none).
``tamper(webhook)``
    ``webhook`` with its amount changed and its signature kept.
``reserialise(webhook)``
    The same data in other bytes (JSON keys reordered, form fields reordered).
    ``signs_raw_body`` says what the provider must do with it: refuse it (the
    signature covers the raw body) or accept it as the same event (it covers
    the parsed fields).
``stale(invoice, kind, *, ahead)``
    ``build`` signed with a timestamp just outside the provider's window, in
    the past or (``ahead``) in the future.
``malformed(invoice)``
    ``{label: webhook}``: validly signed bodies the provider cannot parse.
``ack_status``, ``ack_body``, ``verification_refusal(code)``
    The provider's documented answers to an accepted webhook and to one
    refused by verification with ``code`` (default ``400`` with the code as
    the body).
``lacks``
    ``{feature: reason}`` for the features the provider does not have
    (:data:`FEATURES`): their cases are skipped with that reason. A hook that
    is neither defined nor excused fails its cases with ``NotImplementedError``.

"Nothing written" means: no new ``WebhookEvent``, ``Payment`` or ``Operation``
row, the invoice's row unchanged, no signal sent.
"""

from __future__ import annotations

import copy
import json
import uuid
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field, replace
from decimal import Decimal
from typing import Any, ClassVar

import pytest
from django.test import Client

from django_payments_ru import services
from django_payments_ru.events import EventType
from django_payments_ru.models import Invoice, Operation, Payment, WebhookEvent
from django_payments_ru.status import InvoiceStatus
from tests.signals import SignalRecorder

#: What ``lacks`` may excuse: the kinds ``build`` may not know, a scheme without
#: a signed timestamp, a provider without a previous-secrets option.
FEATURES = frozenset({"failed", "refunded", "stale", "rotation"})


@dataclass(frozen=True)
class Webhook:
    """One webhook request as the provider sends it."""

    body: bytes
    content_type: str = "application/json"
    #: Request headers by their HTTP names (``X-Sandbox-Signature``).
    headers: Mapping[str, str] = field(default_factory=dict)
    #: The provider's payment id it carries: the invoice's once it is applied.
    payment_id: str = ""
    #: Its signature: never stored.
    signature: str = ""

    def but(self, **changes: Any) -> Webhook:
        return replace(self, **changes)


#: Bodies no JSON provider can parse, for ``malformed()`` (signed by the adapter).
MALFORMED_JSON = {
    "not JSON": b"not json",
    "empty": b"",
    "empty object": b"{}",
    "a list": b"[]",
}


def reserialised_json(webhook: Webhook) -> Webhook:
    """``webhook`` with the same JSON in other bytes (keys sorted, indented),
    its signature kept: for ``reserialise()`` of a JSON provider."""
    data = json.loads(webhook.body)
    return webhook.but(body=json.dumps(data, indent=2, sort_keys=True).encode())


@dataclass(frozen=True)
class Snapshot:
    """What a refused webhook must leave as it was."""

    rows: dict[str, int]
    invoice: dict[str, Any]
    signals: int


class WebhookContract:
    """Base of every provider's webhook tests (not collected itself: no
    ``Test`` prefix). See the module docstring for the adapter."""

    alias: ClassVar[str] = ""
    secret: ClassVar[str] = ""
    secret_option: ClassVar[str] = ""
    previous_secrets_option: ClassVar[str] = ""
    #: True: the signature covers the raw body, a re-serialised body is a
    #: forgery. False: it covers the parsed fields, so it is the same webhook.
    signs_raw_body: ClassVar[bool] = True
    ack_status: ClassVar[int] = 200
    ack_body: ClassVar[bytes] = b"OK"
    lacks: ClassVar[Mapping[str, str]] = {}
    #: The amount of the invoices the cases make.
    amount: ClassVar[str] = "100.00"
    currency: ClassVar[str] = "RUB"
    wrong_secret: ClassVar[str] = "not-the-secret-5f0c"

    client: Client
    signals: SignalRecorder

    @pytest.fixture(autouse=True)
    def _contract(
        self,
        db: None,
        client: Client,
        settings: Any,
        django_capture_on_commit_callbacks,
    ) -> Iterator[None]:
        unknown = set(self.lacks) - FEATURES
        assert not unknown, f"{type(self).__name__}.lacks: unknown {unknown}"
        self.client = client
        self._settings = settings
        self._on_commit = django_capture_on_commit_callbacks
        self.configure(settings)
        with SignalRecorder() as self.signals:
            yield

    # --- the adapter ------------------------------------------------------------------

    def configure(self, settings: Any) -> None:
        """Add the alias to ``settings.PAYMENTS_RU`` (default: it is there)."""

    def make_invoice(self, **kwargs: Any) -> Invoice:
        kwargs.setdefault("amount", self.amount)
        kwargs.setdefault("currency", self.currency)
        kwargs.setdefault("order_id", f"order-{uuid.uuid4().hex[:12]}")
        kwargs.setdefault("description", "Contract order")
        kwargs.setdefault("customer_email", "customer@example.com")
        return services.create_invoice(provider=self.alias, **kwargs)

    def _hook(self, name: str) -> NotImplementedError:
        return NotImplementedError(
            f"{type(self).__name__} must implement {name}() or excuse it in lacks."
        )

    def build(
        self,
        invoice: Invoice,
        kind: EventType = EventType.PAID,
        *,
        secret: str | None = None,
    ) -> Webhook:
        raise self._hook("build")

    def resign(self, webhook: Webhook, signature: str) -> Webhook:
        raise self._hook("resign")

    def tamper(self, webhook: Webhook) -> Webhook:
        raise self._hook("tamper")

    def reserialise(self, webhook: Webhook) -> Webhook:
        raise self._hook("reserialise")

    def stale(self, invoice: Invoice, kind: EventType, *, ahead: bool) -> Webhook:
        raise self._hook("stale")

    def malformed(self, invoice: Invoice) -> dict[str, Webhook]:
        raise self._hook("malformed")

    def verification_refusal(self, code: str) -> tuple[int, bytes]:
        """The answer to a webhook refused by verification with ``code``."""
        return 400, code.encode()

    # --- helpers ----------------------------------------------------------------------

    def requires(self, feature: str) -> None:
        reason = self.lacks.get(feature)
        if reason:
            pytest.skip(f"{type(self).__name__} ({self.alias}): {reason}")

    def url(self, alias: str | None = None) -> str:
        return f"/payments/webhooks/{alias or self.alias}/"

    def post(
        self, webhook: Webhook, *, alias: str | None = None, method: str = "POST"
    ) -> Any:
        """Send ``webhook``; the callbacks run at commit (signals) run too."""
        with self._on_commit(execute=True):
            return self.client.generic(
                method,
                self.url(alias),
                data=webhook.body,
                content_type=webhook.content_type,
                headers=dict(webhook.headers),
            )

    def snapshot(self, invoice: Invoice) -> Snapshot:
        return Snapshot(
            rows={
                model.__name__: model.objects.count()
                for model in (WebhookEvent, Payment, Operation)
            },
            invoice=dict(Invoice.objects.filter(pk=invoice.pk).values().get()),
            signals=len(self.signals.sent),
        )

    def assert_acknowledged(self, response: Any) -> None:
        assert (response.status_code, response.content) == (
            self.ack_status,
            self.ack_body,
        )

    def assert_refused(self, webhook: Webhook, invoice: Invoice, code: str) -> None:
        """``webhook`` is refused by verification with the provider's answer
        for ``code``, and nothing is written."""
        before = self.snapshot(invoice)
        response = self.post(webhook)
        assert (response.status_code, response.content) == (
            self.verification_refusal(code)
        )
        assert self.snapshot(invoice) == before

    def pay(self, invoice: Invoice) -> None:
        self.assert_acknowledged(self.post(self.build(invoice, EventType.PAID)))
        invoice.refresh_from_db()
        assert invoice.status == InvoiceStatus.PAID

    # --- accepted ---------------------------------------------------------------------

    def test_a_valid_webhook_is_acknowledged_and_applied(self):
        invoice = self.make_invoice()
        webhook = self.build(invoice, EventType.PAID)
        self.assert_acknowledged(self.post(webhook))
        invoice.refresh_from_db()
        assert invoice.status == InvoiceStatus.PAID
        assert invoice.paid_amount == Decimal(self.amount)
        if webhook.payment_id:
            assert invoice.provider_payment_id == webhook.payment_id
        row = WebhookEvent.objects.get()
        assert (row.provider, row.status, row.attempts, row.deliveries) == (
            self.alias,
            WebhookEvent.Status.PROCESSED,
            1,
            1,
        )
        assert row.invoice == invoice
        assert invoice.payments.filter(kind=Payment.Kind.CHARGE).count() == 1
        assert self.signals.names() == ["invoice_status_changed", "invoice_paid"]
        paid = self.signals.named("invoice_paid")[0]
        assert paid.invoice_id == invoice.pk
        assert (paid.old_status, paid.new_status) == (
            InvoiceStatus.CREATED,
            InvoiceStatus.PAID,
        )
        assert paid.kwargs["event"].type is EventType.PAID
        assert webhook.signature, "build() must say which signature it carries"
        stored = json.dumps([row.payload, row.event])
        assert webhook.signature not in stored

    def test_a_failed_webhook_fails_an_open_invoice(self):
        self.requires("failed")
        invoice = self.make_invoice()
        self.assert_acknowledged(self.post(self.build(invoice, EventType.FAILED)))
        invoice.refresh_from_db()
        assert invoice.status == InvoiceStatus.FAILED
        assert invoice.paid_amount == 0
        assert Payment.objects.count() == 0
        assert self.signals.names() == ["invoice_status_changed", "invoice_failed"]

    def test_a_refund_webhook_refunds_the_paid_invoice(self):
        self.requires("refunded")
        invoice = self.make_invoice()
        self.pay(invoice)
        self.assert_acknowledged(self.post(self.build(invoice, EventType.REFUNDED)))
        invoice.refresh_from_db()
        assert invoice.status == InvoiceStatus.REFUNDED
        assert invoice.refunded_amount == Decimal(self.amount)
        assert invoice.payments.filter(kind=Payment.Kind.REFUND).count() == 1
        [refunded] = self.signals.named("invoice_refunded")
        assert refunded.kwargs["amount"] == Decimal(self.amount)

    # --- forged -----------------------------------------------------------------------

    def test_a_webhook_signed_with_a_wrong_secret_is_refused(self):
        invoice = self.make_invoice()
        forged = self.build(invoice, EventType.PAID, secret=self.wrong_secret)
        self.assert_refused(forged, invoice, "invalid_signature")

    def test_an_unsigned_webhook_is_refused(self):
        invoice = self.make_invoice()
        unsigned = self.resign(self.build(invoice, EventType.PAID), "")
        self.assert_refused(unsigned, invoice, "missing_signature")

    def test_a_garbage_signature_is_refused(self):
        invoice = self.make_invoice()
        garbage = self.resign(self.build(invoice, EventType.PAID), "deadbeef" * 8)
        self.assert_refused(garbage, invoice, "invalid_signature")

    def test_a_tampered_webhook_is_refused(self):
        invoice = self.make_invoice()
        webhook = self.build(invoice, EventType.PAID)
        tampered = self.tamper(webhook)
        assert tampered.body != webhook.body
        assert tampered.signature == webhook.signature
        self.assert_refused(tampered, invoice, "invalid_signature")

    def test_a_reserialised_webhook_follows_what_the_signature_covers(self):
        invoice = self.make_invoice()
        webhook = self.build(invoice, EventType.PAID)
        other = self.reserialise(webhook)
        assert other.body != webhook.body
        if self.signs_raw_body:
            self.assert_refused(other, invoice, "invalid_signature")
            # Only the other spelling was refused: the original still pays.
            self.assert_acknowledged(self.post(webhook))
            assert WebhookEvent.objects.get().deliveries == 1
        else:
            self.assert_acknowledged(self.post(other))
            # The same fields are the same event: the original is a redelivery.
            self.assert_acknowledged(self.post(webhook))
            assert WebhookEvent.objects.get().deliveries == 2
        invoice.refresh_from_db()
        assert invoice.status == InvoiceStatus.PAID

    @pytest.mark.parametrize("ahead", [False, True], ids=["past", "future"])
    def test_a_webhook_outside_the_timestamp_window_is_refused(self, ahead):
        self.requires("stale")
        invoice = self.make_invoice()
        webhook = self.stale(invoice, EventType.PAID, ahead=ahead)
        self.assert_refused(
            webhook, invoice, "future_timestamp" if ahead else "stale_timestamp"
        )

    def test_the_previous_secret_is_accepted_during_a_rotation(self):
        self.requires("rotation")
        assert self.secret_option and self.previous_secrets_option, (
            f"{type(self).__name__}: name the secret options or excuse rotation"
        )
        config = copy.deepcopy(self._settings.PAYMENTS_RU)
        options = config["PROVIDERS"][self.alias]["OPTIONS"]
        assert options[self.secret_option] == self.secret
        new = f"{self.secret}-rotated"
        options[self.secret_option] = new
        options[self.previous_secrets_option] = [self.secret]
        self._settings.PAYMENTS_RU = config
        old_one, new_one, forged = (self.make_invoice() for _ in range(3))
        self.assert_acknowledged(self.post(self.build(old_one, secret=self.secret)))
        self.assert_acknowledged(self.post(self.build(new_one, secret=new)))
        for invoice in (old_one, new_one):
            invoice.refresh_from_db()
            assert invoice.status == InvoiceStatus.PAID
        self.assert_refused(
            self.build(forged, secret=self.wrong_secret), forged, "invalid_signature"
        )

    # --- repeated, late, malformed ----------------------------------------------------

    def test_the_same_webhook_twice_is_one_transition_one_signal_one_row(self):
        invoice = self.make_invoice()
        webhook = self.build(invoice, EventType.PAID)
        self.assert_acknowledged(self.post(webhook))
        self.assert_acknowledged(self.post(webhook))
        row = WebhookEvent.objects.get()
        assert (row.deliveries, row.attempts) == (2, 1)
        assert Payment.objects.count() == 1
        assert self.signals.count("invoice_paid") == 1
        assert self.signals.count("invoice_status_changed") == 1

    def test_a_failure_after_the_payment_keeps_it_paid(self):
        self.requires("failed")
        invoice = self.make_invoice()
        self.pay(invoice)
        paid_row = WebhookEvent.objects.get()
        before = self.snapshot(invoice)
        self.assert_acknowledged(self.post(self.build(invoice, EventType.FAILED)))
        late = WebhookEvent.objects.exclude(pk=paid_row.pk).get()
        assert late.status == WebhookEvent.Status.IGNORED
        after = self.snapshot(invoice)
        assert after.invoice == before.invoice
        assert after.signals == before.signals
        assert after.rows == {**before.rows, "WebhookEvent": 2}

    def test_a_signed_but_malformed_webhook_is_a_400_and_writes_nothing(self):
        invoice = self.make_invoice()
        cases = self.malformed(invoice)
        assert cases
        for label, webhook in cases.items():
            before = self.snapshot(invoice)
            response = self.post(webhook)
            assert response.status_code == 400, label
            assert self.snapshot(invoice) == before, label

    # --- the door ---------------------------------------------------------------------

    def test_a_get_is_refused_and_writes_nothing(self):
        invoice = self.make_invoice()
        before = self.snapshot(invoice)
        response = self.post(self.build(invoice, EventType.PAID), method="GET")
        assert response.status_code == 405
        assert self.snapshot(invoice) == before

    def test_an_unknown_alias_is_refused_and_writes_nothing(self):
        invoice = self.make_invoice()
        before = self.snapshot(invoice)
        webhook = self.build(invoice, EventType.PAID)
        response = self.post(webhook, alias=f"{self.alias}-unknown")
        assert response.status_code == 404
        assert self.snapshot(invoice) == before
