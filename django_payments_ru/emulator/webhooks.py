"""Webhooks from the emulators to the merchant, with retries.

:func:`deliver` stores a :class:`~.models.WebhookDelivery` (built by
``Emulator.send_webhook``) and posts it once the current transaction commits.
That order matters: in a demo or a test the merchant's webhook view runs in the
same process against the same database, and would otherwise wait for the
emulator's own transaction (SQLite would be locked).

An attempt that is not acknowledged (see ``Emulator.is_acknowledged``), times
out or cannot connect is retried by :func:`retry_due` (``manage.py
emulator_deliver_webhooks``) after the delivery's ``retry_schedule``: by default
1 min, 5 min and 30 min after the 1st, 2nd and 3rd failed attempt, then the
delivery stays ``failed``. Before a retry the emulator may re-sign or rewrite it
(``Emulator.prepare_retry``).
"""

from __future__ import annotations

import logging
from datetime import datetime, timedelta
from functools import partial
from typing import TYPE_CHECKING

import requests
from django.db import transaction

from . import clock

if TYPE_CHECKING:
    from django.db.models import QuerySet

    from .base import Emulator
    from .models import WebhookDelivery

logger = logging.getLogger("django_payments_ru.emulator")

#: Seconds after the 1st, 2nd and 3rd failed attempt.
DEFAULT_SCHEDULE: tuple[int, ...] = (60, 300, 1800)
DEFAULT_TIMEOUT = 10.0
#: A delivery whose send after commit never happened (the process died) is
#: picked up by the retry runner after this long.
UNSENT_GRACE = timedelta(minutes=1)


def deliver(delivery: WebhookDelivery) -> WebhookDelivery:
    """Store ``delivery`` (a new, unsaved row) and send it after the current
    transaction commits (at once when there is none)."""
    delivery.next_attempt_at = clock.now() + UNSENT_GRACE
    delivery.save()
    transaction.on_commit(partial(send_webhook, delivery))
    return delivery


def _emulator(slug: str) -> Emulator | None:
    from .registry import get_emulator

    return get_emulator(slug)


def send_webhook(
    delivery: WebhookDelivery, *, now: datetime | None = None
) -> WebhookDelivery:
    """Post ``delivery`` once and record the outcome. Call it outside any
    transaction: the merchant may answer only after reading the database."""
    from .models import WebhookDelivery

    delivery.refresh_from_db()
    emulator = _emulator(delivery.slug)
    if delivery.attempts and emulator is not None:
        body, headers = emulator.prepare_retry(delivery)
        delivery.body, delivery.headers = body.decode("utf-8"), headers
    body = delivery.body.encode("utf-8")
    timeout = emulator.webhook_timeout if emulator is not None else DEFAULT_TIMEOUT
    status_code: int | None = None
    error = ""
    ok = False
    try:
        response = requests.post(
            delivery.url,
            data=body,
            headers=delivery.headers,
            timeout=timeout,
            allow_redirects=False,
        )
    except requests.RequestException as exc:
        error = f"{type(exc).__name__}: {exc}"[:1000]
    else:
        status_code = response.status_code
        ok = (
            emulator.is_acknowledged(response)
            if emulator is not None
            else 200 <= status_code < 300
        )
        if not ok:
            error = f"HTTP {status_code}: {response.text[:500]}"

    when = now or clock.now()
    delivery.attempts += 1
    delivery.last_status_code = status_code
    delivery.last_error = error
    delivery.last_attempt_at = when
    if ok:
        delivery.status = WebhookDelivery.Status.DELIVERED
        delivery.next_attempt_at = None
    else:
        delivery.status = WebhookDelivery.Status.FAILED
        schedule = delivery.retry_schedule or []
        step = delivery.attempts - 1
        delivery.next_attempt_at = (
            when + timedelta(seconds=schedule[step]) if step < len(schedule) else None
        )
        logger.info(
            "Webhook %s to %s failed (attempt %d): %s",
            delivery.pk,
            delivery.url,
            delivery.attempts,
            error,
        )
    delivery.save(
        update_fields=[
            "body",
            "headers",
            "attempts",
            "last_status_code",
            "last_error",
            "last_attempt_at",
            "status",
            "next_attempt_at",
        ]
    )
    return delivery


def due(
    *, now: datetime | None = None, slug: str | None = None
) -> QuerySet[WebhookDelivery]:
    """Deliveries waiting for an attempt at ``now``."""
    from .models import WebhookDelivery

    qs = WebhookDelivery.objects.filter(
        status__in=[WebhookDelivery.Status.PENDING, WebhookDelivery.Status.FAILED],
        next_attempt_at__lte=now or clock.now(),
    ).order_by("next_attempt_at", "id")
    if slug:
        qs = qs.filter(slug=slug)
    return qs


def retry_due(
    *, now: datetime | None = None, slug: str | None = None, limit: int = 100
) -> list[WebhookDelivery]:
    """Send every delivery whose next attempt is due at ``now`` (default: the
    emulator clock), at most ``limit``; returns them with their outcome."""
    when = now or clock.now()
    return [
        send_webhook(delivery, now=when)
        for delivery in due(now=when, slug=slug)[:limit]
    ]
