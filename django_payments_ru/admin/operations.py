"""Operations: the one table of what the merchant can ask of an invoice's
provider from the admin, and the read-only page of what was sent.

:data:`INVOICE_OPERATIONS` lists each operation once. The invoice admin derives
from it the buttons on the change page, the single view that runs an operation
by name (and so which names its URL accepts), and the list actions
(:func:`with_operation_actions`). :class:`OperationAdmin` is the page of the
:class:`~django_payments_ru.models.Operation` rows those calls leave behind.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any, TypeVar

from django.contrib import admin, messages
from django.core.exceptions import ImproperlyConfigured
from django.db.models import QuerySet
from django.http import HttpRequest, HttpResponse
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy

from .. import services
from ..exceptions import PaymentsError
from ..models import Invoice, Operation
from ..providers.base import BaseProvider, Capability
from ..results import msg, register_labels
from ..status import PAYABLE, InvoiceStatus
from .base import (
    _error_text,
    _label,
    _money_display,
    _provider_name,
    _RecordAdmin,
    _result_field,
)

if TYPE_CHECKING:
    from django.utils.functional import _StrOrPromise

Service = Callable[[Invoice, HttpRequest], Invoice]

#: The field of the confirmation page's form: an operation that asks for
#: confirmation runs only on a POST that carries it.
CONFIRM_FIELD = "payments_ru_confirm"


def _start_payment(invoice: Invoice, request: HttpRequest) -> Invoice:
    # start_payment hands the request on to the provider (which may build
    # absolute URLs from it) and returns the checkout; the new status is on the row.
    services.start_payment(invoice, request)
    invoice.refresh_from_db()
    return invoice


def _without_request(service: Callable[[Invoice], Invoice]) -> Service:
    """``service`` called the way :attr:`InvoiceOperation.service` is."""
    return lambda invoice, request: service(invoice)


def _on_hold(invoice: Invoice) -> bool:
    return invoice.status == InvoiceStatus.ON_HOLD


def _explain_cancel(invoice: Invoice, provider: BaseProvider) -> str:
    values = {
        "amount": _money_display(invoice.amount, invoice.currency),
        "provider": _provider_name(provider),
    }
    if _on_hold(invoice):
        return (
            _(
                "The %(amount)s held at %(provider)s will be released to the "
                "customer and the invoice cancelled."
            )
            % values
        )
    return (
        _(
            "The invoice for %(amount)s will be cancelled (at %(provider)s too "
            "where it can cancel): the customer can no longer pay it."
        )
        % values
    )


def _explain_capture(invoice: Invoice, provider: BaseProvider) -> str:
    return _(
        "The %(amount)s held at %(provider)s will be charged to the customer: "
        "the invoice becomes paid."
    ) % {
        "amount": _money_display(invoice.amount, invoice.currency),
        "provider": _provider_name(provider),
    }


def _explain_release(invoice: Invoice, provider: BaseProvider) -> str:
    return _(
        "The %(amount)s held at %(provider)s will be released to the customer "
        "and the invoice cancelled; it can then no longer be captured."
    ) % {
        "amount": _money_display(invoice.amount, invoice.currency),
        "provider": _provider_name(provider),
    }


@dataclass(frozen=True)
class InvoiceOperation:
    """One thing the admin asks of an invoice's provider, through the services."""

    #: In the URL: ``<invoice>/operation/<name>/``.
    name: str
    #: Runs it and returns the invoice as it is afterwards.
    service: Service
    #: The change page's button and, for a list action, its description.
    label: _StrOrPromise
    #: Said after the invoice's label when it worked, and kept in its history.
    done: _StrOrPromise
    #: Whether the invoice is in a state to offer the button (default: any).
    applies: Callable[[Invoice], bool] = lambda invoice: True
    #: What the provider must support for the button to be offered.
    capability: Capability | None = None
    #: The ``has_<permission>_permission`` the user needs (button, view, action).
    permission: str = "change"
    #: The list action's name (the function on the admin class); None: no action.
    action: str | None = None
    #: What will happen, said on the confirmation page before it runs (the
    #: amount, the provider); None: it runs without confirmation (it moves no
    #: money and ends nothing: start, refresh).
    explain: Callable[[Invoice, BaseProvider], str] | None = None
    #: Why the invoice is not in a state for it (``%(status)s``: its status).
    refusal: _StrOrPromise = ""
    #: Why the provider cannot do it (``%(provider)s``: its name).
    unsupported: _StrOrPromise = ""

    @property
    def confirms(self) -> bool:
        """Whether it runs only after the confirmation page."""
        return self.explain is not None

    def describe(self, invoice: Invoice) -> tuple[str, bool]:
        """What the confirmation page says about ``invoice``: what will happen
        and True, or why it cannot be done and False."""
        try:
            provider = invoice.get_provider()
        except ImproperlyConfigured as exc:
            return str(exc), False
        if self.capability is not None and not provider.supports(self.capability):
            return str(self.unsupported) % {"provider": _provider_name(provider)}, False
        if not self.applies(invoice):
            return str(self.refusal) % {"status": invoice.get_status_display()}, False
        assert self.explain is not None
        return self.explain(invoice, provider), True

    def available(self, invoice: Invoice, provider: BaseProvider) -> bool:
        """Whether the change page offers it for ``invoice``. The view runs it
        regardless and reports the services' refusal (e.g. a stale page)."""
        supported = self.capability is None or provider.supports(self.capability)
        return supported and self.applies(invoice)

    def run(
        self,
        modeladmin: admin.ModelAdmin[Invoice],
        request: HttpRequest,
        invoice: Invoice,
    ) -> None:
        """Run it on one invoice and report it as a message; never raises, so
        that a list action goes on with the other invoices."""
        before = invoice.get_status_display()
        try:
            invoice = self.service(invoice, request)
        except Exception as exc:
            error = _error_text(
                exc, "Admin %s of invoice %s failed", self.name, invoice.uuid
            )
            modeladmin.message_user(
                request,
                _("%(invoice)s: “%(operation)s” failed. %(error)s")
                % {
                    "invoice": _label(invoice),
                    "operation": self.label,
                    "error": error,
                },
                messages.ERROR,
            )
            return
        done = str(self.done)
        after = invoice.get_status_display()
        modeladmin.log_change(
            request, invoice, msg("log_operation", operation=self.name)
        )
        modeladmin.message_user(
            request,
            _("%(invoice)s: %(done)s; status %(before)s → %(after)s.")
            % {
                "invoice": _label(invoice),
                "done": done,
                "before": before,
                "after": after,
            }
            if before != after
            else _("%(invoice)s: %(done)s; status unchanged (%(status)s).")
            % {"invoice": _label(invoice), "done": done, "status": after},
            messages.SUCCESS,
        )

    def as_action(self) -> Callable[..., HttpResponse | None]:
        """The list action that runs it on each selected invoice."""

        def action(
            modeladmin: admin.ModelAdmin[Invoice],
            request: HttpRequest,
            queryset: QuerySet[Invoice],
        ) -> HttpResponse | None:
            if self.confirms and request.POST.get(CONFIRM_FIELD) != "yes":
                # First the page that says what will happen to each invoice;
                # its form posts the action again, confirmed.
                pages: Any = modeladmin  # InvoicePages
                return pages.confirm_action(request, self, list(queryset))
            for invoice in queryset:
                self.run(modeladmin, request, invoice)
            return None

        assert self.action is not None
        action.__name__ = self.action
        return admin.action(description=self.label, permissions=[self.permission])(
            action
        )


