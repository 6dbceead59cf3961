"""The contract every payment provider implements.

A provider is a small class: identity as class attributes (``slug``,
``display_name``, ``currencies``, ``capabilities``), its options declared in
``options`` and validated at construction, and a handful of hooks. The services
and the webhook view call the hooks; a provider never changes an invoice itself.

The four shapes the contract covers:

* **form POST** (Life-Pay A1Lite): :meth:`BaseProvider.start` returns a
  ``Checkout(method="POST", url=..., fields=...)`` with signed fields and registers
  nothing; webhooks are form-encoded and signed over their fields.
* **token API + redirect** (PayConnect, Love&Pay, the sandbox): ``start`` creates
  the payment through the provider's API (bearer token or signed headers, see
  :mod:`~django_payments_ru.providers.tokens` and
  :mod:`~django_payments_ru.providers.signing`) and returns
  ``Checkout(method="GET", url=payment_url, payment_id=...)``.
* **form API** (QuantaPay): ``start`` posts a form-encoded call and redirects; the
  webhook carries a shared key instead of a signature.
* **signed headers** (Love&Pay v2, the sandbox): HMAC over method, path, timestamp
  and body, with a timestamp window.
"""

from __future__ import annotations

import logging
import re
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from decimal import Decimal
from enum import StrEnum
from types import MappingProxyType
from typing import TYPE_CHECKING, Any, ClassVar, Literal, TypeVar

from django.http import HttpRequest, HttpResponse
from django.urls import reverse
from django.utils import timezone
from django.utils.functional import cached_property
from django.utils.translation import gettext

from ..conf import payments_settings
from ..events import PaymentEvent
from ..exceptions import (
    ConfigurationError,
    InvalidCurrency,
    InvalidInput,
    NotSupported,
    PaymentsError,
    WebhookError,
)

if TYPE_CHECKING:
    from django import forms
    from django.utils.functional import _StrOrPromise

    from ..models import Invoice
    from .http import HttpClient
    from .ratelimit import RateLimiter

logger = logging.getLogger("django_payments_ru")

_E = TypeVar("_E", bound=PaymentsError)


class Capability(StrEnum):
    """What a provider can do besides taking a payment."""

    REFUND = "refund"
    PARTIAL_REFUND = "partial_refund"
    STATUS = "status"  # fetch_status
    BATCH_STATUS = "batch_status"
    CANCEL = "cancel"  # cancel at the provider (else cancel is local only)
    RECURRENT = "recurrent"
    SPLIT = "split"
    HOLD = "hold"  # two-stage: capture() / release()
    #: Prints 54-FZ receipts: the provider sends ``invoice.get_receipt()``'s
    #: lines when it starts a payment and the refund's lines from
    #: ``refund(..., receipt=...)`` (see docs/receipts.rst).
    RECEIPTS = "receipts"


#: The hooks a capability needs: a provider that declares the capability and
#: leaves one of these as the base's ``NotSupported`` fails check E017.
#: RECURRENT and SPLIT are fields of the checkout, not separate calls.
CAPABILITY_HOOKS: dict[Capability, tuple[str, ...]] = {
    Capability.REFUND: ("refund",),
    Capability.PARTIAL_REFUND: ("refund",),
    Capability.STATUS: ("fetch_status",),
    Capability.CANCEL: ("cancel",),
    Capability.HOLD: ("capture", "release"),
    Capability.BATCH_STATUS: ("fetch_statuses",),
}


