"""The PayConnect emulator: payconnect.md section 3, strictly, served by Django.

Under ``emulator/payconnect/`` (point the provider's ``api_url`` at
``.../emulator/payconnect/v1/``):

* ``POST v1/auth/token`` (§3.2): ``Authorization: Bearer <secret key>``, body
  ``{"scope"?}``; answers ``{access_token, token_type, expires_in, expires_at,
  scope}``. Tokens are self-contained (signed with the project's
  ``SECRET_KEY``), so every process of a demo accepts them; they expire after
  ``token_lifetime`` seconds of the emulator clock.
* ``POST v1/payments`` (§3.3, ``payments.write``, optional ``Idempotency-Key``
  of at most 64 characters), ``GET v1/payments`` (list, §3.5),
  ``GET v1/payments/<id>`` (``payments.read``), ``POST
  v1/payments/<id>/refunds`` (``payments.write``).
* ``pay/s/<id>/``: the hosted payment page (§3.6) with Pay, Decline and Let
  expire; then the browser goes to ``return_url?payment_id=<id>``. A pending
  payment read after its 30-minute session (page, API) fails with
  ``failure_code: "session_expired"``.
* Signed webhooks (§3.7) to ``webhook_urls`` on every change, retried after 1
  min, 5 min, 30 min, 2 h, 6 h, 12 h and 24 h with the same body and signature.
* Errors in the ``{"error": {code, message, docs_url, param}}`` envelope with
  the codes of §3.8; 100 requests per sliding minute per client address over
  every API endpoint, then ``429`` with ``Retry-After`` (§3.9).

Settings, ``PAYMENTS_RU_EMULATOR["payconnect"]`` (every key has a default):
``secret_keys`` (``["sk_test_123"]``), ``currencies`` (``["RUB"]``),
``webhook_urls`` (``None``: this site's ``payments/webhooks/payconnect/``),
``token_lifetime`` (86400), ``session_lifetime`` (1800),
``requests_per_minute`` (100; ``None`` turns the limit off), and the common
``faults``, ``rate_limits``, ``idempotency_ttl``, ``webhook_retry_schedule``.
Endpoint names for faults: ``token``, ``create``, ``list``, ``get``,
``refund``, ``pay_page``.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from functools import wraps
from typing import Any, ClassVar, TypeGuard
from urllib.parse import urlsplit

from django.conf import settings as django_settings
from django.core.exceptions import ValidationError
from django.core.signals import setting_changed
from django.core.validators import validate_email
from django.db.models import Q
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.urls import NoReverseMatch, path, reverse
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy
from django.views.decorators.csrf import csrf_exempt

from ...emulator import clock, limits
from ...emulator.apps import SETTING_NAME
from ...emulator.base import (
    DECLINE,
    EXPIRE,
    PAY,
    Action,
    CallLog,
    Emulator,
    EmulatorError,
    View,
    bearer_token,
    key_matches,
)
from ...emulator.models import EmulatedPayment, WebhookDelivery
from ...money import CURRENCY_EXPONENTS, MAX_AMOUNT, from_minor, to_minor
from ..signing import constant_time_equals, hmac_sha256_hex
from .provider import EVENT_ID_HEADER, SIGNATURE_HEADER, sign

PENDING = "pending"
SUCCEEDED = "succeeded"
FAILED = "failed"
REFUNDED = "refunded"
STATUSES = (PENDING, SUCCEEDED, FAILED, REFUNDED)

#: payconnect.md §3.2: the known scopes; GET needs read, POST needs write.
READ = "payments.read"
WRITE = "payments.write"
SCOPES = (WRITE, READ)
#: payconnect.md §3.3 (A-12): 200 000 RUB in kopecks.
MAX_MINOR = {"RUB": 20_000_000}
DOCS_URL = "https://docs.payconnect.com/errors#"
#: Codes of the shared emulator machinery, in PayConnect's words (§3.8).
SHARED_CODES = {"not_found": "resource_not_found"}
CREATE_FIELDS = frozenset(
    {"amount", "currency", "description", "customer", "return_url", "metadata"}
)
CUSTOMER_FIELDS = frozenset({"email", "phone", "name"})
PHONE_DIGITS = range(2, 16)  # E.164: up to 15 digits


def _iso(value: datetime | None) -> str | None:
    """payconnect.md A-13: ISO-8601 UTC with ``Z``, whole seconds."""
    if value is None:
        return None
    return value.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _fingerprint(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()[:16]


def _invalid(code: str, message: str, param: str | None = None) -> EmulatorError:
    fields = {"param": param} if param else {}
    return EmulatorError(400, code, message, **fields)


def _is_int(value: Any) -> TypeGuard[int]:
    return isinstance(value, int) and not isinstance(value, bool)


@dataclass(frozen=True)
class Call:
    """One request that reached the emulator (for tests and the demo)."""

    endpoint: str
    method: str
    path: str
    idempotency_key: str
    at: datetime


class PayConnectEmulator(Emulator):
    """The emulator of :class:`~django_payments_ru.providers.payconnect.Provider`."""

    slug = "payconnect"
    display_name = gettext_lazy("PayConnect")
    options: ClassVar[dict[str, Any]] = {
        # payconnect.md §3.7: the key of the test vector, a usable default.
        "secret_keys": ["sk_test_123"],
        "currencies": ["RUB"],
        "webhook_urls": None,
        "token_lifetime": 24 * 3600,  # F-5
        "session_lifetime": 30 * 60,  # F-13
        "requests_per_minute": 100,  # F-13
    }
    # payconnect.md §3.7: 1 min, 5 min, 30 min, 2 h, 6 h, 12 h, 24 h.
    webhook_schedule: ClassVar[tuple[int, ...]] = (
        60,
        300,
        1800,
        7200,
        21600,
        43200,
        86400,
    )
    webhook_timeout: ClassVar[float] = 10.0
    idempotency_key_max_length: ClassVar[int] = 64  # §3.3, A-9
    pending_statuses: ClassVar[frozenset[str]] = frozenset({PENDING})
    # §3.6: the hosted page pays, declines, or lets the session run out.
    pending_actions: ClassVar[tuple[Action, ...]] = (PAY, DECLINE, EXPIRE)

    def __init__(self) -> None:
        self.call_log = CallLog()

    # --- bookkeeping --------------------------------------------------------

    def reset(self) -> None:
        """Forget the recorded calls and the rate-limit counts."""
        self.call_log.clear()
        limits.reset(self.slug)

    def calls(self, endpoint: str | None = None) -> list[Call]:
        """The requests received since the last reset (of ``endpoint``)."""
        return self.call_log.named(endpoint)

    def record(self, endpoint: str, request: HttpRequest) -> None:
        call = Call(
            endpoint,
            request.method or "",
            request.path,
            self.idempotency_key(request),
            clock.now(),
        )
        self.call_log.add(call)

    def endpoint(self, name: str, **kwargs: Any) -> Callable[[View], View]:
        """The shared endpoint decorator, with every call recorded first."""
        shared = super().endpoint(name, **kwargs)

        def decorator(view: View) -> View:
            inner = shared(view)

            @wraps(inner)
            def wrapper(request: HttpRequest, *args: Any, **kw: Any) -> HttpResponse:
                self.record(name, request)
                return inner(request, *args, **kw)

            return wrapper

        return decorator

    # --- rate limit ---------------------------------------------------------

    def documented_limits(self, endpoint: str) -> list[limits.Limit]:
        """payconnect.md §3.9 (A-11), F-13: ``requests_per_minute`` in a
        sliding 60 s window per client address, over every API endpoint,
        ``/v1/auth/token`` included; the hosted page is not the API."""
        per_minute = self.config["requests_per_minute"]
        if not per_minute or endpoint == "pay_page":
            return []
        return [
            limits.Limit(
                int(per_minute), 60, sliding=True, setting="requests_per_minute"
            )
        ]

    def rate_limit_message(self, exceeded: limits.Exceeded) -> str:
        if exceeded.limit.setting != "requests_per_minute":
            return super().rate_limit_message(exceeded)
        return _(
            "Too many requests: at most %(limit)d per minute; retry after %(s)d s."
        ) % {"limit": exceeded.limit.calls, "s": exceeded.retry_after}

    # --- answers ------------------------------------------------------------

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
            code = {429: "rate_limit_exceeded"}.get(
                status, "internal_error" if status >= 500 else "invalid_request"
            )
        code = SHARED_CODES.get(code, code)
        if "field" in fields:
            fields["param"] = fields.pop("field")
        return super().error(status, code, message, headers=headers, **fields)

    def error_body(self, code: str, message: str, fields: dict[str, Any]) -> Any:
        # payconnect.md F-12/§3.8: docs_url is always .../errors#<code>.
        return {
            "error": {"code": code, "message": message, "docs_url": DOCS_URL + code}
            | fields
        }

    # --- keys and tokens ----------------------------------------------------

    def _token_key(self) -> bytes:
        secret = str(getattr(django_settings, "SECRET_KEY", ""))
        return hashlib.sha256(f"payconnect-emulator:{secret}".encode()).digest()

    def issue_token(self, key: str, scopes: list[str]) -> dict[str, Any]:
        """A new access token for the secret key ``key`` (§3.2, A-2)."""
        now = clock.now().replace(microsecond=0)
        lifetime = int(self.config["token_lifetime"])
        expires = now + timedelta(seconds=lifetime)
        claims = {
            "k": _fingerprint(key),
            "s": " ".join(scopes),
            "e": int(expires.timestamp()),
            "n": self.new_id("n", 6),
        }
        payload = base64.urlsafe_b64encode(
            json.dumps(claims, separators=(",", ":")).encode()
        ).decode()
        payload = payload.rstrip("=")
        mac = hmac_sha256_hex(self._token_key(), payload)[:32]
        return {
            "access_token": f"pct_{payload}.{mac}",
            "token_type": "Bearer",
            "expires_in": lifetime,
            "expires_at": _iso(expires),
            "scope": claims["s"],
        }

    def read_token(self, token: str) -> dict[str, Any] | None:
        """The claims of a token this emulator issued and still honours, or
        ``None``; raises the 401 ``token_expired`` for an expired one."""
        if not token.startswith("pct_") or "." not in token:
            return None
        payload, _sep, mac = token[4:].rpartition(".")
        if not constant_time_equals(
            mac, hmac_sha256_hex(self._token_key(), payload)[:32]
        ):
            return None
        try:
            padded = payload + "=" * (-len(payload) % 4)
            claims = json.loads(base64.urlsafe_b64decode(padded))
        except (ValueError, binascii.Error):
            return None
        accounts = {_fingerprint(k) for k in self.config["secret_keys"] if k}
        if not isinstance(claims, dict) or claims.get("k") not in accounts:
            return None  # a key removed from the account: its tokens die too
        if clock.now().timestamp() >= float(claims.get("e", 0)):
            raise EmulatorError(
                401, "token_expired", _("The access token has expired.")
            )
        return claims

    def account_key(self, fingerprint: str) -> str:
        """The secret key of the account ``fingerprint`` (signs its webhooks)."""
        for key in self.config["secret_keys"]:
            if key and _fingerprint(key) == fingerprint:
                return str(key)
        return str(self.config["secret_keys"][0])

    def authenticate(self, request: HttpRequest) -> HttpResponse | None:
        match = request.resolver_match
        name = match.url_name if match is not None else ""
        given = bearer_token(request)
        if name == "token":
            # §3.2: the only call that takes the secret key.
            if not key_matches(given, self.config["secret_keys"]):
                return self.error(
                    401,
                    "invalid_api_key",
                    _("The secret API key is missing or not valid."),
                )
            request.payconnect_account = _fingerprint(given)  # type: ignore[attr-defined]
            return None
        try:
            claims = self.read_token(given)
        except EmulatorError as exc:
            return self.error(exc.status, exc.code, exc.message)
        if claims is None:
            return self.error(
                401, "invalid_token", _("The access token is missing or not valid.")
            )
        needed = READ if request.method == "GET" else WRITE
        if needed not in str(claims.get("s", "")).split():
            return self.error(
                403,
                "insufficient_scope",
                _("This token lacks the scope %(scope)s.") % {"scope": needed},
            )
        request.payconnect_account = claims["k"]  # type: ignore[attr-defined]
        return None

    # --- payments -----------------------------------------------------------

    def payment_object(self, payment: EmulatedPayment) -> dict[str, Any]:
        """The Payment object of §3.4."""
        data = payment.data
        return {
            "id": payment.external_id,
            "object": "payment",
            "status": payment.status,
            "amount": to_minor(payment.amount, payment.currency),
            "currency": payment.currency,
            "description": payment.description or None,
            "customer": data.get("customer", {}),
            "payment_url": data.get("payment_url", ""),
            "return_url": payment.return_url or None,
            "metadata": data.get("metadata", {}),
            "refunded_amount": to_minor(payment.refunded_amount, payment.currency),
            "failure_code": data.get("failure_code"),
            "failure_message": data.get("failure_message"),
            "livemode": bool(data.get("livemode")),
            "created_at": _iso(payment.created_at),
            "expires_at": _iso(payment.expires_at),
            "paid_at": data.get("paid_at"),
        }

    def account_payment(
        self, request: HttpRequest, payment_id: str, *, lock: bool = False
    ) -> EmulatedPayment:
        """The payment ``payment_id`` of the calling account (else 404)."""
        payment = self.get_payment(payment_id, lock=lock)
        if payment.data.get("account") != getattr(request, "payconnect_account", ""):
            raise EmulatorError(
                404, "not_found", _("No payment %(id)s.") % {"id": payment_id}
            )
        return payment

    def status_label(self, payment: EmulatedPayment) -> str:
        if payment.status == FAILED and payment.data.get("failure_code") == (
            "session_expired"
        ):
            return str(_("Expired"))
        return super().status_label(payment)

    def webhook_urls(self, request: HttpRequest) -> list[str]:
        """Where the account's webhooks go (§3.7, A-8: set in the dashboard;
        here in the settings, by default this site's webhook view)."""
        configured = self.config["webhook_urls"]
        if configured is not None:
            return [str(url) for url in configured]
        try:
            own = reverse("django_payments_ru:webhook", kwargs={"alias": self.slug})
        except NoReverseMatch:
            return []
        return [request.build_absolute_uri(own)]

    def webhook(
        self, payment: EmulatedPayment, event_type: str
    ) -> list[WebhookDelivery]:
        """Post ``event_type`` about ``payment`` to every webhook URL after the
        commit, signed with the account's secret key (§3.7, A-3)."""
        urls = payment.data.get("webhook_urls") or []
        if not urls:
            return []
        event_id = self.new_id("evt", 8)
        body = json.dumps(
            {
                "id": event_id,
                "type": event_type,
                "created_at": _iso(clock.now()),
                "data": {"object": self.payment_object(payment)},
            },
            separators=(",", ":"),
            ensure_ascii=False,
        ).encode("utf-8")
        headers = {
            "Content-Type": "application/json",
            "User-Agent": "PayConnect-Webhooks/1.0",
            SIGNATURE_HEADER: sign(
                self.account_key(payment.data.get("account", "")), body
            ),
            EVENT_ID_HEADER: event_id,
        }
        return [
            self.send_webhook(
                payment,
                url,
                body,
                headers,
                event_id=event_id,
                event_type=event_type,
            )
            for url in urls
        ]

    def fail(self, payment: EmulatedPayment, code: str, message: str) -> None:
        self.change(
            payment,
            FAILED,
            "payment.failed",
            failure_code=code,
            failure_message=message,
        )

    # --- pending payments and the pay page ------------------------------------

    def expire(self, payment: EmulatedPayment) -> None:
        # a pending payment past its session fails as session_expired.
        self.fail(payment, "session_expired", "The payment session expired.")

    def on_pay(self, request: HttpRequest, payment: EmulatedPayment) -> str | None:
        self.change(payment, SUCCEEDED, "payment.succeeded", paid_at=_iso(clock.now()))
        return None

    def on_decline(self, request: HttpRequest, payment: EmulatedPayment) -> str | None:
        self.fail(payment, "card_declined", "The card was declined.")
        return None

    def return_location(self, request: HttpRequest, payment: EmulatedPayment) -> str:
        if not payment.return_url:
            return self.done_url(request, payment)
        # payconnect.md §3.6: no status in the URL, only the payment id.
        joiner = "&" if urlsplit(payment.return_url).query else "?"
        return f"{payment.return_url}{joiner}payment_id={payment.external_id}"


