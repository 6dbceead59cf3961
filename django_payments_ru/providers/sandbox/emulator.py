"""The sandbox provider's emulator: the sandbox protocol served by Django.

The protocol is the one :mod:`django_payments_ru.providers.sandbox.provider`
speaks (see its module docstring), under ``emulator/sandbox/``:

* ``POST api/payments`` (``Authorization: Bearer <key>``, optional
  ``Idempotency-Key``): body ``{amount, currency, reference, description,
  order_id, customer_email, return_url, webhook_url, receipt}``; ``amount``,
  ``currency`` and ``reference`` required, the rest optional strings; no other
  field. ``201`` with the payment object, ``pending``, expiring after
  ``payment_lifetime`` seconds (default 30 min).
* ``receipt`` (optional, at create and at refund): the 54-FZ receipt, ``{delivery,
  lines: [{name, quantity, price, amount, vat, unit, payment_object,
  payment_method, code}]}`` with decimals as strings (the neutral format of
  :meth:`django_payments_ru.receipts.Receipt.to_json`). Refused (400
  ``invalid_request``, ``field`` naming the line and its field) unless every
  line's ``amount`` is its ``price`` times its ``quantity`` in the currency's
  decimals and the lines add up to the request's ``amount`` exactly; a
  refund's lines must also have been paid (by name and price) and not refunded
  yet. The lines are kept (``data["receipt"]``, each refund's ``receipt``) and
  shown on the pay page.
* ``GET api/payments/<id>``; ``POST api/payments/<id>/refunds`` ``{amount,
  receipt}`` (``201 {id, amount, payment}``; partial refunds add up to at most
  the amount; only a ``succeeded`` payment, which becomes ``refunded`` when
  nothing is left); ``POST api/payments/<id>/cancel`` (only ``pending``).
* ``pay/<id>/``: the hosted pay page with the buttons Pay (``succeeded``),
  Decline (``failed``) and Let expire (``expired``), and the receipt's lines.
  A pending payment read after ``expires_at`` (page, API) becomes ``expired``.
* Each change of status and each refund posts a signed webhook to the
  payment's ``webhook_url``.

Errors, as ``{"error": {"code", "message", ...}}``:

=====  ========================  ===========================================
401    ``invalid_api_key``       no or a wrong bearer key
400    ``invalid_request``       a bad body or field (``field`` names it)
404    ``not_found``             no such payment
409    ``invalid_state``         refund or cancel not possible in this status
409    ``idempotency_conflict``  the key was used with another request
405    ``method_not_allowed``
429    ``rate_limit_exceeded``   ``rate_limits`` exceeded (``Retry-After``)
5xx    ``emulated_fault``        a fault injected on purpose (``faults``)
=====  ========================  ===========================================

Settings, ``PAYMENTS_RU_EMULATOR["sandbox"]``: ``api_keys`` (list, required),
``webhook_secret`` (required), ``payment_lifetime`` (seconds, default 1800),
and the common ``faults``, ``rate_limits``, ``idempotency_ttl``,
``webhook_retry_schedule`` (see :mod:`django_payments_ru.emulator.base`).
Endpoint names for faults: ``create``, ``get``, ``refund``, ``cancel``,
``pay_page``.
"""

from __future__ import annotations

import json
from datetime import timedelta
from decimal import ROUND_HALF_UP, Decimal
from typing import Any, ClassVar
from urllib.parse import urlsplit

from django.core.exceptions import ValidationError
from django.core.validators import validate_email
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.urls import path
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy

from ...emulator import clock
from ...emulator.base import (
    DECLINE,
    EXPIRE,
    PAY,
    REQUIRED,
    Action,
    Emulator,
    EmulatorError,
)
from ...emulator.models import EmulatedPayment, WebhookDelivery
from ...exceptions import InvalidInput
from ...money import exponent, format_amount, to_amount
from .provider import EVENT_ID_HEADER, SIGNATURE_HEADER, TIMESTAMP_HEADER, sign

