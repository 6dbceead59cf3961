"""The only code that changes an invoice's status.

Public functions: :func:`create_invoice`, :func:`start_payment`,
:func:`refresh_invoice`, :func:`refund_invoice`, :func:`cancel_invoice`,
:func:`capture_invoice`, :func:`release_invoice`; the webhook pipeline uses
:func:`record_events` and :func:`process_webhook_event`; :func:`apply_event`
applies any verified :class:`~django_payments_ru.events.PaymentEvent`.

Provider calls never run inside a database transaction: the services call the
provider first, then lock the invoice row and apply the result.
"""

from __future__ import annotations

import logging
import time
import traceback
import uuid
import warnings
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, replace
from datetime import timedelta
from decimal import Decimal
from enum import StrEnum
from functools import partial
from typing import Any, TypeVar

from django.core.exceptions import ImproperlyConfigured, ValidationError
from django.core.validators import validate_email
from django.db import DataError, IntegrityError, connections, router, transaction
from django.db.models import Exists, F, OuterRef, Q, Subquery, Sum
from django.db.models.sql import Query
from django.http import HttpRequest
from django.utils import timezone
from django.utils.translation import gettext as _
from django.utils.translation import ngettext

from . import rows, signals, validation
from .conf import payments_settings
from .events import EventType, PaymentEvent, check_event
from .exceptions import (
    EventNotConfirmed,
    InvalidAmount,
    InvalidInput,
    InvalidOperation,
    NotSupported,
    OperationInFlight,
    PaymentsError,
    ProviderAPIError,
    RemovedInDjangoPaymentsRu2Warning,
    TransactionOpen,
    WebhookParseError,
)
from .formatting import format_money
from .models import Invoice, Operation, Payment, WebhookEvent
from .money import normalize_currency, to_amount
from .providers.base import BaseProvider, Capability, Checkout
from .receipts import Receipt, from_legacy_metadata, parse_receipt, parse_refund_lines
from .registry import get_provider
from .results import Message, msg
from .status import (
    CANCELLABLE,
    PAID_STATES,
    PAYABLE,
    InvoiceStatus,
    Outcome,
    refund_target,
    rule_for,
)

logger = logging.getLogger("django_payments_ru")
T = TypeVar("T")
_UUID = uuid.UUID  # create_invoice's ``uuid`` argument hides the module

__all__ = [
    "ApplyResult",
    "apply_event",
    "cancel_invoice",
    "capture_invoice",
    "checkout_usable",
    "close_order",
    "create_invoice",
    "pay_link",
    "process_webhook_event",
    "receive_webhook_events",
    "record_events",
    "refresh_invoice",
    "refund_invoice",
    "refund_lines",
    "refunded_receipts",
    "release_claim",
    "release_invoice",
    "start_payment",
    "update_invoice_details",
]


# --- creating and starting ----------------------------------------------------


def _field_label(field: str) -> str:
    """How people call the invoice's ``field`` ("Order id"), not its name."""
    from django.core.exceptions import FieldDoesNotExist
    from django.utils.text import capfirst

    try:
        found = Invoice._meta.get_field(field)
    except FieldDoesNotExist:
        return field
    return str(capfirst(getattr(found, "verbose_name", field)))


def _limit(value: Any, field: str, max_length: int) -> str:
    if value is None:
        return ""
    if not isinstance(value, str):
        raise InvalidInput(
            _("%(field)s must be a string.") % {"field": _field_label(field)},
            field=field,
        )
    value = validation.check_text(value.strip(), field)
    if len(value) > max_length:
        raise InvalidInput(
            ngettext(
                "%(field)s is longer than %(max)d character.",
                "%(field)s is longer than %(max)d characters.",
                max_length,
            )
            % {"field": _field_label(field), "max": max_length},
            field=field,
        )
    return value


def create_invoice(
    *,
    provider: str,
    amount: Decimal | int | str,
    currency: str = "RUB",
    order_id: str = "",
    description: str = "",
    customer_email: str = "",
    customer_phone: str = "",
    metadata: dict[str, Any] | None = None,
    return_url: str = "",
    order_key: str = "",
    uuid: _UUID | None = None,
    receipt: Receipt | Mapping[str, Any] | list[Any] | None = None,
) -> Invoice:
    """Create an invoice for ``amount`` to be paid through the provider ``provider``
    (an alias of ``PAYMENTS_RU["PROVIDERS"]``). Validates everything before it
    writes anything: a bad amount, currency or field raises
    :class:`~django_payments_ru.exceptions.InvalidInput` and no row is created.
    Nothing is sent to the provider until :func:`start_payment`.

    No text (``order_id``, ``description``, ``customer_email``,
    ``customer_phone``, ``return_url``, the strings inside ``metadata``) may
    hold a control character or a lone surrogate. ``return_url``, where the
    return view sends the customer after paying, must be an absolute ``http(s)``
    URL on the shop's host: ``BASE_URL``'s or one of ``RETURN_URL_HOSTS``
    (:doc:`/configuration`).

    ``order_key`` groups the invoices of one shop order (one per provider, or one
    per attempt): once one of them is paid the others are cancelled, and a
    payment that still arrives on another is applied and flagged as paid twice.
    An order that is already paid takes no new invoice
    (:class:`~django_payments_ru.exceptions.InvalidOperation`).

    ``uuid`` names the invoice in advance, for a caller that must give the
    provider the invoice's reference before the row exists (a batch upload);
    by default a random one is made. A UUID already taken is refused.

    ``receipt`` is the 54-FZ receipt (:doc:`/receipts`): a
    :class:`~django_payments_ru.receipts.Receipt`, ``{"lines": [...],
    "delivery": "email"}`` or a list of lines, validated by
    :func:`~django_payments_ru.receipts.parse_receipt` (the lines add up to
    ``amount``). A provider without
    :attr:`~django_payments_ru.providers.base.Capability.RECEIPTS` refuses it
    with :class:`~django_payments_ru.exceptions.NotSupported` unless
    ``PAYMENTS_RU["RECEIPTS_PRINTED_ELSEWHERE"]`` is true. Life-Pay's old
    ``metadata["receipt"]`` is still read, with a
    :class:`~django_payments_ru.exceptions.RemovedInDjangoPaymentsRu2Warning`:
    it becomes ``receipt`` and leaves the stored metadata."""
    backend = get_provider(provider)
    code = normalize_currency(currency)
    value = to_amount(amount, code)
    email = _limit(customer_email, "customer_email", 254)
    if email:
        try:
            validate_email(email)
        except ValidationError:
            raise InvalidInput(
                _("%(email)r is not a valid e-mail address.") % {"email": email},
                field="customer_email",
            ) from None
    phone = _limit(customer_phone, "customer_phone", 32)
    digits = phone[1:] if phone.startswith("+") else phone
    if phone and not (digits.isascii() and digits.isdigit()):
        raise InvalidInput(
            _("A phone number is digits with an optional leading '+'."),
            field="customer_phone",
        )
    if metadata is not None and not isinstance(metadata, dict):
        raise InvalidInput(_("metadata must be a dict."), field="metadata")
    validation.check_texts(metadata, "metadata")
    metadata, receipt = _legacy_receipt(metadata, receipt)
    lines = _receipt_for(backend, receipt, value, code)
    back = _limit(return_url, "return_url", 2000)
    if back:
        # The return view redirects the customer there: the shop's hosts only.
        validation.check_return_url(back)
    if uuid is not None and not isinstance(uuid, _UUID):
        raise InvalidInput(_("uuid must be a UUID."), field="uuid")
    invoice = Invoice(
        provider=provider,
        amount=value,
        currency=code,
        order_id=_limit(order_id, "order_id", 64),
        description=_limit(description, "description", 255),
        customer_email=email,
        customer_phone=phone,
        metadata=metadata or {},
        return_url=back,
        order_key=_limit(order_key, "order_key", 64),
        receipt=lines.to_json() if lines is not None else {},
    )
    if uuid is not None:
        if Invoice.objects.filter(uuid=uuid).exists():
            raise InvalidInput(
                _("An invoice with this uuid already exists."), field="uuid"
            )
        invoice.uuid = uuid
    backend.validate_invoice(invoice)
    _refuse_paid_order(invoice)
    if uuid is None:
        invoice.save()
        return invoice
    try:
        # The check above is not a lock: two callers racing for one uuid meet
        # the unique index, and the loser gets the same clear error.
        with transaction.atomic():
            invoice.save(force_insert=True)
    except IntegrityError:
        if Invoice.objects.filter(uuid=uuid).exists():
            raise InvalidInput(
                _("An invoice with this uuid already exists."), field="uuid"
            ) from None
        raise
    return invoice


def _legacy_receipt(
    metadata: dict[str, Any] | None, receipt: Any
) -> tuple[dict[str, Any] | None, Any]:
    """The metadata without Life-Pay's deprecated ``"receipt"`` key, and the
    receipt it held (converted to the neutral lines)."""
    if not metadata or "receipt" not in metadata:
        return metadata, receipt
    warnings.warn(
        'metadata["receipt"] is deprecated and will be removed in '
        "django-payments-ru 2.0: pass the lines as create_invoice(receipt=...) "
        "(docs/receipts.rst).",
        RemovedInDjangoPaymentsRu2Warning,
        stacklevel=3,
    )
    if receipt is not None:
        raise InvalidInput(
            _('Give the receipt once: as receipt, not also as metadata["receipt"].'),
            field="receipt",
        )
    converted = from_legacy_metadata(metadata)
    rest = {key: value for key, value in metadata.items() if key != "receipt"}
    return rest, converted


