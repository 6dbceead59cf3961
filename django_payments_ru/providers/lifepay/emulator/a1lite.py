"""The emulator's A1Lite ("alba") endpoints (lifepay.md §3 to §5).

Errors are ``{"status": "error", "code", "message"}`` with HTTP 200
(ASSUMPTION A-15).

* ``alba/input/`` (POST form, or GET): the pay form, v1.0 (``key``) or v2.0
  (``service_id``, ``version``, ``check`` over this URL, §4). Every field of
  §3.2 is checked; ``302`` to ``alba/pay/<tid>/``.
* ``alba/pay/<tid>/``: the hosted page with Pay (``success``), Decline
  (``cancel``) and Hold (``funds_blocked``); the customer then goes by GET to
  ``url_success``/``url_error`` with the notification's fields (§6.1).
* ``alba/details/``, ``alba/refund/``, ``alba/process_funds_blocked/``,
  ``alba/recurrent_change/``: signed v2.0 POSTs (§5). ``details`` and the
  server calls also find ECOM invoices by their ``tid``: they are paid on the
  A1Lite pipeline (A-5).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from decimal import Decimal
from typing import Any

from django.core.exceptions import ValidationError
from django.core.validators import validate_email
from django.db import IntegrityError, transaction
from django.http import Http404, HttpRequest, HttpResponse, JsonResponse
from django.urls import path
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy

from ....emulator import clock
from ....emulator.models import EmulatedPayment
from ....exceptions import InvalidInput
from ...signing import constant_time_equals
from .. import metadata as meta
from ..signature import sign_v2
from . import invoice_data
from .common import (
    A1LITE,
    BLOCKED,
    DETAILS_STATES,
    FIRST_TID,
    I_BLOCKED,
    I_SUCCESS,
    INPUT_FIELDS,
    OPEN,
    PAYED,
    REFUNDED,
    alba_error,
    moscow,
    rubles,
)
from .service import emulator


def verify_signed(request: HttpRequest, fields: Mapping[str, str]) -> dict[str, Any]:
    """The service of a v2.0-signed request, or an ``auth`` error (§4)."""
    if fields.get("version") != "2.0":
        raise alba_error("auth", _("version must be 2.0."))
    service = emulator.service(fields.get("service_id", ""))
    given = fields.get("check", "")
    url = f"{request.scheme}://{request.get_host()}{request.path}"
    expected = (
        sign_v2(service["secret_key"], request.method or "POST", url, fields)
        if service is not None
        else ""
    )
    if service is None or not given or not constant_time_equals(given, expected):
        raise alba_error("auth", "неверная подпись")  # §5 RFI-BG example
    return service


#: What each server call needs of the transaction it names, and the refusal
#: otherwise (§5).
_NEEDS = {
    "refund": (
        (PAYED, I_SUCCESS),
        gettext_lazy("Only a paid transaction can be refunded."),
    ),
    "funds": (
        (BLOCKED, I_BLOCKED),
        gettext_lazy("No funds are held for this transaction."),
    ),
}


def locked_transaction(
    fields: Mapping[str, str], service: Mapping[str, Any], call: str
) -> EmulatedPayment:
    """The transaction ``fields["tid"]`` of ``service``, locked (call it in a
    transaction) and in a state the server ``call`` takes (:data:`_NEEDS`):
    else an ``unknown`` error when there is none (a tid of another service is
    none) or a ``common`` one with the refusal."""
    found = (
        EmulatedPayment.objects.select_for_update()
        .filter(slug=emulator.slug, data__tid=str(fields.get("tid", "")))
        .first()
    )
    if found is None or str(found.data.get("service_id")) != str(service["service_id"]):
        raise alba_error("unknown", _("Transaction not found."))
    statuses, refusal = _NEEDS[call]
    if found.status not in statuses:
        raise alba_error("common", str(refusal))
    return found


def _form_fields(request: HttpRequest) -> dict[str, str]:
    source = request.POST if request.method == "POST" else request.GET
    fields: dict[str, str] = {}
    for name, values in source.lists():
        if len(values) != 1:
            raise alba_error("common", _("%(field)s is repeated.") % {"field": name})
        fields[name] = values[0]
    return fields


def _cost(value: str, field: str = "cost") -> Decimal:
    # §3.2: rubles with a dot, 0-2 decimals.
    try:
        return meta.decimal(value, field)
    except InvalidInput as exc:
        raise alba_error("common", exc.message) from None


def _check_url(value: str, field: str) -> str:
    try:
        return meta.url(value, field)
    except InvalidInput as exc:
        raise alba_error("common", exc.message) from None


@emulator.endpoint("input", methods=("GET", "POST"), auth=False)
def alba_input(request: HttpRequest) -> HttpResponse:
    fields = _form_fields(request)
    for name in fields:
        if name not in INPUT_FIELDS:
            raise alba_error("common", _("Unknown field %(field)s.") % {"field": name})
    if fields.get("version") == "2.0" or "check" in fields:
        service = verify_signed(request, fields)
        form_version = "2.0"
    else:
        keyed = emulator.service_by_key(fields.get("key", ""))
        if keyed is None:
            raise alba_error("auth", _("Unknown service key."))
        service = keyed
        if service["forced_signature"]:
            # SEED-003: the provider enforces signed forms for this service.
            raise alba_error("auth", _("This service accepts signed forms only."))
        form_version = "1.0"
    cost = _cost(fields.get("cost", ""))
    name = fields.get("name", "")
    if not 1 <= len(name) <= 128:
        raise alba_error("common", _("name must have 1 to 128 characters."))
    email = fields.get("email", "")
    if email:
        try:
            validate_email(email)
        except ValidationError:
            raise alba_error("common", _("email is not an e-mail address.")) from None
    phone = fields.get("phone_number", "")
    if phone and not phone.isdigit():
        raise alba_error("common", _("phone_number must be digits."))
    order_id = fields.get("order_id", "0") or "0"
    if len(order_id) > 64:
        raise alba_error("common", _("order_id is longer than 64 characters."))
    for name_ in ("url_success", "url_error"):
        if fields.get(name_):
            _check_url(fields[name_], name_)
    items = None
    if fields.get("invoice_data"):
        # lifepay.md §10: the receipt's items, refused unless they add up.
        try:
            items = invoice_data.items(fields["invoice_data"], cost)
        except InvalidInput as exc:
            raise alba_error("common", exc.message) from None
    recurrent = fields.get("recurrent_type", "")
    if recurrent not in ("", "first"):
        raise alba_error(
            "common",
            _("recurrent_type must be 'first' ('next' needs background=1)."),
        )
    if recurrent == "first":
        # §8: consent text, offer URL, e-mail, order_id of 6-20 characters.
        if not fields.get("recurrent_comment"):
            raise alba_error("common", _("recurrent_comment is required."))
        _check_url(fields.get("recurrent_url", ""), "recurrent_url")
        if not email:
            raise alba_error("common", _("email is required for recurrent payments."))
        if not 6 <= len(order_id) <= 20:
            raise alba_error("common", _("order_id must have 6 to 20 characters."))
    if (
        order_id != "0"
        and EmulatedPayment.objects.filter(
            slug=emulator.slug,
            order_id=order_id,
            status__in=(PAYED, REFUNDED),
            data__service_id=service["service_id"],
        ).exists()
    ):
        raise alba_error("unique", _("This order has already been paid."))
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
                        "date_created": moscow(now),
                        "service_id": service["service_id"],
                        "partner_id": service["partner_id"],
                        "form_version": form_version,
                        "url_error": fields.get("url_error") or service["error_url"],
                        "phone_number": phone,
                        "comment": fields.get("comment", ""),
                        "payment_type": fields.get("payment_type", ""),
                        "receipt": json.loads(meta.dumps(items)) if items else None,
                        # As it arrived: what Life-Pay would print from.
                        "invoice_data": fields.get("invoice_data", ""),
                        "recurrent_type": recurrent,
                        "paybacks": [],
                    },
                )
            break
        except IntegrityError:  # a concurrent form took the number
            continue
    else:  # pragma: no cover
        raise alba_error("common", "busy")
    # 302 to the pay page.
    location = emulator.reverse("alba_pay", payment.external_id, request=request)
    return HttpResponse(status=302, headers={"Location": location})


@emulator.endpoint("pay_page", methods=("GET", "POST"), auth=False, csrf=True)
def alba_pay(request: HttpRequest, tid: str) -> HttpResponse:
    payment = emulator.payment(A1LITE, tid)
    if payment is None:
        raise Http404(_("No such payment."))
    return emulator.pay_page(request, payment)


@emulator.endpoint("details", methods=("POST",), auth=False)
def alba_details(request: HttpRequest) -> HttpResponse:
    fields = _form_fields(request)
    service = verify_signed(request, fields)
    qs = EmulatedPayment.objects.filter(
        slug=emulator.slug, data__service_id=service["service_id"]
    ).filter(data__has_key="tid")
    if fields.get("tid"):
        qs = qs.filter(data__tid=fields["tid"])
    elif fields.get("order_id"):
        qs = qs.filter(order_id=fields["order_id"])
    else:
        raise alba_error("common", _("tid or order_id is required."))
    payment = qs.order_by("-created_at", "-id").first()
    if payment is None:
        raise alba_error("unknown", _("Transaction not found."))
    state = DETAILS_STATES.get(payment.status, payment.status)
    return JsonResponse(
        {
            "status": "success",
            "tid": payment.data["tid"],
            "order_id": payment.order_id,
            "service_id": payment.data.get("service_id"),
            "cost": rubles(payment.amount),
            "refunded": rubles(payment.refunded_amount),
            "transaction_status": state,
        }
    )


@emulator.endpoint("refund", methods=("POST",), auth=False)
def alba_refund(request: HttpRequest) -> HttpResponse:
    fields = _form_fields(request)
    service = verify_signed(request, fields)
    allowed = {"tid", "amount", "reason", "test", "service_id", "version", "check"}
    for name in fields:
        if name not in allowed:
            raise alba_error("common", _("Unknown field %(field)s.") % {"field": name})
    with transaction.atomic():
        payment = locked_transaction(fields, service, "refund")
        amount = (
            _cost(fields["amount"], "amount")
            if fields.get("amount")
            else payment.refundable_amount
        )
        if amount > payment.refundable_amount:
            raise alba_error(
                "common",
                _("amount exceeds what is left to refund (%(left)s).")
                % {"left": rubles(payment.refundable_amount)},
            )
        paybacks = list(payment.data.get("paybacks", []))
        payback_id = emulator.next_number("payback_seq", 5001)
        now = clock.now()
        paybacks.append(
            {"id": payback_id, "amount": rubles(amount), "at": now.isoformat()}
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
            income=rubles(amount),
            system_income=rubles(amount),
            partner_income=rubles(amount),
            income_total=rubles(payment.amount),
            date_created=moscow(now),
            result="ok",
            payback_id=str(payback_id),
        )
        emulator.notify(payment, fields_out)
    return JsonResponse({"status": "success", "payback_id": payback_id})


@emulator.endpoint("funds", methods=("POST",), auth=False)
def alba_process_funds_blocked(request: HttpRequest) -> HttpResponse:
    fields = _form_fields(request)
    service = verify_signed(request, fields)
    action = fields.get("action", "")
    if action not in ("charge", "unblock"):
        raise alba_error("common", _("action must be charge or unblock."))
    with transaction.atomic():
        payment = locked_transaction(fields, service, "funds")
        amount = fields.get("amount")
        if action == "charge" and amount and _cost(amount, "amount") != payment.amount:
            raise alba_error("common", _("Partial charges are not emulated."))
        emulator.end_hold(payment, action, "alba")
    return JsonResponse({"status": "success", "tid": payment.data["tid"]})


@emulator.endpoint("recurrent", methods=("POST",), auth=False)
def alba_recurrent_change(request: HttpRequest) -> HttpResponse:
    fields = _form_fields(request)
    service = verify_signed(request, fields)
    if fields.get("operation") != "cancel":
        raise alba_error("common", _("operation must be cancel."))
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
            raise alba_error("unknown", _("No such recurrent payment."))
        if payment.data.get("recurrent_cancelled"):
            raise alba_error("common", _("The recurrent payment is already cancelled."))
        payment.data = {**payment.data, "recurrent_cancelled": True}
        payment.save(update_fields=["data"])
        emulator.notify(payment, emulator.notification(payment, "recurrent_cancel"))
    return JsonResponse({"status": "success"})


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
]
