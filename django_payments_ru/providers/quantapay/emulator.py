"""The QuantaPay emulator: quantapay.md section 13, strictly, served by Django.

Under ``emulator/quantapay/`` (point the provider's ``api_url`` at
``.../emulator/quantapay/api.php``):

* ``api.php``: every function, form-encoded, answered with HTTP 200 and the
  envelope ``{success, response}`` / ``{success: false, error_code, message}``
  (§3, A-1). Checks in the order of A-2: ``api-key`` (``api-key-not-found``,
  ``invalid-api-key``), ``function`` (``missing-function-name``,
  ``function-not-found``), the function's arguments (``missing-argument``,
  naming it), then for ``create-checkout-session`` with a signature the
  timestamp (``request-expired`` beyond 300 s either way, §4) and the HMAC
  (``invalid-signature``), then the values (``invalid-argument``). Above
  ``requests_per_minute`` calls of one API key in a sliding minute:
  ``rate-limited`` "Too many requests" (A-10).
* Functions: ``create-checkout-session`` (A-4), ``get-transaction``,
  ``get-transactions`` (A-5), ``get-balances``, ``get-credit-balance``,
  ``get-exchange-rates``, ``get-fiat-value`` (§5.3).
* ``pay.php?checkout_id=<id>``: the hosted page (§6) with *Pay the exact
  amount* (status C, the webhook), *Underpay* (status X, no webhook, A-6) and
  *Let expire* (the session disappears: ``transaction-not-found``, A-6); a
  completed transaction's page offers *Re-send the webhook*. The customer then
  goes to ``redirect`` unchanged (A-9).
* Webhooks (§9, 4/8 version, A-7): one attempt, no retries, ``{"key": <webhook
  secret>, "transaction": {...}}``; ``control/resend/<checkout_id>/`` (POST)
  sends it again by hand.

Settings, ``PAYMENTS_RU_EMULATOR["quantapay"]`` (every key has a default):
``api_keys`` (``["qp_test_api_key"]``), ``webhook_secret``
(``"qp_test_webhook_secret"``), ``webhook_url`` (``None``: this site's
``payments/webhooks/quantapay/``), ``require_signature`` (``False``),
``session_lifetime`` (172800, A-6), ``requests_per_minute`` (100, A-10),
``credit_balance`` (``"150.00"``), ``credit_currency`` (``"USD"``),
``balances``, ``rates`` (USD per coin), ``fiat_rates`` (units per USD),
``pay_with`` (``"btc"``), ``underpay_ratio`` (``"0.6"``), ``wallet``, and the
common ``faults``, ``rate_limits``, ``idempotency_ttl``,
``webhook_retry_schedule``. Fault endpoint names are the function names and
``pay_page``.
"""

from __future__ import annotations

import json
import re
import secrets
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import ROUND_DOWN, Decimal, InvalidOperation
from typing import Any, ClassVar
from urllib.parse import urlsplit

from django.core.signals import setting_changed
from django.http import Http404, HttpRequest, HttpResponse, QueryDict
from django.urls import NoReverseMatch, path, reverse
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy
from django.views.decorators.csrf import csrf_exempt

from ...emulator import clock, faults, limits
from ...emulator.apps import SETTING_NAME
from ...emulator.base import (
    EXPIRE,
    Action,
    CallLog,
    Emulator,
    EmulatorError,
    key_matches,
)
from ...emulator.models import EmulatedPayment, WebhookDelivery
from ...money import CURRENCY_EXPONENTS
from ..signing import constant_time_equals
from .provider import SIGNATURE_WINDOW, sign

PENDING, COMPLETED, UNDERPAID, REFUNDED = "P", "C", "X", "R"
#: Not a QuantaPay letter: a session that disappeared (A-6), unknown to the API.
GONE = "expired"
VISIBLE = (PENDING, COMPLETED, UNDERPAID, REFUNDED)
PAGE_SIZE = 20
EIGHT = Decimal("0.00000001")
PRICE = re.compile(r"^[0-9]+(\.[0-9]+)?$")

PAY_EXACT = Action("pay", gettext_lazy("Pay the exact amount"), "primary")
#: There is no declined payment (A-6: a crypto transfer is sent or not); the
#: nearest outcome is an underpayment.
UNDERPAY = Action("underpay", gettext_lazy("Underpay"), "danger")
RESEND = Action("resend", gettext_lazy("Re-send the webhook"), "secondary")


