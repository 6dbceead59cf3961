"""Invoices, the money that moved for them, and the webhook inbox."""

from __future__ import annotations

import uuid
from decimal import Decimal
from typing import TYPE_CHECKING, Any

import django
from django.db import models
from django.db.models import F, Q
from django.urls import NoReverseMatch, reverse
from django.utils import timezone
from django.utils.translation import gettext_lazy as _

from .events import EventType, PaymentEvent
from .formatting import format_money
from .money import DECIMAL_PLACES, MAX_DIGITS, exponent
from .results import Message, render, shown, text
from .status import AWAITING, CANCELLABLE, PAID_STATES, InvoiceStatus

if TYPE_CHECKING:
    from django.http import HttpRequest

    from .providers.base import BaseProvider, Checkout
    from .receipts import Receipt


def check_constraint(condition: Q, name: str) -> models.CheckConstraint:
    """``CheckConstraint`` on Django 4.2 (``check=``) and 5.1+ (``condition=``)."""
    if django.VERSION >= (5, 1):
        return models.CheckConstraint(condition=condition, name=name)
    return models.CheckConstraint(check=condition, name=name)  # type: ignore[call-arg]


def _money_field(verbose_name: Any, **kwargs: Any) -> models.DecimalField:
    return models.DecimalField(
        verbose_name, max_digits=MAX_DIGITS, decimal_places=DECIMAL_PLACES, **kwargs
    )


def _message(value: Message | str | None) -> Message | None:
    if value is None or value == "":
        return None
    return value if isinstance(value, Message) else text(value)