@dataclass(frozen=True)
class Checkout:
    """How the customer reaches the provider.

    ``method="GET"``: send the browser to ``url`` (a link or a redirect).
    ``method="POST"``: render an auto-submitting form posting ``fields`` to ``url``.
    The template tag and the API both render a Checkout; nothing else decides how
    a customer reaches a provider.
    """

    method: Literal["GET", "POST"]
    url: str
    fields: Mapping[str, str] = field(default_factory=dict)
    #: The provider's payment id, when ``start`` registered a payment.
    payment_id: str = ""
    #: When the provider's payment page stops accepting the payment.
    expires_at: datetime | None = None
    #: A QR code the customer can scan with a phone to pay (an SBP payment, for
    #: example): an image URL (``https:`` or a ``data:image/...`` URL). The pay
    #: button shows it beside the link.
    qr_image: str = ""
    #: The link the QR code encodes (shown as a link under the image).
    qr_payload: str = ""

    def __post_init__(self) -> None:
        if self.method not in ("GET", "POST"):
            raise ValueError("Checkout.method is 'GET' or 'POST'")
        if self.method == "GET" and self.fields:
            raise ValueError("a GET checkout is a plain URL and carries no fields")
        object.__setattr__(
            self,
            "fields",
            MappingProxyType({str(k): str(v) for k, v in self.fields.items()}),
        )

    def has_expired(self) -> bool:
        """Whether the provider's payment page has run out (``expires_at``)."""
        return self.expires_at is not None and self.expires_at <= timezone.now()

    @property
    def is_redirect(self) -> bool:
        return self.method == "GET"

    def to_json(self) -> dict[str, Any]:
        return {
            "method": self.method,
            "url": self.url,
            # Pairs, not an object: PostgreSQL's jsonb would reorder the keys.
            "fields": [[name, value] for name, value in self.fields.items()],
            "payment_id": self.payment_id,
            "expires_at": self.expires_at.isoformat() if self.expires_at else None,
            "qr_image": self.qr_image,
            "qr_payload": self.qr_payload,
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Checkout:
        expires = data.get("expires_at")
        return cls(
            method=data["method"],
            url=data["url"],
            fields=dict(data.get("fields") or {}),
            payment_id=data.get("payment_id", ""),
            expires_at=datetime.fromisoformat(expires) if expires else None,
            qr_image=data.get("qr_image", ""),
            qr_payload=data.get("qr_payload", ""),
        )


_ADMIN_FORM_SLUG = re.compile(r"^[-a-zA-Z0-9_]+$")


@dataclass(frozen=True)
class AdminForm:
    """An extra form a provider offers on an invoice's admin change page.

    Returned by :meth:`BaseProvider.admin_forms`. The invoice admin shows a button
    labelled ``label`` on the change page (to users with the change permission on
    invoices); it opens a page with ``form_class`` filled in from
    ``initial(invoice)``. When the submitted form is valid, the admin calls
    ``handle(invoice, cleaned_data)`` outside any database transaction:

    * it returns a short text for the merchant (or ``None`` for a plain "done"),
      which the admin shows and records in the invoice's history, then goes back
      to the change page;
    * it raises :class:`~django_payments_ru.exceptions.PaymentsError` when the
      change cannot be made: the form is shown again with the error (on the field
      named by :attr:`InvalidInput.field
      <django_payments_ru.exceptions.InvalidInput.field>` when the form has that
      field, else above the form). A handler that is refused saves nothing.

    Example, in a provider::

        def admin_forms(self, invoice):
            return [
                AdminForm(
                    slug="contact",
                    label=gettext_lazy("Change contact"),
                    form_class=ContactForm,
                    initial=lambda invoice: {"email": invoice.customer_email},
                    handle=lambda invoice, data: self.update(invoice, **data),
                )
            ]
    """

    #: Part of the form page's URL: letters, digits, ``-`` and ``_``; unique among
    #: the forms of one invoice.
    slug: str
    #: The button on the change page and the title of the form page.
    label: _StrOrPromise
    #: A :class:`django.forms.Form` subclass, built with ``data`` and ``initial``.
    form_class: type[forms.Form]
    #: ``handle(invoice, cleaned_data) -> str | None``; see above.
    handle: Callable[[Invoice, dict[str, Any]], str | None]
    #: ``initial(invoice) -> dict``: the form's initial values (default: none).
    initial: Callable[[Invoice], dict[str, Any]] | None = None
    #: A sentence shown above the form (default: none).
    help_text: _StrOrPromise = ""

    def __post_init__(self) -> None:
        if not _ADMIN_FORM_SLUG.match(self.slug):
            raise ValueError(
                f"AdminForm.slug {self.slug!r} may hold only letters, digits, "
                "'-' and '_'."
            )

    def initial_for(self, invoice: Invoice) -> dict[str, Any]:
        """The form's initial values for ``invoice``."""
        return dict(self.initial(invoice)) if self.initial is not None else {}


_MISSING = object()


@dataclass(frozen=True)
class ProviderAdminView:
    """A page a provider adds to the admin, once per alias (balances, a batch
    upload, a "the key was re-indexed" button).

    Returned by :meth:`BaseProvider.admin_views`. The invoice admin serves it at
    ``<admin>/django_payments_ru/invoice/provider/<alias>/<slug>/`` (URL name
    ``admin:django_payments_ru_invoice_provider_view``, arguments alias and
    slug), links it from the invoice list, and calls ``view(request,
    provider)`` outside any database transaction, for users with
    ``permission`` (a POST also needs ``django_payments_ru.change_invoice``;
    CSRF is checked by the admin). The view returns a dict, rendered with
    ``template`` (which extends ``admin/django_payments_ru/provider_page.html``
    and fills its ``provider_content`` block) and the admin's context plus
    ``title`` and ``provider``; or an :class:`~django.http.HttpResponse` (a
    redirect after a POST, with :mod:`django.contrib.messages` for the
    feedback).
    """

    #: Part of the page's URL: letters, digits, ``-`` and ``_``.
    slug: str
    #: The link on the invoice list (after the provider's name) and the title.
    title: _StrOrPromise
    #: ``view(request, provider) -> dict | HttpResponse``; see above.
    view: Callable[[HttpRequest, BaseProvider], HttpResponse | dict[str, Any]]
    #: The template a dict answer is rendered with.
    template: str = ""
    #: The permission needed to see the page.
    permission: str = "django_payments_ru.view_invoice"

    def __post_init__(self) -> None:
        if not _ADMIN_FORM_SLUG.match(self.slug):
            raise ValueError(
                f"ProviderAdminView.slug {self.slug!r} may hold only letters, "
                "digits, '-' and '_'."
            )


@dataclass(frozen=True)
class Option:
    """One entry of a provider's ``OPTIONS``."""

    required: bool = True
    default: Any = None
    #: Never logged, shown or stored; checked to be non-empty in production.
    secret: bool = False
    types: tuple[type, ...] = (str,)
    choices: tuple[Any, ...] = ()
    help: str = ""


class BaseProvider:
    """Base class of every provider. Subclasses override the hooks they support.

    Options common to all providers: none; each provider lists its own in
    ``options`` and its class docstring.
    """

    #: Short name, also the package name under ``django_payments_ru.providers``.
    slug: ClassVar[str] = ""
    #: Name shown to customers and merchants.
    display_name: ClassVar[str] = ""
    #: ISO 4217 codes this provider accepts.
    currencies: ClassVar[frozenset[str]] = frozenset({"RUB"})
    capabilities: ClassVar[frozenset[Capability]] = frozenset()
    #: OPTIONS this provider accepts.
    options: ClassVar[dict[str, Option]] = {}
    #: Keys removed from webhook payloads before they are stored (shared secrets
    #: that some providers put in the body, signatures).
    secret_payload_keys: ClassVar[frozenset[str]] = frozenset()
    #: Largest amount the provider takes, per currency (checked before sending).
    max_amounts: ClassVar[dict[str, Decimal]] = {}
    #: Whether ``provider_payment_id`` names one payment attempt, a new one at
    #: each start (PayConnect, the sandbox): the services then treat a failure
    #: or expiry of an attempt that is no longer the invoice's current one as
    #: stale (recorded, never applied), so it cannot fail the newer attempt.
    payment_per_attempt: ClassVar[bool] = False
    #: How long the provider's payment session lasts after a start, when its
    #: answer does not say (``Checkout.expires_at``): past it, the expiry job
    #: asks the provider and expires an unpaid invoice. ``None``: unknown.
    session_lifetime: ClassVar[timedelta | None] = None
    #: Whether a webhook must be confirmed through the provider's API before it
    #: is applied (:meth:`confirm_event`): its body proves nothing by itself.
    confirms_webhooks: ClassVar[bool] = False
    #: Why a capability is not offered, shown by the admin where its action
    #: would be (``{Capability.REFUND: _("Refunds are ...")}``).
    capability_notes: ClassVar[Mapping[Capability, str]] = {}

    # --- what the docs' feature matrix shows (generated from these) ---------

    #: How the customer gets to the provider: ``"redirect"`` or ``"POST form"``.
    checkout_kind: ClassVar[str] = "redirect"
    #: How incoming webhooks are authenticated, in a few words.
    webhook_auth: ClassVar[str] = ""
    #: The concrete classes an alias of this provider becomes, chosen by its
    #: options (Life-Pay: one per surface); empty when it is this class.
    surfaces: ClassVar[tuple[type[BaseProvider], ...]] = ()
    #: The surface's name in the docs ("A1Lite"), for a class in ``surfaces``.
    surface_label: ClassVar[str] = ""
    #: Dotted path of the provider's emulator module (its ``urlpatterns`` and an
    #: ``emulator``, an instance of
    #: :class:`django_payments_ru.emulator.base.Emulator`), or ``""``. Imported
    #: only when ``django_payments_ru.emulator`` is installed.
    emulator: ClassVar[str] = ""

    def __init__(self, alias: str, options: Mapping[str, Any]) -> None:
        self.alias = alias
        errors = self.check_options(alias, options)
        if errors:
            raise ConfigurationError(errors[0])
        self.config: dict[str, Any] = {
            name: options.get(name, spec.default) for name, spec in self.options.items()
        }

    def __repr__(self) -> str:  # never shows option values: some are secrets
        return f"<{type(self).__name__} alias={self.alias!r}>"

    # --- options ------------------------------------------------------------

    @classmethod
    def check_options(cls, alias: str, options: Mapping[str, Any]) -> list[str]:
        """Every problem with ``options``, each naming the exact setting."""
        where = f"PAYMENTS_RU['PROVIDERS'][{alias!r}]['OPTIONS']"
        errors = []
        for name in sorted(set(options) - set(cls.options)):
            known = ", ".join(sorted(cls.options)) or "none"
            errors.append(
                f"Unknown option {name!r} in {where} for {cls.__name__} "
                f"(known options: {known})."
            )
        for name, spec in cls.options.items():
            value = options.get(name, _MISSING)
            if value is _MISSING:
                if spec.required:
                    errors.append(
                        f"{cls.__name__} needs {where}[{name!r}]"
                        + (f": {spec.help}" if spec.help else ".")
                    )
                continue
            if value is None and not spec.required:
                continue
            if spec.types and not isinstance(value, spec.types):
                names = " or ".join(t.__name__ for t in spec.types)
                errors.append(f"{where}[{name!r}] must be of type {names}.")
            elif spec.choices and value not in spec.choices:
                allowed = ", ".join(repr(c) for c in spec.choices)
                errors.append(f"{where}[{name!r}] must be one of {allowed}.")
        return errors

    @classmethod
    def secret_option_names(cls) -> list[str]:
        return [name for name, spec in cls.options.items() if spec.secret]

    def secrets(self) -> list[str]:
        """Secret option values, for redaction of logs and errors."""
        values: list[str] = []
        for name in self.secret_option_names():
            value = self.config.get(name)
            if isinstance(value, str) and value:
                values.append(value)
            elif isinstance(value, list | tuple):
                values.extend(v for v in value if isinstance(v, str) and v)
        return values

    def supports(self, capability: Capability) -> bool:
        """Whether this alias can do ``capability`` (see
        :meth:`enabled_capabilities`): what the services, the admin and the
        template tag ask before offering an operation."""
        return capability in self.enabled_capabilities()

    def enabled_capabilities(self) -> frozenset[Capability]:
        """What this alias can do with its options: the class's
        ``capabilities`` (everything it implements), less what the options rule
        out. A provider whose options take a capability away overrides it."""
        return self.capabilities

    @classmethod
    def missing_hooks(cls) -> list[tuple[Capability, str]]:
        """Each declared capability whose hook is still the base's, with the
        hook's name: a capability the class claims but does not implement."""
        return [
            (capability, hook)
            for capability in sorted(cls.capabilities)
            for hook in CAPABILITY_HOOKS.get(capability, ())
            if getattr(cls, hook, None) is getattr(BaseProvider, hook, None)
        ]

    # --- validation before anything is sent ---------------------------------

    def validate_invoice(self, invoice: Invoice) -> None:
        """Refuse an invoice this provider cannot take, before it is saved or
        sent. Subclasses extend it with their own limits (and call super)."""
        if invoice.currency not in self.currencies:
            raise InvalidCurrency(
                f"{self.display_name} does not accept {invoice.currency}; it "
                f"accepts {', '.join(sorted(self.currencies))}.",
                field="currency",
                provider=self.alias,
            )
        limit = self.max_amounts.get(invoice.currency)
        if limit is not None and invoice.amount > limit:
            raise InvalidInput(
                f"{self.display_name} takes at most {limit} {invoice.currency} in "
                f"one payment; this invoice is for {invoice.amount}.",
                field="amount",
                provider=self.alias,
            )

    # --- the hooks ----------------------------------------------------------

    def _not_implemented(self, method: str) -> NotImplementedError:
        return NotImplementedError(
            f"{type(self).__name__} must implement {method}() "
            f"(provider alias {self.alias!r})."
        )

    def start(
        self, invoice: Invoice, request: HttpRequest | None = None, *, key: str = ""
    ) -> Checkout:
        """Register the payment with the provider if its API does that, and return
        how the customer gets there. Called by
        :func:`~django_payments_ru.services.start_payment`, outside any database
        transaction, once at a time per invoice (the services hold a lease).

        ``key`` is the idempotency key of the services' claim on this start: a
        provider whose API takes an idempotency key sends it, so that a start
        retried after a timeout finds the payment the first try made. Every
        operation hook below takes the same ``key``."""
        raise self._not_implemented("start")

    def verify_webhook(self, request: HttpRequest) -> None:
        """Raise :class:`~django_payments_ru.exceptions.WebhookVerificationError`
        unless the request is provably from the provider. Works on the raw body
        bytes, compares in constant time, checks timestamps both ways where the
        scheme has them, accepts every active secret during a rotation. Nothing is
        written to the database before this passes."""
        raise self._not_implemented("verify_webhook")

    def parse_webhook(self, request: HttpRequest) -> list[PaymentEvent]:
        """The normalized events of a verified webhook (usually one). Raises
        :class:`~django_payments_ru.exceptions.WebhookParseError` for content it
        cannot understand."""
        raise self._not_implemented("parse_webhook")

    def webhook_response(
        self, request: HttpRequest, events: list[PaymentEvent]
    ) -> HttpResponse:
        """The provider's documented acknowledgement of an accepted webhook."""
        return HttpResponse("OK", content_type="text/plain")

    def webhook_error_response(
        self, request: HttpRequest, error: WebhookError
    ) -> HttpResponse:
        """The answer to a webhook refused by verification or parsing."""
        return HttpResponse(
            error.code, status=error.http_status, content_type="text/plain"
        )

    def confirm_event(self, event: PaymentEvent) -> PaymentEvent:
        """Confirm a webhook's event through the provider's API, for a provider
        whose webhooks prove nothing by themselves (``confirms_webhooks =
        True``: a body without a signature, a shared key sent in clear).

        The services call it for every event parsed from a webhook (never for
        polls or API answers), outside any database transaction, after the
        event is stored and before it is applied, and apply the event it
        returns: typically rebuilt from the API's answer (its amount, currency
        and reference), with the same ``dedupe_id``. The same runs when a
        stored event is processed again.

        Raise :class:`~django_payments_ru.exceptions.EventNotConfirmed` when
        the API contradicts the webhook: the event is rejected with the message
        and the invoice it names is flagged. Raise a
        :class:`~django_payments_ru.exceptions.ProviderError` when the API
        cannot be asked: the event stays stored as failed, retriable (the next
        delivery, the admin's "reprocess", a status refresh pays the invoice
        meanwhile), and the webhook is answered as failed."""
        return event

    def payment_id(self, invoice: Invoice) -> str:
        """``invoice``'s payment at the provider, for a call about it (a refund):
        :class:`~django_payments_ru.exceptions.NotSupported` before any request
        when none is known (a payment never registered, a notification that
        carried no id), instead of a request to a path with an empty id that
        the provider can only refuse."""
        if not invoice.provider_payment_id:
            raise NotSupported(
                gettext("No %(name)s payment is known for this invoice yet.")
                % {"name": self.display_name},
                provider=self.alias,
            )
        return invoice.provider_payment_id

    def fetch_status(self, invoice: Invoice) -> PaymentEvent | None:
        """Ask the provider where the payment stands (``None`` = nothing known)."""
        raise NotSupported(
            f"{self.display_name} cannot be asked for a payment's status.",
            provider=self.alias,
        )

    def fetch_statuses(self, invoices: Iterable[Invoice]) -> list[PaymentEvent]:
        """Where many invoices' payments stand, in as few calls as the
        provider allows (a list of its pending payments instead of one call
        per invoice): the events of those that changed, in any order.
        Optional: declare ``Capability.BATCH_STATUS``. Called by
        :func:`~django_payments_ru.services.refresh_invoices` with this
        alias's invoices, outside any transaction."""
        raise NotSupported(
            f"{type(self).__name__} cannot ask for many statuses at once",
            provider=self.alias,
        )

    def recover_start(self, invoice: Invoice, key: str) -> Checkout | None:
        """An earlier :meth:`start` of ``invoice`` with claim ``key`` ended
        without an answer (a timeout, a process that died): return the payment it
        may have created at the provider, so that no second one is created, or
        ``None`` when there is none. Providers whose creates take an idempotency
        key need not override this: sending the same ``key`` again finds the same
        payment."""
        return None

    def refund(
        self, invoice: Invoice, amount: Decimal, *, key: str = ""
    ) -> PaymentEvent | None:
        """Return ``amount`` to the customer. Returns the REFUNDED event when the
        provider confirms at once, ``None`` when a webhook will confirm later.

        A provider with :attr:`Capability.RECEIPTS` takes one more keyword,
        ``receipt: Receipt | None = None``
        (:class:`django_payments_ru.receipts.Receipt`): the lines refunded
        (every line not yet refunded by default, a subset for a partial
        refund), validated against what was paid before this is called, and
        sent where the provider's API takes them.
        :func:`~django_payments_ru.services.refund_invoice` passes it only to
        providers that declare the capability and only for an invoice with a
        receipt, so the others keep this signature."""
        raise NotSupported(
            f"{self.display_name} does not support refunds.", provider=self.alias
        )

    def cancel(self, invoice: Invoice, *, key: str = "") -> PaymentEvent | None:
        """Cancel an unpaid payment at the provider. Providers without
        :attr:`Capability.CANCEL` leave this alone: the invoice is cancelled locally
        and a late payment is still applied and flagged."""
        return None

    def capture(
        self, invoice: Invoice, amount: Decimal | None = None, *, key: str = ""
    ) -> PaymentEvent | None:
        """Take held funds (two-stage payments)."""
        raise NotSupported(
            f"{self.display_name} does not support holds.", provider=self.alias
        )

    def release(self, invoice: Invoice, *, key: str = "") -> PaymentEvent | None:
        """Release held funds (two-stage payments)."""
        raise NotSupported(
            f"{self.display_name} does not support holds.", provider=self.alias
        )

    # --- the admin ------------------------------------------------------------

    def admin_forms(self, invoice: Invoice) -> list[AdminForm]:
        """Extra forms the invoice admin offers for ``invoice`` (default: none).

        Override to let merchants change provider-specific things from the
        invoice's change page, e.g. a contact or a schedule kept at the provider:
        each :class:`AdminForm` becomes a button there and a page with its form.
        Called on every display of the change page and of the form page: decide
        from the invoice and the options only, without calling the provider.
        """
        return []

    # --- shared helpers -----------------------------------------------------

    def admin_views(self) -> list[ProviderAdminView]:
        """The pages this alias adds to the admin (see
        :class:`ProviderAdminView`); none by default."""
        return []

    def health(self) -> list[str]:
        """Problems the merchant must act on now (a blocked API key), each a
        sentence saying what to do. Shown on the admin's invoice list and on
        the pages of this alias's invoices, and by ``manage.py check`` as
        warning ``payments_ru.W004``. Cheap: a cache read, never a call to the
        provider. None by default."""
        return []

    def redact_payload(self, payload: Any) -> Any:
        """``payload`` without :attr:`secret_payload_keys`, at any depth."""
        if isinstance(payload, Mapping):
            return {
                k: (
                    "[redacted]"
                    if k in self.secret_payload_keys
                    else self.redact_payload(v)
                )
                for k, v in payload.items()
            }
        if isinstance(payload, list | tuple):
            return [self.redact_payload(v) for v in payload]
        return payload

    def redact(self, text: str) -> str:
        """``text`` with this provider's secrets replaced by ``[redacted]``:
        every :meth:`secrets` value and every token its HTTP clients learned
        (:meth:`HttpClient.add_secret
        <django_payments_ru.providers.http.HttpClient.add_secret>`)."""
        from .http import HttpClient, redact_secrets

        # Every client built so far (cached properties such as ``http``): a
        # provider with two APIs has two, each with its own tokens.
        for client in list(vars(self).values()):
            if isinstance(client, HttpClient):
                text = client.redact_own(text)
        return redact_secrets(text, self.secrets())

    def provider_error(self, cls: type[_E], message: str, **kwargs: Any) -> _E:
        """An error of class ``cls`` about the provider's answer, for the
        answers a provider reads itself (an HTTP 200 carrying an error, an
        unknown status): its message, the provider's code and message and its
        details are redacted with :meth:`redact`, as
        :meth:`HttpClient.error_for
        <django_payments_ru.providers.http.HttpClient.error_for>` does for
        refused HTTP answers. ``raise self.provider_error(ProviderAPIError,
        "...", code=..., provider_message=...)``."""
        kwargs.setdefault("provider", self.alias)
        return cls(message, **kwargs).redact(self.redact)

    def absolute_url(self, path: str, request: HttpRequest | None = None) -> str:
        base = payments_settings.BASE_URL
        if base:
            return base.rstrip("/") + path
        if request is not None:
            return request.build_absolute_uri(path)
        raise ConfigurationError(
            "Set PAYMENTS_RU['BASE_URL'] (e.g. 'https://shop.example.com'): "
            "absolute webhook and return URLs cannot be built outside a request "
            "without it."
        )

    def webhook_url(self, request: HttpRequest | None = None) -> str:
        """Where this provider alias posts its webhooks."""
        return self.absolute_url(
            reverse("django_payments_ru:webhook", kwargs={"alias": self.alias}),
            request,
        )

    def return_url(self, invoice: Invoice, request: HttpRequest | None = None) -> str:
        """Where the provider sends the customer back (our return view)."""
        return self.absolute_url(
            reverse("django_payments_ru:return", kwargs={"ref": invoice.uuid}),
            request,
        )

    # --- HTTP ---------------------------------------------------------------

    #: Option holding the API base URL (``None``: the provider makes no calls).
    base_url_option: ClassVar[str | None] = "base_url"

    # --- the provider's own time ---------------------------------------------

    #: The current Unix time of the provider's own timing (signed timestamps,
    #: rate limits, session lifetimes): a class attribute a test replaces.
    clock: Callable[[], float] = staticmethod(time.time)
    #: How the provider waits (rate limits, the HTTP client's backoff); a test
    #: replaces it. ``None``: the HTTP client's own wait, and ``time.sleep``.
    sleep: Callable[[float], None] | None = None

    def _now(self) -> float:
        return type(self).clock()

    def _sleep(self, seconds: float) -> None:
        (type(self).sleep or time.sleep)(seconds)

    def rate_limiter(
        self, key: str, limit: int | None, *, period: float, per: str
    ) -> RateLimiter | None:
        """The shared limiter of a documented "at most ``limit`` requests
        ``per`` period" (``per``: "a minute"), counted in the cache under
        ``<slug>:<key>`` by every process: the key says who the provider counts
        (an API key, a host). It waits at most ``HTTP_MAX_RETRY_AFTER``
        seconds for the window. ``None`` when ``limit`` is (no limit)."""
        from .ratelimit import RateLimiter

        if not limit:
            return None
        return RateLimiter(
            f"{self.slug}:{key}",
            limit=limit,
            period=period,
            max_wait=lambda: float(payments_settings.HTTP_MAX_RETRY_AFTER),
            clock=self._now,
            sleep=self._sleep,
            service=self.display_name,
            provider=self.alias,
            describe=f"at most {limit} requests {per}",
        )

    def make_http_client(self, **overrides: Any) -> HttpClient:
        """A client for this provider's calls: the settings' timeout, retries
        and Retry-After ceiling, the provider's secrets redacted, its error
        envelope read by :meth:`parse_error`, its backoff through
        :attr:`sleep` when the class sets one. ``overrides`` are passed on to
        :class:`~.http.HttpClient` (``base_url`` for a second API, ``sleep``...).
        """
        from .http import HttpClient

        if type(self).sleep is not None:
            overrides.setdefault("sleep", self._sleep)

        if "base_url" not in overrides:
            if not self.base_url_option:
                raise NotSupported(
                    f"{self.display_name} makes no API calls.", provider=self.alias
                )
            overrides["base_url"] = self.config[self.base_url_option]
        timeout = payments_settings.HTTP_TIMEOUT
        kwargs: dict[str, Any] = {
            "provider": self.alias,
            "timeout": tuple(timeout) if isinstance(timeout, list | tuple) else timeout,
            "retries": payments_settings.HTTP_RETRIES,
            "max_retry_after": payments_settings.HTTP_MAX_RETRY_AFTER,
            "secrets": self.secrets(),
            "error_parser": self.parse_error,
        }
        return HttpClient(**{**kwargs, **overrides})

    @cached_property
    def http(self) -> HttpClient:
        client = self.make_http_client()
        if client.also_redact is None:
            # Its errors are redacted with everything the provider knows: a
            # provider with a second API (Life-Pay ECOM) learns tokens there.
            client.also_redact = self.redact
        return client

    def parse_error(self, status: int, body: Any) -> tuple[str, str, dict[str, Any]]:
        """Read the provider's error envelope: ``(code, message, details)``.
        ``body`` is the decoded JSON, or the text when it is not JSON."""
        if isinstance(body, Mapping):
            error = body.get("error", body)
            if isinstance(error, Mapping):
                return (
                    str(error.get("code", "")),
                    str(error.get("message", "")),
                    dict(error),
                )
            return "", str(error), {}
        return "", str(body)[:200], {}

    def close(self) -> None:
        http = self.__dict__.get("http")
        if http is not None:
            http.close()
