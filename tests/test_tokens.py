"""The token cache: expiry, one refresh at a time, refresh once on rejection.

The clock and the poll sleep are injected; threads and processes meet on real
barriers and events, never on timed sleeps.
"""

from __future__ import annotations

import logging
import multiprocessing
import os
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from typing import Any

import jwt
import pytest
from django.conf import settings
from django.core.cache import caches
from django.test import override_settings

from django_payments_ru.exceptions import (
    ProviderAuthError,
    ProviderResponseError,
    ProviderUnavailable,
)
from django_payments_ru.providers.tokens import (
    KEY_PREFIX,
    Token,
    TokenCache,
    fingerprint,
    jwt_expiry,
)

START = 1_700_000_000.0
LOCMEM = "django.core.cache.backends.locmem.LocMemCache"

# Life-Pay ECOM JWTs from the provider's documentation (SEED-003), verbatim.
LIFEPAY_JWTS = {
    (
        "eyJ0eXAiOiJKV1QiLCJhbGciOiJIUzUxMiIsImtpZCI6ImlrYW9paW91eXRBb3V5ckRTVVRZT0FG"
        "U2l5U2ZvdHVBZ3lsU0FEIiwiZXhwIjoxNjgwNzAyNjkyLjczMTU2MX0.eyJleHAiOjE2ODA3MDI2"
        "OTIuNzMxNTYxLCJpbnZvaWNlX2lkIjpudWxsLCJzZXJ2aWNlX2lkIjo4MDcxNX0.yqCiB2P0Ysy"
        "Yhksv0b-ceRSkZ8fykCo2_G-GOdouHxgjbw5-B6xE_4oV8o7uSM4HW9yssa4jZeOY8418B5u4Eg"
    ): 1680702692.731561,
    (
        "eyJ0eXAiOiJKV1QiLCJhbGciOiJIUzUxMiIsImtpZCI6ImlrYW9paW91eXRBb3V5ckRTVVRZT0FG"
        "U2l5U2ZvdHVBZ3lsU0FEIiwiZXhwIjoxNjgwNjk0MTAwLjcxMDYzfQ.eyJleHAiOjE2ODA2OTQx"
        "MDAuNzEwNjMsImludm9pY2VfaWQiOm51bGwsInNlcnZpY2VfaWQiOjgwNzE1fQ.XnVKYPmx0Ci-"
        "V2_gZt3C32JO3RdgJ75daMhTkRfjwTLQqiJv69HkY2pK5zjt23g1Et8Z_FEzB1z0fktJmahAlQ"
    ): 1680694100.71063,
    # Same issuer, another key id (kid) and a later exp.
    (
        "eyJ0eXAiOiJKV1QiLCJhbGciOiJIUzUxMiIsImtpZCI6ImYyZmQ4YWQ1YjYxZDRiNmU4NzQ3MmZm"
        "ZmM4NzM3NDEyIiwiZXhwIjoxNzI4NTg1MTg0LjE0OTM1fQ.eyJleHAiOjE3Mjg1ODUxODQuMTQ5"
        "MzUsImludm9pY2VfaWQiOm51bGwsInNlcnZpY2VfaWQiOjgwNzE1fQ.qVBSqBH_R5-ycYc5lBJf"
        "my9wWaKlJj6T03idY5F-pDLg4T1S13IDovqtm5q3aGnPgv1wIWvU7mF7VhZojtsArQ"
    ): 1728585184.14935,
}


class Clock:
    def __init__(self) -> None:
        self.now = START

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


class Fetcher:
    """A fetch function handing out token-1, token-2, ... valid for ``ttl``."""

    def __init__(self, clock: Clock, ttl: float = 3600.0) -> None:
        self.clock = clock
        self.ttl = ttl
        self.calls = 0
        self._lock = threading.Lock()
        self.during: Callable[[], None] | None = None

    def __call__(self) -> Token:
        with self._lock:
            self.calls += 1
            n = self.calls
        if self.during is not None:
            self.during()
        return Token(f"token-{n}", self.clock() + self.ttl)


