"""Key blocking across processes, through a cache they share (Redis): one
process sees Love&Pay answer ``API_BLOCKED``; the others, forked workers with
nothing in common with it but the cache, stop calling at once: not one request
reaches the server (counted there)."""

from __future__ import annotations

import multiprocessing
import threading
import uuid
from http.server import BaseHTTPRequestHandler
from typing import Any

import pytest
from django.conf import settings
from django.test import override_settings

from django_payments_ru.providers.loveandpay import Provider
from django_payments_ru.providers.loveandpay.errors import ApiBlocked
from tests.local_http import LocalServer

from .cases import ALIAS, provider_config

pytestmark = pytest.mark.django_db(transaction=True)


class BlockingLoveAndPay(LocalServer):
    """Answers every request as Love&Pay does once it blocked the key."""

    def __init__(self) -> None:
        super().__init__()
        self.count = 0
        self.lock = threading.Lock()

    def respond(self, handler: BaseHTTPRequestHandler, body: bytes) -> None:
        with self.lock:
            self.count += 1
        self.send(
            handler,
            403,
            {
                "success": False,
                "error": {
                    "code": "API_BLOCKED",
                    "message": "API key blocked",
                    "requestId": "req_blocked",
                },
            },
            headers={"x-request-id": "req_blocked"},
        )


def _redis_cache(prefix: str) -> dict[str, Any]:
    return {
        "default": {
            "BACKEND": "django.core.cache.backends.redis.RedisCache",
            "LOCATION": settings.REDIS_URL,
            "KEY_PREFIX": prefix,
        }
    }


def _worker(
    options: dict[str, Any], prefix: str, results: Any
) -> None:  # pragma: no cover - runs in the forked process
    with override_settings(CACHES=_redis_cache(prefix)):
        provider = Provider(ALIAS, options)
        try:
            provider.get_invoice("inv_1")
        except ApiBlocked as exc:
            results.put(("blocked", str(exc)))
        except Exception as exc:  # reported to the test rather than lost
            results.put(("error", repr(exc)))
        else:
            results.put(("answered", ""))


def test_a_block_seen_by_one_process_stops_every_other():
    if not settings.REDIS_URL:
        pytest.skip(
            "REDIS_URL is not set: processes share the block through a cache "
            "(e.g. REDIS_URL=redis://127.0.0.1:6379/0)."
        )
    import redis

    server = BlockingLoveAndPay()
    server.start()
    prefix = f"test-keyblock-{uuid.uuid4().hex}"
    options = provider_config(
        api_url=f"{server.root}/api/v2",
        requests_per_minute=None,
        requests_per_hour=None,
    )["OPTIONS"]
    context = multiprocessing.get_context("fork")
    results = context.Queue()
    try:
        with override_settings(CACHES=_redis_cache(prefix)):
            first = Provider(ALIAS, options)
            with pytest.raises(ApiBlocked):
                first.get_invoice("inv_1")
            assert server.count == 1  # the one answer that told us
            workers = [
                context.Process(target=_worker, args=(options, prefix, results))
                for _ in range(3)
            ]
            for worker in workers:
                worker.start()
            outcomes = [results.get(timeout=20) for _ in workers]
            for worker in workers:
                worker.join(5)
    finally:
        server.stop()
        client = redis.Redis.from_url(settings.REDIS_URL)
        for key in client.scan_iter(f"{prefix}*"):
            client.delete(key)

    assert [w.exitcode for w in workers] == [0, 0, 0]
    assert [kind for kind, _ in outcomes] == ["blocked"] * 3, outcomes
    for _, text in outcomes:
        assert "support chat on loveandpay.io" in text and "Переиндексировать" in text
    assert server.count == 1  # no other process sent anything
