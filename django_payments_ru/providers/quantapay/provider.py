"""QuantaPay: one form-encoded ``api.php``, signed checkout sessions, webhooks
that carry a shared key and are confirmed through the API.

The protocol is ``quantapay.md`` (sections 1-12 the documented facts, section
14 the ASSUMPTIONs A-1..A-11 that close the gaps):

* Every call is ``POST api.php`` form-encoded with ``function`` and ``api-key``
  (§1, §2); the answer is ``{success, response}`` or ``{success: false,
  error_code, message}``, decided by ``success`` whatever the HTTP status
  (§3, A-1). Each code is a typed error (:mod:`.errors`).
* ``create-checkout-session`` with ``price`` (major units, A-11), ``currency``
  in lower case (A-3), ``order_id`` = our invoice's uuid, ``title``,
  ``description``, ``redirect`` (A-4), and with ``sign_requests`` a
  ``signature`` = hex HMAC-SHA256 of ``{price}|{currency}|{order_id}|{timestamp}``
  keyed with the webhook secret (§4). The customer goes to ``payment_url``.
* ``get-transaction`` / ``get-transactions`` (A-5) give the transaction; its
  status letter is P, C, X or R (A-6).
* The webhook is ``{"key": <webhook secret>, "transaction": {...}}`` (§9): the
  key is compared in constant time with every active secret and never kept;
  with no HMAC over the body, the transaction is confirmed by
  ``get-transaction`` before the event is applied (A-8, :meth:`confirm_event`).
  QuantaPay sends it once (A-7): the return view and ``refresh_invoice`` poll.
* ``get-balances``, ``get-credit-balance``, ``get-exchange-rates``,
  ``get-fiat-value`` (§5.3) as methods returning Decimals.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable, Mapping
from datetime import UTC, datetime, timedelta
from decimal import Decimal, InvalidOperation
from typing import TYPE_CHECKING, Any, ClassVar, cast

from django.core.cache import caches
from django.http import HttpRequest, HttpResponse
from django.utils.functional import cached_property
from django.utils.translation import gettext
from django.utils.translation import gettext_lazy as _

from ...conf import payments_settings
from ...events import EventType, PaymentEvent
from ...exceptions import (
    EventNotConfirmed,
    InvalidAmount,
    InvalidCurrency,
    ProviderError,
    ProviderResponseError,
    WebhookError,
    WebhookParseError,
    WebhookVerificationError,
)
from ...money import CURRENCY_EXPONENTS, exponent, format_amount, parse_amount
from ..base import BaseProvider, Capability, Checkout, Option
from ..payload import load_json_object, webhook_parsing
from ..ratelimit import RateLimiter
from ..signing import constant_time_equals, hmac_sha256_hex
from ..tokens import fingerprint
from .errors import (
    ERRORS,
    InvalidApiKey,
    QuantaPayAPIError,
    RateLimited,
    TransactionNotFound,
    TransportError,
)

if TYPE_CHECKING:
    from ...models import Invoice

logger = logging.getLogger("django_payments_ru.quantapay")

DEFAULT_API_URL = "https://cloud.quantapay.app/api.php"
#: quantapay.md §4: the signed timestamp may be this far from QuantaPay's clock.
SIGNATURE_WINDOW = 300
#: quantapay.md A-6: a session never paid disappears after 48 hours.
SESSION_LIFETIME = timedelta(hours=48)
#: quantapay.md A-6: the status letters.
PENDING, COMPLETED, UNDERPAID, REFUNDED = "P", "C", "X", "R"
STATUSES = frozenset({PENDING, COMPLETED, UNDERPAID, REFUNDED})
#: A-11: the client sends two decimals, or none for zero-decimal currencies.
SUPPORTED = frozenset(c for c, e in CURRENCY_EXPONENTS.items() if e in (0, 2))
#: The fields of a transaction the events keep (§9), besides the crypto ones.
TRANSACTION_FIELDS = (
    "id",
    "biz_id",
    "title",
    "description",
    "from",
    "to",
    "hash",
    "amount",
    "amount_fiat",
    "cryptocurrency",
    "currency",
    "external_reference",
    "creation_time",
    "status",
    "webhook",
    "vat",
    "billing",
    "checkout_id",
    "type",
)
#: Why the admin offers no refund (quantapay.md §11): shown where it would be.
NO_REFUNDS = cast(
    str,
    _(
        "QuantaPay has no refunds: the customer paid in crypto straight into "
        "your own wallet, so a refund is an on-chain transfer you make from "
        "that wallet."
    ),
)
NO_CANCEL = cast(
    str,
    _(
        "QuantaPay cannot cancel a checkout session: an unpaid one lapses after "
        "48 hours."
    ),
)
#: The webhook's answer (A-8: "200 with any body; we answer {"ok":true}").
ACK_BODY = b'{"ok":true}'


def format_price(amount: Decimal, currency: str) -> str:
    """``price`` as QuantaPay takes it (A-11): major units with the currency's
    decimals, two (``"49.99"``) or none (``"5000"`` JPY)."""
    if exponent(currency) not in (0, 2):
        raise InvalidCurrency(
            f"QuantaPay prices carry two decimals or none; {currency} has "
            f"{exponent(currency)}.",
            field="currency",
        )
    return format_amount(amount, currency)


def signature_string(price: str, currency: str, order_id: str, timestamp: int) -> str:
    """The string signed (quantapay.md §4, A-3): the four values exactly as
    sent, joined by ``|``; ``order_id`` empty when not sent."""
    return f"{price}|{currency}|{order_id}|{timestamp}"


def sign(secret: str, price: str, currency: str, order_id: str, timestamp: int) -> str:
    """Lower-case hex HMAC-SHA256 of :func:`signature_string` keyed with the
    webhook secret (§4)."""
    return hmac_sha256_hex(
        secret, signature_string(price, currency, order_id, timestamp)
    )


def _decimal(value: Any, what: str) -> Decimal:
    """A Decimal from a number or a decimal string of QuantaPay, never a float
    (A-11)."""
    if isinstance(value, bool) or not isinstance(value, str | int | Decimal):
        raise ProviderResponseError(
            f"QuantaPay answered {what} that is not a decimal number."
        )
    try:
        result = Decimal(str(value).strip())
    except (InvalidOperation, ValueError):
        raise ProviderResponseError(
            f"QuantaPay answered {what} that is not a decimal number."
        ) from None
    if not result.is_finite():
        raise ProviderResponseError(f"QuantaPay answered {what} that is not finite.")
    return result


def _creation_time(value: Any) -> datetime | None:
    """``creation_time`` ``YYYY-MM-DD HH:MM:SS`` in UTC (§9, QP-WH4)."""
    if not isinstance(value, str):
        return None
    try:
        return datetime.strptime(value, "%Y-%m-%d %H:%M:%S").replace(tzinfo=UTC)
    except ValueError:
        return None


class Provider(BaseProvider):
    """QuantaPay (cloud.quantapay.app), a crypto-currency gateway: prices in
    fiat, paid in crypto into the merchant's own wallet.

    Options:

    ``api_key``
        The account's API key, *Settings -> Account* (secret).
    ``webhook_secret``
        The Webhook Secret Key, *Settings -> Payments -> Webhook* (secret): it
        keys the request signature (§4) and comes back as ``key`` in every
        webhook (§9).
    ``previous_webhook_secrets``
        Earlier webhook secrets still accepted in webhooks during a rotation (a
        list, secret; default ``[]``).
    ``api_url``
        The API endpoint (default ``"https://cloud.quantapay.app/api.php"``);
        the emulator's ``.../emulator/quantapay/api.php`` in development.
    ``sign_requests``
        Send the HMAC ``signature`` and ``timestamp`` with
        ``create-checkout-session`` (default ``True``, §4).
    ``requests_per_minute``
        This server's budget of calls (default 100, §10, A-10), shared by every
        process through the Django cache; ``None`` turns it off.
    """

    slug = "quantapay"
    display_name = "QuantaPay"
    emulator = "django_payments_ru.providers.quantapay.emulator"
    # quantapay.md §7: 160+ fiat currencies; the app knows these (A-11: two
    # decimals or none).
    currencies = SUPPORTED
    capabilities = frozenset({Capability.STATUS})
    capability_notes: ClassVar[Mapping[Capability, str]] = {
        Capability.REFUND: NO_REFUNDS,
        Capability.PARTIAL_REFUND: NO_REFUNDS,
        Capability.CANCEL: NO_CANCEL,
    }
    base_url_option = "api_url"
    # quantapay.md §9: the webhook carries the secret itself.
    secret_payload_keys = frozenset({"key"})
    # quantapay.md §9, A-8: a shared key and no HMAC, so the API confirms.
    confirms_webhooks = True
    # an unpaid session disappears after 48 hours.
    session_lifetime = SESSION_LIFETIME
    checkout_kind = "redirect"
    webhook_auth = "shared key in the body, confirmed through the API"
    options: ClassVar[dict[str, Option]] = {
        "api_key": Option(
            secret=True, help="the QuantaPay API key (Settings -> Account)"
        ),
        "webhook_secret": Option(
            secret=True,
            help="the QuantaPay Webhook Secret Key (Settings -> Payments -> Webhook)",
        ),
        "previous_webhook_secrets": Option(
            required=False, default=[], secret=True, types=(list, tuple)
        ),
        "api_url": Option(required=False, default=DEFAULT_API_URL),
        "sign_requests": Option(required=False, default=True, types=(bool,)),
        "requests_per_minute": Option(required=False, default=100, types=(int,)),
    }

    #: A credit balance below this is shown as a warning (QuantaPay takes its
    #: fees from the prepaid credits, §7: "Fees").
    low_credit_threshold: ClassVar[Decimal] = Decimal("10")
    #: Seconds a health problem (a refused API key, low credits) is remembered.
    health_ttl: ClassVar[int] = 24 * 3600

    #: Injected by tests: the current Unix time (signatures, the limiter, the
    #: 48-hour lifetime of a session).
    clock: Callable[[], float] = staticmethod(time.time)
    #: Injected by tests: how the client waits (backoff, limiter).
    sleep: Callable[[float], None] = staticmethod(time.sleep)

    # --- plumbing -----------------------------------------------------------

    @cached_property
    def limiter(self) -> RateLimiter | None:
        limit = self.config["requests_per_minute"]
        if not limit:
            return None
        # the limit counts per API key, whoever sends with it.
        key = fingerprint(self.config["api_key"], self.config["api_url"])
        return self.rate_limiter(key, limit, period=60.0, per="a minute")

    def parse_error(self, status: int, body: Any) -> tuple[str, str, dict[str, Any]]:
        # quantapay.md §3: {"success": false, "error_code", "message"}.
        if isinstance(body, Mapping) and "error_code" in body:
            return str(body.get("error_code", "")), str(body.get("message", "")), {}
        return super().parse_error(status, body)

    def call(self, function: str, *, read: bool = True, **args: Any) -> Any:
        """Call ``function`` with ``args`` and return its ``response``.

        ``read``: the call changes nothing at QuantaPay, so it may be retried
        after a timeout or a 5xx (A-1: only reads are retried)."""
        form = {"function": function, "api-key": self.config["api_key"]}
        form.update({k: str(v) for k, v in args.items() if v is not None})
        if self.limiter is not None:
            self.limiter.acquire()
        response = self.http.request_raw(
            "POST", self.config["api_url"], data=form, idempotent=read
        )
        if response.status_code != 200:
            # QuantaPay answers everything with HTTP 200 and the envelope.
            raise self.provider_error(
                TransportError,
                f"QuantaPay answered {function} with HTTP {response.status_code} "
                "instead of its envelope.",
                status=response.status_code,
            )
        try:
            # Numbers as Decimals: a balance is never a float.
            body = json.loads(response.content, parse_float=Decimal)
        except ValueError:
            raise self.provider_error(
                TransportError, f"QuantaPay answered {function} with a non-JSON body."
            ) from None
        if not isinstance(body, Mapping) or not isinstance(body.get("success"), bool):
            raise self.provider_error(
                TransportError,
                f"QuantaPay answered {function} without its success envelope.",
            )
        if body["success"]:
            return body.get("response")
        code = str(body.get("error_code") or "")
        message = str(body.get("message") or "")
        cls = ERRORS.get(code, QuantaPayAPIError)
        if cls is InvalidApiKey:
            self._remember_problem(
                "api_key",
                gettext(
                    "QuantaPay refuses the API key: check the api_key option "
                    "(Settings -> Account)."
                ),
            )
        raise self.provider_error(
            cls,
            f"QuantaPay refused {function}.",
            code=code,
            provider_message=message,
            status=200,
        )

    # --- health ---------------------------------------------------------------

    def _health_key(self, what: str) -> str:
        return f"payments_ru:quantapay:{self.alias}:{what}"

    def _remember_problem(self, what: str, text: str | None) -> None:
        cache = caches[payments_settings.CACHE]
        if text:
            cache.set(self._health_key(what), text, self.health_ttl)
        else:
            cache.delete(self._health_key(what))

    def health(self) -> list[str]:
        """What the merchant must fix now, from the cache (never a call): a
        refused API key, a credit balance that was low when last read."""
        cache = caches[payments_settings.CACHE]
        found = (cache.get(self._health_key(w)) for w in ("api_key", "credit"))
        return [str(text) for text in found if text]

    # --- checkout -----------------------------------------------------------

    def validate_invoice(self, invoice: Invoice) -> None:
        super().validate_invoice(invoice)
        format_price(invoice.amount, invoice.currency)

    def session_form(
        self, invoice: Invoice, request: HttpRequest | None = None
    ) -> dict[str, str]:
        """The ``create-checkout-session`` arguments of ``invoice`` (A-4)."""
        price = format_price(invoice.amount, invoice.currency)
        currency = invoice.currency.lower()  # always lower case
        order_id = str(invoice.uuid)
        form = {
            "price": price,
            "currency": currency,
            # The invoice's uuid, so external_reference names exactly one
            # invoice even when an order has several (§9, QP-WH4).
            "order_id": order_id,
            "title": invoice.order_id[:255],
            "description": (invoice.description or "")[:1000],
            "redirect": self.return_url(invoice, request),
        }
        if self.config["sign_requests"]:
            timestamp = int(self._now())
            form["timestamp"] = str(timestamp)
            form["signature"] = sign(
                self.config["webhook_secret"], price, currency, order_id, timestamp
            )
        return form

    def start(
        self, invoice: Invoice, request: HttpRequest | None = None, *, key: str = ""
    ) -> Checkout:
        self.validate_invoice(invoice)
        session = self.call(
            "create-checkout-session",
            # no idempotency key; a repeated create opens a second session.
            read=False,
            **self.session_form(invoice, request),
        )
        if (
            not isinstance(session, Mapping)
            or not session.get("payment_url")
            or not session.get("checkout_id")
        ):
            raise self.provider_error(
                ProviderResponseError,
                "QuantaPay answered create-checkout-session without a "
                "checkout_id and a payment_url.",
            )
        started = datetime.fromtimestamp(self._now(), tz=UTC).replace(microsecond=0)
        return Checkout(
            method="GET",
            url=str(session["payment_url"]),
            payment_id=str(session["checkout_id"]),
            # the session lives 48 hours.
            expires_at=started + SESSION_LIFETIME,
        )

    # --- transactions -----------------------------------------------------------

    def _transaction(self, data: Any) -> Mapping[str, Any]:
        if not isinstance(data, Mapping) or data.get("id") in (None, ""):
            raise self.provider_error(
                ProviderResponseError, "QuantaPay answered without a transaction."
            )
        return data

    def get_transaction(self, transaction_id: str) -> Mapping[str, Any]:
        """``get-transaction`` (A-5); raises :class:`.TransactionNotFound`."""
        return self._transaction(
            self.call("get-transaction", transaction_id=transaction_id)
        )

    def get_transactions(self, **filters: Any) -> list[Mapping[str, Any]]:
        """``get-transactions`` with ``checkout_id``, ``search``, ``status``,
        ``pagination`` (A-5)."""
        data = self.call("get-transactions", **filters)
        if data is None:
            return []
        if not isinstance(data, list):
            raise self.provider_error(
                ProviderResponseError,
                "QuantaPay answered get-transactions without a list.",
            )
        return [self._transaction(item) for item in data]

    def find_transaction(self, invoice: Invoice) -> Mapping[str, Any] | None:
        """The invoice's transaction: by its id once known, else by the
        session's ``checkout_id``, else by ``search=<invoice uuid>`` (A-5);
        ``None`` when QuantaPay has none (A-6: not yet, or gone)."""
        ref = str(invoice.uuid)
        if invoice.provider_transaction_id:
            try:
                tx = self.get_transaction(invoice.provider_transaction_id)
            except TransactionNotFound:
                return None
            return tx if str(tx.get("external_reference", "")) == ref else None
        if invoice.provider_payment_id:
            found = self.get_transactions(checkout_id=invoice.provider_payment_id)
        else:
            found = self.get_transactions(search=ref)
        mine = [t for t in found if str(t.get("external_reference", "")) == ref]
        if not mine:
            return None
        # The money wins: a completed transaction over a pending one.
        order = {COMPLETED: 0, REFUNDED: 1, UNDERPAID: 2, PENDING: 3}
        return min(
            mine, key=lambda t: (order.get(str(t.get("status")), 4), str(t["id"]))
        )

    def _event(
        self, tx: Mapping[str, Any], kind: EventType, dedupe_id: str, reason: str = ""
    ) -> PaymentEvent:
        currency = str(tx.get("currency") or "").upper()
        amount = None
        if tx.get("amount_fiat") not in (None, ""):
            # §9 (QP-WH4): 8 decimals, "49.99000000"; as a Decimal.
            amount = parse_amount(str(tx["amount_fiat"]), currency)
        extra: dict[str, Any] = {}
        created = _creation_time(tx.get("creation_time"))
        if created is not None:
            extra["occurred_at"] = created
        return PaymentEvent(
            provider=self.alias,
            dedupe_id=dedupe_id,
            type=kind,
            invoice_ref=str(tx.get("external_reference") or ""),
            provider_payment_id=str(tx.get("checkout_id") or ""),
            transaction_id=str(tx.get("id") or ""),
            order_id=str(tx.get("title") or "")[:255],
            amount=amount,
            currency=currency,
            reason=reason,
            raw={k: tx[k] for k in TRANSACTION_FIELDS if k in tx},
            **extra,
        )

    def _underpaid(self, tx: Mapping[str, Any]) -> str:
        return gettext(
            "QuantaPay reports the transaction %(id)s underpaid: %(crypto)s %(coin)s "
            "received, worth %(fiat)s %(currency)s."
        ) % {
            "id": tx.get("id", ""),
            "crypto": tx.get("amount", ""),
            "coin": str(tx.get("cryptocurrency", "")).upper(),
            "fiat": tx.get("amount_fiat", ""),
            "currency": str(tx.get("currency", "")).upper(),
        }

    def fetch_status(self, invoice: Invoice) -> PaymentEvent | None:
        tx = self.find_transaction(invoice)
        if tx is None:
            # a session never paid disappears after 48 hours.
            started = invoice.expires_at or (invoice.created_at + SESSION_LIFETIME)
            now = datetime.fromtimestamp(self._now(), tz=UTC)
            if invoice.provider_payment_id and started <= now:
                return PaymentEvent(
                    provider=self.alias,
                    dedupe_id=f"poll:{invoice.provider_payment_id}:expired",
                    type=EventType.EXPIRED,
                    invoice_ref=str(invoice.uuid),
                    provider_payment_id=invoice.provider_payment_id,
                    reason=gettext(
                        "The QuantaPay checkout session was not paid within 48 hours."
                    ),
                )
            return None
        status = str(tx.get("status", ""))
        dedupe = f"poll:{tx['id']}:{status}"
        if status == COMPLETED:
            return self._event(tx, EventType.PAID, dedupe)
        if status == UNDERPAID:
            # never paid. The amount received goes with a PAID event, which
            # the services refuse (it is not the invoice's) and flag with both
            # amounts: the merchant settles the difference with the customer.
            return self._event(tx, EventType.PAID, dedupe, self._underpaid(tx))
        if status == REFUNDED:
            # refunded outside the API (an on-chain transfer).
            event = self._event(tx, EventType.REFUNDED, dedupe)
            return event
        if status == PENDING:
            return None
        raise self.provider_error(
            ProviderResponseError, f"Unknown QuantaPay transaction status {status!r}."
        )

    # --- webhooks -----------------------------------------------------------

    def webhook_secrets(self) -> list[str]:
        """The secrets accepted as ``key``: the current one, then the previous
        ones (a rotation)."""
        return [self.config["webhook_secret"], *self.config["previous_webhook_secrets"]]

    def verify_webhook(self, request: HttpRequest) -> None:
        data = load_json_object(request.body, provider=self.alias)
        key = data.get("key")
        if not isinstance(key, str) or not key:
            raise WebhookVerificationError(
                "The webhook carries no key.",
                provider=self.alias,
                code="missing_signature",
            )
        # §9, A-8: the key is the secret itself; every active secret is compared
        # in constant time (no early exit tells which one nearly matched).
        ok = False
        for secret in self.webhook_secrets():
            if secret:
                ok |= constant_time_equals(key, secret)
        if not ok:
            raise WebhookVerificationError(
                "The webhook key does not match.", provider=self.alias
            )

    def parse_webhook(self, request: HttpRequest) -> list[PaymentEvent]:
        data = load_json_object(request.body, provider=self.alias)
        with webhook_parsing(self.alias):
            tx = data["transaction"]
            if not isinstance(tx, Mapping) or tx.get("id") in (None, ""):
                raise WebhookParseError(
                    gettext("Not a QuantaPay transaction."), provider=self.alias
                )
            tx_id = str(tx["id"])
            status = str(tx.get("status", ""))
            if status not in STATUSES:
                raise WebhookParseError(
                    gettext("Unknown QuantaPay transaction status."),
                    provider=self.alias,
                )
            reference = tx.get("external_reference")
            if not isinstance(reference, str):
                raise WebhookParseError(
                    gettext("The transaction has no external_reference."),
                    provider=self.alias,
                )
            for name in ("amount_fiat", "currency"):
                if not isinstance(tx.get(name), str):
                    raise WebhookParseError(
                        gettext("The transaction has no %(field)s.") % {"field": name},
                        provider=self.alias,
                    )
            # only C is a payment; anything else is kept, never applied.
            kind = EventType.PAID if status == COMPLETED else EventType.INFO
            # duplicates carry the same transaction id: one event.
            return [self._event(tx, kind, f"transaction:{tx_id}")]

    def confirm_event(self, event: PaymentEvent) -> PaymentEvent:
        """A-8: the webhook proves nothing by itself (the key is a shared
        secret, the body has no HMAC): ``get-transaction`` must confirm the
        transaction, its reference, amount and currency, and its completion.
        The event applied is rebuilt from the API's answer."""
        if event.type is not EventType.PAID:
            return event
        try:
            tx = self.get_transaction(event.transaction_id)
        except TransactionNotFound:
            raise EventNotConfirmed(
                gettext(
                    "QuantaPay does not know the transaction %(id)s this webhook "
                    "announced."
                )
                % {"id": event.transaction_id},
                provider=self.alias,
            ) from None
        problems = []
        if str(tx.get("external_reference") or "") != event.invoice_ref:
            problems.append(gettext("another external_reference"))
        if str(tx.get("currency") or "").upper() != event.currency.upper():
            problems.append(gettext("another currency"))
        try:
            amount = _decimal(tx.get("amount_fiat"), "amount_fiat")
        except ProviderError:
            amount = None
        if amount is None or event.amount is None or amount != event.amount:
            problems.append(gettext("another amount"))
        if str(tx.get("status", "")) != COMPLETED:
            problems.append(
                gettext("status %(status)s, not completed")
                % {"status": str(tx.get("status", ""))[:8]}
            )
        if problems:
            raise EventNotConfirmed(
                gettext(
                    "QuantaPay's API does not confirm the webhook of transaction "
                    "%(id)s: it reports %(problems)s."
                )
                % {"id": event.transaction_id, "problems": ", ".join(problems)},
                provider=self.alias,
            )
        return self._event(tx, EventType.PAID, event.dedupe_id)

    def webhook_response(
        self, request: HttpRequest, events: list[PaymentEvent]
    ) -> HttpResponse:
        # any body with 200; we answer {"ok":true}.
        return HttpResponse(ACK_BODY, content_type="application/json")

    def webhook_error_response(
        self, request: HttpRequest, error: WebhookError
    ) -> HttpResponse:
        if isinstance(error, WebhookVerificationError):
            # 401 on a bad key.
            return HttpResponse(
                json.dumps({"ok": False, "error": error.code}, separators=(",", ":")),
                status=401,
                content_type="application/json",
            )
        return super().webhook_error_response(request, error)

    # --- balances and rates (§5.3) ---------------------------------------------

    def get_balances(self) -> dict[str, dict[str, Decimal]]:
        """``get-balances``: ``{coin: {"amount": Decimal, "fiat": Decimal}}``
        for the wallets configured at QuantaPay (coins in lower case)."""
        data = self.call("get-balances")
        if data in (None, []):
            return {}
        if not isinstance(data, Mapping):
            raise self.provider_error(
                ProviderResponseError,
                "QuantaPay answered get-balances without an object.",
            )
        balances = {}
        for coin, value in data.items():
            if not isinstance(value, Mapping):
                raise self.provider_error(
                    ProviderResponseError, "QuantaPay answered a malformed balance."
                )
            balances[str(coin).lower()] = {
                "amount": _decimal(value.get("amount"), "a balance"),
                "fiat": _decimal(value.get("fiat"), "a balance"),
            }
        return balances

    def get_credit_balance(self) -> tuple[Decimal, str]:
        """``get-credit-balance``: the credits that pay QuantaPay's fees and
        their currency. A balance below :attr:`low_credit_threshold` is
        remembered for :meth:`health`."""
        data = self.call("get-credit-balance")
        if not isinstance(data, Mapping):
            raise self.provider_error(
                ProviderResponseError,
                "QuantaPay answered get-credit-balance without an object.",
            )
        credit = _decimal(data.get("credit_balance"), "credit_balance")
        currency = str(data.get("credit_currency") or "").upper()
        self._remember_problem(
            "credit",
            gettext(
                "QuantaPay credits are low (%(amount)s %(currency)s): fees are paid "
                "from them, top them up in the QuantaPay cabinet."
            )
            % {"amount": credit, "currency": currency}
            if self.is_low_credit(credit)
            else None,
        )
        return credit, currency

    def is_low_credit(self, credit: Decimal) -> bool:
        """Whether ``credit`` is below :attr:`low_credit_threshold`."""
        return credit < self.low_credit_threshold

    def get_exchange_rate(self, currency: str, cryptocurrency: str) -> Decimal:
        """``get-exchange-rates``: the price of one ``cryptocurrency`` coin in
        the fiat ``currency``."""
        return _decimal(
            self.call(
                "get-exchange-rates",
                currency_code=currency.upper(),
                cryptocurrency_code=cryptocurrency.lower(),
            ),
            "an exchange rate",
        )

    def get_fiat_value(
        self, amount: Decimal, cryptocurrency: str, currency: str
    ) -> Decimal:
        """``get-fiat-value``: what ``amount`` of ``cryptocurrency`` is worth in
        the fiat ``currency``."""
        if not isinstance(amount, Decimal) or not amount.is_finite():
            raise InvalidAmount("amount must be a finite Decimal.", field="amount")
        return _decimal(
            self.call(
                "get-fiat-value",
                amount=format(amount, "f"),
                cryptocurrency_code=cryptocurrency.lower(),
                currency_code=currency.upper(),
            ),
            "a fiat value",
        )

    # --- the admin ------------------------------------------------------------

    def admin_views(self) -> list[Any]:
        """One page per alias: the wallets' balances and the credits."""
        from ..base import ProviderAdminView
        from .admin import balances_view

        return [
            ProviderAdminView(
                slug="balances",
                title=_("QuantaPay balances"),
                view=balances_view,
                template="admin/django_payments_ru/quantapay/balances.html",
            )
        ]


__all__ = [
    "ACK_BODY",
    "DEFAULT_API_URL",
    "Provider",
    "RateLimited",
    "format_price",
    "sign",
    "signature_string",
]