class Invoice(models.Model):
    """A sum a customer owes the shop, paid through one provider.

    The status changes only through :mod:`django_payments_ru.services`.
    """

    uuid = models.UUIDField(
        _("reference"), default=uuid.uuid4, unique=True, editable=False
    )
    provider = models.CharField(_("provider"), max_length=64)
    status = models.CharField(
        _("status"),
        max_length=32,
        choices=InvoiceStatus.choices,
        default=InvoiceStatus.CREATED,
    )
    amount = _money_field(_("amount"))
    currency = models.CharField(_("currency"), max_length=3, default="RUB")
    paid_amount = _money_field(_("paid"), default=Decimal(0))
    refunded_amount = _money_field(_("refunded"), default=Decimal(0))

    order_id = models.CharField(_("order id"), max_length=64, blank=True)
    #: The shop's order this invoice pays. Invoices with the same key are one
    #: order's alternatives (one per provider, or one per attempt): once one of
    #: them is paid the others are cancelled, and a payment that still arrives on
    #: another is flagged as a double payment (``paid_twice``). Empty: the invoice
    #: stands alone.
    order_key = models.CharField(_("order"), max_length=64, blank=True)
    description = models.CharField(_("description"), max_length=255, blank=True)
    customer_email = models.EmailField(_("customer e-mail"), blank=True)
    customer_phone = models.CharField(_("customer phone"), max_length=32, blank=True)
    metadata = models.JSONField(_("metadata"), default=dict, blank=True)
    #: The 54-FZ receipt (:meth:`Receipt.to_json()
    #: <django_payments_ru.receipts.Receipt.to_json>`), validated by
    #: :func:`~django_payments_ru.services.create_invoice`; ``{}``: none.
    receipt = models.JSONField(_("receipt"), default=dict, blank=True)
    #: Where the customer is sent after the provider's page (the shop's order page).
    return_url = models.CharField(_("return URL"), max_length=2000, blank=True)

    provider_payment_id = models.CharField(
        _("provider payment id"), max_length=128, blank=True
    )
    #: The provider's id of the money movement when it differs from the payment
    #: (Life-Pay's ``tid`` of the charge or hold): set by the services from the
    #: events (:attr:`PaymentEvent.transaction_id`), read by the provider.
    provider_transaction_id = models.CharField(
        _("provider transaction id"), max_length=128, blank=True
    )
    #: How the customer reaches the provider: {"method", "url", "fields"}.
    checkout = models.JSONField(_("checkout"), default=dict, blank=True)
    expires_at = models.DateTimeField(_("payment expires"), null=True, blank=True)

    needs_attention = models.BooleanField(_("needs attention"), default=False)
    #: The customer paid this order twice (this invoice and another of the same
    #: ``order_key``, or twice on this invoice): one payment is to be refunded.
    paid_twice = models.BooleanField(_("paid twice"), default=False)
    #: The attention history written before version 0.6 (text in the language
    #: of the process that wrote it); new notes go to ``attention_notes``.
    attention_reason = models.TextField(_("attention reason"), blank=True)
    #: The attention history: ``[{"at": "YYYY-MM-DD HH:MM", "code", "params"}]``
    #: (see :mod:`django_payments_ru.results`), translated when shown.
    attention_notes = models.JSONField(_("attention notes"), default=list, blank=True)

    created_at = models.DateTimeField(_("created"), auto_now_add=True)
    updated_at = models.DateTimeField(_("updated"), auto_now=True)
    status_changed_at = models.DateTimeField(_("status changed"), null=True, blank=True)
    paid_at = models.DateTimeField(_("paid at"), null=True, blank=True)

    class Meta:
        verbose_name = _("invoice")
        verbose_name_plural = _("invoices")
        ordering = ["-created_at", "-id"]
        constraints = [
            check_constraint(Q(amount__gt=0), "payments_ru_invoice_amount_positive"),
            check_constraint(
                Q(paid_amount__gte=0) & Q(refunded_amount__gte=0),
                "payments_ru_invoice_totals_not_negative",
            ),
            check_constraint(
                Q(refunded_amount__lte=F("paid_amount")),
                "payments_ru_invoice_refunded_lte_paid",
            ),
        ]
        indexes = [
            # The admin's list in its order and sorted by a column, either way
            # (admin/scale.py index_orders): each ends with the primary key,
            # so that a later page's ids are read from the index alone.
            models.Index(
                fields=["status", "-created_at", "-id"],
                name="payments_ru_inv_status_sort",
            ),
            models.Index(
                fields=["provider", "-created_at", "-id"],
                name="payments_ru_inv_prov_sort",
            ),
            models.Index(
                fields=["-created_at", "-id"], name="payments_ru_inv_created_sort"
            ),
            models.Index(
                fields=["amount", "-created_at", "-id"],
                name="payments_ru_inv_amount_sort",
            ),
            models.Index(
                fields=["paid_at", "-created_at", "-id"],
                name="payments_ru_inv_paid_sort",
            ),
            models.Index(
                fields=["customer_email", "-created_at", "-id"],
                name="payments_ru_inv_email_sort",
            ),
            models.Index(
                fields=["needs_attention", "-created_at"],
                name="payments_ru_inv_attention",
            ),
            models.Index(fields=["order_id"], name="payments_ru_inv_order"),
            models.Index(
                fields=["order_key", "status"],
                name="payments_ru_inv_order_key",
                condition=~Q(order_key=""),
            ),
            models.Index(
                fields=["-created_at"],
                name="payments_ru_inv_paid_twice",
                condition=Q(paid_twice=True),
            ),
            models.Index(fields=["customer_phone"], name="payments_ru_inv_phone"),
            models.Index(
                fields=["provider", "provider_payment_id"],
                name="payments_ru_inv_provider_id",
            ),
            # The admin's search: exact and prefix (LIKE 'x%'), which on
            # PostgreSQL needs the pattern operator class under any collation
            # but C; other databases ignore ``opclasses``. Migration 0005 adds
            # the PostgreSQL-only ones (lower(e-mail), the description's words).
            models.Index(
                fields=["order_id"],
                name="payments_ru_inv_order_like",
                opclasses=["varchar_pattern_ops"],
            ),
            models.Index(
                fields=["provider_payment_id"],
                name="payments_ru_inv_pay_id",
                opclasses=["varchar_pattern_ops"],
            ),
            models.Index(
                fields=["provider_transaction_id"],
                name="payments_ru_inv_txn_id",
                opclasses=["varchar_pattern_ops"],
            ),
        ]

    def __str__(self) -> str:
        label = self.order_id or str(self.uuid)[:8]
        amount = format_money(self.amount, self.currency)
        return f"{label}: {amount} ({self.get_status_display()})"

    # --- helpers ------------------------------------------------------------

    def get_provider(self) -> BaseProvider:
        from .registry import get_provider

        return get_provider(self.provider)

    def get_checkout(self) -> Checkout | None:
        """The stored :class:`~django_payments_ru.providers.base.Checkout`, if any."""
        from .providers.base import Checkout

        return Checkout.from_json(self.checkout) if self.checkout else None

    def get_receipt(self) -> Receipt | None:
        """The invoice's :class:`~django_payments_ru.receipts.Receipt`, or
        ``None`` when it has none."""
        from .receipts import Receipt

        return Receipt.from_json(self.receipt) if self.receipt else None

    def add_attention_note(self, note: Message | str) -> None:
        """Append ``note`` (a :class:`~django_payments_ru.results.Message`, or
        free text shown as it is), stamped with the time, to the attention
        history (not saved; the caller holds the row lock and saves). The same
        note as the last one is not repeated: a status poll that finds the same
        problem again (an underpayment) says it once."""
        message = note if isinstance(note, Message) else text(note)
        entry = message.to_json()
        notes = list(self.attention_notes or [])
        if notes and {k: notes[-1].get(k) for k in entry} == entry:
            return
        stamp = timezone.now().strftime("%Y-%m-%d %H:%M")
        self.attention_notes = [*notes, {"at": stamp, **entry}]

    @property
    def attention_lines(self) -> list[str]:
        """The attention history, a line per note, in the active language
        (the text of notes written before codes first)."""
        lines = self.attention_reason.splitlines() if self.attention_reason else []
        for note in self.attention_notes or []:
            said = render(str(note.get("code", "")), note.get("params") or {})
            lines.append(f"{note.get('at', '')}: {said}")
        return lines

    @property
    def attention_text(self) -> str:
        """:attr:`attention_lines` as one text."""
        return "\n".join(self.attention_lines)

    def get_return_path(self) -> str:
        try:
            return reverse("django_payments_ru:return", kwargs={"ref": self.uuid})
        except NoReverseMatch:  # the app's URLs are not included
            return ""

    def get_pay_url(self, request: HttpRequest | None = None) -> str:
        """The absolute pay link (``/payments/pay/<token>/``): it starts the
        payment when the customer opens it, so it can go in an e-mail. See
        :func:`django_payments_ru.services.pay_link`."""
        from .paylinks import pay_link

        return pay_link(self, request)

    @property
    def is_paid(self) -> bool:
        return self.status in PAID_STATES

    @property
    def is_awaiting_provider(self) -> bool:
        return self.status in AWAITING

    @property
    def can_cancel(self) -> bool:
        return self.status in CANCELLABLE

    def quantize(self, value: Decimal) -> Decimal:
        """``value`` with exactly the currency's decimals (the column keeps 3)."""
        return value.quantize(Decimal(1).scaleb(-exponent(self.currency)))

    @property
    def refundable_amount(self) -> Decimal:
        """Paid and not yet refunded (refunds in flight not deducted)."""
        return self.quantize(self.paid_amount - self.refunded_amount)

    def siblings(self) -> models.QuerySet[Invoice]:
        """The other invoices of the same order (none without ``order_key``)."""
        if not self.order_key:
            return Invoice.objects.none()
        return Invoice.objects.filter(order_key=self.order_key).exclude(pk=self.pk)


