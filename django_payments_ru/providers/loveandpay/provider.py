"""Love&Pay: invoices paid by SBP or card, signed v2 requests, signed webhooks.

The protocol is ``loveandpay.md`` (sections 1-12 the facts, 13 the emulator,
14 the ASSUMPTIONs A-1..A-12); comments cite its sections.

* Every v2 request carries ``x-api-key``, ``x-timestamp`` (Unix milliseconds)
  and ``x-signature``: hex HMAC-SHA256 with the secret key of ``METHOD + full
  path (/api/v2 included, no query) + timestamp + hex SHA-256 of the exact body
  bytes`` (2.2, A-3). v1 takes ``x-api-key`` only (2.1).
* ``POST invoices`` (4.1) creates the invoice; the customer goes to its
  ``paymentLink`` or scans its SBP QR (``qrCode``/``qrPayload``, 4.2, 5).
  ``GET invoices/<id>`` (4.3) reads one, ``GET invoices?status=PENDING`` (4.4)
  reconciles many at once (:meth:`Provider.fetch_statuses`).
* Both error shapes of section 3 become the typed errors of :mod:`.errors`.
  ``API_BLOCKED`` is remembered in the shared cache (:mod:`.keyblock`): every
  process then fails fast without calling Love&Pay until the merchant has
  unblocked and re-indexed the key (seed, 2.1).
* Both limits of section 9 (100 a minute, 1000 an hour) are kept by two shared
  :class:`~django_payments_ru.providers.ratelimit.RateLimiter` instances.
* Webhooks ``x-webhook-signature: sha256=<hex>`` over the raw body (8.2),
  deduplicated by ``x-webhook-id`` (A-5), three spellings of event names (8.4,
  A-6), amounts per A-4.
"""

from __future__ import annotations

import json
import logging
import re
import time
from collections.abc import Callable, Iterable, Mapping
from datetime import datetime
from decimal import Decimal
from typing import TYPE_CHECKING, Any, ClassVar
from urllib.parse import urlsplit

from django.core.exceptions import ValidationError
from django.core.validators import validate_email
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.utils.functional import cached_property
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy

from ...events import EventType, PaymentEvent, stable_hash
from ...exceptions import (
    InvalidAmount,
    InvalidInput,
    InvalidOperation,
    ProviderRateLimited,
    ProviderResponseError,
    ProviderUnavailable,
    WebhookError,
    WebhookParseError,
    WebhookVerificationError,
)
from ...money import to_amount
from ..base import BaseProvider, Capability, Checkout, Option
from ..payload import load_json_object, webhook_parsing
from ..ratelimit import RateLimiter
from ..signing import hmac_sha256_hex, matches_any
from ..tokens import fingerprint
from . import errors
from .auth import (
    API_KEY_HEADER,
    REQUEST_ID_HEADER,
    SIGNATURE_HEADER,
    TIMESTAMP_HEADER,
    WEBHOOK_ID_HEADER,
    WEBHOOK_SIGNATURE_HEADER,
    WEBHOOK_SIGNATURE_PREFIX,
    sign_request,
)
from .keyblock import KeyBlock

if TYPE_CHECKING:
    import requests

    from ...models import Invoice

logger = logging.getLogger("django_payments_ru.loveandpay")

DEFAULT_API_URL = "https://api.prod.loveandpay.io/api/v2"
#: loveandpay.md 4.1: ``customer.phone`` is ``+7XXXXXXXXXX``.
PHONE = re.compile(r"^\+7\d{10}$")
#: loveandpay.md 4.1: description of 1..255 characters.
DESCRIPTION_MAX = 255
#: loveandpay.md 4.4: the largest page of the invoice list.
LIST_LIMIT = 1000
#: A-9: expiresInHours 1..72.
HOURS = range(1, 73)
#: The 403 codes that are not a blocked key (2.3, A-2).
OTHER_403 = frozenset(
    {"PARTNER_INACTIVE", "DOMAIN_NOT_VERIFIED", "SOURCE_IP_NOT_ALLOWED"}
)
_UUID = re.compile(
    r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}", re.IGNORECASE
)

