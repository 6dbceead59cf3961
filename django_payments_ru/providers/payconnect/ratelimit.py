"""PayConnect's request limit, kept by the shared client-side limiter.

PayConnect allows at most 100 requests per IP address over all endpoints
(payconnect.md F-13), counted in a sliding 60-second window (§3.9, A-11), with
``/v1/auth/token`` included. Every worker of a shop sends from the same address,
so the provider builds one :class:`~django_payments_ru.providers.ratelimit.RateLimiter`
per API host with ``limit=requests_per_minute`` (100 by default) and
``period=60``: a burst of 100 calls goes through at once, and the 101st waits
until the oldest of them is 60 s old (or fails with
:class:`~django_payments_ru.exceptions.ProviderRateLimited` when that is longer
than ``PAYMENTS_RU["HTTP_MAX_RETRY_AFTER"]``). The algorithm, and why it holds
across processes, is described in :mod:`django_payments_ru.providers.ratelimit`.

This module only keeps the old import path.
"""

from __future__ import annotations

from ..ratelimit import KEY_PREFIX, RateLimiter

__all__ = ["KEY_PREFIX", "RateLimiter"]
