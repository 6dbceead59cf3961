"""The built-in sandbox provider: a complete provider for demos and tests.

Its protocol (served offline by :mod:`django_payments_ru.providers.sandbox.emulator`,
described in ``docs/providers/sandbox.rst``):

* ``POST {base_url}api/payments`` with ``Authorization: Bearer <api_key>`` and an
  ``Idempotency-Key`` header; JSON body ``{amount: "100.00", currency, description,
  reference, order_id, customer_email, return_url, webhook_url, receipt}`` (amount
  as a decimal string in major units; ``receipt`` the invoice's 54-FZ lines in the
  neutral format of :meth:`~django_payments_ru.receipts.Receipt.to_json`, when it
  has them). Answer ``201`` with the payment object
  ``{id, status, amount, currency, reference, refunded_amount, payment_url,
  expires_at, failure_reason}``. Statuses: ``pending``, ``succeeded``, ``failed``,
  ``expired``, ``cancelled``, ``refunded`` (a partial refund keeps ``succeeded``).
* ``GET {base_url}api/payments/<id>``: the payment object.
* ``POST {base_url}api/payments/<id>/refunds`` ``{amount, receipt}`` (the lines
  refunded, when the invoice has a receipt): ``201``
  ``{id: "re_...", amount, payment: {...}}``.
* ``POST {base_url}api/payments/<id>/cancel``: the payment object, ``cancelled``.
* Errors: ``{"error": {"code", "message"}}`` with a 4xx/5xx status.
* Webhooks: ``POST`` JSON ``{id, type, created_at, data: {payment object}}`` with
  headers ``X-Sandbox-Event-Id``, ``X-Sandbox-Timestamp`` (Unix seconds) and
  ``X-Sandbox-Signature: v1=<hex HMAC-SHA256(webhook_secret, timestamp + "." +
  raw body)>``. Types: ``payment.succeeded``, ``payment.failed``,
  ``payment.expired``, ``payment.cancelled``, ``payment.refunded``.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from datetime import datetime
from decimal import Decimal
from typing import TYPE_CHECKING, Any, ClassVar

from django.http import HttpRequest, HttpResponse, JsonResponse
from django.utils.translation import gettext as _

from ...events import EventType, PaymentEvent
from ...exceptions import (
    ProviderResponseError,
    WebhookParseError,
    WebhookVerificationError,
)
from ...money import format_amount, parse_amount
from ..base import BaseProvider, Capability, Checkout, Option
from ..payload import load_json_object, webhook_parsing
from ..signing import check_timestamp, hmac_sha256_hex, matches_any

if TYPE_CHECKING:
    from ...models import Invoice
    from ...receipts import Receipt

SIGNATURE_HEADER = "X-Sandbox-Signature"
TIMESTAMP_HEADER = "X-Sandbox-Timestamp"
EVENT_ID_HEADER = "X-Sandbox-Event-Id"


def sign(secret: str | bytes, timestamp: str, body: bytes) -> str:
    """The sandbox webhook signature: ``v1=`` + hex HMAC-SHA256 over
    ``timestamp + "." + raw body``."""
    return "v1=" + hmac_sha256_hex(secret, timestamp.encode() + b"." + body)


class Provider(BaseProvider):
    """Sandbox: a local provider with a hosted pay page, for demos and tests.

    Options:

    ``base_url``
        The sandbox API, e.g. ``"http://127.0.0.1:8000/emulator/sandbox/"``.
    ``api_key``
        The API key the sandbox accepts (secret).
    ``webhook_secret``
        The secret that signs the sandbox's webhooks (secret).
    ``previous_webhook_secrets``
        Older webhook secrets still accepted during a rotation (default ``[]``).
    ``webhook_tolerance``
        Seconds a webhook timestamp may differ from now, both ways (default 300).
    """

    slug = "sandbox"
    display_name = "Sandbox"
    emulator = "django_payments_ru.providers.sandbox.emulator"
    currencies = frozenset({"RUB", "USD", "EUR"})
    capabilities = frozenset(
        {
            Capability.REFUND,
            Capability.PARTIAL_REFUND,
            Capability.STATUS,
            Capability.CANCEL,
            # The API takes the neutral lines at create and at refund.
            Capability.RECEIPTS,
        }
    )
    # Each start creates a new sandbox payment: a late failure of an earlier one
    # never fails the invoice's current attempt (the services' rule).
    payment_per_attempt = True
    options: ClassVar[dict[str, Option]] = {
        "base_url": Option(
            help="the sandbox API URL, e.g. 'http://127.0.0.1:8000/emulator/sandbox/'"
        ),
        "api_key": Option(secret=True, help="the sandbox API key"),
        "webhook_secret": Option(secret=True, help="the webhook signing secret"),
        "previous_webhook_secrets": Option(
            required=False, default=(), secret=True, types=(list, tuple)
        ),
        "webhook_tolerance": Option(required=False, default=300, types=(int,)),
    }
    checkout_kind = "redirect"
    webhook_auth = "HMAC-SHA256 over timestamp and raw body"

    #: Injected by tests: the current Unix time.
    clock: Callable[[], float] = staticmethod(time.time)

    STATUS_EVENTS: ClassVar[dict[str, EventType]] = {
        "pending": EventType.PENDING,
        "succeeded": EventType.PAID,
        "failed": EventType.FAILED,
        "expired": EventType.EXPIRED,
        "cancelled": EventType.CANCELLED,
        "refunded": EventType.REFUNDED,
    }
    WEBHOOK_EVENTS: ClassVar[dict[str, EventType]] = {
        "payment.succeeded": EventType.PAID,
        "payment.failed": EventType.FAILED,
        "payment.expired": EventType.EXPIRED,
        "payment.cancelled": EventType.CANCELLED,
        "payment.refunded": EventType.REFUNDED,
    }

    def _headers(self, idempotency_key: str = "") -> dict[str, str]:
        headers = {"Authorization": f"Bearer {self.config['api_key']}"}
        if idempotency_key:
            headers["Idempotency-Key"] = idempotency_key
        return headers

    # --- checkout -----------------------------------------------------------

    def start(
        self, invoice: Invoice, request: HttpRequest | None = None, *, key: str = ""
    ) -> Checkout:
        # One key per invoice and attempt (the services' claim): a retried create
        # (timeout, 5xx) finds the payment the first try made; a new attempt
        # after a failed or expired payment has a new claim and a new key.
        previous = invoice.provider_payment_id or "first"
        key = key or f"{invoice.uuid}:after:{previous}"
        body: dict[str, Any] = {
            "amount": format_amount(invoice.amount, invoice.currency),
            "currency": invoice.currency,
            "description": invoice.description or f"Order {invoice.order_id}",
            "reference": str(invoice.uuid),
            "order_id": invoice.order_id,
            "customer_email": invoice.customer_email,
            "return_url": self.return_url(invoice, request),
            "webhook_url": self.webhook_url(request),
        }
        receipt = invoice.get_receipt()
        if receipt is not None:
            body["receipt"] = receipt.to_json()
        data = self.http.request(
            "POST",
            "api/payments",
            json=body,
            headers=self._headers(key),
            idempotent=True,
        )
        payment = self._payment(data)
        expires = payment.get("expires_at")
        return Checkout(
            method="GET",
            url=str(payment["payment_url"]),
            payment_id=str(payment["id"]),
            expires_at=datetime.fromisoformat(expires) if expires else None,
        )

    def _payment(self, data: Any) -> Mapping[str, Any]:
        if not isinstance(data, Mapping) or not data.get("id"):
            raise ProviderResponseError(
                "The sandbox answered without a payment object.", provider=self.alias
            )
        return data

    def _event(
        self,
        payment: Mapping[str, Any],
        dedupe_id: str,
        type_: EventType | None = None,
        raw: Any = None,
    ) -> PaymentEvent:
        currency = str(payment.get("currency", ""))
        kind = type_ or self.STATUS_EVENTS.get(str(payment.get("status")))
        if kind is None:
            raise self.provider_error(
                ProviderResponseError,
                f"Unknown sandbox status {payment.get('status')!r}.",
            )
        refunded_total = None
        if kind is EventType.REFUNDED:
            refunded_total = parse_amount(payment.get("refunded_amount", "0"), currency)
        return PaymentEvent(
            provider=self.alias,
            dedupe_id=dedupe_id,
            type=kind,
            invoice_ref=str(payment.get("reference", "")),
            provider_payment_id=str(payment.get("id", "")),
            amount=parse_amount(payment["amount"], currency)
            if payment.get("amount") is not None
            else None,
            currency=currency,
            refunded_total=refunded_total,
            reason=str(payment.get("failure_reason") or ""),
            raw=raw if raw is not None else dict(payment),
        )

    # --- webhooks -----------------------------------------------------------

    def verify_webhook(self, request: HttpRequest) -> None:
        signature = request.headers.get(SIGNATURE_HEADER, "")
        timestamp = request.headers.get(TIMESTAMP_HEADER, "")
        if not signature:
            raise WebhookVerificationError(
                "The signature header is missing.",
                provider=self.alias,
                code="missing_signature",
            )
        check_timestamp(
            timestamp, now=self.clock(), tolerance=self.config["webhook_tolerance"]
        )
        secrets = [
            self.config["webhook_secret"],
            *self.config["previous_webhook_secrets"],
        ]
        body = request.body
        if not matches_any(
            signature, secrets, lambda secret: sign(secret, timestamp, body)
        ):
            raise WebhookVerificationError(
                "The signature does not match.", provider=self.alias
            )

    def parse_webhook(self, request: HttpRequest) -> list[PaymentEvent]:
        # The shared loader refuses NaN, NUL, lone surrogates, absurd numbers and
        # nesting; webhook_parsing turns an invalid amount or currency of the
        # payment object (InvalidAmount, InvalidCurrency) into a parse error.
        data = load_json_object(request.body, provider=self.alias)
        with webhook_parsing(self.alias):
            kind = self.WEBHOOK_EVENTS[data["type"]]
            payment = data["data"]
            event_id = str(data["id"])
            if not isinstance(payment, Mapping) or not event_id:
                raise WebhookParseError(_("Not a sandbox event."), provider=self.alias)
            return [self._event(payment, event_id, kind, raw=data)]

    def webhook_response(
        self, request: HttpRequest, events: list[PaymentEvent]
    ) -> HttpResponse:
        return JsonResponse({"received": True})

    # --- server calls -------------------------------------------------------

    def fetch_status(self, invoice: Invoice) -> PaymentEvent | None:
        if not invoice.provider_payment_id:
            return None
        payment = self._payment(
            self.http.request(
                "GET",
                f"api/payments/{invoice.provider_payment_id}",
                headers=self._headers(),
            )
        )
        if payment.get("status") == "pending":
            return None
        # Polls of the same state share a dedupe id, so they apply once.
        dedupe = (
            f"poll:{payment['id']}:{payment.get('status')}:"
            f"{payment.get('refunded_amount', '0')}"
        )
        return self._event(payment, dedupe)

    def refund(
        self,
        invoice: Invoice,
        amount: Decimal,
        *,
        key: str = "",
        receipt: Receipt | None = None,
    ) -> PaymentEvent | None:
        value = format_amount(amount, invoice.currency)
        done = invoice.refunded_amount
        body: dict[str, Any] = {"amount": value}
        if receipt is not None:
            # The refund's own lines, printed on the refund receipt.
            body["receipt"] = receipt.to_json()
        data = self.http.request(
            "POST",
            f"api/payments/{self.payment_id(invoice)}/refunds",
            json=body,
            headers=self._headers(key or f"refund:{invoice.uuid}:{done}:{value}"),
            idempotent=True,
        )
        if not isinstance(data, Mapping) or not isinstance(
            data.get("payment"), Mapping
        ):
            raise ProviderResponseError(
                "The sandbox answered without a refund.", provider=self.alias
            )
        return self._event(
            data["payment"], f"refund:{data.get('id')}", EventType.REFUNDED
        )

    def cancel(self, invoice: Invoice, *, key: str = "") -> PaymentEvent | None:
        payment = self._payment(
            self.http.request(
                "POST",
                f"api/payments/{invoice.provider_payment_id}/cancel",
                headers=self._headers(key or f"cancel:{invoice.uuid}"),
                idempotent=True,
            )
        )
        return self._event(payment, f"cancel:{payment['id']}")
