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
import traceback
import uuid
from dataclasses import dataclass
from decimal import Decimal
from enum import StrEnum
from functools import partial
from typing import Any

from django.core.exceptions import ValidationError
from django.core.validators import validate_email
from django.db import IntegrityError, transaction
from django.db.models import F
from django.http import HttpRequest
from django.utils import timezone
from django.utils.translation import gettext as _

from . import signals
from .events import EventType, PaymentEvent
from .exceptions import InvalidAmount, InvalidInput, InvalidOperation, NotSupported
from .models import Invoice, Payment, WebhookEvent
from .money import normalize_currency, to_amount
from .providers.base import BaseProvider, Capability, Checkout
from .registry import get_provider
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

__all__ = [
    "ApplyResult",
    "apply_event",
    "cancel_invoice",
    "capture_invoice",
    "create_invoice",
    "process_webhook_event",
    "record_events",
    "refresh_invoice",
    "refund_invoice",
    "release_invoice",
    "start_payment",
]


# --- creating and starting ----------------------------------------------------


def _limit(value: Any, field: str, max_length: int) -> str:
    if value is None:
        return ""
    if not isinstance(value, str):
        raise InvalidInput(
            _("%(field)s must be a string.") % {"field": field}, field=field
        )
    value = value.strip()
    if len(value) > max_length:
        raise InvalidInput(
            _("%(field)s is longer than %(max)d characters.")
            % {"field": field, "max": max_length},
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
) -> Invoice:
    """Create an invoice for ``amount`` to be paid through the provider ``provider``
    (an alias of ``PAYMENTS_RU["PROVIDERS"]``). Validates everything before it
    writes anything: a bad amount, currency or field raises
    :class:`~django_payments_ru.exceptions.InvalidInput` and no row is created.
    Nothing is sent to the provider until :func:`start_payment`."""
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
    if phone and not phone.lstrip("+").isdigit():
        raise InvalidInput(
            _("A phone number is digits with an optional leading '+'."),
            field="customer_phone",
        )
    if metadata is not None and not isinstance(metadata, dict):
        raise InvalidInput(_("metadata must be a dict."), field="metadata")
    invoice = Invoice(
        provider=provider,
        amount=value,
        currency=code,
        order_id=_limit(order_id, "order_id", 64),
        description=_limit(description, "description", 255),
        customer_email=email,
        customer_phone=phone,
        metadata=metadata or {},
        return_url=_limit(return_url, "return_url", 2000),
    )
    backend.validate_invoice(invoice)
    invoice.save()
    return invoice


def start_payment(invoice: Invoice, request: HttpRequest | None = None) -> Checkout:
    """How the customer pays ``invoice``: registers the payment with the provider
    when its API does that, stores the :class:`Checkout` and returns it. Calling it
    again returns the stored checkout while it is still valid, so a double click
    does not create a second payment at the provider."""
    invoice.refresh_from_db()
    if invoice.status not in PAYABLE:
        raise InvalidOperation(
            _("Invoice %(ref)s cannot be paid: it is %(status)s.")
            % {"ref": invoice.uuid, "status": invoice.get_status_display()},
            provider=invoice.provider,
        )
    existing = invoice.get_checkout()
    if (
        existing is not None
        and invoice.status != InvoiceStatus.FAILED
        and (existing.expires_at is None or existing.expires_at > timezone.now())
    ):
        return existing
    provider = invoice.get_provider()
    checkout = provider.start(invoice, request)  # network: outside any transaction
    with transaction.atomic():
        locked = Invoice.objects.select_for_update().get(pk=invoice.pk)
        locked.checkout = checkout.to_json()
        if checkout.payment_id:
            locked.provider_payment_id = checkout.payment_id
        locked.expires_at = checkout.expires_at
        locked.save(
            update_fields=[
                "checkout",
                "provider_payment_id",
                "expires_at",
                "updated_at",
            ]
        )
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
            )
    invoice.refresh_from_db()
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
    reason: str = ""