@dataclass(frozen=True)
class Call:
    """One call of ``api.php`` (for tests and the demo); the form without its
    ``api-key``."""

    function: str
    form: dict[str, str]
    at: datetime


def _missing(name: str) -> EmulatorError:
    return EmulatorError(
        200, "missing-argument", _("Missing argument: %(name)s") % {"name": name}
    )


def _invalid(message: str) -> EmulatorError:
    return EmulatorError(200, "invalid-argument", message)


class QuantaPayEmulator(Emulator):
    """The emulator of :class:`~django_payments_ru.providers.quantapay.Provider`."""

    slug = "quantapay"
    display_name = gettext_lazy("QuantaPay")
    options: ClassVar[dict[str, Any]] = {
        "api_keys": ["qp_test_api_key"],
        "webhook_secret": "qp_test_webhook_secret",
        "webhook_url": None,
        "require_signature": False,
        "session_lifetime": 48 * 3600,
        "requests_per_minute": 100,
        "credit_balance": "150.00",  # §5.3 example
        "credit_currency": "USD",
        "balances": {
            "btc": {"amount": "0.5432", "fiat": "35210.50"},
            "eth": {"amount": "2.1000", "fiat": "6552.84"},
        },
        "rates": {"btc": "64850.25", "eth": "3120.40", "usdt": "1.00"},
        "fiat_rates": {
            "USD": "1",
            "EUR": "0.92",
            "GBP": "0.79",
            "RUB": "92.50",
            "JPY": "151",
            "CNY": "7.24",
        },
        "pay_with": "btc",
        "underpay_ratio": "0.6",
        "wallet": "0xMerchantWallet0000000000000000000000000000",
    }
    # one attempt, no retries; re-sent only by hand.
    webhook_schedule: ClassVar[tuple[int, ...]] = ()
    webhook_timeout: ClassVar[float] = 10.0
    idempotency_header = ""
    pending_statuses: ClassVar[frozenset[str]] = frozenset({PENDING})
    pending_actions: ClassVar[tuple[Action, ...]] = (PAY_EXACT, UNDERPAY, EXPIRE)
    status_labels: ClassVar[Mapping[str, Any]] = {
        PENDING: gettext_lazy("Waiting for payment"),
        COMPLETED: gettext_lazy("Paid"),
        UNDERPAID: gettext_lazy("Underpaid"),
        REFUNDED: gettext_lazy("Refunded"),
        GONE: gettext_lazy("Expired"),
    }

    def __init__(self) -> None:
        self.call_log = CallLog(key="function")

    # --- bookkeeping --------------------------------------------------------

    def reset(self) -> None:
        """Forget the recorded calls and the rate-limit counts."""
        self.call_log.clear()
        limits.reset(self.slug)

    def calls(self, function: str | None = None) -> list[Call]:
        """The calls received since the last reset (of ``function``)."""
        return self.call_log.named(function)

    def record(self, function: str, form: QueryDict) -> None:
        values = {k: str(v) for k, v in form.items() if k != "api-key"}
        self.call_log.add(Call(function, values, clock.now()))

    # --- answers ------------------------------------------------------------

    def error_body(self, code: str, message: str, fields: dict[str, Any]) -> Any:
        # quantapay.md §3.
        return {"success": False, "error_code": code, "message": message}

    def error(
        self,
        status: int,
        code: str,
        message: Any,
        *,
        headers: Mapping[str, str] | None = None,
        **fields: Any,
    ) -> HttpResponse:
        if code == "emulated_fault":
            # An injected fault is the network or the server failing, not
            # QuantaPay answering: its own status, no envelope.
            response = HttpResponse(
                "<html><body>Service unavailable</body></html>",
                status=status,
                content_type="text/html",
            )
            for name, value in (headers or {}).items():
                response[name] = value
            return response
        if status == 429:
            # the throttle's answer is the envelope too, with HTTP 200.
            code, message = "rate-limited", "Too many requests"
        # every answer of QuantaPay itself is HTTP 200.
        return super().error(200, code, message)

    @staticmethod
    def ok(response: Any) -> HttpResponse:
        """The success envelope (numbers kept exactly: Decimals are written as
        JSON numbers only where the reference shows numbers)."""
        return HttpResponse(
            json.dumps({"success": True, "response": response}),
            content_type="application/json",
        )

    # --- rate limit ---------------------------------------------------------

    def rate_limit_key(self, request: HttpRequest) -> str:
        # per API key.
        key = request.POST.get("api-key", "") if request.method == "POST" else ""
        return f"key:{key}" if key else f"addr:{request.META.get('REMOTE_ADDR', '')}"

    def documented_limits(self, endpoint: str) -> list[limits.Limit]:
        per_minute = self.config["requests_per_minute"]
        if not per_minute or endpoint != "api":
            return []
        return [
            limits.Limit(
                int(per_minute), 60, sliding=True, setting="requests_per_minute"
            )
        ]

    # --- transactions ---------------------------------------------------------

    def transaction_object(self, payment: EmulatedPayment) -> dict[str, Any]:
        """The transaction as the webhook (§9, 4/8 version) and A-5 show it."""
        data = payment.data
        return {
            "id": str(data.get("id", "")),
            "biz_id": data.get("biz_id", ""),
            "title": payment.order_id,
            "description": payment.description,
            "from": data.get("from", ""),
            "to": data.get("to", ""),
            "hash": data.get("hash", ""),
            "amount": data.get("amount", ""),
            "amount_fiat": data.get("amount_fiat")
            or f"{payment.amount.quantize(EIGHT):f}",
            "cryptocurrency": data.get("cryptocurrency", ""),
            "currency": payment.currency.lower(),
            "external_reference": payment.reference,
            "creation_time": payment.created_at.astimezone(UTC).strftime(
                "%Y-%m-%d %H:%M:%S"
            ),
            "status": payment.status,
            "webhook": data.get("webhook", "0"),
            "vat": "0",
            "billing": "",
            "checkout_id": payment.external_id,
            "type": "2",
        }

    def visible(self, payment: EmulatedPayment) -> bool:
        return payment.status in VISIBLE

    def find(self, transaction_id: str) -> EmulatedPayment:
        """The transaction ``transaction_id``, or ``transaction-not-found``."""
        payment = None
        if transaction_id.isdigit():
            payment = EmulatedPayment.objects.filter(
                slug=self.slug, data__id=transaction_id
            ).first()
        if payment is not None:
            payment = self.expire_if_due(payment)
        if payment is None or not self.visible(payment):
            raise EmulatorError(
                200,
                "transaction-not-found",
                _("Transaction not found: %(id)s") % {"id": transaction_id[:64]},
            )
        return payment

    def expire(self, payment: EmulatedPayment) -> None:
        # a session never paid disappears; the API no longer knows it.
        payment.status = GONE
        payment.save(update_fields=["status"])

    def rate(self, currency: str, coin: str) -> Decimal:
        """The price of one ``coin`` in ``currency`` (invalid-argument when
        either is unknown)."""
        rates = {str(k).lower(): v for k, v in self.config["rates"].items()}
        fiat = {str(k).upper(): v for k, v in self.config["fiat_rates"].items()}
        if coin.lower() not in rates:
            raise _invalid(_("Unknown cryptocurrency: %(code)s") % {"code": coin[:16]})
        if currency.upper() not in fiat:
            raise _invalid(_("Unknown currency: %(code)s") % {"code": currency[:16]})
        return Decimal(str(rates[coin.lower()])) * Decimal(str(fiat[currency.upper()]))

    # --- webhooks -----------------------------------------------------------

    def webhook_body(self, payment: EmulatedPayment) -> bytes:
        body = {
            "key": str(self.config["webhook_secret"]),
            "transaction": self.transaction_object(payment),
        }
        return json.dumps(body, separators=(",", ":")).encode("utf-8")

    def webhook(self, payment: EmulatedPayment, event_type: str = "") -> Any:
        """A-7: one POST for a transaction that reached C, after the commit."""
        if not payment.webhook_url:
            return None
        return self.send_webhook(
            payment,
            payment.webhook_url,
            self.webhook_body(payment),
            {"Content-Type": "application/json", "User-Agent": "QuantaPay-Webhook"},
            event_id=str(payment.data.get("id", "")),
            event_type="transaction.completed",
        )

    def resend(self, payment: EmulatedPayment) -> WebhookDelivery | None:
        """The merchant's "re-send" (§13): the last webhook's body again, in a
        new single attempt (the key it carried, even after a rotation)."""
        last = (
            WebhookDelivery.objects.filter(slug=self.slug, payment=payment)
            .order_by("-created_at", "-id")
            .first()
        )
        if last is None:
            return self.webhook(payment)
        return self.send_webhook(
            payment,
            payment.webhook_url or last.url,
            last.body.encode("utf-8"),
            dict(last.headers),
            event_id=last.event_id,
            event_type=last.event_type,
        )

    # --- the pay page ---------------------------------------------------------

    def pay_actions(self, payment: EmulatedPayment) -> list[Action]:
        if payment.status == COMPLETED:
            return [RESEND]
        return super().pay_actions(payment)

    def perform_action(
        self, request: HttpRequest, payment: EmulatedPayment, action: str
    ) -> str | None:
        if action == "resend":
            self.resend(payment)
            return None
        return super().perform_action(request, payment, action)

    def _crypto(self, payment: EmulatedPayment, ratio: Decimal) -> dict[str, Any]:
        coin = str(self.config["pay_with"]).lower()
        rate = self.rate(payment.currency, coin)
        paid_fiat = (payment.amount * ratio).quantize(EIGHT, ROUND_DOWN)
        return {
            "cryptocurrency": coin,
            "amount": f"{(paid_fiat / rate).quantize(EIGHT, ROUND_DOWN):f}",
            "amount_fiat": f"{paid_fiat:f}",
            "hash": "0x" + secrets.token_hex(32),
            "from": "0xCustomer" + secrets.token_hex(15),
            "to": str(self.config["wallet"]),
        }

    def on_pay(self, request: HttpRequest, payment: EmulatedPayment) -> str | None:
        payment.status = COMPLETED
        payment.data = {**payment.data, **self._crypto(payment, Decimal(1))}
        payment.data["webhook"] = "1"
        payment.save(update_fields=["status", "data"])
        self.webhook(payment)
        return None

    def on_underpay(self, request: HttpRequest, payment: EmulatedPayment) -> str | None:
        # X, and only C triggers the webhook.
        ratio = Decimal(str(self.config["underpay_ratio"]))
        payment.status = UNDERPAID
        payment.data = {**payment.data, **self._crypto(payment, ratio)}
        payment.save(update_fields=["status", "data"])
        return None

    def return_location(self, request: HttpRequest, payment: EmulatedPayment) -> str:
        # the redirect URL unchanged.
        return payment.return_url or self.done_url(request, payment)

    def webhook_target(self, request: HttpRequest) -> str:
        configured = self.config["webhook_url"]
        if configured is not None:
            return str(configured)
        try:
            own = reverse("django_payments_ru:webhook", kwargs={"alias": self.slug})
        except NoReverseMatch:
            return ""
        return request.build_absolute_uri(own)