#: loveandpay.md section 7: the invoice statuses.
STATUS_EVENTS: dict[str, EventType] = {
    "PAID": EventType.PAID,
    "EXPIRED": EventType.EXPIRED,
    "CANCELLED": EventType.CANCELLED,
}
#: loveandpay.md 8.4 (A-6): the event names, normalised (lower case, "_" -> ".").
WEBHOOK_EVENTS: dict[str, EventType] = {
    "invoice.created": EventType.PENDING,
    "invoice.paid": EventType.PAID,
    "invoice.expired": EventType.EXPIRED,
    "invoice.cancelled": EventType.CANCELLED,
}


def dumps(body: Mapping[str, Any]) -> bytes:
    """The exact bytes sent (and signed, A-3): compact JSON, UTF-8."""
    return json.dumps(body, separators=(",", ":"), ensure_ascii=False).encode("utf-8")


def rubles_number(amount: Decimal) -> float:
    """``amount`` (at most 2 decimals) as the JSON number Love&Pay takes (4.1:
    rubles, not kopecks). The float's shortest repr is exactly the Decimal for
    every amount of up to 15 significant digits; anything else is refused."""
    value = float(amount)
    if Decimal(repr(value)) != amount:
        raise InvalidAmount(
            _("%(amount)s cannot be sent to Love&Pay exactly.") % {"amount": amount},
            field="amount",
        )
    return value


def parse_rubles(value: Any) -> Decimal:
    """A Love&Pay amount in rubles (a JSON number or a decimal string) as a
    Decimal with 2 decimals (A-4); more decimals are refused."""
    if isinstance(value, float):
        value = Decimal(repr(value))
    elif isinstance(value, str):
        value = Decimal(value.strip())
    return to_amount(value, "RUB", allow_zero=True)


def normalise_event(name: str) -> str:
    """A-6: ``INVOICE_PAID``, ``invoice_paid`` and ``invoice.paid`` are one."""
    return name.strip().lower().replace("_", ".")


def _time(value: Any) -> datetime | None:
    """An ISO-8601 UTC time (``2024-01-24T12:00:00.000Z``, 4.2), or ``None``."""
    if not isinstance(value, str) or not value:
        return None
    try:
        return datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None


def our_ref(description: Any) -> str:
    """Our invoice's UUID, when the description carries it (we always put it
    there, 4.1, A-11)."""
    if not isinstance(description, str):
        return ""
    found = _UUID.findall(description)
    return found[-1].lower() if found else ""