emulator = PayConnectEmulator()


def _reset_on_settings(*, setting: str, **kwargs: Any) -> None:
    # A new configuration (override_settings) starts with a fresh window.
    if setting == SETTING_NAME:
        emulator.reset()


setting_changed.connect(_reset_on_settings, dispatch_uid="payments_ru_emu_payconnect")


# --- validation ------------------------------------------------------------------


def _url(value: Any, name: str) -> str:
    """An HTTPS URL (§3.3); plain HTTP only on this machine, for development."""
    parts = urlsplit(value) if isinstance(value, str) else None
    local = parts is not None and parts.hostname in (
        "localhost",
        "127.0.0.1",
        "::1",
        "testserver",
    )
    if (
        parts is None
        or not parts.netloc
        or not (parts.scheme == "https" or (parts.scheme == "http" and local))
        or len(value) > 2000
    ):
        raise _invalid(
            "invalid_request",
            _("%(field)s must be an HTTPS URL.") % {"field": name},
            name,
        )
    return str(value)


def _customer(value: Any) -> dict[str, str]:
    if not isinstance(value, dict):
        raise _invalid("invalid_customer", _("customer must be an object."), "customer")
    for name in value:
        if name not in CUSTOMER_FIELDS:
            raise _invalid(
                "invalid_request",
                _("Unknown field %(field)s.") % {"field": f"customer.{name}"},
                f"customer.{name}",
            )
    email = value.get("email")
    try:
        if not isinstance(email, str):
            raise ValidationError("")
        validate_email(email)
    except ValidationError:
        raise _invalid(
            "invalid_customer",
            _("customer.email must be a valid e-mail address."),
            "customer.email",
        ) from None
    phone = value.get("phone")
    if phone is not None and not (
        isinstance(phone, str)
        and phone.startswith("+")
        and phone[1:].isdigit()
        and phone[1:2] != "0"
        and len(phone) - 1 in PHONE_DIGITS
    ):
        raise _invalid(
            "invalid_customer",
            _("customer.phone must be an E.164 number such as +79991234567."),
            "customer.phone",
        )
    name = value.get("name")
    if name is not None and (not isinstance(name, str) or len(name) > 255):
        raise _invalid(
            "invalid_customer",
            _("customer.name must be a string of at most 255 characters."),
            "customer.name",
        )
    return {k: v for k, v in value.items() if v is not None}


