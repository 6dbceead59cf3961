"""The base class of every provider emulator.

An emulator is a module (``django_payments_ru/providers/<slug>/emulator.py``
for the built-in providers) exposing two names: ``emulator`` (an instance of an
:class:`Emulator` subclass) and ``urlpatterns`` (served under
``emulator/<slug>/``, URL namespace ``payments_ru_emulator:<slug>``). Its
provider class names it (``emulator = "<dotted path of the module>"``), or
``PAYMENTS_RU_EMULATOR["EMULATORS"]`` lists it (see :mod:`.registry`). A
minimal one::

    class MyEmulator(Emulator):
        slug = "myprovider"
        display_name = "My provider"
        options = {"api_keys": REQUIRED, "webhook_secret": REQUIRED}

    emulator = MyEmulator()

    @emulator.endpoint("create", methods=("POST",), idempotent=True)
    def create(request):
        body = emulator.json_body(request)  # or emulator.error(...)
        ...
        payment = EmulatedPayment.objects.create(slug=emulator.slug, ...)
        return JsonResponse({...}, status=201)

    urlpatterns = [
        path("api/payments", create, name="create"),
        ...,
        path("pay/<str:payment_id>/", emulator.pay_page_view(), name="pay"),
    ]

What the base gives:

* :attr:`Emulator.config`: ``settings.PAYMENTS_RU_EMULATOR[slug]`` merged over
  the declared :attr:`~Emulator.options` and the common ones (``faults``,
  ``rate_limits``, ``idempotency_ttl``, ``webhook_retry_schedule``), read at
  every access, so ``override_settings`` works. Unknown or missing keys raise
  :class:`~django_payments_ru.exceptions.ConfigurationError` naming the setting.
* :meth:`Emulator.error`: the provider's error envelope (override
  :meth:`~Emulator.error_body`; the default is ``{"error": {"code",
  "message", ...}}``).
* :meth:`Emulator.endpoint`: a view decorator doing, in order: the provider's
  documented rate limits (:meth:`~Emulator.documented_limits`, counting every
  call), the method check, fault injection (:mod:`.faults`), authentication
  (:meth:`~Emulator.authenticate`, by default an API key from
  :meth:`~Emulator.api_key` against ``config["api_keys"]``), the configured
  ``rate_limits``, idempotency (:mod:`.idempotency`, key from
  :meth:`~Emulator.idempotency_key`), the view, and a fault set to hit ``after``.
  Both kinds of limit go through one limiter (:mod:`.limits`,
  :meth:`~Emulator.throttle`).
* :meth:`Emulator.send_webhook`: a signed webhook stored as a
  :class:`~.models.WebhookDelivery` and posted after the commit, retried by
  ``manage.py emulator_deliver_webhooks`` on :attr:`~Emulator.webhook_schedule`;
  :meth:`~Emulator.prepare_retry` may re-sign or rewrite a retry.
* Pending payments: a payment whose status is in
  :attr:`~Emulator.pending_statuses` waits for the customer. Past its
  ``expires_at`` it expires when it is next read (:meth:`~Emulator.expire_if_due`
  calls the provider's :meth:`~Emulator.expire`), and
  :meth:`~Emulator.locked_pending` gives it locked, or refuses it once it no
  longer waits.
* :meth:`Emulator.pay_page`: the hosted pay page (``payments_ru_emulator/pay.html``)
  with the buttons of :meth:`~Emulator.pay_actions` (by default
  :attr:`~Emulator.pending_actions` while pending). A pressed button runs
  :meth:`~Emulator.perform_action`: under :meth:`~Emulator.locked_pending`,
  :meth:`~Emulator.act` calls ``on_<button>(request, payment)`` (``on_expire``
  is :meth:`~Emulator.expire`), so an emulator writes only the state changes.
  The browser then goes to the URL the action returns, or to
  :meth:`~Emulator.return_location` (the payment's ``return_url``, or a small
  "done" page). :meth:`~Emulator.pay_page_view` is the page's view.
"""

from __future__ import annotations

import json
import secrets as _secrets
import threading
from collections.abc import (
    Callable,
    Collection,
    Iterable,
    Iterator,
    Mapping,
    Sequence,
)
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass
from decimal import Decimal
from functools import wraps
from typing import TYPE_CHECKING, Any, ClassVar

