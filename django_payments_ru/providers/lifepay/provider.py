"""Life-Pay: the A1Lite signed pay form and its notifications, the "alba"
server calls, and the ECOM invoices API (reference: ``lifepay.md``).

Two surfaces, chosen per alias by the ``surface`` option:

* ``"a1lite"``: :meth:`Provider.start` returns a POST form to
  ``{partner_url}alba/input/`` (lifepay.md §3), unsigned with the public ``key``
  (v1.0) or signed with ``check`` (v2.0, §4). Life-Pay posts form-encoded
  notifications signed per the service's signature version (§6). Status,
  refunds, holds and recurrent cancel are signed ``alba/*`` calls (§5).
* ``"ecom"``: ``POST {api_url}invoices`` with a JWT from ``{api_url}auth``
  (§11), the customer is redirected to the invoice's ``form_link``; status is
  read with ``GET invoices/<id>``, contact data and the recurrent schedule
  changed with ``PATCH`` (:meth:`Provider.update_invoice`); a hold is captured
  with ``PATCH`` and released with ``DELETE`` on
  ``services/<service_id>/charges/<tid>/blocked`` (§9, L-6, L-7).
  Notifications are the same signed form posts plus ``invoice_id`` (A-5).
"""

from __future__ import annotations

import functools
import re
import uuid
from collections.abc import Callable, Mapping
from datetime import datetime, timedelta, timezone
from decimal import Decimal
from typing import TYPE_CHECKING, Any, ClassVar, TypeVar, cast

from django.db import transaction
from django.http import HttpRequest
from django.utils import timezone as dj_timezone
from django.utils.functional import cached_property
from django.utils.translation import gettext as _

from ...conf import payments_settings
from ...events import EventType, PaymentEvent, stable_hash
from ...exceptions import (
    InvalidInput,
    InvalidOperation,
    NotSupported,
    ProviderAPIError,
    ProviderAuthError,
    ProviderResponseError,
    WebhookParseError,
    WebhookVerificationError,
)
from ...money import format_amount, parse_amount
from ..base import AdminForm, BaseProvider, Capability, Checkout, Option
from ..http import HttpClient
from ..payload import load_form, webhook_parsing
from ..signing import matches_any
from ..tokens import Token, TokenCache, fingerprint, jwt_expiry
from . import forms as admin_forms
from . import metadata as meta
from .signature import (
    UNSIGNED_FIELDS,
    all_secrets,
    sign_notification,
    sign_v2,
    signed_fields,
)

if TYPE_CHECKING:
    from ...models import Invoice

A1LITE = "a1lite"
ECOM = "ecom"
#: ASSUMPTION A-8: ``date_created`` is Moscow time.
MOSCOW = timezone(timedelta(hours=3))
_HEX_UUID = re.compile(r"^[0-9a-f]{32}$")


def lifepay_order_id(invoice: Invoice) -> str:
    """The ``order_id`` sent to Life-Pay: the invoice's order id, or its UUID as
    32 hex digits when it has none (ASSUMPTION L-1: a UUID is unique, which
    lifepay.md §3.2 asks of an order id, and leads back to the invoice)."""
    return invoice.order_id or invoice.uuid.hex


_M = TypeVar("_M", bound=Callable[..., Any])


def _under_alias(method: _M) -> _M:
    """Errors of the module-level validators name the provider class's slug;
    the caller needs the alias it configured (``lifepay_ecom``...)."""

    @functools.wraps(method)
    def wrapper(self: Provider, *args: Any, **kwargs: Any) -> Any:
        try:
            return method(self, *args, **kwargs)
        except InvalidInput as exc:
            exc.provider = self.alias
            raise

    return cast(_M, wrapper)


