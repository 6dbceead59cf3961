"""The webhook pipeline: verify -> parse -> store once -> process -> answer."""

from __future__ import annotations

import json
import logging
import time
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
    WEBHOOK_URL,
    event,
    make_invoice,
    payment_object,
    post_webhook,
    record_signals,
    webhook_body,
)

pytestmark = pytest.mark.django_db(transaction=True)


def _counts() -> tuple[int, int, int]:
    return (
        WebhookEvent.objects.count(),
        Payment.objects.count(),
        Invoice.objects.exclude(status=InvoiceStatus.CREATED).count(),
    )


def test_a_valid_webhook_pays_the_invoice(client):
    invoice = make_invoice("100.00")
    with record_signals() as log:
        response = post_webhook(client, webhook_body(payment_object(invoice)))
    assert response.status_code == 200
    assert response.json() == {"received": True}
    invoice.refresh_from_db()
    assert invoice.status == InvoiceStatus.PAID
    assert invoice.paid_amount == Decimal("100.00")
    row = WebhookEvent.objects.get()
    assert row.status == WebhookEvent.Status.PROCESSED
    assert row.invoice == invoice
    assert row.attempts == 1
    assert log.names() == ["invoice_status_changed", "invoice_paid"]
    _, kwargs = log.calls[1]
    assert kwargs["invoice"].pk == invoice.pk
    assert kwargs["old_status"] == InvoiceStatus.CREATED
    assert kwargs["new_status"] == InvoiceStatus.PAID
    assert kwargs["event"].type is EventType.PAID


@pytest.mark.parametrize(
    "tamper",
    [
        "missing_signature",
        "wrong_secret",
        "garbage_signature",
        "stale_timestamp",
        "future_timestamp",
        "missing_timestamp",
        "reserialised_body",
        "tampered_amount",
        "signature_of_other_timestamp",
    ],
)
def test_forged_webhooks_are_refused_and_write_nothing(client, tamper):
    invoice = make_invoice("100.00")
    body = webhook_body(payment_object(invoice))
    now = str(int(time.time()))
    kwargs: dict = {}
    if tamper == "missing_signature":
        kwargs["signature"] = ""
    elif tamper == "wrong_secret":
        kwargs["secret"] = "whsec_not_the_right_one"
    elif tamper == "garbage_signature":
        kwargs["signature"] = "v1=deadbeef"
    elif tamper == "stale_timestamp":
        kwargs["timestamp"] = str(int(time.time()) - 301)
    elif tamper == "future_timestamp":
        kwargs["timestamp"] = str(int(time.time()) + 301)
    elif tamper == "missing_timestamp":
        kwargs["timestamp"] = ""
    elif tamper == "signature_of_other_timestamp":
        from django.conf import settings

        from django_payments_ru.providers.sandbox.provider import sign

        kwargs["signature"] = sign(
            settings.SANDBOX_WEBHOOK_SECRET, str(int(now) - 10), body
        )
        kwargs["timestamp"] = now
    before = _counts()
    if tamper in ("reserialised_body", "tampered_amount"):
        # Sign the original bytes, send different ones.
        from django.conf import settings

        from django_payments_ru.providers.sandbox.provider import sign

        signature = sign(settings.SANDBOX_WEBHOOK_SECRET, now, body)
        data = json.loads(body)
        if tamper == "tampered_amount":
            data["data"]["amount"] = "1.00"
            sent = json.dumps(data).encode()
        else:  # same content, other spelling: the signature covers raw bytes
            sent = json.dumps(data, indent=2, sort_keys=True).encode()
        assert sent != body
        response = post_webhook(client, sent, signature=signature, timestamp=now)
    else:
        response = post_webhook(client, body, **kwargs)
    assert 400 <= response.status_code < 500
    assert _counts() == before
    invoice.refresh_from_db()
    assert invoice.status == InvoiceStatus.CREATED


def test_webhook_refuses_get_and_unknown_alias(client):
    assert client.get(WEBHOOK_URL).status_code == 405
    response = client.post(
        "/payments/webhooks/nope/", data=b"{}", content_type="application/json"
    )
    assert response.status_code == 404
    assert WebhookEvent.objects.count() == 0


def test_signed_but_malformed_body_is_a_400_and_writes_nothing(client):
    for body in (
        b"not json",
        b"{}",
        b'{"id": "evt_1", "type": "payment.unknown", "data": {}}',
        b"[]",
    ):
        response = post_webhook(client, body)
        assert response.status_code == 400, body
    assert WebhookEvent.objects.count() == 0


def test_same_webhook_twice_one_transition_one_signal_one_row(client):
    invoice = make_invoice("100.00")
    body = webhook_body(payment_object(invoice), event_id="evt_dup_1")
    with record_signals() as log:
        first = post_webhook(client, body)
        second = post_webhook(client, body)
    assert first.status_code == second.status_code == 200
    assert log.count("invoice_paid") == 1
    assert log.count("invoice_status_changed") == 1
    row = WebhookEvent.objects.get()
    assert row.deliveries == 2
    assert row.attempts == 1
    assert Payment.objects.count() == 1


def test_rotation_accepts_previous_secret(client, settings):
    config = json.loads(json.dumps(settings.PAYMENTS_RU))
    config["PROVIDERS"]["sandbox"]["OPTIONS"]["webhook_secret"] = "whsec_new"
    config["PROVIDERS"]["sandbox"]["OPTIONS"]["previous_webhook_secrets"] = [
        settings.SANDBOX_WEBHOOK_SECRET
    ]
    with override_settings(PAYMENTS_RU=config):
        invoice = make_invoice("10.00")
        old = post_webhook(client, webhook_body(payment_object(invoice)))
        new = post_webhook(
            client, webhook_body(payment_object(invoice)), secret="whsec_new"
        )
        other = post_webhook(
            client, webhook_body(payment_object(invoice)), secret="whsec_other"
        )
    assert (old.status_code, new.status_code, other.status_code) == (200, 200, 400)


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
        assert "RuntimeError: database hiccup" in row.result
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
    assert needle in invoice.attention_reason
    row = WebhookEvent.objects.get()
    assert row.status == WebhookEvent.Status.REJECTED
    assert needle in row.result
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
    assert "no matching invoice" in row.result


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
    refunds = [kw["amount"] for name, kw in log.calls if name == "invoice_refunded"]
    assert refunds == [Decimal("25.00"), Decimal("75.00")]


def test_out_of_order_failed_after_paid_is_ignored(client):
    invoice = make_invoice("100.00")
    post_webhook(client, webhook_body(payment_object(invoice)))
    response = post_webhook(
        client,
        webhook_body(
            payment_object(invoice, status="failed", failure_reason="late decline")
        ),
    )
    assert response.status_code == 200
    invoice.refresh_from_db()
    assert invoice.status == InvoiceStatus.PAID
    assert WebhookEvent.objects.filter(status="ignored").count() == 1


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
        assert canary not in row.result + row.traceback


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