class Provider(BaseProvider):
    """Love&Pay (loveandpay.io).

    Options:

    ``api_key``
        The public key ``pk_live_...`` / ``pk_test_...`` (secret: redacted).
    ``secret_key``
        The secret key ``sk_...`` that signs v2 requests (2.2); required for v2.
    ``webhook_secret``
        The webhook's signing secret ``whsec_...`` (8.2).
    ``previous_webhook_secrets``
        Earlier webhook secrets still accepted during a rotation (default ``[]``).
    ``api_url``
        The API root including ``/api/v2`` (default
        ``"https://api.prod.loveandpay.io/api/v2"``); the emulator's URL in
        development.
    ``api_version``
        ``"v2"`` (signed, default) or ``"v1"`` (``x-api-key`` only).
    ``expires_in_hours``
        The invoices' lifetime, 1..72 (default 24, A-9).
    ``payment_method``
        ``None`` (Love&Pay chooses, default), ``"sbp"`` or ``"card"``.
    ``kyc_required``
        Ask Love&Pay to verify the payer (default ``False``).
    ``cancel_via_api``
        Cancel invoices with the emulator's cancel call (A-7, default ``False``:
        the real API has none, cancelling is local).
    ``requests_per_minute``, ``requests_per_hour``
        The budgets of section 9 (default 100 and 1000), shared by every
        process through the Django cache; ``None`` turns one off.
    """

    slug = "loveandpay"
    display_name = "Love&Pay"
    emulator = "django_payments_ru.providers.loveandpay.emulator"
    currencies = frozenset({"RUB"})
    capabilities = frozenset(
        {Capability.STATUS, Capability.BATCH_STATUS, Capability.CANCEL}
    )
    capability_notes: ClassVar[Mapping[Capability, Any]] = {
        Capability.REFUND: gettext_lazy(
            "Love&Pay has no refund API: refund in the Love&Pay cabinet or through "
            "its support (A-8)."
        ),
        Capability.CANCEL: gettext_lazy(
            "Love&Pay's API cannot cancel an invoice (A-7): it is cancelled here "
            "only; a late payment is still applied and flagged."
        ),
    }
    base_url_option = "api_url"
    options: ClassVar[dict[str, Option]] = {
        "api_key": Option(secret=True, help="the Love&Pay API key, 'pk_live_...'"),
        "secret_key": Option(required=False, default="", secret=True),
        "webhook_secret": Option(
            secret=True, help="the webhook's signing secret, 'whsec_...'"
        ),
        "previous_webhook_secrets": Option(
            required=False, default=[], secret=True, types=(list, tuple)
        ),
        "api_url": Option(required=False, default=DEFAULT_API_URL),
        "api_version": Option(required=False, default="v2", choices=("v2", "v1")),
        "expires_in_hours": Option(required=False, default=24, types=(int,)),
        "payment_method": Option(required=False, default=None, choices=("sbp", "card")),
        "kyc_required": Option(required=False, default=False, types=(bool,)),
        "cancel_via_api": Option(required=False, default=False, types=(bool,)),
        "requests_per_minute": Option(required=False, default=100, types=(int,)),
        "requests_per_hour": Option(required=False, default=1000, types=(int,)),
    }
    checkout_kind = "redirect"
    webhook_auth = "HMAC-SHA256 over the raw body"

    #: Injected by tests: the current Unix time (x-timestamp, the limiters).
    clock: Callable[[], float] = staticmethod(time.time)
    #: Injected by tests: how the client waits (Retry-After, backoff, limiter).
    sleep: Callable[[float], None] = staticmethod(time.sleep)

    # --- options ------------------------------------------------------------

    @classmethod
    def check_options(cls, alias: str, options: Mapping[str, Any]) -> list[str]:
        errors_ = super().check_options(alias, options)
        where = f"PAYMENTS_RU['PROVIDERS'][{alias!r}]['OPTIONS']"
        version = options.get("api_version", "v2")
        if version == "v2" and not options.get("secret_key"):
            errors_.append(
                f"{cls.__name__} with api_version 'v2' needs {where}['secret_key'] "
                "(the 'sk_...' key that signs the requests)."
            )
        hours = options.get("expires_in_hours", 24)
        if isinstance(hours, int) and (isinstance(hours, bool) or hours not in HOURS):
            errors_.append(f"{where}['expires_in_hours'] must be between 1 and 72.")
        for name in ("requests_per_minute", "requests_per_hour"):
            value = options.get(name)
            if isinstance(value, int) and value < 1:
                errors_.append(f"{where}[{name!r}] must be at least 1, or None.")
        return errors_

    def enabled_capabilities(self) -> frozenset[Capability]:
        if self.config["cancel_via_api"]:
            return self.capabilities
        return self.capabilities - {Capability.CANCEL}

    # --- plumbing -----------------------------------------------------------

    @property
    def v2(self) -> bool:
        return bool(self.config["api_version"] == "v2")

    @cached_property
    def keyblock(self) -> KeyBlock:
        return KeyBlock(self.config["api_key"], self.config["api_url"], clock=self._now)

    @cached_property
    def limiters(self) -> list[RateLimiter]:
        """Section 9 (A-12): 100 a minute and 1000 an hour per API key, shared
        by every process and every alias using the key."""
        key = fingerprint(
            self.config["api_key"], urlsplit(self.config["api_url"]).netloc
        )
        found = []
        for option, period, words in (
            ("requests_per_minute", 60.0, "a minute"),
            ("requests_per_hour", 3600.0, "an hour"),
        ):
            limiter = self.rate_limiter(
                f"{key}:{int(period)}", self.config[option], period=period, per=words
            )
            if limiter is not None:
                found.append(limiter)
        return found

    def v1_url(self) -> str:
        """The v1 root next to the configured v2 one (1: ``/api/v1``)."""
        root = self.config["api_url"].rstrip("/")
        if root.endswith("/api/v2"):
            root = root[: -len("/api/v2")] + "/api/v1"
        return root + "/"

    # --- errors -------------------------------------------------------------

    def parse_error(self, status: int, body: Any) -> tuple[str, str, dict[str, Any]]:
        """Both shapes of section 3 (A-2): ``{"success": false, "error": {code,
        message, requestId}}`` and ``{error, message, hint, code}``."""
        if not isinstance(body, Mapping):
            return "", str(body)[:200], {}
        error = body.get("error")
        if isinstance(error, Mapping):
            details = {k: v for k, v in error.items() if v is not None}
            return str(error.get("code", "")), str(error.get("message", "")), details
        details = {k: v for k, v in body.items() if v is not None}
        message = body.get("message") or error or ""
        return str(body.get("code", "")), str(message), details

    def blocked_message(self) -> str:
        """What the merchant must do about the blocked key (seed, 2.1)."""
        return str(errors.BLOCKED_STEPS) % {"alias": self.alias}

    def _blocked(self, request_id: str = "", **kwargs: Any) -> errors.ApiBlocked:
        return errors.ApiBlocked(
            self.blocked_message(),
            provider=self.alias,
            code="API_BLOCKED",
            request_id=request_id,
            **kwargs,
        )

    def _typed(
        self, response: requests.Response, body: Any
    ) -> errors.LoveAndPayError | Exception:
        base = self.http.error_for(response, body)
        code = base.code if base.code != base.default_code else ""
        request_id = str(
            base.details.get("requestId") or response.headers.get(REQUEST_ID_HEADER, "")
        )
        status = response.status_code
        kwargs: dict[str, Any] = {
            "provider": self.alias,
            "status": status,
            "code": code,
            "provider_message": base.provider_message,
            "details": base.details,
            "request_id": request_id,
        }
        blocked = code == "API_BLOCKED" or (
            # SEED-000: v1 answers a blocked key with a bare 403.
            not self.v2 and status == 403 and code not in OTHER_403
        )
        if blocked:
            block = self.keyblock.set(
                code="API_BLOCKED",
                request_id=request_id,
                provider_message=base.provider_message,
            )
            logger.error(
                "Love&Pay blocked the API key of %s (request id %s).",
                self.alias,
                block.request_id or "-",
            )
            kwargs["code"] = "API_BLOCKED"
            return self._blocked(
                **{k: v for k, v in kwargs.items() if k not in ("provider", "code")}
            ).redact(self.redact)
        cls = errors.ERRORS.get(code)
        if cls is None:
            if status == 429:
                cls = errors.RateLimitExceeded
            elif status in (401, 403):
                cls = errors.LoveAndPayAuthError
            elif status >= 500:
                cls = errors.InternalError
            elif status >= 400:
                cls = errors.LoveAndPayAPIError
            else:
                return base
        if issubclass(cls, ProviderRateLimited):
            kwargs["retry_after"] = getattr(base, "retry_after", None)
        if not code:
            kwargs.pop("code")
        return cls(base.message, **kwargs).redact(self.redact)

    # --- calls --------------------------------------------------------------

    def check_blocked(self) -> None:
        """Fail fast, sending nothing, while the key is known to be blocked."""
        block = self.keyblock.get()
        if block is not None:
            raise self._blocked(block.request_id)

    def call(
        self,
        method: str,
        path: str,
        *,
        params: Mapping[str, Any] | None = None,
        json_body: Mapping[str, Any] | None = None,
        probe: bool = False,
        **kwargs: Any,
    ) -> Any:
        """One Love&Pay call: the block check, both limiters, the signature."""
        if not probe:
            self.check_blocked()
        for limiter in self.limiters:
            limiter.acquire()
        url = self.http.url(path)
        body = dumps(json_body) if json_body is not None else b""
        headers = {API_KEY_HEADER: self.config["api_key"]}
        if "files" not in kwargs:
            headers["Content-Type"] = "application/json"
        if self.v2 and "/api/v1/" not in url:
            stamp = str(int(self._now() * 1000))  # 2.2: milliseconds
            headers[TIMESTAMP_HEADER] = stamp
            headers[SIGNATURE_HEADER] = sign_request(
                self.config["secret_key"], method, urlsplit(url).path, stamp, body
            )
        response = self.http.request_raw(
            method,
            url,
            params=dict(params) if params else None,
            data=body if json_body is not None else kwargs.pop("data", None),
            headers=headers,
            **kwargs,
        )
        data = self.http.decode(response)
        if 200 <= response.status_code < 300:
            return data
        raise self._typed(response, data)

    def probe(self) -> None:
        """One cheap signed call that ignores the remembered block (the
        re-index confirmation): ``GET invoices?limit=1``."""
        self.call("GET", "invoices", params={"limit": 1}, probe=True)

    def confirm_reindexed(self) -> None:
        """The merchant says the key was unblocked and re-indexed: one probe
        call; the block is forgotten only when it succeeds (a still-blocked key
        answers API_BLOCKED again and stays remembered)."""
        self.probe()
        self.keyblock.clear()

    def health(self) -> list[str]:
        """A blocked key, read from the shared cache (never an HTTP call)."""
        return [self.blocked_message()] if self.keyblock.get() is not None else []

    # --- invoices -----------------------------------------------------------

    def description(self, invoice: Invoice) -> str:
        """1..255 characters carrying the order id and our invoice's UUID, the
        UUID last (A-11: it finds a create whose answer was lost)."""
        text = (invoice.description or "").strip()
        order = (invoice.order_id or "").strip()
        tail = f" [{invoice.uuid}]"
        if order and order not in text:
            tail = f" (order {order})" + tail
        if not text:
            text = "Order" if order else "Invoice"
        room = DESCRIPTION_MAX - len(tail)
        if room < 1:
            raise InvalidInput(
                _("The order id is too long for Love&Pay's 255-character description."),
                field="order_id",
                provider=self.alias,
            )
        return text[:room].rstrip() + tail

    def validate_invoice(self, invoice: Invoice) -> None:
        """Every limit of 4.1, before anything is sent, naming the field."""
        super().validate_invoice(invoice)
        if invoice.amount <= 0 or invoice.amount != invoice.amount.quantize(
            Decimal("0.01")
        ):
            raise InvalidAmount(
                _(
                    "Love&Pay takes an amount in rubles above zero with at most 2 "
                    "decimals."
                ),
                field="amount",
                provider=self.alias,
            )
        rubles_number(invoice.amount)
        if invoice.customer_email:
            try:
                validate_email(invoice.customer_email)
            except ValidationError:
                raise InvalidInput(
                    _("Love&Pay needs a valid customer e-mail address."),
                    field="customer_email",
                    provider=self.alias,
                ) from None
        if invoice.customer_phone and not PHONE.match(invoice.customer_phone):
            raise InvalidInput(
                _("Love&Pay takes the customer's phone as +7XXXXXXXXXX."),
                field="customer_phone",
                provider=self.alias,
            )
        self.description(invoice)

    def invoice_body(
        self, invoice: Invoice, request: HttpRequest | None = None
    ) -> dict[str, Any]:
        """The ``POST invoices`` body (4.1); optional fields are left out, never
        sent as ``null``."""
        self.validate_invoice(invoice)
        customer: dict[str, str] = {}
        if invoice.customer_email:
            customer["email"] = invoice.customer_email
        if invoice.customer_phone:
            customer["phone"] = invoice.customer_phone
        body: dict[str, Any] = {
            "amount": rubles_number(invoice.amount),
            "currency": "RUB",
            "description": self.description(invoice),
            "customer": customer,
            "expiresInHours": self.config["expires_in_hours"],
            "successUrl": self.return_url(invoice, request),
        }
        if self.config["payment_method"]:
            body["paymentMethod"] = self.config["payment_method"]
        if self.config["kyc_required"]:
            body["kycRequired"] = True
        return body

    def _invoice(self, data: Any) -> Mapping[str, Any]:
        invoice = data.get("invoice") if isinstance(data, Mapping) else None
        if not isinstance(invoice, Mapping) or not invoice.get("id"):
            raise self.provider_error(
                ProviderResponseError, "Love&Pay answered without an invoice."
            )
        return invoice

    def checkout_of(self, data: Mapping[str, Any]) -> Checkout:
        """The checkout of a Love&Pay invoice object (4.2): its ``paymentLink``,
        and the SBP QR for a customer on a desktop (5)."""
        link = data.get("paymentLink")
        if not isinstance(link, str) or not link.startswith(("https://", "http://")):
            raise self.provider_error(
                ProviderResponseError, "Love&Pay answered without a paymentLink."
            )
        image = data.get("qrCode")
        payload = data.get("qrPayload")
        if not isinstance(image, str) or not image.startswith(
            ("data:image/", "https://")
        ):
            image = ""
        if not isinstance(payload, str) or not payload.startswith(
            ("https://", "http://")
        ):
            payload = ""
        return Checkout(
            method="GET",
            url=link,
            payment_id=str(data["id"]),
            expires_at=_time(data.get("expiresAt")),
            qr_image=image,
            qr_payload=payload,
        )

    def start(
        self, invoice: Invoice, request: HttpRequest | None = None, *, key: str = ""
    ) -> Checkout:
        body = self.invoice_body(invoice, request)
        if invoice.provider_payment_id:
            # Issued before (a batch row): the same invoice, while it waits.
            existing = self.get_invoice(invoice.provider_payment_id)
            if existing.get("status") == "PENDING":
                return self.checkout_of(existing)
            if existing.get("status") == "PAID":
                # Its webhook was lost: paying again would take the money twice.
                raise InvalidOperation(
                    _(
                        "Love&Pay reports invoice %(id)s as paid already: refresh "
                        "the invoice instead of starting it again."
                    )
                    % {"id": invoice.provider_payment_id},
                    provider=self.alias,
                )
        try:
            # no idempotency key exists, so this POST is never retried.
            data = self.call("POST", "invoices", json_body=body, idempotent=False)
        except ProviderUnavailable:
            # No answer (a timeout, a 5xx): it may exist all the same. Look for
            # it before anyone creates a second one.
            found = self.find_created(invoice)
            if found is None:
                raise
            return found
        return self.checkout_of(self._invoice(data))

    def recover_start(self, invoice: Invoice, key: str) -> Checkout | None:
        # the create carries no key; our UUID in the description finds it.
        return self.find_created(invoice)

    def pending_invoices(self) -> Iterable[Mapping[str, Any]]:
        """Every PENDING invoice, page by page (4.4: at most 1000 a page)."""
        offset = 0
        while True:
            data = self.call(
                "GET",
                "invoices",
                params={"status": "PENDING", "limit": LIST_LIMIT, "offset": offset},
            )
            rows = data.get("data") if isinstance(data, Mapping) else None
            if not isinstance(rows, list):
                raise self.provider_error(
                    ProviderResponseError, "Love&Pay answered the list without data."
                )
            yield from (row for row in rows if isinstance(row, Mapping))
            pagination = data.get("pagination")
            total = pagination.get("total") if isinstance(pagination, Mapping) else None
            offset += LIST_LIMIT
            if len(rows) < LIST_LIMIT or not isinstance(total, int) or offset >= total:
                return

    def find_created(self, invoice: Invoice) -> Checkout | None:
        """A-11: the PENDING invoice whose description carries our UUID, or
        ``None``."""
        ref = str(invoice.uuid)
        for row in self.pending_invoices():
            if our_ref(row.get("description")) == ref:
                return self.checkout_of(row)
        return None

    def get_invoice(self, invoice_id: str) -> Mapping[str, Any]:
        """``GET invoices/<id>`` (4.3)."""
        return self._invoice(self.call("GET", f"invoices/{invoice_id}"))

    # --- statuses -----------------------------------------------------------

    def status_event(
        self, data: Mapping[str, Any], dedupe: str = ""
    ) -> PaymentEvent | None:
        """The event an invoice object's status reports (7); PENDING reports
        nothing."""
        status = str(data.get("status", ""))
        if status == "PENDING":
            return None
        kind = STATUS_EVENTS.get(status)
        if kind is None:
            raise self.provider_error(
                ProviderResponseError, f"Unknown Love&Pay invoice status {status!r}."
            )
        extra: dict[str, Any] = {}
        if kind is EventType.PAID:
            extra["amount"] = parse_rubles(data.get("amount"))
            paid = _time(data.get("paidAt"))
            if paid is not None:
                extra["occurred_at"] = paid
        return PaymentEvent(
            provider=self.alias,
            # Polls of one state share a dedupe id, so they apply once.
            dedupe_id=dedupe or f"poll:{data['id']}:{status}",
            type=kind,
            invoice_ref=our_ref(data.get("description")),
            provider_payment_id=str(data["id"]),
            currency=str(data.get("currency") or "RUB"),
            raw=dict(data),
            **extra,
        )

    def fetch_status(self, invoice: Invoice) -> PaymentEvent | None:
        if not invoice.provider_payment_id:
            return None
        return self.status_event(self.get_invoice(invoice.provider_payment_id))

    def fetch_statuses(self, invoices: Iterable[Invoice]) -> list[PaymentEvent]:
        """Reconcile many invoices with the list (4.4) instead of one GET each
        (seed: "Batch запросы"): the PENDING list is read page by page (1000 a
        page, stopping once every invoice asked about was seen), and only the
        invoices missing from it are read one by one."""
        wanted = {i.provider_payment_id: i for i in invoices if i.provider_payment_id}
        if not wanted:
            return []
        unseen = set(wanted)
        for row in self.pending_invoices():
            unseen.discard(str(row.get("id", "")))
            if not unseen:
                break
        events = []
        for invoice_id in sorted(unseen):
            try:
                event = self.status_event(self.get_invoice(invoice_id))
            except errors.NotFound:
                logger.warning("Love&Pay knows no invoice %s.", invoice_id)
                continue
            if event is not None:
                events.append(event)
        return events

    def cancel(self, invoice: Invoice, *, key: str = "") -> PaymentEvent | None:
        """A-7: the emulator's ``POST invoices/<id>/cancel``, behind
        ``cancel_via_api`` (the real API has no cancel: local only)."""
        if not self.config["cancel_via_api"] or not invoice.provider_payment_id:
            return None
        data = self._invoice(
            self.call(
                "POST",
                f"invoices/{invoice.provider_payment_id}/cancel",
                json_body={},
                # Cancelling twice is harmless: the same CANCELLED invoice.
                idempotent=True,
            )
        )
        return self.status_event(data, f"cancel:{data['id']}")

    # --- webhooks -----------------------------------------------------------

    def webhook_secrets(self) -> list[str]:
        return [self.config["webhook_secret"], *self.config["previous_webhook_secrets"]]

    def verify_webhook(self, request: HttpRequest) -> None:
        header = request.headers.get(WEBHOOK_SIGNATURE_HEADER, "").strip()
        if not header:
            raise WebhookVerificationError(
                "The signature header is missing.",
                provider=self.alias,
                code="missing_signature",
            )
        given = header[len(WEBHOOK_SIGNATURE_PREFIX) :].lower()
        body = request.body  # 8.2: the raw bytes, never re-serialised JSON
        if not header.lower().startswith(WEBHOOK_SIGNATURE_PREFIX) or not matches_any(
            given, self.webhook_secrets(), lambda secret: hmac_sha256_hex(secret, body)
        ):
            raise WebhookVerificationError(
                "The signature does not match.", provider=self.alias
            )

    def parse_webhook(self, request: HttpRequest) -> list[PaymentEvent]:
        data = load_json_object(request.body, provider=self.alias)
        with webhook_parsing(self.alias):
            # 8.5: KYC events name themselves in "type", invoices in "event".
            name = data.get("event", data.get("type"))
            if not isinstance(name, str) or not name.strip():
                raise WebhookParseError(_("Not a Love&Pay event."), provider=self.alias)
            # a retry changes retryCount (and so the body), never the id.
            dedupe = request.headers.get(WEBHOOK_ID_HEADER, "").strip() or str(
                data.get("id") or ""
            )
            if not dedupe:
                dedupe = stable_hash(
                    {k: v for k, v in data.items() if k != "retryCount"}
                )
            return [self._webhook_event(normalise_event(name), dedupe, data)]

    def _webhook_event(
        self, name: str, dedupe: str, data: Mapping[str, Any]
    ) -> PaymentEvent:
        body = data.get("data")
        if name.startswith("kyc."):
            # 8.5: recorded, never applied (no status of the invoice changes).
            session = body.get("session") if isinstance(body, Mapping) else None
            session = session if isinstance(session, Mapping) else {}
            return PaymentEvent(
                provider=self.alias,
                dedupe_id=dedupe,
                type=EventType.INFO,
                provider_payment_id=str(session.get("invoiceId") or ""),
                reason=f"{name}: {session.get('status', '')}".strip(": "),
                raw=dict(data),
            )
        kind = WEBHOOK_EVENTS.get(name)
        if kind is None:
            # Signed but unknown (INVOICE_UPDATED, TRANSACTION_*): kept and
            # acknowledged with 200, never applied.
            return PaymentEvent(
                provider=self.alias,
                dedupe_id=dedupe,
                type=EventType.INFO,
                raw=dict(data),
            )
        if not isinstance(body, Mapping):
            raise WebhookParseError(
                _("The event carries no data."), provider=self.alias
            )
        # data.id, else data.invoiceId (the cabinet's test panel).
        invoice_id = body.get("id") or body.get("invoiceId")
        if not isinstance(invoice_id, str) or not invoice_id:
            raise WebhookParseError(
                _("The event names no invoice."), provider=self.alias
            )
        extra: dict[str, Any] = {}
        if kind is EventType.PAID:
            extra["amount"] = self.webhook_amount(body)
            paid = _time(body.get("paidAt"))
            if paid is not None:
                extra["occurred_at"] = paid
        else:
            stamp = _time(data.get("timestamp"))
            if stamp is not None:
                extra["occurred_at"] = stamp
        currency = body.get("currency")
        return PaymentEvent(
            provider=self.alias,
            dedupe_id=dedupe,
            type=kind,
            invoice_ref=our_ref(body.get("description")),
            provider_payment_id=invoice_id,
            currency=str(currency) if isinstance(currency, str) else "",
            raw=dict(data),
            **extra,
        )

    @staticmethod
    def webhook_amount(body: Mapping[str, Any]) -> Decimal:
        """A-4: ``amountKopecks``, else ``amountRub``, else ``amount`` (rubles).
        Never called for ``invoice.created`` (kopecks there, 6)."""
        kopecks = body.get("amountKopecks")
        if kopecks is not None:
            if isinstance(kopecks, bool) or not isinstance(kopecks, int):
                raise InvalidAmount("amountKopecks is not an integer.", field="amount")
            return to_amount(Decimal(kopecks) / 100, "RUB", allow_zero=True)
        for name in ("amountRub", "amount"):
            if body.get(name) is not None:
                return parse_rubles(body[name])
        raise InvalidAmount("The payment carries no amount.", field="amount")

    def webhook_response(
        self, request: HttpRequest, events: list[PaymentEvent]
    ) -> HttpResponse:
        return JsonResponse({"ok": True})

    def webhook_error_response(
        self, request: HttpRequest, error: WebhookError
    ) -> HttpResponse:
        if isinstance(error, WebhookVerificationError):
            # 401, so that a wrong secret shows in Love&Pay's logs.
            return HttpResponse(error.code, status=401, content_type="text/plain")
        return super().webhook_error_response(request, error)

    # --- admin --------------------------------------------------------------

    def admin_views(self) -> list[Any]:
        """The admin pages of this alias (core hook): the API key's state with
        "the key was re-indexed", and the CSV batch upload."""
        from .admin import admin_views

        return admin_views(self)


__all__ = ["DEFAULT_API_URL", "Provider", "dumps", "parse_rubles", "rubles_number"]