def _metadata(value: Any) -> dict[str, str]:
    if value is None:
        return {}
    if (
        not isinstance(value, dict)
        or len(value) > 20
        or not all(
            isinstance(k, str)
            and isinstance(v, str)
            and len(k) <= 500
            and len(v) <= 500
            for k, v in value.items()
        )
    ):
        raise _invalid(
            "invalid_request",
            _(
                "metadata must be an object of at most 20 string keys and values "
                "of at most 500 characters."
            ),
            "metadata",
        )
    return dict(value)


def _validated_create(body: dict[str, Any]) -> dict[str, Any]:
    for name in body:
        if name not in CREATE_FIELDS:
            raise _invalid(
                "invalid_request", _("Unknown field %(field)s.") % {"field": name}, name
            )
    amount = body.get("amount")
    if not _is_int(amount):
        raise _invalid(
            "invalid_amount",
            _("amount is required: an integer of minor currency units."),
            "amount",
        )
    if amount <= 0:
        # payconnect.md F-12: the documented message.
        raise _invalid("invalid_amount", "Amount must be greater than 0", "amount")
    currency = body.get("currency")
    enabled = [str(c) for c in emulator.config["currencies"]]
    if (
        not isinstance(currency, str)
        or currency not in CURRENCY_EXPONENTS
        or currency not in enabled
    ):
        raise _invalid(
            "unsupported_currency",
            _("currency must be one of %(list)s.") % {"list": ", ".join(enabled)},
            "currency",
        )
    ceiling = MAX_MINOR.get(currency)
    if ceiling is not None and amount > ceiling:
        raise _invalid(
            "amount_too_large",
            _("amount exceeds the limit of one payment (200 000 RUB)."),
            "amount",
        )
    major = from_minor(amount, currency)
    if major > MAX_AMOUNT:
        raise _invalid("amount_too_large", _("amount is too large."), "amount")
    description = body.get("description")
    if description is not None and (
        not isinstance(description, str) or len(description) > 255
    ):
        raise _invalid(
            "invalid_request",
            _("description must be a string of at most 255 characters."),
            "description",
        )
    if "customer" not in body:
        raise _invalid("invalid_customer", _("customer is required."), "customer")
    return_url = body.get("return_url")
    return {
        "amount": major,
        "currency": currency,
        "description": description or "",
        "customer": _customer(body["customer"]),
        "return_url": "" if return_url is None else _url(return_url, "return_url"),
        "metadata": _metadata(body.get("metadata")),
    }


