"""Life-Pay's ``check`` signatures (lifepay.md §4 and §6.4).

Shared by the provider (signing requests, verifying notifications) and its
emulator (verifying requests, signing notifications), so that both sides
compute exactly the same strings.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Mapping
from urllib.parse import quote, urlsplit

from ..signing import hmac_sha256_b64

#: Fields never covered by a v2.0 ``check`` (lifepay.md §4 step 1: the RFI SDK
#: and C-SMARTIK leave out ``check`` and ``mac``; the SDK also
#: ``check_gate_internal``).
UNSIGNED_FIELDS = frozenset({"check", "mac", "check_gate_internal"})

#: The notification fields concatenated, in this order, by the v1.0 MD5 check
#: (lifepay.md §6.4).
V1_NOTIFICATION_FIELDS = (
    "tid",
    "name",
    "comment",
    "partner_id",
    "service_id",
    "order_id",
    "type",
    "cost",
    "income_total",
    "income",
    "partner_income",
    "system_income",
    "command",
    "phone_number",
    "email",
    "resultStr",
    "date_created",
    "version",
)

_DEFAULT_PORTS = {"http": 80, "https": 443}


def rfc3986(value: str) -> str:
    """Percent-encode everything but ``A-Z a-z 0-9 - _ . ~`` with upper-case
    hex; a space is ``%20``, never ``+`` (lifepay.md §4 step 3)."""
    return quote(value, safe="")


def canonical_query(params: Mapping[str, str]) -> str:
    """``name=value`` pairs sorted byte-wise by name over UTF-8 (lifepay.md §4
    step 2, ASSUMPTION A-18), both encoded per :func:`rfc3986`, joined with
    ``&``; ``check``/``mac`` left out."""
    items = [(k, v) for k, v in params.items() if k not in UNSIGNED_FIELDS]
    items.sort(key=lambda item: item[0].encode("utf-8"))
    return "&".join(f"{rfc3986(k)}={rfc3986(v)}" for k, v in items)


def host_and_path(url: str) -> tuple[str, str]:
    """Host (lower case, ``:port`` only when not the scheme's default) and path
    (exactly as in the URL) of ``url`` (lifepay.md §4 step 4)."""
    parts = urlsplit(url)
    host = (parts.hostname or "").lower()
    if parts.port is not None and parts.port != _DEFAULT_PORTS.get(parts.scheme):
        host = f"{host}:{parts.port}"
    return host, parts.path or "/"


def string_to_sign(method: str, url: str, params: Mapping[str, str]) -> str:
    """``METHOD\\nhost\\npath\\ncanonical_query`` (lifepay.md §4 step 4)."""
    host, path = host_and_path(url)
    return "\n".join((method.upper(), host, path, canonical_query(params)))


def sign_v2(secret: str, method: str, url: str, params: Mapping[str, str]) -> str:
    """The v2.0 ``check``: base64 HMAC-SHA256 of :func:`string_to_sign` with the
    service's secret key (lifepay.md §4 step 5)."""
    return hmac_sha256_b64(secret, string_to_sign(method, url, params))


def sign_v1_notification(secret: str, fields: Mapping[str, str]) -> str:
    """The v1.0 notification ``check``: lower-case hex MD5 of the values of
    :data:`V1_NOTIFICATION_FIELDS` concatenated with no separator, then the
    secret; an absent field counts as ``""`` (lifepay.md §6.4)."""
    # lifepay.md §6.4: v1.0 concatenates values with no separator.
    joined = "".join(fields.get(name, "") for name in V1_NOTIFICATION_FIELDS)
    # MD5 is what Life-Pay's v1.0 scheme uses; it is not our choice of hash.
    return hashlib.md5((joined + secret).encode("utf-8")).hexdigest()  # noqa: S324


def signed_fields(version: str, fields: Mapping[str, str]) -> dict[str, str]:
    """The fields a notification's ``check`` covers in ``version``: the 18 of
    v1.0, or everything but ``check``/``mac`` in v2.0."""
    if version == "1.0":
        return {name: fields.get(name, "") for name in V1_NOTIFICATION_FIELDS}
    return {k: v for k, v in fields.items() if k not in UNSIGNED_FIELDS}


def sign_notification(
    version: str, secret: str, webhook_url: str, fields: Mapping[str, str]
) -> str:
    """The ``check`` of a notification in ``version`` (v2.0 over
    ``webhook_url``, ASSUMPTION A-4)."""
    if version == "1.0":
        return sign_v1_notification(secret, fields)
    return sign_v2(secret, "POST", webhook_url, fields)


def all_secrets(*groups: Iterable[str] | str | None) -> list[str]:
    """Non-empty secrets from options holding one secret or a list of them."""
    found: list[str] = []
    for group in groups:
        if isinstance(group, str):
            group = [group]
        for value in group or ():
            if isinstance(value, str) and value:
                found.append(value)
    return found
