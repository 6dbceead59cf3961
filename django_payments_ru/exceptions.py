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

from collections.abc import Callable, Iterator, Mapping
from decimal import Decimal
from typing import Any, Self

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

    def redact(self, redact: Callable[[str], str]) -> Self:
        """Pass every text of this error through ``redact`` (which replaces
        secrets by ``[redacted]``) and return the error.

        Covers the message, the provider's code and message, ``details`` at any
        depth, ``args``, every other text attribute, and the errors chained to
        it (``__cause__``, ``__context__``): a chained :class:`PaymentsError` is
        redacted the same way; any other exception whose text mentions a secret
        cannot be rewritten and is cut from the chain. Errors built from a
        provider's answer go through here once, in
        :meth:`HttpClient.error_for
        <django_payments_ru.providers.http.HttpClient.error_for>` and
        :meth:`BaseProvider.provider_error
        <django_payments_ru.providers.base.BaseProvider.provider_error>`.
        """
        _redact_error(self, redact, set())
        return self


def _redact_value(value: Any, redact: Callable[[str], str]) -> Any:
    if isinstance(value, str):
        return redact(value)
    if value is None or isinstance(value, bool | int | float | Decimal):
        return value
    if isinstance(value, Mapping):
        return {
            _redact_value(k, redact): _redact_value(v, redact) for k, v in value.items()
        }
    if isinstance(value, list | tuple | set | frozenset):
        return type(value)(_redact_value(v, redact) for v in value)
    return redact(str(value))  # anything else is shown by its text


def exception_chain(
    error: BaseException, seen: set[int] | None = None
) -> Iterator[BaseException]:
    """``error`` and every exception it was raised from or during, each once
    (``seen`` carries the ids already visited across calls)."""
    seen = set() if seen is None else seen
    pending = [error]
    while pending:
        node = pending.pop()
        if id(node) in seen:
            continue
        seen.add(id(node))
        yield node
        pending.extend(n for n in (node.__cause__, node.__context__) if n)


def mentions_secret(
    error: BaseException, redact: Callable[[str], str], seen: set[int] | None = None
) -> bool:
    """Whether any exception in ``error``'s chain shows text that ``redact``
    would change (a secret, a token)."""
    return any(
        redact(text) != text
        for node in exception_chain(error, seen)
        for text in (str(node), repr(node))
    )


def _redact_error(
    error: PaymentsError, redact: Callable[[str], str], seen: set[int]
) -> None:
    if id(error) in seen:
        return
    seen.add(id(error))
    for name, value in list(vars(error).items()):
        if isinstance(value, str | Mapping | list | tuple):
            setattr(error, name, _redact_value(value, redact))
    error.args = tuple(_redact_value(arg, redact) for arg in error.args)
    cause, context = error.__cause__, error.__context__
    if isinstance(cause, PaymentsError):
        _redact_error(cause, redact, seen)
    elif cause is not None and mentions_secret(cause, redact, set(seen)):
        error.__cause__ = None  # also sets __suppress_context__
    if isinstance(context, PaymentsError):
        _redact_error(context, redact, seen)
    elif context is not None and mentions_secret(context, redact, set(seen)):
        error.__context__ = None


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


class OperationInFlight(InvalidOperation):
    """Another operation on the invoice was sent to the provider and its answer is
    still awaited (a refund, a capture, a start from another tab)."""

    default_code = "operation_in_flight"


class TransactionOpen(PaymentsError, RuntimeError):
    """A provider call was asked for inside an open database transaction (e.g.
    under ``ATOMIC_REQUESTS``): the call would hold row locks for the length of a
    network round trip and its claim would be invisible to other processes."""

    default_code = "transaction_open"
    hint = (
        "Call the service outside transaction.atomic(); with ATOMIC_REQUESTS, "
        "decorate the view with django.db.transaction.non_atomic_requests."
    )


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


class EventNotConfirmed(PaymentsError):
    """The provider's API contradicts a webhook (an unknown transaction, another
    amount, currency or reference): raised by
    :meth:`~django_payments_ru.providers.base.BaseProvider.confirm_event`. The
    stored event is rejected with the message and the invoice it names is
    flagged; nothing else changes."""

    default_code = "event_not_confirmed"


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


# -- deprecations ------------------------------------------------------------


class RemovedInDjangoPaymentsRu2Warning(DeprecationWarning):
    """A feature that goes away in django-payments-ru 2.0 (one release after
    its replacement appeared)."""


# -- configuration (outside the root on purpose) ------------------------------


class ConfigurationError(ImproperlyConfigured):
    """A setting in ``PAYMENTS_RU`` is missing or wrong."""


class UnknownProvider(ConfigurationError, KeyError):
    """No provider with that alias is configured."""

    def __str__(self) -> str:  # KeyError would add quotes around the message
        return str(self.args[0]) if self.args else ""