# --- views -----------------------------------------------------------------------


@emulator.endpoint("token", methods=("POST",))
def token(request: HttpRequest) -> HttpResponse:
    body = emulator.json_body(request, empty=True)
    for name in body:
        if name != "scope":
            raise _invalid(
                "invalid_request", _("Unknown field %(field)s.") % {"field": name}, name
            )
    scope = body.get("scope")
    if scope is None:
        scopes = list(SCOPES)  # §3.2: by default both scopes
    elif not isinstance(scope, str) or not scope.split():
        raise _invalid(
            "invalid_scope", _("scope must be space-separated scopes."), "scope"
        )
    else:
        scopes = scope.split()
        unknown = [s for s in scopes if s not in SCOPES]
        if unknown:
            raise _invalid(
                "invalid_scope",
                _("Unknown scope %(scope)s.") % {"scope": unknown[0]},
                "scope",
            )
    given = bearer_token(request)
    return JsonResponse(emulator.issue_token(given, scopes))


@emulator.endpoint("create", methods=("POST",), idempotent=True)
def create_payment(request: HttpRequest) -> HttpResponse:
    values = _validated_create(emulator.json_body(request))
    external_id = emulator.new_id("pay", 8)
    now = clock.now().replace(microsecond=0)
    lifetime = int(emulator.config["session_lifetime"])
    account = getattr(request, "payconnect_account", "")
    key = emulator.account_key(account)
    metadata = values["metadata"]
    payment = EmulatedPayment.objects.create(
        slug=emulator.slug,
        external_id=external_id,
        status=PENDING,
        amount=values["amount"],
        currency=values["currency"],
        reference=metadata.get("invoice_id", "")[:255],
        order_id=metadata.get("order_id", "")[:255],
        description=values["description"],
        customer_email=values["customer"]["email"],
        return_url=values["return_url"],
        webhook_url=(emulator.webhook_urls(request) or [""])[0],
        created_at=now,
        expires_at=now + timedelta(seconds=lifetime),
        data={
            "account": account,
            "livemode": key.startswith("sk_live_"),
            "customer": values["customer"],
            "metadata": metadata,
            "payment_url": emulator.absolute_url(request, "pay", external_id),
            "webhook_urls": emulator.webhook_urls(request),
            "failure_code": None,
            "failure_message": None,
            "paid_at": None,
            "refunds": [],
        },
    )
    return JsonResponse(emulator.payment_object(payment), status=201)


