"""The shared HTTP client against a real local server.

Each test scripts the server's answers and inspects what it received; the
client's sleep is injected and recorded, so no test waits for a backoff.
"""

from __future__ import annotations

import json
import logging
import socket
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from email.utils import formatdate
from http.server import BaseHTTPRequestHandler
from typing import Any
from urllib.parse import quote, quote_plus

import pytest

from django_payments_ru.exceptions import (
    ProviderAPIError,
    ProviderAuthError,
    ProviderRateLimited,
    ProviderResponseError,
    ProviderUnavailable,
)
from django_payments_ru.providers.http import HttpClient

from .local_http import LocalServer, exception_texts, record_texts

# --- a scripted server --------------------------------------------------------


@dataclass
class Reply:
    status: int = 200
    body: Any = field(default_factory=dict)
    headers: dict[str, str] = field(default_factory=dict)
    #: Answer nothing (until the test ends), to make the client time out.
    hang: bool = False


@dataclass
class Seen:
    method: str
    path: str
    headers: dict[str, str]
    body: bytes
    #: The client's (host, port): one value per TCP connection.
    peer: tuple[str, int]


class ScriptedServer(LocalServer):
    """A local HTTP/1.1 server answering with the replies a test scripts."""

    def __init__(self) -> None:
        self.replies: list[Reply] = []
        self.requests: list[Seen] = []
        self.connections: list[tuple[str, int]] = []
        super().__init__()

    def connected(self, address: tuple[str, int]) -> None:
        with self._lock:
            self.connections.append(address)

    def respond(self, handler: BaseHTTPRequestHandler, body: bytes) -> None:
        with self._lock:
            self.requests.append(
                Seen(
                    handler.command,
                    handler.path,
                    dict(handler.headers.items()),
                    body,
                    handler.client_address,
                )
            )
            reply = (
                self.replies.pop(0)
                if self.replies
                else Reply(599, {"error": "unscripted request"})
            )
        if reply.hang:
            self.release.wait(5)
            handler.close_connection = True
            return
        self.send(handler, reply.status, reply.body, reply.headers)

    @property
    def url(self) -> str:
        return f"{self.root}/api/"

    def script(self, *replies: Reply) -> None:
        self.replies.extend(replies)


@pytest.fixture
def server() -> Iterator[ScriptedServer]:
    srv = ScriptedServer()
    srv.start()
    yield srv
    srv.stop()


@pytest.fixture
def sleeps() -> list[float]:
    return []


@pytest.fixture
def make_client(
    server: ScriptedServer, sleeps: list[float]
) -> Iterator[Callable[..., HttpClient]]:
    clients: list[HttpClient] = []

    def make(**kwargs: Any) -> HttpClient:
        options: dict[str, Any] = {
            "provider": "test",
            "base_url": server.url,
            "timeout": (1.0, 1.0),
            "retries": 3,
            "backoff_factor": 0.5,
            "backoff_max": 10.0,
            "backoff_jitter": 0.0,
            "sleep": sleeps.append,
            **kwargs,
        }
        client = HttpClient(**options)
        clients.append(client)
        return client

    yield make
    for client in clients:
        client.close()


