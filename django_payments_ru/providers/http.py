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
  ``[redacted]`` in every log record and exception text.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterable, Mapping
from typing import Any

import requests
from requests.adapters import HTTPAdapter
from urllib3.util.retry import Retry

from ..exceptions import (
    ProviderAPIError,
    ProviderAuthError,
    ProviderRateLimited,
    ProviderResponseError,
    ProviderUnavailable,
)

logger = logging.getLogger("django_payments_ru.http")

SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS", "PUT", "DELETE"})
RETRY_STATUSES = frozenset({429, 500, 502, 503, 504})
REDACTED = "[redacted]"

ErrorParser = Callable[[int, Any], tuple[str, str, dict[str, Any]]]


class _RetryAfterTooLong(Exception):
    def __init__(self, seconds: float) -> None:
        self.seconds = seconds
        super().__init__(seconds)


class _Retry(Retry):
    """urllib3's Retry with an injectable sleep and a ceiling on Retry-After."""

    sleep_func: Callable[[float], None] = staticmethod(time.sleep)
    max_retry_after: float = 30.0

    def sleep_for_retry(self, response: Any) -> bool:
        seconds = self.get_retry_after(response) if response is not None else None
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
        "ProviderRetry", (_Retry,),
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
    ) -> None:
        self.provider = provider
        self.base_url = base_url if base_url.endswith("/") else base_url + "/"
        self.timeout = timeout
        self.error_parser = error_parser
        self._secrets: set[str] = {s for s in secrets if s}
        retry_cls = _retry_class(sleep, max_retry_after)
        common = {
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
        self._safe = self._session(retry_cls(
            total=retries, connect=retries, read=retries, status=retries,
            other=0, allowed_methods=None, **common,
        ), headers)
        # Not safe to repeat: only a connection that never got the request out.
        self._unsafe = self._session(retry_cls(
            total=retries, connect=retries, read=0, status=0, other=0,
            allowed_methods=None, **common,
        ), headers)

    @staticmethod
    def _session(retry: Retry, headers: Mapping[str, str] | None) -> requests.Session:
        session = requests.Session()
        adapter = HTTPAdapter(max_retries=retry, pool_maxsize=16)
        session.mount("http://", adapter)
        session.mount("https://", adapter)
        session.headers["User-Agent"] = "django-payments-ru"
        if headers:
            session.headers.update(headers)
        return session

    # --- redaction ----------------------------------------------------------

    def add_secret(self, value: str) -> None:
        """Redact ``value`` (a token obtained at run time) from now on."""
        if value:
            self._secrets.add(value)

    def redact(self, text: str) -> str:
        for secret in sorted(self._secrets, key=len, reverse=True):
            if secret in text:
                text = text.replace(secret, REDACTED)
        return text

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
        try:
            response = session.request(
                method, url, allow_redirects=allow_redirects, **kwargs
            )
        except _RetryAfterTooLong as exc:
            raise ProviderRateLimited(
                f"The provider asked to wait {exc.seconds:.0f} s before retrying "
                f"{method} {self.redact(url)}.",
                provider=self.provider, status=429, retry_after=exc.seconds,
                hint="Try again later.",
            ) from None
        except requests.Timeout as exc:
            raise ProviderUnavailable(
                f"{method} {self.redact(url)} timed out.", provider=self.provider
            ) from self._clean(exc)
        except requests.RequestException as exc:
            raise ProviderUnavailable(
                f"{method} {self.redact(url)} failed: {type(exc).__name__}.",
                provider=self.provider,
            ) from self._clean(exc)
        logger.info(
            "%s %s %s -> %s in %.0f ms", self.provider, method, self.redact(url),
            response.status_code, (time.monotonic() - started) * 1000,
        )
        return response

    def _clean(self, exc: BaseException) -> BaseException | None:
        # urllib3 errors repeat the URL (and thus any secret in a query string).
        text = str(exc)
        return None if self.redact(text) != text else exc

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
        ok = (response.status_code in set(expected) if expected is not None
              else 200 <= response.status_code < 300)
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

    def error_for(self, response: requests.Response, body: Any) -> Exception:
        status = response.status_code
        code, message, details = ("", "", {})
        if self.error_parser is not None:
            try:
                code, message, details = self.error_parser(status, body)
            except Exception:  # a malformed envelope must not hide the status
                code, message, details = "", "", {}
        message = self.redact(message or "")
        details = {k: self.redact(str(v)) for k, v in details.items()}
        method = response.request.method if response.request else ""
        url = self.redact(response.url or "")
        text = f"{method} {url} was refused"
        if status == 429:
            retry_after = response.headers.get("Retry-After")
            return ProviderRateLimited(
                f"{method} {url}: the provider's rate limit was exceeded.",
                provider=self.provider, status=status, code=code or "rate_limited",
                provider_message=message, details=details,
                retry_after=float(retry_after) if retry_after and
                retry_after.replace(".", "", 1).isdigit() else None,
            )
        if status in (401, 403):
            return ProviderAuthError(text, provider=self.provider, status=status,
                                     code=code, provider_message=message,
                                     details=details)
        if status >= 500:
            return ProviderUnavailable(
                f"{method} {url} failed on the provider's side.",
                provider=self.provider, status=status, code=code,
                provider_message=message, details=details,
            )
        if 300 <= status < 400 or 200 <= status < 300:
            return ProviderResponseError(
                f"{method} {url} answered with an unexpected HTTP {status}.",
                provider=self.provider, status=status, code=code,
                provider_message=message, details=details,
            )
        return ProviderAPIError(text, provider=self.provider, status=status,
                                code=code, provider_message=message, details=details)

    def close(self) -> None:
        self._safe.close()
        self._unsafe.close()