def _locate(event: PaymentEvent, *, lock: bool) -> Invoice | None:
    qs = Invoice.objects.filter(provider=event.provider)
    if lock:
        qs = qs.select_for_update()
    if event.invoice_ref:
        try:
            ref = uuid.UUID(str(event.invoice_ref))
        except ValueError:
            ref = None
        if ref is not None:
            found = qs.filter(uuid=ref).first()
            if found is not None:
                return found
    if event.provider_payment_id:
        found = qs.filter(provider_payment_id=event.provider_payment_id).first()
        if found is not None:
            return found
    if event.order_id:
        return qs.filter(order_id=event.order_id).order_by("-created_at", "-id").first()
    return None


def _flag(invoice: Invoice, reason: str) -> None:
    invoice.needs_attention = True
    stamp = timezone.now().strftime("%Y-%m-%d %H:%M")
    line = f"{stamp}: {reason}"
    invoice.attention_reason = (
        f"{invoice.attention_reason}\n{line}" if invoice.attention_reason else line
    )


def _mismatch(invoice: Invoice, event: PaymentEvent) -> str:
    want = invoice.quantize(invoice.amount)
    if event.currency and event.currency.upper() != invoice.currency:
        return _("currency %(got)s does not match the invoice's %(want)s") % {
            "got": event.currency,
            "want": invoice.currency,
        }
    if event.amount is not None and event.amount != invoice.amount:
        return _("amount %(got)s does not match the invoice's %(want)s") % {
            "got": event.amount,
            "want": want,
        }
    return ""


def _send_signals(
    invoice: Invoice, old: str, new: str, event: PaymentEvent, refunded: Decimal
) -> None:
    """Send the signals of a committed change. A receiver that raises does not
    stop the others and cannot undo the change (it is already committed): its
    error is logged with its traceback."""
    kwargs = {"invoice": invoice, "old_status": old, "new_status": new, "event": event}
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
        for receiver, result in signal.send_robust(sender=Invoice, **arguments):
            if isinstance(result, BaseException):
                logger.error(
                    "A receiver of a payment signal failed for invoice %s: %r",
                    invoice.uuid,
                    receiver,
                    exc_info=(type(result), result, result.__traceback__),
                )


def _apply_locked(
    invoice: Invoice, event: PaymentEvent, row: WebhookEvent | None
) -> ApplyResult:
    """Apply ``event`` to ``invoice``, whose row the caller has locked inside a
    transaction. Signals are queued for after the commit."""
    old = invoice.status
    if event.type in (EventType.PAID, EventType.HELD):
        # An amount or currency that does not match never marks an invoice paid.
        problem = _mismatch(invoice, event)
        if (
            not problem
            and event.type is EventType.PAID
            and invoice.status in PAID_STATES
            and event.provider_payment_id
            and invoice.provider_payment_id
            and event.provider_payment_id != invoice.provider_payment_id
        ):
            # The customer paid twice: the second payment must not vanish as a
            # repeat of the first; the merchant refunds one of them.
            problem = _(
                "a second payment %(new)s arrived for an invoice already paid by "
                "%(old)s: refund one of them"
            ) % {"new": event.provider_payment_id, "old": invoice.provider_payment_id}
        if problem:
            _flag(
                invoice,
                _("%(event)s event rejected: %(problem)s")
                % {"event": event.type.label, "problem": problem},
            )
            invoice.save(
                update_fields=["needs_attention", "attention_reason", "updated_at"]
            )
            return ApplyResult(Result.REJECTED, invoice, old, old, problem)

    rule = rule_for(old, event.type)
    if rule.outcome is Outcome.NOOP:
        return ApplyResult(Result.NOOP, invoice, old, old, _("already in this state"))
    if rule.outcome is Outcome.IGNORE:
        return ApplyResult(Result.IGNORED, invoice, old, old, rule.reason)

    assert rule.target is not None
    target = rule.target
    refunded = Decimal(0)
    now = timezone.now()
    source = event.dedupe_id[:255]
    if event.type is EventType.PAID:
        invoice.paid_amount = max(invoice.paid_amount, invoice.amount)
        invoice.paid_at = event.occurred_at or now
        Payment.objects.create(
            invoice=invoice,
            kind=Payment.Kind.CHARGE,
            amount=invoice.amount,
            currency=invoice.currency,
            event=row,
            source=source,
            provider_payment_id=event.provider_payment_id
            or invoice.provider_payment_id,
        )
    elif event.type is EventType.REFUNDED:
        if event.refunded_total is not None:
            refunded = event.refunded_total - invoice.refunded_amount
            if refunded <= 0:  # already recorded (sync answer, older event)
                return ApplyResult(
                    Result.NOOP, invoice, old, old, _("refund already recorded")
                )
        else:
            refunded = (
                event.amount if event.amount is not None else invoice.refundable_amount
            )
        if refunded <= 0 or refunded > invoice.refundable_amount:
            problem = _(
                "refund of %(amount)s exceeds what can be refunded (%(left)s)"
            ) % {"amount": refunded, "left": invoice.refundable_amount}
            _flag(invoice, problem)
            invoice.save(
                update_fields=["needs_attention", "attention_reason", "updated_at"]
            )
            return ApplyResult(Result.REJECTED, invoice, old, old, problem)
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
    if rule.flag:
        _flag(invoice, rule.reason)
    if event.provider_payment_id and not invoice.provider_payment_id:
        invoice.provider_payment_id = event.provider_payment_id[:128]
    if target != old:
        invoice.status = target
        invoice.status_changed_at = now
    invoice.save()
    transaction.on_commit(partial(_send_signals, invoice, old, target, event, refunded))
    return ApplyResult(Result.APPLIED, invoice, old, target, rule.reason)