CURRENCIES = ("RUB", "USD", "EUR")
#: Create fields: name -> (required, longest length).
CREATE_FIELDS: dict[str, tuple[bool, int]] = {
    "amount": (True, 32),
    "currency": (True, 3),
    "reference": (True, 255),
    "description": (False, 1000),
    "order_id": (False, 255),
    "customer_email": (False, 254),
    "return_url": (False, 2000),
    "webhook_url": (False, 2000),
}
#: Receipt line fields: name -> required (the rest have the neutral defaults).
LINE_FIELDS: dict[str, bool] = {
    "name": True,
    "quantity": True,
    "price": True,
    "amount": True,
    "vat": True,
    "unit": False,
    "payment_object": False,
    "payment_method": False,
    "code": False,
}
LINE_TEXT_LONGEST = 128
DELIVERIES = ("email", "sms", "nothing")

PENDING = "pending"
SUCCEEDED = "succeeded"
FAILED = "failed"
EXPIRED = "expired"
CANCELLED = "cancelled"
REFUNDED = "refunded"


def _invalid(field: str, message: str) -> EmulatorError:
    return EmulatorError(400, "invalid_request", message, field=field)


def _amount(
    value: Any, currency: str, field: str = "amount", *, zero: bool = False
) -> Decimal:
    if not isinstance(value, str):
        raise _invalid(
            field,
            _("%(field)s must be a decimal string such as '100.00'.")
            % {"field": field},
        )
    try:
        return to_amount(value, currency, allow_zero=zero)
    except InvalidInput as exc:
        raise _invalid(field, f"{field}: {exc.message}") from None


def _decimal(value: Any, field: str, places: int) -> Decimal:
    """A decimal string with at most ``places`` decimals, more than zero."""
    message = _("%(field)s must be a decimal string such as '1.5'.") % {"field": field}
    if not isinstance(value, str):
        raise _invalid(field, message)
    try:
        number = Decimal(value.strip())
    except ArithmeticError:
        raise _invalid(field, message) from None
    exponent = number.as_tuple().exponent
    if not number.is_finite() or not isinstance(exponent, int) or number <= 0:
        raise _invalid(field, message)
    if -exponent > places:
        raise _invalid(
            field,
            _("%(field)s has more than %(places)d decimals.")
            % {"field": field, "places": places},
        )
    return number


def _receipt_line(line: Any, where: str, currency: str) -> dict[str, Any]:
    if not isinstance(line, dict):
        raise _invalid(where, _("%(field)s must be an object.") % {"field": where})
    for name in line:
        if name not in LINE_FIELDS:
            raise _invalid(
                f"{where}.{name}",
                _("Unknown field %(field)s.") % {"field": f"{where}.{name}"},
            )
    values: dict[str, Any] = {}
    for name, required in LINE_FIELDS.items():
        field = f"{where}.{name}"
        if name not in line:
            if required:
                raise _invalid(field, _("%(field)s is required.") % {"field": field})
            continue
        value = line[name]
        if name in ("quantity", "price", "amount"):
            continue
        if not isinstance(value, str) or (required and not value.strip()):
            raise _invalid(
                field, _("%(field)s must be a non-empty string.") % {"field": field}
            )
        if len(value) > LINE_TEXT_LONGEST:
            raise _invalid(
                field,
                _("%(field)s is longer than %(max)d characters.")
                % {"field": field, "max": LINE_TEXT_LONGEST},
            )
        values[name] = value
    values["quantity"] = _decimal(line["quantity"], f"{where}.quantity", 3)
    # A free line (a gift) costs 0.00.
    values["price"] = _amount(line["price"], currency, f"{where}.price", zero=True)
    values["amount"] = _amount(line["amount"], currency, f"{where}.amount", zero=True)
    # The line sum is price x quantity rounded half up to the currency's
    # decimals, as a fiscal register rounds it.
    quantum = Decimal(1).scaleb(-exponent(currency))
    exact = (values["price"] * values["quantity"]).quantize(
        quantum, rounding=ROUND_HALF_UP
    )
    if values["amount"] != exact:
        raise _invalid(
            f"{where}.amount",
            _("%(field)s is %(amount)s, not price x quantity (%(exact)s).")
            % {
                "field": f"{where}.amount",
                "amount": format_amount(values["amount"], currency),
                "exact": format_amount(exact, currency),
            },
        )
    return values