_CAPTURE = InvoiceOperation(
    name="capture",
    service=_without_request(services.capture_invoice),
    label=gettext_lazy("Capture hold"),
    done=gettext_lazy("hold captured"),
    applies=_on_hold,
    capability=Capability.HOLD,
    action="capture_holds",
    explain=_explain_capture,
    refusal=gettext_lazy(
        "This invoice is %(status)s: only an invoice on hold can be captured."
    ),
    unsupported=gettext_lazy("%(provider)s does not support holds."),
)

#: Every operation, in the order of the change page's buttons.
INVOICE_OPERATIONS = (
    InvoiceOperation(
        name="start",
        service=_start_payment,
        label=gettext_lazy("Start payment"),
        done=gettext_lazy("payment started"),
        # Payable and without a usable link: never started, expired or failed.
        applies=lambda invoice: (
            invoice.status in PAYABLE and not services.checkout_usable(invoice)
        ),
    ),
    InvoiceOperation(
        name="refresh",
        service=_without_request(services.refresh_invoice),
        label=gettext_lazy("Refresh from provider"),
        done=gettext_lazy("refreshed from the provider"),
        capability=Capability.STATUS,
        action="refresh_from_provider",
    ),
    InvoiceOperation(
        name="cancel",
        service=_without_request(services.cancel_invoice),
        label=gettext_lazy("Cancel"),
        done=gettext_lazy("cancelled"),
        applies=lambda invoice: invoice.can_cancel,
        action="cancel_invoices",
        explain=_explain_cancel,
        refusal=gettext_lazy(
            "This invoice is %(status)s: only an invoice not yet paid can be "
            "cancelled (refund a paid one)."
        ),
    ),
    _CAPTURE,
    # Release ends the same hold as capture, at a provider that takes holds.
    replace(
        _CAPTURE,
        name="release",
        service=_without_request(services.release_invoice),
        label=gettext_lazy("Release hold"),
        done=gettext_lazy("hold released"),
        action="release_holds",
        explain=_explain_release,
        refusal=gettext_lazy(
            "This invoice is %(status)s: only an invoice on hold can be released."
        ),
    ),
)

