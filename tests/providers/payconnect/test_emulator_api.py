"""The PayConnect emulator, strictly per payconnect.md §3, over raw HTTP."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
import requests

from django_payments_ru.emulator import clock

from .cases import SECRET, PayConnectCase

BODY = {
    "amount": 1000,
    "currency": "RUB",
    "description": "Оплата заказа #12345",
    "customer": {"email": "customer@example.com"},
}


class TestEmulatorApi(PayConnectCase):
    def api(self, method: str, path: str, token: str | None = None, **kw: Any):
        headers = kw.pop("headers", {})
        if token:
            headers["Authorization"] = f"Bearer {token}"
        return requests.request(
            method, self.emulator_url(f"v1/{path}"), headers=headers, timeout=30, **kw
        )

    def token(self, scope: str | None = "payments.write payments.read") -> str:
        body = {} if scope is None else {"scope": scope}
        response = self.api("POST", "auth/token", SECRET, json=body)
        assert response.status_code == 200, response.text
        data = response.json()
        assert (data["token_type"], data["expires_in"]) == ("Bearer", 86400)
        assert data["access_token"].startswith("pct_")
        assert len(data["access_token"]) >= 40
        assert data["expires_at"].endswith("Z")
        return data["access_token"]

    def error(self, response: requests.Response, status: int, code: str) -> dict:
        assert response.status_code == status, response.text
        error = response.json()["error"]
        assert error["code"] == code
        assert error["docs_url"] == f"https://docs.payconnect.com/errors#{code}"
        assert error["message"]
        return error

    def test_tokens_keys_and_scopes(self):
        assert self.token(None)  # both scopes by default
        self.error(
            self.api("POST", "auth/token", "sk_test_nope"), 401, "invalid_api_key"
        )
        self.error(
            self.api("POST", "auth/token", SECRET, json={"scope": "payments.admin"}),
            400,
            "invalid_scope",
        )
        # The secret key is not an access token.
        self.error(self.api("GET", "payments", SECRET), 401, "invalid_token")
        self.error(self.api("GET", "payments", "pct_forged.abc"), 401, "invalid_token")
        reader = self.token("payments.read")
        self.error(
            self.api("POST", "payments", reader, json=BODY), 403, "insufficient_scope"
        )
        assert self.api("GET", "payments", reader).status_code == 200

    def test_a_token_expires_after_24_hours(self, monkeypatch):
        token = self.token()
        later = clock.now() + timedelta(hours=24)
        monkeypatch.setattr(clock, "now", lambda: later)
        self.error(self.api("GET", "payments", token), 401, "token_expired")

    @pytest.mark.parametrize(
        ("change", "code", "param"),
        [
            ({"amount": 0}, "invalid_amount", "amount"),
            ({"amount": -5}, "invalid_amount", "amount"),
            ({"amount": "1000"}, "invalid_amount", "amount"),
            ({"amount": 10.5}, "invalid_amount", "amount"),
            ({"amount": 20_000_001}, "amount_too_large", "amount"),
            ({"currency": "USD"}, "unsupported_currency", "currency"),
            ({"currency": "rub"}, "unsupported_currency", "currency"),
            ({"customer": {}}, "invalid_customer", "customer.email"),
            ({"customer": {"email": "nope"}}, "invalid_customer", "customer.email"),
            ({"customer": None}, "invalid_customer", "customer"),
            (
                {"customer": {"email": "a@b.ru", "phone": "8999"}},
                "invalid_customer",
                "customer.phone",
            ),
            ({"description": "x" * 256}, "invalid_request", "description"),
            ({"return_url": "http://shop.example/"}, "invalid_request", "return_url"),
            ({"metadata": {"a": 1}}, "invalid_request", "metadata"),
            ({"extra": 1}, "invalid_request", "extra"),
        ],
    )
    def test_create_is_strict(self, change, code, param):
        body = {**BODY, **change}
        error = self.error(
            self.api("POST", "payments", self.token(), json=body), 400, code
        )
        assert error["param"] == param

    def test_the_documented_error_message(self):
        error = self.error(
            self.api("POST", "payments", self.token(), json={**BODY, "amount": 0}),
            400,
            "invalid_amount",
        )
        assert error["message"] == "Amount must be greater than 0"

    def test_idempotency(self):
        token = self.token()
        key = {"Idempotency-Key": "order-1"}
        first = self.api("POST", "payments", token, json=BODY, headers=dict(key))
        again = self.api("POST", "payments", token, json=BODY, headers=dict(key))
        assert first.status_code == again.status_code == 201
        assert first.json()["id"] == again.json()["id"]
        other = self.api(
            "POST", "payments", token, json={**BODY, "amount": 2000}, headers=dict(key)
        )
        self.error(other, 409, "idempotency_conflict")
        long = self.api(
            "POST", "payments", token, json=BODY, headers={"Idempotency-Key": "k" * 65}
        )
        self.error(long, 400, "invalid_request")

    def test_payment_object_get_list_and_refunds(self):
        token = self.token()
        created = self.api("POST", "payments", token, json=BODY).json()
        assert set(created) == {
            "id", "object", "status", "amount", "currency", "description",
            "customer", "payment_url", "return_url", "metadata", "refunded_amount",
            "failure_code", "failure_message", "livemode", "created_at",
            "expires_at", "paid_at",
        }  # fmt: skip
        assert (created["object"], created["status"], created["livemode"]) == (
            "payment",
            "pending",
            False,
        )
        pid = created["id"]
        assert self.api("GET", f"payments/{pid}", token).json() == created
        self.error(
            self.api("GET", "payments/pay_nope", token), 404, "resource_not_found"
        )
        second = self.api("POST", "payments", token, json=BODY).json()
        listed = self.api("GET", "payments?limit=1", token).json()
        assert (listed["object"], listed["has_more"]) == ("list", True)
        assert [p["id"] for p in listed["data"]] == [second["id"]]
        rest = self.api("GET", f"payments?starting_after={second['id']}", token).json()
        assert [p["id"] for p in rest["data"]] == [pid]
        self.error(self.api("GET", "payments?limit=101", token), 400, "invalid_request")

        self.error(
            self.api("POST", f"payments/{pid}/refunds", token, json={}),
            409,
            "payment_not_refundable",
        )
        page = self.open_pay_page(created["payment_url"])
        self.press(page, "pay", follow=False)
        self.error(
            self.api("POST", f"payments/{pid}/refunds", token, json={"amount": 1001}),
            400,
            "refund_amount_invalid",
        )
        refund = self.api(
            "POST",
            f"payments/{pid}/refunds",
            token,
            json={"amount": 400, "reason": "x"},
        )
        assert refund.status_code == 201
        assert refund.json()["object"] == "refund"
        assert refund.json()["id"].startswith("re_")
        rest_refund = self.api("POST", f"payments/{pid}/refunds", token, json={})
        assert rest_refund.json()["amount"] == 600  # the remaining amount
        payment = self.api("GET", f"payments/{pid}", token).json()
        assert (payment["status"], payment["refunded_amount"]) == ("refunded", 1000)

    def test_the_sliding_rate_limit(self, monkeypatch):
        self.set_emulator(requests_per_minute=3)
        now = clock.now()
        monkeypatch.setattr(clock, "now", lambda: now)
        token = self.token()
        self.api("GET", "payments", token)
        self.api("GET", "payments", token)
        limited = self.api("GET", "payments", token)
        self.error(limited, 429, "rate_limit_exceeded")
        assert limited.headers["Retry-After"] == "60"
        later = now + timedelta(seconds=59)
        monkeypatch.setattr(clock, "now", lambda: later)
        assert self.api("GET", "payments", token).headers["Retry-After"] == "1"
        latest = now + timedelta(seconds=60)
        monkeypatch.setattr(clock, "now", lambda: latest)
        assert self.api("GET", "payments", token).status_code == 200

    def test_the_rate_limit_counts_every_api_call_but_not_the_pay_page(
        self, monkeypatch
    ):
        # §3.9: per address over every endpoint, refused calls included;
        # the shared limiter counts it apart from the common rate_limits.
        self.set_emulator(requests_per_minute=3, rate_limits=[[100, 60]])
        now = clock.now()
        monkeypatch.setattr(clock, "now", lambda: now)
        self.error(self.api("GET", "payments", "pct_forged.abc"), 401, "invalid_token")
        token = self.token()
        pid = self.api("POST", "payments", token, json=BODY).json()["id"]
        for _ in range(3):
            page = requests.get(self.emulator_url(f"pay/s/{pid}/"), timeout=30)
            assert page.status_code == 200
        limited = self.api("GET", "payments", token)
        error = self.error(limited, 429, "rate_limit_exceeded")
        assert error["message"].startswith("Too many requests: at most 3 per minute")
        assert limited.headers["Retry-After"] == "60"
        self.set_emulator(requests_per_minute=None)
        assert self.api("GET", "payments", token).status_code == 200

    def test_fault_injection(self):
        self.set_emulator(faults={"get": {"status": 500, "times": 1}})
        token = self.token()
        pid = self.api("POST", "payments", token, json=BODY).json()["id"]
        self.error(self.api("GET", f"payments/{pid}", token), 500, "internal_error")
        assert self.api("GET", f"payments/{pid}", token).status_code == 200
