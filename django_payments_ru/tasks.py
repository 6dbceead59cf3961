"""Thin Celery tasks over :mod:`django_payments_ru.services`.

With ``PAYMENTS_RU["WEBHOOK_PROCESSING"] = "celery"`` the webhook view stores
events and queues :func:`process_webhook_event_task` after the commit. Without a
broker configured, Celery's eager mode runs the tasks in-process.

Every task is safe to run twice, so each is acknowledged late
(``acks_late=True``): the broker keeps the message until the task has finished,
and a worker killed in the middle (SIGKILL, out of memory, a lost machine)
leaves it to be delivered again instead of losing it. ``reject_on_worker_lost``
makes a prefork worker whose child died put the message back at once rather
than record the task as failed; the work the child did was inside a database
transaction, which the database rolled back when its connection went away.
"""

from __future__ import annotations

from celery import shared_task

from . import services
from .models import Invoice

#: What every task of the app shares: late acknowledgement (see above).
_LATE_ACK = {"acks_late": True, "reject_on_worker_lost": True}


@shared_task(
    name="django_payments_ru.process_webhook_event",
    autoretry_for=(Exception,),
    retry_backoff=True,
    retry_backoff_max=600,
    max_retries=5,
    **_LATE_ACK,
)
def process_webhook_event_task(pk: int) -> str:
    """Process one stored webhook event; returns its status.

    Idempotent: an event already processed, ignored or rejected is left alone
    (:func:`~django_payments_ru.services.process_webhook_event` locks the row and
    looks first), so a redelivered message, a provider's retry queued twice or
    the sweeper racing a worker change nothing twice."""
    return str(services.process_webhook_event(pk).status)


@shared_task(name="django_payments_ru.refresh_invoice", **_LATE_ACK)
def refresh_invoice_task(pk: int) -> str:
    """Ask the provider for an invoice's status and apply it; returns the status.
    A status query changes nothing at the provider: running it twice is safe."""
    invoice = Invoice.objects.get(pk=pk)
    return str(services.refresh_invoice(invoice).status)


@shared_task(name="django_payments_ru.close_order", **_LATE_ACK)
def close_order_task(pk: int) -> list[str]:
    """Cancel the other open invoices of a paid invoice's order; returns their
    statuses. Running it twice is safe: each cancel is claimed under the
    invoice's lock before the provider is called, and a cancelled sibling is no
    longer open."""
    invoice = Invoice.objects.get(pk=pk)
    return [str(sibling.status) for sibling in services.close_order(invoice)]


# The jobs' tasks (sweeper, reconciliation, expiry), found by autodiscovery here.
from .jobs import expire_task, reconcile_task, sweep_events_task  # noqa: E402,F401