@pytest.fixture(autouse=True)
def shared_cache() -> Iterator[None]:
    # "twin" shares the storage of "default" under another alias: to the token
    # cache it is another process (its own thread lock, the same cache entries).
    location = f"tokens-{uuid.uuid4().hex}"
    with override_settings(
        CACHES={
            "default": {"BACKEND": LOCMEM, "LOCATION": location},
            "twin": {"BACKEND": LOCMEM, "LOCATION": location},
        }
    ):
        yield


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def sleeps() -> list[float]:
    return []


@pytest.fixture
def fetcher(clock: Clock) -> Fetcher:
    return Fetcher(clock)


@pytest.fixture
def make_cache(
    clock: Clock, sleeps: list[float], fetcher: Fetcher
) -> Callable[..., TokenCache]:
    key = f"test:{uuid.uuid4().hex[:8]}"

    def make(**kwargs: Any) -> TokenCache:
        options: dict[str, Any] = {
            "margin": 60.0,
            "clock": clock,
            "sleep": sleeps.append,
            "provider": "test",
            **kwargs,
        }
        return TokenCache(
            options.pop("key", key), options.pop("fetch", fetcher), **options
        )

    return make


# --- expiry ------------------------------------------------------------------


def test_token_is_cached_until_expiry_minus_margin(make_cache, clock, fetcher):
    tokens = make_cache()

    assert tokens.get() == "token-1"
    clock.advance(3600 - 60 - 0.001)
    assert tokens.get() == "token-1"
    assert fetcher.calls == 1
    clock.advance(0.001)  # exactly margin seconds before expiry
    assert tokens.get() == "token-2"
    assert fetcher.calls == 2
    assert tokens.get() == "token-2"
    assert fetcher.calls == 2


def test_token_lives_in_the_django_cache(make_cache, clock, fetcher):
    tokens = make_cache()
    tokens.get()

    cache = caches["default"]
    assert tokens.cache_key == KEY_PREFIX + tokens.key
    assert tokens.cache_key.startswith("payments_ru:token:")
    assert cache.get(tokens.cache_key)["value"] == "token-1"
    # The cache forgets it when it expires (real seconds until exp).
    expiry = cache._expire_info[cache.make_key(tokens.cache_key)]
    assert 3595 <= expiry - time.time() <= 3601
    # Another instance, as built by another request, reuses it.
    assert make_cache(fetch=Fetcher(clock)).get() == "token-1"
    assert fetcher.calls == 1


def test_cache_alias_follows_the_setting(make_cache):
    tokens = make_cache()
    assert tokens.cache_alias == "default"
    with override_settings(PAYMENTS_RU={"CACHE": "twin"}):
        assert tokens.cache_alias == "twin"
    assert make_cache(cache_alias="twin").cache_alias == "twin"


def test_short_lived_token_is_reused_for_half_its_life(make_cache, clock):
    fetcher = Fetcher(clock, ttl=40.0)  # shorter than twice the margin
    tokens = make_cache(fetch=fetcher)

    assert tokens.get() == "token-1"
    clock.advance(19.9)
    assert tokens.get() == "token-1"
    clock.advance(0.1)
    assert tokens.get() == "token-2"


def test_token_expired_on_arrival_is_used_but_not_cached(make_cache, clock, caplog):
    caplog.set_level(logging.DEBUG)
    fetcher = Fetcher(clock, ttl=-5.0)  # the provider's clock is behind ours
    tokens = make_cache(fetch=fetcher)

    assert tokens.get() == "token-1"
    assert caches["default"].get(tokens.cache_key) is None
    assert "check the server clock" in caplog.text
    assert tokens.get() == "token-2"


def test_unreadable_cache_entry_is_replaced(make_cache, fetcher):
    tokens = make_cache()
    caches["default"].set(tokens.cache_key, "garbage")

    assert tokens.get() == "token-1"
    caches["default"].set(tokens.cache_key, {"value": "x"})
    tokens.invalidate("nothing")  # must not trip over the bad entry
    assert tokens.get() == "token-2"


