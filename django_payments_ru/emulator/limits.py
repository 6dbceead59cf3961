"""Rate limits of the emulated APIs, counted per process.

One limiter serves every emulator and both kinds of limit:

* the common setting ``PAYMENTS_RU_EMULATOR[<slug>]["rate_limits"] = [[100, 60],
  [1000, 3600]]``: 100 calls a minute and 1000 an hour per key, in **fixed**
  windows (the counts start again at each whole minute, each whole hour);
* a provider's documented limit, declared by its emulator
  (:meth:`~.base.Emulator.documented_limits`), which may be a **sliding**
  window: any span of ``seconds`` holds at most ``calls`` calls (PayConnect,
  payconnect.md §3.9).

A key is the client's address, or its API key where the provider counts per
key. A call beyond a limit is not counted, and is answered ``429`` with
``Retry-After`` (:meth:`~.base.Emulator.throttle`): the seconds until the
window ends, or until the oldest call leaves the sliding window. The emulators
run in one process in a demo or a test run, so the counters live in memory.
"""

from __future__ import annotations

import math
import threading
from collections import deque
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from functools import partial

from ..exceptions import ConfigurationError

#: The setting a limit of ``PAYMENTS_RU_EMULATOR[<slug>]["rate_limits"]`` comes from.
RATE_LIMITS = "rate_limits"
#: Counters kept before the passed windows are dropped.
_MAX_COUNTERS = 10_000


@dataclass(frozen=True)
class Limit:
    """At most ``calls`` calls per ``seconds``."""

    calls: int
    seconds: int
    #: ``False``: fixed windows, counted again from each multiple of
    #: ``seconds``; ``True``: a sliding window over the last ``seconds``.
    sliding: bool = False
    #: The setting the limit comes from: its counters are its own, and an
    #: emulator's message may name it.
    setting: str = RATE_LIMITS


@dataclass(frozen=True)
class Exceeded:
    """A call refused by ``limit``: it may be tried again after ``retry_after``
    seconds."""

    limit: Limit
    retry_after: int


_lock = threading.Lock()
#: (slug, setting, key, calls, seconds, window number) -> calls in that window.
_fixed: dict[tuple[str, str, str, int, int, int], int] = {}
#: (slug, setting, key, calls, seconds) -> times of the calls in the window.
_sliding: dict[tuple[str, str, str, int, int], deque[float]] = {}


def reset(slug: str | None = None) -> None:
    """Forget the counts (of the emulator ``slug``, or of all of them)."""
    with _lock:
        for counter in [c for c in _fixed if slug in (None, c[0])]:
            del _fixed[counter]
        for name in [n for n in _sliding if slug in (None, n[0])]:
            del _sliding[name]


def parse_limits(slug: str, value: object) -> list[Limit]:
    """The fixed-window limits of ``PAYMENTS_RU_EMULATOR[slug]["rate_limits"]``."""
    where = f"PAYMENTS_RU_EMULATOR[{slug!r}]['rate_limits']"
    limits = []
    if not isinstance(value, list | tuple):
        raise ConfigurationError(f"{where} must be a list of [calls, seconds].")
    for item in value:
        if not (
            isinstance(item, Sequence)
            and len(item) == 2
            and all(isinstance(v, int) and v > 0 for v in item)
        ):
            raise ConfigurationError(
                f"{where} must be a list of [calls, seconds] pairs of positive "
                f"integers, not {item!r}."
            )
        limits.append(Limit(item[0], item[1]))
    return limits


def _count(counter: tuple[str, str, str, int, int, int]) -> None:
    _fixed[counter] = _fixed.get(counter, 0) + 1


def _forget_passed(now: float) -> None:
    if len(_fixed) + len(_sliding) <= _MAX_COUNTERS:
        return
    for counter in [c for c in _fixed if c[5] < int(now // c[4])]:
        del _fixed[counter]
    for name, hits in list(_sliding.items()):
        if not hits or hits[-1] <= now - name[4]:
            del _sliding[name]


def check(slug: str, key: str, limits: Iterable[Limit], now: float) -> Exceeded | None:
    """Count a call of ``key`` at ``now`` (Unix seconds) against every limit;
    the first limit it exceeds, if any (the call is then not counted)."""
    with _lock:
        takes: list[Callable[[], None]] = []
        take: Callable[[], None]
        for limit in limits:
            name = (slug, limit.setting, key, limit.calls, limit.seconds)
            if limit.sliding:
                hits = _sliding.setdefault(name, deque())
                while hits and hits[0] <= now - limit.seconds:
                    hits.popleft()
                full = len(hits) >= limit.calls
                # A place frees up when the oldest call leaves the window.
                frees_at = hits[0] + limit.seconds if hits else now
                take = partial(hits.append, now)
            else:
                window = int(now // limit.seconds)
                counter = (*name, window)
                full = _fixed.get(counter, 0) >= limit.calls
                frees_at = (window + 1) * limit.seconds
                take = partial(_count, counter)
            if full:
                return Exceeded(limit, max(1, math.ceil(frees_at - now)))
            takes.append(take)
        for take in takes:
            take()
        _forget_passed(now)
    return None


def hit(slug: str, key: str, limits: Iterable[Limit], now: float) -> int | None:
    """Like :func:`check`, but only the seconds to wait (``None``: counted)."""
    exceeded = check(slug, key, limits, now)
    return None if exceeded is None else exceeded.retry_after
