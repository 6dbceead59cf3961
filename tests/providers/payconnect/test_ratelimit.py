"""The client's shared rate limiter (payconnect.md F-13, §3.9, A-11): calls go
through at once while the sliding window has budget, never more than the limit
in any 60 s, across processes; a call waits exactly until the oldest grant
leaves the window when that is short, and fails clearly when not. The clock and
the sleep are injected: nothing here sleeps for real except the Redis test of a
dead process's lock (two seconds)."""

from __future__ import annotations

import bisect
import threading
import uuid
from collections.abc import Iterator
from types import SimpleNamespace

import pytest
from django.core.cache import caches
from django.core.management import call_command
from django.test import override_settings
from hypothesis import HealthCheck, event, given
from hypothesis import settings as hsettings
from hypothesis import strategies as st

from django_payments_ru.exceptions import ProviderRateLimited
from django_payments_ru.providers import ratelimit
from django_payments_ru.providers.payconnect import ratelimit as payconnect_ratelimit
from django_payments_ru.providers.ratelimit import RateLimiter

LOCMEM = "django.core.cache.backends.locmem.LocMemCache"
DATABASE = "django.core.cache.backends.db.DatabaseCache"
T0 = 1_700_000_000.0


@pytest.fixture(autouse=True)
def shared_cache() -> Iterator[None]:
    # "twin" shares the storage of "default": another process, the same cache.
    location = f"ratelimit-{uuid.uuid4().hex}"
    with override_settings(
        CACHES={
            "default": {"BACKEND": LOCMEM, "LOCATION": location},
            "twin": {"BACKEND": LOCMEM, "LOCATION": location},
        }
    ):
        yield


