"""A request-rate limiter shared by every process, built on the Django cache.

PayConnect allows at most 100 requests per minute from one IP address, over all
endpoints (payconnect.md F-13), counted in a sliding 60-second window (§3.9,
A-11). Every worker of a shop sends from the same address, so the budget is
shared by the processes: the counters live in the Django cache
(``PAYMENTS_RU["CACHE"]``), whose ``add()`` and ``incr()`` are atomic on the
Redis, memcached, database and local-memory backends.

A sliding window cannot be kept exactly with ``add``/``incr`` alone, and a plain
per-minute counter could send 100 requests at the end of one minute and 100 more
at the start of the next: 200 in two seconds, which the provider refuses. So the
period is cut into ``buckets`` short windows, each allowed ``limit // (buckets +
1)`` requests: any span of one period touches at most ``buckets + 1`` of them,
so no span ever carries more than ``limit`` requests. With the defaults (100 a
minute, 10 windows of 6 s, 9 each) that is at most 99 requests in any 60 s and
90 a minute sustained.

A caller that finds its window full waits for the next one when the wait is
short (at most ``max_wait`` seconds in all), else fails at once with
:class:`~django_payments_ru.exceptions.ProviderRateLimited` saying when to try
again: a worker is never blocked for long, and the provider is never hammered.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable

from django.core.cache import BaseCache, caches

from ...conf import payments_settings
from ...exceptions import ProviderRateLimited

#: Prefix of every cache key this module writes.
KEY_PREFIX = "payments_ru:ratelimit:"


class RateLimiter:
    """At most ``limit`` calls per ``period`` seconds for everyone sharing ``key``.

    :param key: names the budget (e.g. the provider and the API host); short
        ASCII without spaces.
    :param limit: calls allowed in any span of ``period`` seconds.
    :param period: seconds.
    :param buckets: how many windows a period is cut into (more windows: smoother
        but a lower sustained rate, ``limit * buckets / (buckets + 1)``).
    :param max_wait: the longest :meth:`acquire` waits in all, in seconds; a
        longer wait raises :class:`ProviderRateLimited` without waiting.
    :param cache_alias: the ``settings.CACHES`` entry; by default
        ``PAYMENTS_RU["CACHE"]``, read at each use.
    :param clock: the current Unix time (injectable for tests).
    :param sleep: how to wait (injectable for tests).
    :param provider: the provider alias, carried by the errors raised here.
    :param describe: the rule in words, for the error message.
    """

    def __init__(
        self,
        key: str,
        *,
        limit: int,
        period: float = 60.0,
        buckets: int = 10,
        max_wait: float | Callable[[], float] = 30.0,
        cache_alias: str | None = None,
        clock: Callable[[], float] = time.time,
        sleep: Callable[[float], None] = time.sleep,
        provider: str = "",
        describe: str = "",
    ) -> None:
        if limit < buckets + 1:
            # Fewer calls than windows: one window per allowed call instead.
            buckets = max(1, limit - 1)
        self.key = key
        self.limit = limit
        self.period = float(period)
        self.buckets = buckets
        self.window = self.period / buckets
        self.quota = max(1, limit // (buckets + 1))
        self._max_wait = max_wait
        self._cache_alias = cache_alias
        self.clock = clock
        self.sleep = sleep
        self.provider = provider
        self.describe = describe or f"at most {limit} requests per {period:g} s"

    @property
    def max_wait(self) -> float:
        value = self._max_wait
        return float(value() if callable(value) else value)

    def _cache(self) -> BaseCache:
        return caches[self._cache_alias or payments_settings.CACHE]

    def _take(self, cache: BaseCache, window: int) -> bool:
        """Count one call in ``window``; whether it fits the quota."""
        key = f"{KEY_PREFIX}{self.key}:{window}"
        # The counter outlives its window by a period, then the cache drops it.
        timeout = math.ceil(self.window + self.period)
        cache.add(key, 0, timeout=timeout)
        try:
            count = cache.incr(key)
        except ValueError:  # evicted between add() and incr(): start it again
            cache.add(key, 1, timeout=timeout)
            count = 1
        return count <= self.quota

    def acquire(self) -> None:
        """Return when a call may be sent; raise ProviderRateLimited if that
        would take longer than ``max_wait``."""
        cache = self._cache()
        waited = 0.0
        while True:
            now = self.clock()
            window = math.floor(now / self.window)
            if self._take(cache, window):
                return
            wait = (window + 1) * self.window - now
            if waited + wait > self.max_wait:
                raise ProviderRateLimited(
                    f"PayConnect allows {self.describe} from this server, and "
                    f"this server's share is used up for the next {wait:.0f} s; "
                    f"waiting longer than {self.max_wait:g} s is not allowed "
                    "(PAYMENTS_RU['HTTP_MAX_RETRY_AFTER']).",
                    provider=self.provider,
                    code="rate_limited",
                    retry_after=wait,
                    hint="Try again later.",
                )
            self.sleep(wait)
            waited += wait