def _receipt(value: Any, amount: Decimal, currency: str) -> dict[str, Any]:
    """The checked ``receipt`` of a request for ``amount`` (see the module
    docstring), as it is stored: decimals as strings."""
    if not isinstance(value, dict) or set(value) - {"delivery", "lines"}:
        raise _invalid(
            "receipt",
            _("receipt must be an object with delivery and lines."),
        )
    delivery = value.get("delivery", "email")
    if delivery not in DELIVERIES:
        raise _invalid(
            "receipt.delivery",
            _("receipt.delivery must be one of %(list)s.")
            % {"list": ", ".join(DELIVERIES)},
        )
    lines = value.get("lines")
    if not isinstance(lines, list) or not lines:
        raise _invalid(
            "receipt.lines", _("receipt.lines must be a non-empty list of lines.")
        )
    checked = [
        _receipt_line(line, f"receipt.lines[{index}]", currency)
        for index, line in enumerate(lines)
    ]
    total = sum((line["amount"] for line in checked), Decimal(0))
    if total != amount:
        raise _invalid(
            "receipt.lines",
            _("The receipt's lines add up to %(total)s, not to the amount %(amount)s.")
            % {
                "total": format_amount(total, currency),
                "amount": format_amount(amount, currency),
            },
        )
    return {
        "delivery": delivery,
        "lines": [
            {
                **line,
                "quantity": str(line["quantity"]),
                "price": format_amount(line["price"], currency),
                "amount": format_amount(line["amount"], currency),
            }
            for line in checked
        ],
    }


def _left_to_refund(payment: EmulatedPayment) -> dict[tuple[str, str], Decimal]:
    """The quantities of the paid receipt's lines not refunded yet, by name and
    price."""
    left: dict[tuple[str, str], Decimal] = {}
    for line in (payment.data.get("receipt") or {}).get("lines", []):
        key = (line["name"], line["price"])
        left[key] = left.get(key, Decimal(0)) + Decimal(line["quantity"])
    for refund in payment.data.get("refunds", []):
        for line in (refund.get("receipt") or {}).get("lines", []):
            key = (line["name"], line["price"])
            left[key] = left.get(key, Decimal(0)) - Decimal(line["quantity"])
    return left


def _refund_receipt(
    value: Any, amount: Decimal, payment: EmulatedPayment
) -> dict[str, Any]:
    """The checked receipt of a refund: its lines add up, and they were paid and
    are not refunded yet."""
    receipt = _receipt(value, amount, payment.currency)
    left = _left_to_refund(payment)
    for index, line in enumerate(receipt["lines"]):
        key = (line["name"], line["price"])
        quantity = Decimal(line["quantity"])
        if left.get(key, Decimal(0)) < quantity:
            field = f"receipt.lines[{index}]"
            raise _invalid(
                field,
                _(
                    "%(field)s: %(name)s at %(price)s was not paid, or not "
                    "%(quantity)s of it is left to refund."
                )
                % {
                    "field": field,
                    "name": line["name"],
                    "price": line["price"],
                    "quantity": line["quantity"],
                },
            )
        left[key] -= quantity
    return receipt


def _url(value: str, field: str) -> str:
    parts = urlsplit(value)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise _invalid(
            field, _("%(field)s must be an absolute http(s) URL.") % {"field": field}
        )
    return value


