"""Concurrent deliveries on PostgreSQL (row locks are real there).

Skipped unless DATABASE_URL points at PostgreSQL, e.g.
``DATABASE_URL=postgres://postgres@127.0.0.1:5432/test`` (as the CI sets it).
"""

from __future__ import annotations

import threading

import pytest
from django.db import connection, connections
from django.test import Client

from django_payments_ru.models import Payment, WebhookEvent
from django_payments_ru.status import InvoiceStatus
from tests.helpers import (
    make_invoice,
    payment_object,
    post_webhook,
    record_signals,
    webhook_body,
)

THREADS = 8
ROUNDS = 20


def _needs_postgres():
    if connection.vendor != "postgresql":
        pytest.skip("needs PostgreSQL: set DATABASE_URL=postgres://... to run")


def _deliver_all(bodies: list[bytes]) -> list[int]:
    """Post every body from its own thread, all released at the same instant."""
    barrier = threading.Barrier(len(bodies))
    codes: list[int] = [0] * len(bodies)
    errors: list[BaseException] = []

    def worker(i: int, body: bytes) -> None:
        try:
            client = Client()
            barrier.wait(timeout=10)
            codes[i] = post_webhook(client, body).status_code
        except BaseException as exc:  # reported in the main thread
            errors.append(exc)
        finally:
            connections.close_all()

    threads = [
        threading.Thread(target=worker, args=(i, b)) for i, b in enumerate(bodies)
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    assert not errors, errors
    return codes


@pytest.mark.django_db(transaction=True)
def test_same_paid_webhook_from_8_threads_applies_once():
    _needs_postgres()
    for round_ in range(ROUNDS):
        invoice = make_invoice("100.00", order_id=f"race-{round_}")
        body = webhook_body(payment_object(invoice), event_id=f"evt_race_{round_}")
        with record_signals() as log:
            codes = _deliver_all([body] * THREADS)
        assert codes == [200] * THREADS, (round_, codes)
        invoice.refresh_from_db()
        assert invoice.status == InvoiceStatus.PAID
        assert log.count("invoice_paid") == 1, round_
        assert log.count("invoice_status_changed") == 1, round_
        assert Payment.objects.filter(invoice=invoice).count() == 1
        row = WebhookEvent.objects.get(dedupe_id=f"evt_race_{round_}")
        assert row.deliveries == THREADS
        assert row.attempts == 1


@pytest.mark.django_db(transaction=True)
def test_paid_and_failed_racing_end_paid():
    _needs_postgres()
    for round_ in range(ROUNDS):
        invoice = make_invoice("100.00", order_id=f"pf-{round_}")
        paid = webhook_body(payment_object(invoice), event_id=f"evt_p_{round_}")
        failed = webhook_body(
            payment_object(invoice, status="failed"), event_id=f"evt_f_{round_}"
        )
        with record_signals() as log:
            codes = _deliver_all([paid, failed] * (THREADS // 2))
        assert codes == [200] * THREADS
        invoice.refresh_from_db()
        assert invoice.status == InvoiceStatus.PAID, round_
        assert log.count("invoice_paid") == 1
        assert Payment.objects.filter(invoice=invoice).count() == 1
