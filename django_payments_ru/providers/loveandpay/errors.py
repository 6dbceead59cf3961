"""Love&Pay's error codes as typed errors (loveandpay.md section 3, A-2).

Every error carries the provider's ``code``, its ``provider_message`` and the
``request_id`` (the envelope's ``requestId``, else the ``x-request-id``
header), so that a merchant can quote it to Love&Pay's support.
"""

from __future__ import annotations

from typing import Any

from django.utils.translation import gettext_lazy as _

from ...exceptions import (
    PaymentsError,
    ProviderAPIError,
    ProviderAuthError,
    ProviderRateLimited,
    ProviderUnavailable,
)


class LoveAndPayError(PaymentsError):
    """Mixed into every Love&Pay API error: the request id."""

    request_id: str = ""

    def __init__(self, message: str = "", *, request_id: str = "", **kwargs: Any):
        self.request_id = request_id
        super().__init__(message, **kwargs)

    def __str__(self) -> str:
        text = super().__str__()
        if self.request_id:
            text += f" (request id {self.request_id})"
        return text


class LoveAndPayAPIError(LoveAndPayError, ProviderAPIError):
    """Love&Pay refused the request (a code not listed below)."""

    default_code = "api_error"


class LoveAndPayAuthError(LoveAndPayError, ProviderAuthError):
    """Love&Pay refused our credentials (HTTP 401/403)."""

    default_code = "authentication_failed"


class MissingHeaders(LoveAndPayAuthError):
    """``MISSING_HEADERS``: a v2 request without its authentication headers."""

    default_code = "MISSING_HEADERS"


class InvalidApiKey(LoveAndPayAuthError):
    """``INVALID_API_KEY``: the key is not known (A-2)."""

    default_code = "INVALID_API_KEY"
    hint = "Check api_key in PAYMENTS_RU['PROVIDERS'] (pk_live_... or pk_test_...)."


class InvalidSignature(LoveAndPayAuthError):
    """``INVALID_SIGNATURE``: the HMAC of the request does not match."""

    default_code = "INVALID_SIGNATURE"
    hint = "Check secret_key in PAYMENTS_RU['PROVIDERS'] (sk_live_... or sk_test_...)."


class TimestampExpired(LoveAndPayAuthError):
    """``TIMESTAMP_EXPIRED``: our clock is more than 5 minutes off (A-1)."""

    default_code = "TIMESTAMP_EXPIRED"
    hint = "Synchronise this server's clock (NTP)."


class ApiBlocked(LoveAndPayAuthError):
    """``API_BLOCKED`` (or the v1 403 that means it): Love&Pay's anomaly
    detection blocked the key (section 2.1). Remembered in the shared cache:
    every process fails fast with this error until the merchant confirms the
    re-index in the admin."""

    default_code = "API_BLOCKED"
    hint = ""


class PartnerInactive(LoveAndPayAuthError):
    """``PARTNER_INACTIVE``: the merchant account is not active."""

    default_code = "PARTNER_INACTIVE"
    hint = "Ask Love&Pay's support why the account is inactive."


class DomainNotVerified(LoveAndPayAuthError):
    """``DOMAIN_NOT_VERIFIED``: the strict mode wants a verified domain (2.3)."""

    default_code = "DOMAIN_NOT_VERIFIED"
    hint = (
        "Publish the TXT record _loveandpay.<domain> = lnp-verify=<token> and press "
        "'Проверить' in Настройки → Доступ к API."
    )


class SourceIpNotAllowed(LoveAndPayAuthError):
    """``SOURCE_IP_NOT_ALLOWED``: this server's address is not allow-listed."""

    default_code = "SOURCE_IP_NOT_ALLOWED"
    hint = "Add this server's IP address in Настройки → Доступ к API."


class ValidationFailed(LoveAndPayAPIError):
    """``VALIDATION_ERROR``: a field of the request was refused."""

    default_code = "VALIDATION_ERROR"


class NotFound(LoveAndPayAPIError):
    """``NOT_FOUND``: no such invoice (A-2)."""

    default_code = "NOT_FOUND"


class RateLimitExceeded(LoveAndPayError, ProviderRateLimited):
    """``RATE_LIMIT_EXCEEDED``: more than 100 a minute or 1000 an hour (9)."""

    default_code = "RATE_LIMIT_EXCEEDED"
    hint = "Try again later."


class CycleBlocked(LoveAndPayError, ProviderRateLimited):
    """``CYCLE_BLOCKED`` (meaning not documented; answered 429 per A-2)."""

    default_code = "CYCLE_BLOCKED"
    hint = "Try again later."


class InternalError(LoveAndPayError, ProviderUnavailable):
    """``INTERNAL_ERROR``: also what the real API answers for an amount below
    the terminal's minimum (section 3, A-10); never retried for a create."""

    default_code = "INTERNAL_ERROR"


#: Each code of section 3 (and A-2) and its error class.
ERRORS: dict[str, type[LoveAndPayError]] = {
    cls.default_code: cls
    for cls in (
        MissingHeaders,
        InvalidApiKey,
        InvalidSignature,
        TimestampExpired,
        ApiBlocked,
        PartnerInactive,
        DomainNotVerified,
        SourceIpNotAllowed,
        ValidationFailed,
        NotFound,
        RateLimitExceeded,
        CycleBlocked,
        InternalError,
    )
}

#: What the merchant must do about a blocked key (seed "Что делать если ключ
#: заблокирован?", section 2.1): both steps, the second is easy to miss.
BLOCKED_STEPS = _(
    "Love&Pay has blocked the API key of %(alias)s (API_BLOCKED): no request is "
    "sent to Love&Pay until it is unblocked. 1) Write to the support chat on "
    "loveandpay.io and ask them to unblock the key; 2) then press "
    '"Переиндексировать" (re-index) next to the key in Настройки → API ключи: '
    "without that step the key stays dead. Finally confirm it in the admin "
    '(Invoices → Love&Pay API key → "The key was re-indexed").'
)
