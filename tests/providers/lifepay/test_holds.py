"""Holds on both Life-Pay surfaces (lifepay.md §9), through the emulator over
HTTP. A hold captured, released, or released by cancelling the invoice is the
flow contract's (:class:`tests.contracts.flows.FlowContract`, run by
test_flows.py); here is what only Life-Pay has: no partial capture, a capture
it refuses, ECOM's charge id from the notification, and the emulator's hold
endpoints themselves (auth, wrong state, answer shapes)."""

from __future__ import annotations

from typing import Any, ClassVar

import pytest
import requests

from django_payments_ru import services
from django_payments_ru.emulator.models import EmulatedPayment
from django_payments_ru.exceptions import (
    InvalidInput,
    InvalidOperation,
    ProviderAPIError,
)
from django_payments_ru.models import Invoice
from django_payments_ru.providers.lifepay.emulator import emulator
from django_payments_ru.providers.lifepay.signature import sign_v2
from django_payments_ru.status import InvoiceStatus

from .conftest import SECRET, SERVICES, emulator_services
from .test_flows import LifePayCase


class HoldCases(LifePayCase):
    """The same hold story for every surface that can produce a hold."""

    #: The provider code of a capture Life-Pay refuses.
    refused_code: ClassVar[str] = ""
    #: The API the emulator records for the surface's hold operations.
    api: ClassVar[str] = ""

    def emulated_hold(self, invoice: Invoice) -> EmulatedPayment:
        raise NotImplementedError

    def operations(self, invoice: Invoice) -> list[str]:
        """The charge/unblock calls the emulator received for the hold."""
        ops = self.emulated_hold(invoice).data.get("hold_operations", [])
        assert all(op["api"] == self.api for op in ops), ops
        return [op["action"] for op in ops]

    def held(self) -> Invoice:
        invoice = self.create_invoice(amount="100.00")
        self.pay(invoice, "hold")
        self.assert_invoice(invoice, InvoiceStatus.ON_HOLD, charges=0)
        assert self.emulated_hold(invoice).status == "blocked"
        return invoice

    def test_partial_capture_is_refused_before_any_call(self):
        invoice = self.held()

        with pytest.raises(InvalidInput) as caught:
            services.capture_invoice(invoice, "40.00")

        assert caught.value.field == "amount"
        self.assert_invoice(invoice, InvoiceStatus.ON_HOLD, charges=0)
        assert self.emulated_hold(invoice).status == "blocked"
        assert self.operations(invoice) == []

    def test_a_capture_life_pay_refuses_leaves_the_hold(self):
        invoice = self.held()
        # The hold ended at Life-Pay behind our back (e.g. it lapsed, §9).
        EmulatedPayment.objects.filter(pk=self.emulated_hold(invoice).pk).update(
            status="error"
        )

        with pytest.raises(ProviderAPIError) as caught:
            services.capture_invoice(invoice)

        assert caught.value.code == self.refused_code
        assert caught.value.provider == self.alias
        self.assert_invoice(invoice, InvoiceStatus.ON_HOLD, charges=0)


class TestA1LiteHold(HoldCases):
    alias = "lifepay"
    refused_code = "common"
    api = "alba"

    def emulated_hold(self, invoice: Invoice) -> EmulatedPayment:
        return self.transaction(invoice)

    def funds(self, **fields: str) -> dict[str, Any]:
        url = self.emulator_url("alba/process_funds_blocked/")
        fields = {"service_id": str(SERVICES["lifepay"]), "version": "2.0", **fields}
        fields["check"] = sign_v2(SECRET, "POST", url, fields)
        answer = requests.post(url, data=fields, timeout=10)
        assert answer.status_code == 200  # errors too
        return dict(answer.json())

    def test_emulator_endpoint_needs_a_signature(self):
        invoice = self.held()
        tid = invoice.provider_payment_id
        answer = requests.post(
            self.emulator_url("alba/process_funds_blocked/"),
            data={
                "tid": tid,
                "action": "charge",
                "service_id": str(SERVICES["lifepay"]),
                "version": "2.0",
                "check": "forged",
            },
            timeout=10,
        )
        assert answer.json() == {
            "status": "error",
            "code": "auth",
            "message": "неверная подпись",
        }
        assert self.transaction(invoice).status == "blocked"

    def test_emulator_refuses_a_hold_that_ended(self):
        invoice = self.held()
        tid = invoice.provider_payment_id
        assert self.funds(tid=tid, action="unblock") == {
            "status": "success",
            "tid": tid,
        }
        again = self.funds(tid=tid, action="charge")
        assert (again["status"], again["code"]) == ("error", "common")
        assert self.operations(invoice) == ["unblock"]