emulator = QuantaPayEmulator()


def _reset_on_settings(*, setting: str, **kwargs: Any) -> None:
    if setting == SETTING_NAME:
        emulator.reset()


setting_changed.connect(_reset_on_settings, dispatch_uid="payments_ru_emu_quantapay")


# --- the functions -------------------------------------------------------------

Handler = Callable[[HttpRequest, QueryDict], HttpResponse]


def _require(form: QueryDict, *names: str) -> None:
    for name in names:
        if not form.get(name, "").strip():
            raise _missing(name)


def _price(value: str, currency: str) -> Decimal:
    if not PRICE.match(value):
        raise _invalid(_("price must be a decimal number such as 49.99."))
    amount = Decimal(value)
    places = -int(amount.as_tuple().exponent) if "." in value else 0
    if amount <= 0 or places > CURRENCY_EXPONENTS[currency] or len(value) > 20:
        raise _invalid(
            _("price must be more than 0 with at most %(places)d decimals.")
            % {"places": CURRENCY_EXPONENTS[currency]}
        )
    return amount


def _currency(value: str) -> str:
    code = value.strip().upper()
    if code not in CURRENCY_EXPONENTS:
        raise _invalid(_("Unknown currency: %(code)s") % {"code": value[:16]})
    return code


def _check_signature(form: QueryDict) -> None:
    """§4, A-2, A-3: the timestamp within 300 s either way, then the HMAC over
    the values exactly as sent."""
    signature, timestamp = form.get("signature"), form.get("timestamp")
    if signature is None and timestamp is None:
        if emulator.config["require_signature"]:
            raise _missing("signature")
        return
    if not signature:
        raise _missing("signature")
    if not timestamp:
        raise _missing("timestamp")
    if not timestamp.isdigit() or len(timestamp) > 12:
        raise _invalid(_("timestamp must be Unix time in seconds."))
    if abs(clock.timestamp() - int(timestamp)) > SIGNATURE_WINDOW:
        # The documented text (§4).
        raise EmulatorError(200, "request-expired", "Request expired")
    expected = sign(
        str(emulator.config["webhook_secret"]),
        form.get("price", ""),
        form.get("currency", ""),
        form.get("order_id", ""),
        int(timestamp),
    )
    if not constant_time_equals(signature.lower(), expected):
        raise EmulatorError(200, "invalid-signature", _("Invalid signature"))


