"""Benchmarks of the hot paths (``make bench``; not part of ``make test``).

Run with ``pytest benchmarks --benchmark-only``; compare runs with
``--benchmark-autosave`` and ``--benchmark-compare``.
"""

from __future__ import annotations

from decimal import Decimal

import pytest
from django.test import Client

from django_payments_ru import money
from django_payments_ru.models import WebhookEvent
from django_payments_ru.status import InvoiceStatus
from tests.helpers import make_invoice, payment_object, post_webhook, webhook_body


def test_to_minor(benchmark):
    assert benchmark(money.to_minor, Decimal("14990.50"), "RUB") == 1499050


def test_to_minor_from_string(benchmark):
    assert benchmark(money.to_minor, "2490.50", "RUB") == 249050


@pytest.mark.django_db(transaction=True)
def test_webhook_through_the_pipeline(benchmark):
    """One signed ``payment.succeeded`` for a fresh invoice: verify, parse,
    store, process under a row lock, answer."""
    client = Client()
    invoices = []

    def setup():
        invoice = make_invoice("990.00")
        invoices.append(invoice)
        body = webhook_body(payment_object(invoice, "succeeded"))
        return (client, body), {}

    def deliver(client, body):
        response = post_webhook(client, body)
        assert response.status_code == 200, response.content
        return response

    benchmark.pedantic(deliver, setup=setup, rounds=50, warmup_rounds=2)

    for invoice in invoices:
        invoice.refresh_from_db()
        assert invoice.status == InvoiceStatus.PAID
    assert WebhookEvent.objects.filter(
        status=WebhookEvent.Status.PROCESSED
    ).count() == len(invoices)


@pytest.mark.django_db(transaction=True)
def test_redelivered_webhook(benchmark):
    """A redelivery of an already processed event: found and acknowledged."""
    client = Client()
    invoice = make_invoice("990.00")
    body = webhook_body(payment_object(invoice, "succeeded"))
    assert post_webhook(client, body).status_code == 200

    def deliver():
        response = post_webhook(client, body)
        assert response.status_code == 200
        return response

    benchmark.pedantic(deliver, rounds=50, warmup_rounds=2)
    assert WebhookEvent.objects.get().status == WebhookEvent.Status.PROCESSED
