"""PayConnect: bearer tokens, payments in minor units, signed JSON webhooks.

The protocol is ``payconnect.md`` (section 1 the documented facts, section 3 the
contract that closes the gaps with labelled ASSUMPTIONs A-1..A-13):

* ``POST {api_url}auth/token`` with ``Authorization: Bearer <secret key>`` and
  ``{"scope": "payments.write payments.read"}`` gives ``{access_token,
  expires_in: 86400, ...}`` (F-4, F-5, §3.2). The token is cached for every
  worker through :class:`~django_payments_ru.providers.tokens.TokenCache`.
* ``POST {api_url}payments`` ``{amount (minor units), currency, description,
  customer: {email}, return_url, metadata}`` with an ``Idempotency-Key`` gives
  the payment object; the customer goes to its ``payment_url`` (F-6, F-7, §3.3,
  §3.4). ``GET {api_url}payments/<id>``; ``POST {api_url}payments/<id>/refunds``
  ``{amount}`` (§3.5).
* Webhooks ``payment.succeeded`` / ``payment.failed`` / ``payment.refunded``
  (F-8), signed in ``x-payconnect-signature`` with the lower-case hex
  HMAC-SHA256 of the raw body keyed with the secret key (F-9, §3.7, A-3),
  acknowledged with ``200 OK`` (F-10).
* Errors ``{"error": {code, message, docs_url, param}}`` (F-12, §3.8); at most
  100 requests a minute from one IP (F-13, §3.9).
"""

from __future__ import annotations

import hashlib
import re
import time
from collections.abc import Callable, Mapping
from datetime import datetime
from decimal import Decimal
from typing import TYPE_CHECKING, Any, ClassVar, TypeVar
from urllib.parse import urlsplit

from django.http import HttpRequest, HttpResponse
from django.utils.functional import cached_property
from django.utils.translation import gettext as _

from ...events import EventType, PaymentEvent
from ...exceptions import (
    InvalidInput,
    ProviderAuthError,
    ProviderResponseError,
    WebhookError,
    WebhookParseError,
    WebhookVerificationError,
)
from ...money import from_minor, to_minor
from ...status import PAID_STATES
from ..base import BaseProvider, Capability, Checkout, Option
from ..payload import load_json_object, webhook_parsing
from ..ratelimit import RateLimiter
from ..signing import hmac_sha256_hex, matches_any
from ..tokens import Token, TokenCache, fingerprint

if TYPE_CHECKING:
    from ...models import Invoice

T = TypeVar("T")

SIGNATURE_HEADER = "x-payconnect-signature"
EVENT_ID_HEADER = "x-payconnect-event-id"
DEFAULT_API_URL = "https://api.payconnect.com/v1/"
DEFAULT_SCOPE = "payments.write payments.read"
#: payconnect.md §3.3 (A-9): an Idempotency-Key is at most 64 characters.
IDEMPOTENCY_KEY_MAX = 64
#: payconnect.md §3.2: the codes of a token the API no longer accepts; only
#: these are worth one new token (insufficient_scope, invalid_api_key are not).
TOKEN_REJECTED = frozenset({"invalid_token", "token_expired"})
#: payconnect.md §3.3: customer.phone is E.164.
E164 = re.compile(r"^\+[1-9]\d{1,14}$")


def sign(secret: str | bytes, body: bytes) -> str:
    """The PayConnect webhook signature (payconnect.md §3.7, A-3): lower-case hex
    HMAC-SHA256 of the raw body, keyed with the account's secret key."""
    return hmac_sha256_hex(secret, body)


def minor_units(amount: Decimal, currency: str) -> int:
    """``amount`` in the currency's minor units, exactly (F-7: ``amount`` is an
    integer of minor units). Raises
    :class:`~django_payments_ru.exceptions.InvalidAmount` when it does not
    convert exactly (a float, more decimals than the currency has)."""
    return to_minor(amount, currency)


def major_units(minor: Any, currency: str) -> Decimal:
    """A PayConnect integer amount back as a Decimal in major units."""
    return from_minor(minor, currency)


def idempotency_key(*parts: str) -> str:
    """``parts`` joined by ``:``; a digest of them when that would exceed the
    64 characters PayConnect takes (§3.3)."""
    key = ":".join(parts)
    if len(key) <= IDEMPOTENCY_KEY_MAX:
        return key
    return hashlib.sha256(key.encode()).hexdigest()[:IDEMPOTENCY_KEY_MAX]


