"""QuantaPay webhooks (quantapay.md §9, A-7, A-8) through the generic view:
the webhook contract, with the emulator on the live server answering the
confirmation; then what only QuantaPay has: a shared key in the body instead
of a signature (never stored, logged or shown), and the API's word on the
transaction before anything is applied."""

from __future__ import annotations

import json
import logging
import secrets
from decimal import Decimal
from typing import Any

import pytest
from django.urls import reverse

from django_payments_ru.emulator.models import EmulatedPayment
from django_payments_ru.events import EventType
from django_payments_ru.models import Invoice, WebhookEvent
from django_payments_ru.providers.quantapay.emulator import emulator
from django_payments_ru.status import InvoiceStatus
from tests.contracts.webhooks import Webhook, WebhookContract, reserialised_json
from tests.local_http import record_texts

from .cases import (
    ALIAS,
    API_KEY,
    API_PATH,
    OTHER_ALIAS,
    OTHER_SECRET,
    SECRET,
    emulator_config,
    fresh_caches,
    with_quantapay,
)

NO_HMAC = (
    "QuantaPay signs no webhook body (quantapay.md §9): a changed amount passes "
    "the key and is caught by the API's confirmation, see "
    "test_a_changed_amount_is_not_confirmed"
)


@pytest.fixture(autouse=True)
def _live(request: Any, transactional_db: None, live_server: Any) -> None:
    # Before the contract's own fixture: it configures the alias with the
    # emulator's URL on the live server (the confirmation is an HTTP call).
    request.instance.live_url = live_server.url


def transaction(
    invoice: Invoice,
    *,
    status: str = "C",
    amount: Decimal | None = None,
    currency: str | None = None,
    reference: str | None = None,
) -> EmulatedPayment:
    """A transaction of ``invoice`` at the emulator, as its pay page leaves it."""
    payment = EmulatedPayment.objects.create(
        slug="quantapay",
        external_id=f"cs-cs_{secrets.token_hex(10)}",
        status=status,
        amount=invoice.amount if amount is None else amount,
        currency=currency or invoice.currency,
        reference=str(invoice.uuid) if reference is None else reference,
        order_id=invoice.order_id,
        data={"webhook": "1", "cryptocurrency": "btc", "amount": "0.0001"},
    )
    payment.data = {**payment.data, "id": str(payment.pk)}
    payment.save(update_fields=["data"])
    return payment


def body_of(payment: EmulatedPayment, key: str | None, **changes: Any) -> bytes:
    tx = {**emulator.transaction_object(payment), **changes}
    data: dict[str, Any] = {"transaction": tx}
    if key is not None:
        data = {"key": key, **data}
    return json.dumps(data, separators=(",", ":")).encode()