class Operation(models.Model):
    """An operation sent to the provider, claimed before it is sent.

    A start, refund, capture, release or cancel is recorded here under the
    invoice's row lock, then sent outside the transaction, then settled exactly
    once by the provider's answer, a webhook or a status poll. What is in flight
    counts against what may still be refunded; at most one start, capture,
    release or cancel is in flight per invoice (a database constraint).
    """

    class Kind(models.TextChoices):
        START = "start", _("Start")
        REFUND = "refund", _("Refund")
        CAPTURE = "capture", _("Capture")
        RELEASE = "release", _("Release")
        CANCEL = "cancel", _("Cancel")

    class State(models.TextChoices):
        IN_FLIGHT = "in_flight", _("In flight")
        CONFIRMED = "confirmed", _("Confirmed")
        FAILED = "failed", _("Failed")

    #: Kinds of which one at a time may be in flight on an invoice.
    EXCLUSIVE = (Kind.START, Kind.CAPTURE, Kind.RELEASE, Kind.CANCEL)

    invoice = models.ForeignKey(
        Invoice,
        on_delete=models.PROTECT,
        related_name="operations",
        verbose_name=_("invoice"),
    )
    kind = models.CharField(_("kind"), max_length=16, choices=Kind.choices)
    state = models.CharField(
        _("state"), max_length=16, choices=State.choices, default=State.IN_FLIGHT
    )
    amount = _money_field(_("amount"), null=True, blank=True)
    #: Sent to the provider as the idempotency key where its API takes one.
    key = models.CharField(_("idempotency key"), max_length=64, unique=True)
    #: Why it failed, or what confirmed it: a code of
    #: :mod:`django_payments_ru.results` and its parameters, translated when
    #: shown (:attr:`reason_text`). ``reason``: the text of rows written before.
    reason = models.TextField(_("result"), blank=True)
    reason_code = models.CharField(_("result code"), max_length=64, blank=True)
    reason_params = models.JSONField(_("result parameters"), default=dict, blank=True)
    #: For a start in flight: until when its caller holds the invoice. After
    #: that (the caller died or timed out) the next start reconciles it first.
    lease_until = models.DateTimeField(_("lease until"), null=True, blank=True)
    attempts = models.PositiveIntegerField(_("attempts"), default=1)
    #: A refund's receipt lines (:meth:`Receipt.to_json()
    #: <django_payments_ru.receipts.Receipt.to_json>`); ``{}``: none.
    receipt = models.JSONField(_("receipt"), default=dict, blank=True)
    created_at = models.DateTimeField(_("created"), auto_now_add=True)
    settled_at = models.DateTimeField(_("settled"), null=True, blank=True)

    class Meta:
        verbose_name = _("operation")
        verbose_name_plural = _("operations")
        ordering = ["created_at", "id"]
        constraints = [
            check_constraint(
                Q(amount__isnull=True) | Q(amount__gt=0),
                "payments_ru_operation_amount_positive",
            ),
            models.UniqueConstraint(
                fields=["invoice"],
                condition=Q(state="in_flight")
                & Q(kind__in=["start", "capture", "release", "cancel"]),
                name="payments_ru_operation_one_in_flight",
            ),
        ]
        indexes = [
            models.Index(
                fields=["invoice", "kind"],
                name="payments_ru_op_in_flight",
                condition=Q(state="in_flight"),
            ),
            models.Index(fields=["state", "-created_at"], name="payments_ru_op_state"),
        ]

    def __str__(self) -> str:
        amount = (
            f" {format_money(self.amount, self.invoice.currency)}"
            if self.amount
            else ""
        )
        return f"{self.get_kind_display()}{amount} ({self.get_state_display()})"

    @property
    def in_flight(self) -> bool:
        return self.state == self.State.IN_FLIGHT

    def get_receipt(self) -> Receipt | None:
        """The refund's receipt lines, or ``None``."""
        from .receipts import Receipt

        return Receipt.from_json(self.receipt) if self.receipt else None

    @property
    def reason_text(self) -> str:
        """The result in the active language."""
        return shown(self.reason_code, self.reason_params, self.reason)

    def set_reason(self, reason: Message | str | None) -> None:
        """Record ``reason`` (free text is kept as it is)."""
        message = _message(reason)
        self.reason = ""
        self.reason_code = message.code if message else ""
        self.reason_params = dict(message.params) if message else {}