#: The names the operation view accepts; any other is a 404.
OPERATIONS_BY_NAME = {operation.name: operation for operation in INVOICE_OPERATIONS}

#: The invoice admin's list actions, by name (see :func:`with_operation_actions`).
OPERATION_ACTIONS = tuple(op.action for op in INVOICE_OPERATIONS if op.action)

AdminClass = TypeVar("AdminClass", bound="type[admin.ModelAdmin[Any]]")


def with_operation_actions(cls: AdminClass) -> AdminClass:
    """Give the invoice admin a function for each of :data:`OPERATION_ACTIONS`,
    under the action's name: a class attribute like a hand-written action's, so
    ``actions`` can name it and its description can be read from the class."""
    for operation in INVOICE_OPERATIONS:
        if operation.action is not None:
            setattr(cls, operation.action, operation.as_action())
    return cls


@admin.register(Operation)
class OperationAdmin(_RecordAdmin):
    """Read-only: what was sent to the providers. "Release" frees an operation
    left in flight by a call that got no answer, once the merchant has checked
    at the provider that it was not done."""

    list_display = (
        "kind",
        "state",
        "amount",
        "invoice_link",
        "reason_display",
        "created_at",
        "settled_at",
    )
    list_filter = ("state", "kind", "created_at")
    search_fields = ("key", "invoice__uuid", "invoice__order_id")
    fields = (
        "invoice_link",
        "kind",
        "state",
        "amount",
        "key",
        "reason_display",
        "lease_until",
        "attempts",
        "created_at",
        "settled_at",
    )
    readonly_fields = fields

    reason_display = _result_field("reason_text")

    # The page's one write, and only to operations still in flight.
    actions = ("release",)

    def has_release_permission(self, request: HttpRequest) -> bool:
        return request.user.has_perm(f"{self.opts.app_label}.change_invoice")

    @admin.action(
        description=gettext_lazy("Release: checked, not done at the provider"),
        permissions=["release"],
    )
    def release(self, request: HttpRequest, queryset: QuerySet[Operation]) -> None:
        user = request.user.get_username()
        for operation in queryset.select_related("invoice").order_by("pk"):
            try:
                services.release_claim(operation, msg("released_by_user", user=user))
            except PaymentsError as exc:
                self.message_user(
                    request, f"{operation}: {exc.message}", messages.ERROR
                )
                continue
            self.message_user(
                request,
                _("%(operation)s of invoice %(invoice)s released.")
                % {
                    "operation": operation.get_kind_display(),
                    "invoice": operation.invoice,
                },
                messages.SUCCESS,
            )


# The invoice's history names an operation by its name and shows it in the
# language of the reader (results.py).
register_labels("operation", {op.name: op.done for op in INVOICE_OPERATIONS})
