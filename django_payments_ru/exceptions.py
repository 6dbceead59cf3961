"""Errors raised by django-payments-ru.

Everything the app raises at run time derives from :class:`PaymentsError`, so
``except PaymentsError`` catches all of it. Configuration mistakes derive from
Django's :class:`~django.core.exceptions.ImproperlyConfigured` instead, *outside*
that root, so that no broad ``except PaymentsError`` hides a broken setting.

Every error carries the provider alias, the HTTP status, the provider's own code
and message where there is one, and a ``str()`` that says what happened and what
to do about it. Error texts never contain secrets.
"""

from __future__ import annotations

from typing import Any

from django.core.exceptions import ImproperlyConfigured, SuspiciousOperation


class PaymentsError(Exception):
    """Root of every run-time error of django-payments-ru."""

    #: A stable machine-readable code, overridden by subclasses.
    default_code: str = "payments_error"
    #: What the user should do about it; appended to ``str()``.
    hint: str = ""

    def __init__(
        self,
        message: str = "",
        *,
        provider: str = "",
        status: int | None = None,
        code: str = "",
        provider_message: str = "",
        details: dict[str, Any] | None = None,
        hint: str = "",
    ) -> None:
        self.message = message or self.__class__.__doc__ or self.default_code
        self.provider = provider
        self.status = status
        self.code = code or self.default_code
        self.provider_message = provider_message
        self.details = dict(details or {})
        if hint:
            self.hint = hint
        super().__init__(self.message)

    def __str__(self) -> str:
        parts = []
        if self.provider:
            parts.append(f"[{self.provider}]")
        parts.append(self.message.strip())
        extra = []
        if self.status is not None:
            extra.append(f"HTTP {self.status}")
        if self.code and self.code != self.default_code:
            extra.append(f"code {self.code!r}")
        if self.provider_message and self.provider_message not in self.message:
            extra.append(f"provider says: {self.provider_message}")
        if extra:
            parts.append("(" + ", ".join(extra) + ")")
        text = " ".join(parts)
        if self.hint:
            text += f" {self.hint}"
        return text


# -- bad input ---------------------------------------------------------------


class InvalidInput(PaymentsError, ValueError):
    """Input that cannot be accepted; ``field`` names the offending value."""

    default_code = "invalid_input"

    def __init__(self, message: str = "", *, field: str = "", **kwargs: Any) -> None:
        self.field = field
        super().__init__(message, **kwargs)


class InvalidAmount(InvalidInput):
    """An amount that is not a valid sum of money in its currency."""

    default_code = "invalid_amount"


class InvalidCurrency(InvalidInput):
    """A currency code that is unknown or not supported by the provider."""

    default_code = "invalid_currency"


class InvalidOperation(PaymentsError):
    """The operation is not possible in the invoice's current state."""

    default_code = "invalid_operation"


class NotSupported(PaymentsError):
    """The provider does not offer this operation."""

    default_code = "not_supported"


# -- webhooks ----------------------------------------------------------------


class WebhookError(PaymentsError, SuspiciousOperation):
    """A webhook that cannot be accepted. Django answers these with HTTP 400."""

    default_code = "webhook_rejected"
    #: The HTTP status the webhook view answers with.
    http_status: int = 400


class WebhookVerificationError(WebhookError):
    """The webhook is not provably from the provider (signature, key, timestamp)."""

    default_code = "invalid_signature"


class WebhookParseError(WebhookError):
    """The webhook passed verification but its content cannot be understood."""

    default_code = "malformed_webhook"


# -- provider API ------------------------------------------------------------


class ProviderError(PaymentsError):
    """A call to the provider failed."""

    default_code = "provider_error"


class ProviderAPIError(ProviderError):
    """The provider refused the request (HTTP 4xx or an error envelope)."""

    default_code = "api_error"


class ProviderAuthError(ProviderAPIError):
    """The provider refused our credentials or token."""

    default_code = "authentication_failed"
    hint = "Check the provider's credentials in PAYMENTS_RU['PROVIDERS']."


class ProviderRateLimited(ProviderAPIError):
    """The provider asked us to slow down (HTTP 429) longer than we may wait."""

    default_code = "rate_limited"

    def __init__(
        self, message: str = "", *, retry_after: float | None = None, **kwargs: Any
    ) -> None:
        self.retry_after = retry_after
        super().__init__(message, **kwargs)


class ProviderUnavailable(ProviderError):
    """The provider could not be reached or kept failing (timeouts, 5xx)."""

    default_code = "provider_unavailable"
    hint = "The request may be retried later."


class ProviderResponseError(ProviderError):
    """The provider answered with something we cannot understand."""

    default_code = "bad_response"


# -- configuration (outside the root on purpose) ------------------------------


class ConfigurationError(ImproperlyConfigured):
    """A setting in ``PAYMENTS_RU`` is missing or wrong."""


class UnknownProvider(ConfigurationError, KeyError):
    """No provider with that alias is configured."""

    def __str__(self) -> str:  # KeyError would add quotes around the message
        return str(self.args[0]) if self.args else ""
