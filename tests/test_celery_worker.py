"""A webhook processed by a real Celery worker through a Redis broker.

Skipped unless REDIS_URL is set (e.g. ``REDIS_URL=redis://127.0.0.1:6379/0``, as
the CI sets it). The rest of the suite runs Celery in eager mode.
"""

from __future__ import annotations

import time
import uuid

import pytest
from django.conf import settings
from django.test import override_settings

from django_payments_ru.models import WebhookEvent
from django_payments_ru.status import InvoiceStatus
from tests.helpers import make_invoice, payment_object, post_webhook, webhook_body
from tests.testapp import celery_app


def _forget_routing() -> None:
    """Drop what an earlier task (run eagerly by another test) made Celery keep:
    pooled connections to the old broker and the router with the old default
    queue, which would send the webhook's task where no worker listens."""
    celery_app.close()
    celery_app.__dict__.pop("amqp", None)


@pytest.fixture
def worker():
    if not settings.REDIS_URL:
        pytest.skip("needs Redis as the Celery broker: set REDIS_URL=redis://...")
    from celery.contrib.testing.worker import start_worker

    # Registered before the worker starts, as a project's autodiscovery does.
    import django_payments_ru.tasks  # noqa: F401

    queue = f"payments-ru-test-{uuid.uuid4().hex[:8]}"
    saved = {
        key: celery_app.conf[key]
        for key in ("broker_url", "task_always_eager", "task_default_queue")
    }
    celery_app.conf.update(
        broker_url=settings.REDIS_URL,
        task_always_eager=False,
        # A queue of its own, so that no other run's worker takes the task.
        task_default_queue=queue,
    )
    _forget_routing()
    try:
        with start_worker(
            celery_app,
            pool="solo",
            perform_ping_check=False,
            queues=[queue],
            shutdown_timeout=10,
        ):
            yield
    finally:
        celery_app.conf.update(saved)
        _forget_routing()


@pytest.mark.django_db(transaction=True)
def test_webhook_processed_by_a_real_worker(client, worker):
    config = dict(settings.PAYMENTS_RU, WEBHOOK_PROCESSING="celery")
    with override_settings(PAYMENTS_RU=config):
        invoice = make_invoice("100.00")
        response = post_webhook(client, webhook_body(payment_object(invoice)))
        assert response.status_code == 200
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            invoice.refresh_from_db()
            if invoice.status == InvoiceStatus.PAID:
                break
            time.sleep(0.1)
    assert invoice.status == InvoiceStatus.PAID
    row = WebhookEvent.objects.get()
    assert row.status == WebhookEvent.Status.PROCESSED
    assert row.attempts == 1
