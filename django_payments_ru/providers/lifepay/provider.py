"""Life-Pay: what both surfaces share (reference: ``lifepay.md``).

An alias is one of two surfaces, chosen by its ``surface`` option; the public
class :class:`Provider` (the ``BACKEND``) builds the surface's class:

* ``"a1lite"``: :class:`~.a1lite.A1LiteProvider`, the signed pay form and the
  "alba" server calls (§3 to §5);
* ``"ecom"``: :class:`~.ecom.EcomProvider`, the ECOM invoices API (§11).

Here: the options and their checks, the invoice's name and order id, the error
envelope, the end of a hold as an event, and the notifications, which are the
same on both surfaces (ASSUMPTION A-5; read by :mod:`.notifications`).
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Mapping
from decimal import Decimal
from typing import TYPE_CHECKING, Any, ClassVar, TypeVar, cast

from django.http import HttpRequest
from django.utils.translation import gettext as _

from ...events import EventType, PaymentEvent
from ...exceptions import InvalidInput, NotSupported, ProviderResponseError
from ...money import parse_amount
from ..base import BaseProvider, Option
from ..payload import load_form, webhook_parsing
from . import metadata as meta
from . import notifications
from .signature import all_secrets

if TYPE_CHECKING:
    from django.utils.functional import _StrPromise

    from ...models import Invoice

A1LITE = "a1lite"
ECOM = "ecom"


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

    ``Provider(alias, options)`` returns an instance of the surface's class
    (:attr:`surfaces`), each a subclass of this one.

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
    # The class-level summary of both surfaces (the docs' feature matrix row);
    # an alias is always one surface, whose own attributes are exact.
    # ``capabilities`` and ``currencies`` are the surfaces' union, set in
    # ``__init__.py`` once both classes exist.
    checkout_kind = "POST form (A1Lite) or redirect (ECOM)"
    webhook_auth = notifications.WEBHOOK_AUTH
    emulator = "django_payments_ru.providers.lifepay.emulator"
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
    #: The ``surface`` option value of a surface class.
    surface_option: ClassVar[str] = ""

    def __new__(
        cls, alias: str = "", options: Mapping[str, Any] | None = None
    ) -> Provider:
        # The public class stands for both surfaces: build the one the options
        # name. An unknown surface stays this class, whose check_options (in
        # __init__) names the setting and its choices. (The defaults let copy
        # and pickle call __new__ on a surface class without arguments.)
        surface = cls.surface_class(options or {}) if cls.surfaces else None
        return super().__new__(surface or cls)

    # --- options ------------------------------------------------------------

    @classmethod
    def surface_class(cls, options: Mapping[str, Any]) -> type[Provider] | None:
        """The class an alias with ``options`` is: among :attr:`surfaces` for
        the public class, ``cls`` itself for a surface class; ``None`` when the
        ``surface`` option names none of them."""
        wanted = options.get("surface", A1LITE)
        candidates = cls.surfaces or (cls,)
        for candidate in candidates:
            if issubclass(candidate, Provider) and candidate.surface_option == wanted:
                return candidate
        return None

    @classmethod
    def check_options(cls, alias: str, options: Mapping[str, Any]) -> list[str]:
        errors = super().check_options(alias, options)
        if errors:
            return errors
        where = f"PAYMENTS_RU['PROVIDERS'][{alias!r}]['OPTIONS']"
        surface = cls.surface_class(options)
        if surface is None:
            # A surface class configured with the other surface's option.
            return [
                f"{where}['surface'] is {options.get('surface', A1LITE)!r}, but "
                f"{cls.__name__} is the {cls.surface_label} surface: use "
                "django_payments_ru.providers.lifepay.Provider as the BACKEND."
            ]
        version = options.get("signature_version", "2.0")
        errors += surface.surface_errors(where, options)
        for name in surface.needed_options(version):
            if options.get(name) in (None, ""):
                errors.append(
                    f"{cls.__name__} with surface {surface.surface_option!r} and "
                    f"signature {version} needs {where}[{name!r}]."
                )
        return errors

    @classmethod
    def needed_options(cls, version: str) -> list[str]:
        """The options the surface needs with signature ``version``."""
        return []

    @classmethod
    def surface_errors(cls, where: str, options: Mapping[str, Any]) -> list[str]:
        """The surface's own refusals of ``options`` (besides missing ones)."""
        return []

    @property
    def version(self) -> str:
        return str(self.config["signature_version"])

    def secret_keys(self) -> list[str]:
        return all_secrets(
            self.config["secret_key"], self.config["previous_secret_keys"]
        )

    def notification_url(self) -> str:
        """The webhook URL notifications are signed over (ASSUMPTION A-4): the
        option, else this alias's webhook URL under ``BASE_URL``; never the
        request's Host header."""
        return str(self.config["webhook_url"] or self.webhook_url())

    # --- checkout -------------------------------------------------------------

    @_under_alias
    def validate_invoice(self, invoice: Invoice) -> None:
        super().validate_invoice(invoice)
        # Every limit is checked by building what start() would send.
        self.checkout_data(invoice, None)

    def checkout_data(
        self, invoice: Invoice, request: HttpRequest | None
    ) -> dict[str, Any]:
        """What :meth:`start` sends for ``invoice``, every limit checked: the
        A1Lite form fields or the ECOM invoice body."""
        raise self._not_implemented("checkout_data")

    #: ``metadata["lifepay"]`` keys only the other surface takes, and what
    #: they are told (lifepay.md §3.2, §8, §11.2).
    foreign_keys: ClassVar[tuple[str, ...]] = ()
    foreign_refusal: ClassVar[_StrPromise | str] = ""

    def lifepay_options(self, invoice: Invoice) -> dict[str, Any]:
        """``metadata["lifepay"]``, refusing the other surface's keys."""
        options = meta.lifepay_options(invoice.metadata)
        for key in self.foreign_keys:
            if key in options:
                raise meta.invalid(f"metadata.lifepay.{key}", str(self.foreign_refusal))
        return options

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

    # --- notifications (§6; the same on both surfaces, A-5) --------------------

    def verify_webhook(self, request: HttpRequest) -> None:
        notifications.verify(
            notifications.form_fields(request, alias=self.alias),
            alias=self.alias,
            version=self.version,
            secrets=self.secret_keys(),
            url=self.notification_url(),
            service_id=self.config["service_id"],
        )

    def parse_webhook(self, request: HttpRequest) -> list[PaymentEvent]:
        # Django's form parser quietly replaces bytes that are not UTF-8 and
        # keeps %00: the shared form check refuses both, and control characters,
        # in any field; webhook_parsing turns what the fields still hold (an
        # unknown currency, an amount that is not a number) into a parse error.
        load_form(request.body, provider=self.alias)
        fields = notifications.form_fields(request, alias=self.alias)
        with webhook_parsing(self.alias):
            return [self.event_from_notification(fields)]

    def event_from_notification(self, fields: Mapping[str, str]) -> PaymentEvent:
        """The event of one verified notification (lifepay.md §6.2, §6.3)."""
        return notifications.parse(fields, alias=self.alias, version=self.version)

    # --- server calls ---------------------------------------------------------

    def parse_error(self, status: int, body: Any) -> tuple[str, str, dict[str, Any]]:
        # lifepay.md §5 (alba) and §11.6 / A-11 (ECOM): {status, code?, msg|message}.
        if isinstance(body, Mapping):
            code = body.get("code") or body.get("status") or ""
            message = body.get("message") or body.get("msg") or ""
            return str(code), str(message), {}
        return super().parse_error(status, body)

    def poll_event(
        self,
        invoice: Invoice,
        data: Mapping[str, Any],
        *,
        statuses: Mapping[str, EventType | None],
        state: str,
        noun: str,
        payment_id: str,
        amount: str,
        currency: str,
        transaction_id: str = "",
        reason: str = "",
    ) -> PaymentEvent | None:
        """The event of a status answer ``data`` in ``state`` (``statuses`` say
        what each state means; ``None``: nothing new). ``amount`` and
        ``transaction_id`` count for a payment or a hold only."""
        if state not in statuses:
            raise self.provider_error(
                ProviderResponseError, f"Unknown Life-Pay {noun} status {state!r}."
            )
        kind = statuses[state]
        if kind is None:
            return None
        money = kind in (EventType.PAID, EventType.HELD)
        return PaymentEvent(
            provider=self.alias,
            # Polls of the same state share an id, so they apply once.
            dedupe_id=f"poll:{payment_id}:{state}",
            type=kind,
            invoice_ref=str(invoice.uuid),
            provider_payment_id=payment_id,
            order_id=str(data.get("order_id", "")),
            transaction_id=transaction_id if money else "",
            amount=parse_amount(amount, currency) if money else None,
            currency=currency,
            reason=reason or state,
            raw=data,
        )

    # --- holds (§9) -------------------------------------------------------------

    def capture(
        self, invoice: Invoice, amount: Decimal | None = None, *, key: str = ""
    ) -> PaymentEvent | None:
        # ``key`` is not sent: neither alba/process_funds_blocked/ (§5) nor the
        # ECOM charges endpoint (§9) takes an idempotency key.
        if amount is not None and amount != invoice.amount:
            # The invoice records one paid amount; a partial capture would
            # never match it.
            raise InvalidInput(
                _("Life-Pay holds can only be captured in full (%(amount)s).")
                % {"amount": invoice.amount},
                field="amount",
                provider=self.alias,
            )
        return self.end_hold(invoice, capture=True)

    def release(self, invoice: Invoice, *, key: str = "") -> PaymentEvent | None:
        # ``key`` is not sent (see capture).
        return self.end_hold(invoice, capture=False)

    def end_hold(self, invoice: Invoice, *, capture: bool) -> PaymentEvent:
        """Capture or release the hold on ``invoice`` at Life-Pay: the surface's
        call, answered with :meth:`hold_ended`."""
        raise self._not_implemented("end_hold")

    def hold_ended(
        self,
        invoice: Invoice,
        *,
        capture: bool,
        charge: str,
        payment_id: str,
        raw: Mapping[str, Any],
    ) -> PaymentEvent:
        """The event of a capture (PAID) or release (CANCELLED) that Life-Pay
        confirmed for the hold ``charge`` (a tid)."""
        return PaymentEvent(
            provider=self.alias,
            dedupe_id=f"{'capture' if capture else 'release'}:{charge}",
            type=EventType.PAID if capture else EventType.CANCELLED,
            invoice_ref=str(invoice.uuid),
            provider_payment_id=payment_id,
            transaction_id=charge,
            amount=invoice.amount if capture else None,
            currency=invoice.currency,
            reason=_("hold captured") if capture else _("hold released"),
            raw=raw,
        )

    # --- extras -------------------------------------------------------------------

    def update_invoice(self, invoice: Invoice, **changes: Any) -> None:
        """Change an invoice at Life-Pay: ECOM only (:class:`~.ecom.EcomProvider`,
        lifepay.md §11.4); A1Lite has no such call."""
        raise NotSupported(
            _("Only ECOM invoices can be changed at Life-Pay."), provider=self.alias
        )


__all__ = ["A1LITE", "ECOM", "Provider", "lifepay_order_id"]
