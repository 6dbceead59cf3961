"""The Life-Pay emulator: A1Lite ("alba") and ECOM, served under
``emulator/lifepay/`` (reference: ``lifepay.md``).

A1Lite (errors as ``{"status": "error", "code", "message"}`` with HTTP 200,
ASSUMPTION A-15):

* ``alba/input/`` (POST form, or GET): the pay form, v1.0 (``key``) or v2.0
  (``service_id``, ``version``, ``check`` over this URL, §4). Every field of
  §3.2 is checked; ``302`` to ``alba/pay/<tid>/``.
* ``alba/pay/<tid>/``: the hosted page with Pay (``success``), Decline
  (``cancel``) and Hold (``funds_blocked``); the customer then goes by GET to
  ``url_success``/``url_error`` with the notification's fields (§6.1).
* ``alba/details/``, ``alba/refund/``, ``alba/process_funds_blocked/``,
  ``alba/recurrent_change/``: signed v2.0 POSTs (§5).

ECOM (errors as ``{"status": <slug>, "message"}`` with 400/401/404/498,
ASSUMPTION A-11):

* ``v1/auth``: ``{"service_id", "api_key"}`` -> ``{"jwt", "lp_public"}``; the
  JWT (HS512, ``exp`` in header and payload as a float, A-9) lives
  ``jwt_lifetime`` seconds of the emulator clock.
* ``v1/invoices`` (POST), ``v1/invoices/<id>`` (GET, PATCH; empty body on
  success), ``pay/<id>/`` the invoice's ``form_link`` (A-13).
* ``v1/services/<service_id>/charges/<tid>/blocked``: ``PATCH`` charges a
  hold, ``DELETE`` voids it (§9; the charge id is the ``tid``, L-6); answers
  ``{"status": "charged"|"voided"|"error", "decline_code", "message",
  "info"}`` with HTTP 200 (L-7).

Both surfaces end a hold alike (A-13): a charge makes the transaction paid and
notifies ``success``; a void makes it ``error`` and notifies nothing (L-5).
Each charge or unblock is recorded in ``data["hold_operations"]``.

Notifications: form-encoded POSTs to the service's ``webhook_url`` with every
field of §6.2 (A-7), signed with the service's ``signature_version`` (v1.0 MD5
or v2.0 HMAC over the URL posted to, A-4), retried on A-6's schedule.

Settings, ``PAYMENTS_RU_EMULATOR["lifepay"]``: ``services`` (required: a list of
``{"service_id", "key", "secret_key", "signature_version", "webhook_url",
"api_key", "forced_signature", "success_url", "error_url", "partner_id"}``),
``fee_percent`` (``"2.5"``, A-1), ``jwt_secret``, ``jwt_lifetime`` (10800 s,
A-9), ``invoice_lifetime`` (86400 s, A-13) and the common emulator options.
Endpoint names for faults: ``input``, ``pay_page``, ``details``, ``refund``,
``funds``, ``recurrent``, ``auth``, ``create``, ``invoice``, ``blocked``.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Mapping
from datetime import datetime, timedelta
from decimal import Decimal, InvalidOperation
from typing import Any, ClassVar
from urllib.parse import urlencode, urlsplit

import jwt
from django.core.exceptions import ValidationError
from django.core.validators import validate_email
from django.db import IntegrityError, transaction
from django.http import Http404, HttpRequest, HttpResponse, JsonResponse
from django.urls import path
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy

from ...emulator import clock
from ...emulator.base import (
    DECLINE,
    HOLD,
    PAY,
    REQUIRED,
    Action,
    ActionRefused,
    Emulator,
    EmulatorError,
)
from ...emulator.models import EmulatedPayment, WebhookDelivery
from ...exceptions import InvalidInput
from ...money import format_amount
from ..signing import constant_time_equals
from . import metadata as meta
from .provider import MOSCOW
from .signature import sign_notification, sign_v2

#: lifepay.md §3.2 fields of the pay form (``x``/``y``: the seed's image button).
INPUT_FIELDS = frozenset(
    {
        "key",
        "service_id",
        "version",
        "check",
        "cost",
        "name",
        "email",
        "phone_number",
        "order_id",
        "comment",
        "invoice_data",
        "payment_type",
        "url_success",
        "url_error",
        "recurrent_type",
        "recurrent_comment",
        "recurrent_url",
        "recurrent_period",
        "recurrent_order_id",
        "default_email",
        "commission",
        "x",
        "y",
    }
)
ECOM_CREATE_FIELDS = frozenset(
    {
        "order_id",
        "amount",
        "currency_code",
        "service_id",
        "name",
        "comment",
        "email",
        "phone",
        "is_recurrent",
        "send_receipt_through",
        "split_data",
        "recurrent_schedule",
        "url_success",
        "url_error",
        "expire_date",
    }
)
# lifepay.md §11.4 (+ ``name``, which the seed's PATCH example sends, and
# ``expire_date`` from T-NOTES).
ECOM_PATCH_FIELDS = frozenset(
    {
        "email",
        "phone",
        "is_recurrent",
        "send_receipt_through",
        "recurrent_schedule",
        "name",
        "expire_date",
    }
)

A1LITE = "a1lite"
ECOM = "ecom"
# Transaction statuses (A-15; ``blocked`` for holds is ours, L-4).
OPEN, PAYED, ERROR, REFUNDED, BLOCKED = "open", "payed", "error", "refunded", "blocked"
# ECOM invoice statuses (§11.5).
I_OPEN, I_PENDING, I_SUCCESS, I_BLOCKED, I_ERROR = (
    "open",
    "pending",
    "success",
    "blocked",
    "error",
)
DECLINE_TEXT = "Otkaz bez ob'jasnenija prichin"  # §5: transliterated decline
LP_PUBLIC = "-----BEGIN PUBLIC KEY-----\nEMULATED\n-----END PUBLIC KEY-----"
FIRST_TID = 100000001
FIRST_SHORT_ID = 491883531


def _alba_error(code: str, message: str) -> EmulatorError:
    # alba answers every error with HTTP 200.
    return EmulatorError(200, code, message)


def _ecom_error(status: int, slug: str, message: str) -> EmulatorError:
    return EmulatorError(status, slug, message, surface=ECOM)


def _moscow(when: datetime) -> str:
    # YYYY-MM-DD HH:MM:SS, Moscow time.
    return when.astimezone(MOSCOW).strftime("%Y-%m-%d %H:%M:%S")


def _rubles(value: Decimal) -> str:
    return format_amount(value, "RUB")


class LifePayEmulator(Emulator):
    """The emulator of :class:`~django_payments_ru.providers.lifepay.Provider`."""

    slug = "lifepay"
    display_name = gettext_lazy("Life-Pay")
    options: ClassVar[dict[str, Any]] = {
        "services": REQUIRED,
        "fee_percent": "2.5",
        "jwt_secret": "lifepay-emulator-jwt-secret-" + "0" * 48,
        "jwt_lifetime": 3 * 3600,
        "invoice_lifetime": 24 * 3600,
    }
    idempotency_header = ""
    # +1, +3, +5, +10 min, then hourly; 10 attempts in all.
    webhook_schedule = (60, 180, 300, 600, 3600, 3600, 3600, 3600, 3600)
    webhook_timeout = 10.0

    def error_body(self, code: str, message: str, fields: dict[str, Any]) -> Any:
        if fields.pop("surface", None) == ECOM:
            return {"status": code, "message": message}
        return {"status": "error", "code": code, "message": message}

    # --- services -------------------------------------------------------------

    def services(self) -> list[dict[str, Any]]:
        services = self.config["services"]
        if not isinstance(services, list | tuple):
            raise EmulatorError(500, "common", "services must be a list")
        result = []
        for service in services:
            entry = {
                "signature_version": "2.0",
                "forced_signature": False,
                "key": "",
                "api_key": "",
                "success_url": "",
                "error_url": "",
                "partner_id": 1,
                **service,
            }
            result.append(entry)
        return result

    def service(self, service_id: Any) -> dict[str, Any] | None:
        for service in self.services():
            if str(service["service_id"]) == str(service_id):
                return service
        return None

    def service_by_key(self, key: str) -> dict[str, Any] | None:
        found = None
        for service in self.services():
            if service.get("key") and constant_time_equals(key, service["key"]):
                found = service
        return found

    def verify_signed(
        self, request: HttpRequest, fields: Mapping[str, str]
    ) -> dict[str, Any]:
        """The service of a v2.0-signed request, or an ``auth`` error (§4)."""
        if fields.get("version") != "2.0":
            raise _alba_error("auth", _("version must be 2.0."))
        service = self.service(fields.get("service_id", ""))
        given = fields.get("check", "")
        url = f"{request.scheme}://{request.get_host()}{request.path}"
        expected = (
            sign_v2(service["secret_key"], request.method or "POST", url, fields)
            if service is not None
            else ""
        )
        if service is None or not given or not constant_time_equals(given, expected):
            raise _alba_error("auth", "неверная подпись")  # §5 RFI-BG example
        return service

    # --- transactions -----------------------------------------------------------

    def next_number(self, key: str, first: int) -> int:
        numbers = [
            int(p.data.get(key, 0))
            for p in EmulatedPayment.objects.filter(slug=self.slug).only("data")
        ]
        return max([first - 1, *numbers]) + 1

    def transaction_by_tid(self, tid: str, *, lock: bool = False) -> EmulatedPayment:
        qs = EmulatedPayment.objects.filter(slug=self.slug, data__tid=str(tid))
        if lock:
            qs = qs.select_for_update()
        found = qs.first()
        if found is None:
            raise _alba_error("unknown", _("Transaction not found."))
        return found

    def notification(
        self, payment: EmulatedPayment, command: str, **extra: str
    ) -> dict[str, str]:
        """Every field of §6.2 (A-7), money per A-1, plus ``currency`` (A-17)."""
        data = payment.data
        cost = payment.amount
        paid = command in ("success", "process")
        fee = (cost * Decimal(str(self.config["fee_percent"])) / 100).quantize(
            Decimal("0.01")
        )
        income = _rubles(cost) if paid else "0.00"
        fields = {
            "tid": str(data.get("tid", "")),
            "name": payment.description,
            "comment": str(data.get("comment", "")),
            "partner_id": str(data.get("partner_id", "")),
            "service_id": str(data.get("service_id", "")),
            "order_id": payment.order_id,
            "type": str(data.get("payment_type") or "spg_test"),
            "cost": _rubles(cost),
            "income_total": income,
            "income": income,
            "partner_income": _rubles(cost - fee) if paid else "0.00",
            "system_income": income,
            "command": command,
            "phone_number": str(data.get("phone_number", "")),
            "email": payment.customer_email,
            "resultStr": "",
            "date_created": str(data.get("date_created", "")),
            "version": "",
            "currency": "RUB",
        }
        if data.get("kind") == ECOM:
            fields["invoice_id"] = payment.external_id
            fields["short_id"] = str(data.get("short_id", ""))
        if data.get("recurrent_order_id"):
            fields["recurrent_order_id"] = str(data["recurrent_order_id"])
        fields.update(extra)
        return fields

    def notify(
        self, payment: EmulatedPayment, fields: dict[str, str]
    ) -> tuple[dict[str, str], WebhookDelivery | None]:
        """Sign ``fields`` with the service's version and post them after the
        commit; returns the signed fields (also used for the GET redirect)."""
        service = self.service(payment.data.get("service_id"))
        if service is None:
            return fields, None
        version = str(service["signature_version"])
        fields = {**fields, "version": version}
        url = str(service.get("webhook_url") or "")
        fields["check"] = sign_notification(version, service["secret_key"], url, fields)
        if not url:
            return fields, None
        body = urlencode(fields).encode()
        delivery = self.send_webhook(
            payment,
            url,
            body,
            {"Content-Type": "application/x-www-form-urlencoded"},
            event_id=f"{fields['tid']}:{fields['command']}",
            event_type=fields["command"],
        )
        return fields, delivery

    def status_label(self, payment: EmulatedPayment) -> str:
        labels = {
            OPEN: _("Waiting for payment"),
            PAYED: _("Paid"),
            ERROR: _("Declined"),
            REFUNDED: _("Refunded"),
            BLOCKED: _("Funds held"),
            I_PENDING: _("Payment in progress"),
            I_SUCCESS: _("Paid"),
        }
        return str(labels.get(payment.status, payment.status))

    # --- the pay page --------------------------------------------------------------

    def pay_actions(self, payment: EmulatedPayment) -> list[Action]:
        if payment.status not in (OPEN, I_PENDING):
            return []
        return [PAY, DECLINE, HOLD]

    def perform_action(
        self, request: HttpRequest, payment: EmulatedPayment, action: str
    ) -> str | None:
        with transaction.atomic():
            locked = self.lock(payment)
            if locked.status not in (OPEN, I_PENDING):
                raise ActionRefused(_("This payment is no longer waiting for payment."))
            ecom = locked.data.get("kind") == ECOM
            now = clock.now()
            data = dict(locked.data)
            if not data.get("tid"):
                data["tid"] = str(self.next_number("tid", FIRST_TID))
                data["date_created"] = _moscow(now)
            if action == "pay":
                order = locked.order_id
                if order and order != "0" and self.paid_order_exists(locked):
                    # an order id is paid once.
                    raise ActionRefused(_("This order has already been paid."))
                locked.status = I_SUCCESS if ecom else PAYED
                command, extra = "success", {}
                if data.get("recurrent_type") == "first":
                    data["recurrent_order_id"] = str(data["tid"])
            elif action == "decline":
                locked.status = I_ERROR if ecom else ERROR
                command, extra = "cancel", {"resultStr": DECLINE_TEXT}
            else:
                locked.status = I_BLOCKED if ecom else BLOCKED
                command, extra = "funds_blocked", {}
            locked.data = data
            locked.save(update_fields=["status", "data"])
            fields, _delivery = self.notify(
                locked, self.notification(locked, command, **extra)
            )
        target = (
            locked.return_url
            if command != "cancel"
            else str(locked.data.get("url_error") or locked.return_url)
        )
        if not target:
            return None
        # §6.1: the customer comes back by GET with the notification's fields.
        separator = "&" if urlsplit(target).query else "?"
        return f"{target}{separator}{urlencode(fields)}"

    def lock(self, payment: EmulatedPayment) -> EmulatedPayment:
        return EmulatedPayment.objects.select_for_update().get(pk=payment.pk)

    def paid_order_exists(self, payment: EmulatedPayment) -> bool:
        return (
            EmulatedPayment.objects.filter(
                slug=self.slug,
                order_id=payment.order_id,
                status__in=(PAYED, REFUNDED, I_SUCCESS),
                data__service_id=payment.data.get("service_id"),
            )
            .exclude(pk=payment.pk)
            .exists()
        )

    def end_hold(self, payment: EmulatedPayment, action: str, api: str) -> None:
        """Charge (``action="charge"``) or unblock the hold of ``payment``, which
        the caller has locked and checked to be held. ``api`` (``alba`` or
        ``ecom``) is recorded with the operation."""
        ecom = payment.data.get("kind") == ECOM
        operations = [
            *payment.data.get("hold_operations", []),
            {"action": action, "api": api, "at": clock.now().isoformat()},
        ]
        payment.data = {**payment.data, "hold_operations": operations}
        if action == "charge":
            # blocked -> success; notified like a payment (A-5, §6.3).
            payment.status = I_SUCCESS if ecom else PAYED
            payment.save(update_fields=["status", "data"])
            self.notify(payment, self.notification(payment, "success"))
        else:
            # blocked -> error. L-5: a release sends no notification; the
            # answer confirms it.
            payment.status = I_ERROR if ecom else ERROR
            payment.data = {**payment.data, "released": True}
            payment.save(update_fields=["status", "data"])

    # --- JWT (A-9, A-10) ----------------------------------------------------------

    def issue_jwt(self, service_id: int) -> str:
        exp = clock.now().timestamp() + float(self.config["jwt_lifetime"])
        # Shaped like the seed's tokens: exp (a float) in header and payload.
        return jwt.encode(
            {"exp": exp, "invoice_id": None, "service_id": service_id},
            str(self.config["jwt_secret"]),
            algorithm="HS512",
            headers={"kid": "lifepay-emulator", "exp": exp},
        )

    def token_claims(self, request: HttpRequest) -> dict[str, Any]:
        scheme, _sep, token = request.headers.get("Authorization", "").partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            raise _ecom_error(401, "unauthorized", _("A bearer token is required."))
        try:
            claims = jwt.decode(
                token.strip(),
                str(self.config["jwt_secret"]),
                algorithms=["HS512"],
                # The expiry is checked against the emulator clock below.
                options={"verify_exp": False},
            )
        except jwt.PyJWTError:
            raise _ecom_error(
                401, "unauthorized", _("The token is not valid.")
            ) from None
        exp = claims.get("exp")
        if not isinstance(exp, int | float) or exp <= clock.now().timestamp():
            raise _ecom_error(401, "unauthorized", _("The token has expired."))
        return claims


emulator = LifePayEmulator()


# --- A1Lite -----------------------------------------------------------------------


def _form_fields(request: HttpRequest) -> dict[str, str]:
    source = request.POST if request.method == "POST" else request.GET
    fields: dict[str, str] = {}
    for name, values in source.lists():
        if len(values) != 1:
            raise _alba_error("common", _("%(field)s is repeated.") % {"field": name})
        fields[name] = values[0]
    return fields


def _cost(value: str, field: str = "cost") -> Decimal:
    # §3.2: rubles with a dot, 0-2 decimals.
    try:
        return meta.decimal(value, field)
    except InvalidInput as exc:
        raise _alba_error("common", exc.message) from None


def _check_url(value: str, field: str) -> str:
    try:
        return meta.url(value, field)
    except InvalidInput as exc:
        raise _alba_error("common", exc.message) from None


@emulator.endpoint("input", methods=("GET", "POST"), auth=False)
def alba_input(request: HttpRequest) -> HttpResponse:
    fields = _form_fields(request)
    for name in fields:
        if name not in INPUT_FIELDS:
            raise _alba_error("common", _("Unknown field %(field)s.") % {"field": name})
    if fields.get("version") == "2.0" or "check" in fields:
        service = emulator.verify_signed(request, fields)
        form_version = "2.0"
    else:
        keyed = emulator.service_by_key(fields.get("key", ""))
        if keyed is None:
            raise _alba_error("auth", _("Unknown service key."))
        service = keyed
        if service["forced_signature"]:
            # SEED-003: the provider enforces signed forms for this service.
            raise _alba_error("auth", _("This service accepts signed forms only."))
        form_version = "1.0"
    cost = _cost(fields.get("cost", ""))
    name = fields.get("name", "")
    if not 1 <= len(name) <= 128:
        raise _alba_error("common", _("name must have 1 to 128 characters."))
    email = fields.get("email", "")
    if email:
        try:
            validate_email(email)
        except ValidationError:
            raise _alba_error("common", _("email is not an e-mail address.")) from None
    phone = fields.get("phone_number", "")
    if phone and not phone.isdigit():
        raise _alba_error("common", _("phone_number must be digits."))
    order_id = fields.get("order_id", "0") or "0"
    if len(order_id) > 64:
        raise _alba_error("common", _("order_id is longer than 64 characters."))
    for name_ in ("url_success", "url_error"):
        if fields.get(name_):
            _check_url(fields[name_], name_)
    items = None
    if fields.get("invoice_data"):
        try:
            data = json.loads(fields["invoice_data"], parse_float=Decimal)
            if not isinstance(data, dict) or set(data) - {"items", "vat_total"}:
                raise ValueError
            items = meta.receipt_items({"receipt": data.get("items")}, cost)
        except (ValueError, InvalidOperation):
            raise _alba_error("common", _("invoice_data is not valid JSON.")) from None
        except InvalidInput as exc:
            raise _alba_error(
                "common", f"invoice_data: {exc.message}".replace("metadata.", "")
            ) from None
    recurrent = fields.get("recurrent_type", "")
    if recurrent not in ("", "first"):
        raise _alba_error(
            "common",
            _("recurrent_type must be 'first' ('next' needs background=1)."),
        )
    if recurrent == "first":
        # §8: consent text, offer URL, e-mail, order_id of 6-20 characters.
        if not fields.get("recurrent_comment"):
            raise _alba_error("common", _("recurrent_comment is required."))
        _check_url(fields.get("recurrent_url", ""), "recurrent_url")
        if not email:
            raise _alba_error("common", _("email is required for recurrent payments."))
        if not 6 <= len(order_id) <= 20:
            raise _alba_error("common", _("order_id must have 6 to 20 characters."))
    if (
        order_id != "0"
        and EmulatedPayment.objects.filter(
            slug=emulator.slug,
            order_id=order_id,
            status__in=(PAYED, REFUNDED),
            data__service_id=service["service_id"],
        ).exists()
    ):
        raise _alba_error("unique", _("This order has already been paid."))
    now = clock.now()
    for _attempt in range(5):
        tid = str(emulator.next_number("tid", FIRST_TID))
        try:
            with transaction.atomic():
                payment = EmulatedPayment.objects.create(
                    slug=emulator.slug,
                    external_id=tid,
                    status=OPEN,
                    amount=cost,
                    currency="RUB",
                    order_id=order_id,
                    description=name,
                    customer_email=email,
                    return_url=fields.get("url_success") or service["success_url"],
                    webhook_url=str(service.get("webhook_url") or ""),
                    created_at=now,
                    data={
                        "kind": A1LITE,
                        "tid": tid,
                        "date_created": _moscow(now),
                        "service_id": service["service_id"],
                        "partner_id": service["partner_id"],
                        "form_version": form_version,
                        "url_error": fields.get("url_error") or service["error_url"],
                        "phone_number": phone,
                        "comment": fields.get("comment", ""),
                        "payment_type": fields.get("payment_type", ""),
                        "receipt": json.loads(meta.dumps(items)) if items else None,
                        "recurrent_type": recurrent,
                        "paybacks": [],
                    },
                )
            break
        except IntegrityError:  # a concurrent form took the number
            continue
    else:  # pragma: no cover
        raise _alba_error("common", "busy")
    # 302 to the pay page.
    location = emulator.reverse("alba_pay", payment.external_id, request=request)
    return HttpResponse(status=302, headers={"Location": location})


def _pay_page(request: HttpRequest, payment: EmulatedPayment) -> HttpResponse:
    if payment.data.get("kind") == ECOM:
        payment = _expire_if_due(payment)
    return emulator.pay_page(request, payment)


@emulator.endpoint("pay_page", methods=("GET", "POST"), auth=False, csrf=True)
def alba_pay(request: HttpRequest, tid: str) -> HttpResponse:
    payment = EmulatedPayment.objects.filter(
        slug=emulator.slug, external_id=tid, data__kind=A1LITE
    ).first()
    if payment is None:
        raise Http404(_("No such payment."))
    return _pay_page(request, payment)


@emulator.endpoint("details", methods=("POST",), auth=False)
def alba_details(request: HttpRequest) -> HttpResponse:
    fields = _form_fields(request)
    service = emulator.verify_signed(request, fields)
    qs = EmulatedPayment.objects.filter(
        slug=emulator.slug, data__service_id=service["service_id"]
    ).filter(data__has_key="tid")
    if fields.get("tid"):
        qs = qs.filter(data__tid=fields["tid"])
    elif fields.get("order_id"):
        qs = qs.filter(order_id=fields["order_id"])
    else:
        raise _alba_error("common", _("tid or order_id is required."))
    payment = qs.order_by("-created_at", "-id").first()
    if payment is None:
        raise _alba_error("unknown", _("Transaction not found."))
    state = {
        I_OPEN: OPEN,
        I_PENDING: OPEN,
        I_SUCCESS: PAYED,
        I_BLOCKED: BLOCKED,
        I_ERROR: ERROR,
    }.get(payment.status, payment.status)
    return JsonResponse(
        {
            "status": "success",
            "tid": payment.data["tid"],
            "order_id": payment.order_id,
            "service_id": payment.data.get("service_id"),
            "cost": _rubles(payment.amount),
            "refunded": _rubles(payment.refunded_amount),
            "transaction_status": state,
        }
    )


@emulator.endpoint("refund", methods=("POST",), auth=False)
def alba_refund(request: HttpRequest) -> HttpResponse:
    fields = _form_fields(request)
    service = emulator.verify_signed(request, fields)
    allowed = {"tid", "amount", "reason", "test", "service_id", "version", "check"}
    for name in fields:
        if name not in allowed:
            raise _alba_error("common", _("Unknown field %(field)s.") % {"field": name})
    with transaction.atomic():
        payment = emulator.transaction_by_tid(fields.get("tid", ""), lock=True)
        if str(payment.data.get("service_id")) != str(service["service_id"]):
            raise _alba_error("unknown", _("Transaction not found."))
        if payment.status not in (PAYED, I_SUCCESS):
            raise _alba_error("common", _("Only a paid transaction can be refunded."))
        amount = (
            _cost(fields["amount"], "amount")
            if fields.get("amount")
            else payment.refundable_amount
        )
        if amount > payment.refundable_amount:
            raise _alba_error(
                "common",
                _("amount exceeds what is left to refund (%(left)s).")
                % {"left": _rubles(payment.refundable_amount)},
            )
        paybacks = list(payment.data.get("paybacks", []))
        payback_id = emulator.next_number("payback_seq", 5001)
        now = clock.now()
        paybacks.append(
            {"id": payback_id, "amount": _rubles(amount), "at": now.isoformat()}
        )
        payment.refunded_amount += amount
        if payment.refunded_amount == payment.amount:
            payment.status = REFUNDED
        payment.data = {**payment.data, "paybacks": paybacks, "payback_seq": payback_id}
        payment.save(update_fields=["refunded_amount", "status", "data"])
        fields_out = emulator.notification(
            payment,
            "refund",
            # A-16 (+ L-2: the refund's own time and id identify it).
            income=_rubles(amount),
            system_income=_rubles(amount),
            partner_income=_rubles(amount),
            income_total=_rubles(payment.amount),
            date_created=_moscow(now),
            result="ok",
            payback_id=str(payback_id),
        )
        emulator.notify(payment, fields_out)
    return JsonResponse({"status": "success", "payback_id": payback_id})


@emulator.endpoint("funds", methods=("POST",), auth=False)
def alba_process_funds_blocked(request: HttpRequest) -> HttpResponse:
    fields = _form_fields(request)
    service = emulator.verify_signed(request, fields)
    action = fields.get("action", "")
    if action not in ("charge", "unblock"):
        raise _alba_error("common", _("action must be charge or unblock."))
    with transaction.atomic():
        payment = emulator.transaction_by_tid(fields.get("tid", ""), lock=True)
        if str(payment.data.get("service_id")) != str(service["service_id"]):
            raise _alba_error("unknown", _("Transaction not found."))
        if payment.status not in (BLOCKED, I_BLOCKED):
            raise _alba_error("common", _("No funds are held for this transaction."))
        amount = fields.get("amount")
        if action == "charge" and amount and _cost(amount, "amount") != payment.amount:
            raise _alba_error("common", _("Partial charges are not emulated."))
        emulator.end_hold(payment, action, "alba")
    return JsonResponse({"status": "success", "tid": payment.data["tid"]})


@emulator.endpoint("recurrent", methods=("POST",), auth=False)
def alba_recurrent_change(request: HttpRequest) -> HttpResponse:
    fields = _form_fields(request)
    service = emulator.verify_signed(request, fields)
    if fields.get("operation") != "cancel":
        raise _alba_error("common", _("operation must be cancel."))
    with transaction.atomic():
        payment = (
            EmulatedPayment.objects.select_for_update()
            .filter(
                slug=emulator.slug,
                data__recurrent_order_id=fields.get("order_id", ""),
                data__service_id=service["service_id"],
            )
            .first()
        )
        if payment is None:
            raise _alba_error("unknown", _("No such recurrent payment."))
        if payment.data.get("recurrent_cancelled"):
            raise _alba_error(
                "common", _("The recurrent payment is already cancelled.")
            )
        payment.data = {**payment.data, "recurrent_cancelled": True}
        payment.save(update_fields=["data"])
        emulator.notify(payment, emulator.notification(payment, "recurrent_cancel"))
    return JsonResponse({"status": "success"})


# --- ECOM -------------------------------------------------------------------------


def _json(request: HttpRequest, *, empty: bool = False) -> dict[str, Any]:
    if empty and not request.body.strip():
        return {}
    try:
        data = json.loads(request.body, parse_float=Decimal)
    except ValueError:
        data = None
    if not isinstance(data, dict):
        raise _ecom_error(400, "bad_request", _("The body must be a JSON object."))
    return data


def _invalid(field: str, message: str) -> EmulatorError:
    return _ecom_error(400, "invalid_parameter_value", f"{field}: {message}")


def _ecom_text(
    body: Mapping[str, Any], field: str, longest: int, shortest: int = 0
) -> str:
    value = body.get(field)
    if not isinstance(value, str) or not shortest <= len(value) <= longest:
        raise _invalid(
            field,
            _("must be a string of %(min)d to %(max)d characters.")
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


def _expire_if_due(payment: EmulatedPayment) -> EmulatedPayment:
    # an unpaid invoice past expire_date becomes error.
    if payment.status in (I_OPEN, I_PENDING) and payment.is_expired_at(clock.now()):
        with transaction.atomic():
            locked = emulator.lock(payment)
            if locked.status in (I_OPEN, I_PENDING):
                locked.status = I_ERROR
                locked.save(update_fields=["status"])
            return locked
    return payment


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
        raise _ecom_error(401, "unauthorized", _("Unknown service_id or api_key."))
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
        raise _ecom_error(498, "invalid_token", _("The token is not for this service."))
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
    payment = EmulatedPayment.objects.filter(
        slug=emulator.slug, external_id=invoice_id, data__kind=ECOM
    ).first()
    if payment is None:
        raise _ecom_error(404, "not_found", _("No such invoice."))
    if str(payment.data.get("service_id")) != str(claims.get("service_id")) or (
        claims.get("invoice_id") not in (None, invoice_id)
    ):
        raise _ecom_error(498, "invalid_token", _("The token is not for this invoice."))
    payment = _expire_if_due(payment)
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
        raise _ecom_error(498, "invalid_token", _("The token is not for this service."))
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
            raise _ecom_error(404, "not_found", _("No such charge."))
        if claims.get("invoice_id") not in (None, payment.external_id):
            raise _ecom_error(
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
    payment = EmulatedPayment.objects.filter(
        slug=emulator.slug, external_id=invoice_id, data__kind=ECOM
    ).first()
    if payment is None:
        raise Http404(_("No such invoice."))
    if payment.status == I_OPEN and request.method == "GET":
        # the customer opened the link.
        payment.status = I_PENDING
        payment.save(update_fields=["status"])
    return _pay_page(request, payment)


urlpatterns = [
    path("alba/input/", alba_input, name="alba_input"),
    path("alba/pay/<str:tid>/", alba_pay, name="alba_pay"),
    path("alba/details/", alba_details, name="alba_details"),
    path("alba/refund/", alba_refund, name="alba_refund"),
    path(
        "alba/process_funds_blocked/",
        alba_process_funds_blocked,
        name="alba_process_funds_blocked",
    ),
    path("alba/recurrent_change/", alba_recurrent_change, name="alba_recurrent_change"),
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
