"""The blocked API key, remembered in the shared Django cache.

Love&Pay's anomaly detection blocks a key that sends bursts or fails to
authenticate too often (seed, loveandpay.md section 2.1); a blocked key stays
dead until support unblocks it *and* the merchant presses "Переиндексировать".
Calling on with it only adds to the anomaly, so the first ``API_BLOCKED``
answer is written to ``PAYMENTS_RU["CACHE"]`` (the cache
:mod:`~django_payments_ru.providers.tokens` and
:mod:`~django_payments_ru.providers.ratelimit` use) without an expiry: every
process of the shop reads it before each call and fails fast, sending nothing,
until the admin's "the key was re-indexed" succeeds with one probe call.

Use a cache that every process shares and that does not evict (Redis, the
database): with a per-process cache each process learns of the block from its
own first refused call.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from django.core.cache import BaseCache, caches

from ...conf import payments_settings
from ..tokens import fingerprint

KEY_PREFIX = "payments_ru:loveandpay:blocked:"


@dataclass(frozen=True)
class Block:
    """What is known about a block: when it was seen, and the answer."""

    since: float
    code: str = "API_BLOCKED"
    request_id: str = ""
    provider_message: str = ""

    def to_json(self) -> dict[str, Any]:
        return {
            "since": self.since,
            "code": self.code,
            "request_id": self.request_id,
            "provider_message": self.provider_message,
        }

    @classmethod
    def from_json(cls, data: Any) -> Block | None:
        if not isinstance(data, dict) or not isinstance(data.get("since"), int | float):
            return None
        return cls(
            since=float(data["since"]),
            code=str(data.get("code", "API_BLOCKED")),
            request_id=str(data.get("request_id", "")),
            provider_message=str(data.get("provider_message", ""))[:500],
        )


class KeyBlock:
    """The block flag of one API key (by its fingerprint, with the API host:
    a test key and a live key are blocked separately)."""

    def __init__(
        self,
        api_key: str,
        api_url: str,
        *,
        cache_alias: str | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.key = KEY_PREFIX + fingerprint(api_key, api_url)
        self._cache_alias = cache_alias
        self.clock = clock

    def _cache(self) -> BaseCache:
        # Looked up at each use: override_settings and per-thread handlers.
        return caches[self._cache_alias or payments_settings.CACHE]

    def get(self) -> Block | None:
        """The block, or ``None`` while the key works (one cache read)."""
        return Block.from_json(self._cache().get(self.key))

    def set(
        self, *, code: str, request_id: str = "", provider_message: str = ""
    ) -> Block:
        """Remember the block for every process, without an expiry."""
        block = Block(self.clock(), code, request_id, provider_message)
        self._cache().set(self.key, block.to_json(), timeout=None)
        return block

    def clear(self) -> None:
        self._cache().delete(self.key)