class Provider(BaseProvider):
    """Life-Pay (A1Lite pay form and ECOM invoices).

    Options:

    ``surface``
        ``"a1lite"`` (default, the signed pay form) or ``"ecom"`` (invoices API).
    ``service_id``
        The service (shop) id, an int; needed for signature 2.0, the server
        calls and ECOM.
    ``key``
        A1Lite's public service key (signature 1.0).
    ``secret_key``
        The service's secret key: request ``check`` 2.0, notification checks and
        server calls (secret).
    ``previous_secret_keys``
        Older secret keys still accepted on notifications during a rotation.
    ``signature_version``
        ``"1.0"`` or ``"2.0"`` (default), as set in the Life-Pay cabinet.
    ``forced_signature``
        ``True`` when Life-Pay enforces signed forms for the service
        ("Принудительная проверка подписи"); an unsigned configuration is then
        an error. Default ``False``.
    ``api_key``
        The ECOM API key for ``/v1/auth`` (secret).
    ``webhook_url``
        The notification URL exactly as configured at Life-Pay; v2.0
        notifications are verified against it (ASSUMPTION A-4). Default: this
        alias's webhook URL under ``PAYMENTS_RU["BASE_URL"]``.
    ``partner_url``
        The A1Lite host (default ``"https://partner.life-pay.ru/"``).
    ``api_url``
        The ECOM API (default ``"https://api-ecom.life-pay.ru/v1/"``).
    ``payment_type``
        A1Lite channel preselected on the form, e.g. ``"spg_test"`` (default
        none).
    """

    slug = "lifepay"
    display_name = "Life-Pay"
    # lifepay.md §11.2: ECOM takes RUB, EUR, USD; A1Lite RUB only.
    currencies = frozenset({"RUB", "EUR", "USD"})
    capabilities = frozenset(
        {
            Capability.REFUND,
            Capability.PARTIAL_REFUND,
            Capability.STATUS,
            Capability.RECURRENT,
            Capability.SPLIT,
            Capability.HOLD,
        }
    )
    options: ClassVar[dict[str, Option]] = {
        "surface": Option(required=False, default=A1LITE, choices=(A1LITE, ECOM)),
        "service_id": Option(required=False, types=(int,)),
        "key": Option(required=False, help="the A1Lite public key"),
        "secret_key": Option(
            secret=True,
            help="the service's secret key from the Life-Pay cabinet; "
            "notifications are checked with it",
        ),
        "previous_secret_keys": Option(
            required=False, default=(), secret=True, types=(list, tuple)
        ),
        "signature_version": Option(
            required=False, default="2.0", choices=("1.0", "2.0")
        ),
        "forced_signature": Option(required=False, default=False, types=(bool,)),
        "api_key": Option(required=False, secret=True),
        "webhook_url": Option(required=False),
        "partner_url": Option(required=False, default="https://partner.life-pay.ru/"),
        "api_url": Option(required=False, default="https://api-ecom.life-pay.ru/v1/"),
        "payment_type": Option(required=False),
    }
    base_url_option = "partner_url"
    #: The signature is stored nowhere (the payload is kept without it).
    secret_payload_keys = frozenset({"check", "mac"})

    #: lifepay.md §6.3 commands.
    COMMANDS: ClassVar[dict[str, EventType]] = {
        "success": EventType.PAID,
        "process": EventType.PENDING,
        "cancel": EventType.FAILED,
        "refund": EventType.REFUNDED,
        "funds_blocked": EventType.HELD,
        "recurrent_cancel": EventType.INFO,
        "recurrent_expire": EventType.INFO,
    }
    #: ``alba/details/`` ``transaction_status`` (ASSUMPTION A-15; ``blocked`` is
    #: ours, L-4). ``refunded`` says the money moved once: refunds themselves are
    #: recorded from the refund notifications only, so nothing counts twice.
    DETAILS_STATUSES: ClassVar[dict[str, EventType | None]] = {
        "open": None,
        "payed": EventType.PAID,
        "success": EventType.PAID,
        "refunded": EventType.PAID,
        "blocked": EventType.HELD,
        "error": EventType.FAILED,
    }
    #: lifepay.md §11.5 invoice statuses.
    ECOM_STATUSES: ClassVar[dict[str, EventType | None]] = {
        "open": None,
        "pending": EventType.PENDING,
        "success": EventType.PAID,
        "blocked": EventType.HELD,
        "error": EventType.FAILED,
    }

    # --- options ------------------------------------------------------------

    @classmethod
    def check_options(cls, alias: str, options: Mapping[str, Any]) -> list[str]:
        errors = super().check_options(alias, options)
        if errors:
            return errors
        where = f"PAYMENTS_RU['PROVIDERS'][{alias!r}]['OPTIONS']"
        surface = options.get("surface", A1LITE)
        version = options.get("signature_version", "2.0")
        needs: list[str] = []
        if surface == A1LITE and version == "1.0":
            needs.append("key")
            if options.get("forced_signature"):
                errors.append(
                    f"{where}['signature_version'] is '1.0' (an unsigned pay form) "
                    "but Life-Pay enforces signatures for this service "
                    "(forced_signature): set it to '2.0' with service_id and "
                    "secret_key."
                )
        if surface == A1LITE and version == "2.0":
            needs += ["service_id"]
        if surface == ECOM:
            needs += ["service_id", "api_key"]
        for name in needs:
            if options.get(name) in (None, ""):
                errors.append(
                    f"{cls.__name__} with surface {surface!r} and signature "
                    f"{version} needs {where}[{name!r}]."
                )
        return errors

    @property
    def surface(self) -> str:
        return str(self.config["surface"])

    @property
    def version(self) -> str:
        return str(self.config["signature_version"])

    def supports(self, capability: Capability) -> bool:
        capability = Capability(capability)
        if capability not in self.capabilities:
            return False
        if self.surface == ECOM:
            # lifepay.md §11.7: ECOM refunds are documented only by T-NOTES (low
            # confidence); not offered (docs: limitations). Holds are: §9 gives
            # the charges/{charge_id}/blocked endpoint (_ecom_hold).
            return capability in (
                Capability.STATUS,
                Capability.RECURRENT,
                Capability.SPLIT,
                Capability.HOLD,
            )
        if capability is Capability.SPLIT:
            return False  # lifepay.md §11.2: split_data exists in ECOM only
        if capability is Capability.RECURRENT:
            return True
        # Every alba server call is signed 2.0 with the service id (§5).
        return bool(self.config["service_id"] and self.config["secret_key"])

    def secret_keys(self) -> list[str]:
        return all_secrets(
            self.config["secret_key"], self.config["previous_secret_keys"]
        )

    def notification_url(self) -> str:
        """The webhook URL notifications are signed over (ASSUMPTION A-4): the
        option, else this alias's webhook URL under ``BASE_URL``; never the
        request's Host header."""
        return str(self.config["webhook_url"] or self.webhook_url())

    # --- validation ---------------------------------------------------------

    @_under_alias
    def validate_invoice(self, invoice: Invoice) -> None:
        super().validate_invoice(invoice)
        if self.surface == A1LITE:
            self._a1lite_fields(invoice, None)
        else:
            self._ecom_body(invoice, None)

    # --- A1Lite checkout ------------------------------------------------------

    def input_url(self) -> str:
        return self.http.url("alba/input/")

    def _name(self, invoice: Invoice) -> str:
        name = invoice.description or _("Order %(order)s") % {
            "order": invoice.order_id or str(invoice.uuid)[:8]
        }
        # lifepay.md §3.2 and §11.2: name is 1..128 characters.
        return meta.text(name, "description", longest=128, shortest=1)

    def _return_url(self, invoice: Invoice, request: HttpRequest | None) -> str:
        if invoice.pk is None:
            return ""  # validating before save: the URL is ours, always valid
        return self.return_url(invoice, request)

    def _a1lite_fields(
        self, invoice: Invoice, request: HttpRequest | None
    ) -> dict[str, str]:
        if invoice.currency != "RUB":
            # ASSUMPTION A-17: the A1Lite form takes rubles only.
            raise InvalidInput(
                _("currency: the Life-Pay pay form takes RUB only."),
                field="currency",
                provider=self.alias,
            )
        options = meta.lifepay_options(invoice.metadata)
        for key in ("split_data", "recurrent_schedule", "is_recurrent", "expire_date"):
            if key in options:
                raise meta.invalid(
                    f"metadata.lifepay.{key}",
                    _("exists only for ECOM invoices (surface 'ecom')."),
                )
        if "send_receipt_through" in options:
            raise meta.invalid(
                "metadata.lifepay.send_receipt_through",
                _("exists only for ECOM invoices (surface 'ecom')."),
            )
        order_id = lifepay_order_id(invoice)
        fields: dict[str, str] = {}
        if self.version == "1.0":
            fields["key"] = str(self.config["key"])
        else:
            fields["service_id"] = str(self.config["service_id"])
            fields["version"] = "2.0"
        # lifepay.md §3.2: cost in rubles with a dot, two decimals.
        fields["cost"] = format_amount(invoice.amount, "RUB")
        fields["name"] = self._name(invoice)
        fields["order_id"] = meta.text(order_id, "order_id", longest=64, shortest=1)
        if invoice.customer_email:
            fields["email"] = invoice.customer_email
        if invoice.customer_phone:
            # lifepay.md §3.2: digits only, e.g. 74951234567.
            fields["phone_number"] = invoice.customer_phone.lstrip("+")
        text = meta.comment(options)
        if text:
            fields["comment"] = text
        channel = meta.payment_type(options) or str(self.config["payment_type"] or "")
        if channel:
            fields["payment_type"] = channel
        items = meta.receipt_items(invoice.metadata, invoice.amount)
        if items:
            # lifepay.md §10: invoice_data is a JSON string with items[].
            fields["invoice_data"] = meta.dumps({"items": items})
        fields.update(
            meta.recurrent_registration(
                options, order_id=order_id, email=invoice.customer_email
            )
        )
        back = self._return_url(invoice, request)
        if back:
            # The customer's GET back carries the notification fields; the
            # return view ignores them (lifepay.md §6.1, never proof of payment).
            fields["url_success"] = back
            fields["url_error"] = back
        if self.version == "2.0":
            fields["check"] = sign_v2(
                self.config["secret_key"], "POST", self.input_url(), fields
            )
        return fields

    @_under_alias
    def start(
        self, invoice: Invoice, request: HttpRequest | None = None, *, key: str = ""
    ) -> Checkout:
        # ``key`` is not sent: lifepay.md has no idempotency key anywhere. A1Lite
        # registers nothing here, and Life-Pay pays an order_id once. An
        # ECOM create whose answer was lost cannot be found again (§11 has no
        # lookup by order_id), so recover_start keeps the default (docs:
        # limitations).
        if self.surface == ECOM:
            return self._ecom_start(invoice, request)
        # lifepay.md §3.1: the browser posts the form; nothing is registered.
        return Checkout(
            method="POST",
            url=self.input_url(),
            fields=self._a1lite_fields(invoice, request),
        )

    # --- notifications --------------------------------------------------------

    def _fields(self, request: HttpRequest) -> dict[str, str]:
        content_type = request.content_type or ""
        if content_type != "application/x-www-form-urlencoded":
            # lifepay.md §6.1: always form-encoded.
            raise WebhookVerificationError(
                "A Life-Pay notification is form-encoded.",
                provider=self.alias,
                code="invalid_content_type",
            )
        fields: dict[str, str] = {}
        for name, values in request.POST.lists():
            if len(values) != 1:
                raise WebhookVerificationError(
                    f"The field {name!r} is repeated.",
                    provider=self.alias,
                    code="ambiguous_field",
                )
            fields[name] = values[0]
        return fields

    def verify_webhook(self, request: HttpRequest) -> None:
        fields = self._fields(request)
        given = fields.get("check", "")
        if not given:
            raise WebhookVerificationError(
                "The notification is not signed (no check).",
                provider=self.alias,
                code="missing_signature",
            )
        if fields.get("version", "") != self.version:
            # The cabinet's "signature version" decides the scheme: a
            # notification claiming another one is a downgrade attempt.
            raise WebhookVerificationError(
                f"The notification uses signature version "
                f"{fields.get('version', '')!r}, not {self.version!r}.",
                provider=self.alias,
                code="wrong_signature_version",
            )
        url = self.notification_url()
        version = self.version

        def expected(secret: str | bytes) -> str:
            key = secret if isinstance(secret, str) else secret.decode()
            return sign_notification(version, key, url, fields)

        # v1.0 checks are lower-case hex; compare case-insensitively.
        if version == "1.0":
            given = given.lower()
        if not matches_any(given, self.secret_keys(), expected):
            raise WebhookVerificationError(
                "The notification's check does not match.", provider=self.alias
            )
        service = self.config["service_id"]
        if service is not None and fields.get("service_id") not in ("", str(service)):
            raise WebhookVerificationError(
                "The notification is for another service.",
                provider=self.alias,
                code="wrong_service",
            )

    def parse_webhook(self, request: HttpRequest) -> list[PaymentEvent]:
        # Django's form parser quietly replaces bytes that are not UTF-8 and
        # keeps %00: the shared form check refuses both, and control characters,
        # in any field; webhook_parsing turns what the fields still hold (an
        # unknown currency, an amount that is not a number) into a parse error.
        load_form(request.body, provider=self.alias)
        fields = self._fields(request)
        with webhook_parsing(self.alias):
            return [self.event_from_notification(fields)]

    def event_from_notification(self, fields: Mapping[str, str]) -> PaymentEvent:
        """The event of one verified notification (lifepay.md §6.2, §6.3)."""
        command = fields.get("command", "")
        tid = fields.get("tid", "")
        if not command or not (tid or fields.get("invoice_id")):
            raise WebhookParseError(
                "Not a Life-Pay notification (no command or tid).",
                provider=self.alias,
            )
        kind = self.COMMANDS.get(command, EventType.INFO)
        currency = fields.get("currency") or "RUB"
        try:
            cost = parse_amount(fields.get("cost") or "0", currency)
            income = parse_amount(fields.get("income") or "0", currency)
            income_total = parse_amount(fields.get("income_total") or "0", currency)
        except InvalidInput:
            raise WebhookParseError(
                "The notification's amounts are not decimal numbers.",
                provider=self.alias,
            ) from None
        amount: Decimal | None = None
        if kind is EventType.PAID:
            # ASSUMPTION A-1: what the customer paid in all; must match.
            amount = income_total or cost
        elif kind is EventType.HELD:
            amount = cost
        elif kind is EventType.PENDING and cost and income_total >= cost:
            # lifepay.md §6.3: "process" is any payment; a complete one pays.
            kind, amount = EventType.PAID, income_total
        elif kind is EventType.REFUNDED:
            if fields.get("result", "ok") != "ok":
                kind = EventType.INFO  # a failed refund moves no money
            else:
                # ASSUMPTION A-16: income is this refund's amount.
                amount = income
        # Dedupe: the signed fields identify the notification, so Life-Pay's
        # retries (same body) share an id while a later refund of the same tid
        # (other command, amount, date, payback id) does not.
        signed = signed_fields(self.version, fields)
        dedupe = "lp:" + stable_hash(command, signed)
        order_id = fields.get("order_id", "")
        invoice_id = fields.get("invoice_id", "")
        return PaymentEvent(
            provider=self.alias,
            dedupe_id=dedupe,
            type=kind,
            invoice_ref=order_id if _HEX_UUID.match(order_id) else "",
            provider_payment_id=invoice_id or tid,
            order_id=order_id,
            amount=amount,
            currency=currency,
            occurred_at=_moscow_time(fields.get("date_created", "")),
            reason=fields.get("resultStr", "") or command,
            raw={k: v for k, v in fields.items() if k not in UNSIGNED_FIELDS},
        )

    # --- alba server calls ------------------------------------------------------

    def parse_error(self, status: int, body: Any) -> tuple[str, str, dict[str, Any]]:
        # lifepay.md §5 (alba) and §11.6 / A-11 (ECOM): {status, code?, msg|message}.
        if isinstance(body, Mapping):
            code = body.get("code") or body.get("status") or ""
            message = body.get("message") or body.get("msg") or ""
            return str(code), str(message), {}
        return super().parse_error(status, body)

    def _alba(
        self, endpoint: str, params: Mapping[str, str], *, idempotent: bool = False
    ) -> dict[str, Any]:
        """A signed ``alba/<endpoint>/`` call; its ``status:error`` envelope
        (HTTP 200, ASSUMPTION A-15) raised as a typed error."""
        if not (self.config["service_id"] and self.config["secret_key"]):
            raise NotSupported(
                _("Life-Pay server calls need the service_id and secret_key options."),
                provider=self.alias,
            )
        path = f"alba/{endpoint}/"
        fields = {
            **params,
            "service_id": str(self.config["service_id"]),
            "version": "2.0",
        }
        fields["check"] = sign_v2(
            self.config["secret_key"], "POST", self.http.url(path), fields
        )
        body = self.http.request("POST", path, data=fields, idempotent=idempotent)
        if not isinstance(body, Mapping):
            raise ProviderResponseError(
                f"Life-Pay answered {endpoint} without a JSON object.",
                provider=self.alias,
            )
        if body.get("status") != "success":
            code, message, _details = self.parse_error(200, body)
            error_cls = ProviderAuthError if code == "auth" else ProviderAPIError
            # Read here, not by the HTTP client: redacted like its errors (the
            # message may echo the secret key).
            raise self.provider_error(
                error_cls,
                f"Life-Pay refused {endpoint}.",
                status=200,
                code=code or "error",
                provider_message=message,
            )
        return dict(body)

    def _tid(self, invoice: Invoice, kinds: tuple[str, ...]) -> str:
        """The Life-Pay transaction of ``invoice``: the one the recorded charge
        or hold came from (a declined attempt's tid may be on the invoice)."""
        from ...models import Payment, WebhookEvent

        if "paid" in kinds:
            charge = (
                invoice.payments.filter(kind=Payment.Kind.CHARGE)
                .exclude(provider_payment_id="")
                .order_by("-created_at", "-id")
                .first()
            )
            if charge is not None:
                return charge.provider_payment_id
        row = (
            WebhookEvent.objects.filter(invoice=invoice, event_type__in=kinds)
            .order_by("-received_at", "-id")
            .first()
        )
        if row is not None and row.event.get("provider_payment_id"):
            return str(row.event["provider_payment_id"])
        if not invoice.provider_payment_id:
            raise NotSupported(
                _("No Life-Pay transaction is known for this invoice yet."),
                provider=self.alias,
            )
        return invoice.provider_payment_id

    def fetch_status(self, invoice: Invoice) -> PaymentEvent | None:
        if self.surface == ECOM:
            return self._ecom_status(invoice)
        if invoice.provider_payment_id:
            params = {"tid": invoice.provider_payment_id}
        else:
            # lifepay.md §5: tid, or order_id with service_id.
            params = {"order_id": lifepay_order_id(invoice)}
        try:
            data = self._alba("details", params, idempotent=True)
        except ProviderAPIError as exc:
            if exc.code == "unknown" and "tid" not in params:
                return None  # ASSUMPTION L-4: the customer never posted the form
            raise
        state = str(data.get("transaction_status", ""))
        if state not in self.DETAILS_STATUSES:
            raise self.provider_error(
                ProviderResponseError, f"Unknown Life-Pay transaction status {state!r}."
            )
        kind = self.DETAILS_STATUSES[state]
        if kind is None:
            return None
        tid = str(data.get("tid", ""))
        amount = None
        if kind in (EventType.PAID, EventType.HELD):
            amount = parse_amount(str(data.get("cost", "0")), invoice.currency)
        return PaymentEvent(
            provider=self.alias,
            # Polls of the same state share an id, so they apply once.
            dedupe_id=f"poll:{tid}:{state}",
            type=kind,
            invoice_ref=str(invoice.uuid),
            provider_payment_id=tid,
            order_id=str(data.get("order_id", "")),
            amount=amount,
            currency=invoice.currency,
            reason=str(data.get("resultStr") or state),
            raw=data,
        )

    def refund(
        self, invoice: Invoice, amount: Decimal, *, key: str = ""
    ) -> PaymentEvent | None:
        # ``key`` is not sent: alba/refund/ takes no idempotency key (§5).
        if self.surface == ECOM:
            return super().refund(invoice, amount, key=key)
        self._alba(
            "refund",
            {
                "tid": self._tid(invoice, ("paid",)),
                "amount": format_amount(amount, invoice.currency),
            },
        )
        # ASSUMPTION A-16: the command=refund notification confirms the refund
        # and records it (its dedupe id is the notification's), so the answer
        # here records nothing: a refund is never counted twice.
        return None

    def capture(
        self, invoice: Invoice, amount: Decimal | None = None, *, key: str = ""
    ) -> PaymentEvent | None:
        # ``key`` is not sent: neither alba/process_funds_blocked/ (§5) nor the
        # ECOM charges endpoint (§9) takes an idempotency key.
        if not self.supports(Capability.HOLD):
            return super().capture(invoice, amount, key=key)
        if amount is not None and amount != invoice.amount:
            # The invoice records one paid amount; a partial capture would
            # never match it.
            raise InvalidInput(
                _("Life-Pay holds can only be captured in full (%(amount)s).")
                % {"amount": invoice.amount},
                field="amount",
                provider=self.alias,
            )
        if self.surface == ECOM:
            return self._ecom_hold(invoice, capture=True)
        tid = self._tid(invoice, ("held",))
        data = self._alba("process_funds_blocked", {"tid": tid, "action": "charge"})
        return PaymentEvent(
            provider=self.alias,
            dedupe_id=f"capture:{tid}",
            type=EventType.PAID,
            invoice_ref=str(invoice.uuid),
            provider_payment_id=tid,
            amount=invoice.amount,
            currency=invoice.currency,
            reason=_("hold captured"),
            raw=data,
        )

    def release(self, invoice: Invoice, *, key: str = "") -> PaymentEvent | None:
        # ``key`` is not sent (see capture).
        if not self.supports(Capability.HOLD):
            return super().release(invoice, key=key)
        if self.surface == ECOM:
            return self._ecom_hold(invoice, capture=False)
        tid = self._tid(invoice, ("held",))
        data = self._alba("process_funds_blocked", {"tid": tid, "action": "unblock"})
        return PaymentEvent(
            provider=self.alias,
            dedupe_id=f"release:{tid}",
            type=EventType.CANCELLED,
            invoice_ref=str(invoice.uuid),
            provider_payment_id=tid,
            reason=_("hold released"),
            raw=data,
        )

    def cancel_recurrent(self, recurrent_order_id: str) -> None:
        """Withdraw a recurrent consent (``alba/recurrent_change/``,
        ``operation=cancel``, lifepay.md §5 and §8)."""
        meta.text(recurrent_order_id, "recurrent_order_id", longest=64, shortest=1)
        self._alba(
            "recurrent_change", {"operation": "cancel", "order_id": recurrent_order_id}
        )

    # --- ECOM ---------------------------------------------------------------------

    @cached_property
    def ecom_http(self) -> HttpClient:
        timeout = payments_settings.HTTP_TIMEOUT
        return HttpClient(
            provider=self.alias,
            base_url=self.config["api_url"],
            timeout=tuple(timeout) if isinstance(timeout, list | tuple) else timeout,
            retries=payments_settings.HTTP_RETRIES,
            max_retry_after=payments_settings.HTTP_MAX_RETRY_AFTER,
            secrets=self.secrets(),
            error_parser=self.parse_error,
        )

    @cached_property
    def tokens(self) -> TokenCache:
        credentials = fingerprint(
            str(self.config["service_id"]),
            str(self.config["api_key"]),
            str(self.config["api_url"]),
        )
        return TokenCache(
            f"lifepay:{self.alias}:{credentials}",
            self._fetch_token,
            on_token=self.ecom_http.add_secret,
            provider=self.alias,
        )

    def _fetch_token(self) -> Token:
        # lifepay.md §11.1 and ASSUMPTION A-10: {"jwt": ...} ("token" as alias).
        data = self.ecom_http.request(
            "POST",
            "auth",
            json={
                "service_id": self.config["service_id"],
                "api_key": self.config["api_key"],
            },
        )
        value = (
            data.get("jwt") or data.get("token") if isinstance(data, Mapping) else None
        )
        if not isinstance(value, str) or not value:
            raise ProviderResponseError(
                "Life-Pay /v1/auth answered without a jwt.", provider=self.alias
            )
        self.ecom_http.add_secret(value)
        # The lifetime is not documented (§11.1): the token's own exp says it.
        return Token(value, jwt_expiry(value))

    def _ecom(self, method: str, path: str, **kwargs: Any) -> Any:
        def call(token: str) -> Any:
            headers = {
                "Authorization": f"Bearer {token}",
                "Content-Type": "application/json",
            }
            try:
                return self.ecom_http.request(method, path, headers=headers, **kwargs)
            except ProviderAPIError as exc:
                if exc.status == 498 and not isinstance(exc, ProviderAuthError):
                    # lifepay.md §11.1, A-9: 498 "Invalid Token" is a rejected
                    # token like 401: TokenCache.call gets a new one once.
                    raise self.provider_error(
                        ProviderAuthError,
                        exc.message,
                        status=498,
                        code=exc.code,
                        provider_message=exc.provider_message,
                        details=exc.details,
                    ) from None
                raise

        return self.tokens.call(call)

    def _ecom_body(
        self, invoice: Invoice, request: HttpRequest | None
    ) -> dict[str, Any]:
        """The ``POST /v1/invoices`` body, every field and limit of lifepay.md
        §11.2 checked first."""
        if invoice.currency not in ("RUB", "EUR", "USD"):
            raise InvalidInput(
                _("currency: Life-Pay ECOM takes RUB, EUR or USD."),
                field="currency",
                provider=self.alias,
            )
        if invoice.amount < 1:
            raise InvalidInput(
                _(
                    "amount: a Life-Pay ECOM invoice is for at least 1 "
                    "(in major units)."
                ),
                field="amount",
                provider=self.alias,
            )
        if "receipt" in invoice.metadata:
            raise meta.invalid(
                "metadata.receipt",
                _("ECOM invoices take no receipt lines; use send_receipt_through."),
            )
        options = meta.lifepay_options(invoice.metadata)
        for key in ("recurrent", "payment_type"):
            if key in options:
                raise meta.invalid(
                    f"metadata.lifepay.{key}",
                    _("exists only for the A1Lite pay form (surface 'a1lite')."),
                )
        body: dict[str, Any] = {
            "order_id": meta.text(
                lifepay_order_id(invoice), "order_id", longest=64, shortest=1
            ),
            "amount": invoice.quantize(invoice.amount),
            "currency_code": invoice.currency,
            "service_id": self.config["service_id"],
            "name": self._name(invoice),
        }
        text = meta.comment(options)
        if text:
            body["comment"] = text
        if invoice.customer_email:
            body["email"] = invoice.customer_email
        if invoice.customer_phone:
            body["phone"] = int(invoice.customer_phone.lstrip("+"))
        if "is_recurrent" in options:
            body["is_recurrent"] = meta.is_recurrent(options)
        if "send_receipt_through" in options:
            body["send_receipt_through"] = meta.receipt_channel(
                options["send_receipt_through"]
            )
        if "recurrent_schedule" in options:
            if not body.get("is_recurrent"):
                raise meta.invalid(
                    "metadata.lifepay.recurrent_schedule",
                    _("needs is_recurrent (the payer's consent)."),
                )
            body["recurrent_schedule"] = meta.schedule(options["recurrent_schedule"])
        split = meta.split_lines(options, invoice.amount)
        if split:
            body["split_data"] = split
        expires = meta.expire_date(options)
        if expires:
            body["expire_date"] = expires
        back = self._return_url(invoice, request)
        if back:
            # lifepay.md §11.2: url_success/url_error at most 255 characters.
            body["url_success"] = meta.text(back, "url_success", longest=255)
            body["url_error"] = body["url_success"]
        return body

    def _ecom_start(self, invoice: Invoice, request: HttpRequest | None) -> Checkout:
        body = self._ecom_body(invoice, request)
        data = self._ecom("POST", "invoices", data=meta.dumps(body).encode("utf-8"))
        if (
            not isinstance(data, Mapping)
            or not data.get("id")
            or not data.get("form_link")
        ):
            raise ProviderResponseError(
                "Life-Pay answered the invoice without id and form_link.",
                provider=self.alias,
            )
        return Checkout(
            method="GET", url=str(data["form_link"]), payment_id=str(data["id"])
        )

    def get_invoice(self, invoice_id: str) -> dict[str, Any]:
        """``GET /v1/invoices/<id>`` (lifepay.md §11.3)."""
        try:
            uuid.UUID(invoice_id)
        except ValueError:
            raise InvalidInput(
                _("A Life-Pay invoice id is a UUID."),
                field="provider_payment_id",
                provider=self.alias,
            ) from None
        data = self._ecom("GET", f"invoices/{invoice_id}")
        if not isinstance(data, Mapping) or "status" not in data:
            raise ProviderResponseError(
                "Life-Pay answered without an invoice.", provider=self.alias
            )
        return dict(data)

    def _ecom_status(self, invoice: Invoice) -> PaymentEvent | None:
        if not invoice.provider_payment_id:
            return None
        data = self.get_invoice(invoice.provider_payment_id)
        state = str(data.get("status"))
        if state not in self.ECOM_STATUSES:
            raise self.provider_error(
                ProviderResponseError, f"Unknown Life-Pay invoice status {state!r}."
            )
        kind = self.ECOM_STATUSES[state]
        if kind is None:
            return None
        currency = str(data.get("currency_code") or invoice.currency)
        amount = None
        if kind in (EventType.PAID, EventType.HELD):
            amount = parse_amount(_number_text(data.get("amount")), currency)
        return PaymentEvent(
            provider=self.alias,
            dedupe_id=f"poll:{data.get('id')}:{state}",
            type=kind,
            invoice_ref=str(invoice.uuid),
            provider_payment_id=str(data.get("id", "")),
            order_id=str(data.get("order_id", "")),
            amount=amount,
            currency=currency,
            reason=state,
            raw=data,
        )

    def _ecom_charge_id(self, invoice: Invoice) -> str:
        """The ``charge_id`` of the ECOM hold on ``invoice`` (lifepay.md §9).

        ASSUMPTION L-6 (ours: the reference does not say where a charge id comes
        from, and the invoice object of §11.2/§11.3 carries none): it is the
        ``tid`` of the invoice's ``funds_blocked`` notification. ECOM invoices
        are paid on the A1Lite pipeline and notify like it (A-5), and §6.2's
        ``tid`` is that pipeline's transaction: the charge. A hold seen only by
        a poll can be captured or released once its notification has arrived.
        """
        from django.db.models import Q

        from ...models import WebhookEvent

        where = Q(invoice=invoice)
        if invoice.provider_payment_id:
            where |= Q(event__provider_payment_id=invoice.provider_payment_id)
        rows = WebhookEvent.objects.filter(
            where, provider=self.alias, event_type=EventType.HELD
        ).order_by("-received_at", "-id")
        for row in rows:
            payload = row.payload if isinstance(row.payload, Mapping) else {}
            tid = str(payload.get("tid", ""))
            if tid.isdigit():  # an integer; it becomes part of a URL path
                return tid
        raise InvalidOperation(
            _(
                "Life-Pay has not yet sent the notification naming this hold's "
                "charge (funds_blocked); try again once it has arrived."
            ),
            provider=self.alias,
        )

    def _ecom_hold(self, invoice: Invoice, *, capture: bool) -> PaymentEvent:
        """Capture (``PATCH``) or void (``DELETE``) an ECOM hold with
        ``services/{service_id}/charges/{charge_id}/blocked`` (lifepay.md §9:
        DELETE from LP-UNBLOCK, PATCH from T-NOTES), and return the event
        Life-Pay's answer confirms."""
        charge_id = self._ecom_charge_id(invoice)
        path = f"services/{self.config['service_id']}/charges/{charge_id}/blocked"
        # No body: without the optional amount the whole hold is taken or
        # voided (ASSUMPTION L-7), the only capture the invoice can record.
        # Never repeated after a lost answer: the repeat would find the hold
        # ended and report an error for an operation that was done.
        data = self._ecom("PATCH" if capture else "DELETE", path, idempotent=False)
        state = data.get("status") if isinstance(data, Mapping) else None
        if state == "error":
            # §9: a refusal is status=error with decline_code and message
            # (ASSUMPTION L-7: with HTTP 200, like charged and voided).
            raise self.provider_error(
                ProviderAPIError,
                _("Life-Pay refused to capture the hold.")
                if capture
                else _("Life-Pay refused to release the hold."),
                status=200,
                code=str(data.get("decline_code") or "error"),
                provider_message=str(data.get("message") or ""),
            )
        if state != ("charged" if capture else "voided"):
            raise self.provider_error(
                ProviderResponseError,
                _("Life-Pay answered the hold's charge with the status %(status)s.")
                % {"status": repr(state)},
            )
        return PaymentEvent(
            provider=self.alias,
            dedupe_id=f"{'capture' if capture else 'release'}:{charge_id}",
            type=EventType.PAID if capture else EventType.CANCELLED,
            invoice_ref=str(invoice.uuid),
            # The invoice's id, which the success notification (invoice_id,
            # A-5) and the poll carry too: their PAID is then a no-op on the
            # paid invoice, never "a second payment".
            provider_payment_id=invoice.provider_payment_id,
            amount=invoice.amount if capture else None,
            currency=invoice.currency,
            reason=_("hold captured") if capture else _("hold released"),
            raw=data,
        )

    @_under_alias
    def update_invoice(self, invoice: Invoice, **changes: Any) -> None:
        """``PATCH /v1/invoices/<id>`` (lifepay.md §11.4) with any of ``email``,
        ``phone``, ``is_recurrent``, ``send_receipt_through``,
        ``recurrent_schedule``; everything is checked before sending, and the
        invoice is updated locally only once Life-Pay has accepted it."""
        if self.surface != ECOM:
            raise NotSupported(
                _("Only ECOM invoices can be changed at Life-Pay."), provider=self.alias
            )
        if not invoice.provider_payment_id:
            raise NotSupported(
                _("The invoice has not been created at Life-Pay yet."),
                provider=self.alias,
            )
        body = self.patch_body(invoice, changes)
        if not body:
            return
        self._ecom(
            "PATCH",
            f"invoices/{invoice.provider_payment_id}",
            data=meta.dumps(body).encode("utf-8"),
        )
        from ...models import Invoice as InvoiceModel

        with transaction.atomic():
            locked = InvoiceModel.objects.select_for_update().get(pk=invoice.pk)
            options = dict(locked.metadata.get("lifepay") or {})
            fields = ["metadata", "updated_at"]
            if "email" in body:
                locked.customer_email = body["email"]
                fields.append("customer_email")
            if "phone" in body:
                locked.customer_phone = str(body["phone"])
                fields.append("customer_phone")
            for key in ("is_recurrent", "send_receipt_through", "recurrent_schedule"):
                if key in body:
                    options[key] = body[key]
            locked.metadata = {**locked.metadata, "lifepay": options}
            locked.save(update_fields=fields)
        invoice.refresh_from_db()

    def admin_forms(self, invoice: Invoice) -> list[AdminForm]:
        """ "Change at Life-Pay" (:mod:`.forms`) for an ECOM invoice created at
        Life-Pay: e-mail, phone, receipt channel, recurrent consent and schedule,
        sent with :meth:`update_invoice`. None for A1Lite, which has no PATCH."""
        if self.surface != ECOM or not invoice.provider_payment_id:
            return []
        return admin_forms.admin_forms(self, invoice)

    def patch_body(
        self, invoice: Invoice, changes: Mapping[str, Any]
    ) -> dict[str, Any]:
        """The validated PATCH body (lifepay.md §11.4)."""
        body: dict[str, Any] = {}
        for key, value in changes.items():
            if key == "email":
                from django.core.exceptions import ValidationError
                from django.core.validators import validate_email

                try:
                    validate_email(value)
                except ValidationError:
                    raise meta.invalid(
                        "email", _("is not an e-mail address.")
                    ) from None
                body["email"] = value
            elif key == "phone":
                digits = str(value).lstrip("+")
                if not digits.isdigit() or len(digits) > 15:
                    raise meta.invalid("phone", _("must be digits, e.g. 79999999999."))
                # lifepay.md §11.4: phone is an integer in PATCH.
                body["phone"] = int(digits)
            elif key == "is_recurrent":
                body["is_recurrent"] = meta.is_recurrent({"is_recurrent": value})
            elif key == "send_receipt_through":
                body["send_receipt_through"] = meta.receipt_channel(
                    value, "send_receipt_through"
                )
            elif key == "recurrent_schedule":
                body["recurrent_schedule"] = meta.schedule(value, "recurrent_schedule")
            else:
                raise meta.invalid(key, _("cannot be changed at Life-Pay."))
        if "recurrent_schedule" in body:
            consent = body.get(
                "is_recurrent",
                (invoice.metadata.get("lifepay") or {}).get("is_recurrent", False),
            )
            if not consent:
                # lifepay.md §11.4: only for invoices with the payer's consent.
                raise meta.invalid(
                    "recurrent_schedule", _("needs is_recurrent (the payer's consent).")
                )
        return body

    def close(self) -> None:
        super().close()
        http = self.__dict__.get("ecom_http")
        if http is not None:
            http.close()


def _number_text(value: Any) -> str:
    # ECOM amounts are JSON numbers, decoded by requests as int/float;
    # their shortest repr is the decimal Life-Pay wrote.
    if isinstance(value, bool) or not isinstance(value, int | float | str):
        return "0"
    return repr(value) if isinstance(value, float) else str(value)


def _moscow_time(value: str) -> datetime:
    try:
        return datetime.strptime(value, "%Y-%m-%d %H:%M:%S").replace(tzinfo=MOSCOW)
    except ValueError:
        return dj_timezone.now()


__all__ = ["Provider", "lifepay_order_id"]
