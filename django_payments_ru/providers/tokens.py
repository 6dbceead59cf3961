"""Bearer and JWT tokens: cached until shortly before they expire, refreshed one
at a time, refreshed once when the provider rejects one.

A provider that authenticates with a token it must first obtain (PayConnect's
``/v1/auth/token``, Life-Pay's ``/v1/auth``) keeps one :class:`TokenCache` and
makes its calls through :meth:`TokenCache.call`::

    self.tokens = TokenCache(
        f"payconnect:{self.alias}:{fingerprint(client_id, client_secret)}",
        self._fetch_token,
        on_token=self.http.add_secret,
        provider=self.alias,
    )

    def _fetch_token(self) -> Token:
        data = self.http.request("POST", "v1/auth/token", json={...})
        return Token(data["access_token"], time.time() + data["expires_in"])

    def get_payment(self, payment_id: str) -> dict:
        return self.tokens.call(
            lambda token: self.http.request(
                "GET",
                f"v1/payments/{payment_id}",
                headers={"Authorization": f"Bearer {token}"},
            )
        )

* The token lives in the Django cache (``PAYMENTS_RU["CACHE"]``, the ``"default"``
  alias unless set), so every worker process and every server shares it. It is a
  credential: the cache should be no more widely readable than the settings.
* One refresh at a time: threads of a process queue on a lock, and processes
  agree through ``cache.add()``, which is atomic on the Redis, memcached, database
  and local-memory backends. The others wait for the token to appear. A
  per-process cache (local memory, the default of a new project) still gives one
  refresh per process.
* A token value is never logged; ``on_token`` lets the HTTP client redact it.
"""

from __future__ import annotations

import hashlib
import logging
import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, TypeVar

import jwt
from django.core.cache import BaseCache, caches

from ..conf import payments_settings
from ..exceptions import ProviderAuthError, ProviderResponseError, ProviderUnavailable
from . import cachelock

logger = logging.getLogger("django_payments_ru.tokens")

T = TypeVar("T")

#: Prefix of every cache key this module writes.
KEY_PREFIX = "payments_ru:token:"


@dataclass(frozen=True)
class Token:
    """A token and the moment it stops being valid.

    ``value`` is what goes into the ``Authorization`` header; ``expires_at`` is a
    Unix time in seconds (a float, as Life-Pay's JWTs carry it). The value is
    left out of ``repr()`` so that a logged or displayed Token shows no secret.
    """

    value: str = field(repr=False)
    expires_at: float


def jwt_expiry(token: str) -> float:
    """The ``exp`` claim of a JWT, as Unix seconds.

    For providers that hand out a JWT without saying how long it lasts (Life-Pay
    ``/v1/auth``). The signature is not verified: the token is checked by the
    provider that issued it, and only its lifetime is read here. A fractional
    ``exp`` is accepted.

    Raises :class:`~django_payments_ru.exceptions.ProviderResponseError` when the
    value is not a JWT or has no numeric ``exp``; the message never quotes the
    token.
    """
    problem = ""
    claims: Any = None
    try:
        claims = jwt.decode(token, options={"verify_signature": False})
    except (jwt.PyJWTError, ValueError, TypeError):
        # Raised below, outside this block, so that the decoder's exception is
        # not kept as the context of ours.
        problem = "The provider's token is not a readable JWT."
    if not problem:
        exp = claims.get("exp") if isinstance(claims, dict) else None
        if isinstance(exp, int | float) and not isinstance(exp, bool):
            if math.isfinite(exp):
                return float(exp)
            problem = "The provider's token has an invalid expiry (exp) claim."
        elif exp is None:
            problem = "The provider's token carries no expiry (exp) claim."
        else:
            problem = "The provider's token has a non-numeric expiry (exp) claim."
    raise ProviderResponseError(problem, code="invalid_token")


def fingerprint(*parts: str) -> str:
    """A short, stable digest of credentials, for a :class:`TokenCache` key.

    Putting it in the key means a changed client id or secret never reuses a
    token obtained with the old one, without putting the credentials themselves
    into a cache key.
    """
    digest = hashlib.sha256("\x00".join(parts).encode("utf-8")).hexdigest()
    return digest[:16]


@dataclass(frozen=True)
class _Entry:
    value: str = field(repr=False)
    expires_at: float
    refresh_at: float


