"""A lock shared by every process through the Django cache, and by the
threads of one process through a :class:`threading.Lock`.

Two pieces of the shared machinery need one caller at a time across the
shop's processes: the token cache (one refresh of a provider's token,
:mod:`~django_payments_ru.providers.tokens`) and the rate limiter (one update
of the window's log, :mod:`~django_payments_ru.providers.ratelimit`). Both
take the lock the same way: ``cache.add(key, owner)`` with an expiry (a dead
holder's lock runs out), polling with an injectable clock and sleep until a
patience runs out, and a release that deletes the key only while it is still
the caller's own.
"""

from __future__ import annotations

import os
import threading
import time
import uuid
from collections.abc import Callable

from django.core.cache import BaseCache

# One lock per cache entry for the threads of this process, shared by every
# user of that entry.
_thread_locks: dict[tuple[str, str], threading.Lock] = {}
_thread_locks_guard = threading.Lock()


def thread_lock(alias: str, key: str) -> threading.Lock:
    """The lock of this process's threads for the cache entry ``key``."""
    with _thread_locks_guard:
        lock = _thread_locks.get((alias, key))
        if lock is None:
            lock = _thread_locks[(alias, key)] = threading.Lock()
        return lock


def new_owner() -> str:
    """A token naming this caller (process, thread, a random part)."""
    return f"{os.getpid()}:{threading.get_ident()}:{uuid.uuid4().hex}"


def acquire(
    cache: BaseCache,
    key: str,
    *,
    timeout: float,
    patience: float,
    clock: Callable[[], float] = time.monotonic,
    sleep: Callable[[float], None] = time.sleep,
    poll: float = 0.05,
    done_elsewhere: Callable[[], bool] | None = None,
) -> str | None:
    """Take the cross-process lock ``key`` (it expires after ``timeout``
    seconds if its holder dies); returns the owner token to release it with.

    While another caller holds it, ``done_elsewhere()`` (when given) says
    whether what the lock was wanted for has been done by that caller
    meanwhile (a token refreshed): then ``None`` is returned, and nothing is
    held. Raises :class:`TimeoutError` once ``patience`` seconds went by.
    An injected sleep may not advance an injected clock (and a real sleep
    may overshoot): whichever measure is further along counts."""
    owner = new_owner()
    started = clock()
    slept = 0.0
    while not cache.add(key, owner, timeout=timeout):
        if done_elsewhere is not None and done_elsewhere():
            return None
        if max(clock() - started, slept) >= patience:
            raise TimeoutError(key)
        sleep(poll)
        slept += poll
    return owner


def held_by(cache: BaseCache, key: str, owner: str) -> bool:
    """Whether the lock ``key`` is still ``owner``'s (it may have expired)."""
    return bool(cache.get(key) == owner)


def release(cache: BaseCache, key: str, owner: str) -> None:
    """Release the lock if it is still ``owner``'s: once expired it may belong
    to another caller. (Check and delete are two calls; the window is the
    same as a holder frozen past the timeout, which a holder covers by
    checking :func:`held_by` before it writes.)"""
    if held_by(cache, key, owner):
        cache.delete(key)
