"""What the customer is told about an invoice: one set of words for every
state, shared by the pay link page, the return page and
``{% payment_status %}`` / ``{% payment_button %}`` (the template
``django_payments_ru/status.html``)."""

from __future__ import annotations

import logging
from typing import Any

from django.core.exceptions import ImproperlyConfigured
from django.utils.translation import gettext as _

from .conf import payments_settings
from .events import EventType
from .exceptions import ConfigurationError, InvalidInput
from .formatting import format_money
from .models import Invoice
from .providers.base import Checkout
from .status import PAID_STATES, PAYABLE, InvoiceStatus
from .validation import check_return_url, safe_image_url, safe_redirect_url

logger = logging.getLogger("django_payments_ru")

STATUS_TEMPLATE = "django_payments_ru/status.html"


def failure_reason(invoice: Invoice) -> str:
    """The provider's reason for the last decline (from its webhook), or ""."""
    if invoice.status != InvoiceStatus.FAILED:
        return ""
    event = (
        invoice.webhook_events.filter(event_type=EventType.FAILED)
        .order_by("-received_at", "-id")
        .values_list("event", flat=True)
        .first()
    )
    reason = event.get("reason", "") if isinstance(event, dict) else ""
    return reason.strip() if isinstance(reason, str) else ""


#: The problems of a payment that arrived and was refused because it is not
#: the invoice's (``services._mismatch``): the money moved, the invoice waits.
MISMATCHES = frozenset({"amount_mismatch", "currency_mismatch"})


def received_other_amount(invoice: Invoice) -> bool:
    """Whether a payment that does not match ``invoice`` (another amount or
    currency: a crypto payment that arrived short, say) was refused and
    flagged for the merchant while the invoice still waits."""
    if invoice.status not in PAYABLE or not invoice.needs_attention:
        return False
    for note in invoice.attention_notes or []:
        params = note.get("params") if isinstance(note, dict) else None
        problem = params.get("problem") if isinstance(params, dict) else None
        if (
            note.get("code") == "event_rejected"
            and isinstance(problem, dict)
            and problem.get("code") in MISMATCHES
        ):
            return True
    return False


def status_message(invoice: Invoice) -> str:
    """A sentence about where ``invoice``'s payment stands, for its customer."""
    status = invoice.status
    if received_other_amount(invoice):
        return _(
            "A payment that does not match this invoice (another amount or "
            "currency) has arrived; the shop has been told and will contact you."
        )
    if status == InvoiceStatus.CREATED:
        return _("The invoice is waiting to be paid.")
    if status == InvoiceStatus.PENDING:
        return _(
            "We are waiting for the provider to confirm the payment. If you have "
            "paid, refresh this page in a minute."
        )
    if status == InvoiceStatus.ON_HOLD:
        return _("The amount is held; you will be charged when the order ships.")
    if status == InvoiceStatus.PAID:
        return _("The payment has been received. Thank you!")
    if status == InvoiceStatus.FAILED:
        reason = failure_reason(invoice)
        if reason:
            return _(
                "The payment did not go through: %(reason)s. You can try again."
            ) % {"reason": reason}
        return _("The payment did not go through. You can try again.")
    if status == InvoiceStatus.EXPIRED:
        return _("The time to pay this invoice has run out.")
    if status == InvoiceStatus.CANCELLED:
        return _("This invoice was cancelled and can no longer be paid.")
    if status == InvoiceStatus.PARTIALLY_REFUNDED:
        return _("%(refunded)s of %(paid)s has been refunded.") % {
            "refunded": format_money(invoice.refunded_amount, invoice.currency),
            "paid": format_money(invoice.paid_amount, invoice.currency),
        }
    if status == InvoiceStatus.REFUNDED:
        return _("The payment of %(amount)s has been refunded in full.") % {
            "amount": format_money(invoice.refunded_amount, invoice.currency)
        }
    return ""


def status_context(invoice: Invoice) -> dict[str, Any]:
    """The values ``django_payments_ru/status.html`` renders."""
    return {
        "invoice": invoice,
        "status": invoice.status,
        "status_label": invoice.get_status_display(),
        "status_message": status_message(invoice),
    }


def back_url(invoice: Invoice) -> str:
    """Where "back to the shop" leads: the invoice's ``return_url`` when it
    still passes the checks, else ``BASE_URL``, else nowhere ("")."""
    if invoice.return_url:
        try:
            return check_return_url(invoice.return_url)
        except (InvalidInput, ConfigurationError) as exc:
            logger.info("No way back for invoice %s: %s", invoice.uuid, exc)
    return str(payments_settings.BASE_URL or "")


def page_context(invoice: Invoice) -> dict[str, Any]:
    """Everything ``django_payments_ru/base.html`` and its pages use."""
    return {
        **status_context(invoice),
        "back_url": back_url(invoice),
        "amount_display": format_money(invoice.amount, invoice.currency),
    }


def provider_name(invoice: Invoice) -> str:
    """The provider's name for people (its ``display_name``), or the alias when
    the provider is no longer configured."""
    try:
        return str(invoice.get_provider().display_name or invoice.provider)
    except ImproperlyConfigured:
        return invoice.provider


def order_paid_elsewhere(invoice: Invoice) -> bool:
    """Whether another invoice of ``invoice``'s order is paid already (the
    services then refuse to start this one)."""
    return invoice.siblings().filter(status__in=PAID_STATES).exists()


def can_pay(invoice: Invoice) -> bool:
    """Whether the customer can pay ``invoice`` now: its status takes a
    payment and its order was not paid through another invoice."""
    return invoice.status in PAYABLE and not order_paid_elsewhere(invoice)


def paid_elsewhere_message() -> str:
    return _("This order has already been paid.")


def checkout_qr(invoice: Invoice | None, checkout: Checkout) -> dict[str, str] | None:
    """The checkout's QR code (``{"image": ..., "payload": ...}``) when both
    halves are safe to show to the customer, else ``None``."""
    if checkout.method != "GET" or not checkout.qr_image:
        return None
    payload = checkout.qr_payload
    if not safe_image_url(checkout.qr_image) or (
        payload and not safe_redirect_url(payload)
    ):
        logger.warning(
            "Invoice %s: the provider's QR code is not a safe image or link; not shown",
            invoice.uuid if invoice is not None else "-",
        )
        return None
    return {"image": checkout.qr_image, "payload": payload}
