"""The sandbox emulator's API as the client sees it: authentication, strict
validation, idempotency, states, faults and rate limits, over HTTP."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import pytest
import requests

from django_payments_ru import services
from django_payments_ru.emulator import clock
from django_payments_ru.emulator.faults import inject_fault
from django_payments_ru.emulator.models import (
    EmulatedFault,
    EmulatedIdempotencyKey,
    EmulatedPayment,
)
from django_payments_ru.exceptions import (
    ProviderAPIError,
    ProviderAuthError,
    ProviderRateLimited,
    ProviderUnavailable,
)
from django_payments_ru.status import InvoiceStatus
from tests.emulator_cases import EmulatorCase

API_KEY = "sk_sandbox_test_canary_4f1c"


def create_body(**changes: Any) -> dict[str, Any]:
    body = {
        "amount": "100.00",
        "currency": "RUB",
        "description": "Order 1",
        "reference": "3f1c2a8e-0000-4000-8000-000000000001",
        "order_id": "1",
        "customer_email": "",
        "return_url": "http://shop.example/return/",
        "webhook_url": "http://shop.example/webhooks/",
    }
    for name, value in changes.items():
        if value is ...:
            body.pop(name)
        else:
            body[name] = value
    return body


class TestSandboxApi(EmulatorCase):
    alias = "sandbox"

    def call(self, method: str, path: str, *, key: str = "", **kwargs: Any) -> Any:
        """A call through the provider's own HTTP client."""
        provider = self.provider
        return provider.http.request(
            method, path, headers=provider._headers(key), idempotent=True, **kwargs
        )

    def raw(
        self, method: str, path: str, *, auth: bool = True, **kwargs: Any
    ) -> requests.Response:
        headers = kwargs.pop("headers", {})
        if auth:
            headers.setdefault("Authorization", f"Bearer {API_KEY}")
        return requests.request(
            method, self.emulator_url(path), headers=headers, timeout=30, **kwargs
        )

    # --- authentication -----------------------------------------------------

    def test_a_wrong_api_key_is_refused(self):
        self.set_provider_options(api_key="sk_wrong")
        invoice = self.create_invoice()

        with pytest.raises(ProviderAuthError) as caught:
            services.start_payment(invoice)

        assert (caught.value.status, caught.value.code) == (401, "invalid_api_key")
        assert "sk_wrong" not in str(caught.value)
        assert not EmulatedPayment.objects.exists()
        invoice.refresh_from_db()
        assert invoice.status == InvoiceStatus.CREATED

    @pytest.mark.parametrize(
        "header", [None, "Basic abc", f"Bearer{API_KEY}", "Bearer ", f"Token {API_KEY}"]
    )
    def test_no_bearer_key_is_refused(self, header):
        headers = {"Authorization": header} if header else {}
        response = self.raw(
            "POST", "api/payments", auth=False, headers=headers, json=create_body()
        )
        assert response.status_code == 401
        assert response.json()["error"]["code"] == "invalid_api_key"

    def test_any_configured_key_is_accepted(self):
        self.set_emulator(api_keys=["sk_old", API_KEY])
        assert self.call("POST", "api/payments", json=create_body())["id"]

    # --- validation ---------------------------------------------------------

    @pytest.mark.parametrize(
        ("changes", "field"),
        [
            ({"amount": "10.001"}, "amount"),
            ({"amount": "0"}, "amount"),
            ({"amount": "0.00"}, "amount"),
            ({"amount": "-5.00"}, "amount"),
            ({"amount": 100}, "amount"),
            ({"amount": 100.5}, "amount"),
            ({"amount": "1e3"}, "amount"),
            ({"amount": "ten"}, "amount"),
            ({"amount": ""}, "amount"),
            ({"amount": ...}, "amount"),
            ({"currency": "JPY"}, "currency"),
            ({"currency": "rub"}, "currency"),
            ({"currency": ...}, "currency"),
            ({"reference": ...}, "reference"),
            ({"reference": " "}, "reference"),
            ({"reference": "x" * 256}, "reference"),
            ({"description": 12}, "description"),
            ({"order_id": None}, "order_id"),
            ({"customer_email": "not-an-address"}, "customer_email"),
            ({"return_url": "ftp://shop.example/"}, "return_url"),
            ({"webhook_url": "/payments/webhooks/sandbox/"}, "webhook_url"),
            ({"metadata": {}}, "metadata"),
        ],
    )
    def test_strict_validation(self, changes, field):
        with pytest.raises(ProviderAPIError) as caught:
            self.call("POST", "api/payments", json=create_body(**changes))

        error = caught.value
        assert (error.status, error.code) == (400, "invalid_request")
        assert error.details["field"] == field
        assert field in error.provider_message
        assert not EmulatedPayment.objects.exists()

    @pytest.mark.parametrize("body", [b"[]", b"not json", b"", b"null"])
    def test_the_body_must_be_a_json_object(self, body):
        response = self.raw(
            "POST",
            "api/payments",
            data=body,
            headers={"Content-Type": "application/json"},
        )
        assert response.status_code == 400
        assert response.json()["error"]["code"] == "invalid_request"

    @pytest.mark.parametrize(
        ("amount", "currency", "shown"),
        [
            ("10.5", "USD", "10.50"),
            ("7", "EUR", "7.00"),
            ("0.01", "RUB", "0.01"),
            ("999999999999.99", "RUB", "999999999999.99"),
        ],
    )
    def test_valid_amounts(self, amount, currency, shown):
        payment = self.call(
            "POST", "api/payments", json=create_body(amount=amount, currency=currency)
        )
        assert (payment["amount"], payment["currency"]) == (shown, currency)
        assert payment["refunded_amount"] == f"0.{'0' * len(shown.split('.')[1])}"
        assert EmulatedPayment.objects.get().amount == Decimal(shown)

    def test_the_payment_object(self):
        payment = self.call("POST", "api/payments", json=create_body())

        assert set(payment) == {
            "id",
            "status",
            "amount",
            "currency",
            "reference",
            "refunded_amount",
            "payment_url",
            "expires_at",
            "failure_reason",
        }
        assert payment["id"].startswith("pay_") and len(payment["id"]) == 20
        assert payment["status"] == "pending"
        assert payment["payment_url"] == self.emulator_url(f"pay/{payment['id']}/")
        assert payment["failure_reason"] is None
        assert datetime.fromisoformat(payment["expires_at"]).tzinfo is not None
        assert self.call("GET", f"api/payments/{payment['id']}") == payment

    def test_unknown_payment(self):
        with pytest.raises(ProviderAPIError) as caught:
            self.call("GET", "api/payments/pay_0000000000000000")
        assert (caught.value.status, caught.value.code) == (404, "not_found")

    def test_wrong_method(self):
        response = self.raw("GET", "api/payments")
        assert response.status_code == 405
        assert response.headers["Allow"] == "POST"
        assert response.json()["error"]["code"] == "method_not_allowed"

    # --- refunds and cancel -------------------------------------------------

    def paid_payment(self, amount: str = "100.00") -> dict[str, Any]:
        payment = self.call("POST", "api/payments", json=create_body(amount=amount))
        EmulatedPayment.objects.filter(external_id=payment["id"]).update(
            status="succeeded"
        )
        return payment

    def test_refunds_add_up_to_the_amount(self):
        payment = self.paid_payment("100.00")
        path = f"api/payments/{payment['id']}/refunds"

        first = self.call("POST", path, json={"amount": "40.00"})
        assert first["id"].startswith("re_")
        assert first["amount"] == "40.00"
        assert (first["payment"]["status"], first["payment"]["refunded_amount"]) == (
            "succeeded",
            "40.00",
        )

        with pytest.raises(ProviderAPIError) as caught:
            self.call("POST", path, json={"amount": "60.01"})
        assert (caught.value.code, caught.value.details["field"]) == (
            "invalid_request",
            "amount",
        )

        last = self.call("POST", path, json={"amount": "60.00"})
        assert (last["payment"]["status"], last["payment"]["refunded_amount"]) == (
            "refunded",
            "100.00",
        )

        with pytest.raises(ProviderAPIError) as caught:
            self.call("POST", path, json={"amount": "0.01"})
        assert (caught.value.status, caught.value.code) == (409, "invalid_state")

    @pytest.mark.parametrize(
        ("body", "field"),
        [
            ({"amount": "1.001"}, "amount"),
            ({"amount": 5}, "amount"),
            ({}, "amount"),
            ({"amount": "1.00", "reason": "x"}, "reason"),
        ],
    )
    def test_refund_validation(self, body, field):
        payment = self.paid_payment()
        with pytest.raises(ProviderAPIError) as caught:
            self.call("POST", f"api/payments/{payment['id']}/refunds", json=body)
        assert (caught.value.code, caught.value.details["field"]) == (
            "invalid_request",
            field,
        )

    def test_only_a_succeeded_payment_is_refunded(self):
        payment = self.call("POST", "api/payments", json=create_body())
        with pytest.raises(ProviderAPIError) as caught:
            self.call(
                "POST", f"api/payments/{payment['id']}/refunds", json={"amount": "1.00"}
            )
        assert (caught.value.status, caught.value.code) == (409, "invalid_state")

    def test_only_a_pending_payment_is_cancelled(self):
        pending = self.call("POST", "api/payments", json=create_body())
        cancelled = self.call("POST", f"api/payments/{pending['id']}/cancel")
        assert cancelled["status"] == "cancelled"

        for payment in (cancelled, self.paid_payment()):
            with pytest.raises(ProviderAPIError) as caught:
                self.call("POST", f"api/payments/{payment['id']}/cancel")
            assert (caught.value.status, caught.value.code) == (409, "invalid_state")

    # --- idempotency --------------------------------------------------------

    def test_a_create_repeated_with_its_key_creates_one_payment(self):
        first = self.raw(
            "POST",
            "api/payments",
            json=create_body(),
            headers={"Idempotency-Key": "k-1"},
        )
        # The same fields in another order are the same request.
        reordered = dict(reversed(list(create_body().items())))
        again = self.raw(
            "POST", "api/payments", json=reordered, headers={"Idempotency-Key": "k-1"}
        )

        assert (first.status_code, again.status_code) == (201, 201)
        assert again.json() == first.json()
        assert again.headers["Idempotent-Replayed"] == "true"
        assert "Idempotent-Replayed" not in first.headers
        assert EmulatedPayment.objects.count() == 1

        other = self.raw(
            "POST",
            "api/payments",
            json=create_body(),
            headers={"Idempotency-Key": "k-2"},
        )
        assert other.json()["id"] != first.json()["id"]
        assert EmulatedPayment.objects.count() == 2

    def test_a_key_reused_with_another_body_conflicts(self):
        self.call("POST", "api/payments", key="k-1", json=create_body())
        with pytest.raises(ProviderAPIError) as caught:
            self.call(
                "POST", "api/payments", key="k-1", json=create_body(amount="100.01")
            )
        assert (caught.value.status, caught.value.code) == (409, "idempotency_conflict")
        assert EmulatedPayment.objects.count() == 1

    def test_an_error_answer_is_kept_for_its_key(self):
        bad = create_body(amount="1.001")
        for _attempt in range(2):
            with pytest.raises(ProviderAPIError):
                self.call("POST", "api/payments", key="k-bad", json=bad)
        assert EmulatedIdempotencyKey.objects.get(key="k-bad").response_status == 400

    def test_a_key_expires(self, monkeypatch):
        self.set_emulator(idempotency_ttl=60)
        first = self.call("POST", "api/payments", key="k-1", json=create_body())
        later = clock.now() + timedelta(seconds=61)
        monkeypatch.setattr(clock, "now", lambda: later)
        second = self.call("POST", "api/payments", key="k-1", json=create_body())
        assert second["id"] != first["id"]

    def test_a_too_long_key_is_refused(self):
        response = self.raw(
            "POST",
            "api/payments",
            json=create_body(),
            headers={"Idempotency-Key": "k" * 256},
        )
        assert response.status_code == 400
        assert response.json()["error"]["field"] == "Idempotency-Key"

    def test_a_lost_answer_is_replayed_to_the_client_retry(self):
        # The emulator creates the payment, then the answer is lost (500):
        # the client retries with the same key and gets the first answer.
        self.set_emulator(faults={"create": {"status": 500, "after": True, "times": 1}})
        invoice = self.create_invoice()

        checkout = services.start_payment(invoice)

        assert EmulatedPayment.objects.count() == 1
        assert checkout.payment_id == EmulatedPayment.objects.get().external_id
        invoice.refresh_from_db()
        assert invoice.status == InvoiceStatus.PENDING

    def test_a_timed_out_create_is_retried_into_the_same_payment(self):
        # The first try takes longer than the client waits; its retry carries
        # the same key, so one payment exists whichever finishes first.
        config = dict(self._settings.PAYMENTS_RU, HTTP_TIMEOUT=(5.0, 0.5))
        self._settings.PAYMENTS_RU = config
        inject_fault("sandbox", "create", status=None, delay=1.5, times=1)
        invoice = self.create_invoice()

        checkout = services.start_payment(invoice)

        time.sleep(1.5)  # let the slow first try finish
        assert EmulatedFault.objects.get().remaining == 0
        assert EmulatedPayment.objects.count() == 1
        assert checkout.payment_id == EmulatedPayment.objects.get().external_id

    # --- faults -------------------------------------------------------------

    def test_a_fault_from_the_settings_hits_the_next_calls(self):
        self.set_emulator(faults={"create": {"status": 503, "times": 2}})
        answers = [
            self.raw("POST", "api/payments", json=create_body())
            for _attempt in range(3)
        ]
        assert [a.status_code for a in answers] == [503, 503, 201]
        assert answers[0].json()["error"]["code"] == "emulated_fault"

    def test_the_client_retries_through_a_passing_fault(self):
        self.set_emulator(faults={"get": {"status": 502, "times": 1}})
        payment = self.call("POST", "api/payments", json=create_body())
        assert (
            self.call("GET", f"api/payments/{payment['id']}")["id"] == (payment["id"])
        )

    def test_a_lasting_fault_makes_the_provider_unavailable(self):
        self.set_emulator(faults={"*": {"status": 500}})
        with pytest.raises(ProviderUnavailable) as caught:
            self.call("GET", "api/payments/pay_0000000000000000")
        assert (caught.value.status, caught.value.code) == (500, "emulated_fault")

    def test_an_injected_fault(self, monkeypatch):
        waited = []
        monkeypatch.setattr(clock, "sleep", waited.append)
        fault = inject_fault("sandbox", "get", status=503, times=1, delay=2.5)
        payment = self.call("POST", "api/payments", json=create_body())

        first = self.raw("GET", f"api/payments/{payment['id']}")
        second = self.raw("GET", f"api/payments/{payment['id']}")

        assert (first.status_code, second.status_code) == (503, 200)
        assert waited == [2.5]
        fault.refresh_from_db()
        assert fault.remaining == 0
        assert EmulatedFault.objects.count() == 1

    def test_a_delay_only(self, monkeypatch):
        waited = []
        monkeypatch.setattr(clock, "sleep", waited.append)
        self.set_emulator(faults={"create": {"delay": 0.25}})
        assert self.raw("POST", "api/payments", json=create_body()).status_code == 201
        assert self.raw("POST", "api/payments", json=create_body()).status_code == 201
        assert waited == [0.25, 0.25]

    # --- rate limits --------------------------------------------------------

    def test_rate_limit(self, monkeypatch):
        start = datetime(2026, 1, 15, 10, 30, 0, tzinfo=UTC)
        monkeypatch.setattr(clock, "now", lambda: start)
        self.set_emulator(rate_limits=[[2, 60]])

        payment = self.call("POST", "api/payments", json=create_body())
        self.call("GET", f"api/payments/{payment['id']}")
        response = self.raw("GET", f"api/payments/{payment['id']}")

        assert response.status_code == 429
        assert response.headers["Retry-After"] == "60"
        assert response.json()["error"]["code"] == "rate_limit_exceeded"
        with pytest.raises(ProviderRateLimited) as caught:
            self.call("GET", f"api/payments/{payment['id']}")
        assert caught.value.retry_after == 60

        # The next window lets calls through again.
        monkeypatch.setattr(clock, "now", lambda: start.replace(minute=31))
        assert self.call("GET", f"api/payments/{payment['id']}")["id"]