class TestEcomHold(HoldCases):
    alias = "lifepay_ecom"
    refused_code = "operation_declined"  # a §9 decline_code
    api = "ecom"

    def emulated_hold(self, invoice: Invoice) -> EmulatedPayment:
        return self.emulated(invoice)

    def test_capture_uses_the_notifications_tid(self):
        invoice = self.held()
        [delivery] = self.deliveries()
        assert f"tid={self.emulated(invoice).data['tid']}" in delivery.body

        services.capture_invoice(invoice)

        self.assert_invoice(invoice, InvoiceStatus.PAID, charges=1)
        # The invoice as Life-Pay shows it (A-13: blocked -> success).
        assert self.provider.get_invoice(invoice.provider_payment_id)["status"] == (
            "success"
        )
        payment = invoice.payments.get()
        assert payment.provider_payment_id == invoice.provider_payment_id

    def test_a_hold_known_only_by_a_poll_waits_for_its_notification(self):
        # ASSUMPTION L-6: the charge id comes from the funds_blocked notification.
        config = emulator_services(self.live_url)
        for service in config:
            if service["service_id"] == SERVICES["lifepay_ecom"]:
                service["webhook_url"] = ""
        self.set_emulator(services=config)
        invoice = self.create_invoice()
        self.pay(invoice, "hold")
        assert services.refresh_invoice(invoice).status == InvoiceStatus.ON_HOLD

        with pytest.raises(InvalidOperation):
            services.capture_invoice(invoice)
        with pytest.raises(InvalidOperation):
            services.release_invoice(invoice)

        self.assert_invoice(invoice, InvoiceStatus.ON_HOLD)
        assert self.emulated(invoice).status == "blocked"
        assert self.operations(invoice) == []

    # --- the emulator's endpoint, called directly ---------------------------------

    def blocked_url(self, tid: str, service: int | None = None) -> str:
        service_id = SERVICES["lifepay_ecom"] if service is None else service
        return self.emulator_url(f"v1/services/{service_id}/charges/{tid}/blocked")

    def call(
        self, method: str, url: str, token: str | None = None, **kwargs: Any
    ) -> requests.Response:
        headers = {"Content-Type": "application/json"}
        if token is not None:
            headers["Authorization"] = f"Bearer {token}"
        return requests.request(method, url, headers=headers, timeout=10, **kwargs)

    def test_emulator_endpoint_needs_a_token_of_the_service(self):
        invoice = self.held()
        url = self.blocked_url(self.emulated(invoice).data["tid"])
        missing = self.call("PATCH", url)
        assert missing.status_code == 401
        assert missing.json()["status"] == "unauthorized"
        other = self.call("DELETE", url, emulator.issue_jwt(SERVICES["lifepay"]))
        assert other.status_code == 498
        assert other.json()["status"] == "invalid_token"
        assert self.emulated(invoice).status == "blocked"
        assert self.operations(invoice) == []

    def test_emulator_endpoint_answers(self):
        invoice = self.held()
        tid = self.emulated(invoice).data["tid"]
        token = self.provider.tokens.get()
        url = self.blocked_url(tid)

        assert self.call("GET", url, token).status_code == 405
        unknown = self.call("PATCH", self.blocked_url("999999999"), token)
        assert (unknown.status_code, unknown.json()["status"]) == (404, "not_found")
        extra = self.call("PATCH", url, token, json={"reason": "x"})
        assert extra.status_code == 400
        assert extra.json()["status"] == "invalid_parameter_value"
        partial = self.call("PATCH", url, token, json={"amount": 40})
        assert partial.status_code == 200
        assert partial.json()["status"] == "error"
        assert self.emulated(invoice).status == "blocked"

        voided = self.call("DELETE", url, token, json={"amount": 100})
        assert voided.status_code == 200
        assert voided.json() == {
            "status": "voided",
            "decline_code": None,
            "message": "",
            "info": None,
        }
        # Wrong state: the hold has ended; §9's error shape, with HTTP 200 (L-7).
        for method in ("PATCH", "DELETE"):
            refused = self.call(method, url, token)
            assert refused.status_code == 200
            body = refused.json()
            assert set(body) == {"status", "decline_code", "message", "info"}
            assert (body["status"], body["decline_code"]) == (
                "error",
                "operation_declined",
            )
            assert body["message"]
        assert self.operations(invoice) == ["unblock"]
        assert self.emulated(invoice).status == "error"
