"""Love&Pay request and webhook signatures (loveandpay.md sections 2.2 and 8.2).

Pure functions over bytes, shared by the client and its emulator, so that both
sides compute exactly the same thing (A-3).
"""

from __future__ import annotations

from ..signing import hmac_sha256_hex, sha256_hex

#: loveandpay.md section 2.2: the SHA-256 of the empty body of a GET.
EMPTY_BODY_SHA256 = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"

API_KEY_HEADER = "x-api-key"
TIMESTAMP_HEADER = "x-timestamp"
SIGNATURE_HEADER = "x-signature"
REQUEST_ID_HEADER = "x-request-id"
WEBHOOK_SIGNATURE_HEADER = "x-webhook-signature"
WEBHOOK_ID_HEADER = "x-webhook-id"
WEBHOOK_TIMESTAMP_HEADER = "x-webhook-timestamp"
#: loveandpay.md section 8.2: the signature header's value starts with this.
WEBHOOK_SIGNATURE_PREFIX = "sha256="


def body_sha256(body: bytes) -> str:
    """Lower-case hex SHA-256 of the exact body bytes sent (section 2.2)."""
    return sha256_hex(body)


def signing_message(method: str, path: str, timestamp_ms: str, body: bytes) -> str:
    """``METHOD + PATH + TIMESTAMP_MS + hex(SHA256(body))``, no separators.

    ``path`` is the full URL path as sent, ``/api/v2`` included, without the
    query string (section 2.2, A-3: signing ``/invoices`` alone gives
    ``INVALID_SIGNATURE``)."""
    path = path.split("?", 1)[0]
    return f"{method.upper()}{path}{timestamp_ms}{body_sha256(body)}"


def sign_request(
    secret_key: str, method: str, path: str, timestamp_ms: str | int, body: bytes
) -> str:
    """The ``x-signature`` of a v2 request: lower-case hex HMAC-SHA256 of
    :func:`signing_message`, keyed with the secret key ``sk_...``."""
    return hmac_sha256_hex(
        secret_key, signing_message(method, path, str(timestamp_ms), body)
    )


def sign_webhook(secret: str | bytes, body: bytes) -> str:
    """The ``x-webhook-signature`` value of a webhook: ``sha256=`` and the hex
    HMAC-SHA256 of the raw body keyed with the webhook's secret (section 8.2)."""
    return WEBHOOK_SIGNATURE_PREFIX + hmac_sha256_hex(secret, body)