def _receipt_for(
    backend: BaseProvider, receipt: Any, amount: Decimal, currency: str
) -> Receipt | None:
    """The validated receipt of a new invoice, refused when ``backend`` prints
    none and the shop does not print it elsewhere."""
    if receipt is None:
        return None
    lines = parse_receipt(receipt, amount=amount, currency=currency)
    if (
        not backend.supports(Capability.RECEIPTS)
        and not payments_settings.RECEIPTS_PRINTED_ELSEWHERE
    ):
        # A shop must never believe a receipt was printed when none was.
        raise NotSupported(
            _(
                "%(name)s does not print 54-FZ receipts: the receipt lines would "
                "not reach the customer. Print them with your own cash register "
                'and set PAYMENTS_RU["RECEIPTS_PRINTED_ELSEWHERE"] = True, or '
                "choose a provider that prints receipts."
            )
            % {"name": backend.display_name},
            provider=backend.alias,
            code="receipts_not_supported",
        )
    return lines


# --- claims ---------------------------------------------------------------------

#: How long a caller of :func:`start_payment` waits for a start that another
#: caller (a second tab, a double click) has in flight, in seconds.
START_WAIT = 20.0
_POLL = 0.05


def _start_lease() -> timedelta:
    """How long a start holds its invoice: long enough for the provider call with
    every retry it may make; after that the holder is taken to have died."""
    timeout = payments_settings.HTTP_TIMEOUT
    if isinstance(timeout, list | tuple):
        seconds = float(sum(timeout))
    else:
        seconds = 2 * float(timeout)
    return timedelta(seconds=seconds * (int(payments_settings.HTTP_RETRIES) + 1) + 10)


def _new_key(kind: str) -> str:
    return f"{kind}-{uuid.uuid4().hex}"


def _outside_transaction(what: str) -> None:
    """Refuse to call a provider inside an open transaction (``ATOMIC_REQUESTS``,
    a caller's ``atomic()``): the claim would be invisible to other processes
    until the commit, and the row locks would be held across a network call.
    The atomic blocks of Django's test cases do not count."""
    connection = transaction.get_connection(router.db_for_write(Invoice))
    if connection.in_atomic_block and any(
        not getattr(block, "_from_testcase", False)
        for block in connection.atomic_blocks
    ):
        raise TransactionOpen(
            _(
                "%(operation)s calls the payment provider and cannot run inside a "
                "database transaction."
            )
            % {"operation": what}
        )


def _lock(invoice: Invoice) -> Invoice:
    """``invoice``'s row, locked (inside the caller's transaction)."""
    return Invoice.objects.select_for_update().get(pk=invoice.pk)


def _busy(invoice: Invoice) -> Operation | None:
    """The start, capture, release or cancel in flight on ``invoice``, if any."""
    return (
        invoice.operations.filter(
            state=Operation.State.IN_FLIGHT, kind__in=Operation.EXCLUSIVE
        )
        .order_by("created_at", "id")
        .first()
    )


def _in_flight_message(operation: Operation) -> str:
    if operation.kind == Operation.Kind.START:
        return _(
            "This invoice's payment is being started (another window or a double "
            "click); try again in a moment."
        )
    return _(
        "A %(operation)s of this invoice was sent to the provider and awaits its "
        "answer; try again once it is settled."
    ) % {"operation": operation.get_kind_display().lower()}


def _settle(operation: Operation, state: str, reason: Message | None = None) -> None:
    """Settle an operation in flight, once: a settled one is left alone."""
    if operation.state != Operation.State.IN_FLIGHT:
        return
    operation.state = state
    operation.set_reason(reason)
    operation.lease_until = None
    operation.settled_at = timezone.now()
    rows.update(operation, [*_SETTLED_FIELDS, "lease_until", "settled_at"])


#: What settling an operation writes besides its lease and time.
_SETTLED_FIELDS = ("state", "reason", "reason_code", "reason_params")


#: Errors after which the provider certainly did nothing: the claim is released.
#: Anything else (no answer, a garbled answer, a bug) may have reached the
#: provider: the claim stays in flight until an answer, webhook or poll settles it.
_REFUSALS = (ProviderAPIError, InvalidInput, NotSupported, InvalidOperation)


def _claim(
    invoice: Invoice,
    kind: str,
    *,
    amount: Decimal | None = None,
    receipt: Receipt | None = None,
) -> Operation:
    """Record ``kind`` on the locked ``invoice`` as in flight. One start, capture,
    release or cancel at a time: another one in flight raises
    :class:`OperationInFlight` (a start whose lease ran out no longer counts: its
    caller died, and nothing it may have created can be paid once the invoice is
    cancelled or captured)."""
    busy = _busy(invoice)
    if busy is not None and kind in Operation.EXCLUSIVE:
        stale = (
            busy.kind == Operation.Kind.START
            and kind != Operation.Kind.START
            and busy.lease_until is not None
            and busy.lease_until <= timezone.now()
        )
        if not stale:
            raise OperationInFlight(_in_flight_message(busy), provider=invoice.provider)
        _settle(busy, Operation.State.FAILED, msg("abandoned"))
    try:
        with transaction.atomic():
            return Operation.objects.create(
                invoice=invoice,
                kind=kind,
                amount=amount,
                key=_new_key(kind),
                receipt=receipt.to_json() if receipt is not None else {},
            )
    except IntegrityError:  # a concurrent claim won (SQLite has no row locks)
        raise OperationInFlight(
            _("Another operation on this invoice is in flight; try again in a moment."),
            provider=invoice.provider,
        ) from None


def _send(operation: Operation, call: Callable[[], T]) -> T:
    """Make the provider call of a claimed ``operation``, outside any
    transaction. A refusal releases the claim with the reason; an error that
    leaves the outcome unknown keeps it in flight."""
    try:
        return call()
    except _REFUSALS as exc:
        # The refusal's text is not ours (the provider's message): a parameter.
        _settle(operation, Operation.State.FAILED, msg("refused", error=str(exc)))
        raise
    except Exception as exc:
        # Only while in flight: a webhook may have settled it during the call.
        Operation.objects.filter(
            pk=operation.pk, state=Operation.State.IN_FLIGHT
        ).update(
            reason="",
            reason_code="no_answer",
            reason_params={"error": type(exc).__name__},
            lease_until=timezone.now(),
        )
        raise


def _order_paid_by(invoice: Invoice) -> Invoice | None:
    """Another invoice of ``invoice``'s order that is already paid, if any."""
    if not invoice.order_key:
        return None  # alone in its order: not even a query to build
    return (
        invoice.siblings()
        .filter(status__in=PAID_STATES)
        .order_by("paid_at", "id")
        .first()
    )


def _refuse_paid_order(invoice: Invoice) -> None:
    other = _order_paid_by(invoice)
    if other is not None:
        raise InvalidOperation(
            _("Order %(order)s is already paid (invoice %(ref)s).")
            % {"order": invoice.order_key, "ref": other.uuid},
            provider=invoice.provider,
        )


def checkout_usable(invoice: Invoice, checkout: Checkout | None = None) -> bool:
    """Whether the invoice's stored checkout (or ``checkout``) still leads to
    a payment page: one is stored, it has not expired, and the last attempt did
    not fail (after a failure the provider wants a new attempt). The one rule
    the services, the template tag and the admin share."""
    if checkout is None:
        checkout = invoice.get_checkout()
    if checkout is None or invoice.status == InvoiceStatus.FAILED:
        return False
    return not checkout.has_expired()


def _copy_row(target: Invoice, source: Invoice) -> None:
    """``target`` as ``source`` was read (instead of a second SELECT)."""
    for f in Invoice._meta.concrete_fields:
        setattr(target, f.attname, getattr(source, f.attname))


def _claim_commits_without_waiting() -> None:
    """On PostgreSQL, the claim of a start commits without waiting for its
    WAL record to reach the disk (``synchronous_commit`` off for this
    transaction only): the claim must be seen by a second caller at once,
    which it is, and it needs no durability of its own. The checkout's
    transaction after the provider call commits durably, and with it
    everything written before, the claim included. Only a crash of the
    database server between the two can lose the claim, and then the start
    it guarded fails too: the customer never got the provider's page, and
    the next start sends a new one."""
    connection = connections[router.db_for_write(Operation)]
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            cursor.execute("SET LOCAL synchronous_commit TO OFF")


def _claim_start(
    invoice: Invoice,
) -> Checkout | tuple[Operation, bool] | None:
    """The stored checkout while it is valid; else our claim on the start (and
    whether it takes over one whose caller died); else ``None``: another caller
    is starting it right now. ``invoice`` is left as its locked row was read."""
    with transaction.atomic():
        _claim_commits_without_waiting()
        locked = _locked_invoice(invoice.pk)
        _copy_row(invoice, locked)
        if locked.status not in PAYABLE:
            raise InvalidOperation(
                _("Invoice %(ref)s cannot be paid: it is %(status)s.")
                % {"ref": locked.uuid, "status": locked.get_status_display()},
                provider=locked.provider,
            )
        _refuse_paid_order(locked)
        existing = locked.get_checkout()
        if existing is not None and checkout_usable(locked, existing):
            return existing
        now = timezone.now()
        # Read with the lock: without an operation in flight there is none to find.
        busy = _busy(locked) if getattr(locked, _IN_FLIGHT) else None
        if busy is not None:
            if busy.kind != Operation.Kind.START:
                raise OperationInFlight(
                    _in_flight_message(busy), provider=locked.provider
                )
            if busy.lease_until is not None and busy.lease_until > now:
                return None
            # Its caller died or timed out: take it over with the same key, and
            # ask the provider for what it may have created before sending again.
            busy.lease_until = now + _start_lease()
            busy.attempts += 1
            busy.save(update_fields=["lease_until", "attempts"])
            return busy, True
        claim = Operation(
            invoice=locked,
            kind=Operation.Kind.START,
            key=_new_key("start"),
            lease_until=now + _start_lease(),
        )
        try:
            with transaction.atomic():
                rows.insert(claim, returning=True)
                return claim, False
        except IntegrityError:
            # A concurrent claim won: SQLite has no row locks, and on
            # PostgreSQL the in-flight flag was read on the statement's
            # snapshot, taken before the lock was granted (the winner changed
            # no column of the invoice, so the row is not read again).
            return None


