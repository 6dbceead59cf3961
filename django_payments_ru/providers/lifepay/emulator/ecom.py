"""The emulator's ECOM endpoints (lifepay.md §9, §11).

Errors are ``{"status": <slug>, "message"}`` with 400/401/404/498
(ASSUMPTION A-11).

* ``v1/auth``: ``{"service_id", "api_key"}`` -> ``{"jwt", "lp_public"}``; the
  JWT (HS512, ``exp`` in header and payload as a float, A-9) lives
  ``jwt_lifetime`` seconds of the emulator clock.
* ``v1/invoices`` (POST), ``v1/invoices/<id>`` (GET, PATCH; empty body on
  success), ``pay/<id>/`` the invoice's ``form_link`` (A-13).
* ``v1/services/<service_id>/charges/<tid>/blocked``: ``PATCH`` charges a
  hold, ``DELETE`` voids it (§9; the charge id is the ``tid``, L-6); answers
  ``{"status": "charged"|"voided"|"error", "decline_code", "message",
  "info"}`` with HTTP 200 (L-7).
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Mapping
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any

from django.core.exceptions import ValidationError
from django.core.validators import validate_email
from django.db import transaction
from django.http import Http404, HttpRequest, HttpResponse, JsonResponse
from django.urls import path
from django.utils.translation import gettext as _
from django.utils.translation import ngettext

from ....emulator import clock
from ....emulator.base import EmulatorError
from ....emulator.models import EmulatedPayment
from ....exceptions import InvalidInput
from ...signing import constant_time_equals
from .. import metadata as meta
from ..notifications import MOSCOW
from .common import (
    ECOM,
    ECOM_CREATE_FIELDS,
    ECOM_PATCH_FIELDS,
    FIRST_SHORT_ID,
    I_BLOCKED,
    I_OPEN,
    I_PENDING,
    LP_PUBLIC,
    ecom_error,
)
from .service import emulator


def _json(request: HttpRequest, *, empty: bool = False) -> dict[str, Any]:
    if empty and not request.body.strip():
        return {}
    try:
        data = json.loads(request.body, parse_float=Decimal)
    except ValueError:
        data = None
    if not isinstance(data, dict):
        raise ecom_error(400, "bad_request", _("The body must be a JSON object."))
    return data


def _invalid(field: str, message: str) -> EmulatorError:
    return ecom_error(400, "invalid_parameter_value", f"{field}: {message}")


def _ecom_text(
    body: Mapping[str, Any], field: str, longest: int, shortest: int = 0
) -> str:
    value = body.get(field)
    if not isinstance(value, str) or not shortest <= len(value) <= longest:
        raise _invalid(
            field,
            ngettext(
                "must be a string of %(min)d to %(max)d character.",
                "must be a string of %(min)d to %(max)d characters.",
                longest,
            )
            % {"min": shortest, "max": longest},
        )
    return value


def _ecom_phone(value: Any) -> str:
    # SEED-003 sends the phone as a JSON number; §11.2 types it as a string.
    if isinstance(value, bool) or not isinstance(value, int | str):
        raise _invalid("phone", _("must be digits."))
    text = str(value)
    if not text.isdigit() or len(text) > 15:
        raise _invalid("phone", _("must be digits."))
    return text


def _ecom_amount(
    value: Any, field: str = "amount", minimum: Decimal = Decimal(1)
) -> Decimal:
    # a JSON number of major units, <= 2 decimals, >= 1.
    if isinstance(value, bool) or not isinstance(value, int | Decimal):
        raise _invalid(field, _("must be a number."))
    number = Decimal(value)
    if number.as_tuple().exponent < -2 or number < minimum:  # type: ignore[operator]
        raise _invalid(
            field,
            _("must be at least %(min)s with at most 2 decimals.") % {"min": minimum},
        )
    return number


def _ecom_common(body: Mapping[str, Any], values: dict[str, Any]) -> None:
    """Fields shared by create and PATCH."""
    if "email" in body:
        try:
            validate_email(body["email"])
        except (ValidationError, TypeError):
            raise _invalid("email", _("is not an e-mail address.")) from None
        values["email"] = body["email"]
    if "phone" in body:
        values["phone"] = _ecom_phone(body["phone"])
    if "is_recurrent" in body:
        if not isinstance(body["is_recurrent"], bool):
            raise _invalid("is_recurrent", _("must be true or false."))
        values["is_recurrent"] = body["is_recurrent"]
    if "send_receipt_through" in body:
        if body["send_receipt_through"] not in meta.RECEIPT_CHANNELS:
            raise _invalid("send_receipt_through", _("must be email, sms or nothing."))
        values["send_receipt_through"] = body["send_receipt_through"]
    if "recurrent_schedule" in body:
        try:
            values["recurrent_schedule"] = meta.schedule(
                body["recurrent_schedule"], "recurrent_schedule"
            )
        except InvalidInput as exc:
            raise _invalid(exc.field, exc.message) from None
    if "expire_date" in body:
        try:
            datetime.strptime(str(body["expire_date"]), "%Y-%m-%d %H:%M:%S")
        except ValueError:
            raise _invalid("expire_date", _("must be YYYY-MM-DD HH:MM:SS.")) from None
        values["expire_date"] = body["expire_date"]


def _invoice_object(payment: EmulatedPayment) -> dict[str, Any]:
    """The invoice as GET shows it (SEED-003's example, plus §11.2 fields)."""
    data = payment.data
    result: dict[str, Any] = {
        "name": payment.description,
        "email": payment.customer_email or None,
        "phone": int(data["phone"]) if data.get("phone") else None,
        "is_recurrent": bool(data.get("is_recurrent", False)),
        "send_receipt_through": data.get("send_receipt_through", "email"),
        "id": payment.external_id,
        "service_id": data["service_id"],
        "short_id": data["short_id"],
        "order_id": payment.order_id,
        "status": payment.status,
        "amount": data["amount"],
        "currency_code": payment.currency,
        "recurrent_url": data.get("recurrent_url", "https://life-pay.ru"),
        "form_link": data["form_link"],
        "url_success": payment.return_url or None,
        "url_error": data.get("url_error") or None,
    }
    for key in ("split_data", "recurrent_schedule", "comment", "expire_date"):
        if key in data:
            result[key] = data[key]
    return result


def _ecom_response(payment: EmulatedPayment, status: int = 200) -> HttpResponse:
    body = meta.dumps(_invoice_object(payment))
    return HttpResponse(body, status=status, content_type="application/json")


@emulator.endpoint("auth", methods=("POST",), auth=False)
def ecom_auth(request: HttpRequest) -> HttpResponse:
    body = _json(request)
    service = emulator.service(body.get("service_id"))
    key = body.get("api_key")
    if (
        service is None
        or not isinstance(key, str)
        or not service.get("api_key")
        or not constant_time_equals(key, service["api_key"])
    ):
        raise ecom_error(401, "unauthorized", _("Unknown service_id or api_key."))
    return JsonResponse(
        {
            "jwt": emulator.issue_jwt(int(service["service_id"])),
            "lp_public": LP_PUBLIC,
        }
    )


@emulator.endpoint("create", methods=("POST",), auth=False)
def ecom_create(request: HttpRequest) -> HttpResponse:
    claims = emulator.token_claims(request)
    body = _json(request)
    for name in body:
        if name not in ECOM_CREATE_FIELDS:
            raise _invalid(name, _("is not a field of an invoice."))
    service_id = body.get("service_id", claims.get("service_id"))
    if service_id != claims.get("service_id"):
        # the token belongs to another service.
        raise ecom_error(498, "invalid_token", _("The token is not for this service."))
    service = emulator.service(service_id)
    if service is None:
        raise _invalid("service_id", _("is not a known service."))
    values: dict[str, Any] = {
        "order_id": _ecom_text(body, "order_id", 64, 1),
        "name": _ecom_text(body, "name", 128, 1),
        "amount": _ecom_amount(body.get("amount")),
    }
    currency = body.get("currency_code", "RUB")
    if currency not in ("RUB", "EUR", "USD"):
        raise _invalid("currency_code", _("must be RUB, EUR or USD."))
    if "comment" in body:
        values["comment"] = _ecom_text(body, "comment", 512, 1)
    for name in ("url_success", "url_error"):
        if name in body:
            values[name] = _ecom_text(body, name, 255, 1)
    _ecom_common(body, values)
    if values.get("recurrent_schedule") and not values.get("is_recurrent"):
        raise _invalid("recurrent_schedule", _("needs is_recurrent."))
    if "split_data" in body:
        lines = body["split_data"]
        if not isinstance(lines, list) or not lines:
            raise _invalid("split_data", _("must be a non-empty list."))
        total = Decimal(0)
        for index, line in enumerate(lines):
            at = f"split_data[{index}]"
            if not isinstance(line, dict) or set(line) - {
                "order_id",
                "amount",
                "comment",
                "merchant_id",
            }:
                raise _invalid(at, _("has unknown fields."))
            _ecom_text(line, "order_id", 64, 1)
            _ecom_text(line, "merchant_id", 64, 1)
            if "comment" in line:
                _ecom_text(line, "comment", 64)
            total += _ecom_amount(line.get("amount"), f"{at}.amount", Decimal("0.01"))
        if total > values["amount"]:
            raise _invalid("split_data", _("adds up to more than the invoice amount."))
        values["split_data"] = json.loads(meta.dumps(lines))
    invoice_id = str(uuid.uuid4())
    now = clock.now()
    expires = now + timedelta(seconds=int(emulator.config["invoice_lifetime"]))
    if values.get("expire_date"):
        expires = datetime.strptime(values["expire_date"], "%Y-%m-%d %H:%M:%S").replace(
            tzinfo=MOSCOW
        )
    form_link = emulator.absolute_url(request, "ecom_pay", invoice_id)
    data = {
        key: value
        for key, value in values.items()
        if key not in ("order_id", "name", "amount", "email", "url_success")
    }
    payment = EmulatedPayment.objects.create(
        slug=emulator.slug,
        external_id=invoice_id,
        status=I_OPEN,
        amount=values["amount"],
        currency=currency,
        order_id=values["order_id"],
        description=values["name"],
        customer_email=values.get("email", ""),
        return_url=values.get("url_success", "") or service["success_url"],
        webhook_url=str(service.get("webhook_url") or ""),
        created_at=now,
        expires_at=expires,
        data={
            **data,
            "kind": ECOM,
            "service_id": service["service_id"],
            "partner_id": service["partner_id"],
            "short_id": emulator.next_number("short_id", FIRST_SHORT_ID),
            # the amount echoed as received (213 stays 213).
            "amount": json.loads(meta.dumps(body["amount"])),
            "form_link": form_link,
            "paybacks": [],
        },
    )
    return _ecom_response(payment, status=201)


@emulator.endpoint("invoice", methods=("GET", "PATCH"), auth=False)
def ecom_invoice(request: HttpRequest, invoice_id: str) -> HttpResponse:
    claims = emulator.token_claims(request)
    payment = emulator.payment(ECOM, invoice_id)
    if payment is None:
        raise ecom_error(404, "not_found", _("No such invoice."))
    if str(payment.data.get("service_id")) != str(claims.get("service_id")) or (
        claims.get("invoice_id") not in (None, invoice_id)
    ):
        raise ecom_error(498, "invalid_token", _("The token is not for this invoice."))
    payment = emulator.expire_if_due(payment)
    if request.method == "GET":
        return _ecom_response(payment)
    body = _json(request, empty=True)
    for name in body:
        if name not in ECOM_PATCH_FIELDS:
            raise _invalid(name, _("cannot be changed."))
    values: dict[str, Any] = {}
    if "name" in body:
        values["name"] = _ecom_text(body, "name", 128, 1)
    _ecom_common(body, values)
    with transaction.atomic():
        locked = emulator.lock(payment)
        data = dict(locked.data)
        consent = values.get("is_recurrent", data.get("is_recurrent", False))
        if "recurrent_schedule" in values and not consent:
            # §11.4: only for invoices with the payer's consent.
            raise _invalid("recurrent_schedule", _("needs is_recurrent."))
        if "name" in values:
            locked.description = values.pop("name")
        if "email" in values:
            locked.customer_email = values.pop("email")
        data.update(values)
        locked.data = data
        locked.save(update_fields=["description", "customer_email", "data"])
    # §11.4: the answer to a successful PATCH is empty.
    return HttpResponse(status=200)


def _hold_answer(
    status: str, decline_code: str | None = None, message: str = ""
) -> HttpResponse:
    # §9 (LP-UNBLOCK): status charged|voided|error, decline_code, message and
    # info. ASSUMPTION L-7: HTTP 200 for all three; info (undocumented) null.
    return JsonResponse(
        {
            "status": status,
            "decline_code": decline_code,
            "message": message,
            "info": None,
        }
    )


@emulator.endpoint("blocked", methods=("PATCH", "DELETE"), auth=False)
def ecom_blocked(request: HttpRequest, service_id: str, charge_id: str) -> HttpResponse:
    """§9: ``PATCH`` charges the hold ``charge_id`` (a ``tid``, L-6), ``DELETE``
    voids it; the optional ``amount`` must be the whole hold (partial
    operations are not emulated)."""
    claims = emulator.token_claims(request)
    if str(claims.get("service_id")) != service_id:
        # the token belongs to another service.
        raise ecom_error(498, "invalid_token", _("The token is not for this service."))
    body = _json(request, empty=True)
    for name in body:
        if name != "amount":
            raise _invalid(name, _("is not a field of this request."))
    amount = (
        _ecom_amount(body["amount"], "amount", Decimal("0.01"))
        if "amount" in body
        else None
    )
    charge = request.method == "PATCH"
    with transaction.atomic():
        payment = (
            EmulatedPayment.objects.select_for_update()
            .filter(
                slug=emulator.slug,
                data__kind=ECOM,
                data__tid=charge_id,
                data__service_id=claims.get("service_id"),
            )
            .first()
        )
        if payment is None:
            raise ecom_error(404, "not_found", _("No such charge."))
        if claims.get("invoice_id") not in (None, payment.external_id):
            raise ecom_error(
                498, "invalid_token", _("The token is not for this invoice.")
            )
        if payment.status != I_BLOCKED:
            return _hold_answer(
                "error", "operation_declined", _("No funds are held for this charge.")
            )
        if amount is not None and amount != payment.amount:
            return _hold_answer(
                "error", "operation_declined", _("Partial amounts are not emulated.")
            )
        emulator.end_hold(payment, "charge" if charge else "unblock", "ecom")
    return _hold_answer("charged" if charge else "voided")


@emulator.endpoint("pay_page", methods=("GET", "POST"), auth=False, csrf=True)
def ecom_pay(request: HttpRequest, invoice_id: str) -> HttpResponse:
    payment = emulator.payment(ECOM, invoice_id)
    if payment is None:
        raise Http404(_("No such invoice."))
    if payment.status == I_OPEN and request.method == "GET":
        # the customer opened the link.
        payment.status = I_PENDING
        payment.save(update_fields=["status"])
    return emulator.pay_page(request, emulator.expire_if_due(payment))


urlpatterns = [
    path("v1/auth", ecom_auth, name="ecom_auth"),
    path("v1/invoices", ecom_create, name="ecom_invoices"),
    # §11.2: the docs' text writes a trailing slash, the code does not.
    path("v1/invoices/", ecom_create),
    path("v1/invoices/<str:invoice_id>", ecom_invoice, name="ecom_invoice"),
    path("v1/invoices/<str:invoice_id>/", ecom_invoice),
    path(
        "v1/services/<str:service_id>/charges/<str:charge_id>/blocked",
        ecom_blocked,
        name="ecom_blocked",
    ),
    path("pay/<str:invoice_id>/", ecom_pay, name="ecom_pay"),
]