from django.conf import settings as django_settings
from django.db import transaction
from django.http import Http404, HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import render
from django.urls import reverse
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy
from django.views.decorators.csrf import csrf_exempt

from ..exceptions import ConfigurationError
from ..money import format_amount
from ..providers.signing import constant_time_equals
from . import clock, faults, idempotency, limits, webhooks
from .apps import SETTING_NAME
from .models import EmulatedPayment, WebhookDelivery

if TYPE_CHECKING:
    import requests
    from django.utils.functional import _StrOrPromise


View = Callable[..., HttpResponse]

#: Marks an option without a default: the setting must name it.
REQUIRED: Any = object()

#: Options every emulator accepts.
COMMON_OPTIONS: dict[str, Any] = {
    "faults": {},
    "rate_limits": [],
    "idempotency_ttl": 24 * 3600,
    # Seconds between webhook retries; None: the emulator's own schedule.
    "webhook_retry_schedule": None,
}


class EmulatorError(Exception):
    """Raised inside a view to answer with the emulator's error envelope."""

    def __init__(self, status: int, code: str, message: str, **fields: Any) -> None:
        self.status = status
        self.code = code
        self.message = message
        self.fields = fields
        super().__init__(message)


class ActionRefused(Exception):
    """Raised by :meth:`Emulator.perform_action`: the page shows the message."""


@dataclass(frozen=True)
class Action:
    """A button of the hosted pay page."""

    name: str
    label: _StrOrPromise
    #: ``primary``, ``secondary`` or ``danger``: how the button looks.
    style: str = "secondary"


#: The buttons most pay pages have; an emulator lists the ones its provider knows.
PAY = Action("pay", gettext_lazy("Pay"), "primary")
DECLINE = Action("decline", gettext_lazy("Decline"), "danger")
EXPIRE = Action("expire", gettext_lazy("Let expire"), "secondary")
HOLD = Action("hold", gettext_lazy("Hold the funds"), "secondary")


def bearer_token(request: HttpRequest) -> str:
    """The token of an ``Authorization: Bearer <token>`` header, or ``""``."""
    scheme, _sep, token = request.headers.get("Authorization", "").partition(" ")
    return token.strip() if scheme.lower() == "bearer" else ""


def key_matches(given: str, keys: Iterable[str]) -> bool:
    """Whether ``given`` is one of ``keys``, comparing every key in constant
    time (the timing tells nothing about which key nearly matched)."""
    ok = False
    for key in keys:
        if key:
            ok |= constant_time_equals(given, key)
    return bool(given) and ok