class _NotTheToken(Exception):
    """Carries an authorization error that a new token would not cure (an
    insufficient scope) through :meth:`TokenCache.call`, which would otherwise
    fetch a token and try again."""

    def __init__(self, error: ProviderAuthError) -> None:
        self.error = error
        super().__init__()


class Provider(BaseProvider):
    """PayConnect (api.payconnect.com).

    Options:

    ``secret_key``
        The account's secret API key, ``sk_test_...`` or ``sk_live_...`` (secret).
        It obtains the access tokens and signs the webhooks (A-3).
    ``api_url``
        The API root including ``/v1/`` (default
        ``"https://api.payconnect.com/v1/"``); the emulator's URL in development,
        e.g. ``"http://127.0.0.1:8000/emulator/payconnect/v1/"``.
    ``scope``
        The scopes asked for with each token (default
        ``"payments.write payments.read"``).
    ``previous_secret_keys``
        Earlier secret keys whose webhook signatures are still accepted during a
        key rotation (a list, secret; default ``[]``).
    ``requests_per_minute``
        This server's budget of requests to PayConnect (default 100, F-13),
        shared by every process through the Django cache; ``None`` turns the
        client-side limit off.
    """

    slug = "payconnect"
    display_name = "PayConnect"
    emulator = "django_payments_ru.providers.payconnect.emulator"
    # payconnect.md A-12: other currencies are disabled by default.
    currencies = frozenset({"RUB"})
    capabilities = frozenset(
        {Capability.REFUND, Capability.PARTIAL_REFUND, Capability.STATUS}
    )
    # payconnect.md F-13: at most 200 000 RUB in one payment.
    max_amounts: ClassVar[dict[str, Decimal]] = {"RUB": Decimal("200000")}
    base_url_option = "api_url"
    # Each start creates a new payment (payconnect.md §3.3): a late failure of
    # an earlier one is stale, never the invoice's (the services' rule).
    payment_per_attempt = True
    options: ClassVar[dict[str, Option]] = {
        "secret_key": Option(
            secret=True, help="the PayConnect secret API key, 'sk_live_...'"
        ),
        "api_url": Option(required=False, default=DEFAULT_API_URL),
        "scope": Option(required=False, default=DEFAULT_SCOPE),
        "previous_secret_keys": Option(
            required=False, default=[], secret=True, types=(list, tuple)
        ),
        "requests_per_minute": Option(required=False, default=100, types=(int,)),
    }
    checkout_kind = "redirect"
    webhook_auth = "HMAC-SHA256 over the raw body"

    #: Injected by tests: the current Unix time (token lifetimes, the limiter).
    clock: Callable[[], float] = staticmethod(time.time)
    #: Injected by tests: how the client waits (Retry-After, backoff, limiter).
    sleep: Callable[[float], None] = staticmethod(time.sleep)

    #: payconnect.md §3.4 (A-5): the payment statuses.
    STATUS_EVENTS: ClassVar[dict[str, EventType]] = {
        "succeeded": EventType.PAID,
        "failed": EventType.FAILED,
        "refunded": EventType.REFUNDED,
    }
    #: payconnect.md F-8: the event types.
    WEBHOOK_TYPES: ClassVar[frozenset[str]] = frozenset(
        {"payment.succeeded", "payment.failed", "payment.refunded"}
    )

    # --- plumbing -----------------------------------------------------------

    @cached_property
    def tokens(self) -> TokenCache:
        key = fingerprint(
            self.config["secret_key"], self.config["scope"], self.config["api_url"]
        )
        return TokenCache(
            f"payconnect:{self.alias}:{key}",
            self._fetch_token,
            clock=self._now,
            sleep=self._sleep,
            on_token=self.http.add_secret,
            provider=self.alias,
        )

    @cached_property
    def limiter(self) -> RateLimiter | None:
        limit = self.config["requests_per_minute"]
        if not limit:
            return None
        # F-13 counts per IP address, so every alias of this server talking to
        # the same API host shares one budget.
        host = urlsplit(self.config["api_url"]).netloc
        return self.rate_limiter(fingerprint(host), limit, period=60.0, per="a minute")

    def parse_error(self, status: int, body: Any) -> tuple[str, str, dict[str, Any]]:
        # payconnect.md F-12/§3.8: {"error": {code, message, docs_url, param}};
        # every field is kept in the error's details (param only when given).
        code, message, details = super().parse_error(status, body)
        return code, message, {k: v for k, v in details.items() if v is not None}

    def _send(self, method: str, path: str, **kwargs: Any) -> Any:
        """One request, after the shared rate limiter lets it go."""
        if self.limiter is not None:
            self.limiter.acquire()
        return self.http.request(method, path, **kwargs)

    def _fetch_token(self) -> Token:
        data = self._send(
            "POST",
            "auth/token",
            json={"scope": self.config["scope"]},
            headers={"Authorization": f"Bearer {self.config['secret_key']}"},
            # payconnect.md §3.2: several tokens may be live at once, so asking
            # again after a lost answer is harmless.
            idempotent=True,
        )
        value = data.get("access_token") if isinstance(data, Mapping) else None
        lifetime = data.get("expires_in") if isinstance(data, Mapping) else None
        if (
            not isinstance(value, str)
            or not value
            or isinstance(lifetime, bool)
            or not isinstance(lifetime, int | float)
            or lifetime <= 0
        ):
            raise ProviderResponseError(
                "PayConnect answered the token request without an access_token "
                "and a positive expires_in.",
                provider=self.alias,
            )
        # expires_in, not expires_at: measured on our own clock, so a skewed
        # provider clock cannot make a token look valid or dead.
        return Token(value, self._now() + float(lifetime))

    def call(
        self,
        method: str,
        path: str,
        *,
        idempotency_key: str = "",
        **kwargs: Any,
    ) -> Any:
        """An API call with the access token (one new token if PayConnect says
        the token is invalid or expired, §3.2)."""
        headers = dict(kwargs.pop("headers", {}) or {})
        if idempotency_key:
            headers["Idempotency-Key"] = idempotency_key
            # The key makes a repeated POST return the first answer (§3.3).
            kwargs.setdefault("idempotent", True)

        def attempt(token: str) -> Any:
            try:
                return self._send(
                    method,
                    path,
                    headers={**headers, "Authorization": f"Bearer {token}"},
                    **kwargs,
                )
            except ProviderAuthError as exc:
                if exc.code in TOKEN_REJECTED:
                    raise
                raise _NotTheToken(exc) from None

        try:
            return self.tokens.call(attempt)
        except _NotTheToken as wrapped:
            raise wrapped.error from None

    # --- checkout -----------------------------------------------------------

    def validate_invoice(self, invoice: Invoice) -> None:
        super().validate_invoice(invoice)
        # payconnect.md F-7/§3.3: customer.email is required.
        if not invoice.customer_email:
            raise InvalidInput(
                _(
                    "PayConnect needs the customer's e-mail address: fill in "
                    "the invoice's customer e-mail."
                ),
                field="customer_email",
                provider=self.alias,
            )
        # Refused here, before anything is sent, when the amount does not
        # convert to whole minor units.
        minor_units(invoice.amount, invoice.currency)

    def payment_body(
        self, invoice: Invoice, request: HttpRequest | None = None
    ) -> dict[str, Any]:
        """The ``POST payments`` body of ``invoice`` (§3.3)."""
        customer: dict[str, str] = {"email": invoice.customer_email}
        if invoice.customer_phone and E164.match(invoice.customer_phone):
            customer["phone"] = invoice.customer_phone
        metadata = {"invoice_id": str(invoice.uuid)}
        if invoice.order_id:
            metadata["order_id"] = invoice.order_id
        body: dict[str, Any] = {
            "amount": minor_units(invoice.amount, invoice.currency),
            "currency": invoice.currency,
            "customer": customer,
            "return_url": self.return_url(invoice, request),
            "metadata": metadata,
        }
        description = invoice.description or (
            f"Order {invoice.order_id}" if invoice.order_id else ""
        )
        if description:
            body["description"] = description[:255]
        return body

    def start(
        self, invoice: Invoice, request: HttpRequest | None = None, *, key: str = ""
    ) -> Checkout:
        self.validate_invoice(invoice)
        # One key per invoice and attempt (the services' claim): a retried create
        # (timeout, 5xx) gets the payment the first try made; a new attempt after
        # a failed payment has a new claim, so it never replays the dead one.
        key = (
            idempotency_key(key)
            if key
            else idempotency_key(
                str(invoice.uuid), "after", invoice.provider_payment_id or "first"
            )
        )
        payment = self._payment(
            self.call(
                "POST",
                "payments",
                json=self.payment_body(invoice, request),
                idempotency_key=key,
            )
        )
        if not payment.get("payment_url"):
            raise ProviderResponseError(
                "PayConnect answered without a payment_url.", provider=self.alias
            )
        return Checkout(
            method="GET",
            url=str(payment["payment_url"]),
            payment_id=str(payment["id"]),
            # payconnect.md F-13: the session lives 30 minutes.
            expires_at=_time(payment.get("expires_at")),
        )

    def _payment(self, data: Any) -> Mapping[str, Any]:
        if not isinstance(data, Mapping) or not data.get("id"):
            raise ProviderResponseError(
                "PayConnect answered without a payment object.", provider=self.alias
            )
        return data

    # --- events -------------------------------------------------------------

    def _event(
        self,
        payment: Mapping[str, Any],
        kind: EventType,
        dedupe_id: str,
        *,
        occurred_at: datetime | None = None,
        raw: Any = None,
    ) -> PaymentEvent:
        currency = str(payment.get("currency", ""))
        amount = payment.get("amount")
        metadata = payment.get("metadata")
        metadata = metadata if isinstance(metadata, Mapping) else {}
        refunded_total = None
        if kind is EventType.REFUNDED:
            refunded_total = major_units(payment.get("refunded_amount", 0), currency)
        reason = ""
        if kind in (EventType.FAILED, EventType.EXPIRED):
            reason = str(
                payment.get("failure_message") or payment.get("failure_code") or ""
            )
        extra: dict[str, Any] = {}
        when = occurred_at or (
            _time(payment.get("paid_at")) if kind is EventType.PAID else None
        )
        if when is not None:
            extra["occurred_at"] = when
        return PaymentEvent(
            provider=self.alias,
            dedupe_id=dedupe_id,
            type=kind,
            invoice_ref=str(metadata.get("invoice_id", "")),
            provider_payment_id=str(payment.get("id", "")),
            order_id=str(metadata.get("order_id", "")),
            amount=major_units(amount, currency) if amount is not None else None,
            currency=currency,
            refunded_total=refunded_total,
            reason=reason,
            raw=raw if raw is not None else dict(payment),
            **extra,
        )

    def _kind(self, payment: Mapping[str, Any]) -> EventType | None:
        status = payment.get("status")
        if status == "pending":
            return None
        kind = self.STATUS_EVENTS.get(str(status))
        if kind is None:
            raise self.provider_error(
                ProviderResponseError, f"Unknown PayConnect payment status {status!r}."
            )
        if kind is EventType.FAILED and payment.get("failure_code") == (
            "session_expired"
        ):
            # payconnect.md A-5: an expired session is reported as a failure.
            return EventType.EXPIRED
        return kind

    def _refunded(self, payment: Mapping[str, Any]) -> bool:
        value = payment.get("refunded_amount") or 0
        return isinstance(value, int) and not isinstance(value, bool) and value > 0

    # --- webhooks -----------------------------------------------------------

    def webhook_secrets(self) -> list[str]:
        """The keys whose signatures are accepted: the secret key, then the
        previous ones (a rotation)."""
        return [self.config["secret_key"], *self.config["previous_secret_keys"]]

    def verify_webhook(self, request: HttpRequest) -> None:
        signature = request.headers.get(SIGNATURE_HEADER, "").strip().lower()
        if not signature:
            raise WebhookVerificationError(
                "The signature header is missing.",
                provider=self.alias,
                code="missing_signature",
            )
        body = request.body  # the raw bytes: never re-serialised JSON (§3.7)
        if not matches_any(
            signature, self.webhook_secrets(), lambda secret: sign(secret, body)
        ):
            raise WebhookVerificationError(
                "The signature does not match.", provider=self.alias
            )

    def parse_webhook(self, request: HttpRequest) -> list[PaymentEvent]:
        # The shared loader refuses NaN, NUL, lone surrogates, absurd numbers and
        # nesting; webhook_parsing turns what the payment object still holds (an
        # unknown status or currency, an amount that is not minor units, a
        # missing key) into a parse error.
        data = load_json_object(request.body, provider=self.alias)
        with webhook_parsing(self.alias):
            event_id = str(data["id"])
            event_type = str(data["type"])
            payment = data["data"]["object"]
            if (
                not isinstance(payment, Mapping)
                or not event_id
                or not payment.get("id")
            ):
                raise WebhookParseError(
                    _("Not a PayConnect event."), provider=self.alias
                )
            created = _time(data.get("created_at"))
            return self._webhook_events(data, event_id, event_type, payment, created)

    def _webhook_events(
        self,
        data: Mapping[str, Any],
        event_id: str,
        event_type: str,
        payment: Mapping[str, Any],
        created: datetime | None,
    ) -> list[PaymentEvent]:
        if event_type not in self.WEBHOOK_TYPES:
            # Signed, but not one we know: kept and acknowledged, so PayConnect
            # stops retrying, never applied.
            return [self._event(payment, EventType.INFO, event_id, raw=data)]
        # payconnect.md §3.7: data.object.status is authoritative; the type only
        # says which change was announced.
        kind = self._kind(payment)
        if kind is None:
            return [self._event(payment, EventType.INFO, event_id, raw=data)]
        if kind is EventType.PAID and event_type == "payment.refunded":
            # A partial refund keeps status "succeeded".
            kind = EventType.REFUNDED if self._refunded(payment) else kind
        if kind is EventType.REFUNDED:
            # A refund proves the payment: when payment.refunded overtakes
            # payment.succeeded (§3.7: no ordering), the payment is applied
            # first, so the refund is not dropped as "refund before payment".
            return [
                self._event(
                    payment,
                    EventType.PAID,
                    f"{event_id}:paid",
                    occurred_at=_time(payment.get("paid_at")),
                    raw=data,
                ),
                self._event(payment, kind, event_id, occurred_at=created, raw=data),
            ]
        return [self._event(payment, kind, event_id, occurred_at=created, raw=data)]

    def webhook_response(
        self, request: HttpRequest, events: list[PaymentEvent]
    ) -> HttpResponse:
        # payconnect.md F-10: the sample receiver answers 200 "OK".
        return HttpResponse("OK", content_type="text/plain")

    def webhook_error_response(
        self, request: HttpRequest, error: WebhookError
    ) -> HttpResponse:
        if isinstance(error, WebhookVerificationError):
            # payconnect.md F-10: 400 "Invalid signature".
            return HttpResponse(
                "Invalid signature", status=400, content_type="text/plain"
            )
        return super().webhook_error_response(request, error)

    # --- server calls -------------------------------------------------------

    def get_payment(self, payment_id: str) -> Mapping[str, Any]:
        """``GET payments/<id>`` (§3.5)."""
        return self._payment(self.call("GET", f"payments/{payment_id}"))

    def fetch_status(self, invoice: Invoice) -> PaymentEvent | None:
        if not invoice.provider_payment_id:
            return None
        payment = self.get_payment(invoice.provider_payment_id)
        kind = self._kind(payment)
        if kind is None:
            return None
        if kind is EventType.PAID and self._refunded(payment):
            kind = EventType.REFUNDED
        if kind is EventType.REFUNDED and invoice.status not in PAID_STATES:
            # The payment webhook was lost: the payment first, the refund at the
            # next refresh.
            kind = EventType.PAID
        # Polls of the same state share a dedupe id, so they apply once.
        dedupe = (
            f"poll:{payment['id']}:{payment.get('status')}:"
            f"{payment.get('refunded_amount', 0)}:{kind.value}"
        )
        return self._event(payment, kind, dedupe)

    def refund(
        self, invoice: Invoice, amount: Decimal, *, key: str = ""
    ) -> PaymentEvent | None:
        minor = minor_units(amount, invoice.currency)
        before = minor_units(invoice.refunded_amount, invoice.currency)
        data = self.call(
            "POST",
            f"payments/{self.payment_id(invoice)}/refunds",
            json={"amount": minor},
            # The services' claim: the same refund asked again (a retry) is the
            # same request, a new refund has a new claim.
            idempotency_key=idempotency_key(key)
            if key
            else idempotency_key("rf", invoice.uuid.hex, str(before), str(minor)),
        )
        if not isinstance(data, Mapping) or not data.get("id"):
            raise ProviderResponseError(
                "PayConnect answered without a refund.", provider=self.alias
            )
        # The refund object carries no running total (§3.5): ours plus this
        # refund is the payment's refunded_amount that the payment.refunded
        # webhook will report, so the two never count this refund twice.
        total = before + int(data.get("amount", minor))
        payment = {
            "id": invoice.provider_payment_id,
            "currency": invoice.currency,
            "refunded_amount": total,
            "metadata": {"invoice_id": str(invoice.uuid)},
        }
        return self._event(
            payment,
            EventType.REFUNDED,
            f"refund:{data['id']}",
            occurred_at=_time(data.get("created_at")),
            raw=data,
        )


def _time(value: Any) -> datetime | None:
    """An ISO-8601 UTC time of PayConnect (``...Z``, A-13), or ``None``."""
    if not isinstance(value, str) or not value:
        return None
    try:
        return datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
