"""Life-Pay notifications: the webhook contract for each signature scheme (v2.0
HMAC over the fields and the webhook URL, v1.0 MD5 over 18 fields) and for an
ECOM alias. What only Life-Pay has (the GET redirect, the v1.0 field list, the
URL it signs, the commands) is in test_provider.py."""

from __future__ import annotations

from typing import ClassVar
from urllib.parse import parse_qsl, urlencode

from django_payments_ru.events import EventType
from tests.contracts.webhooks import Webhook, WebhookContract

from .conftest import SECRET, SECRET_ECOM, SECRET_V1, add_lifepay
from .test_provider import notification, signed

FORM = "application/x-www-form-urlencoded"

#: The command announcing each kind the contract asks for (lifepay.md §6.3).
COMMANDS = {
    EventType.PAID: ("success", {}),
    EventType.FAILED: ("cancel", {"resultStr": "Nedostatochno sredstv"}),
    EventType.REFUNDED: (
        "refund",
        {"result": "ok", "payback_id": "5001", "date_created": "2024-01-15 11:00:00"},
    ),
}


def form(fields: dict[str, str]) -> Webhook:
    return Webhook(
        body=urlencode(fields).encode(),
        content_type=FORM,
        payment_id=fields.get("invoice_id") or fields["tid"],
        signature=fields.get("check", ""),
    )


def fields_of(webhook: Webhook) -> dict[str, str]:
    return dict(parse_qsl(webhook.body.decode(), keep_blank_values=True))


class LifePayContract(WebhookContract):
    """The adapter of every Life-Pay alias (not collected: no ``Test``)."""

    version: ClassVar[str] = "2.0"
    secret_option = "secret_key"
    previous_secrets_option = "previous_secret_keys"
    # lifepay.md §4, §6.4: both versions sign the parsed fields, not the bytes.
    signs_raw_body = False
    ack_body = b"OK"
    lacks = {
        "stale": "Life-Pay notifications carry no signed timestamp "
        "(lifepay.md §6.2); a replay is recognised by the hash of its fields",
    }

    def configure(self, settings):
        add_lifepay(settings)

    def fields(self, invoice, command: str, **extra: str) -> dict[str, str]:
        # One Life-Pay transaction per invoice.
        extra.setdefault("tid", str(100000000 + invoice.pk))
        return notification(invoice, command, version=self.version, **extra)

    def sign(self, fields: dict[str, str], secret: str | None = None) -> Webhook:
        return form(signed(fields, alias=self.alias, secret=secret or self.secret))

    def build(self, invoice, kind=EventType.PAID, *, secret=None):
        command, extra = COMMANDS[kind]
        if kind is EventType.REFUNDED:
            extra = {**extra, "income": str(invoice.amount)}
        return self.sign(self.fields(invoice, command, **extra), secret)

    def resign(self, webhook, signature):
        fields = {k: v for k, v in fields_of(webhook).items() if k != "check"}
        if signature:
            fields["check"] = signature
        return form(fields).but(signature=webhook.signature)

    def tamper(self, webhook):
        fields = fields_of(webhook)
        fields["income_total"] = fields["cost"] = "1.00"
        return form(fields)

    def reserialise(self, webhook):
        return form(dict(reversed(fields_of(webhook).items())))

    def malformed(self, invoice):
        no_command = self.fields(invoice, "success")
        del no_command["command"]
        return {
            "no command": self.sign(no_command),
            "no tid": self.sign(self.fields(invoice, "success", tid="", invoice_id="")),
            "amount not a number": self.sign(
                self.fields(invoice, "success", cost="abc", income_total="abc")
            ),
            "NUL in a field": self.sign(
                self.fields(invoice, "success", name="Order\x00 1001")
            ),
        }


class TestLifePayV2Webhooks(LifePayContract):
    """A1Lite, signature 2.0: HMAC-SHA256 over the fields and the URL."""

    alias = "lifepay"
    secret = SECRET


class TestLifePayV1Webhooks(LifePayContract):
    """A1Lite, signature 1.0: MD5 over 18 fields and the secret."""

    alias = "lifepay_v1"
    version = "1.0"
    secret = SECRET_V1


class TestLifePayEcomWebhooks(LifePayContract):
    """ECOM: the 2.0 form plus ``invoice_id`` (ASSUMPTION A-5)."""

    alias = "lifepay_ecom"
    secret = SECRET_ECOM

    def fields(self, invoice, command, **extra):
        extra.setdefault("invoice_id", f"inv-{invoice.uuid.hex[:12]}")
        return super().fields(invoice, command, **extra)
