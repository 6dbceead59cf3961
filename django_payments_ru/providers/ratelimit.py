"""A provider's documented request limit, kept on the client side by every
process together, in the Django cache.

A provider that documents "at most N requests per P seconds" (PayConnect: 100
per sliding 60 s per IP address, payconnect.md F-13, §3.9, A-11) builds one
:class:`RateLimiter` with ``limit=N, period=P`` and calls
:meth:`RateLimiter.acquire` before each request::

    limiter = RateLimiter(
        f"payconnect:{fingerprint(host)}",
        limit=100,
        period=60.0,
        service="PayConnect",
        provider=self.alias,
    )
    limiter.acquire()  # returns when the request may go, or raises
    self.http.request(...)

**The rule kept is exact:** no span of ``period`` seconds ever holds more than
``limit`` grants, and a call is let through at once whenever that still holds.
A burst of ``limit`` calls is never delayed; the next call waits exactly until
the oldest of the last ``limit`` grants leaves the window (``oldest + period -
now``), or, when that is longer than ``max_wait``, fails at once with
:class:`~django_payments_ru.exceptions.ProviderRateLimited` whose
``retry_after`` says when to try again.

**How.** A sliding-window log: the cache entry ``payments_ru:ratelimit:<key>:log``
holds the times of the last ``limit`` grants. A call takes the short
cross-process lock ``...:lock``, reads the log, and is granted when fewer than
``limit`` of those times lie within the last ``period`` seconds; then it writes
the log back with its own time and releases the lock. Counting "at most N in
any window" per grant, against the N latest grants, is exactly the rule: if a
window held N + 1 grants, the last of them to be granted would have found the
other N in the log, inside its window, and been refused. (A token bucket or
GCRA with a burst of N is not exact for a sliding window: after a burst of N it
lets one more through every P/N seconds, up to 2N - 1 in one window.)

**Across processes.** The lock is ``cache.add(lock, owner, timeout)``: one
atomic "create if absent" on the Redis, memcached, database and local-memory
backends, so one process at a time reads and writes the log.

* A process that dies (or hangs) holding the lock holds it for ``lock_timeout``
  seconds at most: the cache expires it, and the others, polling it, go on.
  Waiting for the lock does not count against ``max_wait``; a caller that cannot
  get it within ``lock_timeout`` + 1 s fails with ProviderRateLimited.
* Right before writing the log, the holder checks that the lock still carries
  its own owner token (or, if the lock is gone, that the log is still the one
  it read). A holder that was frozen past ``lock_timeout`` (its lock expired,
  and perhaps was taken and released by another process meanwhile) therefore
  does not overwrite a newer log with its stale one: it starts again.
  The same check narrows the database backend's one non-atomic case, an
  ``add()`` over a row that has expired but not been culled yet (only after a
  holder died).
* The threads of one process queue on a process-local lock first, so they do
  not poll the cache against each other.
* The log expires ``period`` + 2 s after the last grant, when every time in it
  is out of the window anyway. If the cache evicts it or is cleared (memcached
  under memory pressure, ``cache.clear()``), the budget starts again: keep the
  limiter in a cache that does not evict recent entries.
* Each grant costs a handful of cache round trips and rewrites a log of
  ``limit`` times: meant for documented limits of up to a few hundred calls per
  period, not for thousands.

A grant is counted when :meth:`~RateLimiter.acquire` returns, not when the
provider receives the request: calls are assumed to leave the server promptly,
in the order they were granted (network delay varies both ways; a provider's
own ``429`` and ``Retry-After`` remain the backstop).
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager

from django.core.cache import BaseCache, caches

from ..conf import payments_settings
from ..exceptions import ProviderRateLimited
from . import cachelock

#: Prefix of every cache key this module writes.
KEY_PREFIX = "payments_ru:ratelimit:"


class _LockLost(Exception):
    """The cross-process lock expired while this caller held it."""


class RateLimiter:
    """At most ``limit`` calls in any ``period`` seconds, for everyone sharing
    ``key``.

    :param key: names the budget (e.g. the provider and the API host); short
        ASCII without spaces (memcached's key rules).
    :param limit: calls allowed in any span of ``period`` seconds (at least 1).
    :param period: seconds (more than 0).
    :param max_wait: the longest :meth:`acquire` waits for the budget in all, in
        seconds, or a callable giving it (read at each call); a longer wait raises
        :class:`~django_payments_ru.exceptions.ProviderRateLimited` without
        waiting. By default ``PAYMENTS_RU["HTTP_MAX_RETRY_AFTER"]``.
    :param cache_alias: the ``settings.CACHES`` entry; by default
        ``PAYMENTS_RU["CACHE"]``, read at each use.
    :param clock: the current Unix time: the grants' times (injectable for tests).
    :param sleep: how to wait for the budget (injectable for tests).
    :param service: the provider's name, for the error message.
    :param provider: the provider alias, carried by the errors raised here.
    :param describe: the rule in words, for the error message.
    :param lock_timeout: seconds after which the cross-process lock of a caller
        that died holding it expires (whole seconds, at least 1; the critical
        section is a few cache calls).
    :param lock_clock: measures the wait for the lock (real time by default: the
        cache expires the lock in real time, whatever ``clock`` says).
    :param lock_sleep: how to wait between two tries of the lock.
    :param lock_poll: seconds between two tries of the lock.
    """

    def __init__(
        self,
        key: str,
        *,
        limit: int,
        period: float = 60.0,
        max_wait: float | Callable[[], float] | None = None,
        cache_alias: str | None = None,
        clock: Callable[[], float] = time.time,
        sleep: Callable[[float], None] = time.sleep,
        service: str = "The provider",
        provider: str = "",
        describe: str = "",
        lock_timeout: float = 5.0,
        lock_clock: Callable[[], float] = time.monotonic,
        lock_sleep: Callable[[float], None] = time.sleep,
        lock_poll: float = 0.005,
    ) -> None:
        if isinstance(limit, bool) or not isinstance(limit, int) or limit < 1:
            raise ValueError(f"limit must be a positive integer, not {limit!r}.")
        if not period > 0:
            raise ValueError(f"period must be more than 0 seconds, not {period!r}.")
        self.key = key
        self.limit = limit
        self.period = float(period)
        self._max_wait = max_wait
        self._cache_alias = cache_alias
        self.clock = clock
        self.sleep = sleep
        self.service = service
        self.provider = provider
        self.describe = describe or f"at most {limit} requests per {period:g} s"
        self.lock_timeout = max(1, math.ceil(lock_timeout))
        self.lock_clock = lock_clock
        self.lock_sleep = lock_sleep
        self.lock_poll = lock_poll

    # --- public -------------------------------------------------------------

    @property
    def max_wait(self) -> float:
        value = self._max_wait
        if value is None:
            return float(payments_settings.HTTP_MAX_RETRY_AFTER)
        return float(value() if callable(value) else value)

    @property
    def cache_alias(self) -> str:
        """The ``settings.CACHES`` alias in use."""
        return self._cache_alias or payments_settings.CACHE

    @property
    def log_key(self) -> str:
        """The cache key of the times of the last ``limit`` grants."""
        return f"{KEY_PREFIX}{self.key}:log"

    @property
    def lock_key(self) -> str:
        """The cache key of the cross-process lock."""
        return f"{KEY_PREFIX}{self.key}:lock"

    def acquire(self) -> None:
        """Return when a call may be sent; raise ProviderRateLimited if that
        would take longer than ``max_wait``."""
        cache = caches[self.cache_alias]
        waited = 0.0
        while True:
            try:
                wait = self._take(cache)
            except _LockLost:
                continue  # nothing was written: decide again on the current log
            if wait is None:
                return
            if waited + wait > self.max_wait:
                raise ProviderRateLimited(
                    f"{self.service} allows {self.describe} from this server, and "
                    f"the budget is used up for the next {wait:.1f} s; waiting longer "
                    f"than {self.max_wait:g} s is not allowed "
                    "(PAYMENTS_RU['HTTP_MAX_RETRY_AFTER']).",
                    provider=self.provider,
                    code="rate_limited",
                    retry_after=wait,
                    hint="Try again later.",
                )
            self.sleep(wait)
            waited += wait

    def grants(self) -> list[float]:
        """The times of the last ``limit`` grants (oldest first), as stored."""
        return self._load(caches[self.cache_alias])

    # --- internals ----------------------------------------------------------

    def _take(self, cache: BaseCache) -> float | None:
        """Grant one call now (``None``), or the seconds until one may be."""
        with self._locked(cache) as owner:
            stored = cache.get(self.log_key)
            now = self.clock()
            # A grant at t counts until t + period, not at t + period (the window
            # is half-open). Compared as "t + period > now", the wait below is
            # exactly the positive difference of the same two floats.
            recent = sorted(t for t in self._times(stored) if t + self.period > now)
            if len(recent) >= self.limit:
                # A place frees up when the limit-th latest grant leaves it.
                return recent[-self.limit] + self.period - now
            recent.append(now)
            recent.sort()
            if not self._still_ours(cache, owner, stored):
                raise _LockLost
            # Outlives its newest time by a period (plus the backends' rounding
            # of timeouts to whole seconds), then nothing in it counts any more.
            cache.set(
                self.log_key,
                recent[-self.limit :],
                timeout=math.ceil(self.period) + 2,
            )
            return None

    def _still_ours(self, cache: BaseCache, owner: str, stored: object) -> bool:
        """Whether the log read under the lock may be written back."""
        holder = cache.get(self.lock_key)
        if holder == owner:
            return True
        # Gone: it expired while we held it (or the cache keeps nothing, like
        # the dummy backend). Safe only if nobody wrote the log meanwhile.
        return holder is None and cache.get(self.log_key) == stored

    def _load(self, cache: BaseCache) -> list[float]:
        return self._times(cache.get(self.log_key))

    @staticmethod
    def _times(raw: object) -> list[float]:
        if not isinstance(raw, list):
            return []
        return [
            float(t)
            for t in raw
            if isinstance(t, int | float) and not isinstance(t, bool)
        ]

    @contextmanager
    def _locked(self, cache: BaseCache) -> Iterator[str]:
        """Hold the cross-process lock; yields its owner token."""
        # A dead holder's lock expires after lock_timeout; one more second for
        # backends that count expiry in whole seconds.
        patience = self.lock_timeout + 1.0
        local = cachelock.thread_lock(self.cache_alias, self.lock_key)
        if not local.acquire(timeout=patience):
            raise self._busy()
        try:
            try:
                owner = cachelock.acquire(
                    cache,
                    self.lock_key,
                    timeout=self.lock_timeout,
                    patience=patience,
                    clock=self.lock_clock,
                    sleep=self.lock_sleep,
                    poll=self.lock_poll,
                )
            except TimeoutError:
                raise self._busy() from None
            assert owner is not None  # nothing ends the wait but the lock
            try:
                yield owner
            finally:
                # The check before the write covers a lock that expired.
                cachelock.release(cache, self.lock_key, owner)
        finally:
            local.release()

    def _busy(self) -> ProviderRateLimited:
        return ProviderRateLimited(
            f"Gave up after {self.lock_timeout + 1:g} s waiting for another worker "
            f"to release the {self.service} rate limiter's lock ({self.key}).",
            provider=self.provider,
            code="rate_limiter_busy",
            retry_after=float(self.lock_timeout),
            hint="The cache may be unreachable or overloaded; the request may be "
            "retried later.",
        )