def refused_url() -> str:
    """A local address nothing listens on."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    return f"http://127.0.0.1:{port}/api/"


# --- retries ----------------------------------------------------------------


@pytest.mark.parametrize("status", [500, 502, 503, 504])
def test_get_is_retried_on_server_errors(server, make_client, status):
    server.script(Reply(status), Reply(200, {"ok": True}))

    assert make_client().request("GET", "items") == {"ok": True}
    assert [r.method for r in server.requests] == ["GET", "GET"]


def test_backoff_is_exponential_and_capped(server, make_client, sleeps):
    server.script(*[Reply(500)] * 5, Reply(200, {"ok": True}))
    client = make_client(retries=5, backoff_factor=0.5, backoff_max=3.0)

    assert client.request("GET", "items") == {"ok": True}
    # urllib3's schedule: the first retry is immediate, then factor * 2**(n-1)
    # seconds, capped at backoff_max.
    assert sleeps == [1.0, 2.0, 3.0, 3.0]
    assert len(server.requests) == 6


def test_backoff_jitter_is_bounded(server, make_client, sleeps):
    server.script(*[Reply(503)] * 3, Reply(200, {}))
    client = make_client(backoff_factor=1.0, backoff_max=3.0, backoff_jitter=0.5)

    client.request("GET", "items")
    assert len(sleeps) == 2
    assert 2.0 <= sleeps[0] <= 2.5
    assert sleeps[1] == 3.0  # 4 + jitter, capped


def test_gives_up_after_retries_with_the_status(server, make_client, sleeps):
    server.script(*[Reply(502)] * 4)
    client = make_client(retries=3)

    with pytest.raises(ProviderUnavailable) as info:
        client.request("GET", "items")
    assert info.value.status == 502
    assert info.value.provider == "test"
    assert len(server.requests) == 4
    assert len(sleeps) == 2


def test_retry_after_is_honoured(server, make_client, sleeps):
    server.script(Reply(429, headers={"Retry-After": "2"}), Reply(200, {"ok": 1}))

    assert make_client().request("GET", "items") == {"ok": 1}
    assert sleeps == [2]
    assert len(server.requests) == 2


def test_retry_after_longer_than_allowed_fails_without_waiting(
    server, make_client, sleeps
):
    server.script(Reply(429, headers={"Retry-After": "120"}), Reply(200))
    client = make_client(max_retry_after=30.0)

    with pytest.raises(ProviderRateLimited) as info:
        client.request("GET", "items")
    assert info.value.retry_after == 120
    assert info.value.status == 429
    assert sleeps == []
    assert len(server.requests) == 1


def test_unreadable_retry_after_falls_back_to_backoff(server, make_client, sleeps):
    server.script(
        Reply(503, headers={"Retry-After": "soon"}),
        Reply(503, headers={"Retry-After": "soon"}),
        Reply(200, {"ok": True}),
    )

    assert make_client().request("GET", "items") == {"ok": True}
    assert sleeps == [1.0]


def test_unsafe_post_is_not_retried(server, make_client, sleeps):
    server.script(Reply(500), Reply(201, {"id": 1}))

    with pytest.raises(ProviderUnavailable) as info:
        make_client().request("POST", "payments", json={"amount": 100})
    assert info.value.status == 500
    assert len(server.requests) == 1
    assert sleeps == []


def test_unsafe_post_rate_limited_reports_retry_after(server, make_client, sleeps):
    when = formatdate(usegmt=True)  # an HTTP date: "now", so 0 s
    server.script(Reply(429, headers={"Retry-After": when}))

    with pytest.raises(ProviderRateLimited) as info:
        make_client().request("POST", "payments", json={})
    assert info.value.retry_after is not None
    assert 0 <= info.value.retry_after <= 1
    assert len(server.requests) == 1
    assert sleeps == []


def test_idempotent_post_is_retried(server, make_client):
    server.script(Reply(500), Reply(201, {"id": 1}))

    body = make_client().request(
        "POST", "payments", idempotent=True, json={"order_id": "A-1"}
    )
    assert body == {"id": 1}
    assert len(server.requests) == 2
    assert [json.loads(r.body) for r in server.requests] == [{"order_id": "A-1"}] * 2


def test_put_is_safe_to_repeat_and_patch_is_not(server, make_client):
    server.script(Reply(503), Reply(200, {}), Reply(503))
    client = make_client()

    client.request("PUT", "things/1", json={})
    with pytest.raises(ProviderUnavailable):
        client.request("PATCH", "things/1", json={})
    assert [r.method for r in server.requests] == ["PUT", "PUT", "PATCH"]


# --- transport failures -------------------------------------------------------


@pytest.mark.parametrize("method", ["GET", "POST"])
def test_connection_refused_is_retried_then_unavailable(make_client, sleeps, method):
    # Safe even for a POST: a refused connection never carried the request.
    client = make_client(base_url=refused_url(), retries=3)

    with pytest.raises(ProviderUnavailable) as info:
        client.request(method, "items")
    assert "could not connect" in str(info.value)
    assert info.value.status is None
    assert len(sleeps) == 2  # 4 attempts: immediate, then two backoffs


def test_read_timeout_on_get_is_retried(server, make_client):
    server.script(Reply(hang=True), Reply(200, {"ok": True}))
    client = make_client(timeout=(1.0, 0.15), retries=1)

    assert client.request("GET", "items") == {"ok": True}
    assert len(server.requests) == 2


def test_read_timeout_on_unsafe_post_is_not_retried(server, make_client):
    # The provider may have acted on the request that timed out.
    server.script(Reply(hang=True), Reply(201, {}))
    client = make_client(timeout=(1.0, 0.15), retries=3)

    with pytest.raises(ProviderUnavailable) as info:
        client.request("POST", "payments", json={})
    assert "timed out" in str(info.value)
    assert len(server.requests) == 1


# --- error mapping -----------------------------------------------------------


def parse_envelope(status: int, body: Any) -> tuple[str, str, dict[str, Any]]:
    error = body["error"]
    return error["code"], error["message"], {"field": error.get("field", "")}


def test_client_error_maps_to_api_error_with_provider_code(server, make_client):
    envelope = {
        "error": {"code": "amount_invalid", "message": "Bad amount", "field": "a"}
    }
    server.script(Reply(400, envelope), Reply(200))
    client = make_client(error_parser=parse_envelope)

    with pytest.raises(ProviderAPIError) as info:
        client.request("GET", "items")
    error = info.value
    assert type(error) is ProviderAPIError
    assert (error.status, error.code) == (400, "amount_invalid")
    assert error.provider_message == "Bad amount"
    assert error.details == {"field": "a"}
    assert "amount_invalid" in str(error) and "Bad amount" in str(error)
    assert len(server.requests) == 1  # a 4xx is never retried


def test_broken_error_parser_keeps_the_status(server, make_client):
    server.script(Reply(409, "not json at all"))
    client = make_client(error_parser=parse_envelope)

    with pytest.raises(ProviderAPIError) as info:
        client.request("GET", "items")
    assert info.value.status == 409


@pytest.mark.parametrize("status", [401, 403])
def test_auth_failures_map_to_auth_error(server, make_client, status):
    server.script(Reply(status, {"error": {"code": "bad_token", "message": "no"}}))

    with pytest.raises(ProviderAuthError) as info:
        make_client(error_parser=parse_envelope).request("GET", "me")
    assert info.value.status == status
    assert info.value.code == "bad_token"
    assert len(server.requests) == 1


def test_expected_statuses_and_bodies(server, make_client):
    server.script(Reply(202, b""), Reply(200, "plain text"), Reply(204, b""))
    client = make_client()

    assert client.request("GET", "a", expected=[202]) is None
    assert client.request("GET", "b") == "plain text"
    with pytest.raises(ProviderResponseError) as info:
        client.request("GET", "c", expected=[200])
    assert info.value.status == 204


def test_request_raw_returns_any_status(server, make_client):
    server.script(Reply(404, {"error": "missing"}))

    response = make_client().request_raw("GET", "items/9")
    assert response.status_code == 404
    assert server.requests[0].path == "/api/items/9"


# --- keep-alive -------------------------------------------------------------


def test_calls_reuse_one_connection(server, make_client):
    server.script(*[Reply(200, {"n": n}) for n in range(5)])
    client = make_client()

    client.request("GET", "a")
    client.request("GET", "b")
    client.request("POST", "c", json={})  # the unsafe policy shares the pool
    client.request("POST", "d", idempotent=True, json={})
    client.request("DELETE", "e")

    assert len(server.requests) == 5
    assert len(server.connections) == 1
    assert {r.peer for r in server.requests} == {server.connections[0]}


def test_session_headers_are_sent(server, make_client):
    server.script(Reply(200))

    make_client(headers={"X-Api-Key": "k-1"}).request("GET", "a")
    seen = server.requests[0].headers
    assert seen["X-Api-Key"] == "k-1"
    assert seen["User-Agent"] == "django-payments-ru"


# --- secrets never leak -------------------------------------------------------

CANARY = "cAnArY-7f3e9b2d41c8"
TOKEN = "tOkEn-5a8c1e6f70d2"
# Changes when URL-encoded: the query string carries it as %2B, %2F, %3D, %26.
ENCODED = "k+y/s3c=r&t"
SECRETS = (CANARY, TOKEN, ENCODED)
FORMS = {
    form
    for secret in SECRETS
    for form in (secret, quote(secret, safe=""), quote_plus(secret))
}


def leaks(text: str) -> set[str]:
    return {form for form in FORMS if form in text}


def test_secrets_reach_no_log_record_and_no_exception(server, sleeps, caplog):
    caplog.set_level(logging.DEBUG)
    echo = {"error": {"code": "bad", "message": f"key {CANARY} token {TOKEN}"}}
    server.script(
        Reply(503),
        Reply(200, {"ok": True}),  # success after a retry
        Reply(400, echo),
        Reply(401, echo),
        *[Reply(500, echo)] * 3,
        Reply(429, echo, headers={"Retry-After": "600"}),
        Reply(hang=True),
        Reply(500, echo),  # an unsafe POST
    )

    def make(base_url: str) -> HttpClient:
        return HttpClient(
            provider="canary",
            base_url=base_url,
            timeout=(1.0, 0.15),
            retries=2,
            backoff_jitter=0.0,
            secrets=[CANARY, ENCODED],
            error_parser=parse_envelope,
            headers={"X-Api-Key": CANARY},
            sleep=sleeps.append,
        )

    client = make(server.url)
    client.add_secret(TOKEN)  # a token obtained at run time
    refused = make(refused_url())
    refused.add_secret(TOKEN)
    auth = {"Authorization": f"Bearer {TOKEN}"}
    path = f"items?api_key={CANARY}"
    params = {"sig": ENCODED}

    errors: list[BaseException] = []
    assert client.request("GET", path, params=params, headers=auth) == {"ok": True}
    calls: list[tuple[HttpClient, str, dict[str, Any]]] = [
        (client, "GET", {}),  # 400
        (client, "GET", {}),  # 401
        (client, "GET", {}),  # 500, three times
        (client, "GET", {}),  # 429, longer than we may wait
        (client, "POST", {"json": {"key": CANARY}}),  # read timeout
        (client, "POST", {"json": {"key": CANARY}}),  # 500, not retried
        (refused, "GET", {}),  # connection refused
        (refused, "POST", {"json": {"key": CANARY}}),
    ]
    for target, method, extra in calls:
        with pytest.raises(Exception) as info:
            target.request(method, path, params=params, headers=auth, **extra)
        errors.append(info.value)
    client.close()
    refused.close()

    kinds = [type(e).__name__ for e in errors]
    assert kinds == [
        "ProviderAPIError",
        "ProviderAuthError",
        "ProviderUnavailable",
        "ProviderRateLimited",
        "ProviderUnavailable",
        "ProviderUnavailable",
        "ProviderUnavailable",
        "ProviderUnavailable",
    ]
    for error in errors:
        for text in exception_texts(error):
            assert not leaks(text), (type(error).__name__, text)

    records = caplog.records
    # The check means something only if urllib3 did log the URLs.
    assert any(
        r.name.startswith("urllib3") and "/api/items" in r.getMessage() for r in records
    )
    assert any("[redacted]" in r.getMessage() for r in records)
    for record in records:
        for text in record_texts(record):
            assert not leaks(text), (record.name, text)
    # The requests did carry the secrets: redaction is not a broken request.
    first = server.requests[0]
    assert CANARY in first.path and quote(ENCODED, safe="") in first.path
    assert first.headers["X-Api-Key"] == CANARY
    assert first.headers["Authorization"] == f"Bearer {TOKEN}"


def test_redact_covers_url_encoded_forms():
    client = HttpClient(provider="p", base_url="http://x/", secrets=["a b/c", ""])
    try:
        text = client.redact("q=a+b%2Fc&r=a%20b%2Fc&s=a%20b/c&t=a b/c")
        assert text == "q=[redacted]&r=[redacted]&s=[redacted]&t=[redacted]"
    finally:
        client.close()


def test_log_filter_leaves_other_records_alone(caplog):
    caplog.set_level(logging.DEBUG)
    logging.getLogger("urllib3.connectionpool").debug("plain %s", "value")
    assert caplog.records[-1].getMessage() == "plain value"
    assert caplog.records[-1].args == ("value",)