class Payment(models.Model):
    """Money that moved for an invoice: a charge or a refund. Append-only."""

    class Kind(models.TextChoices):
        CHARGE = "charge", _("Charge")
        REFUND = "refund", _("Refund")

    invoice = models.ForeignKey(
        Invoice,
        on_delete=models.PROTECT,
        related_name="payments",
        verbose_name=_("invoice"),
    )
    kind = models.CharField(_("kind"), max_length=16, choices=Kind.choices)
    amount = _money_field(_("amount"))
    currency = models.CharField(_("currency"), max_length=3)
    provider_payment_id = models.CharField(
        _("provider payment id"), max_length=128, blank=True
    )
    event = models.ForeignKey(
        "WebhookEvent",
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="payments",
        verbose_name=_("webhook event"),
    )
    #: The dedupe id of the event that recorded it (webhook, poll or API answer):
    #: one event never records the same money twice.
    source = models.CharField(_("source event"), max_length=255)
    created_at = models.DateTimeField(_("created"), auto_now_add=True)

    class Meta:
        verbose_name = _("payment")
        verbose_name_plural = _("payments")
        ordering = ["created_at", "id"]
        constraints = [
            check_constraint(Q(amount__gt=0), "payments_ru_payment_amount_positive"),
            models.UniqueConstraint(
                fields=["invoice", "kind", "source"],
                name="payments_ru_payment_once_per_event",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.get_kind_display()} {format_money(self.amount, self.currency)}"


class WebhookEvent(models.Model):
    """The inbox: every verified event a provider sent, processed at most once."""

    class Status(models.TextChoices):
        RECEIVED = "received", _("Received")
        PROCESSED = "processed", _("Processed")
        IGNORED = "ignored", _("Ignored")
        REJECTED = "rejected", _("Rejected")
        FAILED = "failed", _("Failed")

    #: Statuses whose event is done: a redelivery is acknowledged without rework.
    DONE = frozenset({Status.PROCESSED, Status.IGNORED, Status.REJECTED})

    provider = models.CharField(_("provider"), max_length=64)
    dedupe_id = models.CharField(_("event id"), max_length=255)
    event_type = models.CharField(
        _("event type"), max_length=32, choices=EventType.choices
    )
    status = models.CharField(
        _("status"), max_length=16, choices=Status.choices, default=Status.RECEIVED
    )
    invoice = models.ForeignKey(
        Invoice,
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="webhook_events",
        verbose_name=_("invoice"),
    )
    #: The normalized event (see PaymentEvent.to_json).
    event = models.JSONField(_("event"), default=dict)
    #: The payload as received, with secrets removed.
    payload = models.JSONField(_("payload"), default=dict, blank=True)
    #: Why it was ignored or rejected, or the error of the last failed attempt:
    #: a code of :mod:`django_payments_ru.results` and its parameters,
    #: translated when shown (:attr:`result_text`). ``result``: the text of
    #: rows written before.
    result = models.TextField(_("result"), blank=True)
    result_code = models.CharField(_("result code"), max_length=64, blank=True)
    result_params = models.JSONField(_("result parameters"), default=dict, blank=True)
    traceback = models.TextField(_("traceback"), blank=True)
    attempts = models.PositiveIntegerField(_("attempts"), default=0)
    deliveries = models.PositiveIntegerField(_("deliveries"), default=1)
    received_at = models.DateTimeField(_("received"), auto_now_add=True)
    processed_at = models.DateTimeField(_("processed"), null=True, blank=True)
    #: When processing was last tried, successfully or not: the sweeper's
    #: backoff counts from it.
    last_attempt_at = models.DateTimeField(_("last attempt"), null=True, blank=True)
    #: Given up after its attempts ran out: no longer retried, and the
    #: merchant must look at it (and at its invoice, flagged too).
    needs_attention = models.BooleanField(_("needs attention"), default=False)

    class Meta:
        verbose_name = _("webhook event")
        verbose_name_plural = _("webhook events")
        ordering = ["-received_at", "-id"]
        constraints = [
            models.UniqueConstraint(
                fields=["provider", "dedupe_id"], name="payments_ru_webhook_once"
            ),
        ]
        indexes = [
            # The admin's list sorted by a column, either way (see Invoice).
            models.Index(
                fields=["status", "-received_at", "-id"],
                name="payments_ru_wh_status_sort",
            ),
            models.Index(
                fields=["provider", "-received_at", "-id"],
                name="payments_ru_wh_prov_sort",
            ),
            models.Index(
                fields=["event_type", "-received_at", "-id"],
                name="payments_ru_wh_type_sort",
            ),
            # The admin: the list's order, the event id alone (exact and
            # prefix), the events that need attention.
            models.Index(
                fields=["-received_at", "-id"], name="payments_ru_wh_received"
            ),
            models.Index(
                fields=["dedupe_id"],
                name="payments_ru_wh_dedupe",
                opclasses=["varchar_pattern_ops"],
            ),
            models.Index(
                fields=["-received_at"],
                name="payments_ru_wh_attention",
                condition=Q(needs_attention=True),
            ),
        ]

    def __str__(self) -> str:
        return f"{self.provider} {self.event_type} {self.dedupe_id}"

    @property
    def is_done(self) -> bool:
        return self.status in self.DONE

    @property
    def result_text(self) -> str:
        """The result in the active language."""
        return shown(self.result_code, self.result_params, self.result)

    def set_result(self, result: Message | str | None) -> None:
        """Record ``result`` (free text is kept as it is)."""
        message = _message(result)
        self.result = ""
        self.result_code = message.code if message else ""
        self.result_params = dict(message.params) if message else {}

    def to_event(self) -> PaymentEvent:
        return PaymentEvent.from_json(self.event, raw=self.payload)


class IdempotencyKey(models.Model):
    """An ``Idempotency-Key`` of the merchant API's invoice create
    (docs/api-merchant.rst): the same key from the same caller, with the same
    body, is answered with the first answer instead of making a second invoice.

    Written in the transaction that creates the invoice, so a create that fails
    leaves no key behind; the unique ``(owner, key)`` makes a concurrent second
    request with the key wait for the first and then replay its answer. Kept for
    ``PAYMENTS_RU["API_IDEMPOTENCY_TTL"]``.
    """

    #: Whose key: ``"<app_label>.<model>:<pk>"`` of the user who sent it
    #: (``"anonymous"`` when the project's permissions let anonymous callers in).
    owner = models.CharField(_("owner"), max_length=150)
    key = models.CharField(_("idempotency key"), max_length=255)
    #: SHA-256 of the request's body as canonical JSON: the same key with
    #: another body is refused.
    fingerprint = models.CharField(_("request fingerprint"), max_length=64)
    invoice = models.ForeignKey(
        Invoice,
        on_delete=models.CASCADE,
        related_name="+",
        verbose_name=_("invoice"),
    )
    #: The first answer, replayed as it was.
    status_code = models.PositiveSmallIntegerField(_("status code"))
    response = models.JSONField(_("response"), default=dict)
    created_at = models.DateTimeField(_("created"), default=timezone.now)

    class Meta:
        verbose_name = _("idempotency key")
        verbose_name_plural = _("idempotency keys")
        constraints = [
            models.UniqueConstraint(
                fields=["owner", "key"], name="payments_ru_idempotency_once"
            ),
        ]
        indexes = [
            # The sweep of expired keys.
            models.Index(fields=["created_at"], name="payments_ru_idem_created"),
        ]

    def __str__(self) -> str:
        return f"{self.owner} {self.key}"