def start_payment(invoice: Invoice, request: HttpRequest | None = None) -> Checkout:
    """How the customer pays ``invoice``: registers the payment with the provider
    when its API does that, stores the :class:`Checkout` and returns it.

    One start at a time per invoice: the caller claims the invoice (a lease that
    runs out if its process dies) before calling the provider; a concurrent
    caller (a double click, a second tab) waits for that start and gets the same
    checkout; a start that got no answer is reconciled before a second one is
    sent (the same idempotency key, :meth:`BaseProvider.recover_start`). Calling
    it again returns the stored checkout while it is still valid."""
    _outside_transaction("start_payment()")
    deadline = time.monotonic() + START_WAIT
    while True:
        # The invoice is refreshed from its locked row (the caller sees why
        # it cannot be paid, or the checkout someone else stored).
        claim = _claim_start(invoice)
        if isinstance(claim, Checkout):
            return claim
        if claim is not None:
            break
        if time.monotonic() > deadline:
            raise OperationInFlight(
                _(
                    "This invoice's payment is being started (another window or a "
                    "double click); try again in a moment."
                ),
                provider=invoice.provider,
            )
        time.sleep(_POLL)
    operation, recovering = claim
    provider = invoice.get_provider()

    def call() -> Checkout:
        found = provider.recover_start(invoice, operation.key) if recovering else None
        if found is not None:
            return found
        return provider.start(invoice, request, key=operation.key)

    checkout = _send(operation, call)  # network: outside any transaction
    using = router.db_for_write(Invoice)
    with transaction.atomic(using=using), rows.batch(using):
        # One locked read and one write of the invoice: the checkout goes in
        # the UPDATE that moves it to pending (on PostgreSQL in one statement
        # with the claim's confirmation, rows.batch).
        locked = _locked_invoice(invoice.pk)
        locked.checkout = checkout.to_json()
        if checkout.payment_id:
            locked.provider_payment_id = checkout.payment_id[:128]
        locked.expires_at = checkout.expires_at
        stored = ("checkout", "provider_payment_id", "expires_at")
        _settle(operation, Operation.State.CONFIRMED)
        if checkout.payment_id:
            # The provider now holds a payment: that is a fact worth a status.
            _apply_locked(
                locked,
                PaymentEvent(
                    provider=locked.provider,
                    dedupe_id=f"start:{checkout.payment_id}",
                    type=EventType.PENDING,
                    invoice_ref=str(locked.uuid),
                    provider_payment_id=checkout.payment_id,
                ),
                None,
                also=stored,
            )
        else:
            rows.update(locked, [*stored, "updated_at"])
        payable = locked.status in PAYABLE
    _copy_row(invoice, locked)
    if not payable:
        # Cancelled while the provider was being called (the order was paid by
        # another invoice): the customer is not sent to pay it.
        raise InvalidOperation(
            _("Invoice %(ref)s cannot be paid: it is %(status)s.")
            % {"ref": invoice.uuid, "status": invoice.get_status_display()},
            provider=invoice.provider,
        )
    return checkout


# --- applying events ------------------------------------------------------------


class Result(StrEnum):
    APPLIED = "applied"
    NOOP = "noop"
    IGNORED = "ignored"
    REJECTED = "rejected"


@dataclass(frozen=True)
class ApplyResult:
    result: Result
    invoice: Invoice | None
    old_status: str = ""
    new_status: str = ""
    #: Why (stored as a code with the event or the operation).
    message: Message | None = None

    @property
    def reason(self) -> str:
        """:attr:`message` in the active language (empty without one)."""
        return str(self.message) if self.message is not None else ""


def _ref(event: PaymentEvent) -> uuid.UUID | None:
    """The event's invoice reference as a UUID, or None."""
    if not event.invoice_ref:
        return None
    try:
        return uuid.UUID(str(event.invoice_ref))
    except ValueError:
        return None


def _find(qs: Any, event: PaymentEvent) -> Invoice | None:
    ref = _ref(event)
    if ref is not None:
        try:
            return qs.get(uuid=ref)  # unique: no ORDER BY, no LIMIT 1
        except Invoice.DoesNotExist:
            pass
    if event.provider_payment_id:
        found = qs.filter(provider_payment_id=event.provider_payment_id).first()
        if found is not None:
            return found
    if event.order_id:
        return qs.filter(order_id=event.order_id).order_by("-created_at", "-id").first()
    return None


#: Annotated on a locked invoice: whether it has an operation in flight, read
#: in the same statement, so a change that settles none costs no query.
_IN_FLIGHT = "payments_ru_in_flight"


def _locked(qs: Any) -> Any:
    in_flight = Operation.objects.filter(
        invoice=OuterRef("pk"), state=Operation.State.IN_FLIGHT
    )
    return qs.select_for_update(of=("self",)).annotate(
        **{_IN_FLIGHT: Exists(in_flight)}
    )


def _by_ref(provider: str, ref: uuid.UUID, paid: bool) -> Any:
    """The locking lookup of the invoice ``ref`` names; for a payment, with the
    other invoices of its order, in primary-key order (see :func:`_locate`)."""
    mine = Q(provider=provider, uuid=ref)
    if not paid:
        return _locked(Invoice.objects.filter(mine))
    # Both sides of the OR use an index (the reference's unique one, the
    # order key's partial one, whose condition is repeated here): a scalar
    # subquery and "order_key <> ''" let the database combine them instead of
    # reading the whole table.
    order = Invoice.objects.filter(mine).order_by().values("order_key")[:1]
    siblings = ~Q(order_key="") & Q(order_key=Subquery(order))
    return _locked(Invoice.objects.filter(mine | siblings)).order_by("pk")


#: The locking lookups of the hot paths (:func:`_by_ref`, by primary key),
#: compiled once per database and kind with the positions of their parameters:
#: building the ORM query cost more than running it. Each is run with sentinel
#: values standing for the parameters (``_SLOTS``), found again in the
#: compiled parameters.
_LOCKED_SQL: dict[
    tuple[Any, ...], tuple[str, tuple[Any, ...], dict[str, list[int]]]
] = {}
_SLOTS: dict[str, tuple[str, Any]] = {
    # name: (the Invoice field that prepares it, the sentinel)
    "provider": ("provider", "\x00payments-ru-provider"),
    "ref": ("uuid", uuid.UUID("00000000-0000-4000-8000-00000000cafe")),
    "pk": ("id", -7_201_594_551),
}


def _locked_invoices(
    kind: tuple[Any, ...], build: Callable[..., Any], **values: Any
) -> list[Invoice]:
    """The rows of the locking lookup ``build(**values)`` (an annotated
    :func:`_locked` queryset of invoices), through its compiled SQL."""
    using = router.db_for_write(Invoice)
    connection = connections[using]
    key = (using, *kind)
    compiled = _LOCKED_SQL.get(key)
    if compiled is None:
        query = build(**{name: _SLOTS[name][1] for name in values}).query
        sql, params = query.get_compiler(using).as_sql()
        positions = {}
        for name in values:
            field, sentinel = _SLOTS[name]
            slot = rows.field(Invoice, field).get_db_prep_value(sentinel, connection)
            positions[name] = [i for i, p in enumerate(params) if p == slot]
            if not positions[name]:
                raise AssertionError(f"{name} is not a parameter of {sql}")
        compiled = _LOCKED_SQL[key] = (sql, tuple(params), positions)
    sql, template, positions = compiled
    params = list(template)
    for name, value in values.items():
        prepared = rows.field(Invoice, _SLOTS[name][0]).get_db_prep_value(
            value, connection
        )
        for i in positions[name]:
            params[i] = prepared
    with rows.cursor(connection) as cursor:
        cursor.execute(sql, params)
        found = cursor.fetchall()
        shape = _ROW_SHAPE.get(key)
        if shape is None:
            shape = _ROW_SHAPE[key] = _row_shape(
                using, [d[0] for d in cursor.description]
            )
    names, converters, in_flight = shape
    if converters:
        found = Query(Invoice).get_compiler(using).apply_converters(found, converters)
    invoices = []
    for values_ in found:
        invoice = Invoice.from_db(using, names, values_[:in_flight])
        setattr(invoice, _IN_FLIGHT, bool(values_[in_flight]))
        invoices.append(invoice)
    return invoices


#: How to read a row of a :data:`_LOCKED_SQL` lookup: the invoice's field
#: names, their converters, and the position of the in-flight flag.
_ROW_SHAPE: dict[tuple[Any, ...], tuple[list[str], dict[int, Any], int]] = {}


def _row_shape(using: str, columns: list[str]) -> tuple[list[str], dict[int, Any], int]:
    meta = Invoice._meta
    by_column = {f.column: f for f in meta.concrete_fields}
    fields = [by_column[name] for name in columns[:-1]]
    if columns[-1] != _IN_FLIGHT or len(fields) != len(meta.concrete_fields):
        raise AssertionError(f"unexpected columns of the invoice lookup: {columns}")
    compiler = Query(Invoice).get_compiler(using)
    converters = compiler.get_converters([f.get_col(meta.db_table) for f in fields])
    return [f.attname for f in fields], converters, len(fields)


