"""The shared emulator machinery, through the sandbox emulator: discovery and
URLs, settings, webhook delivery and retries, idempotency, faults, rate
limits, the pay page and the admin."""

from __future__ import annotations

import json
import sys
import threading
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from io import StringIO
from typing import Any

import pytest
from django.core.management import call_command
from django.db import transaction
from django.http import HttpResponse, JsonResponse
from django.test import Client, RequestFactory
from django.urls import reverse

from django_payments_ru import providers
from django_payments_ru.emulator import clock, faults, limits, registry
from django_payments_ru.emulator.base import bearer_token, key_matches
from django_payments_ru.emulator.idempotency import request_hash, run_once
from django_payments_ru.emulator.models import (
    EmulatedFault,
    EmulatedIdempotencyKey,
    EmulatedPayment,
    WebhookDelivery,
)
from django_payments_ru.emulator.webhooks import deliver, retry_due, send_webhook
from django_payments_ru.exceptions import ConfigurationError
from django_payments_ru.providers.sandbox.emulator import emulator
from django_payments_ru.providers.sandbox.provider import (
    SIGNATURE_HEADER,
    TIMESTAMP_HEADER,
    sign,
)

API_KEY = "sk_sandbox_test_canary_4f1c"
SECRET = "whsec_sandbox_canary_9b7e"


# --- a webhook receiver ----------------------------------------------------------


class Receiver:
    """A local HTTP server answering POSTs with the statuses it is given."""

    def __init__(self) -> None:
        self.requests: list[dict[str, Any]] = []
        self.statuses: list[int] = []
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length", 0))
                receiver.requests.append(
                    {
                        "path": self.path,
                        "headers": dict(self.headers),
                        "body": self.rfile.read(length),
                    }
                )
                status = receiver.statuses.pop(0) if receiver.statuses else 200
                self.send_response(status)
                if status in (301, 302):
                    self.send_header("Location", "/elsewhere")
                self.send_header("Content-Length", "2")
                self.end_headers()
                self.wfile.write(b"ok")

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hook"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    server = Receiver()
    yield server
    server.close()


@pytest.fixture
def payment(db) -> EmulatedPayment:
    return EmulatedPayment.objects.create(
        slug="sandbox",
        external_id="pay_00000000000000aa",
        status="pending",
        amount=Decimal("100.00"),
        currency="RUB",
        reference="ref-1",
        expires_at=clock.now() + timedelta(minutes=30),
        data={
            "payment_url": "http://testserver/emulator/sandbox/pay/"
            "pay_00000000000000aa/"
        },
    )


def send(payment: EmulatedPayment, url: str, **kwargs: Any) -> WebhookDelivery:
    body = json.dumps({"id": "evt_1", "type": "payment.succeeded"}).encode()
    return deliver(
        "sandbox",
        payment,
        url,
        body,
        {"Content-Type": "application/json"},
        event_id="evt_1",
        event_type="payment.succeeded",
        **kwargs,
    )


# --- discovery and URLs ------------------------------------------------------------


def test_the_sandbox_emulator_is_found():
    assert "sandbox" in registry.emulator_modules()
    assert registry.get_emulator("sandbox") is emulator
    assert registry.get_emulator("nosuch") is None


def test_urls():
    assert reverse("payments_ru_emulator:sandbox:pay", args=["pay_1"]) == (
        "/emulator/sandbox/pay/pay_1/"
    )
    assert reverse("payments_ru_emulator:sandbox:create") == (
        "/emulator/sandbox/api/payments"
    )
    assert reverse("payments_ru_emulator:done", args=["sandbox", "pay_1"]) == (
        "/emulator/done/sandbox/pay_1/"
    )