class SandboxEmulator(Emulator):
    """The emulator of :class:`~django_payments_ru.providers.sandbox.Provider`."""

    slug = "sandbox"
    display_name = gettext_lazy("Sandbox")
    options: ClassVar[dict[str, Any]] = {
        "api_keys": REQUIRED,
        "webhook_secret": REQUIRED,
        "payment_lifetime": 30 * 60,
    }
    pending_statuses: ClassVar[frozenset[str]] = frozenset({PENDING})
    pending_actions: ClassVar[tuple[Action, ...]] = (PAY, DECLINE, EXPIRE)

    # --- payments -----------------------------------------------------------

    def payment_object(self, payment: EmulatedPayment) -> dict[str, Any]:
        """The payment as the API and the webhooks show it."""
        return {
            "id": payment.external_id,
            "status": payment.status,
            "amount": format_amount(payment.amount, payment.currency),
            "currency": payment.currency,
            "reference": payment.reference,
            "refunded_amount": format_amount(payment.refunded_amount, payment.currency),
            "payment_url": payment.data.get("payment_url", ""),
            "expires_at": payment.expires_at.isoformat()
            if payment.expires_at
            else None,
            "failure_reason": payment.data.get("failure_reason") or None,
        }

    def webhook(
        self, payment: EmulatedPayment, event_type: str
    ) -> WebhookDelivery | None:
        """Post ``event_type`` about ``payment`` after the commit."""
        if not payment.webhook_url:
            return None
        event_id = self.new_id("evt", 12)
        body = json.dumps(
            {
                "id": event_id,
                "type": event_type,
                "created_at": clock.now().isoformat(),
                "data": self.payment_object(payment),
            },
            separators=(",", ":"),
        ).encode()
        return self.send_webhook(
            payment,
            payment.webhook_url,
            body,
            self.signed_headers(event_id, body),
            event_id=event_id,
            event_type=event_type,
        )

    def signed_headers(self, event_id: str, body: bytes) -> dict[str, str]:
        timestamp = str(clock.timestamp())
        return {
            "Content-Type": "application/json",
            EVENT_ID_HEADER: event_id,
            TIMESTAMP_HEADER: timestamp,
            SIGNATURE_HEADER: sign(self.config["webhook_secret"], timestamp, body),
        }

    def prepare_retry(self, delivery: WebhookDelivery) -> tuple[bytes, dict[str, str]]:
        # The signature covers a timestamp that the client accepts within a few
        # minutes: a retry is the same body signed again now.
        body = delivery.body.encode("utf-8")
        event_id = delivery.headers.get(EVENT_ID_HEADER, delivery.event_id)
        return body, self.signed_headers(event_id, body)

    # --- pending payments and the pay page ------------------------------------

    def pay_page_context(self, payment: EmulatedPayment) -> dict[str, Any]:
        # The receipt's lines are shown to the customer before paying.
        receipt = payment.data.get("receipt") or {}
        return {
            **super().pay_page_context(payment),
            "receipt_lines": receipt.get("lines", []),
        }

    def expire(self, payment: EmulatedPayment) -> None:
        self.change(payment, EXPIRED, "payment.expired")

    def on_pay(self, request: HttpRequest, payment: EmulatedPayment) -> str | None:
        self.change(payment, SUCCEEDED, "payment.succeeded")
        return None

    def on_decline(self, request: HttpRequest, payment: EmulatedPayment) -> str | None:
        self.change(
            payment, FAILED, "payment.failed", failure_reason="declined by the customer"
        )
        return None


emulator = SandboxEmulator()


# --- views ---------------------------------------------------------------------


def _validated_create(body: dict[str, Any]) -> dict[str, Any]:
    for name in body:
        if name not in CREATE_FIELDS and name != "receipt":
            raise _invalid(name, _("Unknown field %(field)s.") % {"field": name})
    values: dict[str, Any] = {}
    for name, (required, longest) in CREATE_FIELDS.items():
        value = body.get(name)
        if value is None and not required and name not in body:
            values[name] = ""
            continue
        if not isinstance(value, str):
            raise _invalid(
                name,
                _("%(field)s must be a string.") % {"field": name}
                if name in body
                else _("%(field)s is required.") % {"field": name},
            )
        if required and not value.strip():
            raise _invalid(name, _("%(field)s is required.") % {"field": name})
        if len(value) > longest:
            raise _invalid(
                name,
                _("%(field)s is longer than %(max)d characters.")
                % {"field": name, "max": longest},
            )
        values[name] = value
    if values["currency"] not in CURRENCIES:
        raise _invalid(
            "currency",
            _("currency must be one of %(list)s.") % {"list": ", ".join(CURRENCIES)},
        )
    values["amount"] = _amount(values["amount"], values["currency"])
    if values["customer_email"]:
        try:
            validate_email(values["customer_email"])
        except ValidationError:
            raise _invalid(
                "customer_email", _("customer_email is not an e-mail address.")
            ) from None
    for name in ("return_url", "webhook_url"):
        if values[name]:
            _url(values[name], name)
    return values