def apply_event(event: PaymentEvent) -> ApplyResult:
    """Apply a verified event (a status poll, a synchronous API answer) to its
    invoice, under a row lock, in one transaction."""
    with transaction.atomic():
        invoice = _locate(event, lock=True)
        if invoice is None:
            return ApplyResult(Result.REJECTED, None, reason=_("no matching invoice"))
        return _apply_locked(invoice, event, None)


# --- the webhook inbox ----------------------------------------------------------


def record_events(
    provider: BaseProvider, events: list[PaymentEvent]
) -> list[WebhookEvent]:
    """Store each verified event once (unique per provider alias and dedupe id),
    with the secrets the provider names removed from its payload; a redelivery
    finds the stored row and counts the delivery."""
    alias = provider.alias
    rows = []
    for event in events:
        payload = provider.redact_payload(event.raw_json())
        try:
            with transaction.atomic():
                row = WebhookEvent.objects.create(
                    provider=alias,
                    dedupe_id=event.dedupe_id[:255],
                    event_type=event.type,
                    event=event.to_json(),
                    payload=payload,
                )
        except IntegrityError:
            row = WebhookEvent.objects.get(
                provider=alias, dedupe_id=event.dedupe_id[:255]
            )
            WebhookEvent.objects.filter(pk=row.pk).update(
                deliveries=F("deliveries") + 1
            )
        rows.append(row)
    return rows


_ROW_STATUS = {
    Result.APPLIED: WebhookEvent.Status.PROCESSED,
    Result.NOOP: WebhookEvent.Status.IGNORED,
    Result.IGNORED: WebhookEvent.Status.IGNORED,
    Result.REJECTED: WebhookEvent.Status.REJECTED,
}


def process_webhook_event(pk: int, *, force: bool = False) -> WebhookEvent:
    """Process one stored event in one transaction. A processed, ignored or
    rejected event is left alone (``force`` re-runs a rejected one, for the admin's
    "reprocess"). A failure keeps its error and traceback and stays retriable;
    the error is re-raised."""
    try:
        with transaction.atomic():
            row = WebhookEvent.objects.select_for_update().get(pk=pk)
            if row.is_done and not (
                force and row.status == WebhookEvent.Status.REJECTED
            ):
                return row
            event = row.to_event()
            invoice = _locate(event, lock=True)
            if invoice is None:
                result = ApplyResult(
                    Result.REJECTED, None, reason=_("no matching invoice")
                )
            else:
                result = _apply_locked(invoice, event, row)
            row.status = _ROW_STATUS[result.result]
            row.result = result.reason
            row.traceback = ""
            row.invoice = invoice
            row.attempts += 1
            row.processed_at = timezone.now()
            row.save(
                update_fields=[
                    "status",
                    "result",
                    "traceback",
                    "invoice",
                    "attempts",
                    "processed_at",
                ]
            )
            return row
    except Exception as exc:
        WebhookEvent.objects.filter(pk=pk).update(
            status=WebhookEvent.Status.FAILED,
            result=f"{type(exc).__name__}: {exc}"[:2000],
            traceback=traceback.format_exc(),
            attempts=F("attempts") + 1,
        )
        logger.error("Processing webhook event %s failed: %s", pk, type(exc).__name__)
        raise


