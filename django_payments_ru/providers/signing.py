"""HMAC helpers shared by the providers.

* Always over raw bytes: a webhook is verified against the body exactly as it
  arrived, never against re-serialised JSON.
* Constant-time comparison (:func:`hmac.compare_digest`).
* Several secrets at once, so a secret can be rotated without refusing the
  provider's retries signed with the previous one.
* A timestamp window in both directions: a stale signature is a replay, one from
  the future is a forged or badly clocked one.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
from collections.abc import Callable, Iterable

from ..exceptions import WebhookVerificationError


def _bytes(value: str | bytes) -> bytes:
    return value.encode("utf-8") if isinstance(value, str) else value


def hmac_sha256(key: str | bytes, message: str | bytes) -> bytes:
    """Raw HMAC-SHA256 digest."""
    return hmac.new(_bytes(key), _bytes(message), hashlib.sha256).digest()


def hmac_sha256_hex(key: str | bytes, message: str | bytes) -> str:
    """Lower-case hex HMAC-SHA256."""
    return hmac_sha256(key, message).hex()


def hmac_sha256_b64(key: str | bytes, message: str | bytes) -> str:
    """Base64 (standard alphabet, padded) HMAC-SHA256."""
    return base64.b64encode(hmac_sha256(key, message)).decode("ascii")


def sha256_hex(data: str | bytes) -> str:
    """Lower-case hex SHA-256 (no key)."""
    return hashlib.sha256(_bytes(data)).hexdigest()


def constant_time_equals(given: str | bytes | None, expected: str | bytes) -> bool:
    """``given == expected`` in time independent of where they differ."""
    if given is None:
        return False
    return hmac.compare_digest(_bytes(given), _bytes(expected))


def matches_any(
    given: str | bytes | None,
    secrets: Iterable[str | bytes],
    compute: Callable[[str | bytes], str | bytes],
) -> bool:
    """Whether ``given`` equals ``compute(secret)`` for one of ``secrets``.

    Every secret is tried (no early exit), so timing does not tell which one
    matched. Empty secrets never match."""
    if not given:
        return False
    ok = False
    for secret in secrets:
        if not secret:
            continue
        ok |= constant_time_equals(given, compute(secret))
    return ok


def check_timestamp(
    value: str | int | float | None,
    *,
    now: float,
    tolerance: float,
    milliseconds: bool = False,
) -> float:
    """Parse a Unix timestamp and require it within ``tolerance`` seconds of
    ``now`` in both directions. Returns it in seconds.

    Raises :class:`WebhookVerificationError` (code ``missing_timestamp``,
    ``invalid_timestamp``, ``stale_timestamp`` or ``future_timestamp``)."""
    if value is None or value == "":
        raise WebhookVerificationError(
            "The timestamp is missing.", code="missing_timestamp"
        )
    try:
        stamp = float(str(value).strip())
    except ValueError:
        raise WebhookVerificationError(
            "The timestamp is not a number.", code="invalid_timestamp"
        ) from None
    if stamp != stamp or stamp in (float("inf"), float("-inf")):
        raise WebhookVerificationError(
            "The timestamp is not a number.", code="invalid_timestamp"
        )
    if milliseconds:
        stamp /= 1000.0
    if stamp < now - tolerance:
        raise WebhookVerificationError(
            "The signature is too old (possible replay).", code="stale_timestamp"
        )
    if stamp > now + tolerance:
        raise WebhookVerificationError(
            "The signature is dated in the future.", code="future_timestamp"
        )
    return stamp
