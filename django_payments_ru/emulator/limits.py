"""Rate limits of the emulated APIs: fixed windows counted per process.

``PAYMENTS_RU_EMULATOR[<slug>]["rate_limits"] = [[100, 60], [1000, 3600]]``
allows 100 calls a minute and 1000 an hour per key (the client's address, or
its API key where the provider counts per key); a call beyond a limit is
answered ``429`` with ``Retry-After``. The emulators run in one process in a
demo or a test run, so the counters live in memory.
"""

from __future__ import annotations

import math
import threading
from collections.abc import Iterable, Sequence

from ..exceptions import ConfigurationError

_lock = threading.Lock()
_hits: dict[tuple[str, str, int, int], int] = {}


def reset() -> None:
    with _lock:
        _hits.clear()


def parse_limits(slug: str, value: object) -> list[tuple[int, int]]:
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
        limits.append((item[0], item[1]))
    return limits


def hit(
    slug: str, key: str, limits: Iterable[tuple[int, int]], now: float
) -> int | None:
    """Count a call; return the seconds to wait if it exceeds a limit (the call
    is then not counted)."""
    limits = list(limits)
    with _lock:
        keys = []
        for calls, seconds in limits:
            window = int(now // seconds)
            counter = (slug, key, seconds, window)
            if _hits.get(counter, 0) >= calls:
                return max(1, math.ceil((window + 1) * seconds - now))
            keys.append(counter)
        for counter in keys:
            _hits[counter] = _hits.get(counter, 0) + 1
        if len(_hits) > 10_000:  # drop windows that have passed
            for counter in [c for c in _hits if c[3] < int(now // c[2])]:
                del _hits[counter]
    return None