class CallLog:
    """The API requests an emulator received since its last reset, in order:
    tests and the demo count them ("10 list calls", "no request sent"). One
    per emulator, shared by the server's threads; the oldest half is dropped
    past :attr:`limit` entries, so a long demo does not grow without end."""

    limit = 100_000

    def __init__(self, key: str = "endpoint") -> None:
        #: The attribute of a recorded call that :meth:`named` compares.
        self.key = key
        self._lock = threading.Lock()
        self._calls: list[Any] = []

    def add(self, call: Any) -> None:
        with self._lock:
            self._calls.append(call)
            if len(self._calls) > self.limit:
                del self._calls[: self.limit // 2]

    def clear(self) -> None:
        with self._lock:
            self._calls.clear()

    def named(self, name: str | None = None) -> list[Any]:
        """Every call, or those whose :attr:`key` is ``name``."""
        with self._lock:
            return [c for c in self._calls if name in (None, getattr(c, self.key))]


class Emulator:
    """One emulated provider. Subclasses set the identity and override hooks."""

    #: The provider package name under ``django_payments_ru.providers``.
    slug: ClassVar[str] = ""
    #: Shown on the pay page.
    display_name: ClassVar[_StrOrPromise] = ""
    #: Settings of ``PAYMENTS_RU_EMULATOR[slug]`` and their defaults
    #: (:data:`REQUIRED`: no default).
    options: ClassVar[dict[str, Any]] = {}
    #: Seconds to wait after the 1st, 2nd... failed webhook attempt.
    webhook_schedule: ClassVar[Sequence[int]] = webhooks.DEFAULT_SCHEDULE
    #: Seconds the merchant has to answer a webhook.
    webhook_timeout: ClassVar[float] = webhooks.DEFAULT_TIMEOUT
    #: Header carrying the idempotency key (empty: none).
    idempotency_header: ClassVar[str] = "Idempotency-Key"
    idempotency_key_max_length: ClassVar[int] = 255
    pay_template: ClassVar[str] = "payments_ru_emulator/pay.html"
    #: The statuses of a payment still waiting for the customer
    #: (:meth:`is_pending`).
    pending_statuses: ClassVar[frozenset[str]] = frozenset({"pending"})
    #: The buttons of the pay page of a pending payment (:meth:`pay_actions`).
    pending_actions: ClassVar[tuple[Action, ...]] = ()
    #: The status of a payment refunded in full (:meth:`add_refund`).
    refunded_status: ClassVar[str] = "refunded"
    #: Each status in words, for the pay page and the done page (default: the
    #: statuses most emulators share; extend it with ``{**Emulator.status_labels,
    #: ...}``).
    status_labels: ClassVar[Mapping[str, _StrOrPromise]] = {
        "pending": gettext_lazy("Waiting for payment"),
        "succeeded": gettext_lazy("Paid"),
        "failed": gettext_lazy("Declined"),
        "expired": gettext_lazy("Expired"),
        "cancelled": gettext_lazy("Cancelled"),
        "refunded": gettext_lazy("Refunded"),
    }

    # --- settings -----------------------------------------------------------

    @property
    def config(self) -> dict[str, Any]:
        """This emulator's settings, read now."""
        where = f"settings.{SETTING_NAME}[{self.slug!r}]"
        everything = getattr(django_settings, SETTING_NAME, None) or {}
        if not isinstance(everything, Mapping):
            raise ConfigurationError(f"settings.{SETTING_NAME} must be a dict.")
        user = everything.get(self.slug)
        if user is None:
            user = {}
        if not isinstance(user, Mapping):
            raise ConfigurationError(f"{where} must be a dict.")
        known = {**COMMON_OPTIONS, **self.options}
        unknown = sorted(set(user) - set(known))
        if unknown:
            raise ConfigurationError(
                f"Unknown key {unknown[0]!r} in {where} (known: "
                f"{', '.join(sorted(known))})."
            )
        config = {**known, **user}
        missing = [name for name, value in config.items() if value is REQUIRED]
        if missing:
            raise ConfigurationError(
                f"The {self.slug} emulator needs {where}[{missing[0]!r}]."
            )
        return config

    # --- answers ------------------------------------------------------------

    def error_body(self, code: str, message: str, fields: dict[str, Any]) -> Any:
        """The provider's error envelope (override for another shape)."""
        return {"error": {"code": code, "message": message, **fields}}

    def error(
        self,
        status: int,
        code: str,
        message: _StrOrPromise,
        *,
        headers: Mapping[str, str] | None = None,
        **fields: Any,
    ) -> HttpResponse:
        """An error answer in the provider's envelope."""
        response = JsonResponse(
            self.error_body(code, str(message), fields), status=status, safe=False
        )
        for name, value in (headers or {}).items():
            response[name] = value
        return response

    def json_body(self, request: HttpRequest, *, empty: bool = False) -> dict[str, Any]:
        """The request's JSON object (``{}`` for an empty body when ``empty``);
        raises :class:`EmulatorError` 400 ``invalid_request`` otherwise."""
        if empty and not request.body.strip():
            return {}
        try:
            data = json.loads(request.body)
        except ValueError:
            data = None
        if not isinstance(data, dict):
            raise EmulatorError(
                400, "invalid_request", _("The request body must be a JSON object.")
            )
        return data

    # --- authentication -----------------------------------------------------

    def api_key(self, request: HttpRequest) -> str:
        """The API key the request presents (default: a bearer token)."""
        return bearer_token(request)

    def authenticate(self, request: HttpRequest) -> HttpResponse | None:
        """``None`` when the request may proceed, else the refusal. The default
        compares :meth:`api_key` with ``config["api_keys"]``."""
        keys = self.config.get("api_keys") or []
        if not key_matches(self.api_key(request), keys):
            return self.error(
                401, "invalid_api_key", _("The API key is missing or not valid.")
            )
        return None

    # --- rate limits --------------------------------------------------------

    def rate_limit_key(self, request: HttpRequest) -> str:
        """Who a rate limit counts (default: the client's address)."""
        return request.META.get("REMOTE_ADDR", "")

    def documented_limits(self, endpoint: str) -> list[limits.Limit]:
        """The provider's own rate limits on ``endpoint`` (default: none).

        They count every call, before its method, fault, key or token is looked
        at, as a provider's edge does; ``config["rate_limits"]`` count the
        authenticated calls only (see :meth:`endpoint`)."""
        return []

    def throttle(
        self, request: HttpRequest, configured: Sequence[limits.Limit] | None = None
    ) -> HttpResponse | None:
        """The 429 answer when the call exceeds ``configured`` (default:
        ``config["rate_limits"]``); a call let through is counted."""
        if configured is None:
            configured = limits.parse_limits(self.slug, self.config["rate_limits"])
        if not configured:
            return None
        exceeded = limits.check(
            self.slug, self.rate_limit_key(request), configured, clock.now().timestamp()
        )
        if exceeded is None:
            return None
        return self.error(
            429,
            "rate_limit_exceeded",
            self.rate_limit_message(exceeded),
            headers={"Retry-After": str(exceeded.retry_after)},
        )

    def rate_limit_message(self, exceeded: limits.Exceeded) -> str:
        """The message of the 429 answer (override to word the provider's)."""
        return _("Too many requests; retry after %(seconds)d s.") % {
            "seconds": exceeded.retry_after
        }

    # --- idempotency --------------------------------------------------------

    def idempotency_key(self, request: HttpRequest) -> str:
        header = self.idempotency_header
        return request.headers.get(header, "").strip() if header else ""

    def idempotent(
        self, request: HttpRequest, handler: Callable[[], HttpResponse]
    ) -> HttpResponse:
        """Run ``handler`` at most once per idempotency key (see
        :mod:`.idempotency`); without a key, just run it."""
        key = self.idempotency_key(request)
        if not key:
            return handler()
        if len(key) > self.idempotency_key_max_length:
            return self.error(
                400,
                "invalid_request",
                _("The idempotency key is longer than %(max)d characters.")
                % {"max": self.idempotency_key_max_length},
                field=self.idempotency_header,
            )
        return idempotency.run_once(
            request,
            slug=self.slug,
            key=key,
            handler=handler,
            conflict=lambda: self.error(
                409,
                "idempotency_conflict",
                _("This idempotency key was used with a different request."),
            ),
            ttl=float(self.config["idempotency_ttl"]),
        )

    # --- endpoints ----------------------------------------------------------

    def endpoint(
        self,
        name: str,
        *,
        methods: Sequence[str] = ("POST",),
        auth: bool = True,
        idempotent: bool = False,
        csrf: bool = False,
    ) -> Callable[[View], View]:
        """Decorate an emulator view named ``name`` (the name faults refer to).

        ``auth``: call :meth:`authenticate` first. ``idempotent``: honour the
        idempotency key. ``csrf``: keep Django's CSRF check (pages with forms);
        API endpoints are exempt. A view may raise :class:`EmulatorError`."""
        allowed = tuple(m.upper() for m in methods)

        def decorator(view: View) -> View:
            @wraps(view)
            def wrapper(
                request: HttpRequest, *args: Any, **kwargs: Any
            ) -> HttpResponse:
                refused = self.throttle(request, self.documented_limits(name))
                if refused is not None:
                    return refused
                if request.method not in allowed:
                    return self.error(
                        405,
                        "method_not_allowed",
                        _("Use %(methods)s.") % {"methods": ", ".join(allowed)},
                        headers={"Allow": ", ".join(allowed)},
                    )
                fault = faults.take_fault(self.slug, name, self.config["faults"])
                if fault is not None and not fault.after:
                    failed = fault.apply(self)
                    if failed is not None:
                        return failed
                for check in ((self.authenticate,) if auth else ()) + (self.throttle,):
                    refused = check(request)
                    if refused is not None:
                        return refused

                def handler() -> HttpResponse:
                    try:
                        return view(request, *args, **kwargs)
                    except EmulatorError as exc:
                        return self.error(
                            exc.status, exc.code, exc.message, **exc.fields
                        )

                response = (
                    self.idempotent(request, handler) if idempotent else handler()
                )
                if fault is not None and fault.after:
                    failed = fault.apply(self)
                    if failed is not None:
                        return failed
                return response

            return wrapper if csrf else csrf_exempt(wrapper)

        return decorator

    # --- URLs and ids -------------------------------------------------------

    def namespace(self, request: HttpRequest | None = None) -> str:
        match = getattr(request, "resolver_match", None)
        if match is not None and match.namespace.endswith(self.slug):
            return match.namespace
        return f"payments_ru_emulator:{self.slug}"

    def reverse(self, name: str, *args: Any, request: HttpRequest | None = None) -> str:
        """The path of this emulator's URL ``name`` (under the namespace the
        current request came through)."""
        return reverse(f"{self.namespace(request)}:{name}", args=args)

    def absolute_url(self, request: HttpRequest, name: str, *args: Any) -> str:
        return request.build_absolute_uri(self.reverse(name, *args, request=request))

    @staticmethod
    def new_id(prefix: str, nbytes: int = 8) -> str:
        """``<prefix>_<2*nbytes hex>``."""
        return f"{prefix}_{_secrets.token_hex(nbytes)}"

    # --- payments -----------------------------------------------------------

    def get_payment(self, external_id: str, *, lock: bool = False) -> EmulatedPayment:
        """This emulator's payment ``external_id`` (locked for update when
        ``lock``, inside the caller's transaction); raises :class:`EmulatorError`
        404 ``not_found``."""
        qs = EmulatedPayment.objects.filter(slug=self.slug, external_id=external_id)
        if lock:
            qs = qs.select_for_update()
        payment = qs.first()
        if payment is None:
            raise EmulatorError(
                404, "not_found", _("No payment %(id)s.") % {"id": external_id}
            )
        return payment

    def lock(self, payment: EmulatedPayment) -> EmulatedPayment:
        """``payment`` read again and locked for update, inside the caller's
        transaction."""
        return EmulatedPayment.objects.select_for_update().get(pk=payment.pk)

    def change(
        self, payment: EmulatedPayment, status: str, event_type: str, **data: Any
    ) -> None:
        """Set the locked ``payment``'s ``status`` and merge ``data`` into its
        :attr:`~.models.EmulatedPayment.data` (inside the caller's
        transaction), then :meth:`webhook` ``event_type`` after the commit."""
        payment.status = status
        payment.data = {**payment.data, **data}
        payment.save(update_fields=["status", "data"])
        self.webhook(payment, event_type)

    def add_refund(
        self,
        payment: EmulatedPayment,
        amount: Decimal,
        refund: dict[str, Any],
        event_type: str,
    ) -> None:
        """Record ``refund`` (the provider's refund object) of ``amount`` on
        the locked ``payment``, which becomes :attr:`refunded_status` once
        nothing is left, then :meth:`webhook` ``event_type`` after the commit.
        The caller has checked that ``amount`` is refundable."""
        payment.refunded_amount += amount
        if payment.refunded_amount == payment.amount:
            payment.status = self.refunded_status
        payment.data = {
            **payment.data,
            "refunds": [*payment.data.get("refunds", []), refund],
        }
        payment.save(update_fields=["refunded_amount", "status", "data"])
        self.webhook(payment, event_type)

    def webhook(self, payment: EmulatedPayment, event_type: str) -> object:
        """Post the provider's webhook ``event_type`` about ``payment`` after
        the commit (with :meth:`send_webhook`); the default posts none."""
        return None

    # --- pending payments ----------------------------------------------------

    def is_pending(self, payment: EmulatedPayment) -> bool:
        """Whether ``payment`` still waits for the customer: the pay page
        offers :attr:`pending_actions`, and past ``expires_at`` it expires."""
        return payment.status in self.pending_statuses

    @contextmanager
    def _locked_if(
        self,
        payment: EmulatedPayment,
        statuses: Collection[str],
        refusal: Callable[[EmulatedPayment], Exception],
    ) -> Iterator[EmulatedPayment]:
        # The row lock makes a double click, or a click racing an API call or
        # the expiry, act once; the status is checked under it.
        with transaction.atomic():
            locked = self.lock(payment)
            if locked.status not in statuses:
                raise refusal(locked)
            yield locked

    def locked_pending(
        self, payment: EmulatedPayment
    ) -> AbstractContextManager[EmulatedPayment]:
        """A transaction holding ``payment``'s row lock, giving the locked row
        while it is still pending (:attr:`pending_statuses`); else
        :class:`ActionRefused`, raised before anything is written."""
        return self._locked_if(
            payment,
            self.pending_statuses,
            lambda _locked: ActionRefused(
                _("This payment is no longer waiting for payment.")
            ),
        )

    def locked_in(
        self,
        payment: EmulatedPayment,
        statuses: Collection[str],
        code: str,
        message: str,
    ) -> AbstractContextManager[EmulatedPayment]:
        """For an API call changing ``payment``: expire it first if due, then a
        transaction holding its row lock, giving the locked row while its
        status is one of ``statuses``; else :class:`EmulatorError` 409
        ``code`` with ``message % {"status": <its status>}``."""
        return self._locked_if(
            self.expire_if_due(payment),
            statuses,
            lambda locked: EmulatorError(
                409, code, message % {"status": locked.status}
            ),
        )

    def expire_if_due(self, payment: EmulatedPayment) -> EmulatedPayment:
        """A pending payment past ``expires_at`` expires (:meth:`expire`) when
        it is next read, by the pay page or the API: no timer runs in a demo.
        Returns the payment as it is now."""
        if not (self.is_pending(payment) and payment.is_expired_at(clock.now())):
            return payment
        with transaction.atomic():
            locked = self.lock(payment)
            if self.is_pending(locked):
                self.expire(locked)
        return locked

    def expire_due(self, limit: int = 1000) -> int:
        """Expire every pending payment of this emulator past ``expires_at``
        (at most ``limit``), as the provider's own background job would: run
        by ``manage.py emulator_deliver_webhooks`` each round. Returns how
        many expired."""
        due = EmulatedPayment.objects.filter(
            slug=self.slug,
            status__in=self.pending_statuses,
            expires_at__lte=clock.now(),
        ).order_by("expires_at", "pk")
        count = 0
        for payment in due[:limit]:
            if self.expire_if_due(payment).status != payment.status:
                count += 1
        return count

    def expire(self, payment: EmulatedPayment) -> None:
        """Move the locked, pending ``payment`` to the provider's state of an
        expired payment (inside the caller's transaction)."""
        raise NotImplementedError(f"{type(self).__name__} must implement expire().")

    # --- webhooks -----------------------------------------------------------

    def retry_schedule(self) -> list[int]:
        configured = self.config["webhook_retry_schedule"]
        return list(self.webhook_schedule if configured is None else configured)

    def send_webhook(
        self,
        payment: EmulatedPayment | None,
        url: str,
        body: bytes,
        headers: Mapping[str, str],
        *,
        event_id: str = "",
        event_type: str = "",
    ) -> WebhookDelivery:
        """Store the webhook and post it once the current transaction commits
        (at once outside one); retried on this emulator's schedule."""
        return webhooks.deliver(
            WebhookDelivery(
                slug=self.slug,
                payment=payment,
                url=url,
                headers=dict(headers),
                body=body.decode("utf-8"),
                event_id=event_id,
                event_type=event_type,
                retry_schedule=self.retry_schedule(),
            )
        )

    def prepare_retry(self, delivery: WebhookDelivery) -> tuple[bytes, dict[str, str]]:
        """Body and headers of a retry of ``delivery`` (default: the same).
        Override to re-sign with a fresh timestamp or count the retries."""
        return delivery.body.encode("utf-8"), dict(delivery.headers)

    def is_acknowledged(self, response: requests.Response) -> bool:
        """Whether the merchant's answer acknowledges the webhook (2xx)."""
        return 200 <= response.status_code < 300

    # --- the hosted pay page -------------------------------------------------

    def pay_actions(self, payment: EmulatedPayment) -> list[Action]:
        """The buttons the page shows for ``payment`` in its current state
        (default: :attr:`pending_actions` while it :meth:`is_pending`)."""
        return list(self.pending_actions) if self.is_pending(payment) else []

    def perform_action(
        self, request: HttpRequest, payment: EmulatedPayment, action: str
    ) -> str | None:
        """Press the button ``action``: :meth:`act` on the payment locked by
        :meth:`locked_pending`. Return where the browser goes (``None``:
        :meth:`return_location`), or raise :class:`ActionRefused`."""
        with self.locked_pending(payment) as locked:
            return self.act(request, locked, action)

    def act(
        self, request: HttpRequest, payment: EmulatedPayment, action: str
    ) -> str | None:
        """Do what the button ``action`` does to the locked, pending
        ``payment``, inside its transaction (:class:`ActionRefused` rolls it
        back). The default calls the method ``on_<action>(request, payment)``;
        override it when the buttons share their work."""
        handler: Callable[[HttpRequest, EmulatedPayment], str | None] | None
        handler = getattr(self, f"on_{action}", None)
        if handler is None:
            raise NotImplementedError(
                f"{type(self).__name__} shows the button {action!r} but has no "
                f"on_{action}() (or act()) to press it."
            )
        return handler(request, payment)

    def on_expire(self, request: HttpRequest, payment: EmulatedPayment) -> str | None:
        """The "Let expire" button: what the clock does at ``expires_at``."""
        self.expire(payment)
        return None

    def status_label(self, payment: EmulatedPayment) -> str:
        """The payment's status in words (default: from :attr:`status_labels`,
        else the status itself)."""
        return str(self.status_labels.get(payment.status, payment.status))

    def pay_page_context(self, payment: EmulatedPayment) -> dict[str, Any]:
        return {
            "emulator": self,
            "provider_name": self.display_name,
            "payment": payment,
            "amount": format_amount(payment.amount, payment.currency),
            "status_label": self.status_label(payment),
            "actions": self.pay_actions(payment),
        }

    def render_pay_page(
        self,
        request: HttpRequest,
        payment: EmulatedPayment,
        *,
        message: str = "",
        status: int = 200,
    ) -> HttpResponse:
        context = {**self.pay_page_context(payment), "message": message}
        return render(request, self.pay_template, context, status=status)

    def done_url(self, request: HttpRequest, payment: EmulatedPayment) -> str:
        parent = self.namespace(request).rsplit(":", 1)[0]
        return reverse(f"{parent}:done", args=[self.slug, payment.external_id])

    def pay_page(self, request: HttpRequest, payment: EmulatedPayment) -> HttpResponse:
        """GET: the page. POST with ``action``: press that button, then send the
        browser on (303) to where the action says, the return URL or the done
        page."""
        if request.method != "POST":
            return self.render_pay_page(request, payment)
        action = request.POST.get("action", "")
        if action not in {a.name for a in self.pay_actions(payment)}:
            return self.render_pay_page(
                request,
                payment,
                status=409,
                message=_("This action is not available for this payment."),
            )
        try:
            target = self.perform_action(request, payment, action)
        except ActionRefused as exc:
            return self.render_pay_page(request, payment, message=str(exc), status=409)
        payment.refresh_from_db()
        location = target or self.return_location(request, payment)
        return HttpResponse(status=303, headers={"Location": location})

    def return_location(self, request: HttpRequest, payment: EmulatedPayment) -> str:
        """Where the browser goes after a button whose action named no URL:
        the payment's return URL, or the done page."""
        return payment.return_url or self.done_url(request, payment)

    def pay_page_view(self) -> View:
        """The view of the hosted pay page of the payment ``<payment_id>``
        (endpoint ``pay_page``, 404 for an unknown one), which expires a payment
        that is due first; for the emulator's ``urlpatterns``."""

        @self.endpoint("pay_page", methods=("GET", "POST"), auth=False, csrf=True)
        def pay_page(request: HttpRequest, payment_id: str) -> HttpResponse:
            try:
                payment = self.expire_if_due(self.get_payment(payment_id))
            except EmulatorError:
                raise Http404(_("No such payment.")) from None
            return self.pay_page(request, payment)

        return pay_page
