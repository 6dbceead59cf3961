"""The Life-Pay emulator itself: its settings and services, the hosted pay page
both surfaces share (A-13), the end of a hold, notifications and the ECOM JWT.

The endpoints are in :mod:`.a1lite` and :mod:`.ecom`; the one instance is
:data:`emulator`.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, ClassVar
from urllib.parse import urlencode, urlsplit

import jwt
from django.http import HttpRequest
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy

from ....emulator import clock
from ....emulator.base import (
    DECLINE,
    HOLD,
    PAY,
    REQUIRED,
    Action,
    ActionRefused,
    Emulator,
    EmulatorError,
)
from ....emulator.models import EmulatedPayment, WebhookDelivery
from ...signing import constant_time_equals
from . import notifications
from .common import (
    A1LITE,
    BLOCKED,
    DECLINE_TEXT,
    ECOM,
    ERROR,
    FIRST_TID,
    I_ERROR,
    I_PENDING,
    I_SUCCESS,
    OPEN,
    OUTCOMES,
    PAYED,
    REFUNDED,
    ecom_error,
    moscow,
)

if TYPE_CHECKING:
    from django.utils.functional import _StrOrPromise


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
    # I_OPEN is OPEN: an alba transaction or an ECOM invoice not yet paid.
    pending_statuses: ClassVar[frozenset[str]] = frozenset({OPEN, I_PENDING})
    pending_actions: ClassVar[tuple[Action, ...]] = (PAY, DECLINE, HOLD)
    # Over the base's labels: REFUNDED keeps its "Refunded", while "pending"
    # (I_PENDING, an invoice being paid) reads "Payment in progress".
    status_labels: ClassVar[Mapping[str, _StrOrPromise]] = {
        **Emulator.status_labels,
        OPEN: gettext_lazy("Waiting for payment"),
        PAYED: gettext_lazy("Paid"),
        ERROR: gettext_lazy("Declined"),
        BLOCKED: gettext_lazy("Funds held"),
        I_PENDING: gettext_lazy("Payment in progress"),
        I_SUCCESS: gettext_lazy("Paid"),
    }

    def pay_page_context(self, payment: EmulatedPayment) -> dict[str, Any]:
        # The invoice_data items (§10) the customer pays for, under the shared
        # page's names; read from the string as it arrived (checked then), so
        # that 340.00 shows as 340.00.
        raw = payment.data.get("invoice_data") or ""
        items = json.loads(raw, parse_float=str, parse_int=str)["items"] if raw else []
        lines = [
            {
                "name": item["name"],
                "quantity": item["quantity"],
                "price": item["price"],
                "amount": item["sum"],
                "vat": item["vat_mode"],
            }
            for item in items
        ]
        return {**super().pay_page_context(payment), "receipt_lines": lines}

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

    # --- transactions -----------------------------------------------------------

    def next_number(self, key: str, first: int) -> int:
        numbers = [
            int(p.data.get(key, 0))
            for p in EmulatedPayment.objects.filter(slug=self.slug).only("data")
        ]
        return max([first - 1, *numbers]) + 1

    def payment(self, kind: str, external_id: str) -> EmulatedPayment | None:
        """The emulated payment of ``kind`` (an alba ``tid``, an ECOM invoice
        id), or ``None``."""
        return EmulatedPayment.objects.filter(
            slug=self.slug, external_id=external_id, data__kind=kind
        ).first()

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

    def outcome(self, payment: EmulatedPayment, action: str) -> str:
        """The status ``payment`` takes when paid, declined or held."""
        return OUTCOMES[str(payment.data.get("kind", A1LITE))][action]

    # --- notifications (§6) -------------------------------------------------------

    def notification(
        self, payment: EmulatedPayment, command: str, **extra: str
    ) -> dict[str, str]:
        """The fields of ``payment``'s notification (:func:`.notifications.fields`)."""
        return notifications.fields(
            payment, command, fee_percent=self.config["fee_percent"], **extra
        )

    def notify(
        self, payment: EmulatedPayment, fields: dict[str, str]
    ) -> tuple[dict[str, str], WebhookDelivery | None]:
        """Sign ``fields`` with the service's version and post them after the
        commit; returns the signed fields (also used for the GET redirect)."""
        service = self.service(payment.data.get("service_id"))
        if service is None:
            return fields, None
        fields = notifications.signed(fields, service)
        url = str(service.get("webhook_url") or "")
        if not url:
            return fields, None
        delivery = self.send_webhook(
            payment,
            url,
            urlencode(fields).encode(),
            dict(notifications.HEADERS),
            event_id=f"{fields['tid']}:{fields['command']}",
            event_type=fields["command"],
        )
        return fields, delivery

    # --- the pay page (both surfaces) ---------------------------------------------

    def act(
        self, request: HttpRequest, payment: EmulatedPayment, action: str
    ) -> str | None:
        # The three buttons share the transaction number, the status change and
        # the notification; they differ in the outcome and the command.
        data = dict(payment.data)
        if not data.get("tid"):
            data["tid"] = str(self.next_number("tid", FIRST_TID))
            data["date_created"] = moscow(clock.now())
        if action == "pay":
            order = payment.order_id
            if order and order != "0" and self.paid_order_exists(payment):
                # an order id is paid once.
                raise ActionRefused(_("This order has already been paid."))
            command, extra = "success", {}
            if data.get("recurrent_type") == "first":
                data["recurrent_order_id"] = str(data["tid"])
        elif action == "decline":
            command, extra = "cancel", {"resultStr": DECLINE_TEXT}
        else:
            action, command, extra = "hold", "funds_blocked", {}
        payment.status = self.outcome(payment, action)
        payment.data = data
        payment.save(update_fields=["status", "data"])
        fields, _delivery = self.notify(
            payment, self.notification(payment, command, **extra)
        )
        target = (
            payment.return_url
            if command != "cancel"
            else str(payment.data.get("url_error") or payment.return_url)
        )
        if not target:
            return None
        # §6.1: the customer comes back by GET with the notification's fields.
        separator = "&" if urlsplit(target).query else "?"
        return f"{target}{separator}{urlencode(fields)}"

    def expire(self, payment: EmulatedPayment) -> None:
        # an unpaid invoice past expire_date becomes error.
        payment.status = I_ERROR
        payment.save(update_fields=["status"])

    def end_hold(self, payment: EmulatedPayment, action: str, api: str) -> None:
        """Charge (``action="charge"``) or unblock the hold of ``payment``, which
        the caller has locked and checked to be held. ``api`` (``alba`` or
        ``ecom``) is recorded with the operation."""
        operations = [
            *payment.data.get("hold_operations", []),
            {"action": action, "api": api, "at": clock.now().isoformat()},
        ]
        payment.data = {**payment.data, "hold_operations": operations}
        if action == "charge":
            # blocked -> success; notified like a payment (A-5, §6.3).
            payment.status = self.outcome(payment, "pay")
            payment.save(update_fields=["status", "data"])
            self.notify(payment, self.notification(payment, "success"))
        else:
            # blocked -> error. L-5: a release sends no notification; the
            # answer confirms it.
            payment.status = self.outcome(payment, "decline")
            payment.data = {**payment.data, "released": True}
            payment.save(update_fields=["status", "data"])

    # --- the ECOM JWT (A-9, A-10) ---------------------------------------------------

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
            raise ecom_error(401, "unauthorized", _("A bearer token is required."))
        try:
            claims = jwt.decode(
                token.strip(),
                str(self.config["jwt_secret"]),
                algorithms=["HS512"],
                # The expiry is checked against the emulator clock below.
                options={"verify_exp": False},
            )
        except jwt.PyJWTError:
            raise ecom_error(
                401, "unauthorized", _("The token is not valid.")
            ) from None
        exp = claims.get("exp")
        if not isinstance(exp, int | float) or exp <= clock.now().timestamp():
            raise ecom_error(401, "unauthorized", _("The token has expired."))
        return claims


emulator = LifePayEmulator()
