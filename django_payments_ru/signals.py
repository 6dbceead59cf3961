"""Signals sent after an invoice's status really changed, once the transaction
that changed it has committed. Every signal is sent with these arguments:

``sender``
    :class:`~django_payments_ru.models.Invoice`.
``invoice``
    The invoice, as it was saved.
``old_status``, ``new_status``
    :class:`~django_payments_ru.status.InvoiceStatus` values.
``event``
    The :class:`~django_payments_ru.events.PaymentEvent` that caused it.

A rolled-back transaction sends nothing; a repeated event sends nothing.

Signals are sent robustly: a receiver that raises does not stop the other
receivers and cannot undo the change, which is already committed; its error is
logged (logger ``django_payments_ru``) with its traceback. A receiver that must not
lose work (fulfilling an order) should queue it, e.g. as a Celery task.
"""

from django.dispatch import Signal

__all__ = [
    "Signal",
    "invoice_failed",
    "invoice_paid",
    "invoice_paid_twice",
    "invoice_refunded",
    "invoice_status_changed",
]

#: Any status change.
invoice_status_changed = Signal()
#: The invoice became ``paid``.
invoice_paid = Signal()
#: The invoice became ``failed`` (declined or failed payment attempt).
invoice_failed = Signal()
#: Money was returned (``partially_refunded`` or ``refunded``; also sent for a
#: further partial refund that leaves the status at ``partially_refunded``).
#: Extra argument: ``amount``, the Decimal refunded by this event.
invoice_refunded = Signal()
#: The customer paid one order twice: ``invoice`` was paid while another invoice
#: of its order (``order_key``) already was, or was paid a second time itself.
#: The money moved and is recorded; one of the payments is to be refunded.
#: Extra argument: ``other_invoice``, the invoice paid first (``invoice``
#: itself for a second payment on one invoice). ``old_status`` and
#: ``new_status`` are not sent with this signal.
invoice_paid_twice = Signal()
