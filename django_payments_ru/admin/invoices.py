"""Invoices: the inlines and list filters of the invoice admin, and
:class:`InvoiceAdmin` itself: the list with its actions, the change page and
the tools it offers (the operations of :mod:`.operations`, refund, the
provider's forms). The views behind the tools, and the add page, are in
:mod:`.pages`.

Everything that moves money or changes a status goes through
:mod:`django_payments_ru.services`. The admin itself writes only the merchant's
own notes (the "needs attention" flag and its note), under a row lock and with
``update_fields``, so a webhook processed while the page was open is never
overwritten.
"""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from typing import Any

from django.contrib import admin, messages
from django.contrib.admin.utils import unquote
from django.core.exceptions import ImproperlyConfigured, PermissionDenied
from django.db import transaction
from django.db.models import Exists, OuterRef, QuerySet
from django.http import HttpRequest, HttpResponse
from django.urls import reverse
from django.utils import timezone
from django.utils.formats import date_format
from django.utils.html import format_html, format_html_join
from django.utils.safestring import SafeString
from django.utils.text import capfirst
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy, ngettext

from .. import registry, services
from ..formatting import format_money
from ..models import Invoice, Operation, Payment, WebhookEvent
from ..paylinks import pay_link, pay_path
from ..providers.base import Capability
from ..results import msg
from ..status import InvoiceStatus
from ..validation import safe_redirect_url
from .base import (
    _money_display,
    _preformatted_field,
    _provider_label,
    _provider_name,
    _ReadOnlyInline,
    _result_field,
    logger,
)
from .forms import InvoiceChangeForm, delivery_choices
from .operations import INVOICE_OPERATIONS, OPERATION_ACTIONS, with_operation_actions
from .pages import InvoicePages
from .scale import (
    EstimatedCountPaginator,
    IndexedChangeList,
    ProviderFilter,
    search_invoices,
)

# --- inlines ----------------------------------------------------------------------


class PaymentInline(_ReadOnlyInline):
    model = Payment
    fields = (
        "kind",
        "amount_display",
        "provider_payment_id",
        "source",
        "created_at",
    )
    readonly_fields = fields
    verbose_name_plural = gettext_lazy("money movements")

    @admin.display(description=gettext_lazy("amount"))
    def amount_display(self, obj: Payment) -> str:
        return format_money(obj.amount, obj.currency)


class OperationInline(_ReadOnlyInline):
    model = Operation
    fields = (
        "kind",
        "state",
        "amount_display",
        "reason_display",
        "created_at",
        "settled_at",
    )
    readonly_fields = fields
    reason_display = _result_field("reason_text")
    verbose_name_plural = gettext_lazy("operations sent to the provider")
    show_change_link = True

    @admin.display(description=gettext_lazy("amount"))
    def amount_display(self, obj: Operation) -> str:
        return format_money(obj.amount, obj.invoice.currency) if obj.amount else "-"


class WebhookEventInline(_ReadOnlyInline):
    model = WebhookEvent
    fields = ("event_type", "status", "result_display", "received_at")
    readonly_fields = fields
    result_display = _result_field("result_text")
    show_change_link = True


def _short_time(value: datetime | None) -> str:
    """ "05.01.2026 10:14": a date and time that keeps a list column narrow."""
    if value is None:
        return "-"
    if timezone.is_aware(value):
        value = timezone.localtime(value)
    return date_format(value, "SHORT_DATETIME_FORMAT")


# --- filters ----------------------------------------------------------------------


class InFlightFilter(admin.SimpleListFilter):
    """Invoices with an operation sent to the provider and not yet settled."""

    title = gettext_lazy("operation in flight")
    parameter_name = "in_flight"

    def lookups(self, request: HttpRequest, model_admin: Any) -> Any:
        return [("yes", _("Yes")), ("no", _("No"))]

    def queryset(self, request: HttpRequest, queryset: QuerySet[Any]) -> Any:
        if self.value() not in ("yes", "no"):
            return queryset
        pending = Exists(
            Operation.objects.filter(
                invoice=OuterRef("pk"), state=Operation.State.IN_FLIGHT
            )
        )
        return queryset.filter(pending if self.value() == "yes" else ~pending)


