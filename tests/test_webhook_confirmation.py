"""Webhooks confirmed through the provider's API (``confirms_webhooks``).

A provider whose webhook body proves nothing by itself (a shared key sent in
clear) asks its API before an event is applied: the services call
``confirm_event`` outside any transaction, after the event is stored. Here
through the sandbox, with a fake API answer."""

from __future__ import annotations

from dataclasses import replace
from decimal import Decimal
from typing import Any

import pytest
from django.db import connection

from django_payments_ru import services
from django_payments_ru.events import EventType, PaymentEvent
from django_payments_ru.exceptions import EventNotConfirmed, ProviderUnavailable
from django_payments_ru.models import Invoice, Payment, WebhookEvent
from django_payments_ru.providers.sandbox import Provider as Sandbox
from django_payments_ru.status import InvoiceStatus
from tests.helpers import make_invoice, payment_object, post_webhook, webhook_body

pytestmark = pytest.mark.django_db(transaction=True)


class FakeAPI:
    """What ``confirm_event`` answers: the event itself, another amount, a
    contradiction or an outage."""

    def __init__(self) -> None:
        self.answer: Any = None  # None: confirm as received
        self.calls: list[PaymentEvent] = []
        self.in_transaction: list[bool] = []

    def __call__(self, provider: Sandbox, event: PaymentEvent) -> PaymentEvent:
        self.calls.append(event)
        self.in_transaction.append(connection.in_atomic_block)
        if isinstance(self.answer, Exception):
            raise self.answer
        if isinstance(self.answer, dict):
            # The API's view, under another dedupe id: the row's stays.
            return replace(event, dedupe_id="api:other", **self.answer)
        return event


@pytest.fixture
def api(monkeypatch: pytest.MonkeyPatch) -> FakeAPI:
    fake = FakeAPI()
    monkeypatch.setattr(Sandbox, "confirms_webhooks", True)
    monkeypatch.setattr(Sandbox, "confirm_event", lambda self, event: fake(self, event))
    return fake


def paid_body(invoice: Invoice, event_id: str = "evt_confirm") -> bytes:
    return webhook_body(payment_object(invoice), event_id=event_id)


def test_a_confirmed_webhook_is_applied_after_the_api_answers_outside_a_transaction(
    client: Any, api: FakeAPI
) -> None:
    invoice = make_invoice("100.00")
    assert post_webhook(client, paid_body(invoice)).status_code == 200
    invoice.refresh_from_db()
    assert invoice.status == InvoiceStatus.PAID
    assert len(api.calls) == 1 and api.in_transaction == [False]
    row = WebhookEvent.objects.get()
    assert row.status == WebhookEvent.Status.PROCESSED
    assert row.dedupe_id == "evt_confirm"  # the stored identity, not the API's
    # A redelivery of a processed event asks nothing and changes nothing.
    assert post_webhook(client, paid_body(invoice)).status_code == 200
    assert len(api.calls) == 1
    assert Payment.objects.count() == 1


def test_what_the_api_says_is_applied_not_what_the_webhook_claims(
    client: Any, api: FakeAPI
) -> None:
    invoice = make_invoice("100.00")
    api.answer = {"amount": Decimal("60.00")}  # the webhook says 100.00
    assert post_webhook(client, paid_body(invoice)).status_code == 200
    invoice.refresh_from_db()
    assert invoice.status != InvoiceStatus.PAID
    assert invoice.needs_attention
    assert "60.00" in invoice.attention_text


def test_a_contradicted_webhook_is_rejected_and_flags_the_invoice(
    client: Any, api: FakeAPI
) -> None:
    invoice = make_invoice("100.00")
    api.answer = EventNotConfirmed("no such transaction", provider="sandbox")
    assert post_webhook(client, paid_body(invoice)).status_code == 200
    invoice.refresh_from_db()
    assert invoice.status == InvoiceStatus.CREATED
    assert invoice.needs_attention
    assert "no such transaction" in invoice.attention_text
    row = WebhookEvent.objects.get()
    assert row.status == WebhookEvent.Status.REJECTED
    assert "no such transaction" in row.result_text
    assert row.invoice_id == invoice.pk
    assert Payment.objects.count() == 0


def test_the_api_down_keeps_the_event_and_a_reprocess_pays_exactly_once(
    client: Any, api: FakeAPI
) -> None:
    invoice = make_invoice("100.00")
    api.answer = ProviderUnavailable("connection refused", provider="sandbox")
    assert post_webhook(client, paid_body(invoice)).status_code == 500
    row = WebhookEvent.objects.get()
    assert row.status == WebhookEvent.Status.FAILED
    assert "connection refused" in row.result_text
    invoice.refresh_from_db()
    assert invoice.status == InvoiceStatus.CREATED

    api.answer = None  # the API is back: the admin's "reprocess"
    assert services.process_webhook_event(row.pk).status == "processed"
    assert services.process_webhook_event(row.pk).status == "processed"
    invoice.refresh_from_db()
    assert invoice.status == InvoiceStatus.PAID
    assert Payment.objects.count() == 1
    assert len(api.calls) == 2  # the outage and the reprocess; never again


def test_the_api_down_then_the_next_delivery_completes_it(
    client: Any, api: FakeAPI
) -> None:
    invoice = make_invoice("100.00")
    api.answer = ProviderUnavailable("timeout", provider="sandbox")
    assert post_webhook(client, paid_body(invoice)).status_code == 500
    api.answer = None
    assert post_webhook(client, paid_body(invoice)).status_code == 200
    invoice.refresh_from_db()
    assert invoice.status == InvoiceStatus.PAID
    row = WebhookEvent.objects.get()
    assert (row.status, row.deliveries, row.attempts) == ("processed", 2, 2)


def test_the_api_cannot_smuggle_in_an_unstorable_event(
    client: Any, api: FakeAPI
) -> None:
    invoice = make_invoice("100.00")
    api.answer = {"reason": "x\x00y"}  # the API's answer is data from the network
    assert post_webhook(client, paid_body(invoice)).status_code == 500
    row = WebhookEvent.objects.get()
    assert row.status == WebhookEvent.Status.FAILED
    invoice.refresh_from_db()
    assert invoice.status == InvoiceStatus.CREATED


def test_providers_that_do_not_confirm_are_never_asked(client: Any) -> None:
    invoice = make_invoice("100.00")
    calls = []
    original = Sandbox.confirm_event
    try:
        Sandbox.confirm_event = lambda self, event: calls.append(event) or event  # type: ignore[method-assign]
        assert post_webhook(client, paid_body(invoice)).status_code == 200
    finally:
        Sandbox.confirm_event = original  # type: ignore[method-assign]
    assert calls == []
    invoice.refresh_from_db()
    assert invoice.status == InvoiceStatus.PAID


def test_an_event_applied_directly_is_never_confirmed(api: FakeAPI) -> None:
    # Polls and API answers are the API's own word.
    invoice = make_invoice("100.00")
    services.apply_event(
        PaymentEvent(
            provider="sandbox",
            dedupe_id="poll:1",
            type=EventType.PAID,
            invoice_ref=str(invoice.uuid),
            amount=invoice.amount,
            currency="RUB",
        )
    )
    invoice.refresh_from_db()
    assert invoice.status == InvoiceStatus.PAID
    assert api.calls == []