def _locked_invoice(pk: int) -> Invoice:
    """The invoice ``pk``, locked, with the in-flight flag, in one statement."""
    rows = _locked_invoices(
        ("pk",), lambda pk: _locked(Invoice.objects.filter(pk=pk)), pk=pk
    )
    if not rows:
        raise Invoice.DoesNotExist(f"No invoice {pk}")
    return rows[0]


def _locate_by_ref(event: PaymentEvent, ref: uuid.UUID) -> Invoice | None:
    """The invoice ``ref`` names, locked, in one statement (see :func:`_by_ref`)."""
    paid = event.type is EventType.PAID
    for invoice in _locked_invoices(
        ("ref", paid),
        lambda provider, ref: _by_ref(provider, ref, paid),
        provider=event.provider,
        ref=ref,
    ):
        if invoice.uuid == ref and invoice.provider == event.provider:
            return invoice
    return None


def _locate(event: PaymentEvent, *, lock: bool) -> Invoice | None:
    ref = _ref(event)
    if lock and ref is not None:
        found = _locate_by_ref(event, ref)
        if found is not None:
            return found
    qs = Invoice.objects.filter(provider=event.provider)
    if lock and event.type is EventType.PAID:
        # A payment locks its whole order, always in primary-key order, so that
        # two invoices of one order paid at the same instant are applied one
        # after the other and the second is seen as a double payment.
        found = _find(qs.only("pk", "order_key"), event)
        if found is None:
            return None
        if found.order_key:
            group = _locked(Invoice.objects.filter(order_key=found.order_key))
            for invoice in group.order_by("pk"):
                if invoice.pk == found.pk:
                    return invoice
        return _locked(Invoice.objects.filter(pk=found.pk)).first()
    if lock:
        qs = _locked(qs)
    return _find(qs, event)


def _flag(invoice: Invoice, reason: Message) -> None:
    invoice.needs_attention = True
    invoice.add_attention_note(reason)


def _mismatch(invoice: Invoice, event: PaymentEvent) -> Message | None:
    want = invoice.quantize(invoice.amount)
    if event.currency and event.currency.upper() != invoice.currency:
        return msg("currency_mismatch", got=event.currency, want=invoice.currency)
    if event.amount is not None and event.amount != invoice.amount:
        return msg("amount_mismatch", got=event.amount, want=want)
    return None


def _robustly(signal: signals.Signal, invoice: Invoice, **arguments: Any) -> None:
    for receiver, result in signal.send_robust(
        sender=Invoice, invoice=invoice, **arguments
    ):
        if isinstance(result, BaseException):
            logger.error(
                "A receiver of a payment signal failed for invoice %s: %r",
                invoice.uuid,
                receiver,
                exc_info=(type(result), result, result.__traceback__),
            )


def _send_signals(
    invoice: Invoice, old: str, new: str, event: PaymentEvent, refunded: Decimal
) -> None:
    """Send the signals of a committed change. A receiver that raises does not
    stop the others and cannot undo the change (it is already committed): its
    error is logged with its traceback."""
    kwargs = {"old_status": old, "new_status": new, "event": event}
    sent: list[tuple[signals.Signal, dict[str, Any]]] = []
    if old != new:
        sent.append((signals.invoice_status_changed, kwargs))
        if new == InvoiceStatus.PAID:
            sent.append((signals.invoice_paid, kwargs))
        elif new == InvoiceStatus.FAILED:
            sent.append((signals.invoice_failed, kwargs))
    if refunded > 0:
        sent.append((signals.invoice_refunded, {**kwargs, "amount": refunded}))
    for signal, arguments in sent:
        _robustly(signal, invoice, **arguments)


def _paid_twice(
    invoice: Invoice, other: Invoice, event: PaymentEvent, reason: Message
) -> None:
    """Flag ``invoice`` as a double payment of its order (``other`` was paid
    first; the same invoice when it was paid twice itself) and tell the shop
    after the commit."""
    invoice.paid_twice = True
    _flag(invoice, reason)
    transaction.on_commit(
        partial(
            _robustly,
            signals.invoice_paid_twice,
            invoice,
            other_invoice=other,
            event=event,
        )
    )


def _stale_attempt(invoice: Invoice, event: PaymentEvent) -> Message | None:
    """Why ``event`` is the failure of an earlier payment attempt, or None.

    For a provider whose payment ids name attempts
    (:attr:`BaseProvider.payment_per_attempt`), the invoice keeps the current
    attempt's id: a late failure or expiry of an older attempt must not fail
    the newer one (an older event never overrides newer state)."""
    if event.type not in (EventType.FAILED, EventType.EXPIRED):
        return None
    if not (event.provider_payment_id and invoice.provider_payment_id):
        return None
    if event.provider_payment_id == invoice.provider_payment_id:
        return None
    try:
        per_attempt = get_provider(invoice.provider).payment_per_attempt
    except PaymentsError:  # the alias is gone from the settings: no rule to apply
        return None
    if not per_attempt:
        return None
    return msg(
        "stale_attempt",
        event=str(event.type),
        old=event.provider_payment_id,
        new=invoice.provider_payment_id,
    )


def _keep_transaction(invoice: Invoice, event: PaymentEvent) -> None:
    """Keep the event's transaction id on the invoice (saved by the caller)."""
    if event.transaction_id and event.transaction_id != invoice.provider_transaction_id:
        invoice.provider_transaction_id = event.transaction_id[:128]
        invoice.save(update_fields=["provider_transaction_id", "updated_at"])


#: What applying an event may change on the invoice: the UPDATE writes these
#: columns only, never the customer's details or the checkout.
_APPLIED_FIELDS = [
    "status",
    "status_changed_at",
    "paid_amount",
    "paid_at",
    "refunded_amount",
    "needs_attention",
    "attention_notes",
    "paid_twice",
    "provider_payment_id",
    "provider_transaction_id",
    "updated_at",
]
#: Those compared with the locked row's values before they are written
#: (``updated_at`` is always written; the notes are compared as a list).
_COMPARED_FIELDS = [
    name for name in _APPLIED_FIELDS if name not in ("attention_notes", "updated_at")
]


def _transition(
    invoice: Invoice,
    event: PaymentEvent,
    row: WebhookEvent | None,
    also: tuple[str, ...] = (),
) -> tuple[ApplyResult, Decimal]:
    """Apply ``event`` to the locked ``invoice``: the state machine, the money
    rows, the flags. Returns the result and the amount refunded by it."""
    old = invoice.status
    nothing = Decimal(0)
    if event.type in (EventType.PAID, EventType.HELD):
        # An amount or currency that does not match never marks an invoice paid.
        problem = _mismatch(invoice, event)
        second = (
            not problem
            and event.type is EventType.PAID
            and invoice.status in PAID_STATES
            and event.provider_payment_id
            and invoice.provider_payment_id
            and event.provider_payment_id != invoice.provider_payment_id
        )
        if second:
            # The customer paid twice: the second payment must not vanish as a
            # repeat of the first; the merchant refunds one of them.
            problem = msg(
                "second_payment",
                new=event.provider_payment_id,
                old=invoice.provider_payment_id,
            )
        if problem:
            reason = msg("event_rejected", event=str(event.type), problem=problem)
            if second:
                _paid_twice(invoice, invoice, event, reason)
            else:
                _flag(invoice, reason)
            invoice.save(
                update_fields=[
                    "needs_attention",
                    "attention_notes",
                    "paid_twice",
                    "updated_at",
                ]
            )
            return ApplyResult(Result.REJECTED, invoice, old, old, problem), nothing

    stale = _stale_attempt(invoice, event)
    if stale:
        return ApplyResult(Result.IGNORED, invoice, old, old, stale), nothing

    rule = rule_for(old, event.type)
    if rule.outcome is Outcome.NOOP:
        return (
            ApplyResult(Result.NOOP, invoice, old, old, msg("same_state")),
            nothing,
        )
    if rule.outcome is Outcome.IGNORE:
        return ApplyResult(Result.IGNORED, invoice, old, old, rule.reason), nothing

    assert rule.target is not None
    target = rule.target
    # What the locked row held: only what changes is written (an index on a
    # column that is written is rewritten, on SQLite, even with the same value).
    before = {name: getattr(invoice, name) for name in _COMPARED_FIELDS}
    notes = list(invoice.attention_notes or [])
    refunded = Decimal(0)
    now = timezone.now()
    source = event.dedupe_id[:255]
    if event.type is EventType.PAID:
        invoice.paid_amount = max(invoice.paid_amount, invoice.amount)
        invoice.paid_at = event.occurred_at or now
        rows.insert(
            Payment(
                invoice=invoice,
                kind=Payment.Kind.CHARGE,
                amount=invoice.amount,
                currency=invoice.currency,
                event=row,
                source=source,
                provider_payment_id=event.provider_payment_id
                or invoice.provider_payment_id,
            )
        )
        other = _order_paid_by(invoice)
        if other is not None:
            # The money moved, so the payment is applied; the order now has two.
            _paid_twice(
                invoice,
                other,
                event,
                msg("order_paid_twice", order=invoice.order_key, ref=other.uuid),
            )
        elif invoice.order_key:
            transaction.on_commit(partial(_after_order_paid, invoice.pk))
    elif event.type is EventType.REFUNDED:
        if event.refunded_total is not None:
            refunded = event.refunded_total - invoice.refunded_amount
            if refunded <= 0:  # already recorded (sync answer, older event)
                return (
                    ApplyResult(Result.NOOP, invoice, old, old, msg("refund_recorded")),
                    nothing,
                )
        else:
            refunded = (
                event.amount if event.amount is not None else invoice.refundable_amount
            )
        if refunded <= 0 or refunded > invoice.refundable_amount:
            problem = msg(
                "refund_exceeds", amount=refunded, left=invoice.refundable_amount
            )
            _flag(invoice, problem)
            invoice.save(
                update_fields=["needs_attention", "attention_notes", "updated_at"]
            )
            return ApplyResult(Result.REJECTED, invoice, old, old, problem), nothing
        invoice.refunded_amount += refunded
        target = refund_target(invoice.paid_amount, invoice.refunded_amount)
        Payment.objects.create(
            invoice=invoice,
            kind=Payment.Kind.REFUND,
            amount=refunded,
            currency=invoice.currency,
            event=row,
            source=source,
            provider_payment_id=event.provider_payment_id
            or invoice.provider_payment_id,
        )
    if rule.flag and rule.reason is not None:
        _flag(invoice, rule.reason)
    if event.provider_payment_id and not invoice.provider_payment_id:
        invoice.provider_payment_id = event.provider_payment_id[:128]
    if event.transaction_id:
        invoice.provider_transaction_id = event.transaction_id[:128]
    if target != old:
        invoice.status = target
        invoice.status_changed_at = now
    changed = [name for name, was in before.items() if getattr(invoice, name) != was]
    if list(invoice.attention_notes or []) != notes:
        changed.append("attention_notes")
    rows.update(invoice, [*changed, "updated_at", *also])
    transaction.on_commit(partial(_send_signals, invoice, old, target, event, refunded))
    return ApplyResult(Result.APPLIED, invoice, old, target, rule.reason), refunded


