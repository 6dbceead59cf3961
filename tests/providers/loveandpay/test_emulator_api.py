"""The Love&Pay emulator's API, strictly (loveandpay.md 13): the v2 check
order, the ±5 min window (A-1), the error shapes (A-2), validation of every
field, both limits with Retry-After (A-12), the list's paging (4.4), v1."""

from __future__ import annotations

import base64
import json
import struct
import time
from typing import Any

import pytest
import requests

from django_payments_ru.emulator import clock
from django_payments_ru.emulator.models import EmulatedPayment
from django_payments_ru.providers.loveandpay.auth import sign_request
from django_payments_ru.providers.loveandpay.emulator import emulator

from .cases import API_KEY, SECRET_KEY, LoveAndPayCase

GOOD = {
    "amount": 999.0,
    "currency": "RUB",
    "description": "Order 1001",
    "customer": {},
    "expiresInHours": 24,
}


class TestEmulatorApi(LoveAndPayCase):
    emulator_options = {"requests_per_minute": None, "requests_per_hour": None}

    def call(
        self,
        method: str,
        path: str,
        body: Any = None,
        *,
        key: str = API_KEY,
        secret: str = SECRET_KEY,
        stamp: int | None = None,
        offset: int = 0,
        sign_path: str | None = None,
        headers: dict[str, str] | None = None,
        params: dict[str, Any] | None = None,
    ) -> requests.Response:
        raw = b"" if body is None else json.dumps(body).encode()
        url = self.emulator_url(path)
        full = "/emulator/loveandpay/" + path
        now = int(clock.now().timestamp() * 1000)
        ts = str(stamp if stamp is not None else now + offset)
        sent = {
            "x-api-key": key,
            "x-timestamp": ts,
            "x-signature": sign_request(secret, method, sign_path or full, ts, raw),
            "Content-Type": "application/json",
        }
        sent.update(headers or {})
        sent = {k: v for k, v in sent.items() if v is not None}
        return requests.request(
            method, url, data=raw, headers=sent, params=params, timeout=30
        )

    def code(self, answer: requests.Response) -> tuple[int, str]:
        return answer.status_code, answer.json()["error"]["code"]

    def test_a_signed_create_and_get(self):
        created = self.call("POST", "api/v2/invoices", GOOD)
        assert created.status_code == 201, created.text
        invoice = created.json()["invoice"]
        assert invoice["status"] == "PENDING" and invoice["amount"] == 999
        assert invoice["invoiceNumber"].startswith("INV-")
        assert invoice["paymentLink"].endswith(f"/pay/{invoice['invoiceNumber']}")
        assert invoice["qrCode"].startswith("data:image/png;base64,")
        # A QR code a phone can scan (segno, a test dependency), not a dot:
        # the PNG's header holds its width and height.
        png = base64.b64decode(invoice["qrCode"].split(",", 1)[1])
        width, height = struct.unpack(">II", png[16:24])
        assert png[:8] == b"\x89PNG\r\n\x1a\n" and width == height >= 100
        assert invoice["qrPayload"].startswith("https://")
        assert created.headers["x-request-id"].startswith("req_")
        got = self.call("GET", f"api/v2/invoices/{invoice['id']}")
        assert got.json()["invoice"]["id"] == invoice["id"]

    @pytest.mark.parametrize(
        "change, status, code",
        [
            ({"headers": {"x-signature": None}}, 401, "MISSING_HEADERS"),
            ({"headers": {"x-api-key": None}}, 401, "MISSING_HEADERS"),
            ({"key": "pk_test_unknown"}, 401, "INVALID_API_KEY"),
            ({"offset": -301_000}, 401, "TIMESTAMP_EXPIRED"),
            ({"offset": 301_000}, 401, "TIMESTAMP_EXPIRED"),
            ({"secret": "sk_test_wrong"}, 401, "INVALID_SIGNATURE"),
            ({"sign_path": "/invoices"}, 401, "INVALID_SIGNATURE"),
        ],
    )
    def test_the_v2_checks(self, change, status, code, monkeypatch):
        # The emulator's clock stands still: time passing between signing and
        # checking (a slow machine) cannot bring 301 s back inside the window.
        base = clock.now()
        monkeypatch.setattr(clock, "now", lambda: base)
        answer = self.call("POST", "api/v2/invoices", GOOD, **change)
        assert self.code(answer) == (status, code)
        body = answer.json()
        assert body["success"] is False
        assert body["error"]["requestId"] == answer.headers["x-request-id"]
        assert EmulatedPayment.objects.count() == 0

    def test_the_timestamp_is_checked_before_the_signature(self):
        answer = self.call(
            "POST", "api/v2/invoices", GOOD, secret="wrong", stamp=1706012345678
        )
        assert self.code(answer) == (401, "TIMESTAMP_EXPIRED")

    @pytest.mark.parametrize(
        "change, field",
        [
            ({"amount": 0}, "amount"),
            ({"amount": 10.005}, "amount"),
            ({"amount": "999"}, "amount"),
            ({"currency": "USD"}, "currency"),
            ({"description": ""}, "description"),
            ({"description": "x" * 256}, "description"),
            ({"customer": {"phone": "89991234567"}}, "customer.phone"),
            ({"customer": {"email": "nope"}}, "customer.email"),
            ({"customer": {"email": None}}, "customer.email"),
            ({"expiresInHours": 73}, "expiresInHours"),
            ({"paymentMethod": "cash"}, "paymentMethod"),
            ({"successUrl": None}, "successUrl"),
            ({"kycRequired": "yes"}, "kycRequired"),
            ({"callbackUrl": "https://x"}, "callbackUrl"),
        ],
    )
    def test_every_field_is_validated(self, change, field):
        answer = self.call("POST", "api/v2/invoices", {**GOOD, **change})
        assert self.code(answer) == (400, "VALIDATION_ERROR")
        assert answer.json()["error"]["field"] == field

    def test_the_strict_mode_allowlist(self):
        self.set_emulator(allowed_ips=["10.0.0.1"])
        answer = self.call("POST", "api/v2/invoices", GOOD)
        assert self.code(answer) == (403, "SOURCE_IP_NOT_ALLOWED")
        self.set_emulator(allowed_ips=["127.0.0.1"])
        assert self.call("POST", "api/v2/invoices", GOOD).status_code == 201

    def test_the_minimum_amount(self):
        self.set_emulator(min_amount="500")
        answer = self.call("POST", "api/v2/invoices", {**GOOD, "amount": 499.99})
        assert self.code(answer) == (400, "VALIDATION_ERROR")

    def test_the_list_pages(self):
        for _ in range(3):
            self.call("POST", "api/v2/invoices", GOOD)
        page = self.call(
            "GET",
            "api/v2/invoices",
            params={"status": "PENDING", "limit": 2, "offset": 2},
        ).json()
        assert page["pagination"] == {"total": 3, "limit": 2, "offset": 2, "pages": 2}
        assert len(page["data"]) == 1
        too_big = self.call("GET", "api/v2/invoices", params={"limit": 1001})
        assert self.code(too_big) == (400, "VALIDATION_ERROR")

    def test_v1_takes_the_key_alone_and_answers_flat(self):
        url = self.emulator_url("api/v1/invoices")
        ok = requests.post(url, json=GOOD, headers={"x-api-key": API_KEY}, timeout=30)
        assert ok.status_code == 201
        bad = requests.post(url, json=GOOD, headers={"x-api-key": "nope"}, timeout=30)
        assert bad.status_code == 401
        assert set(bad.json()) == {"error", "message", "code"}

    def test_the_v2_batch_template(self):
        answer = self.call("GET", "api/v2/batch/invoices")
        assert answer.text.startswith(
            "email,name,phone,amount,description,expiresInHours"
        )

    def test_background_expiry(self, monkeypatch):
        from datetime import timedelta

        from django_payments_ru.emulator import clock

        created = self.call("POST", "api/v2/invoices", {**GOOD, "expiresInHours": 1})
        later = clock.now() + timedelta(hours=1, seconds=1)
        monkeypatch.setattr(clock, "now", lambda: later)
        answer = requests.post(self.emulator_url("_control/expire"), timeout=30)
        assert answer.json()["expired"] == 1
        payment = EmulatedPayment.objects.get(
            external_id=created.json()["invoice"]["id"]
        )
        assert payment.status == "EXPIRED"
        assert [d.event_type for d in self.deliveries()] == ["invoice.expired"]

    def test_the_webhook_retry_schedule(self):
        assert emulator.retry_schedule() == [60, 300, 900, 3600, 21600]


