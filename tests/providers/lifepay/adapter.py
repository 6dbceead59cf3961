"""How the contract tests drive the Life-Pay emulator (see
:mod:`tests.contracts.flows`), one adapter per alias:

==================  ==========================================================
``LIFEPAY``         A1Lite v2.0: a signed form, nothing registered at start,
                    refunds confirmed by notification (A-16), holds (§9)
``LIFEPAY_V1``      the same with signature 1.0 on the form
``LIFEPAY_ECOM``    ECOM: invoices API (JWT), holds, no refunds (§11.7)
==================  ==========================================================

The emulator's pay page has no "let expire" button and no session lifetime; a
released hold is not notified (L-5); nothing carries an idempotency key.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from django.db.models import QuerySet

from django_payments_ru.emulator.models import EmulatedPayment
from django_payments_ru.models import Invoice
from django_payments_ru.providers.lifepay.provider import lifepay_order_id
from tests.contracts.flows import Adapter, Route, nowhere

from .conftest import SERVICES, emulator_services, provider_options

if TYPE_CHECKING:
    from tests.contracts.flows import ContractCase

#: The emulator's name of a hold's end -> the contract's.
HOLD_ENDS = {"charge": "capture", "unblock": "release"}


@dataclass(frozen=True)
class LifePayAdapter(Adapter):
    #: The API the emulator records for the surface's hold operations.
    hold_api: str = ""

    def providers(self) -> dict[str, dict[str, Any]]:
        return {self.alias: provider_options()[self.alias]}

    def emulators(self, live_url: str) -> dict[str, dict[str, Any]]:
        return {self.slug: {"services": emulator_services(live_url)}}

    def payments(self, invoice: Invoice) -> QuerySet[EmulatedPayment]:
        # One emulator serves the three services: a payment is found by its
        # order id (L-1) within the alias's service.
        return EmulatedPayment.objects.filter(
            slug=self.slug,
            order_id=lifepay_order_id(invoice),
            data__service_id=SERVICES[self.alias],
        ).order_by("id")

    def holds_ended(self, invoice: Invoice) -> list[str]:
        operations = self.payment(invoice).data.get("hold_operations", [])
        assert all(op["api"] == self.hold_api for op in operations), operations
        return [HOLD_ENDS[op["action"]] for op in operations]

    def lose_webhooks(self, case: ContractCase) -> None:
        # A v2.0 notification is signed over the notification URL as
        # configured at Life-Pay: both sides name the same dead one, so
        # a held-back notification still verifies when it is delivered.
        dead = nowhere(self.alias)
        case.set_provider_options(webhook_url=dead)
        services = emulator_services(case.live_url)
        for service in services:
            if service["service_id"] == SERVICES[self.alias]:
                service["webhook_url"] = dead
        case.set_emulator(services=services)


_ALBA_FUNDS = Route("POST", r"^/emulator/lifepay/alba/process_funds_blocked/$", "funds")
_ECOM_BLOCKED = r"^/emulator/lifepay/v1/services/\d+/charges/[^/]+/blocked$"
_LACKS = {
    "expire": "expiry button on the emulated pay page",
    "session_expiry": "session lifetime on the emulated pay page",
}
_RECORDS = {"release": {"released": True}}
_HOLD_EVENTS = {
    "hold": "funds_blocked",
    "capture": "success",  # a charged hold is notified like a payment
    "release": "",  # L-5: an unblock is not notified
}


def _a1lite(alias: str) -> LifePayAdapter:
    return LifePayAdapter(
        alias=alias,
        slug="lifepay",
        routes={
            # A1Lite registers nothing at start: the browser posts the form.
            "refund": Route("POST", r"^/emulator/lifepay/alba/refund/$", "refund"),
            # Capture and release are one endpoint (action=charge|unblock);
            # the emulator's hold_operations tells them apart.
            "capture": _ALBA_FUNDS,
            "release": _ALBA_FUNDS,
        },
        unkeyed="A1Lite registers nothing at start",
        refunds_key="paybacks",
        actions=("pay", "decline", "hold"),
        statuses={
            "pending": "open",
            "paid": "payed",
            "failed": "error",
            "refunded": "refunded",
            "held": "blocked",
            "released": "error",
        },
        events={"pay": "success", "decline": "cancel", "refund": "refund"}
        | _HOLD_EVENTS,
        records=_RECORDS,
        lacks=_LACKS,
        hold_api="alba",
    )


LIFEPAY = _a1lite("lifepay")
LIFEPAY_V1 = _a1lite("lifepay_v1")
LIFEPAY_ECOM = LifePayAdapter(
    alias="lifepay_ecom",
    slug="lifepay",
    routes={
        "start": Route("POST", r"^/emulator/lifepay/v1/invoices/?$", "create"),
        "capture": Route("PATCH", _ECOM_BLOCKED, "blocked"),
        "release": Route("DELETE", _ECOM_BLOCKED, "blocked"),
    },
    unkeyed=(
        "Life-Pay ECOM takes no idempotency key and has no lookup by order_id "
        "(lifepay.md §11): a lost create cannot be found again "
        "(docs/providers/lifepay.rst, limitations)"
    ),
    refunds_key="paybacks",
    actions=("pay", "decline", "hold"),
    statuses={
        "pending": "pending",  # §11.5: the invoice's page was opened
        "paid": "success",
        "failed": "error",
        "held": "blocked",
        "released": "error",  # a voided hold leaves the invoice in error
    },
    events={"pay": "success", "decline": "cancel"} | _HOLD_EVENTS,
    records=_RECORDS,
    lacks=_LACKS,
    hold_api="ecom",
)