#: What an applied change does to the operations in flight that it answers:
#: new status -> {kind: state}. A payment confirms the capture (and a start
#: still in flight) and defeats a cancel; a hold that ended confirms a release
#: or cancel and defeats a capture.
_SETTLED_BY: dict[str, dict[str, str]] = {
    InvoiceStatus.PAID: {
        Operation.Kind.CAPTURE: Operation.State.CONFIRMED,
        Operation.Kind.START: Operation.State.CONFIRMED,
        Operation.Kind.RELEASE: Operation.State.FAILED,
        Operation.Kind.CANCEL: Operation.State.FAILED,
    },
    **{
        status: {
            Operation.Kind.RELEASE: Operation.State.CONFIRMED,
            Operation.Kind.CANCEL: Operation.State.CONFIRMED,
            Operation.Kind.CAPTURE: Operation.State.FAILED,
        }
        for status in (
            InvoiceStatus.CANCELLED,
            InvoiceStatus.EXPIRED,
            InvoiceStatus.FAILED,
        )
    },
}


def _settle_claims(
    invoice: Invoice,
    result: ApplyResult,
    refunded: Decimal,
    operation: Operation | None,
) -> None:
    """Settle, exactly once and under the invoice's lock, the operations that
    this result answers: the caller's own ``operation`` (confirmed, or failed with
    the reason when the provider's answer could not be applied), then whatever
    else in flight the change confirms or defeats (a webhook, a poll)."""
    if operation is not None:
        operation.refresh_from_db()
        if result.result in (Result.APPLIED, Result.NOOP):
            _settle(operation, Operation.State.CONFIRMED, result.message)
        else:
            _settle(operation, Operation.State.FAILED, result.message)
    if result.result is not Result.APPLIED:
        return
    if not getattr(invoice, _IN_FLIGHT, True):
        return  # read with the lock: nothing was in flight, and nothing can start
    states = (
        _SETTLED_BY.get(result.new_status, {})
        if result.new_status != result.old_status
        else {}
    )
    if refunded <= 0 and not states:
        return  # nothing this change settles (a start's pending): no query built
    pending = invoice.operations.filter(state=Operation.State.IN_FLIGHT).order_by(
        "created_at", "id"
    )
    if refunded > 0:
        # The refunds in flight that this refund covers (beyond the caller's
        # own, which it answers): the claim of exactly this amount if there is
        # one (notifications may come in any order), else the oldest that fit.
        left = refunded
        if operation is not None and operation.kind == Operation.Kind.REFUND:
            left -= operation.amount or Decimal(0)
        claims = [c for c in pending.filter(kind=Operation.Kind.REFUND) if c.amount]
        exact = [c for c in claims if c.amount == left][:1]
        for claimed in exact or claims:
            assert claimed.amount is not None
            if claimed.amount <= left:
                left -= claimed.amount
                _settle(claimed, Operation.State.CONFIRMED, result.message)
    if states:  # a change that settles nothing asks nothing
        reason = msg("invoice_became", status=result.new_status)
        for claimed in pending.filter(kind__in=list(states)):
            _settle(claimed, states[claimed.kind], reason)


def _apply_locked(
    invoice: Invoice,
    event: PaymentEvent,
    row: WebhookEvent | None,
    operation: Operation | None = None,
    also: tuple[str, ...] = (),
) -> ApplyResult:
    """Apply ``event`` to ``invoice``, whose row the caller has locked inside a
    transaction, and settle the operations it answers. Signals are queued for
    after the commit. ``also``: fields the caller changed on ``invoice``,
    written in the same UPDATE (or alone when the event changes nothing)."""
    result, refunded = _transition(invoice, event, row, also)
    if also and result.result is not Result.APPLIED:
        invoice.save(update_fields=[*also, "updated_at"])
    if result.result in (Result.APPLIED, Result.NOOP):
        # Also on a repeat: a poll may have applied the hold before the
        # notification that names its charge arrived (Life-Pay).
        _keep_transaction(invoice, event)
    _settle_claims(invoice, result, refunded, operation)
    return result


def apply_event(
    event: PaymentEvent, *, operation: Operation | None = None
) -> ApplyResult:
    """Apply a verified event (a status poll, a synchronous API answer) to its
    invoice, under a row lock, in one transaction. ``operation``: the claim this
    event answers (settled with it)."""
    with transaction.atomic():
        invoice = _locate(event, lock=True)
        if invoice is None:
            if operation is not None:
                _settle(operation, Operation.State.FAILED, msg("no_invoice"))
            return ApplyResult(Result.REJECTED, None, message=msg("no_invoice"))
        return _apply_locked(invoice, event, None, operation)


# --- the webhook inbox ----------------------------------------------------------


def _checked(
    provider: BaseProvider, events: list[PaymentEvent]
) -> list[tuple[PaymentEvent, Any]]:
    """Each event checked (:func:`~django_payments_ru.events.check_event`) with
    its payload redacted and made storable, once; raises
    :class:`~django_payments_ru.exceptions.WebhookParseError` before anything
    is written."""
    from .providers.payload import check_json_value

    # check_event has walked the raw payload; the base's redaction only puts
    # "[redacted]" in place of values, so its output needs no second walk. A
    # provider's own redact_payload may return anything: that one is checked.
    own_redaction = type(provider).redact_payload is not BaseProvider.redact_payload
    checked = []
    for event in events:
        event = check_event(event)
        payload = provider.redact_payload(event.raw_json())
        if own_redaction:
            payload = check_json_value(payload, provider=provider.alias)
        checked.append((event, payload))
    return checked


def _unstorable(alias: str) -> WebhookParseError:
    # A value the checks let through and the database still refused: rolled
    # back, so nothing was written, and the same body would fail again: a 400,
    # not a 500 that the provider retries for ever.
    return WebhookParseError(
        _("The database cannot store this webhook's content."),
        provider=alias,
        code="unstorable",
    )


def record_events(
    provider: BaseProvider,
    events: list[PaymentEvent],
    checked: list[tuple[PaymentEvent, Any]] | None = None,
) -> list[WebhookEvent]:
    """Store each verified event once (unique per provider alias and dedupe id),
    with the secrets the provider names removed from its payload; a redelivery
    finds the stored row and counts the delivery.

    Every event is checked first (:func:`~django_payments_ru.events.check_event`:
    ids that fit their columns, clean text, known currency, amounts the currency
    and the columns can hold, a payload the database can store): one that does
    not fit raises :class:`~django_payments_ru.exceptions.WebhookParseError`
    before anything is written. The events of one webhook are stored together or
    not at all."""
    alias = provider.alias
    if checked is None:
        checked = _checked(provider, events)
    rows = []
    try:
        with transaction.atomic():
            for event, payload in checked:
                try:
                    with transaction.atomic():
                        row = WebhookEvent.objects.create(
                            provider=alias,
                            dedupe_id=event.dedupe_id,
                            event_type=event.type,
                            event=event.to_json(),
                            payload=payload,
                        )
                except IntegrityError:
                    row = WebhookEvent.objects.get(
                        provider=alias, dedupe_id=event.dedupe_id
                    )
                    WebhookEvent.objects.filter(pk=row.pk).update(
                        deliveries=F("deliveries") + 1
                    )
                rows.append(row)
    except DataError:
        raise _unstorable(alias) from None
    return rows


def _can_upsert(using: str) -> bool:
    """``INSERT ... ON CONFLICT DO UPDATE ... RETURNING``: PostgreSQL, and
    SQLite from 3.35."""
    vendor = connections[using].vendor
    if vendor == "postgresql":
        return True
    if vendor == "sqlite":
        import sqlite3

        return sqlite3.sqlite_version_info >= (3, 35)
    return False


#: The upsert of :func:`_upsert_event` per database: its SQL and fields.
_UPSERT_SQL: dict[str, tuple[str, list[Any]]] = {}


