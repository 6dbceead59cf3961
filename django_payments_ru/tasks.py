"""Thin Celery tasks over :mod:`django_payments_ru.services`.

With ``PAYMENTS_RU["WEBHOOK_PROCESSING"] = "celery"`` the webhook view stores
events and queues :func:`process_webhook_event_task` after the commit. Without a
broker configured, Celery's eager mode runs the tasks in-process.
"""

from __future__ import annotations

from celery import shared_task

from . import services
from .models import Invoice


@shared_task(
    name="django_payments_ru.process_webhook_event",
    autoretry_for=(Exception,),
    retry_backoff=True,
    retry_backoff_max=600,
    max_retries=5,
)
def process_webhook_event_task(pk: int) -> str:
    """Process one stored webhook event; returns its status."""
    return str(services.process_webhook_event(pk).status)


@shared_task(name="django_payments_ru.refresh_invoice")
def refresh_invoice_task(pk: int) -> str:
    """Ask the provider for an invoice's status and apply it; returns the status."""
    invoice = Invoice.objects.get(pk=pk)
    return str(services.refresh_invoice(invoice).status)


@shared_task(name="django_payments_ru.close_order")
def close_order_task(pk: int) -> list[str]:
    """Cancel the other open invoices of a paid invoice's order; returns their
    statuses."""
    invoice = Invoice.objects.get(pk=pk)
    return [str(sibling.status) for sibling in services.close_order(invoice)]