# --- merchant operations --------------------------------------------------------


def _fresh(invoice: Invoice) -> Invoice:
    invoice.refresh_from_db()
    return invoice


def refresh_invoice(invoice: Invoice) -> Invoice:
    """Ask the provider where the payment stands and apply the answer."""
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


def refund_invoice(
    invoice: Invoice, amount: Decimal | int | str | None = None
) -> Invoice:
    """Refund ``amount`` (default: everything not yet refunded)."""
    provider = invoice.get_provider()
    invoice = _fresh(invoice)
    if not provider.supports(Capability.REFUND):
        raise NotSupported(
            _("%(name)s does not support refunds.") % {"name": provider.display_name},
            provider=invoice.provider,
        )
    if invoice.status not in PAID_STATES or invoice.refundable_amount <= 0:
        raise InvalidOperation(
            _(
                "Only a paid invoice with money left to refund can be refunded; "
                "this one is %(status)s."
            )
            % {"status": invoice.get_status_display()},
            provider=invoice.provider,
        )
    value = (
        invoice.refundable_amount
        if amount is None
        else to_amount(amount, invoice.currency)
    )
    if value > invoice.refundable_amount:
        raise InvalidAmount(
            _("Cannot refund %(amount)s: only %(left)s %(currency)s is left to refund.")
            % {
                "amount": value,
                "left": invoice.refundable_amount,
                "currency": invoice.currency,
            },
            field="amount",
            provider=invoice.provider,
        )
    if value != invoice.refundable_amount and not provider.supports(
        Capability.PARTIAL_REFUND
    ):
        raise NotSupported(
            _("%(name)s only refunds the whole amount.")
            % {"name": provider.display_name},
            provider=invoice.provider,
        )
    event = provider.refund(invoice, value)
    if event is not None:
        apply_event(event)
    return _fresh(invoice)


def cancel_invoice(invoice: Invoice) -> Invoice:
    """Cancel an unpaid invoice (at the provider too, where it supports that).
    A payment that arrives afterwards is still applied, and flagged."""
    invoice = _fresh(invoice)
    if invoice.status not in CANCELLABLE:
        raise InvalidOperation(
            _("A %(status)s invoice cannot be cancelled.")
            % {"status": invoice.get_status_display()},
            provider=invoice.provider,
        )
    provider = invoice.get_provider()
    event = None
    if invoice.status == InvoiceStatus.ON_HOLD and provider.supports(Capability.HOLD):
        event = provider.release(invoice)
    elif (
        provider.supports(Capability.CANCEL)
        and invoice.provider_payment_id
        and invoice.status in (InvoiceStatus.CREATED, InvoiceStatus.PENDING)
    ):
        # Only a live payment is cancelled at the provider; a failed or expired
        # one is already dead there, and the invoice is cancelled locally.
        event = provider.cancel(invoice)
    if event is None:
        event = PaymentEvent(
            provider=invoice.provider,
            dedupe_id=f"cancel:{invoice.uuid}",
            type=EventType.CANCELLED,
            invoice_ref=str(invoice.uuid),
            reason=_("cancelled by the merchant"),
        )
    apply_event(event)
    return _fresh(invoice)


def capture_invoice(
    invoice: Invoice, amount: Decimal | int | str | None = None
) -> Invoice:
    """Take the funds held for ``invoice`` (two-stage payments)."""
    invoice = _fresh(invoice)
    if invoice.status != InvoiceStatus.ON_HOLD:
        raise InvalidOperation(
            _("Only an invoice on hold can be captured."), provider=invoice.provider
        )
    value = None if amount is None else to_amount(amount, invoice.currency)
    event = invoice.get_provider().capture(invoice, value)
    if event is not None:
        apply_event(event)
    return _fresh(invoice)


def release_invoice(invoice: Invoice) -> Invoice:
    """Release the funds held for ``invoice`` (two-stage payments)."""
    invoice = _fresh(invoice)
    if invoice.status != InvoiceStatus.ON_HOLD:
        raise InvalidOperation(
            _("Only an invoice on hold can be released."), provider=invoice.provider
        )
    event = invoice.get_provider().release(invoice)
    if event is not None:
        apply_event(event)
    return _fresh(invoice)