def _upsert_sql(connection: Any, names: list[str]) -> tuple[str, list[Any]]:
    meta = WebhookEvent._meta
    by_name = {f.attname: f for f in meta.concrete_fields}
    fields = [by_name[name] for name in names]
    qn = connection.ops.quote_name
    table = qn(meta.db_table)
    columns = ", ".join(qn(str(f.column)) for f in fields)
    deliveries = qn("deliveries")
    invoices = Invoice._meta
    # The invoice the event names by its reference, found by the unique key in
    # the same statement (NULL when it names none).
    named = (
        f"(SELECT {qn(str(invoices.pk.column if invoices.pk else 'id'))} "  # noqa: S608
        f"FROM {qn(invoices.db_table)} WHERE {qn('provider')} = %s "
        f"AND {qn('uuid')} = %s)"
    )
    # Identifiers from the model's meta, quoted; every value is a parameter.
    holders = ", ".join(named if f.attname == "invoice_id" else "%s" for f in fields)
    sql = (
        f"INSERT INTO {table} ({columns}) VALUES ({holders}) "  # noqa: S608
        f"ON CONFLICT ({qn('provider')}, {qn('dedupe_id')}) DO UPDATE SET "
        f"{deliveries} = {table}.{deliveries} + 1 "
        f"RETURNING {qn('id')}, {qn('status')}, {deliveries}, {qn('attempts')}, "
        f"{qn('invoice_id')}"
    )
    return sql, fields


@dataclass(frozen=True)
class _Stored:
    """The inbox row of an event after its upsert."""

    pk: int
    status: str
    #: 1: stored by this upsert, with the outcome of a payment applied.
    deliveries: int
    attempts: int
    invoice_id: int | None

    @property
    def new(self) -> bool:
        return self.deliveries == 1


def _upsert_event(using: str, alias: str, event: PaymentEvent, payload: Any) -> _Stored:
    """Store ``event``, or count one more delivery of the stored one, in one
    statement.

    A new row is written as it will most often end, in this transaction: its
    event applied to the invoice its reference names (``processed``, one
    attempt); :func:`_process_new` writes it again only when the outcome is
    another. A failure rolls the row back with the change (the two-step path
    then keeps it as failed), so no other transaction ever sees it ahead of
    its outcome."""
    connection = connections[using]
    now = timezone.now()
    values = {
        "provider": alias,
        "dedupe_id": event.dedupe_id,
        "event_type": str(event.type),
        "status": WebhookEvent.Status.PROCESSED,
        "invoice_id": None,  # the subquery's two parameters, below
        "event": event.to_json(),
        "payload": payload,
        "result": "",
        "result_code": "",
        "result_params": {},
        "traceback": "",
        "attempts": 1,
        "deliveries": 1,
        "received_at": now,
        "processed_at": now,
        "last_attempt_at": now,
        "needs_attention": False,
    }
    compiled = _UPSERT_SQL.get(using)
    if compiled is None:
        compiled = _UPSERT_SQL[using] = _upsert_sql(connection, list(values))
    sql, fields = compiled
    params: list[Any] = []
    for f, value in zip(fields, values.values(), strict=True):
        if f.attname == "invoice_id":
            params.append(alias)
            params.append(
                rows.field(Invoice, "uuid").get_db_prep_value(_ref(event), connection)
            )
        else:
            params.append(f.get_db_prep_save(value, connection))
    with rows.cursor(connection) as cursor:
        cursor.execute(sql, params)
        pk, status, count, attempts, invoice_id = cursor.fetchone()
    return _Stored(
        int(pk),
        str(status),
        int(count),
        int(attempts),
        None if invoice_id is None else int(invoice_id),
    )


def _process_new(stored: _Stored, event: PaymentEvent) -> None:
    """Apply ``event``, just stored (or redelivered) as ``stored`` in this
    transaction: the invoice locked, the change written, and the row's outcome
    in one UPDATE unless the upsert already wrote it."""
    invoice = _locate(event, lock=True)
    if invoice is None:
        result = ApplyResult(Result.REJECTED, None, message=msg("no_invoice"))
    else:
        result = _apply_locked(invoice, event, WebhookEvent(pk=stored.pk))
    message = result.message
    status = _ROW_STATUS[result.result]
    invoice_id = None if invoice is None else invoice.pk
    if (
        stored.new
        and status == WebhookEvent.Status.PROCESSED
        and message is None
        and invoice_id == stored.invoice_id
    ):
        return  # as the upsert wrote it
    now = timezone.now()
    rows.update_by_pk(
        WebhookEvent,
        stored.pk,
        {
            "status": status,
            "result_code": message.code if message else "",
            "result_params": dict(message.params) if message else {},
            "traceback": "",
            "invoice": invoice_id,
            # The upsert locked the row: no other process counts meanwhile.
            "attempts": 1 if stored.new else stored.attempts + 1,
            "processed_at": now,
            "last_attempt_at": now,
        },
    )


def receive_webhook_events(provider: BaseProvider, events: list[PaymentEvent]) -> bool:
    """Store and apply a verified webhook's events now (``WEBHOOK_PROCESSING =
    "sync"``). Returns False when an event failed: it is kept with its error
    and traceback, and the webhook should be answered so that the provider
    delivers it again.

    The usual case takes one transaction: each event is stored, or its
    redelivery counted, in one statement, and a new one is applied at once
    from memory (nothing just written is read back); a redelivery of a
    processed event touches nothing else. When anything goes wrong the
    transaction is rolled back and the events take the two-step path
    (:func:`record_events`, then :func:`process_webhook_event` for each), which
    commits the stored event before processing it, so a failure keeps it."""
    checked = _checked(provider, events)
    using = router.db_for_write(WebhookEvent)
    # A webhook to confirm through the API is stored and committed first: the
    # API is asked outside any transaction (process_webhook_event).
    if _can_upsert(using) and not provider.confirms_webhooks:
        try:
            # The writes of the change go out together at the end (rows.batch):
            # on PostgreSQL, one statement for the payment, the invoice and
            # the inbox row's outcome.
            with transaction.atomic(using=using), rows.batch(using):
                for event, payload in checked:
                    stored = _upsert_event(using, provider.alias, event, payload)
                    if stored.new or stored.status not in WebhookEvent.DONE:
                        _process_new(stored, event)
            return True
        except Exception:  # rolled back: the two-step path stores and retries it
            logger.info(
                "A %s webhook takes the two-step path after an error",
                provider.alias,
                exc_info=True,
            )
    failed = False
    for row in record_events(provider, events, checked):
        if row.is_done:
            continue
        try:
            process_webhook_event(row.pk)
        except Exception:  # kept on the row; the provider will deliver again
            failed = True
    return not failed


_ROW_STATUS = {
    Result.APPLIED: WebhookEvent.Status.PROCESSED,
    Result.NOOP: WebhookEvent.Status.IGNORED,
    Result.IGNORED: WebhookEvent.Status.IGNORED,
    Result.REJECTED: WebhookEvent.Status.REJECTED,
}


def _confirming_aliases() -> frozenset[str]:
    """The aliases whose webhooks are confirmed through the API."""
    from .registry import aliases

    found = set()
    for alias in aliases():
        try:
            provider = get_provider(alias)
        except ImproperlyConfigured:  # the system checks report it
            continue
        if provider.confirms_webhooks:
            found.add(alias)
    return frozenset(found)


def _skipped(row: WebhookEvent, force: bool) -> bool:
    return row.is_done and not (force and row.status == WebhookEvent.Status.REJECTED)


def _confirm(pk: int, force: bool) -> PaymentEvent | EventNotConfirmed | None:
    """For a stored event of a provider that confirms its webhooks: ask the
    API, outside any transaction. The event to apply, the contradiction to
    record, or None (nothing to confirm). A ProviderError propagates: the
    event stays failed and retriable."""
    confirming = _confirming_aliases()
    if not confirming:
        return None
    row = WebhookEvent.objects.filter(pk=pk, provider__in=confirming).first()
    if row is None or _skipped(row, force):
        return None
    event = row.to_event()
    try:
        confirmed = get_provider(row.provider).confirm_event(event)
    except EventNotConfirmed as exc:
        return exc
    # The row's identity stays: the API's answer only says what happened.
    return check_event(
        replace(confirmed, provider=row.provider, dedupe_id=row.dedupe_id)
    )


def _reject_unconfirmed(
    row: WebhookEvent, exc: EventNotConfirmed
) -> tuple[Invoice | None, ApplyResult]:
    """The API contradicted the webhook: the invoice it names is flagged (a
    forged or mistaken notification is something the merchant must see) and
    the event is rejected with the reason; nothing else changes."""
    reason = msg("not_confirmed", reason=exc.message)
    invoice = _locate(row.to_event(), lock=True)
    if invoice is not None:
        _flag(invoice, reason)
        invoice.save(update_fields=["needs_attention", "attention_notes", "updated_at"])
    return invoice, ApplyResult(Result.REJECTED, invoice, message=reason)


