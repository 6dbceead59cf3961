"""The webhook pipeline: verify -> parse -> store once -> process -> answer.

What every provider's webhooks must do (forgeries, rotation, duplicates, late
and malformed events) is the contract of tests/contracts/webhooks.py, run by
each provider's tests/providers/<slug>/test_webhooks.py. Here: what the
pipeline does whatever the provider (processing errors and retries, mismatched
amounts, signals and transactions, Celery, secrets in logs), through the
sandbox."""

from __future__ import annotations

import json
import logging
from decimal import Decimal
from unittest import mock

import pytest
from django.db import transaction
from django.test import override_settings

from django_payments_ru import services
from django_payments_ru.events import EventType
from django_payments_ru.models import Invoice, Payment, WebhookEvent
from django_payments_ru.status import InvoiceStatus
from tests.helpers import (
    event,
    make_invoice,
    payment_object,
    post_webhook,
    record_signals,
    webhook_body,
)

pytestmark = pytest.mark.django_db(transaction=True)


def test_processing_error_keeps_traceback_and_next_delivery_processes(client):
    invoice = make_invoice("100.00")
    body = webhook_body(payment_object(invoice), event_id="evt_boom")
    real = services._apply_locked

    def boom(*args, **kwargs):
        raise RuntimeError("database hiccup")

    with record_signals() as log:
        with mock.patch.object(services, "_apply_locked", boom):
            failed = post_webhook(client, body)
        assert failed.status_code == 500
        row = WebhookEvent.objects.get()
        assert row.status == WebhookEvent.Status.FAILED
        assert "RuntimeError: database hiccup" in row.result_text
        assert "Traceback" in row.traceback and "boom" in row.traceback
        invoice.refresh_from_db()
        assert invoice.status == InvoiceStatus.CREATED
        assert log.calls == []

        assert services._apply_locked is real
        retried = post_webhook(client, body)
    assert retried.status_code == 200
    row.refresh_from_db()
    assert row.status == WebhookEvent.Status.PROCESSED
    assert row.traceback == ""
    assert row.attempts == 2
    assert row.deliveries == 2
    invoice.refresh_from_db()
    assert invoice.status == InvoiceStatus.PAID
    assert log.count("invoice_paid") == 1


@pytest.mark.parametrize(
    ("field", "value", "needle"),
    [("amount", "99.99", "amount 99.99"), ("currency", "USD", "currency USD")],
)
def test_amount_or_currency_mismatch_is_rejected_and_flagged(
    client, field, value, needle
):
    invoice = make_invoice("100.00")
    payment = payment_object(invoice, **{field: value})
    with record_signals() as log:
        response = post_webhook(client, webhook_body(payment))
    assert response.status_code == 200  # accepted: the provider must not retry
    invoice.refresh_from_db()
    assert invoice.status == InvoiceStatus.CREATED
    assert invoice.paid_amount == 0
    assert invoice.needs_attention
    assert needle in invoice.attention_text
    row = WebhookEvent.objects.get()
    assert row.status == WebhookEvent.Status.REJECTED
    assert needle in row.result_text
    assert Payment.objects.count() == 0
    assert log.calls == []


def test_event_for_unknown_invoice_is_rejected_not_retried(client):
    invoice = make_invoice("100.00")
    payment = payment_object(
        invoice, reference="00000000-0000-0000-0000-000000000000", id="pay_unknown"
    )
    response = post_webhook(client, webhook_body(payment))
    assert response.status_code == 200
    row = WebhookEvent.objects.get()
    assert row.status == WebhookEvent.Status.REJECTED
    assert "no matching invoice" in row.result_text


def test_rollback_after_a_transition_sends_no_signal():
    invoice = make_invoice("100.00")
    with record_signals() as log, pytest.raises(RuntimeError), transaction.atomic():
        services.apply_event(event(invoice, EventType.PAID))
        raise RuntimeError("the caller's transaction fails")
    invoice.refresh_from_db()
    assert invoice.status == InvoiceStatus.CREATED
    assert log.calls == []
    assert Payment.objects.count() == 0