def create_checkout_session(request: HttpRequest, form: QueryDict) -> HttpResponse:
    _require(form, "price", "currency")
    _check_signature(form)
    currency = _currency(form.get("currency", ""))
    amount = _price(form.get("price", ""), currency)
    order_id = form.get("order_id", "")
    if len(order_id) > 255:
        raise _invalid(_("order_id is longer than 255 characters."))
    redirect = form.get("redirect", "")
    if redirect:
        parts = urlsplit(redirect)
        if parts.scheme not in ("http", "https") or not parts.netloc:
            raise _invalid(_("redirect must be an http(s) URL."))
    checkout_id = f"cs-cs_{secrets.token_hex(10)}"
    now = clock.now().replace(microsecond=0)
    payment = EmulatedPayment.objects.create(
        slug=emulator.slug,
        external_id=checkout_id,
        status=PENDING,
        amount=amount,
        currency=currency,
        reference=order_id,
        order_id=form.get("title", "")[:255],
        description=form.get("description", ""),
        return_url=redirect[:2000],
        webhook_url=emulator.webhook_target(request)[:2000],
        created_at=now,
        expires_at=now + timedelta(seconds=int(emulator.config["session_lifetime"])),
        data={"webhook": "0"},
    )
    payment.data = {
        **payment.data,
        "id": str(payment.pk),
        "biz_id": f"QP-{now:%Y%m%d}-{secrets.token_hex(3).upper()[:5]}",
        "sent_currency": form.get("currency", ""),
    }
    payment.save(update_fields=["data"])
    url = emulator.absolute_url(request, "pay") + f"?checkout_id={checkout_id}"
    return emulator.ok(
        {
            "checkout_id": checkout_id,
            "payment_url": url,
            "price": form.get("price", ""),
            "currency": currency.lower(),
            "external_reference": order_id,
        }
    )


