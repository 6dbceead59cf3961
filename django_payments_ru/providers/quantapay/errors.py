"""QuantaPay's error codes as typed errors.

Every answer of ``api.php`` is the envelope of quantapay.md §3, decided by
``success`` whatever the HTTP status (A-1): ``{"success": false, "error_code":
"<slug>", "message": "<text>"}``. The documented codes (§3) and the assumed
ones (A-2) each have a class here, so a caller can catch exactly the one it
handles (``except TransactionNotFound``) or every QuantaPay refusal
(``except QuantaPayAPIError``); each also derives from the core class that
says what kind of failure it is (authentication, rate limit, bad input).
The code and the message are kept on the error (``code``,
``provider_message``).
"""

from __future__ import annotations

from ...exceptions import (
    ProviderAPIError,
    ProviderAuthError,
    ProviderRateLimited,
    ProviderUnavailable,
)


class QuantaPayAPIError(ProviderAPIError):
    """QuantaPay refused the call (``success: false``)."""

    default_code = "quantapay_error"


class MissingFunctionName(QuantaPayAPIError):
    """No ``function`` field in the request (§3)."""

    default_code = "missing-function-name"


class FunctionNotFound(QuantaPayAPIError):
    """``function`` names no QuantaPay function (§3)."""

    default_code = "function-not-found"


class ApiKeyNotFound(QuantaPayAPIError, ProviderAuthError):
    """No ``api-key`` field in the request (§3)."""

    default_code = "api-key-not-found"


class InvalidApiKey(QuantaPayAPIError, ProviderAuthError):
    """The ``api-key`` is not the account's (§3)."""

    default_code = "invalid-api-key"


class MissingArgument(QuantaPayAPIError):
    """A parameter the function needs is missing (§3)."""

    default_code = "missing-argument"


class RequestExpired(QuantaPayAPIError):
    """The signed request's timestamp is more than 5 minutes from QuantaPay's
    clock (§4, A-2: message ``"Request expired"``)."""

    default_code = "request-expired"
    hint = "Check this server's clock (NTP)."


class InvalidSignature(QuantaPayAPIError):
    """The request signature does not match (A-2)."""

    default_code = "invalid-signature"
    hint = "Check the webhook_secret option: it keys the request signature."


class InvalidArgument(QuantaPayAPIError):
    """A parameter has a value QuantaPay does not take (A-2)."""

    default_code = "invalid-argument"


class TransactionNotFound(QuantaPayAPIError):
    """No such transaction (A-2), or one that disappeared (A-6: never paid,
    48 h old)."""

    default_code = "transaction-not-found"


class RateLimited(QuantaPayAPIError, ProviderRateLimited):
    """QuantaPay throttled the call (A-10)."""

    default_code = "rate-limited"
    hint = "Try again later."


class TransportError(ProviderUnavailable):
    """An answer that is not QuantaPay's envelope: an HTTP status other than
    200, or a body that is not JSON (A-1). Only reads are retried."""

    default_code = "quantapay_transport"


#: ``error_code`` -> its class (quantapay.md §3 and A-2).
ERRORS: dict[str, type[QuantaPayAPIError]] = {
    cls.default_code: cls
    for cls in (
        MissingFunctionName,
        FunctionNotFound,
        ApiKeyNotFound,
        InvalidApiKey,
        MissingArgument,
        RequestExpired,
        InvalidSignature,
        InvalidArgument,
        TransactionNotFound,
        RateLimited,
    )
}

__all__ = [
    "ERRORS",
    "ApiKeyNotFound",
    "FunctionNotFound",
    "InvalidApiKey",
    "InvalidArgument",
    "InvalidSignature",
    "MissingArgument",
    "MissingFunctionName",
    "QuantaPayAPIError",
    "RateLimited",
    "RequestExpired",
    "TransactionNotFound",
    "TransportError",
]
