"""One HTTP client for every provider call.

* A :class:`requests.Session` per provider instance (keep-alive).
* Connect and read timeouts always set.
* Bounded retries (:class:`urllib3.util.retry.Retry`) with capped exponential
  backoff and jitter on connection errors, 429 and 5xx, honouring ``Retry-After``,
  only for requests that are safe to repeat: GET/HEAD/OPTIONS/PUT/DELETE, or a
  POST/PATCH the caller marks ``idempotent=True`` because it carries the
  provider's idempotency key or a unique order id. An unsafe request is retried
  only when the connection failed before anything was sent.
* Errors become typed exceptions carrying the provider's code and message.
* Secrets (option values, tokens added at run time) are replaced by
  ``[redacted]`` in every log record and exception text, including urllib3's own
  debug records, which repeat the request URL with its query string.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable, Iterable, Mapping
from contextvars import ContextVar
from typing import Any, TypeVar, cast
from urllib.parse import quote, quote_plus

import requests
from requests.adapters import HTTPAdapter
from urllib3.exceptions import InvalidHeader, NewConnectionError
from urllib3.exceptions import TimeoutError as Urllib3TimeoutError
from urllib3.util.retry import Retry

from ..exceptions import (
    PaymentsError,
    ProviderAPIError,
    ProviderAuthError,
    ProviderRateLimited,
    ProviderResponseError,
    ProviderUnavailable,
    mentions_secret,
)

logger = logging.getLogger("django_payments_ru.http")

SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS", "PUT", "DELETE"})
RETRY_STATUSES = frozenset({429, 500, 502, 503, 504})
REDACTED = "[redacted]"

ErrorParser = Callable[[int, Any], tuple[str, str, dict[str, Any]]]
_E = TypeVar("_E", bound=PaymentsError)

# The redaction of the client whose request is running in this thread or task:
# urllib3 logs from inside session.request(), where no client is in scope.
_active_redact: ContextVar[Callable[[str], str] | None] = ContextVar(
    "django_payments_ru_http_redact", default=None
)

# urllib3 logs the request URL (query string included) at DEBUG and WARNING.
# A filter on a logger only sees that logger's own records, so each one is named.
_URLLIB3_LOGGERS = (
    "urllib3.connectionpool",
    "urllib3.connection",
    "urllib3.poolmanager",
    "urllib3.response",
    "urllib3.util.retry",
)


class _RedactFilter(logging.Filter):
    """Replaces the active client's secrets in urllib3's log records."""

    def filter(self, record: logging.LogRecord) -> bool:
        redact = _active_redact.get()
        if redact is None:
            return True
        try:
            message = record.getMessage()
        except Exception:  # a broken record is logging's problem, not ours
            return True
        cleaned = redact(message)
        if cleaned != message:
            record.msg = cleaned
            record.args = None
        return True


_redact_filter = _RedactFilter()


def secret_forms(value: str) -> set[str]:
    """``value`` and the forms it takes inside a URL (percent- and
    plus-encoded), each of which must be redacted."""
    if not value:
        return set()
    return {value, quote(value, safe=""), quote_plus(value), quote(value)}


def _replace(text: str, forms: Iterable[str]) -> str:
    # ``forms`` longest first: a secret that contains another is replaced whole.
    for secret in forms:
        if secret in text:
            text = text.replace(secret, REDACTED)
    return text


def redact_secrets(text: str, secrets: Iterable[str]) -> str:
    """``text`` with each of ``secrets`` (in every URL form) replaced by
    ``[redacted]``."""
    forms: set[str] = set()
    for secret in secrets:
        forms |= secret_forms(secret)
    return _replace(text, sorted(forms, key=len, reverse=True))


def _install_log_filter() -> None:
    # Idempotent, and repeated per client: a logging.config.dictConfig() run after
    # this module's import may have replaced a logger's filters.
    for name in _URLLIB3_LOGGERS:
        target = logging.getLogger(name)
        if _redact_filter not in target.filters:
            target.addFilter(_redact_filter)


_install_log_filter()


def _transport_problem(exc: requests.RequestException) -> str:
    """What went wrong, in words that hold no URL."""
    # Once retries are exhausted requests reports a read timeout as a
    # ConnectionError around urllib3's MaxRetryError; its reason tells the truth.
    reason = getattr(exc.args[0], "reason", None) if exc.args else None
    for error in (exc, reason):
        if isinstance(error, NewConnectionError):  # a ConnectTimeoutError subclass
            return f"failed: could not connect ({type(error).__name__})"
        if isinstance(error, requests.Timeout | Urllib3TimeoutError):
            return "timed out"
    return f"failed: {type(reason or exc).__name__}"


def _parse_retry_after(value: str | None) -> float | None:
    """Seconds from a ``Retry-After`` value (delta seconds or an HTTP date)."""
    if not value:
        return None
    try:
        seconds = float(value)
    except ValueError:
        try:
            seconds = float(Retry().parse_retry_after(value))
        except (InvalidHeader, OverflowError, ValueError):
            return None
    return max(0.0, seconds) if math.isfinite(seconds) else None


class _RetryAfterTooLong(Exception):
    def __init__(self, seconds: float) -> None:
        self.seconds = seconds
        super().__init__(seconds)


class _Retry(Retry):
    """urllib3's Retry with an injectable sleep and a ceiling on Retry-After."""

    sleep_func: Callable[[float], None] = staticmethod(time.sleep)
    max_retry_after: float = 30.0

    def sleep_for_retry(self, response: Any) -> bool:
        try:
            seconds = self.get_retry_after(response) if response is not None else None
        except InvalidHeader:
            # An unreadable Retry-After falls back to the backoff schedule rather
            # than failing a request that is allowed to be retried.
            return False
        if seconds is None:
            return False
        if seconds > self.max_retry_after:
            raise _RetryAfterTooLong(seconds)
        self.sleep_func(seconds)
        return True

    def _sleep_backoff(self) -> None:
        backoff = self.get_backoff_time()
        if backoff > 0:
            self.sleep_func(backoff)