def get_transaction(request: HttpRequest, form: QueryDict) -> HttpResponse:
    _require(form, "transaction_id")
    payment = emulator.find(form.get("transaction_id", "").strip())
    return emulator.ok(emulator.transaction_object(payment))


def get_transactions(request: HttpRequest, form: QueryDict) -> HttpResponse:
    page = form.get("pagination", "0") or "0"
    if not page.isdigit():
        raise _invalid(_("pagination must be a page number."))
    qs = EmulatedPayment.objects.filter(slug=emulator.slug).order_by("-id")
    checkout_id = form.get("checkout_id", "")
    if checkout_id:
        qs = qs.filter(external_id=checkout_id)
    status = form.get("status", "")
    if status:
        if status not in VISIBLE:
            raise _invalid(_("status must be one of P, C, X, R."))
        qs = qs.filter(status=status)
    search = form.get("search", "").strip().lower()
    found = []
    for payment in qs:
        payment = emulator.expire_if_due(payment)
        if not emulator.visible(payment):
            continue
        tx = emulator.transaction_object(payment)
        if search and not any(
            search in str(tx[k]).lower()
            for k in ("external_reference", "title", "description", "biz_id", "hash")
        ):
            continue
        found.append(tx)
    start = int(page) * PAGE_SIZE
    return emulator.ok(found[start : start + PAGE_SIZE])


def get_balances(request: HttpRequest, form: QueryDict) -> HttpResponse:
    return emulator.ok(
        {
            str(coin).lower(): {"amount": str(v["amount"]), "fiat": str(v["fiat"])}
            for coin, v in emulator.config["balances"].items()
        }
    )


def get_credit_balance(request: HttpRequest, form: QueryDict) -> HttpResponse:
    # §5.3: a number and a string; the number written exactly ("150.00").
    credit = Decimal(str(emulator.config["credit_balance"]))
    currency = json.dumps(str(emulator.config["credit_currency"]))
    body = (
        '{"success": true, "response": {"credit_balance": '
        f'{credit:f}, "credit_currency": {currency}}}}}'
    )
    return HttpResponse(body, content_type="application/json")