@emulator.endpoint("list", methods=("GET",))
def list_payments(request: HttpRequest) -> HttpResponse:
    raw_limit = request.GET.get("limit", "20")
    if not raw_limit.isdigit() or not 1 <= int(raw_limit) <= 100:
        raise _invalid(
            "invalid_request", _("limit must be between 1 and 100."), "limit"
        )
    limit = int(raw_limit)
    account = getattr(request, "payconnect_account", "")
    qs = EmulatedPayment.objects.filter(slug=emulator.slug, data__account=account)
    status = request.GET.get("status")
    if status is not None:
        if status not in STATUSES:
            raise _invalid(
                "invalid_request",
                _("status must be one of %(list)s.") % {"list": ", ".join(STATUSES)},
                "status",
            )
        qs = qs.filter(status=status)
    after = request.GET.get("starting_after")
    if after:
        anchor = emulator.account_payment(request, after)
        qs = qs.filter(
            Q(created_at__lt=anchor.created_at)
            | Q(created_at=anchor.created_at, id__lt=anchor.id)
        )
    page = list(qs.order_by("-created_at", "-id")[: limit + 1])
    return JsonResponse(
        {
            "object": "list",
            "data": [
                emulator.payment_object(emulator.expire_if_due(p)) for p in page[:limit]
            ],
            "has_more": len(page) > limit,
        }
    )