class OrderFilter(admin.SimpleListFilter):
    """The invoices of one order (reached from an invoice's change page)."""

    title = gettext_lazy("order")
    parameter_name = "order_key"

    def lookups(self, request: HttpRequest, model_admin: Any) -> Any:
        value = self.value()
        return [(value, value)] if value else []

    def has_output(self) -> bool:
        return bool(self.value())

    def queryset(self, request: HttpRequest, queryset: QuerySet[Any]) -> Any:
        value = self.value()
        return queryset.filter(order_key=value) if value else queryset


# --- invoices ---------------------------------------------------------------------


@admin.register(Invoice)
@with_operation_actions
class InvoiceAdmin(InvoicePages):
    """The invoices: a list with the operations as actions, and a change page
    where only the attention flag and a note are editable."""

    # Fits 1280 px: the reference is the order id (no column of its own), the
    # flags are one column written only on the rows that have one, the dates
    # are short.
    list_display = (
        "reference",
        "amount_display",
        "status_display",
        "provider_display",
        "customer_email",
        "attention_display",
        "created_display",
        "paid_display_short",
    )
    list_display_links = ("reference",)
    # The columns an index sorts either way at a million rows (admin/scale.py).
    sortable_by = (
        "reference",
        "amount_display",
        "status_display",
        "provider_display",
        "customer_email",
        "created_display",
        "paid_display_short",
    )
    list_filter = (
        "status",
        # The configured aliases: "provider" would read SELECT DISTINCT.
        ProviderFilter,
        "needs_attention",
        "paid_twice",
        InFlightFilter,
        OrderFilter,
        "created_at",
    )
    # What the search looks at; get_search_results builds the lookups, each
    # one an index serves (admin/scale.py, docs/admin.rst).
    search_fields = (
        "order_id",
        "customer_email",
        "provider_payment_id",
        "provider_transaction_id",
        "uuid",
        "description",
    )
    search_help_text = gettext_lazy(
        "The order id, e-mail, or the provider's payment or transaction id, "
        "whole or its beginning; a whole reference (UUID) or phone number; "
        "words of the description."
    )
    # No foreign keys in the list: one query for the page, none per row.
    list_select_related = False
    # At a million rows: no full count, no date hierarchy (a DISTINCT over
    # every row), no facet counts; the count is estimated (admin/scale.py).
    show_full_result_count = False
    if hasattr(admin, "ShowFacets"):  # Django 5.0+; 4.2 counts no facets
        show_facets = admin.ShowFacets.NEVER
    paginator = EstimatedCountPaginator
    list_per_page = 50
    # The functions are added by @with_operation_actions, from the table.
    actions = OPERATION_ACTIONS
    inlines = (PaymentInline, OperationInline, WebhookEventInline)
    form = InvoiceChangeForm

    change_fieldsets = (
        (
            None,
            {
                "fields": (
                    "reference",
                    "provider_display",
                    "status",
                    "amount_display",
                    "paid_display",
                    "refunded_display",
                )
            },
        ),
        (
            gettext_lazy("Payment at the provider"),
            {"fields": ("payment_link", "provider_payment_id", "expires_at")},
        ),
        (
            gettext_lazy("Order"),
            {
                "fields": (
                    "order_id",
                    "order_display",
                    "description",
                    "customer_email",
                    "customer_phone",
                    "return_url",
                    "metadata_display",
                )
            },
        ),
        (
            gettext_lazy("Receipt (54-FZ)"),
            {"fields": ("receipt_display",)},
        ),
        (
            gettext_lazy("Attention"),
            {
                "fields": (
                    "needs_attention",
                    "paid_twice_display",
                    "attention_reason_display",
                    "attention_note",
                )
            },
        ),
        (
            gettext_lazy("Dates"),
            {"fields": ("created_at", "status_changed_at", "paid_at", "updated_at")},
        ),
    )
    #: Merchant-editable on the change page; everything else is read-only.
    editable_fields = ("needs_attention", "attention_note")

    def get_changelist(
        self, request: HttpRequest, **kwargs: Any
    ) -> type[IndexedChangeList]:
        return IndexedChangeList

    # --- columns and read-only fields --------------------------------------------

    @admin.display(description=gettext_lazy("invoice"), ordering="-created_at")
    def reference(self, obj: Invoice) -> str:
        return obj.order_id or str(obj.uuid)[:8]

    @admin.display(description=gettext_lazy("amount"), ordering="amount")
    def amount_display(self, obj: Invoice) -> str:
        return _money_display(obj.amount, obj.currency)

    @admin.display(description=gettext_lazy("paid"))
    def paid_display(self, obj: Invoice) -> str:
        if obj.status == InvoiceStatus.ON_HOLD:
            # Nothing is paid yet, but the money is not missing: it is held.
            return _(
                "%(amount)s held: charged when you capture the hold, returned "
                "to the customer if you release it"
            ) % {"amount": _money_display(obj.amount, obj.currency)}
        return _money_display(obj.paid_amount, obj.currency)

    @admin.display(description=gettext_lazy("status"), ordering="status")
    def status_display(self, obj: Invoice) -> str:
        if obj.status == InvoiceStatus.ON_HOLD:
            return _("On hold: %(amount)s held") % {
                "amount": _money_display(obj.amount, obj.currency)
            }
        return obj.get_status_display()

    @admin.display(description=gettext_lazy("provider"), ordering="provider")
    def provider_display(self, obj: Invoice) -> str:
        try:
            return _provider_name(registry.get_provider(obj.provider))
        except ImproperlyConfigured:
            return obj.provider  # no longer configured: all there is to show

    @admin.display(description=gettext_lazy("paid twice"))
    def paid_twice_display(self, obj: Invoice) -> SafeString | str:
        # Words, not Django's red cross, which reads as an error when all is well.
        if obj.paid_twice:
            return format_html(
                '<strong class="payments-ru-attention">⚠ {}</strong>', _("yes")
            )
        return _("no")

    @admin.display(description=gettext_lazy("attention"))
    def attention_display(self, obj: Invoice) -> SafeString | str:
        # Written only where set: a column of red crosses read as errors.
        flags = []
        if obj.paid_twice:
            flags.append(_("paid twice"))
        if obj.needs_attention:
            flags.append(_("needs attention"))
        if not flags:
            return ""
        return format_html(
            '<strong class="payments-ru-attention">⚠ {}</strong>', ", ".join(flags)
        )

    @admin.display(description=gettext_lazy("created"), ordering="created_at")
    def created_display(self, obj: Invoice) -> str:
        return _short_time(obj.created_at)

    @admin.display(description=gettext_lazy("paid at"), ordering="paid_at")
    def paid_display_short(self, obj: Invoice) -> str:
        return _short_time(obj.paid_at)

    @admin.display(description=gettext_lazy("refunded"))
    def refunded_display(self, obj: Invoice) -> str:
        return _money_display(obj.refunded_amount, obj.currency)

    @admin.display(description=gettext_lazy("order"))
    def order_display(self, obj: Invoice) -> SafeString | str:
        if not obj.order_key:
            return "-"
        others = obj.siblings().count()
        url = reverse("admin:django_payments_ru_invoice_changelist")
        return format_html(
            '{} (<a href="{}?order_key={}">{}</a>)',
            obj.order_key,
            url,
            obj.order_key,
            ngettext("%(count)d other invoice", "%(count)d other invoices", others)
            % {"count": others},
        )

    @admin.display(description=gettext_lazy("receipt"))
    def receipt_display(self, obj: Invoice) -> SafeString | str:
        receipt = obj.get_receipt()
        if receipt is None:
            return _("No receipt lines.")
        refunded: dict[tuple[str, Decimal], Decimal] = {}
        for lines in services.refunded_receipts(obj):
            for line in lines.lines:
                refunded[line.key] = refunded.get(line.key, Decimal(0)) + line.quantity
        rows = format_html_join(
            "",
            "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td>"
            "<td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
            (
                (
                    line.name,
                    f"{line.quantity.normalize():f}",
                    line.unit,
                    _money_display(line.price, obj.currency),
                    _money_display(line.amount, obj.currency),
                    line.vat,
                    line.payment_object,
                    line.payment_method,
                    f"{refunded.pop(line.key).normalize():f}"
                    if line.key in refunded
                    else "",
                )
                for line in receipt.lines
            ),
        )
        heads = format_html_join(
            "",
            "<th>{}</th>",
            (
                (capfirst(head),)
                for head in (
                    _("name"),
                    _("quantity"),
                    _("unit"),
                    _("price"),
                    _("sum"),
                    _("VAT rate"),
                    _("payment subject"),
                    _("payment method"),
                    _("refunded"),
                )
            ),
        )
        delivery = dict(delivery_choices()).get(receipt.delivery, receipt.delivery)
        return format_html(
            '<table class="payments-ru-receipt"><thead><tr>{}</tr></thead>'
            '<tbody>{}</tbody><tfoot><tr><td colspan="4">{}</td><td>{}</td>'
            '<td colspan="4">{}</td></tr></tfoot></table>',
            heads,
            rows,
            _("Total"),
            _money_display(receipt.total, obj.currency),
            _("sent by: %(delivery)s") % {"delivery": delivery},
        )

    metadata_display = _preformatted_field(
        "metadata", gettext_lazy("metadata"), as_json=True
    )
    attention_reason_display = _preformatted_field(
        "attention_text", gettext_lazy("attention history")
    )

    @admin.display(description=gettext_lazy("payment link"))
    def payment_link(self, obj: Invoice) -> SafeString | str:
        # The pay link works for every provider and can be sent to the
        # customer: it starts the payment when opened. Without BASE_URL the
        # path is shown (the copy button makes it absolute).
        try:
            link = pay_link(obj)
        except ImproperlyConfigured:
            link = pay_path(obj)
        copy = format_html(
            '<input type="text" id="payments-ru-pay-link" value="{}" readonly '
            'size="60" class="vTextField"> <button type="button" class="button" '
            'data-payments-ru-copy="payments-ru-pay-link">{}</button>',
            link,
            _("Copy"),
        )
        checkout = obj.get_checkout()
        if checkout is None:
            return format_html(
                "{}<br>{}",
                copy,
                _("Not started yet: the provider is called when the link is opened."),
            )
        note = " " + _("(expired)") if checkout.has_expired() else ""
        if not safe_redirect_url(checkout.url):
            return format_html("{}<br>{}{}", copy, checkout.url, note)
        if checkout.method == "GET":
            return format_html(
                '{}<br>{} <a href="{}" target="_blank" rel="noopener noreferrer">'
                "{}</a>{}",
                copy,
                _("The provider's page:"),
                checkout.url,
                checkout.url,
                note,
            )
        # The admin's own form encloses read-only fields and forms do not nest:
        # the button submits the separate form the change page renders after it.
        return format_html(
            '{}<br><button type="submit" form="payments-ru-admin-checkout" '
            'class="button">{}</button> <span>{} {}</span>{}',
            copy,
            _("Open the payment page"),
            "POST",
            checkout.url,
            note,
        )

    def get_search_results(
        self, request: HttpRequest, queryset: QuerySet[Any], search_term: str
    ) -> tuple[QuerySet[Any], bool]:
        # No joins: never duplicates.
        return search_invoices(queryset, search_term), False

    # --- forms and permissions -----------------------------------------------------

    def get_fieldsets(self, request: HttpRequest, obj: Any = None) -> Any:
        if obj is None:
            return self.add_fieldsets
        if self.has_change_permission(request, obj):
            return self.change_fieldsets
        return [
            (
                name,
                {"fields": tuple(f for f in opts["fields"] if f != "attention_note")},
            )
            for name, opts in self.change_fieldsets
        ]

    def get_readonly_fields(self, request: HttpRequest, obj: Any = None) -> Any:
        if obj is None:
            return ()
        return tuple(
            field
            for _name, opts in self.change_fieldsets
            for field in opts["fields"]
            if field not in self.editable_fields
        )

    def get_inline_instances(self, request: HttpRequest, obj: Any = None) -> Any:
        return super().get_inline_instances(request, obj) if obj else []

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        # An invoice is an accounting record (and its payments protect it):
        # cancel it instead.
        return False

    def save_model(
        self, request: HttpRequest, obj: Invoice, form: Any, change: bool
    ) -> None:
        if not change:  # pragma: no cover - the add view never gets here
            raise PermissionDenied
        flag = form.cleaned_data.get("needs_attention", obj.needs_attention)
        note = form.cleaned_data.get("attention_note", "").strip()
        with transaction.atomic():
            # Lock and re-read: a webhook may have changed the invoice (and added
            # to its attention history) since the page was opened.
            locked = Invoice.objects.select_for_update().get(pk=obj.pk)
            fields = ["updated_at"]
            if locked.needs_attention != flag:
                locked.needs_attention = flag
                fields.append("needs_attention")
            if note:
                # The merchant's words stay as typed; the frame is translated.
                locked.add_attention_note(
                    msg(
                        "merchant_note" if flag else "merchant_cleared",
                        user=request.user.get_username(),
                        note=note,
                    )
                )
                fields.append("attention_notes")
            locked.save(update_fields=fields)
        obj.refresh_from_db()

    # --- the change page ------------------------------------------------------

    def changelist_view(
        self, request: HttpRequest, extra_context: dict[str, Any] | None = None
    ) -> HttpResponse:
        extra = dict(extra_context or {})
        extra["payments_ru_provider_views"] = self.provider_view_links(request)
        if request.method == "GET":
            for alias in registry.aliases():
                self._warn_health(request, alias)
        return super().changelist_view(request, extra)

    def _warn_health(self, request: HttpRequest, alias: str) -> None:
        """What the provider says the merchant must act on now
        (:meth:`~django_payments_ru.providers.base.BaseProvider.health`)."""
        try:
            provider = registry.get_provider(alias)
            problems = provider.health()
        except ImproperlyConfigured:
            return
        except Exception:  # a provider bug must not break the admin
            logger.exception("The health of %s cannot be read", alias)
            return
        for problem in problems:
            messages.warning(request, f"{_provider_label(provider)}: {problem}")

    def change_view(
        self,
        request: HttpRequest,
        object_id: str,
        form_url: str = "",
        extra_context: dict[str, Any] | None = None,
    ) -> HttpResponse:
        extra = dict(extra_context or {})
        invoice = self.get_object(request, unquote(object_id))
        if invoice is not None:
            extra.update(self._tools(request, invoice))
            if request.method == "GET":
                self._warn_health(request, invoice.provider)
        return super().change_view(request, object_id, form_url, extra)

    def _tools(self, request: HttpRequest, invoice: Invoice) -> dict[str, Any]:
        """Which operations the change page offers, and the POST checkout form."""
        checkout = invoice.get_checkout()
        context: dict[str, Any] = {
            "payments_ru_checkout": (
                {"url": checkout.url, "fields": list(checkout.fields.items())}
                if checkout is not None
                and checkout.method == "POST"
                and safe_redirect_url(checkout.url)
                else None
            ),
        }
        if not self.has_change_permission(request, invoice):
            return context
        try:
            provider = invoice.get_provider()
        except ImproperlyConfigured:
            return context  # nothing can be asked of a provider that is gone
        context.update(
            # Why an action is missing: "refunds are on-chain transfers".
            payments_ru_capability_notes=[
                note
                for capability, note in provider.capability_notes.items()
                if not provider.supports(capability)
            ],
            payments_ru_operations=[
                {
                    "url": self._url(invoice, "operation", op.name),
                    "label": op.label,
                    # A link to its confirmation page, or a POST that runs it.
                    "confirms": op.confirms,
                }
                for op in INVOICE_OPERATIONS
                if op.available(invoice, provider)
                and self._allowed(request, op.permission, invoice)
            ],
            payments_ru_can_refund=(
                invoice.is_paid
                and invoice.refundable_amount > 0
                and provider.supports(Capability.REFUND)
            ),
            payments_ru_forms=[
                {
                    "url": self._url(invoice, "provider_form", spec.slug),
                    "label": spec.label,
                }
                for spec in self._admin_forms(invoice)
            ],
        )
        return context