# --- one refresh at a time -------------------------------------------------------


def test_threads_on_a_cold_cache_fetch_once(make_cache, clock):
    barrier = threading.Barrier(8)
    fetching = threading.Event()

    def slow_fetch() -> Token:
        fetching.set()
        threading.Event().wait(0.05)  # hold the refresh while the others queue
        return Token(f"token-{uuid.uuid4().hex}", clock() + 3600)

    calls: list[int] = []

    def counted() -> Token:
        calls.append(1)
        return slow_fetch()

    tokens = make_cache(fetch=counted)
    results: list[str] = []

    def worker() -> None:
        barrier.wait(2)
        results.append(tokens.get())

    threads = [threading.Thread(target=worker) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(5)

    assert fetching.is_set()
    assert len(calls) == 1
    assert len(results) == 8
    assert len(set(results)) == 1


def test_separate_instances_in_threads_fetch_once(make_cache, clock, fetcher):
    # A provider may be built per request: the thread lock is per cache entry.
    fetcher.during = lambda: threading.Event().wait(0.05)
    barrier = threading.Barrier(6)
    results: list[str] = []

    def worker() -> None:
        tokens = make_cache()
        barrier.wait(2)
        results.append(tokens.get())

    threads = [threading.Thread(target=worker) for _ in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(5)

    assert fetcher.calls == 1
    assert results == ["token-1"] * 6


def test_token_expiring_mid_run_is_refreshed_once(make_cache, clock, fetcher):
    tokens = make_cache()
    assert tokens.get() == "token-1"
    fetcher.during = lambda: threading.Event().wait(0.05)

    clock.advance(3550)  # inside the margin: every caller now wants a new one
    barrier = threading.Barrier(8)
    results: list[str] = []

    def worker() -> None:
        barrier.wait(2)
        for _ in range(5):
            results.append(tokens.get())

    threads = [threading.Thread(target=worker) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(5)

    assert fetcher.calls == 2
    assert results == ["token-2"] * 40


def test_waits_for_another_process_to_finish_its_refresh(make_cache, sleeps):
    mine = Fetcher(Clock())
    theirs_release = threading.Event()
    theirs_fetching = threading.Event()

    def their_fetch() -> Token:
        theirs_fetching.set()
        theirs_release.wait(2)
        return Token("their-token", START + 3600)

    theirs = make_cache(fetch=their_fetch, cache_alias="twin", sleep=lambda s: None)
    other = threading.Thread(target=theirs.get)
    other.start()
    assert theirs_fetching.wait(2)

    def poll_sleep(seconds: float) -> None:
        sleeps.append(seconds)
        if len(sleeps) == 3:  # the other process finishes while we poll
            theirs_release.set()
            other.join(2)

    tokens = make_cache(fetch=mine, sleep=poll_sleep, poll_interval=0.05)
    assert tokens.get() == "their-token"
    assert mine.calls == 0
    assert sleeps == [0.05, 0.05, 0.05]
    assert caches["default"].get(tokens.lock_key) is None


def test_gives_up_waiting_for_a_stuck_refresh(make_cache, sleeps, fetcher):
    tokens = make_cache(wait_timeout=1.0, poll_interval=0.05)
    caches["default"].add(tokens.lock_key, "another-process", timeout=60)

    with pytest.raises(ProviderUnavailable) as info:
        tokens.get()
    assert "Gave up after 1 s waiting" in str(info.value)
    assert info.value.provider == "test"
    assert info.value.code == "token_refresh_timeout"
    assert len(sleeps) == 20
    assert fetcher.calls == 0
    assert caches["default"].get(tokens.lock_key) == "another-process"


def test_wait_is_also_bounded_by_the_clock(make_cache, clock, fetcher):
    polls: list[float] = []

    def sleep(seconds: float) -> None:
        polls.append(seconds)
        clock.advance(10)  # each poll takes longer than planned

    tokens = make_cache(wait_timeout=30.0, poll_interval=0.05, sleep=sleep)
    caches["default"].add(tokens.lock_key, "another-process", timeout=60)

    with pytest.raises(ProviderUnavailable):
        tokens.get()
    assert len(polls) == 3


def test_takes_over_when_the_other_process_gives_up(make_cache, sleeps, fetcher):
    tokens = make_cache()
    caches["default"].add(tokens.lock_key, "another-process", timeout=60)

    def poll_sleep(seconds: float) -> None:
        sleeps.append(seconds)
        if len(sleeps) == 2:  # its fetch failed: lock released, no token
            caches["default"].delete(tokens.lock_key)

    tokens.sleep = poll_sleep
    assert tokens.get() == "token-1"
    assert fetcher.calls == 1
    assert len(sleeps) == 2


def test_lock_is_released_after_a_refresh(make_cache):
    tokens = make_cache()
    tokens.get()
    assert caches["default"].get(tokens.lock_key) is None


def test_lock_taken_over_by_another_process_is_not_released(make_cache, fetcher):
    tokens = make_cache()

    def lock_expires_and_is_taken() -> None:
        caches["default"].set(tokens.lock_key, "another-process")

    fetcher.during = lock_expires_and_is_taken
    assert tokens.get() == "token-1"
    assert caches["default"].get(tokens.lock_key) == "another-process"


def test_failed_fetch_releases_the_lock_and_caches_nothing(make_cache, fetcher):
    tokens = make_cache()

    def fail() -> None:
        raise ProviderAuthError("Bad credentials.", provider="test", status=401)

    fetcher.during = fail
    with pytest.raises(ProviderAuthError):
        tokens.get()
    assert caches["default"].get(tokens.lock_key) is None
    assert caches["default"].get(tokens.cache_key) is None

    fetcher.during = None
    assert tokens.get() == "token-2"


# --- invalidation and rejection --------------------------------------------------


def test_invalidate_value_does_not_drop_a_newer_token(make_cache, fetcher):
    tokens = make_cache()
    assert tokens.get() == "token-1"

    tokens.invalidate("token-0")  # someone's older token was rejected
    assert tokens.get() == "token-1"
    assert fetcher.calls == 1

    tokens.invalidate("token-1")
    assert tokens.get() == "token-2"
    tokens.invalidate()
    assert tokens.get() == "token-3"
    tokens.invalidate()
    tokens.invalidate("token-3")  # nothing cached: nothing to do


class Provider:
    """Accepts only the tokens in ``valid``; records what it was sent."""

    def __init__(self, *valid: str) -> None:
        self.valid = set(valid)
        self.seen: list[str] = []

    def __call__(self, token: str) -> dict[str, str]:
        self.seen.append(token)
        if token not in self.valid:
            raise ProviderAuthError(
                "GET /v1/me was refused",
                provider="test",
                status=401,
                code="invalid_token",
                provider_message="Token expired",
            )
        return {"ok": token}


def test_call_refreshes_once_on_rejection(make_cache, fetcher):
    tokens = make_cache()
    tokens.get()  # token-1 cached, then revoked at the provider
    provider = Provider("token-2")

    assert tokens.call(provider) == {"ok": "token-2"}
    assert provider.seen == ["token-1", "token-2"]
    assert fetcher.calls == 2
    assert tokens.get() == "token-2"


def test_call_without_rejection_fetches_once(make_cache, fetcher):
    provider = Provider("token-1")

    assert tokens_call_twice(make_cache(), provider) == [{"ok": "token-1"}] * 2
    assert fetcher.calls == 1


def tokens_call_twice(tokens: TokenCache, fn: Callable[[str], Any]) -> list[Any]:
    return [tokens.call(fn), tokens.call(fn)]


def test_second_rejection_propagates_with_a_clear_message(make_cache, fetcher):
    tokens = make_cache()
    provider = Provider()  # rejects everything: the credentials are wrong

    with pytest.raises(ProviderAuthError) as info:
        tokens.call(provider)
    error = info.value
    assert "rejected a freshly issued token too" in str(error)
    assert (error.status, error.code) == (401, "invalid_token")
    assert error.provider == "test"
    assert error.provider_message == "Token expired"
    assert isinstance(error.__cause__, ProviderAuthError)
    assert provider.seen == ["token-1", "token-2"]
    assert fetcher.calls == 2


def test_call_uses_a_token_another_worker_already_replaced(make_cache, clock, fetcher):
    tokens = make_cache()
    tokens.get()
    elsewhere = make_cache(fetch=lambda: Token("token-fresh", clock() + 3600))

    def rejected_then_replaced(token: str) -> str:
        if token == "token-1":
            # While our request failed, another worker replaced the token.
            elsewhere.invalidate("token-1")
            elsewhere.get()
            raise ProviderAuthError("refused", status=401)
        return token

    assert tokens.call(rejected_then_replaced) == "token-fresh"
    assert fetcher.calls == 1


def test_call_does_not_retry_other_errors(make_cache, fetcher):
    tokens = make_cache()
    seen: list[str] = []

    def broken(token: str) -> None:
        seen.append(token)
        raise ProviderUnavailable("down", status=503)

    with pytest.raises(ProviderUnavailable):
        tokens.call(broken)
    assert seen == ["token-1"]
    assert fetcher.calls == 1


# --- secrets ---------------------------------------------------------------------


def test_on_token_sees_every_new_value_once(make_cache, clock, fetcher):
    announced: list[str] = []
    tokens = make_cache(on_token=announced.append)

    tokens.get()
    tokens.get()
    clock.advance(3600)
    tokens.get()
    assert announced == ["token-1", "token-2"]

    # A token fetched by another process is announced here too.
    twin = make_cache(cache_alias="twin", on_token=announced.append)
    assert twin.get() == "token-2"
    twin.invalidate()
    other = make_cache(
        cache_alias="twin", fetch=lambda: Token("from-elsewhere", clock() + 3600)
    )
    other.get()
    assert tokens.get() == "from-elsewhere"
    assert announced == ["token-1", "token-2", "token-2", "from-elsewhere"]


def test_token_value_never_logged(make_cache, clock, caplog):
    caplog.set_level(logging.DEBUG)
    secret = "s3cr3t-t0k3n-value"
    count = iter(range(100))
    tokens = make_cache(fetch=lambda: Token(f"{secret}-{next(count)}", clock() + 90))

    tokens.get()
    clock.advance(60)
    tokens.get()
    with pytest.raises(ProviderAuthError):
        tokens.call(Provider())
    fresh = make_cache(fetch=lambda: Token(f"{secret}-late", clock() - 1))
    fresh.invalidate()
    fresh.get()

    assert caplog.records
    for record in caplog.records:
        assert secret not in record.getMessage()
    assert secret not in repr(Token(secret, 1.0))


# --- JWT expiry ------------------------------------------------------------------


def test_jwt_expiry_reads_exp():
    token = jwt.encode({"exp": 2_000_000_000, "sub": "shop"}, "k" * 32, "HS256")
    assert jwt_expiry(token) == 2_000_000_000.0


def test_jwt_expiry_accepts_float_exp_and_ignores_the_signature():
    token = jwt.encode({"exp": 1728585184.14935}, "k" * 64, "HS512")
    assert jwt_expiry(token) == 1728585184.14935
    tampered = token[:-4] + ("AAAA" if not token.endswith("AAAA") else "BBBB")
    assert jwt_expiry(tampered) == 1728585184.14935


def test_jwt_expiry_of_an_expired_token_is_returned():
    token = jwt.encode({"exp": 1}, "k" * 32, "HS256")
    assert jwt_expiry(token) == 1.0


@pytest.mark.parametrize(("token", "exp"), list(LIFEPAY_JWTS.items()))
def test_jwt_expiry_of_lifepay_tokens(token, exp):
    # Their header carries exp too; the claim in the payload is what counts.
    assert jwt.get_unverified_header(token)["exp"] == exp
    assert jwt_expiry(token) == exp


@pytest.mark.parametrize(
    ("token", "words"),
    [
        (jwt.encode({"sub": "shop"}, "k" * 32, "HS256"), "no expiry"),
        (jwt.encode({"exp": "tomorrow"}, "k" * 32, "HS256"), "non-numeric"),
        (jwt.encode({"exp": True}, "k" * 32, "HS256"), "non-numeric"),
        ("not-a-jwt", "not a readable JWT"),
        ("a.b.c", "not a readable JWT"),
        ("", "not a readable JWT"),
    ],
)
def test_jwt_expiry_refuses_what_it_cannot_read(token, words):
    with pytest.raises(ProviderResponseError) as info:
        jwt_expiry(token)
    assert words in str(info.value)
    if token:
        assert token not in str(info.value)
    assert info.value.__context__ is None
    assert info.value.__cause__ is None


def test_jwt_expiry_token_cache_round_trip(make_cache, clock):
    value = jwt.encode({"exp": clock() + 10800}, "k" * 32, "HS256")
    tokens = make_cache(fetch=lambda: Token(value, jwt_expiry(value)))

    assert tokens.get() == value
    clock.advance(10800 - 61)
    assert tokens.get() == value


def test_fingerprint():
    assert fingerprint("client", "secret") == fingerprint("client", "secret")
    assert fingerprint("client", "secret") != fingerprint("client", "secret2")
    assert fingerprint("ab", "c") != fingerprint("a", "bc")
    assert len(fingerprint("x")) == 16
    assert "secret" not in fingerprint("secret")


# --- across processes (Redis) ----------------------------------------------------


def _redis_worker(
    redis_url: str,
    prefix: str,
    counter_key: str,
    barrier: Any,
    results: Any,
) -> None:
    """One worker process sharing the token through Redis."""
    import redis

    counter = redis.Redis.from_url(redis_url)
    redis_cache = {
        "BACKEND": "django.core.cache.backends.redis.RedisCache",
        "LOCATION": redis_url,
        "KEY_PREFIX": prefix,
    }
    # Connections opened by the parent are not reused: the override replaces
    # the cache handlers, and redis-py reconnects in a forked process.
    with override_settings(CACHES={"default": redis_cache}):

        def fetch() -> Token:
            n = counter.incr(counter_key)
            # Hold the refresh while the other processes arrive and wait.
            threading.Event().wait(0.2)
            return Token(f"token-{n}-{os.getpid()}", time.time() + 3600)

        tokens = TokenCache("xproc", fetch, poll_interval=0.01, wait_timeout=5)
        barrier.wait(10)
        try:
            results.put(tokens.get())
        except Exception as exc:  # reported to the test rather than lost
            results.put(f"error: {exc!r}")


def test_processes_sharing_redis_fetch_once():
    if not settings.REDIS_URL:
        pytest.skip(
            "REDIS_URL is not set: the cross-process lock needs a shared cache "
            "(e.g. REDIS_URL=redis://127.0.0.1:6379/0)."
        )
    import redis

    run = uuid.uuid4().hex
    prefix = f"test-tokens-{run}"
    counter_key = f"test-tokens-counter-{run}"
    client = redis.Redis.from_url(settings.REDIS_URL)
    # fork: a spawned process would have to import and set up Django again,
    # several seconds for four of them; a forked one starts set up.
    context = multiprocessing.get_context("fork")
    barrier = context.Barrier(4)
    results = context.Queue()
    workers = [
        context.Process(
            target=_redis_worker,
            args=(settings.REDIS_URL, prefix, counter_key, barrier, results),
        )
        for _ in range(4)
    ]
    try:
        for worker in workers:
            worker.start()
        values = [results.get(timeout=20) for _ in workers]
        for worker in workers:
            worker.join(5)
        fetches = int(client.get(counter_key) or 0)
    finally:
        for worker in workers:
            if worker.is_alive():
                worker.kill()
        client.delete(counter_key)
        for key in client.scan_iter(f"{prefix}*"):
            client.delete(key)

    assert [w.exitcode for w in workers] == [0] * 4
    assert fetches == 1, values
    assert len(set(values)) == 1, values
    assert values[0].startswith("token-1-")