@csrf_exempt
def payments(request: HttpRequest) -> HttpResponse:
    """``v1/payments``: GET lists, POST creates."""
    if request.method == "GET":
        return list_payments(request)
    return create_payment(request)


@emulator.endpoint("get", methods=("GET",))
def get_payment(request: HttpRequest, payment_id: str) -> HttpResponse:
    payment = emulator.expire_if_due(emulator.account_payment(request, payment_id))
    return JsonResponse(emulator.payment_object(payment))


@emulator.endpoint("refund", methods=("POST",), idempotent=True)
def refund_payment(request: HttpRequest, payment_id: str) -> HttpResponse:
    body = emulator.json_body(request, empty=True)
    for name in body:
        if name not in ("amount", "reason"):
            raise _invalid(
                "invalid_request", _("Unknown field %(field)s.") % {"field": name}, name
            )
    reason = body.get("reason")
    if reason is not None and (not isinstance(reason, str) or len(reason) > 255):
        raise _invalid(
            "invalid_request",
            _("reason must be a string of at most 255 characters."),
            "reason",
        )
    with emulator.locked_in(
        emulator.account_payment(request, payment_id),
        {SUCCEEDED},
        "payment_not_refundable",
        _("Only a succeeded payment can be refunded; this one is %(status)s."),
    ) as payment:
        left = to_minor(payment.refundable_amount, payment.currency)
        amount = body.get("amount", left)  # §3.5: by default what is left
        if not _is_int(amount) or not 0 < amount <= left:
            raise _invalid(
                "refund_amount_invalid",
                _("amount must be an integer between 1 and %(left)d.") % {"left": left},
                "amount",
            )
        refund = {
            "id": emulator.new_id("re", 8),
            "object": "refund",
            "payment_id": payment.external_id,
            "amount": amount,
            "currency": payment.currency,
            "status": "succeeded",
            "reason": reason,
            "created_at": _iso(clock.now()),
        }
        # every refund, partial or full, sends payment.refunded.
        emulator.add_refund(
            payment, from_minor(amount, payment.currency), refund, "payment.refunded"
        )
    return JsonResponse(refund, status=201)


urlpatterns = [
    path("v1/auth/token", token, name="token"),
    path("v1/payments", payments, name="payments"),
    path("v1/payments/<str:payment_id>", get_payment, name="payment"),
    path("v1/payments/<str:payment_id>/refunds", refund_payment, name="refunds"),
    path("pay/s/<str:payment_id>/", emulator.pay_page_view(), name="pay"),
]