def test_a_new_provider_package_with_an_emulator_is_found(tmp_path, monkeypatch):
    package = tmp_path / "fakepay"
    package.mkdir()
    (package / "__init__.py").write_text("")
    (package / "emulator.py").write_text(
        "from django.http import HttpResponse\n"
        "from django.urls import path\n"
        "urlpatterns = [path('ping', lambda r: HttpResponse('pong'))]\n"
    )
    (tmp_path / "noemulator").mkdir()
    (tmp_path / "noemulator" / "__init__.py").write_text("")
    monkeypatch.setattr(providers, "__path__", [*providers.__path__, str(tmp_path)])
    registry.emulator_modules.cache_clear()
    try:
        found = registry.emulator_modules()
        assert "fakepay" in found and "sandbox" in found
        assert "noemulator" not in found
    finally:
        registry.emulator_modules.cache_clear()
        for name in [n for n in sys.modules if ".fakepay" in n or ".noemulator" in n]:
            del sys.modules[name]


# --- settings --------------------------------------------------------------------


def test_settings_are_read_at_each_access(settings):
    assert emulator.config["api_keys"] == [API_KEY]
    assert emulator.config["payment_lifetime"] == 1800
    settings.PAYMENTS_RU_EMULATOR = {
        "sandbox": {"api_keys": ["k2"], "webhook_secret": "s", "payment_lifetime": 60}
    }
    assert emulator.config["api_keys"] == ["k2"]
    assert emulator.config["payment_lifetime"] == 60
    assert emulator.retry_schedule() == [60, 300, 1800]


@pytest.mark.parametrize(
    ("value", "message"),
    [
        (
            {"sandbox": {"api_keys": ["k"]}},
            "needs settings.PAYMENTS_RU_EMULATOR['sandbox']['webhook_secret']",
        ),
        (
            {"sandbox": {"api_keys": ["k"], "webhook_secret": "s", "api_key": "k"}},
            "Unknown key 'api_key' in settings.PAYMENTS_RU_EMULATOR['sandbox']",
        ),
        ({"sandbox": []}, "PAYMENTS_RU_EMULATOR['sandbox'] must be a dict"),
        ({}, "needs settings.PAYMENTS_RU_EMULATOR['sandbox']['api_keys']"),
    ],
)
def test_bad_settings_name_the_setting(settings, value, message):
    settings.PAYMENTS_RU_EMULATOR = value
    with pytest.raises(ConfigurationError, match=message.replace("[", r"\[")):
        emulator.config  # noqa: B018


# --- helpers ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("header", "token"),
    [
        ("Bearer abc", "abc"),
        ("bearer  abc ", "abc"),
        ("Basic abc", ""),
        ("", ""),
        ("Bearer", ""),
    ],
)
def test_bearer_token(rf, header, token):
    request = rf.get("/", HTTP_AUTHORIZATION=header)
    assert bearer_token(request) == token


def test_key_matches():
    assert key_matches("b", ["a", "b"])
    assert not key_matches("c", ["a", "b"])
    assert not key_matches("", ["", "a"])
    assert not key_matches("a", [])


def test_rate_limit_windows():
    limits.reset()
    spec = limits.parse_limits("x", [[2, 60], [3, 3600]])
    assert [limits.hit("x", "k", spec, 120.0) for _ in range(3)] == [None, None, 60]
    assert limits.hit("x", "other", spec, 120.0) is None  # counted per key
    assert limits.hit("x", "k", spec, 150.0) == 30
    assert limits.hit("x", "k", spec, 180.0) is None  # the next minute
    assert limits.hit("x", "k", spec, 181.0) == 3600 - 181  # the hourly limit
    limits.reset()


@pytest.mark.parametrize("value", [5, [[0, 60]], [[1]], [["1", 60]]])
def test_bad_rate_limits(value):
    with pytest.raises(ConfigurationError, match="rate_limits"):
        limits.parse_limits("sandbox", value)


def test_bad_fault_spec():
    with pytest.raises(ConfigurationError, match="Unknown key 'count'"):
        faults.take_fault("sandbox", "create", {"create": {"count": 1}})
    with pytest.raises(ConfigurationError, match="must be a dict"):
        faults.take_fault("sandbox", "create", {"create": 500})