class TestEmulatorLimits(LoveAndPayCase):
    emulator_options = {"requests_per_minute": 3, "requests_per_hour": 5}

    def get(self) -> requests.Response:
        ts = str(int(time.time() * 1000))
        path = "/emulator/loveandpay/api/v2/invoices"
        return requests.get(
            self.emulator_url("api/v2/invoices"),
            headers={
                "x-api-key": API_KEY,
                "x-timestamp": ts,
                "x-signature": sign_request(SECRET_KEY, "GET", path, ts, b""),
            },
            timeout=30,
        )

    def test_both_limits_answer_429_with_retry_after(self, monkeypatch):
        from datetime import timedelta

        from django_payments_ru.emulator import clock

        assert [self.get().status_code for _ in range(3)] == [200] * 3
        refused = self.get()
        assert refused.status_code == 429
        assert refused.json()["error"]["code"] == "RATE_LIMIT_EXCEEDED"
        assert 1 <= int(refused.headers["Retry-After"]) <= 60
        later = clock.now() + timedelta(seconds=61)
        monkeypatch.setattr(clock, "now", lambda: later)
        monkeypatch.setattr(time, "time", later.timestamp)
        assert [self.get().status_code for _ in range(2)] == [200] * 2
        hourly = self.get()
        assert hourly.status_code == 429
        assert int(hourly.headers["Retry-After"]) > 60