class TestQuantaPayWebhooks(WebhookContract):
    pytestmark = [pytest.mark.django_db(transaction=True)]

    alias = ALIAS
    secret = SECRET
    secret_option = "webhook_secret"
    previous_secrets_option = "previous_webhook_secrets"
    # The key covers nothing: the same fields in other bytes are the same event.
    signs_raw_body = False
    ack_body = b'{"ok":true}'
    lacks = {
        "failed": "QuantaPay sends webhooks only for completed transactions (A-7)",
        "refunded": "QuantaPay sends webhooks only for completed transactions (A-7)",
        "stale": "the webhook carries no timestamp (quantapay.md §9)",
    }
    live_url: str = ""

    def configure(self, settings: Any) -> None:
        settings.PAYMENTS_RU = with_quantapay(
            settings.PAYMENTS_RU,
            api_url=f"{self.live_url}{API_PATH}",
            requests_per_minute=None,
        )
        settings.CACHES = fresh_caches()
        emulated = dict(getattr(settings, "PAYMENTS_RU_EMULATOR", {}))
        emulated["quantapay"] = emulator_config(requests_per_minute=None)
        settings.PAYMENTS_RU_EMULATOR = emulated
        emulator.reset()

    def build(
        self,
        invoice: Invoice,
        kind: EventType = EventType.PAID,
        *,
        secret: str | None = None,
    ) -> Webhook:
        assert kind is EventType.PAID, kind
        key = secret or self.secret
        payment = transaction(invoice)
        return Webhook(
            body=body_of(payment, key), payment_id=payment.external_id, signature=key
        )

    def resign(self, webhook: Webhook, signature: str) -> Webhook:
        data = json.loads(webhook.body)
        data.pop("key", None)
        if signature:
            data = {"key": signature, **data}
        return webhook.but(body=json.dumps(data).encode(), signature=signature)

    def tamper(self, webhook: Webhook) -> Webhook:
        data = json.loads(webhook.body)
        data["transaction"]["amount_fiat"] = "1.00000000"
        return webhook.but(body=json.dumps(data).encode())

    def reserialise(self, webhook: Webhook) -> Webhook:
        return reserialised_json(webhook)

    def malformed(self, invoice: Invoice) -> dict[str, Webhook]:
        payment = transaction(invoice)
        tx = emulator.transaction_object(payment)

        def signed(data: Any) -> Webhook:
            return Webhook(body=json.dumps(data).encode(), signature=SECRET)

        return {
            "not JSON": Webhook(body=b"not json", signature=SECRET),
            "a list": signed([{"key": SECRET}]),
            "no transaction": signed({"key": SECRET}),
            "a transaction list": signed({"key": SECRET, "transaction": [tx]}),
            "no id": signed({"key": SECRET, "transaction": {**tx, "id": ""}}),
            "unknown status": signed(
                {"key": SECRET, "transaction": {**tx, "status": "Z"}}
            ),
            "amount not a number": signed(
                {"key": SECRET, "transaction": {**tx, "amount_fiat": "abc"}}
            ),
            "amount a float": signed(
                {"key": SECRET, "transaction": {**tx, "amount_fiat": 100.0}}
            ),
            "unknown currency": signed(
                {"key": SECRET, "transaction": {**tx, "currency": "zzz"}}
            ),
            "no reference": signed(
                {"key": SECRET, "transaction": {**tx, "external_reference": None}}
            ),
        }

    def verification_refusal(self, code: str) -> tuple[int, bytes]:
        # 401 on a bad key.
        return 401, json.dumps(
            {"ok": False, "error": code}, separators=(",", ":")
        ).encode()

    def test_a_tampered_webhook_is_refused(self):
        pytest.skip(NO_HMAC)

    # --- what only QuantaPay has ----------------------------------------------------

    def test_the_key_of_another_alias_is_refused(self):
        invoice = self.make_invoice()
        payment = transaction(invoice)
        for body in (body_of(payment, OTHER_SECRET), body_of(payment, None)):
            self.assert_refused(
                Webhook(body=body),
                invoice,
                "invalid_signature" if b'"key"' in body else "missing_signature",
            )
        # The other alias takes its own key and refuses this one's.
        before = self.snapshot(invoice)
        response = self.post(Webhook(body=body_of(payment, SECRET)), alias=OTHER_ALIAS)
        assert response.status_code == 401
        assert self.snapshot(invoice) == before

    def assert_not_confirmed(self, invoice: Invoice, webhook: Webhook) -> None:
        response = self.post(webhook)
        assert response.status_code == 200
        invoice.refresh_from_db()
        assert invoice.status == InvoiceStatus.CREATED
        assert invoice.paid_amount == 0 and not invoice.payments.exists()
        assert invoice.needs_attention
        assert "confirm" in invoice.attention_text
        row = WebhookEvent.objects.get()
        assert row.status == WebhookEvent.Status.REJECTED
        assert self.signals.count("invoice_paid") == 0

    def test_an_unknown_transaction_is_not_confirmed(self):
        invoice = self.make_invoice()
        payment = transaction(invoice)
        body = body_of(payment, SECRET, id="987654321")
        self.assert_not_confirmed(invoice, Webhook(body=body))

    def test_a_changed_amount_is_not_confirmed(self):
        invoice = self.make_invoice()
        webhook = self.tamper(self.build(invoice))
        self.assert_not_confirmed(invoice, webhook)

    def test_another_currency_is_not_confirmed(self):
        invoice = self.make_invoice()
        payment = transaction(invoice)
        body = body_of(payment, SECRET, currency="usd")
        self.assert_not_confirmed(invoice, Webhook(body=body))

    def test_another_reference_is_not_confirmed(self):
        invoice = self.make_invoice()
        other = self.make_invoice()
        payment = transaction(other)  # the API says: other's transaction
        body = body_of(payment, SECRET, external_reference=str(invoice.uuid))
        self.assert_not_confirmed(invoice, Webhook(body=body))
        other.refresh_from_db()
        assert other.status == InvoiceStatus.CREATED

    def test_a_transaction_the_api_reports_underpaid_is_not_confirmed(self):
        invoice = self.make_invoice()
        payment = transaction(invoice, status="X")
        self.assert_not_confirmed(
            invoice, Webhook(body=body_of(payment, SECRET, status="C"))
        )

    def test_the_api_confirming_another_amount_than_the_invoice_is_rejected(self):
        # Webhook and API agree, but not with the invoice.
        invoice = self.make_invoice()
        payment = transaction(invoice, amount=Decimal("60.00"))
        response = self.post(Webhook(body=body_of(payment, SECRET)))
        assert response.status_code == 200
        invoice.refresh_from_db()
        assert invoice.status == InvoiceStatus.CREATED and invoice.needs_attention
        assert WebhookEvent.objects.get().status == WebhookEvent.Status.REJECTED

    def test_a_status_other_than_completed_is_kept_not_applied(self):
        invoice = self.make_invoice()
        payment = transaction(invoice, status="P")
        self.assert_acknowledged(self.post(Webhook(body=body_of(payment, SECRET))))
        invoice.refresh_from_db()
        assert invoice.status == InvoiceStatus.CREATED and not invoice.needs_attention
        assert WebhookEvent.objects.get().event_type == EventType.INFO

    def test_the_secret_shows_nowhere(self, caplog, admin_client):
        """Canary: the webhook secrets and the API key are in no log record,
        stored row, exception text or admin page."""
        caplog.set_level(logging.DEBUG)
        paid, forged, unconfirmed = (self.make_invoice() for _ in range(3))
        self.pay(paid)
        self.post(self.build(forged, secret=f"{SECRET}x"))
        self.post(Webhook(body=body_of(transaction(forged), OTHER_SECRET)))
        self.post(Webhook(body=body_of(transaction(unconfirmed), SECRET, id="99999")))
        # An API failure carries its text into the stored row.
        self.set_faults(**{"get-transaction": {"status": 500}})
        failing = self.make_invoice()
        self.post(self.build(failing))
        self.set_faults()
        pages = [
            reverse("admin:django_payments_ru_invoice_changelist"),
            reverse("admin:django_payments_ru_webhookevent_changelist"),
            reverse(
                "admin:django_payments_ru_invoice_provider_view",
                args=[ALIAS, "balances"],
            ),
        ]
        pages += [
            reverse("admin:django_payments_ru_invoice_change", args=[i.pk])
            for i in Invoice.objects.all()
        ]
        pages += [
            reverse("admin:django_payments_ru_webhookevent_change", args=[r.pk])
            for r in WebhookEvent.objects.all()
        ]
        texts = []
        for page in pages:
            response = admin_client.get(page)
            assert response.status_code == 200, page
            texts.append(response.content.decode())
        for row in WebhookEvent.objects.all():
            texts.append(
                json.dumps([row.payload, row.event, row.result_text, row.traceback])
            )
        texts += [t for r in caplog.records for t in record_texts(r)]
        assert WebhookEvent.objects.filter(status="failed").exists()
        for canary in (SECRET, OTHER_SECRET, f"{SECRET}x", API_KEY):
            leaks = [t[:200] for t in texts if canary in t]
            assert not leaks, (canary, leaks)

    def set_faults(self, **faults: Any) -> None:
        from django_payments_ru.emulator import faults as shared

        shared.reset()
        emulated = dict(self._settings.PAYMENTS_RU_EMULATOR)
        emulated["quantapay"] = {**emulated["quantapay"], "faults": faults}
        self._settings.PAYMENTS_RU_EMULATOR = emulated