def test_signals_fire_after_commit_only():
    invoice = make_invoice("100.00")
    seen = []
    with record_signals() as log, transaction.atomic():
        services.apply_event(event(invoice, EventType.PAID))
        seen.append(len(log.calls))
    assert seen == [0]
    assert log.count("invoice_paid") == 1


def test_reprocess_a_rejected_event_after_the_cause_is_fixed(client):
    invoice = make_invoice("100.00")
    # Arrives before the invoice knows its provider id and with an unknown ref.
    payment = payment_object(invoice, reference="", id="pay_later")
    post_webhook(client, webhook_body(payment))
    row = WebhookEvent.objects.get()
    assert row.status == WebhookEvent.Status.REJECTED
    Invoice.objects.filter(pk=invoice.pk).update(provider_payment_id="pay_later")
    # A provider retry does not rework a done event...
    assert services.process_webhook_event(row.pk).status == row.status
    # ...but the merchant's explicit reprocess does.
    assert services.process_webhook_event(row.pk, force=True).status == (
        WebhookEvent.Status.PROCESSED
    )
    invoice.refresh_from_db()
    assert invoice.status == InvoiceStatus.PAID


def test_refund_webhook_with_running_total(client):
    invoice = make_invoice("100.00")
    post_webhook(client, webhook_body(payment_object(invoice)))
    with record_signals() as log:
        post_webhook(
            client,
            webhook_body(
                payment_object(invoice, status="succeeded", refunded_amount="25.00"),
                type_="payment.refunded",
            ),
        )
        post_webhook(
            client,
            webhook_body(
                payment_object(invoice, status="refunded", refunded_amount="100.00")
            ),
        )
    invoice.refresh_from_db()
    assert invoice.status == InvoiceStatus.REFUNDED
    assert invoice.refunded_amount == Decimal("100.00")
    refunds = [s.kwargs["amount"] for s in log.named("invoice_refunded")]
    assert refunds == [Decimal("25.00"), Decimal("75.00")]


def test_celery_mode_processes_after_commit(client, settings):
    config = dict(settings.PAYMENTS_RU, WEBHOOK_PROCESSING="celery")
    with override_settings(PAYMENTS_RU=config):
        invoice = make_invoice("100.00")
        with mock.patch(
            "django_payments_ru.tasks.process_webhook_event_task.delay",
            wraps=__import__(
                "django_payments_ru.tasks", fromlist=["x"]
            ).process_webhook_event_task.delay,
        ) as delay:
            response = post_webhook(client, webhook_body(payment_object(invoice)))
    assert response.status_code == 200
    assert delay.call_count == 1
    invoice.refresh_from_db()
    assert invoice.status == InvoiceStatus.PAID  # eager Celery in the tests


def test_no_secret_in_stored_rows_or_logs(client, caplog, settings):
    caplog.set_level(logging.DEBUG)
    invoice = make_invoice("100.00")
    body = webhook_body(payment_object(invoice))
    post_webhook(client, body)
    post_webhook(client, body, secret="whsec_wrong")
    canary = settings.SANDBOX_WEBHOOK_SECRET
    text = "\n".join(r.getMessage() for r in caplog.records)
    assert canary not in text
    for row in WebhookEvent.objects.all():
        assert canary not in json.dumps(row.payload) + json.dumps(row.event)
        assert canary not in row.result_text + row.traceback


def test_a_raising_receiver_does_not_fail_the_committed_event(client, caplog):
    from django_payments_ru import signals

    invoice = make_invoice("100.00")

    def broken(sender, **kwargs):
        raise ValueError("fulfilment crashed")

    signals.invoice_paid.connect(broken, weak=False)
    try:
        with record_signals() as log:
            response = post_webhook(client, webhook_body(payment_object(invoice)))
    finally:
        signals.invoice_paid.disconnect(broken)
    assert response.status_code == 200
    row = WebhookEvent.objects.get()
    assert row.status == WebhookEvent.Status.PROCESSED
    assert row.attempts == 1
    assert log.count("invoice_paid") == 1  # the other receivers still heard it
    assert any(
        "receiver of a payment signal failed" in r.getMessage() and r.exc_info
        for r in caplog.records
    )
