"""The shared emulator machinery, through the sandbox emulator: discovery and
URLs, settings, webhook delivery and retries, idempotency, faults, rate
limits, the pay page and the admin."""

from __future__ import annotations

import ast
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

from django_payments_ru.emulator import clock, faults, limits, registry
from django_payments_ru.emulator.base import ActionRefused, bearer_token, key_matches
from django_payments_ru.emulator.idempotency import request_hash, run_once
from django_payments_ru.emulator.models import (
    EmulatedFault,
    EmulatedIdempotencyKey,
    EmulatedPayment,
    WebhookDelivery,
)
from django_payments_ru.emulator.webhooks import (
    DEFAULT_SCHEDULE,
    deliver,
    retry_due,
    send_webhook,
)
from django_payments_ru.exceptions import ConfigurationError
from django_payments_ru.providers.sandbox.emulator import emulator
from django_payments_ru.providers.sandbox.provider import (
    SIGNATURE_HEADER,
    TIMESTAMP_HEADER,
    sign,
)
from tests.contracts.docs import list_table, plain, read

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


def send(
    payment: EmulatedPayment, url: str, *, schedule: list[int] | None = None
) -> WebhookDelivery:
    body = json.dumps({"id": "evt_1", "type": "payment.succeeded"})
    return deliver(
        WebhookDelivery(
            slug="sandbox",
            payment=payment,
            url=url,
            body=body,
            headers={"Content-Type": "application/json"},
            event_id="evt_1",
            event_type="payment.succeeded",
            retry_schedule=list(DEFAULT_SCHEDULE if schedule is None else schedule),
        )
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


FAKEPAY = {
    "__init__.py": (
        "from django_payments_ru.providers.base import BaseProvider\n"
        "class Card(BaseProvider):\n"
        "    slug = 'fakepay'\n"
        "    emulator = 'fakepay.emulator'\n"
        "class Wallet(BaseProvider):\n"
        "    slug = 'fakepay'\n"
        "    emulator = 'fakepay.wallet_emulator'\n"
        "class Provider(BaseProvider):\n"
        "    slug = 'fakepay'\n"
        "    surfaces = (Card, Wallet)\n"
        "class Plain(BaseProvider):\n"
        "    slug = 'plainpay'\n"
    ),
    "emulator.py": (
        "from django.http import HttpResponse\n"
        "from django.urls import path\n"
        "from django_payments_ru.emulator.base import Emulator\n"
        "class FakeEmulator(Emulator):\n"
        "    slug = 'fakepay'\n"
        "emulator = FakeEmulator()\n"
        "urlpatterns = [path('ping', lambda r: HttpResponse('pong'))]\n"
    ),
    "wallet_emulator.py": (
        "from django.urls import path\n"
        "from django_payments_ru.emulator.base import Emulator\n"
        "class WalletEmulator(Emulator):\n"
        "    slug = 'fakewallet'\n"
        "emulator = WalletEmulator()\n"
        "urlpatterns = []\n"
    ),
    "twin.py": (
        "from django_payments_ru.emulator.base import Emulator\n"
        "class Twin(Emulator):\n"
        "    slug = 'fakepay'\n"
        "emulator = Twin()\n"
        "urlpatterns = []\n"
    ),
    "urls_only.py": "urlpatterns = []\n",
}


@pytest.fixture
def fakepay(tmp_path, monkeypatch):
    """A provider package outside django_payments_ru, on sys.path."""
    package = tmp_path / "fakepay"
    package.mkdir()
    for name, source in FAKEPAY.items():
        (package / name).write_text(source)
    monkeypatch.syspath_prepend(str(tmp_path))
    yield "fakepay"
    for name in [n for n in sys.modules if n.split(".")[0] == "fakepay"]:
        del sys.modules[name]


def with_providers(settings, **entries):
    """Add providers: a string is a BACKEND without options."""
    providers = dict(settings.PAYMENTS_RU["PROVIDERS"])
    for alias, entry in entries.items():
        is_path = isinstance(entry, str)
        providers[alias] = {"BACKEND": entry, "OPTIONS": {}} if is_path else entry
    settings.PAYMENTS_RU = {**settings.PAYMENTS_RU, "PROVIDERS": providers}


def with_emulators(settings, *modules):
    settings.PAYMENTS_RU_EMULATOR = {
        **settings.PAYMENTS_RU_EMULATOR,
        "EMULATORS": list(modules),
    }


def test_the_emulators_of_the_configured_providers_are_served(fakepay, settings):
    with_emulators(settings)
    assert list(registry.emulator_modules()) == ["sandbox"]
    # A provider from another package names its emulator; so do the classes of
    # its surfaces. Two aliases of one backend serve it once. The registry
    # follows the settings without being told.
    with_providers(
        settings, card="fakepay.Provider", card2="fakepay.Provider", p="fakepay.Plain"
    )
    found = registry.emulator_modules()
    assert list(found) == ["fakepay", "fakewallet", "sandbox"]
    assert found["fakepay"] is sys.modules["fakepay.emulator"]
    assert registry.get_emulator("fakewallet").slug == "fakewallet"


def test_the_emulators_setting_adds_modules(fakepay, settings):
    with_emulators(settings)
    assert registry.get_emulator("fakepay") is None
    assert registry.get_emulator("payconnect") is None
    with_emulators(settings, "fakepay.emulator", "fakepay.emulator")
    assert list(registry.emulator_modules()) == ["fakepay", "sandbox"]
    assert registry.get_emulator("fakepay") is sys.modules["fakepay.emulator"].emulator


def test_the_test_settings_serve_the_emulators_the_tests_use():
    assert {"sandbox", "payconnect"} <= set(registry.emulator_modules())


def test_the_keys_of_the_emulator_setting_are_documented_with_their_defaults():
    rows = list_table(read("configuration.rst"), "Which emulators are served")
    documented = {plain(row[0]): ast.literal_eval(plain(row[1])) for row in rows[1:]}
    assert documented == registry.DEFAULTS


def test_a_malformed_provider_entry_is_left_to_the_system_checks(settings):
    with_emulators(settings)
    with_providers(
        settings, a="no.such.Provider", b="decimal.Decimal", c=["not a dict"]
    )
    assert list(registry.emulator_modules()) == ["sandbox"]


@pytest.mark.parametrize(
    ("modules", "message"),
    [
        ("fakepay.emulator", "must be a list of dotted module paths"),
        (["fakepay.nosuch"], "'fakepay.nosuch' of .*EMULATORS.* cannot be imported"),
        (["fakepay.urls_only"], "must define urlpatterns and emulator"),
        (
            ["fakepay.emulator", "fakepay.twin"],
            "Two emulator modules serve the slug 'fakepay'",
        ),
    ],
)
def test_a_bad_emulator_module_is_an_error_naming_it(
    fakepay, settings, modules, message
):
    settings.PAYMENTS_RU_EMULATOR = {
        **settings.PAYMENTS_RU_EMULATOR,
        "EMULATORS": modules,
    }
    with pytest.raises(ConfigurationError, match=message):
        registry.emulator_modules()


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


def test_a_sliding_window_counts_the_last_seconds():
    limits.reset()
    sliding = [limits.Limit(2, 60, sliding=True, setting="per_minute")]
    assert limits.hit("x", "k", sliding, 100.0) is None
    assert limits.hit("x", "k", sliding, 130.0) is None
    # Full until the oldest call leaves the window, whatever the minute.
    exceeded = limits.check("x", "k", sliding, 150.0)
    assert exceeded == limits.Exceeded(sliding[0], 10)
    assert limits.hit("x", "k", sliding, 160.0) is None
    assert limits.hit("x", "k", sliding, 161.0) == 29
    # Its counts are its own: the fixed limit of the same size starts empty.
    assert limits.hit("x", "k", limits.parse_limits("x", [[2, 60]]), 161.0) is None
    limits.reset("other")
    assert limits.hit("x", "k", sliding, 161.0) == 29
    limits.reset("x")
    assert limits.hit("x", "k", sliding, 161.0) is None
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
    assert out.getvalue().startswith("0 payment(s) expired, 0 webhook(s) sent")

    later = clock.now() + timedelta(minutes=2)
    monkeypatch.setattr(clock, "now", lambda: later)
    out = StringIO()
    call_command("emulator_deliver_webhooks", "--slug", "sandbox", stdout=out)
    assert out.getvalue().startswith(
        "0 payment(s) expired, 1 webhook(s) sent, 1 delivered, 0 failed"
    )
    assert set(WebhookDelivery.objects.values_list("status", flat=True)) == {
        "delivered"
    }


def test_the_management_command_expires_what_ran_out(db):
    # The provider's own background job: a pending payment past its time
    # expires without anyone reading it (and announces it, as the emulator
    # does when a reader finds it expired).
    due = EmulatedPayment.objects.create(
        slug="sandbox",
        external_id="pay_due",
        status="pending",
        amount=Decimal("10.00"),
        currency="RUB",
        expires_at=clock.now() - timedelta(seconds=1),
    )
    running = EmulatedPayment.objects.create(
        slug="sandbox",
        external_id="pay_running",
        status="pending",
        amount=Decimal("10.00"),
        currency="RUB",
        expires_at=clock.now() + timedelta(minutes=5),
    )
    out = StringIO()
    call_command("emulator_deliver_webhooks", "--slug", "sandbox", stdout=out)
    assert out.getvalue().startswith("1 payment(s) expired")
    due.refresh_from_db()
    running.refresh_from_db()
    assert (due.status, running.status) == ("expired", "pending")
    out = StringIO()
    call_command("emulator_deliver_webhooks", "--slug", "sandbox", stdout=out)
    assert out.getvalue().startswith("0 payment(s) expired")


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
    html = page.content.decode()
    assert '<html lang="ru">' in html
    assert "100,00\xa0₽" in html  # the Russian separator and sign
    assert 'data-amount="100.00"' in html  # for scripts: plain


def test_a_button_of_a_payment_no_longer_pending_is_refused(client, payment):
    url = f"/emulator/sandbox/pay/{payment.external_id}/"
    page = client.get(url)  # the buttons, while it was pending
    assert b'value="pay"' in page.content
    EmulatedPayment.objects.filter(pk=payment.pk).update(status="cancelled")
    response = client.post(url, {"action": "pay"})
    assert response.status_code == 409
    payment.refresh_from_db()
    assert payment.status == "cancelled"
    assert not WebhookDelivery.objects.exists()


def test_a_refusal_inside_an_action_rolls_it_back(payment, rf):
    class Refusing(type(emulator)):
        def on_pay(self, request, payment):
            super().on_pay(request, payment)
            raise ActionRefused("no")

    with pytest.raises(ActionRefused):
        Refusing().perform_action(rf.post("/"), payment, "pay")
    payment.refresh_from_db()
    assert payment.status == "pending"
    assert not WebhookDelivery.objects.exists()


def test_a_button_without_its_handler_says_so(payment, rf):
    with pytest.raises(NotImplementedError, match=r"on_hold\(\)"):
        emulator.perform_action(rf.post("/"), payment, "hold")


def test_a_pending_payment_past_its_time_expires_when_read(payment, monkeypatch):
    later = payment.expires_at + timedelta(seconds=1)
    assert emulator.expire_if_due(payment).status == "pending"
    monkeypatch.setattr(clock, "now", lambda: later)
    assert emulator.expire_if_due(payment).status == "expired"
    paid = EmulatedPayment.objects.get(pk=payment.pk)
    paid.status = "succeeded"
    assert emulator.expire_if_due(paid) is paid  # only a pending one expires


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
