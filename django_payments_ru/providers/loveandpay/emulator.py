"""The Love&Pay emulator: loveandpay.md section 13, strictly, served by Django.

Under ``emulator/loveandpay/`` (point the provider's ``api_url`` at
``.../emulator/loveandpay/api/v2``):

* ``api/v2/*`` checks, in this order (13): the headers ``x-api-key``,
  ``x-timestamp``, ``x-signature`` (401 ``MISSING_HEADERS``), the key (401
  ``INVALID_API_KEY``), a blocked key (403 ``API_BLOCKED``), the timestamp
  within ±5 minutes (401 ``TIMESTAMP_EXPIRED``, A-1), the signature over the raw
  bytes received (401 ``INVALID_SIGNATURE``, 2.2, A-3), the anomaly detector,
  both rate limits (429 ``RATE_LIMIT_EXCEEDED`` with ``Retry-After``, A-12),
  then the body (400 ``VALIDATION_ERROR`` naming the field). Errors in the
  nested shape with ``requestId`` and the ``x-request-id`` header (A-2).
* ``api/v1/*``: the same calls with ``x-api-key`` only (2.1); errors in the flat
  shape ``{error, message, hint, code}``; a blocked key is a bare 403 (SEED).
* ``POST``/``GET invoices`` (create 4.1, list 4.4), ``GET invoices/<id>``
  (4.3), ``POST invoices/<id>/cancel`` (A-7), ``GET api/v2/batch/invoices``
  (the CSV template, 4.6) and ``POST api/v1/batch/invoices`` (the multipart CSV
  upload of LP1-BATCH: at most 1000 rows and 5 MB; each row created or refused
  with its row number).
* ``pay/<invoiceNumber>``: the hosted page (5) with *Pay by SBP*, *Pay by card*,
  *Let expire* and *Cancel*; after a payment the browser goes to
  ``successUrl``.
* Expiry: every API call first expires the PENDING invoices past their
  ``expiresAt`` (``EXPIRED`` + ``invoice.expired``), as does
  ``POST _control/expire``.
* Webhooks (8, A-4..A-6): lower-case dotted names, ``data.id``, ``amount`` and
  ``amountRub`` in rubles and ``amountKopecks``, signed ``sha256=<hex>`` over
  the raw body, retried after 1 min, 5 min, 15 min, 1 h and 6 h with
  ``retryCount`` incremented (so re-signed) and the same ``x-webhook-id``.
  ``POST _control/test-webhook`` sends the cabinet's test-panel body instead
  (``INVOICE_PAID``, ``data.invoiceId``, no currency, ``X-Webhook-Event``).
* The anomaly detector (2.1): more than ``anomaly_requests`` calls of one key
  in a sliding window (refused ones included), or ``anomaly_failed_auth``
  failed authentications, block the key: every call then answers
  ``API_BLOCKED`` until ``POST _control/reindex`` ``{"apiKey": ...}`` (this
  emulator's stand-in for the support chat plus "Переиндексировать").

Settings, ``PAYMENTS_RU_EMULATOR["loveandpay"]`` (every key has a default):
``api_keys`` (``{"pk_test_emulator": "sk_test_secret"}``: public key -> secret
key), ``webhook_secret`` (``"whsec_test"``), ``webhook_urls`` (``None``: this
site's ``payments/webhooks/loveandpay/``), ``webhook_events`` (the account's
subscription, 4.9), ``partner_id``, ``requests_per_minute`` (100),
``requests_per_hour`` (1000), ``timestamp_window`` (300 s), ``min_amount``
(``"1.00"``, A-10), ``anomaly_requests`` (``[300, 60]``),
``anomaly_failed_auth`` (``[20, 300]``), ``allowed_ips`` (``None``: the strict
mode of 2.3 off; a list: other addresses get 403 ``SOURCE_IP_NOT_ALLOWED``),
and the common ``faults``,
``rate_limits``, ``idempotency_ttl``, ``webhook_retry_schedule``. Endpoint
names for faults: ``create``, ``list``, ``get``, ``cancel``, ``template``,
``batch``, ``pay_page``.
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
import math
import secrets
import threading
import uuid
from collections.abc import Callable, Mapping
from contextvars import ContextVar
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal, InvalidOperation
from functools import wraps
from typing import Any, ClassVar
from urllib.parse import urlsplit

from django.core.exceptions import ValidationError
from django.core.signals import setting_changed
from django.core.validators import validate_email
from django.db import transaction
from django.http import Http404, HttpRequest, HttpResponse, JsonResponse
from django.urls import NoReverseMatch, path, reverse
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy
from django.views.decorators.csrf import csrf_exempt

from ...emulator import clock, limits
from ...emulator.apps import SETTING_NAME
from ...emulator.base import (
    EXPIRE,
    Action,
    ActionRefused,
    CallLog,
    Emulator,
    EmulatorError,
    View,
    key_matches,
)
from ...emulator.models import EmulatedPayment, WebhookDelivery
from ..signing import constant_time_equals
from .auth import (
    API_KEY_HEADER,
    REQUEST_ID_HEADER,
    SIGNATURE_HEADER,
    TIMESTAMP_HEADER,
    WEBHOOK_ID_HEADER,
    WEBHOOK_SIGNATURE_HEADER,
    WEBHOOK_TIMESTAMP_HEADER,
    sign_request,
    sign_webhook,
)

PENDING = "PENDING"
PAID = "PAID"
EXPIRED = "EXPIRED"
CANCELLED = "CANCELLED"
STATUSES = (PENDING, PAID, EXPIRED, CANCELLED)
CREATE_FIELDS = frozenset(
    {
        "amount",
        "currency",
        "description",
        "customer",
        "expiresInHours",
        "successUrl",
        "kycRequired",
        "paymentMethod",
    }
)
CUSTOMER_FIELDS = frozenset({"name", "email", "phone"})
BATCH_CURRENCIES = ("USD", "EUR", "RUB", "KZT")  # LP1-BATCH
BATCH_COLUMNS = (
    "amount",
    "currency",
    "description",
    "email",
    "externalId",
    "redirectUrl",
)
BATCH_MAX_ROWS = 1000
BATCH_MAX_BYTES = 5 * 1024 * 1024
#: LP2-BATCH: the v2 template's header.
TEMPLATE = "email,name,phone,amount,description,expiresInHours\n"
SUBSCRIBED = [
    "invoice.paid",
    "invoice.expired",
    "invoice.cancelled",
    "kyc.completed",
    "kyc.failed",
]

PAY_SBP = Action("pay", gettext_lazy("Pay by SBP"), "primary")
PAY_CARD = Action("pay_card", gettext_lazy("Pay by card"), "primary")
CANCEL = Action("cancel", gettext_lazy("Cancel"), "danger")

#: The API version and the request id of the call being answered (the error
#: envelope depends on both).
_version: ContextVar[str] = ContextVar("loveandpay_emulator_version", default="v2")
_request_id: ContextVar[str] = ContextVar("loveandpay_emulator_request_id", default="")

#: A 1x1 PNG: the emulated SBP QR image without segno (4.2:
#: ``data:image/png;base64,...``).
_PNG = (
    "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAAAAAA6fptVAAAACklEQVR4nGNgAAAAAgABSK+"
    "kcQAAAABJRU5ErkJggg=="
)


def qr_image(payload: str | None) -> str:
    """The SBP QR image of 4.2 (``data:image/png;base64,...``): a QR code of
    ``payload`` that a phone can scan when segno is installed (the extras
    ``example`` and ``test``), else a 1x1 placeholder."""
    if payload:
        try:
            import segno
        except ImportError:
            pass
        else:
            return str(segno.make(payload, error="m").png_data_uri(scale=4, border=2))
    return f"data:image/png;base64,{_PNG}"


def iso(value: datetime | None) -> str | None:
    """4.2: ISO-8601 UTC with milliseconds and ``Z``."""
    if value is None:
        return None
    return value.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.") + (
        f"{value.microsecond // 1000:03d}Z"
    )


def rubles(amount: Decimal) -> float | int:
    """An amount as the JSON number of the API (rubles, 4.2)."""
    value = float(amount)
    return int(value) if value == int(value) else value


def _invalid(message: str, field: str) -> EmulatorError:
    return EmulatorError(400, "VALIDATION_ERROR", message, field=field)


@dataclass(frozen=True)
class Call:
    """One request that reached the emulator (for tests and the demo)."""

    endpoint: str
    method: str
    path: str
    api_key: str
    at: datetime


class LoveAndPayEmulator(Emulator):
    """The emulator of :class:`~django_payments_ru.providers.loveandpay.Provider`."""

    slug = "loveandpay"
    display_name = gettext_lazy("Love&Pay")
    options: ClassVar[dict[str, Any]] = {
        # loveandpay.md 2.2: the secret of the reference's vectors.
        "api_keys": {"pk_test_emulator": "sk_test_secret"},
        "webhook_secret": "whsec_test",  # 8.2's vector
        "webhook_urls": None,
        "webhook_events": SUBSCRIBED,
        "partner_id": "partner-emulator",
        "requests_per_minute": 100,  # 9
        "requests_per_hour": 1000,  # 9
        "timestamp_window": 300,
        "min_amount": "1.00",
        "anomaly_requests": [300, 60],
        "anomaly_failed_auth": [20, 300],
        # 2.3, 13: the optional strict mode ("Строгая проверка"): None is off.
        "allowed_ips": None,
    }
    # 1 min, 5 min, 15 min, 1 h, 6 h, then give up.
    webhook_schedule: ClassVar[tuple[int, ...]] = (60, 300, 900, 3600, 21600)
    webhook_timeout: ClassVar[float] = 10.0
    idempotency_header: ClassVar[str] = ""  # 3: no idempotency keys
    pending_statuses: ClassVar[frozenset[str]] = frozenset({PENDING})
    pending_actions: ClassVar[tuple[Action, ...]] = (PAY_SBP, PAY_CARD, EXPIRE, CANCEL)
    status_labels: ClassVar[Mapping[str, Any]] = {
        PENDING: gettext_lazy("Waiting for payment"),
        PAID: gettext_lazy("Paid"),
        EXPIRED: gettext_lazy("Expired"),
        CANCELLED: gettext_lazy("Cancelled"),
    }

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.call_log = CallLog()
        self._blocked: set[str] = set()

    # --- bookkeeping --------------------------------------------------------

    def reset(self) -> None:
        """Forget the calls, the blocked keys and the rate-limit counts."""
        self.call_log.clear()
        with self._lock:
            self._blocked.clear()
        limits.reset(self.slug)

    def calls(self, endpoint: str | None = None) -> list[Call]:
        """The API requests received since the last reset (of ``endpoint``)."""
        return self.call_log.named(endpoint)

    def is_blocked(self, api_key: str) -> bool:
        with self._lock:
            return api_key in self._blocked

    def block(self, api_key: str) -> None:
        """The anomaly detector's verdict (2.1)."""
        with self._lock:
            self._blocked.add(api_key)

    def reindex(self, api_key: str) -> bool:
        """Support unblocked the key and the merchant pressed
        "Переиндексировать": the key works again. Whether it was blocked."""
        with self._lock:
            was = api_key in self._blocked
            self._blocked.discard(api_key)
        limits.reset(self.slug)
        return was

    def endpoint(self, name: str, **kwargs: Any) -> Callable[[View], View]:
        """The shared endpoint decorator, with the call recorded, a request
        id on the answer, and the API version chosen from the path."""
        shared = super().endpoint(name, **kwargs)

        def decorator(view: View) -> View:
            inner = shared(view)

            @wraps(inner)
            def wrapper(request: HttpRequest, *args: Any, **kw: Any) -> HttpResponse:
                version = "v1" if "/api/v1/" in request.path else "v2"
                request_id = f"req_{secrets.token_hex(8)}"
                v_token = _version.set(version)
                r_token = _request_id.set(request_id)
                try:
                    if name != "pay_page":
                        self.call_log.add(
                            Call(
                                name,
                                request.method or "",
                                request.path,
                                request.headers.get(API_KEY_HEADER, ""),
                                clock.now(),
                            )
                        )
                        self.expire_due()
                    response = inner(request, *args, **kw)
                finally:
                    _version.reset(v_token)
                    _request_id.reset(r_token)
                response[REQUEST_ID_HEADER] = request_id
                return response

            return wrapper

        return decorator

    # --- answers ------------------------------------------------------------

    def error(
        self,
        status: int,
        code: str,
        message: Any,
        *,
        headers: Mapping[str, str] | None = None,
        **fields: Any,
    ) -> HttpResponse:
        if code == "emulated_fault":
            code = (
                "RATE_LIMIT_EXCEEDED"
                if status == 429
                else ("INTERNAL_ERROR" if status >= 500 else "VALIDATION_ERROR")
            )
        code = {
            "not_found": "NOT_FOUND",
            "invalid_request": "VALIDATION_ERROR",
            "rate_limit_exceeded": "RATE_LIMIT_EXCEEDED",
            "method_not_allowed": "METHOD_NOT_ALLOWED",
        }.get(code, code)
        return super().error(status, code, message, headers=headers, **fields)

    def error_body(self, code: str, message: str, fields: dict[str, Any]) -> Any:
        if _version.get() == "v1":
            # 3: the flat shape; a blocked v1 key is a bare 403 (SEED-000).
            if code == "API_BLOCKED":
                return {"error": "Forbidden", "message": message}
            return {
                "error": code.replace("_", " ").title(),
                "message": message,
                "code": code,
                **fields,
            }
        # v2 always nests, with the request id.
        return {
            "success": False,
            "error": {
                "code": code,
                "message": message,
                "requestId": _request_id.get(),
                **fields,
            },
        }

    # --- authentication, the anomaly detector, the limits ----------------------

    def _limit(self, setting: str) -> list[limits.Limit]:
        value = self.config[setting]
        if not value:
            return []
        calls, seconds = (int(v) for v in value)
        return [limits.Limit(calls, seconds, sliding=True, setting=setting)]

    def _failed(
        self, api_key: str, code: str, message: str, status: int = 401
    ) -> HttpResponse:
        """A failed authentication, counted by the anomaly detector (2.1)."""
        exceeded = limits.check(
            self.slug,
            f"auth:{api_key}",
            self._limit("anomaly_failed_auth"),
            clock.now().timestamp(),
        )
        if exceeded is not None and api_key in self.config["api_keys"]:
            self.block(api_key)
        return self.error(status, code, message)

    def blocked_answer(self) -> HttpResponse:
        return self.error(
            403,
            "API_BLOCKED",
            _(
                "The API key is blocked. Contact support in the chat on "
                "loveandpay.io, then press Переиндексировать next to the key."
            ),
        )

    def authenticate(self, request: HttpRequest) -> HttpResponse | None:
        keys: Mapping[str, str] = self.config["api_keys"]
        given = request.headers.get(API_KEY_HEADER, "").strip()
        v2 = _version.get() == "v2"
        if v2:
            stamp = request.headers.get(TIMESTAMP_HEADER, "").strip()
            signature = request.headers.get(SIGNATURE_HEADER, "").strip()
            if not (given and stamp and signature):
                return self._failed(
                    given,
                    "MISSING_HEADERS",
                    _("x-api-key, x-timestamp and x-signature are required."),
                )
        if not key_matches(given, keys):
            return self._failed(
                given, "INVALID_API_KEY", _("The API key is not valid.")
            )
        if self.is_blocked(given):
            return self.blocked_answer()
        if v2:
            now_ms = clock.now().timestamp() * 1000
            window = float(self.config["timestamp_window"]) * 1000
            if not stamp.isdigit() or abs(now_ms - int(stamp)) > window:
                return self._failed(
                    given,
                    "TIMESTAMP_EXPIRED",
                    _("x-timestamp is more than 5 minutes away from the server time."),
                )
            expected = sign_request(
                keys[given], request.method or "", request.path, stamp, request.body
            )
            if not constant_time_equals(signature.lower(), expected):
                return self._failed(
                    given, "INVALID_SIGNATURE", _("The request signature is not valid.")
                )
        allowed = self.config["allowed_ips"]
        if allowed is not None and request.META.get("REMOTE_ADDR") not in allowed:
            return self.error(
                403,
                "SOURCE_IP_NOT_ALLOWED",
                _("This address is not in the key's IP allowlist."),
            )
        now = clock.now().timestamp()
        # 2.1: a burst blocks the key; refused (429) calls count too.
        if limits.check(
            self.slug, f"burst:{given}", self._limit("anomaly_requests"), now
        ):
            self.block(given)
            return self.blocked_answer()
        documented = [
            limits.Limit(int(value), seconds, sliding=True, setting=setting)
            for setting, seconds in (
                ("requests_per_minute", 60),
                ("requests_per_hour", 3600),
            )
            if (value := self.config[setting])
        ]
        exceeded = limits.check(self.slug, f"rate:{given}", documented, now)
        if exceeded is not None:
            return self.error(
                429,
                "RATE_LIMIT_EXCEEDED",
                _(
                    "Too many requests: at most %(calls)d per %(seconds)d s; retry "
                    "after %(after)d s."
                )
                % {
                    "calls": exceeded.limit.calls,
                    "seconds": exceeded.limit.seconds,
                    "after": exceeded.retry_after,
                },
                headers={"Retry-After": str(exceeded.retry_after)},
            )
        request.loveandpay_key = given  # type: ignore[attr-defined]
        return None

    # --- invoices -----------------------------------------------------------

    def invoice_object(self, payment: EmulatedPayment) -> dict[str, Any]:
        """The Invoice object of 4.2."""
        data = payment.data
        customer = data.get("customer", {})
        return {
            "id": payment.external_id,
            "invoiceNumber": payment.reference,
            "amount": rubles(payment.amount),
            "currency": payment.currency,
            "description": payment.description,
            "status": payment.status,
            "customerEmail": customer.get("email"),
            "customerName": customer.get("name"),
            "customerPhone": customer.get("phone"),
            "expiresAt": iso(payment.expires_at),
            "createdAt": iso(payment.created_at),
            "paidAt": data.get("paidAt"),
            "qrCode": qr_image(data.get("qrPayload")),
            "qrPayload": data.get("qrPayload"),
            "paymentLink": data.get("paymentLink"),
            "externalOrderId": data.get("externalId"),
            "paymentMethod": data.get("paymentMethod"),
            "kycRequired": bool(data.get("kycRequired")),
            "kycVerified": False,
            "receiptRequired": False,
            "customer": None,
        }

    def webhook_urls(self, request: HttpRequest) -> list[str]:
        """Where the account's webhooks go (4.9: account-level)."""
        configured = self.config["webhook_urls"]
        if configured is not None:
            return [str(url) for url in configured]
        try:
            own = reverse("django_payments_ru:webhook", kwargs={"alias": self.slug})
        except NoReverseMatch:
            return []
        return [request.build_absolute_uri(own)]

    def new_invoice(
        self,
        request: HttpRequest,
        *,
        amount: Decimal,
        currency: str,
        description: str,
        customer: dict[str, str],
        hours: int,
        success_url: str,
        extra: dict[str, Any] | None = None,
    ) -> EmulatedPayment:
        """Store a PENDING invoice (4.1, 4.2) and announce ``invoice.created``."""
        now = clock.now()
        # 4.2: the API shows milliseconds; the stored times match what it shows.
        now = now.replace(microsecond=now.microsecond // 1000 * 1000)
        invoice_id = str(uuid.uuid4())
        number = f"INV-{int(now.timestamp() * 1000)}-{secrets.token_hex(3)}"
        payment = EmulatedPayment.objects.create(
            slug=self.slug,
            external_id=invoice_id,
            status=PENDING,
            amount=amount,
            currency=currency,
            reference=number,
            description=description,
            customer_email=customer.get("email", ""),
            return_url=success_url,
            webhook_url=(self.webhook_urls(request) or [""])[0],
            created_at=now,
            expires_at=now + timedelta(hours=hours),
            data={
                "account": getattr(request, "loveandpay_key", ""),
                "customer": customer,
                "paymentLink": request.build_absolute_uri(
                    self.reverse("pay", number, request=request)
                ),
                "qrPayload": f"https://qr.nspk.ru/{hashlib.sha256(invoice_id.encode()).hexdigest()[:32].upper()}",
                "webhook_urls": self.webhook_urls(request),
                "paidAt": None,
                **(extra or {}),
            },
        )
        self.webhook(payment, "invoice.created")
        return payment

    def expire(self, payment: EmulatedPayment) -> None:
        self.change(payment, EXPIRED, "invoice.expired")

    # --- webhooks -----------------------------------------------------------

    def webhook_body(
        self, payment: EmulatedPayment, event_type: str, event_id: str
    ) -> dict[str, Any]:
        """8.3 with A-4's explicit amounts."""
        customer = payment.data.get("customer", {})
        data: dict[str, Any] = {
            "id": payment.external_id,
            "invoiceNumber": payment.reference,
            "amount": rubles(payment.amount),
            "amountRub": rubles(payment.amount),
            "amountKopecks": int(payment.amount * 100),
            "currency": payment.currency,
            "status": payment.status,
            # Not in 8.3's example (8.3: "whether data carries more fields is
            # not documented"); the invoice object's description.
            "description": payment.description,
            "customerEmail": customer.get("email"),
            "customerName": customer.get("name"),
            "customerPhone": customer.get("phone"),
            "paidAt": payment.data.get("paidAt"),
            "createdAt": iso(payment.created_at),
        }
        return {
            "id": event_id,
            "event": event_type,
            "timestamp": iso(clock.now()),
            "data": {k: v for k, v in data.items() if v is not None},
            "partnerId": self.config["partner_id"],
            "retryCount": 0,
        }

    def signed_headers(self, body: bytes, event_id: str) -> dict[str, str]:
        return {
            "Content-Type": "application/json",
            "User-Agent": "LovePay/1.0",
            WEBHOOK_SIGNATURE_HEADER: sign_webhook(self.config["webhook_secret"], body),
            WEBHOOK_ID_HEADER: event_id,
            WEBHOOK_TIMESTAMP_HEADER: str(int(clock.now().timestamp() * 1000)),
        }

    def post(
        self,
        payment: EmulatedPayment | None,
        urls: list[str],
        body: dict[str, Any],
        headers: dict[str, str] | None = None,
    ) -> list[WebhookDelivery]:
        raw = json.dumps(body, separators=(",", ":"), ensure_ascii=False).encode()
        event_id = str(body.get("id") or f"test_{secrets.token_hex(6)}")
        sent = {**self.signed_headers(raw, event_id), **(headers or {})}
        return [
            self.send_webhook(
                payment,
                url,
                raw,
                sent,
                event_id=event_id,
                event_type=str(body.get("event", "")),
            )
            for url in urls
        ]

    def webhook(
        self, payment: EmulatedPayment, event_type: str
    ) -> list[WebhookDelivery]:
        """Post ``event_type`` to every webhook URL subscribed to it (4.9)."""
        urls = payment.data.get("webhook_urls") or []
        if not urls or event_type not in self.config["webhook_events"]:
            return []
        event_id = f"evt_{int(clock.now().timestamp() * 1000)}_{secrets.token_hex(4)}"
        return self.post(
            payment, urls, self.webhook_body(payment, event_type, event_id)
        )

    def prepare_retry(self, delivery: WebhookDelivery) -> tuple[bytes, dict[str, str]]:
        """A-5: the same body with ``retryCount`` incremented, signed again;
        the same ``x-webhook-id``."""
        data = json.loads(delivery.body)
        if isinstance(data, dict) and "retryCount" in data:
            data["retryCount"] = delivery.attempts
        body = json.dumps(data, separators=(",", ":"), ensure_ascii=False).encode()
        headers = dict(delivery.headers)
        headers[WEBHOOK_SIGNATURE_HEADER] = sign_webhook(
            self.config["webhook_secret"], body
        )
        headers[WEBHOOK_TIMESTAMP_HEADER] = str(int(clock.now().timestamp() * 1000))
        return body, headers

    def test_panel_webhook(
        self, payment: EmulatedPayment, event: str
    ) -> list[WebhookDelivery]:
        """8.4: the cabinet's "Тестирование" tab: upper-case name, data.invoiceId,
        no currency, ``X-Webhook-Event``."""
        name = event.strip().upper().replace(".", "_")
        body = {
            "event": name,
            "timestamp": iso(clock.now()),
            "data": {
                "invoiceId": payment.external_id,
                "invoiceNumber": payment.reference,
                "amount": rubles(payment.amount),
                "status": payment.status,
            },
        }
        return self.post(
            payment,
            payment.data.get("webhook_urls") or [],
            body,
            {"X-Webhook-Event": name},
        )

    # --- the hosted page ----------------------------------------------------

    def act(
        self, request: HttpRequest, payment: EmulatedPayment, action: str
    ) -> str | None:
        if payment.is_expired_at(clock.now()):
            raise ActionRefused(_("This invoice has expired."))
        return super().act(request, payment, action)

    def _paid(self, payment: EmulatedPayment, method: str) -> None:
        self.change(
            payment, PAID, "invoice.paid", paidAt=iso(clock.now()), paymentMethod=method
        )

    def on_pay(self, request: HttpRequest, payment: EmulatedPayment) -> str | None:
        self._paid(payment, "sbp")
        return None

    def on_pay_card(self, request: HttpRequest, payment: EmulatedPayment) -> str | None:
        self._paid(payment, "card")
        return None

    def on_cancel(self, request: HttpRequest, payment: EmulatedPayment) -> str | None:
        self.change(payment, CANCELLED, "invoice.cancelled")
        return self.done_url(request, payment)

    def on_expire(self, request: HttpRequest, payment: EmulatedPayment) -> str | None:
        self.expire(payment)
        return self.done_url(request, payment)

    def return_location(self, request: HttpRequest, payment: EmulatedPayment) -> str:
        # 5: after success the payer goes to successUrl; other outcomes have
        # no documented URL.
        if payment.status == PAID and payment.return_url:
            return payment.return_url
        return self.done_url(request, payment)


emulator = LoveAndPayEmulator()


def _reset_on_settings(*, setting: str, **kwargs: Any) -> None:
    if setting == SETTING_NAME:
        emulator.reset()


setting_changed.connect(_reset_on_settings, dispatch_uid="payments_ru_emu_loveandpay")


# --- validation ------------------------------------------------------------------


def _json(request: HttpRequest) -> dict[str, Any]:
    try:
        data = json.loads(request.body, parse_float=Decimal)
    except ValueError:
        data = None
    if not isinstance(data, dict):
        raise _invalid(_("The request body must be a JSON object."), "body")
    return data


def _url(value: Any, name: str) -> str:
    parts = urlsplit(value) if isinstance(value, str) else None
    if (
        parts is None
        or parts.scheme not in ("http", "https")
        or not parts.netloc
        or len(value) > 2000
    ):
        raise _invalid(_("%(field)s must be a URL.") % {"field": name}, name)
    return str(value)


def _amount(value: Any, name: str = "amount", currency: str = "RUB") -> Decimal:
    if isinstance(value, bool) or not isinstance(value, int | Decimal):
        raise _invalid(
            _("%(field)s must be a number of rubles.") % {"field": name}, name
        )
    amount = Decimal(value)
    if (
        not amount.is_finite()
        or amount <= 0
        or amount != amount.quantize(Decimal("0.01"))
    ):
        raise _invalid(
            _("%(field)s must be above 0 with at most 2 decimals.") % {"field": name},
            name,
        )
    if amount > Decimal("100000000"):
        raise _invalid(_("%(field)s is too large.") % {"field": name}, name)
    minimum = Decimal(str(emulator.config["min_amount"]))
    if currency == "RUB" and amount < minimum:
        raise _invalid(
            _("amount must be at least %(min)s RUB.") % {"min": minimum}, name
        )
    return amount.quantize(Decimal("0.01"))


def _email(value: Any, name: str) -> str:
    try:
        if not isinstance(value, str):
            raise ValidationError("")
        validate_email(value)
    except ValidationError:
        raise _invalid(
            _("%(field)s must be an e-mail address.") % {"field": name}, name
        ) from None
    return value


def _customer(value: Any) -> dict[str, str]:
    if not isinstance(value, dict):
        raise _invalid(_("customer is required: an object, may be {}."), "customer")
    for name, item in value.items():
        field = f"customer.{name}"
        if name not in CUSTOMER_FIELDS:
            raise _invalid(_("Unknown field %(field)s.") % {"field": field}, field)
        if not isinstance(item, str):
            raise _invalid(
                _("%(field)s must be a string, never null.") % {"field": field}, field
            )
    if "email" in value:
        _email(value["email"], "customer.email")
    phone = value.get("phone")
    if phone is not None and not (
        len(phone) == 12 and phone.startswith("+7") and phone[2:].isdigit()
    ):
        raise _invalid(_("customer.phone must be +7XXXXXXXXXX."), "customer.phone")
    if len(value.get("name", "")) > 255:
        raise _invalid(
            _("customer.name is longer than 255 characters."), "customer.name"
        )
    return dict(value)


def _validated_create(body: dict[str, Any]) -> dict[str, Any]:
    """4.1, strictly: every field checked, optional ones never ``null``."""
    for name, value in body.items():
        if name not in CREATE_FIELDS:
            raise _invalid(_("Unknown field %(field)s.") % {"field": name}, name)
        if value is None:
            raise _invalid(
                _("%(field)s must not be null: leave it out.") % {"field": name}, name
            )
    if "amount" not in body:
        raise _invalid(_("amount is required."), "amount")
    amount = _amount(body["amount"])
    if body.get("currency") != "RUB":
        raise _invalid(_("currency must be RUB."), "currency")
    description = body.get("description")
    if not isinstance(description, str) or not 1 <= len(description) <= 255:
        raise _invalid(_("description must be 1 to 255 characters."), "description")
    if "customer" not in body:
        raise _invalid(_("customer is required: an object, may be {}."), "customer")
    customer = _customer(body["customer"])
    hours = body.get("expiresInHours", 24)
    if isinstance(hours, bool) or not isinstance(hours, int) or not 1 <= hours <= 72:
        raise _invalid(
            _("expiresInHours must be an integer from 1 to 72."), "expiresInHours"
        )
    kyc = body.get("kycRequired", False)
    if not isinstance(kyc, bool):
        raise _invalid(_("kycRequired must be true or false."), "kycRequired")
    method = body.get("paymentMethod")
    if method is not None and method not in ("sbp", "card"):
        raise _invalid(_("paymentMethod must be sbp or card."), "paymentMethod")
    return {
        "amount": amount,
        "description": description,
        "customer": customer,
        "hours": hours,
        "success_url": _url(body["successUrl"], "successUrl")
        if "successUrl" in body
        else "",
        "extra": {"kycRequired": kyc, "paymentMethod": method},
    }


def _account_invoice(request: HttpRequest, invoice_id: str) -> EmulatedPayment:
    payment = EmulatedPayment.objects.filter(
        slug=emulator.slug, external_id=invoice_id
    ).first()
    if payment is None or payment.data.get("account") != getattr(
        request, "loveandpay_key", ""
    ):
        raise EmulatorError(
            404, "NOT_FOUND", _("No invoice %(id)s.") % {"id": invoice_id}
        )
    return payment


# --- views -----------------------------------------------------------------------


@emulator.endpoint("create", methods=("POST",))
def create_invoice(request: HttpRequest) -> HttpResponse:
    values = _validated_create(_json(request))
    payment = emulator.new_invoice(
        request,
        amount=values["amount"],
        currency="RUB",
        description=values["description"],
        customer=values["customer"],
        hours=values["hours"],
        success_url=values["success_url"],
        extra=values["extra"],
    )
    return JsonResponse(
        {"success": True, "invoice": emulator.invoice_object(payment)}, status=201
    )


def _int_param(
    request: HttpRequest, name: str, default: int, low: int, high: int
) -> int:
    raw = request.GET.get(name)
    if raw is None:
        return default
    if not raw.isdigit() or not low <= int(raw) <= high:
        raise _invalid(
            _("%(field)s must be an integer from %(low)d to %(high)d.")
            % {"field": name, "low": low, "high": high},
            name,
        )
    return int(raw)


@emulator.endpoint("list", methods=("GET",))
def list_invoices(request: HttpRequest) -> HttpResponse:
    limit = _int_param(request, "limit", 50, 1, 1000)  # 4.4
    offset = _int_param(request, "offset", 0, 0, 10**9)
    qs = EmulatedPayment.objects.filter(
        slug=emulator.slug, data__account=getattr(request, "loveandpay_key", "")
    )
    status = request.GET.get("status")
    if status is not None:
        if status not in STATUSES:
            raise _invalid(
                _("status must be one of %(list)s.") % {"list": ", ".join(STATUSES)},
                "status",
            )
        qs = qs.filter(status=status)
    total = qs.count()
    page = qs.order_by("created_at", "id")[offset : offset + limit]
    return JsonResponse(
        {
            "success": True,
            "data": [emulator.invoice_object(p) for p in page],
            "pagination": {
                "total": total,
                "limit": limit,
                "offset": offset,
                "pages": math.ceil(total / limit) if total else 0,
            },
        }
    )


@csrf_exempt
def invoices(request: HttpRequest) -> HttpResponse:
    """``invoices``: GET lists, POST creates."""
    if request.method == "GET":
        return list_invoices(request)
    return create_invoice(request)


@emulator.endpoint("get", methods=("GET",))
def get_invoice(request: HttpRequest, invoice_id: str) -> HttpResponse:
    payment = emulator.expire_if_due(_account_invoice(request, invoice_id))
    return JsonResponse({"success": True, "invoice": emulator.invoice_object(payment)})


@emulator.endpoint("cancel", methods=("POST",))
def cancel_invoice(request: HttpRequest, invoice_id: str) -> HttpResponse:
    """A-7: not public at the real provider; here for the feature flag."""
    payment = _account_invoice(request, invoice_id)
    with transaction.atomic():
        locked = emulator.lock(payment)
        if locked.status == PENDING:
            emulator.change(locked, CANCELLED, "invoice.cancelled")
        elif locked.status != CANCELLED:
            raise _invalid(
                _("Only a PENDING invoice can be cancelled; this one is %(status)s.")
                % {"status": locked.status},
                "status",
            )
    return JsonResponse({"success": True, "invoice": emulator.invoice_object(locked)})


@emulator.endpoint("template", methods=("GET",))
def batch_template(request: HttpRequest) -> HttpResponse:
    """LP2-BATCH: the v2 CSV template."""
    return HttpResponse(TEMPLATE, content_type="text/csv; charset=utf-8")


def _batch_row(
    number: int, row: dict[str, str], defaults: dict[str, str]
) -> dict[str, Any]:
    currency = (row.get("currency") or defaults["currency"]).strip().upper()
    if currency not in BATCH_CURRENCIES:
        raise _invalid(_("currency must be one of USD, EUR, RUB, KZT."), "currency")
    raw = (row.get("amount") or "").strip()
    try:
        value: Any = Decimal(raw)
    except InvalidOperation:
        value = None
    amount = _amount(value, "amount", currency)
    description = (row.get("description") or "").strip()
    if len(description) > 255:
        raise _invalid(_("description is longer than 255 characters."), "description")
    email = (row.get("email") or "").strip()
    if email:
        _email(email, "email")
    redirect = (row.get("redirectUrl") or defaults["redirect"]).strip()
    return {
        "amount": amount,
        "currency": currency,
        "description": description or f"Batch row {number}",
        "customer": {"email": email} if email else {},
        "success_url": _url(redirect, "redirectUrl") if redirect else "",
        "external_id": (row.get("externalId") or "").strip()[:255],
    }


@emulator.endpoint("batch", methods=("POST",))
def batch_upload(request: HttpRequest) -> HttpResponse:
    """LP1-BATCH: ``multipart/form-data`` with ``file`` (CSV, at most 1000 rows
    and 5 MB), ``sendEmails``, ``defaultCurrency``, ``defaultRedirectUrl``."""
    upload = request.FILES.get("file")
    if upload is None:
        raise _invalid(_("file is required: a CSV file."), "file")
    if (upload.size or 0) > BATCH_MAX_BYTES:
        raise _invalid(_("file is larger than 5 MB."), "file")
    try:
        text = upload.read().decode("utf-8-sig")
    except UnicodeDecodeError:
        raise _invalid(_("file must be UTF-8 CSV."), "file") from None
    reader = csv.DictReader(io.StringIO(text))
    if not reader.fieldnames or "amount" not in reader.fieldnames:
        raise _invalid(_("The CSV needs a header row with amount."), "file")
    unknown = [c for c in reader.fieldnames if c not in BATCH_COLUMNS]
    if unknown:
        raise _invalid(_("Unknown column %(column)s.") % {"column": unknown[0]}, "file")
    rows = list(reader)
    if not rows or len(rows) > BATCH_MAX_ROWS:
        raise _invalid(_("The CSV must have 1 to 1000 rows."), "file")
    send = request.POST.get("sendEmails", "false").lower() in ("true", "1", "yes")
    defaults = {
        "currency": request.POST.get("defaultCurrency", ""),
        "redirect": request.POST.get("defaultRedirectUrl", ""),
    }
    created, refused = [], []
    for number, row in enumerate(rows, start=1):
        try:
            values = _batch_row(number, row, defaults)
        except EmulatorError as exc:
            refused.append(
                {
                    "row": number,
                    "field": exc.fields.get("field", ""),
                    "message": exc.message,
                }
            )
            continue
        payment = emulator.new_invoice(
            request,
            amount=values["amount"],
            currency=values["currency"],
            description=values["description"],
            customer=values["customer"],
            hours=24,
            success_url=values["success_url"],
            extra={
                "externalId": values["external_id"],
                "emailSent": bool(send and values["customer"]),
            },
        )
        created.append(
            {
                **emulator.invoice_object(payment),
                "row": number,
                "externalId": values["external_id"],
            }
        )
    return JsonResponse(
        {
            "batchId": f"batch_{secrets.token_hex(8)}",
            "total": len(rows),
            "created": len(created),
            "failed": len(refused),
            "invoices": created,
            "errors": refused,
        }
    )


@emulator.endpoint("pay_page", methods=("GET", "POST"), auth=False, csrf=True)
def pay_page(request: HttpRequest, number: str) -> HttpResponse:
    """5: ``pay/<invoiceNumber>``."""
    payment = EmulatedPayment.objects.filter(
        slug=emulator.slug, reference=number
    ).first()
    if payment is None:
        raise Http404(_("No such invoice."))
    return emulator.pay_page(request, emulator.expire_if_due(payment))


# --- emulator-only controls ----------------------------------------------------------


def _control_body(request: HttpRequest) -> dict[str, Any]:
    if request.content_type == "application/json":
        try:
            data = json.loads(request.body or b"{}")
        except ValueError:
            data = None
        return data if isinstance(data, dict) else {}
    return dict(request.POST.items())


@csrf_exempt
def control_reindex(request: HttpRequest) -> HttpResponse:
    """``POST _control/reindex {"apiKey"}``: support unblocked the key and the
    merchant pressed "Переиндексировать" (2.1). Not part of the real API."""
    if request.method != "POST":
        return HttpResponse(status=405, headers={"Allow": "POST"})
    key = str(_control_body(request).get("apiKey", ""))
    if key not in emulator.config["api_keys"]:
        return JsonResponse({"success": False, "error": "unknown apiKey"}, status=404)
    return JsonResponse({"success": True, "wasBlocked": emulator.reindex(key)})


@csrf_exempt
def control_expire(request: HttpRequest) -> HttpResponse:
    """``POST _control/expire``: run the background expiry now."""
    if request.method != "POST":
        return HttpResponse(status=405, headers={"Allow": "POST"})
    return JsonResponse({"success": True, "expired": emulator.expire_due()})


@csrf_exempt
def control_test_webhook(request: HttpRequest) -> HttpResponse:
    """``POST _control/test-webhook {"invoiceId", "event"}``: the cabinet's
    test-panel delivery (8.4: upper-case, ``data.invoiceId``, no currency)."""
    if request.method != "POST":
        return HttpResponse(status=405, headers={"Allow": "POST"})
    body = _control_body(request)
    payment = EmulatedPayment.objects.filter(
        slug=emulator.slug, external_id=str(body.get("invoiceId", ""))
    ).first()
    if payment is None:
        return JsonResponse(
            {"success": False, "error": "unknown invoiceId"}, status=404
        )
    sent = emulator.test_panel_webhook(payment, str(body.get("event", "INVOICE_PAID")))
    return JsonResponse({"success": True, "deliveries": len(sent)})


urlpatterns = [
    path("api/v2/invoices", invoices, name="invoices"),
    path("api/v2/invoices/<str:invoice_id>", get_invoice, name="invoice"),
    path("api/v2/invoices/<str:invoice_id>/cancel", cancel_invoice, name="cancel"),
    path("api/v2/batch/invoices", batch_template, name="batch_template"),
    path("api/v1/invoices", invoices, name="v1_invoices"),
    path("api/v1/invoices/<str:invoice_id>", get_invoice, name="v1_invoice"),
    path("api/v1/invoices/<str:invoice_id>/cancel", cancel_invoice, name="v1_cancel"),
    path("api/v1/batch/invoices", batch_upload, name="batch"),
    path("pay/<str:number>", pay_page, name="pay"),
    path("_control/reindex", control_reindex, name="reindex"),
    path("_control/expire", control_expire, name="expire"),
    path("_control/test-webhook", control_test_webhook, name="test_webhook"),
]