def test_settings_fault_counts_restart_with_new_settings(settings, db):
    spec = {"create": {"status": 500, "times": 1}}
    settings.PAYMENTS_RU_EMULATOR = {
        "sandbox": {"api_keys": ["k"], "webhook_secret": "s", "faults": spec}
    }
    assert faults.take_fault("sandbox", "create", spec) is not None
    assert faults.take_fault("sandbox", "create", spec) is None
    settings.PAYMENTS_RU_EMULATOR = {
        "sandbox": {"api_keys": ["k"], "webhook_secret": "s", "faults": dict(spec)}
    }
    assert faults.take_fault("sandbox", "create", spec) is not None


def test_injected_faults_match_their_endpoint(db):
    faults.inject_fault("sandbox", "refund", status=500, times=None)
    faults.inject_fault("other", "*", status=500)
    assert faults.take_fault("sandbox", "create", {}) is None
    for _call in range(3):  # unlimited
        assert faults.take_fault("sandbox", "refund", {}).status == 500
    faults.clear_faults("sandbox")
    assert faults.take_fault("sandbox", "refund", {}) is None
    assert EmulatedFault.objects.filter(slug="other").exists()


# --- idempotency ---------------------------------------------------------------


def test_a_concurrent_request_with_the_same_key_gets_the_winner_answer(db, monkeypatch):
    request = RequestFactory().post(
        "/x", data=b'{"a": 1}', content_type="application/json"
    )
    # Another request with the same key commits while this one works: its key
    # is invisible to this one's first look, and there when it stores its own.
    EmulatedIdempotencyKey.objects.create(
        slug="sandbox",
        key="k",
        request_hash=request_hash(request),
        response_status=201,
        response_body='{"id": "pay_winner"}',
        response_content_type="application/json",
    )
    committed = {"yet": False}
    manager = EmulatedIdempotencyKey.objects
    real_filter = manager.filter
    monkeypatch.setattr(
        manager,
        "filter",
        lambda *a, **kw: (
            real_filter(*a, **kw) if committed["yet"] else real_filter(*a, **kw).none()
        ),
    )

    def handler() -> HttpResponse:
        EmulatedPayment.objects.create(
            slug="sandbox",
            external_id="pay_loser",
            status="pending",
            amount=Decimal(1),
            currency="RUB",
        )
        committed["yet"] = True
        return JsonResponse({"id": "pay_loser"}, status=201)

    response = run_once(
        request,
        slug="sandbox",
        key="k",
        handler=handler,
        conflict=lambda: HttpResponse(status=409),
        ttl=60,
    )

    assert json.loads(response.content) == {"id": "pay_winner"}
    assert response["Idempotent-Replayed"] == "true"
    # The loser's work was rolled back.
    assert not EmulatedPayment.objects.filter(external_id="pay_loser").exists()


def test_a_server_error_is_not_kept(db):
    request = RequestFactory().post("/x", data=b"{}", content_type="application/json")
    answers = iter([HttpResponse(status=500), HttpResponse("ok", status=200)])

    def run() -> HttpResponse:
        return run_once(
            request,
            slug="sandbox",
            key="k",
            handler=lambda: next(answers),
            conflict=lambda: HttpResponse(status=409),
            ttl=60,
        )

    assert run().status_code == 500
    assert run().status_code == 200
    assert run().content == b"ok"


# --- webhooks --------------------------------------------------------------------


def test_a_webhook_is_sent_after_the_commit(
    payment, receiver, django_capture_on_commit_callbacks
):
    with (
        django_capture_on_commit_callbacks(execute=True) as callbacks,
        transaction.atomic(),
    ):
        delivery = send(payment, receiver.url)
        assert receiver.requests == []
    assert len(callbacks) == 1

    delivery.refresh_from_db()
    assert (delivery.status, delivery.attempts, delivery.last_status_code) == (
        "delivered",
        1,
        200,
    )
    assert delivery.next_attempt_at is None
    [sent] = receiver.requests
    assert sent["body"] == delivery.body.encode()
    assert sent["headers"]["Content-Type"] == "application/json"