@emulator.endpoint("create", methods=("POST",), idempotent=True)
def create_payment(request: HttpRequest) -> HttpResponse:
    body = emulator.json_body(request)
    values = _validated_create(body)
    data: dict[str, Any] = {}
    if body.get("receipt") is not None:
        data["receipt"] = _receipt(
            body["receipt"], values["amount"], values["currency"]
        )
    external_id = emulator.new_id("pay")
    lifetime = int(emulator.config["payment_lifetime"])
    now = clock.now()
    payment = EmulatedPayment.objects.create(
        slug=emulator.slug,
        external_id=external_id,
        status=PENDING,
        created_at=now,
        expires_at=now + timedelta(seconds=lifetime),
        data={
            **data,
            "payment_url": emulator.absolute_url(request, "pay", external_id),
        },
        **values,
    )
    return JsonResponse(emulator.payment_object(payment), status=201)


@emulator.endpoint("get", methods=("GET",))
def get_payment(request: HttpRequest, payment_id: str) -> HttpResponse:
    payment = emulator.expire_if_due(emulator.get_payment(payment_id))
    return JsonResponse(emulator.payment_object(payment))


@emulator.endpoint("refund", methods=("POST",), idempotent=True)
def refund_payment(request: HttpRequest, payment_id: str) -> HttpResponse:
    body = emulator.json_body(request)
    for name in body:
        if name not in ("amount", "receipt"):
            raise _invalid(name, _("Unknown field %(field)s.") % {"field": name})
    if "amount" not in body:
        raise _invalid("amount", _("amount is required."))
    with emulator.locked_in(
        emulator.get_payment(payment_id),
        {SUCCEEDED},
        "invalid_state",
        _("Only a succeeded payment can be refunded; this one is %(status)s."),
    ) as payment:
        amount = _amount(body["amount"], payment.currency)
        if amount > payment.refundable_amount:
            raise _invalid(
                "amount",
                _("amount %(amount)s exceeds what is left to refund (%(left)s).")
                % {
                    "amount": format_amount(amount, payment.currency),
                    "left": format_amount(payment.refundable_amount, payment.currency),
                },
            )
        refund: dict[str, Any] = {
            "id": emulator.new_id("re"),
            "amount": format_amount(amount, payment.currency),
            "created_at": clock.now().isoformat(),
        }
        if body.get("receipt") is not None:
            refund["receipt"] = _refund_receipt(body["receipt"], amount, payment)
        emulator.add_refund(payment, amount, refund, "payment.refunded")
    return JsonResponse(
        {
            "id": refund["id"],
            "amount": refund["amount"],
            "payment": emulator.payment_object(payment),
        },
        status=201,
    )


@emulator.endpoint("cancel", methods=("POST",), idempotent=True)
def cancel_payment(request: HttpRequest, payment_id: str) -> HttpResponse:
    body = emulator.json_body(request, empty=True)
    for name in body:
        raise _invalid(name, _("Unknown field %(field)s.") % {"field": name})
    with emulator.locked_in(
        emulator.get_payment(payment_id),
        {PENDING},
        "invalid_state",
        _("Only a pending payment can be cancelled; this one is %(status)s."),
    ) as payment:
        emulator.change(payment, CANCELLED, "payment.cancelled")
    return JsonResponse(emulator.payment_object(payment))


urlpatterns = [
    path("pay/<str:payment_id>/", emulator.pay_page_view(), name="pay"),
    path("api/payments", create_payment, name="create"),
    path("api/payments/<str:payment_id>", get_payment, name="payment"),
    path("api/payments/<str:payment_id>/refunds", refund_payment, name="refunds"),
    path("api/payments/<str:payment_id>/cancel", cancel_payment, name="cancel"),
]