def process_webhook_event(pk: int, *, force: bool = False) -> WebhookEvent:
    """Process one stored event in one transaction. A processed, ignored or
    rejected event is left alone (``force`` re-runs a rejected one, for the admin's
    "reprocess"). A failure keeps its error and traceback and stays retriable;
    the error is re-raised.

    The event of a provider that confirms its webhooks
    (:meth:`~django_payments_ru.providers.base.BaseProvider.confirm_event`) is
    first confirmed through its API, outside the transaction; the event the
    API confirms is the one applied."""
    try:
        confirmed = _confirm(pk, force)
        with transaction.atomic():
            row = WebhookEvent.objects.select_for_update().get(pk=pk)
            if _skipped(row, force):
                return row
            if isinstance(confirmed, EventNotConfirmed):
                invoice, result = _reject_unconfirmed(row, confirmed)
                confirmed = None
            else:
                event = confirmed or row.to_event()
                invoice = _locate(event, lock=True)
                if invoice is None:
                    result = ApplyResult(
                        Result.REJECTED, None, message=msg("no_invoice")
                    )
                else:
                    result = _apply_locked(invoice, event, row)
            row.status = _ROW_STATUS[result.result]
            row.set_result(result.message)
            row.traceback = ""
            row.invoice = invoice
            row.attempts += 1
            row.processed_at = row.last_attempt_at = timezone.now()
            row.needs_attention = False  # settled: nothing left to look at
            row.save(
                update_fields=[
                    "status",
                    "result",
                    "result_code",
                    "result_params",
                    "traceback",
                    "invoice",
                    "attempts",
                    "processed_at",
                    "last_attempt_at",
                    "needs_attention",
                ]
            )
            return row
    except Exception as exc:
        WebhookEvent.objects.filter(pk=pk).update(
            status=WebhookEvent.Status.FAILED,
            # The error's text is not ours: a parameter, never translated.
            result="",
            result_code="processing_error",
            result_params={"error": f"{type(exc).__name__}: {exc}"[:2000]},
            traceback=traceback.format_exc(),
            attempts=F("attempts") + 1,
            last_attempt_at=timezone.now(),
        )
        logger.error("Processing webhook event %s failed: %s", pk, type(exc).__name__)
        raise


# --- merchant operations --------------------------------------------------------


def _fresh(invoice: Invoice) -> Invoice:
    invoice.refresh_from_db()
    return invoice


def refresh_invoice(invoice: Invoice) -> Invoice:
    """Ask the provider where the payment stands and apply the answer (which
    also settles the operations in flight that it answers)."""
    _outside_transaction("refresh_invoice()")
    provider = invoice.get_provider()
    if not provider.supports(Capability.STATUS):
        raise NotSupported(
            _("%(name)s cannot be asked for a payment's status.")
            % {"name": provider.display_name},
            provider=invoice.provider,
        )
    event = provider.fetch_status(_fresh(invoice))
    if event is not None:
        apply_event(event)
    return _fresh(invoice)


def refresh_invoices(invoices: Iterable[Invoice]) -> list[Invoice]:
    """:func:`refresh_invoice` for many invoices, in as few provider calls as
    each provider allows: an alias with ``Capability.BATCH_STATUS`` is asked
    once for all of its invoices
    (:meth:`~django_payments_ru.providers.base.BaseProvider.fetch_statuses`:
    Love&Pay reads its list of pending invoices), the others one invoice at a
    time; an alias that can do neither is skipped. Each answer is applied as
    its own change (one locked transaction per event, as a webhook's), so a
    failure leaves the others applied. Returns the invoices, fresh, in the
    order given."""
    _outside_transaction("refresh_invoices()")
    pks = [invoice.pk for invoice in invoices]
    by_alias: dict[str, list[Invoice]] = {}
    for invoice in _reread(pks):
        by_alias.setdefault(invoice.provider, []).append(invoice)
    for alias, group in by_alias.items():
        provider = get_provider(alias)
        events: list[PaymentEvent | None]
        if provider.supports(Capability.BATCH_STATUS):
            events = list(provider.fetch_statuses(group))
        elif provider.supports(Capability.STATUS):
            events = [provider.fetch_status(invoice) for invoice in group]
        else:
            continue
        for event in events:
            if event is not None:
                apply_event(event)
    return _reread(pks)


def _reread(pks: list[int]) -> list[Invoice]:
    """The invoices ``pks`` as stored now, in that order (batched reads)."""
    found = Invoice.objects.in_bulk(pks)
    return [found[pk] for pk in pks if pk in found]


#: The invoice fields a provider may change once it has accepted the change
#: (Life-Pay's invoice PATCH): the customer's contacts, never money or status.
DETAIL_FIELDS = frozenset({"customer_email", "customer_phone"})


def update_invoice_details(
    invoice: Invoice,
    *,
    provider_details: Mapping[str, Any] | None = None,
    **fields: Any,
) -> Invoice:
    """Record a change the provider has accepted for ``invoice``: any of
    :data:`DETAIL_FIELDS`, and ``provider_details`` merged into the invoice's
    metadata under the provider's slug (``metadata["lifepay"]``). Done under the
    row lock, so it never overwrites what a webhook wrote meanwhile; ``invoice``
    is refreshed. Status and amounts change only through events."""
    unknown = sorted(set(fields) - DETAIL_FIELDS)
    if unknown:
        raise TypeError(
            f"update_invoice_details() cannot change {', '.join(unknown)}: "
            f"only {', '.join(sorted(DETAIL_FIELDS))}"
        )
    with transaction.atomic():
        locked = _lock(invoice)
        changed = ["updated_at"]
        for name, value in fields.items():
            setattr(locked, name, value)
            changed.append(name)
        if provider_details:
            slug = get_provider(locked.provider).slug
            details = dict(locked.metadata.get(slug) or {})
            details.update(provider_details)
            locked.metadata = {**locked.metadata, slug: details}
            changed.append("metadata")
        try:
            locked.clean_fields(
                exclude=[f.name for f in Invoice._meta.fields if f.name not in fields]
            )
        except ValidationError as exc:
            field, messages = next(iter(exc.message_dict.items()))
            raise InvalidInput(
                f"{field}: {' '.join(messages)}", field=field, provider=locked.provider
            ) from exc
        locked.save(update_fields=changed)
    invoice.refresh_from_db()
    return invoice


def _in_flight_total(invoice: Invoice, kind: str) -> Decimal:
    total = invoice.operations.filter(
        kind=kind, state=Operation.State.IN_FLIGHT
    ).aggregate(total=Sum("amount"))["total"]
    return invoice.quantize(total or Decimal(0))


def _refund_lines(
    invoice: Invoice, data: Any, amount: Decimal | None
) -> Receipt | None:
    """The receipt lines of a refund of ``amount`` (``None``: of the lines'
    total) on the locked ``invoice``, checked against the paid lines minus
    those of its other refunds (confirmed or in flight)."""
    paid = invoice.get_receipt()
    if paid is None:
        if data is not None:
            raise InvalidInput(
                _("This invoice has no receipt, so a refund cannot name lines."),
                field="receipt",
                provider=invoice.provider,
            )
        return None
    return parse_refund_lines(
        paid, refunded_receipts(invoice), data, amount=amount, currency=invoice.currency
    )


def refunded_receipts(invoice: Invoice) -> list[Receipt]:
    """The receipt lines of ``invoice``'s refunds, confirmed or in flight."""
    return [
        lines
        for operation in invoice.operations.filter(
            kind=Operation.Kind.REFUND,
            state__in=[Operation.State.IN_FLIGHT, Operation.State.CONFIRMED],
        ).exclude(receipt={})
        if (lines := operation.get_receipt()) is not None
    ]


def refund_lines(
    invoice: Invoice,
    receipt: Receipt | Mapping[str, Any] | list[Any] | None = None,
    amount: Decimal | int | str | None = None,
) -> Receipt | None:
    """The receipt lines :func:`refund_invoice` would refund with these
    arguments, without refunding (``None`` for an invoice without a receipt):
    for a form that states the refund before it is confirmed. Raises
    :class:`~django_payments_ru.exceptions.InvalidInput` as it would."""
    value = None if amount is None else to_amount(amount, invoice.currency)
    return _refund_lines(invoice, receipt, value)


def refund_invoice(
    invoice: Invoice,
    amount: Decimal | int | str | None = None,
    *,
    receipt: Receipt | Mapping[str, Any] | list[Any] | None = None,
) -> Invoice:
    """Refund ``amount`` (default: everything not yet refunded or being refunded).

    An invoice with a receipt refunds receipt lines too (:doc:`/receipts`):
    by default every line not yet refunded; ``receipt`` names the lines of a
    partial refund (its total is the default ``amount``), each a paid line with
    at most the quantity left. Lines never paid, or an amount that is not the
    lines' total, raise :class:`~django_payments_ru.exceptions.InvalidInput`
    before anything is sent. The lines are stored on the refund's
    :class:`~django_payments_ru.models.Operation` and given to the provider's
    ``refund`` when it prints receipts.

    The refund is claimed under the invoice's row lock before the provider is
    called: refunds in flight count against what may still be refunded, a
    provider that takes only whole refunds gets no second one while one is in
    flight, and the claim's idempotency key is sent with the call. The
    provider's answer, its webhook or a status poll settles the claim once."""
    _outside_transaction("refund_invoice()")
    provider = invoice.get_provider()
    if not provider.supports(Capability.REFUND):
        raise NotSupported(
            _("%(name)s does not support refunds.") % {"name": provider.display_name},
            provider=invoice.provider,
        )
    partial_refunds = provider.supports(Capability.PARTIAL_REFUND)
    with transaction.atomic():
        locked = _lock(invoice)
        if locked.status not in PAID_STATES or locked.refundable_amount <= 0:
            raise InvalidOperation(
                _(
                    "Only a paid invoice with money left to refund can be refunded; "
                    "this one is %(status)s."
                )
                % {"status": locked.get_status_display()},
                provider=locked.provider,
            )
        in_flight = _in_flight_total(locked, Operation.Kind.REFUND)
        left = locked.refundable_amount - in_flight
        if in_flight and (not partial_refunds or left <= 0):
            raise OperationInFlight(
                _(
                    "A refund of %(amount)s was sent to %(name)s and awaits its "
                    "confirmation; wait for it before refunding again."
                )
                % {
                    "amount": format_money(in_flight, locked.currency),
                    "name": provider.display_name,
                },
                provider=locked.provider,
            )
        value = None if amount is None else to_amount(amount, locked.currency)
        if value is None and receipt is None:
            value = left
        lines = _refund_lines(locked, receipt, value)
        if value is None:
            value = lines.total if lines is not None else left
        if value <= 0:
            raise InvalidAmount(
                _("The amount must be greater than zero."),
                field="amount",
                provider=locked.provider,
            )
        if value > left:
            raise InvalidAmount(
                _("Cannot refund %(amount)s: only %(left)s is left to refund.")
                % {
                    "amount": format_money(value, locked.currency),
                    "left": format_money(left, locked.currency),
                },
                field="amount",
                provider=locked.provider,
            )
        if value != locked.refundable_amount and not partial_refunds:
            raise NotSupported(
                _("%(name)s only refunds the whole amount.")
                % {"name": provider.display_name},
                provider=locked.provider,
            )
        operation = _claim(locked, Operation.Kind.REFUND, amount=value, receipt=lines)
    refund: Callable[..., PaymentEvent | None] = provider.refund
    if lines is not None and provider.supports(Capability.RECEIPTS):
        # Only providers that print receipts take the keyword (base.py); an
        # invoice without a receipt is refunded by the call every provider has.
        refund = partial(refund, receipt=lines)
    event = _send(operation, lambda: refund(locked, value, key=operation.key))
    if event is not None:
        apply_event(event, operation=operation)
    return _fresh(invoice)