def _retry_class(sleep: Callable[[float], None], max_retry_after: float) -> type[Retry]:
    return type(
        "ProviderRetry",
        (_Retry,),
        {"sleep_func": staticmethod(sleep), "max_retry_after": max_retry_after},
    )


class HttpClient:
    """HTTP calls of one provider alias.

    ``request()`` returns the decoded JSON body (``None`` for an empty body, the
    text for a non-JSON body) of a 2xx answer and raises a typed
    :class:`~django_payments_ru.exceptions.ProviderError` otherwise.
    """

    def __init__(
        self,
        *,
        provider: str,
        base_url: str,
        timeout: float | tuple[float, float] = (5.0, 30.0),
        retries: int = 3,
        backoff_factor: float = 0.5,
        backoff_max: float = 10.0,
        backoff_jitter: float = 0.5,
        max_retry_after: float = 30.0,
        secrets: Iterable[str] = (),
        error_parser: ErrorParser | None = None,
        headers: Mapping[str, str] | None = None,
        sleep: Callable[[float], None] = time.sleep,
        also_redact: Callable[[str], str] | None = None,
    ) -> None:
        self.provider = provider
        #: A further redaction for this client's errors and logs: the
        #: provider's (:meth:`BaseProvider.redact
        #: <django_payments_ru.providers.base.BaseProvider.redact>`), which
        #: also knows the tokens its other clients learned.
        self.also_redact = also_redact
        self.base_url = base_url if base_url.endswith("/") else base_url + "/"
        self.timeout = timeout
        self.error_parser = error_parser
        self._secrets: set[str] = set()
        self._forms: tuple[str, ...] = ()
        for secret in secrets:
            self.add_secret(secret)
        _install_log_filter()
        retry_cls = _retry_class(sleep, max_retry_after)
        common: dict[str, Any] = {
            "backoff_factor": backoff_factor,
            "backoff_max": backoff_max,
            "backoff_jitter": backoff_jitter,
            "status_forcelist": RETRY_STATUSES,
            "respect_retry_after_header": True,
            "raise_on_status": False,
            "raise_on_redirect": False,
            "redirect": 0,
        }
        # Safe to repeat: every kind of failure is retried.
        self._safe = self._session(
            retry_cls(
                total=retries,
                connect=retries,
                read=retries,
                status=retries,
                other=0,
                allowed_methods=None,
                **common,
            ),
            headers,
        )
        # Not safe to repeat: only a connection that never got the request out.
        self._unsafe = self._session(
            retry_cls(
                total=retries,
                connect=retries,
                read=0,
                status=0,
                other=0,
                allowed_methods=None,
                **common,
            ),
            headers,
            pool_of=self._safe,
        )

    @staticmethod
    def _session(
        retry: Retry,
        headers: Mapping[str, str] | None,
        pool_of: requests.Session | None = None,
    ) -> requests.Session:
        session = requests.Session()
        adapter = HTTPAdapter(max_retries=retry, pool_maxsize=16)
        if pool_of is not None:
            # One connection pool for both retry policies: urllib3 takes the Retry
            # per call, so a POST and the GETs around it share kept-alive
            # connections instead of opening a second set.
            shared = cast(HTTPAdapter, pool_of.get_adapter("https://"))
            adapter.poolmanager.clear()
            adapter.poolmanager = shared.poolmanager
        session.mount("http://", adapter)
        session.mount("https://", adapter)
        session.headers["User-Agent"] = "django-payments-ru"
        if headers:
            session.headers.update(headers)
        return session

    # --- redaction ----------------------------------------------------------

    def add_secret(self, value: str) -> None:
        """Redact ``value`` (a token obtained at run time) from now on."""
        if not value or value in self._secrets:
            return
        self._secrets.add(value)
        # The tuple is rebuilt and swapped in one assignment, so a redact()
        # running in another thread never iterates a collection that is changing.
        forms = set(self._forms) | secret_forms(value)
        self._forms = tuple(sorted(forms, key=len, reverse=True))

    def redact(self, text: str) -> str:
        """``text`` with every known secret replaced by ``[redacted]``."""
        text = _replace(text, self._forms)
        return self.also_redact(text) if self.also_redact is not None else text

    def redact_own(self, text: str) -> str:
        """:meth:`redact` with this client's own secrets only."""
        return _replace(text, self._forms)

    def redact_error(self, error: _E) -> _E:
        """``error`` with every secret this client knows redacted from all of
        its texts and its chain (:meth:`PaymentsError.redact
        <django_payments_ru.exceptions.PaymentsError.redact>`)."""
        return error.redact(self.redact)

    # --- calls --------------------------------------------------------------

    def url(self, path: str) -> str:
        if path.startswith(("http://", "https://")):
            return path
        return self.base_url + path.lstrip("/")

    def request_raw(
        self,
        method: str,
        path: str,
        *,
        idempotent: bool | None = None,
        allow_redirects: bool = False,
        **kwargs: Any,
    ) -> requests.Response:
        """Send the request and return the :class:`requests.Response` of any
        status; raises only for transport failures."""
        method = method.upper()
        safe = method in SAFE_METHODS if idempotent is None else idempotent
        session = self._safe if safe else self._unsafe
        url = self.url(path)
        kwargs.setdefault("timeout", self.timeout)
        started = time.monotonic()
        # The error is raised after the except blocks: raised inside one, it would
        # keep the transport exception (whose text repeats the URL) as its
        # __context__ even with "from None".
        failure: ProviderRateLimited | ProviderUnavailable | None = None
        cause: BaseException | None = None
        active = _active_redact.set(self.redact)
        try:
            response = session.request(
                method, url, allow_redirects=allow_redirects, **kwargs
            )
        except _RetryAfterTooLong as exc:
            failure = ProviderRateLimited(
                f"The provider asked to wait {exc.seconds:.0f} s before retrying "
                f"{method} {self.redact(url)}.",
                provider=self.provider,
                status=429,
                retry_after=exc.seconds,
                hint="Try again later.",
            )
        except requests.RequestException as exc:
            failure = ProviderUnavailable(
                f"{method} {self.redact(url)} {_transport_problem(exc)}.",
                provider=self.provider,
            )
            cause = self._clean(exc)
        finally:
            _active_redact.reset(active)
        if failure is not None:
            raise self.redact_error(failure) from cause
        logger.info(
            "%s %s %s -> %s in %.0f ms",
            self.provider,
            method,
            self.redact(url),
            response.status_code,
            (time.monotonic() - started) * 1000,
        )
        return response

    def _clean(self, exc: BaseException) -> BaseException | None:
        """``exc`` to chain as the cause, or ``None`` when any exception in its
        chain mentions a secret: urllib3 errors repeat the URL, query included."""
        return None if mentions_secret(exc, self.redact) else exc

    def request(
        self,
        method: str,
        path: str,
        *,
        idempotent: bool | None = None,
        expected: Iterable[int] | None = None,
        **kwargs: Any,
    ) -> Any:
        """Send the request; return the decoded body of a successful answer."""
        response = self.request_raw(method, path, idempotent=idempotent, **kwargs)
        ok = (
            response.status_code in set(expected)
            if expected is not None
            else 200 <= response.status_code < 300
        )
        body = self.decode(response)
        if not ok:
            raise self.error_for(response, body)
        return body

    @staticmethod
    def decode(response: requests.Response) -> Any:
        if not response.content:
            return None
        try:
            return response.json()
        except ValueError:
            return response.text

    def error_for(self, response: requests.Response, body: Any) -> PaymentsError:
        """The typed error for a refused answer. Every text it carries (message,
        the provider's code and message, details at any depth) is redacted here,
        once for every provider: an answer may echo a key or a token."""
        return self.redact_error(self._error_for(response, body))

    def _error_for(self, response: requests.Response, body: Any) -> PaymentsError:
        status = response.status_code
        code, message = "", ""
        details: dict[str, Any] = {}
        if self.error_parser is not None:
            try:
                code, message, details = self.error_parser(status, body)
            except Exception:  # a malformed envelope must not hide the status
                code, message, details = "", "", {}
        message = message or ""
        details = dict(details or {})
        method = response.request.method if response.request else ""
        url = self.redact(response.url or "")
        text = f"{method} {url} was refused"
        if status == 429:
            retry_after = response.headers.get("Retry-After")
            return ProviderRateLimited(
                f"{method} {url}: the provider's rate limit was exceeded.",
                provider=self.provider,
                status=status,
                code=code or "rate_limited",
                provider_message=message,
                details=details,
                retry_after=_parse_retry_after(retry_after),
            )
        if status in (401, 403):
            return ProviderAuthError(
                text,
                provider=self.provider,
                status=status,
                code=code,
                provider_message=message,
                details=details,
            )
        if status >= 500:
            return ProviderUnavailable(
                f"{method} {url} failed on the provider's side.",
                provider=self.provider,
                status=status,
                code=code,
                provider_message=message,
                details=details,
            )
        if 300 <= status < 400 or 200 <= status < 300:
            return ProviderResponseError(
                f"{method} {url} answered with an unexpected HTTP {status}.",
                provider=self.provider,
                status=status,
                code=code,
                provider_message=message,
                details=details,
            )
        return ProviderAPIError(
            text,
            provider=self.provider,
            status=status,
            code=code,
            provider_message=message,
            details=details,
        )

    def close(self) -> None:
        self._safe.close()
        self._unsafe.close()
