"""The client's shared rate limiter (payconnect.md F-13, §3.9): never more than
the limit in any 60 s, across processes; waits when short, fails clearly when
not. The clock and the sleep are injected."""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import pytest
from django.test import override_settings

from django_payments_ru.exceptions import ProviderRateLimited
from django_payments_ru.providers.payconnect.ratelimit import RateLimiter

LOCMEM = "django.core.cache.backends.locmem.LocMemCache"


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
        self.now = 1_700_000_000.0
        self.sleeps: list[float] = []

    def clock(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds


def limiter(time: Time, **kwargs) -> RateLimiter:
    kwargs.setdefault("limit", 100)
    return RateLimiter("test", clock=time.clock, sleep=time.sleep, **kwargs)


def test_no_sixty_seconds_ever_carry_more_than_the_limit():
    time = Time()
    processes = [limiter(time), limiter(time, cache_alias="twin")]
    sent: list[float] = []
    for n in range(1000):
        processes[n % 2].acquire()
        sent.append(time.now)
        time.now += 0.05  # a busy shop: 20 calls a second if it could
    for i, start in enumerate(sent):
        in_window = [t for t in sent[i:] if t < start + 60]
        assert len(in_window) <= 100
    # ...and it still sends 90 a minute.
    assert sent[-1] - sent[0] < 1000 / 90 * 60 + 6


def test_a_short_wait_waits_a_long_one_fails_clearly():
    time = Time()
    time.now = 1_700_000_008.0  # 2 s before the next 6 s window
    first = limiter(time, max_wait=30)
    for _ in range(9):
        first.acquire()
    assert time.sleeps == []
    first.acquire()  # the 10th waits for the next window
    assert time.sleeps == [pytest.approx(2.0)]

    strict = limiter(time, max_wait=1)
    for _ in range(8):
        strict.acquire()
    with pytest.raises(ProviderRateLimited) as caught:
        strict.acquire()
    assert caught.value.retry_after == pytest.approx(6.0)
    assert "at most 100 requests" in str(caught.value)
    assert "HTTP_MAX_RETRY_AFTER" in str(caught.value)


def test_small_limits_still_hold():
    time = Time()
    small = limiter(time, limit=3, max_wait=1000)
    sent = []
    for _ in range(12):
        small.acquire()
        sent.append(time.now)
    for i, start in enumerate(sent):
        assert len([t for t in sent[i:] if t < start + 60]) <= 3


def _redis_worker(url, prefix, barrier, results, now):
    from django.test import override_settings as override

    redis_cache = {
        "BACKEND": "django.core.cache.backends.redis.RedisCache",
        "LOCATION": url,
        "KEY_PREFIX": prefix,
    }
    with override(CACHES={"default": redis_cache}):
        # Every process in the same 6-second window, none willing to wait.
        shared = RateLimiter(
            "xproc", limit=100, max_wait=0, clock=lambda: now, sleep=lambda s: None
        )
        barrier.wait(10)
        granted = 0
        for _ in range(10):
            try:
                shared.acquire()
                granted += 1
            except ProviderRateLimited:
                pass
        results.put(granted)


def test_processes_sharing_redis_share_one_budget():
    import multiprocessing

    from django.conf import settings

    if not settings.REDIS_URL:
        pytest.skip(
            "REDIS_URL is not set: the cross-process limiter needs a shared cache "
            "(e.g. REDIS_URL=redis://127.0.0.1:6379/0)."
        )
    import redis

    prefix = f"test-ratelimit-{uuid.uuid4().hex}"
    context = multiprocessing.get_context("fork")
    barrier = context.Barrier(4)
    results = context.Queue()
    workers = [
        context.Process(
            target=_redis_worker,
            args=(settings.REDIS_URL, prefix, barrier, results, 1_700_000_001.0),
        )
        for _ in range(4)
    ]
    try:
        for worker in workers:
            worker.start()
        granted = [results.get(timeout=20) for _ in workers]
        for worker in workers:
            worker.join(5)
    finally:
        for worker in workers:
            if worker.is_alive():
                worker.kill()
        client = redis.Redis.from_url(settings.REDIS_URL)
        for key in client.scan_iter(f"{prefix}*"):
            client.delete(key)
    assert [w.exitcode for w in workers] == [0] * 4
    # 40 attempts in one window of a 100-a-minute budget: exactly its quota (9)
    # get through, however the four processes interleave.
    assert sum(granted) == 9, granted