def _local_cancel(invoice: Invoice, reason: Message, key: str) -> PaymentEvent:
    return PaymentEvent(
        provider=invoice.provider,
        dedupe_id=f"cancel:{key}",
        type=EventType.CANCELLED,
        invoice_ref=str(invoice.uuid),
        reason=str(reason),
    )


def cancel_invoice(invoice: Invoice) -> Invoice:
    """Cancel an unpaid invoice: at the provider where it can cancel, locally
    otherwise. Funds on hold are released at the provider first; where the
    provider cannot release them, the cancel is refused with the reason (it
    never reports "cancelled" while the money stays blocked). A payment that
    arrives afterwards is still applied, and flagged."""
    _outside_transaction("cancel_invoice()")
    provider = invoice.get_provider()
    with transaction.atomic():
        locked = _lock(invoice)
        if locked.status not in CANCELLABLE:
            raise InvalidOperation(
                _("A %(status)s invoice cannot be cancelled.")
                % {"status": locked.get_status_display()},
                provider=locked.provider,
            )
        kind: str | None = None
        if locked.status == InvoiceStatus.ON_HOLD:
            if not provider.supports(Capability.HOLD):
                raise NotSupported(
                    _(
                        "The funds of this invoice are held at %(name)s, which "
                        "cannot release them through its API: release them in "
                        "%(name)s's own dashboard; its notification or a refresh "
                        "then cancels the invoice."
                    )
                    % {"name": provider.display_name},
                    provider=locked.provider,
                )
            kind = Operation.Kind.RELEASE
        elif (
            provider.supports(Capability.CANCEL)
            and locked.provider_payment_id
            and locked.status in (InvoiceStatus.CREATED, InvoiceStatus.PENDING)
        ):
            # Only a live payment is cancelled at the provider; a failed or expired
            # one is already dead there, and the invoice is cancelled locally.
            kind = Operation.Kind.CANCEL
        operation = _claim(locked, kind or Operation.Kind.CANCEL)
        if kind is None:
            _apply_locked(
                locked,
                _local_cancel(locked, msg("cancelled_by_merchant"), operation.key),
                None,
                operation,
            )
            return _fresh(invoice)
    if kind == Operation.Kind.RELEASE:
        event = _send(operation, lambda: provider.release(locked, key=operation.key))
        reason = msg("funds_released")
    else:
        event = _send(operation, lambda: provider.cancel(locked, key=operation.key))
        reason = msg("cancelled_by_merchant")
    # The provider took the request: the invoice is cancelled now, whether or not
    # its answer carried the new state.
    apply_event(
        event or _local_cancel(locked, reason, operation.key), operation=operation
    )
    return _fresh(invoice)


def _lock_hold(invoice: Invoice, provider: BaseProvider, refusal: str) -> Invoice:
    """``invoice`` locked, on hold, at a provider that can end holds."""
    locked = _lock(invoice)
    if locked.status != InvoiceStatus.ON_HOLD:
        raise InvalidOperation(refusal, provider=locked.provider)
    if not provider.supports(Capability.HOLD):
        raise NotSupported(
            _("%(name)s does not support holds.") % {"name": provider.display_name},
            provider=locked.provider,
        )
    return locked


def capture_invoice(
    invoice: Invoice, amount: Decimal | int | str | None = None
) -> Invoice:
    """Take the funds held for ``invoice`` (two-stage payments). Claimed before
    the provider is called: one capture, release or cancel at a time; the
    provider's answer, or the payment's webhook, settles it."""
    _outside_transaction("capture_invoice()")
    provider = invoice.get_provider()
    with transaction.atomic():
        locked = _lock_hold(
            invoice, provider, _("Only an invoice on hold can be captured.")
        )
        value = None if amount is None else to_amount(amount, locked.currency)
        operation = _claim(
            locked, Operation.Kind.CAPTURE, amount=value or locked.amount
        )
    event = _send(operation, lambda: provider.capture(locked, value, key=operation.key))
    if event is not None:
        apply_event(event, operation=operation)
    return _fresh(invoice)


def release_invoice(invoice: Invoice) -> Invoice:
    """Release the funds held for ``invoice`` (two-stage payments); the invoice
    is then cancelled."""
    _outside_transaction("release_invoice()")
    provider = invoice.get_provider()
    with transaction.atomic():
        locked = _lock_hold(
            invoice, provider, _("Only an invoice on hold can be released.")
        )
        operation = _claim(locked, Operation.Kind.RELEASE)
    event = _send(operation, lambda: provider.release(locked, key=operation.key))
    apply_event(
        event or _local_cancel(locked, msg("funds_released"), operation.key),
        operation=operation,
    )
    return _fresh(invoice)


def release_claim(operation: Operation, reason: Message | str = "") -> Operation:
    """Release an operation left in flight, once the merchant has checked at the
    provider that it was not done: a call that got no answer (a timeout, a 5xx)
    and that no webhook or poll has settled. It becomes ``failed`` with
    ``reason`` and no longer counts against what may be refunded or blocks the
    next operation. If the provider did do it after all, its webhook is still
    applied (money facts win). A start whose caller still holds its lease cannot
    be released."""
    with transaction.atomic():
        _lock(operation.invoice)
        locked = Operation.objects.select_for_update().get(pk=operation.pk)
        if locked.state != Operation.State.IN_FLIGHT:
            raise InvalidOperation(
                _("This operation is already %(state)s.")
                % {"state": locked.get_state_display().lower()},
                provider=locked.invoice.provider,
            )
        if (
            locked.kind == Operation.Kind.START
            and locked.lease_until is not None
            and locked.lease_until > timezone.now()
        ):
            raise OperationInFlight(
                _in_flight_message(locked), provider=locked.invoice.provider
            )
        _settle(
            locked,
            Operation.State.FAILED,
            # The merchant's own words stay as they were typed.
            _reason(reason) if reason else msg("released_by_merchant"),
        )
    return locked


def _reason(reason: Message | str) -> Message:
    """A reason given by the caller: free text stays as it was typed."""
    if isinstance(reason, Message):
        return reason
    return msg("text", text=reason[:2000])


# --- one order, one payment -------------------------------------------------------


def _after_order_paid(pk: int) -> None:
    """After the commit of a payment: close the rest of its order, in a task
    when webhooks are processed by Celery. Never raises: the payment is
    committed, and a sibling left open is still caught as a double payment."""
    try:
        if payments_settings.WEBHOOK_PROCESSING == "celery":
            from .tasks import close_order_task

            close_order_task.delay(pk)
        else:
            close_order(Invoice.objects.get(pk=pk))
    except Exception:
        logger.exception("Closing the order of paid invoice %s failed", pk)


def close_order(invoice: Invoice) -> list[Invoice]:
    """Cancel the other invoices still open of ``invoice``'s paid order: at their
    provider where it can cancel, locally otherwise. Funds held on a sibling are
    released; where that fails the sibling is flagged for the merchant. Called
    after every payment of an invoice with an ``order_key``; returns the
    siblings as they ended."""
    closed = []
    for sibling in invoice.siblings().filter(status__in=CANCELLABLE).order_by("pk"):
        try:
            closed.append(cancel_invoice(sibling))
            continue
        except PaymentsError as exc:
            problem = str(exc)
        reason = msg(
            "order_close_failed",
            order=invoice.order_key,
            ref=invoice.uuid,
            problem=problem,
        )
        with transaction.atomic():
            locked = _lock(sibling)
            if locked.status == InvoiceStatus.ON_HOLD:
                # The money is blocked: only the merchant can end this.
                _flag(locked, reason)
                locked.save(
                    update_fields=["needs_attention", "attention_notes", "updated_at"]
                )
            elif locked.status in CANCELLABLE:
                _apply_locked(
                    locked, _local_cancel(locked, reason, _new_key("close")), None
                )
        closed.append(_fresh(sibling))
    return closed


def pay_link(invoice: Invoice, request: HttpRequest | None = None) -> str:
    """The absolute pay link of ``invoice`` (``/payments/pay/<token>/``, the
    token signed with ``SECRET_KEY``): opening it starts the payment
    (:func:`start_payment`) and takes the customer to the provider, or shows
    why the invoice cannot be paid. Built on ``BASE_URL``'s host, else the
    request's; :class:`~django_payments_ru.exceptions.ConfigurationError`
    without either."""
    from .paylinks import pay_link as build

    return build(invoice, request)