def _rate_text(value: Decimal) -> str:
    return f"{value.quantize(Decimal('0.01') if value >= 1 else EIGHT):f}"


def get_exchange_rates(request: HttpRequest, form: QueryDict) -> HttpResponse:
    _require(form, "currency_code", "cryptocurrency_code")
    rate = emulator.rate(
        form.get("currency_code", ""), form.get("cryptocurrency_code", "")
    )
    return emulator.ok(_rate_text(rate))


def get_fiat_value(request: HttpRequest, form: QueryDict) -> HttpResponse:
    _require(form, "amount", "cryptocurrency_code", "currency_code")
    try:
        amount = Decimal(form.get("amount", "").strip())
    except InvalidOperation:
        raise _invalid(_("amount must be a number.")) from None
    if not amount.is_finite() or amount < 0:
        raise _invalid(_("amount must be a number."))
    rate = emulator.rate(
        form.get("currency_code", ""), form.get("cryptocurrency_code", "")
    )
    return emulator.ok(f"{(amount * rate).quantize(Decimal('0.01')):f}")


FUNCTIONS: dict[str, Handler] = {
    "create-checkout-session": create_checkout_session,
    "get-transaction": get_transaction,
    "get-transactions": get_transactions,
    "get-balances": get_balances,
    "get-credit-balance": get_credit_balance,
    "get-exchange-rates": get_exchange_rates,
    "get-fiat-value": get_fiat_value,
}


@csrf_exempt
def api(request: HttpRequest) -> HttpResponse:
    """``api.php``: the checks in the order of A-2, then the function."""
    refused = emulator.throttle(request, emulator.documented_limits("api"))
    if refused is not None:
        return refused
    form = request.POST if request.method == "POST" else QueryDict()
    key = form.get("api-key", "")
    if not key:
        return emulator.error(200, "api-key-not-found", _("Missing api-key"))
    if not key_matches(key, emulator.config["api_keys"]):
        return emulator.error(200, "invalid-api-key", _("Invalid API key"))
    function = form.get("function", "")
    if not function:
        return emulator.error(200, "missing-function-name", _("Missing function name"))
    handler = FUNCTIONS.get(function)
    if handler is None:
        return emulator.error(
            200,
            "function-not-found",
            # Boxcoin's text (quantapay.md §3).
            f"No function with name: {function[:64]}",
        )
    emulator.record(function, form)
    fault = faults.take_fault(emulator.slug, function, emulator.config["faults"])
    if fault is not None and not fault.after:
        failed = fault.apply(emulator)
        if failed is not None:
            return failed
    refused = emulator.throttle(request)
    if refused is not None:
        return refused
    try:
        response = handler(request, form)
    except EmulatorError as exc:
        response = emulator.error(exc.status, exc.code, exc.message)
    if fault is not None and fault.after:
        failed = fault.apply(emulator)
        if failed is not None:
            return failed
    return response


@emulator.endpoint("pay_page", methods=("GET", "POST"), auth=False, csrf=True)
def pay(request: HttpRequest) -> HttpResponse:
    """``pay.php?checkout_id=<id>``: the hosted page (§6)."""
    checkout_id = request.GET.get("checkout_id", "")
    try:
        payment = emulator.expire_if_due(emulator.get_payment(checkout_id))
    except EmulatorError:
        raise Http404(_("No such payment.")) from None
    return emulator.pay_page(request, payment)


@csrf_exempt
def resend(request: HttpRequest, checkout_id: str) -> HttpResponse:
    """Emulator only (§13): send a completed transaction's webhook again."""
    if request.method != "POST":
        return HttpResponse(status=405, headers={"Allow": "POST"})
    try:
        payment = emulator.get_payment(checkout_id)
    except EmulatorError:
        raise Http404(_("No such payment.")) from None
    if payment.status != COMPLETED:
        return HttpResponse(
            _("Only a completed transaction sends a webhook."),
            status=409,
            content_type="text/plain",
        )
    delivery = emulator.resend(payment)
    status = delivery.status if delivery is not None else ""
    return HttpResponse(
        json.dumps({"delivery": getattr(delivery, "pk", None), "status": status}),
        content_type="application/json",
    )


urlpatterns = [
    path("api.php", api, name="api"),
    path("pay.php", pay, name="pay"),
    path("control/resend/<str:checkout_id>/", resend, name="resend"),
]