def test_a_rolled_back_webhook_is_never_sent(
    payment, receiver, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks(execute=True) as callbacks:
        try:
            with transaction.atomic():
                send(payment, receiver.url)
                raise RuntimeError("rolled back")
        except RuntimeError:
            pass
    assert callbacks == []
    assert receiver.requests == []
    assert not WebhookDelivery.objects.exists()


def test_failed_deliveries_follow_the_schedule_then_give_up(
    payment, receiver, django_capture_on_commit_callbacks
):
    receiver.statuses = [500, 503, 400, 302, 500]
    start = datetime(2026, 1, 15, 10, 0, tzinfo=UTC)
    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        delivery = send(payment, receiver.url)
    assert delivery.retry_schedule == [60, 300, 1800]

    callbacks[0]()  # the send after commit
    delivery.refresh_from_db()
    assert (delivery.status, delivery.attempts, delivery.last_status_code) == (
        "failed",
        1,
        500,
    )
    assert "HTTP 500" in delivery.last_error

    delivery = send_webhook(delivery, now=start)  # a failed second attempt
    assert delivery.next_attempt_at == start + timedelta(seconds=300)
    assert retry_due(now=start + timedelta(seconds=299)) == []
    [delivery] = retry_due(now=start + timedelta(seconds=300))
    assert (delivery.attempts, delivery.last_status_code) == (3, 400)
    assert delivery.next_attempt_at == start + timedelta(seconds=300 + 1800)
    # A redirect is not followed, and is no acknowledgement.
    [delivery] = retry_due(now=start + timedelta(hours=1))
    assert (delivery.status, delivery.attempts, delivery.last_status_code) == (
        "failed",
        4,
        302,
    )
    assert delivery.next_attempt_at is None  # three retries, then no more
    assert retry_due(now=start + timedelta(days=30)) == []
    assert [r["path"] for r in receiver.requests] == ["/hook"] * 4


def test_an_unreachable_url(payment, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True):
        delivery = send(payment, "http://127.0.0.1:9/hook", schedule=[5])
    delivery.refresh_from_db()
    assert delivery.status == "failed"
    assert delivery.last_status_code is None
    assert delivery.last_error.startswith("ConnectionError")
    assert delivery.next_attempt_at == delivery.last_attempt_at + timedelta(seconds=5)


def test_a_delivery_never_sent_is_picked_up(
    payment, receiver, django_capture_on_commit_callbacks
):
    # The process stopped before its send after commit.
    with django_capture_on_commit_callbacks(execute=False):
        delivery = send(payment, receiver.url)
    assert retry_due() == []
    [done] = retry_due(now=clock.now() + timedelta(minutes=2))
    assert (done.pk, done.status, done.attempts) == (delivery.pk, "delivered", 1)


def test_sandbox_retries_are_signed_again(
    payment, receiver, settings, monkeypatch, django_capture_on_commit_callbacks
):
    settings.PAYMENTS_RU_EMULATOR = {
        "sandbox": {
            "api_keys": [API_KEY],
            "webhook_secret": SECRET,
            "webhook_retry_schedule": [10],
        }
    }
    payment.webhook_url = receiver.url
    receiver.statuses = [500, 200]
    first_time = datetime(2026, 1, 15, 10, 0, tzinfo=UTC)
    monkeypatch.setattr(clock, "now", lambda: first_time)
    with django_capture_on_commit_callbacks(execute=True):
        delivery = emulator.webhook(payment, "payment.succeeded")
    delivery.refresh_from_db()
    assert delivery.retry_schedule == [10]
    assert delivery.next_attempt_at == first_time + timedelta(seconds=10)

    later = first_time + timedelta(minutes=10)
    monkeypatch.setattr(clock, "now", lambda: later)
    [delivery] = retry_due()

    assert delivery.status == "delivered"
    first, retry = receiver.requests
    assert first["body"] == retry["body"]
    assert first["headers"][TIMESTAMP_HEADER] == str(int(first_time.timestamp()))
    assert retry["headers"][TIMESTAMP_HEADER] == str(int(later.timestamp()))
    assert retry["headers"][SIGNATURE_HEADER] == sign(
        SECRET, str(int(later.timestamp())), retry["body"]
    )
    assert delivery.headers[SIGNATURE_HEADER] == retry["headers"][SIGNATURE_HEADER]


def test_the_management_command(
    payment, receiver, monkeypatch, django_capture_on_commit_callbacks
):
    receiver.statuses = [500]
    with django_capture_on_commit_callbacks(execute=True):
        send(payment, receiver.url)
        send(payment, receiver.url)
    assert WebhookDelivery.objects.filter(status="failed").count() == 1

    out = StringIO()
    call_command("emulator_deliver_webhooks", stdout=out)
    assert out.getvalue().startswith("0 webhook(s) sent")

    later = clock.now() + timedelta(minutes=2)
    monkeypatch.setattr(clock, "now", lambda: later)
    out = StringIO()
    call_command("emulator_deliver_webhooks", "--slug", "sandbox", stdout=out)
    assert out.getvalue().startswith("1 webhook(s) sent, 1 delivered, 0 failed")
    assert set(WebhookDelivery.objects.values_list("status", flat=True)) == {
        "delivered"
    }


# --- pages -----------------------------------------------------------------------


def test_the_pay_page_needs_its_csrf_token(payment):
    client = Client(enforce_csrf_checks=True)
    url = f"/emulator/sandbox/pay/{payment.external_id}/"
    page = client.get(url)
    assert page.status_code == 200
    assert b'name="csrfmiddlewaretoken"' in page.content
    assert client.post(url, {"action": "pay"}).status_code == 403
    payment.refresh_from_db()
    assert payment.status == "pending"


def test_the_pay_page_refuses_an_unknown_action(client, payment):
    url = f"/emulator/sandbox/pay/{payment.external_id}/"
    response = client.post(url, {"action": "steal"})
    assert response.status_code == 409
    payment.refresh_from_db()
    assert payment.status == "pending"


def test_the_pay_page_in_russian(client, payment):
    page = client.get(
        f"/emulator/sandbox/pay/{payment.external_id}/", HTTP_ACCEPT_LANGUAGE="ru"
    )
    assert page.status_code == 200
    assert b"100.00 RUB" in page.content


@pytest.mark.parametrize(
    "url", ["/emulator/sandbox/pay/pay_nosuch/", "/emulator/done/sandbox/pay_nosuch/"]
)
def test_unknown_payments_are_not_found(client, db, url):
    assert client.get(url).status_code == 404


def test_the_done_page(client, payment):
    payment.status = "succeeded"
    payment.save()
    page = client.get(f"/emulator/done/sandbox/{payment.external_id}/")
    assert page.status_code == 200
    assert b"Paid" in page.content
    assert b"no real money" in page.content


# --- admin -----------------------------------------------------------------------


def test_the_admin(admin_client, payment, receiver, django_capture_on_commit_callbacks):
    receiver.statuses = [500, 200]
    with django_capture_on_commit_callbacks(execute=True):
        delivery = send(payment, receiver.url)
    faults.inject_fault("sandbox", "create")
    EmulatedIdempotencyKey.objects.create(
        slug="sandbox", key="k", request_hash="0" * 64, response_status=201
    )
    for model in (
        "emulatedpayment",
        "webhookdelivery",
        "emulatedidempotencykey",
        "emulatedfault",
    ):
        url = reverse(f"admin:payments_ru_emulator_{model}_changelist")
        assert admin_client.get(url).status_code == 200, model
    change = reverse(
        "admin:payments_ru_emulator_emulatedpayment_change", args=[payment.pk]
    )
    assert admin_client.get(change).status_code == 200
    assert (
        admin_client.get(
            reverse("admin:payments_ru_emulator_emulatedpayment_add")
        ).status_code
        == 403
    )

    response = admin_client.post(
        reverse("admin:payments_ru_emulator_webhookdelivery_changelist"),
        {"action": "send_now", "_selected_action": [delivery.pk]},
        follow=True,
    )

    assert response.status_code == 200
    delivery.refresh_from_db()
    assert (delivery.status, delivery.attempts) == ("delivered", 2)