class Time:
    def __init__(self) -> None:
        self.now = T0
        self.sleeps: list[float] = []

    def clock(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds


def limiter(time: Time, key: str = "test", **kwargs) -> RateLimiter:
    kwargs.setdefault("limit", 100)
    kwargs.setdefault("max_wait", 1000)
    return RateLimiter(key, clock=time.clock, sleep=time.sleep, **kwargs)


@pytest.fixture
def cache_time(monkeypatch) -> Time:
    """The local-memory cache expires entries on the injected clock too."""
    time = Time()
    fake = SimpleNamespace(time=time.clock)
    monkeypatch.setattr("django.core.cache.backends.base.time", fake)
    monkeypatch.setattr("django.core.cache.backends.locmem.time", fake)
    return time


def test_payconnect_uses_the_shared_limiter():
    assert payconnect_ratelimit.RateLimiter is RateLimiter
    assert payconnect_ratelimit.KEY_PREFIX == ratelimit.KEY_PREFIX


# --- bursts ----------------------------------------------------------------


@pytest.fixture(params=["locmem", "database"])
def backend(request) -> Iterator[None]:
    if request.param == "locmem":
        yield
        return
    request.getfixturevalue("db")
    table = f"ratelimit_{uuid.uuid4().hex[:8]}"
    db_cache = {"BACKEND": DATABASE, "LOCATION": table}
    with override_settings(CACHES={"default": db_cache, "twin": db_cache}):
        call_command("createcachetable", verbosity=0)
        yield


def test_a_burst_of_the_limit_goes_through_at_once(backend):
    time = Time()
    processes = [limiter(time), limiter(time, cache_alias="twin")]
    for n in range(100):  # 30 customers checking out at once, and more
        processes[n % 2].acquire()
        time.now += 0.25
    assert time.sleeps == []
    # The 101st (at +25 s) waits until the first (at +0 s) is 60 s old...
    processes[0].acquire()
    assert time.sleeps == [35.0]
    assert time.now == T0 + 60
    # ...and the 102nd until the second is.
    processes[1].acquire()
    assert time.sleeps == [35.0, 0.25]
    assert processes[0].grants()[-2:] == [T0 + 60, T0 + 60.25]


def test_inexact_times_still_wait_once_and_exactly():
    time = Time()
    limited = limiter(time)
    for _ in range(100):
        limited.acquire()
        time.now += 0.1  # not exact in binary: the sums round
    first = limited.grants()[0]
    before = time.now
    limited.acquire()
    assert time.sleeps == [pytest.approx(first + 60 - before)]
    assert time.now == first + 60


def test_a_wait_longer_than_max_wait_fails_with_the_retry_time():
    time = Time()
    strict = limiter(time, max_wait=30)
    for _ in range(100):
        strict.acquire()
    assert time.sleeps == []
    time.now = T0 + 10
    with pytest.raises(ProviderRateLimited) as caught:
        strict.acquire()
    assert caught.value.retry_after == 50.0
    assert caught.value.code == "rate_limited"
    assert "at most 100 requests per 60 s" in str(caught.value)
    assert "HTTP_MAX_RETRY_AFTER" in str(caught.value)
    assert time.sleeps == []
    # A wait of exactly max_wait is waited.
    time.now = T0 + 30
    strict.acquire()
    assert time.sleeps == [30.0]
    # The refused call was not counted: 99 more go at once, the 100th waits.
    for _ in range(99):
        strict.acquire()
    assert time.sleeps == [30.0]
    with pytest.raises(ProviderRateLimited) as caught:
        strict.acquire()
    assert caught.value.retry_after == 60.0


def test_the_budget_is_per_key_and_the_limit_is_the_limiters():
    time = Time()
    for _ in range(100):
        limiter(time, key="one").acquire()
    limiter(time, key="two").acquire()  # another budget
    small = limiter(time, key="small", limit=2, period=1, max_wait=0)
    small.acquire()
    small.acquire()
    with pytest.raises(ProviderRateLimited) as caught:
        small.acquire()
    assert caught.value.retry_after == 1.0
    assert time.sleeps == []


@pytest.mark.parametrize("bad", [{"limit": 0}, {"limit": True}, {"period": 0}])
def test_a_nonsensical_limit_is_refused(bad):
    with pytest.raises(ValueError):
        limiter(Time(), **bad)


# --- any arrival times -------------------------------------------------------


@st.composite
def arrivals(draw) -> list[tuple[int, bool]]:
    """Calls as (gap since the previous one, which of two processes calls).

    Gaps are in 1/64 s, so that every time and every wait is exact in binary
    floating point: busy spells (gaps up to ``busiest``), now and then a quiet
    spell of up to 90 s.
    """
    busiest = draw(st.integers(0, 64))
    quiet_one_in = draw(st.sampled_from([0, 50, 500]))
    calls = []
    for _ in range(draw(st.integers(101, 400))):
        if quiet_one_in and draw(st.integers(1, quiet_one_in)) == 1:
            gap = draw(st.integers(0, 64 * 90))
        else:
            gap = draw(st.integers(0, busiest))
        calls.append((gap, draw(st.booleans())))
    return calls


@hsettings(
    max_examples=100,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@given(calls=arrivals(), limit=st.sampled_from([1, 3, 100]))
def test_no_window_ever_holds_more_than_the_limit_and_none_waits_for_nothing(
    calls, limit
):
    time = Time()
    key = uuid.uuid4().hex
    processes = [
        limiter(time, key=key, limit=limit),
        limiter(time, key=key, limit=limit, cache_alias="twin"),
    ]
    granted: list[float] = []
    for gap, which in calls:
        time.now += gap / 64
        arrival = time.now
        # The earliest moment the rule allows: now, unless the window is full,
        # then when the limit-th latest grant leaves it.
        window = granted[bisect.bisect_right(granted, arrival - 60) :]
        expected = arrival if len(window) < limit else granted[-limit] + 60
        processes[which].acquire()
        assert time.now == expected
        granted.append(time.now)
    for i, start in enumerate(granted):
        assert bisect.bisect_left(granted, start + 60) - i <= limit
    event(f"limit {limit}: {'waited' if time.sleeps else 'never waited'}")


# --- processes and their lock ----------------------------------------------


def test_threads_sharing_a_cache_share_one_budget():
    # Real threads on one local-memory cache, all at the same instant, none
    # willing to wait: exactly the limit gets through.
    results: list[int] = []

    def worker() -> None:
        shared = RateLimiter(
            "threads", limit=100, max_wait=0, clock=lambda: T0, sleep=lambda s: None
        )
        granted = 0
        for _ in range(40):
            try:
                shared.acquire()
                granted += 1
            except ProviderRateLimited:
                pass
        results.append(granted)

    threads = [threading.Thread(target=worker) for _ in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    assert sum(results) == 100, results


def test_a_lock_left_by_a_dead_process_expires(cache_time):
    time = cache_time
    waiter = limiter(time, lock_timeout=3, lock_clock=time.clock, lock_sleep=time.sleep)
    # A process took the lock, then died before releasing it.
    caches["default"].add(waiter.lock_key, "4242:1:dead", timeout=3)

    waiter.acquire()

    waited = time.now - T0
    assert 3 <= waited < 3.1
    assert waiter.grants() == [time.now]
    assert caches["default"].get(waiter.lock_key) is None  # released


def test_a_lock_held_too_long_is_given_up_clearly(cache_time):
    time = cache_time
    waiter = limiter(time, lock_timeout=3, lock_clock=time.clock, lock_sleep=time.sleep)
    cache = caches["default"]
    cache.add(waiter.lock_key, "stuck", timeout=None)  # a cache that never expires
    with pytest.raises(ProviderRateLimited) as caught:
        waiter.acquire()
    assert caught.value.code == "rate_limiter_busy"
    assert caught.value.retry_after == 3.0
    assert 4 <= time.now - T0 < 4.1
    assert waiter.grants() == []


def test_a_holder_frozen_past_its_lock_does_not_overwrite_a_newer_log(cache_time):
    time = cache_time
    other = limiter(
        time,
        key="frozen",
        limit=1,
        cache_alias="twin",
        lock_clock=time.clock,
        lock_sleep=time.sleep,
    )
    frozen = []

    def clock_that_freezes() -> float:
        # Called with the lock held, after the log was read: the process stops
        # for 10 s, its lock expires, and another process takes the only place.
        if not frozen:
            frozen.append(True)
            time.now += 10
            other.acquire()
        return time.now

    late = RateLimiter(
        "frozen",
        limit=1,
        max_wait=0,
        lock_timeout=3,
        clock=clock_that_freezes,
        sleep=time.sleep,
        lock_clock=time.clock,
        lock_sleep=time.sleep,
    )
    with pytest.raises(ProviderRateLimited) as caught:
        late.acquire()
    assert caught.value.retry_after == 60.0
    assert late.grants() == [T0 + 10]  # the other process's grant, kept


def test_a_cache_that_keeps_nothing_limits_nothing_but_never_hangs():
    # The dummy backend stores nothing: no shared count is possible, and the
    # limiter lets every call through rather than spin on a lock it never sees.
    dummy = {"BACKEND": "django.core.cache.backends.dummy.DummyCache"}
    with override_settings(CACHES={"default": dummy}):
        time = Time()
        free = limiter(time, limit=1, max_wait=0)
        for _ in range(5):
            free.acquire()
        assert time.sleeps == []


# --- Redis: real processes ---------------------------------------------------


def _redis_url() -> str:
    from django.conf import settings

    if not settings.REDIS_URL:
        pytest.skip(
            "REDIS_URL is not set: the cross-process limiter needs a shared cache "
            "(e.g. REDIS_URL=redis://127.0.0.1:6379/0)."
        )
    return settings.REDIS_URL


def _redis_caches(url: str, prefix: str) -> dict:
    redis_cache = {
        "BACKEND": "django.core.cache.backends.redis.RedisCache",
        "LOCATION": url,
        "KEY_PREFIX": prefix,
    }
    return {"default": redis_cache}


def _clean_redis(url: str, prefix: str) -> None:
    import redis

    client = redis.Redis.from_url(url)
    for key in client.scan_iter(f"{prefix}*"):
        client.delete(key)


def _redis_worker(url, prefix, barrier, results, now):
    with override_settings(CACHES=_redis_caches(url, prefix)):
        # Every process at the same instant, none willing to wait.
        shared = RateLimiter(
            "xproc", limit=100, max_wait=0, clock=lambda: now, sleep=lambda s: None
        )
        barrier.wait(10)
        granted = 0
        for _ in range(60):
            try:
                shared.acquire()
                granted += 1
            except ProviderRateLimited:
                pass
        results.put(granted)


def test_processes_sharing_redis_share_one_budget():
    import multiprocessing

    url = _redis_url()
    prefix = f"test-ratelimit-{uuid.uuid4().hex}"
    context = multiprocessing.get_context("fork")
    barrier = context.Barrier(4)
    results = context.Queue()
    workers = [
        context.Process(
            target=_redis_worker, args=(url, prefix, barrier, results, T0 + 1)
        )
        for _ in range(4)
    ]
    try:
        for worker in workers:
            worker.start()
        granted = [results.get(timeout=30) for _ in workers]
        for worker in workers:
            worker.join(5)
    finally:
        for worker in workers:
            if worker.is_alive():
                worker.kill()
        _clean_redis(url, prefix)
    assert [w.exitcode for w in workers] == [0] * 4
    # 240 attempts at one instant against 100 a minute: exactly 100 get
    # through, however the four processes interleave.
    assert sum(granted) == 100, granted


def _dying_holder(url, prefix):
    import os

    def die() -> float:
        os._exit(3)  # with the lock held, the log read, nothing written

    with override_settings(CACHES=_redis_caches(url, prefix)):
        RateLimiter("dead", limit=100, lock_timeout=2, clock=die).acquire()


def test_a_lock_left_by_a_dead_process_in_redis_expires():
    import multiprocessing
    import time as real

    url = _redis_url()
    prefix = f"test-ratelimit-{uuid.uuid4().hex}"
    holder = multiprocessing.get_context("fork").Process(
        target=_dying_holder, args=(url, prefix)
    )
    try:
        holder.start()
        holder.join(10)
        assert holder.exitcode == 3
        with override_settings(CACHES=_redis_caches(url, prefix)):
            waiter = RateLimiter("dead", limit=100, lock_timeout=2, max_wait=0)
            assert caches["default"].get(waiter.lock_key) is not None
            started = real.monotonic()
            waiter.acquire()
            waited = real.monotonic() - started
            assert 0.5 < waited < 3.5  # until the 2 s lock expired
            assert len(waiter.grants()) == 1
    finally:
        if holder.is_alive():
            holder.kill()
        _clean_redis(url, prefix)