class TokenCache:
    """A provider token kept in the Django cache and refreshed before it expires.

    :param key: names the token; stored as ``payments_ru:token:<key>``. Include
        the provider alias and a :func:`fingerprint` of the credentials. It should
        be short ASCII without spaces (memcached's key rules).
    :param fetch: obtains a new token from the provider; called by one thread of
        one process at a time. Its exceptions propagate to the caller of
        :meth:`get` or :meth:`call`.
    :param cache_alias: the ``settings.CACHES`` entry; by default
        ``PAYMENTS_RU["CACHE"]``, read at each use.
    :param margin: refresh this many seconds before the token expires, so that a
        token is never sent in its last moments. For a token that lives less than
        twice the margin, half its lifetime is used instead, so that a short-lived
        token is still reused.
    :param lock_timeout: how long the cross-process refresh lock lasts if its
        holder dies; keep it longer than a fetch can take.
    :param wait_timeout: how long a caller waits for another thread or process to
        finish a refresh before giving up with
        :class:`~django_payments_ru.exceptions.ProviderUnavailable`.
    :param poll_interval: how often a waiting process looks for the new token.
    :param clock: the current Unix time (injectable for tests).
    :param sleep: how to wait between polls (injectable for tests).
    :param on_token: called with every token value this instance hands out for
        the first time, fetched here or by another process; pass
        :meth:`HttpClient.add_secret
        <django_payments_ru.providers.http.HttpClient.add_secret>` so the value
        is redacted from logs and errors.
    :param provider: the provider alias, carried by the errors raised here.
    """

    def __init__(
        self,
        key: str,
        fetch: Callable[[], Token],
        *,
        cache_alias: str | None = None,
        margin: float = 60.0,
        lock_timeout: float = 30.0,
        wait_timeout: float = 30.0,
        poll_interval: float = 0.05,
        clock: Callable[[], float] = time.time,
        sleep: Callable[[float], None] = time.sleep,
        on_token: Callable[[str], None] | None = None,
        provider: str = "",
    ) -> None:
        self.key = key
        self.fetch = fetch
        self._cache_alias = cache_alias
        self.margin = margin
        self.lock_timeout = lock_timeout
        self.wait_timeout = wait_timeout
        self.poll_interval = poll_interval
        self.clock = clock
        self.sleep = sleep
        self.on_token = on_token
        self.provider = provider
        self._announced: str | None = None

    # --- public -------------------------------------------------------------

    @property
    def cache_alias(self) -> str:
        """The ``settings.CACHES`` alias in use."""
        return self._cache_alias or payments_settings.CACHE

    @property
    def cache_key(self) -> str:
        """The cache key of the token."""
        return KEY_PREFIX + self.key

    @property
    def lock_key(self) -> str:
        """The cache key of the cross-process refresh lock."""
        return f"{KEY_PREFIX}{self.key}:lock"

    def get(self) -> str:
        """A token valid for at least ``margin`` more seconds.

        The cached one when it is, else a new one: fetched here, or awaited while
        another thread or process fetches it.
        """
        return self._get(rejected=None)

    def invalidate(self, value: str | None = None) -> None:
        """Drop the cached token, so that the next :meth:`get` fetches a new one.

        With ``value``, only if the cached token is still that one: a caller whose
        token was rejected must not drop the newer token another worker has
        already put in its place. (The check and the delete are two cache calls;
        a race between them costs at most one extra fetch.)
        """
        cache = self._cache()
        if value is not None:
            entry = self._load(cache)
            if entry is None or entry.value != value:
                return
        cache.delete(self.cache_key)

    def call(self, fn: Callable[[str], T]) -> T:
        """``fn(token)``, once more with a new token if the provider rejects it.

        A rejection is a :class:`~django_payments_ru.exceptions.ProviderAuthError`
        from ``fn``: HTTP 401, or a provider-specific code the provider maps to
        it (Life-Pay's 498). The rejected token is replaced (unless another
        worker has replaced it already) and ``fn`` runs again. If the new token
        is rejected too, a ProviderAuthError says so: the credentials, not the
        token, are the problem.
        """
        token = self.get()
        try:
            return fn(token)
        except ProviderAuthError:
            logger.info(
                "The provider rejected the cached token %s; getting a new one.",
                self.key,
            )
        token = self._get(rejected=token)
        try:
            return fn(token)
        except ProviderAuthError as exc:
            raise ProviderAuthError(
                "The provider rejected a freshly issued token too.",
                provider=exc.provider or self.provider,
                status=exc.status,
                code=exc.code,
                provider_message=exc.provider_message,
                details=exc.details,
            ) from exc

    # --- internals ----------------------------------------------------------

    def _cache(self) -> BaseCache:
        # Looked up at each use: Django's cache handler is per thread, and
        # override_settings(CACHES=...) must take effect.
        return caches[self.cache_alias]

    def _load(self, cache: BaseCache) -> _Entry | None:
        raw = cache.get(self.cache_key)
        if not isinstance(raw, dict):
            return None
        try:
            return _Entry(
                str(raw["value"]), float(raw["expires_at"]), float(raw["refresh_at"])
            )
        except (KeyError, TypeError, ValueError):
            return None  # written by an incompatible version: fetch anew

    def _usable(self, entry: _Entry | None, rejected: str | None) -> str | None:
        if entry is None or entry.value == rejected:
            return None
        if self.clock() >= entry.refresh_at:
            return None
        return entry.value

    def _hand_out(self, value: str) -> str:
        if self.on_token is not None and value != self._announced:
            self.on_token(value)
            self._announced = value
        return value

    def _get(self, rejected: str | None) -> str:
        cache = self._cache()
        value = self._usable(self._load(cache), rejected)
        if value is not None:
            return self._hand_out(value)
        # Shared by every TokenCache naming the entry (a provider may be
        # built per request).
        lock = cachelock.thread_lock(self.cache_alias, self.key)
        if not lock.acquire(timeout=self.wait_timeout):
            raise self._timed_out()
        try:
            # Another thread may have refreshed while this one queued.
            value = self._usable(self._load(cache), rejected)
            if value is None:
                value = self._refresh(cache, rejected)
        finally:
            lock.release()
        return self._hand_out(value)

    def _refresh(self, cache: BaseCache, rejected: str | None) -> str:
        found: list[str] = []

        def refreshed_elsewhere() -> bool:
            # Another process is refreshing: its token ends the wait.
            value = self._usable(self._load(cache), rejected)
            if value is not None:
                found.append(value)
            return value is not None

        try:
            owner = cachelock.acquire(
                cache,
                self.lock_key,
                timeout=self.lock_timeout,
                patience=self.wait_timeout,
                clock=self.clock,
                sleep=self.sleep,
                poll=self.poll_interval,
                done_elsewhere=refreshed_elsewhere,
            )
        except TimeoutError:
            raise self._timed_out() from None
        if owner is None:
            return found[0]
        try:
            # Another process may have finished between our check and the add().
            value = self._usable(self._load(cache), rejected)
            if value is not None:
                return value
            return self._store(cache, self.fetch())
        finally:
            # If the fetch outlasted lock_timeout, the lock may now be another's.
            cachelock.release(cache, self.lock_key, owner)

    def _store(self, cache: BaseCache, token: Token) -> str:
        now = self.clock()
        lifetime = token.expires_at - now
        if lifetime <= 0:
            # Not cached (it would be refused by the next get() anyway). Used once:
            # the provider's clock may differ from ours.
            logger.warning(
                "The new %s token has already expired (by %.0f s); check the "
                "server clock.",
                self.key,
                -lifetime,
            )
            cache.delete(self.cache_key)
            return token.value
        margin = min(self.margin, lifetime / 2)
        entry = {
            "value": token.value,
            "expires_at": token.expires_at,
            "refresh_at": token.expires_at - margin,
        }
        cache.set(self.cache_key, entry, timeout=max(1, math.ceil(lifetime)))
        logger.debug("Fetched a new %s token valid for %.0f s.", self.key, lifetime)
        return token.value

    def _timed_out(self) -> ProviderUnavailable:
        return ProviderUnavailable(
            f"Gave up after {self.wait_timeout:g} s waiting for another worker to "
            f"refresh the {self.key} token.",
            provider=self.provider,
            code="token_refresh_timeout",
            hint="The worker holding the refresh may be stuck on a slow provider; "
            "the request may be retried later.",
        )
