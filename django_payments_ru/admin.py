"""The merchant admin: invoices and the webhook inbox.

Everything that moves money or changes a status goes through
:mod:`django_payments_ru.services`: adding an invoice (created, then started at
the provider), refreshing, cancelling and refunding it, capturing or releasing a
hold, reprocessing a webhook event. A provider may add its own forms to an
invoice's page (:meth:`BaseProvider.admin_forms
<django_payments_ru.providers.base.BaseProvider.admin_forms>`); their handlers
call the provider themselves. The admin itself writes only the merchant's own
notes (the "needs attention" flag and its note), under a row lock and with
``update_fields``, so a webhook processed while the page was open is never
overwritten.

Provider options are never shown; webhook payloads are stored already redacted.
"""

from __future__ import annotations

import json
import logging
from decimal import Decimal
from typing import Any
from urllib.parse import urlsplit

from django import forms
from django.contrib import admin, messages
from django.contrib.admin import helpers
from django.contrib.admin.utils import unquote
from django.core.exceptions import ImproperlyConfigured, PermissionDenied
from django.db import transaction
from django.db.models import Exists, OuterRef, QuerySet
from django.http import (
    Http404,
    HttpRequest,
    HttpResponse,
    HttpResponseNotAllowed,
    HttpResponseRedirect,
)
from django.template.response import TemplateResponse
from django.urls import URLPattern, path, reverse
from django.utils import timezone
from django.utils.html import format_html
from django.utils.safestring import SafeString
from django.utils.text import capfirst
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy, ngettext

from . import registry, services
from .exceptions import InvalidInput, PaymentsError
from .models import Invoice, Operation, Payment, WebhookEvent
from .money import format_amount
from .providers.base import AdminForm, Capability
from .status import PAYABLE, InvoiceStatus

logger = logging.getLogger("django_payments_ru")

#: Errors an admin operation reports as a message instead of a server error.
#: ImproperlyConfigured: the invoice's provider alias is no longer configured.
OPERATION_ERRORS = (PaymentsError, ImproperlyConfigured)


def _error_text(exc: BaseException) -> str:
    # PaymentsError.__str__ already says what happened and what to do, without
    # secrets; other exceptions are unexpected and logged with their traceback.
    if isinstance(exc, OPERATION_ERRORS):
        return str(exc)
    return _("Unexpected error (%(type)s); the details are in the server log.") % {
        "type": type(exc).__name__
    }


def _money(amount: Decimal | None, currency: str) -> str:
    """``amount`` with its currency's decimals (the column keeps three)."""
    if amount is None:
        return "-"
    try:
        return format_amount(amount, currency)
    except InvalidInput:  # a currency unregistered since: show what is stored
        return str(amount)


def _label(invoice: Invoice) -> str:
    reference = invoice.order_id or str(invoice.uuid)[:8]
    return (
        f"{reference} ({_money(invoice.amount, invoice.currency)} {invoice.currency})"
    )


def _safe_url(url: str) -> bool:
    parts = urlsplit(url)
    return parts.scheme in ("http", "https") and bool(parts.netloc)


def _provider_choices() -> list[tuple[str, str]]:
    choices = []
    for alias in registry.aliases():
        try:
            name = registry.get_provider(alias).display_name
        except ImproperlyConfigured:
            name = ""
        label = f"{alias} ({name})" if name and name != alias else alias
        choices.append((alias, label))
    return choices


# --- forms ------------------------------------------------------------------------


class InvoiceAddForm(forms.Form):
    """The merchant's new invoice; :func:`services.create_invoice` validates it."""

    provider = forms.ChoiceField(label=capfirst(gettext_lazy("provider")), choices=())
    # A CharField, not a DecimalField: the services parse the amount strictly and
    # say exactly what is wrong ("10.001" has more decimals than RUB allows).
    amount = forms.CharField(
        label=capfirst(gettext_lazy("amount")),
        max_length=40,
        widget=forms.TextInput(attrs={"inputmode": "decimal", "class": "vTextField"}),
        help_text=gettext_lazy("In major units with a point: 1234.50"),
    )
    currency = forms.CharField(
        label=capfirst(gettext_lazy("currency")),
        max_length=3,
        initial="RUB",
        help_text=gettext_lazy("ISO 4217 code: RUB, USD, EUR..."),
    )
    order_id = forms.CharField(
        label=capfirst(gettext_lazy("order id")), max_length=64, required=False
    )
    order_key = forms.CharField(
        label=capfirst(gettext_lazy("order")),
        max_length=64,
        required=False,
        help_text=gettext_lazy(
            "Invoices with the same order are alternatives: once one is paid, "
            "the others are cancelled."
        ),
    )
    description = forms.CharField(
        label=capfirst(gettext_lazy("description")),
        max_length=255,
        required=False,
        widget=forms.TextInput(attrs={"class": "vTextField"}),
    )
    customer_email = forms.EmailField(
        label=capfirst(gettext_lazy("customer e-mail")), required=False
    )
    customer_phone = forms.CharField(
        label=capfirst(gettext_lazy("customer phone")), max_length=32, required=False
    )

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        # Read at each request: PAYMENTS_RU may change (override_settings, reload).
        choices = _provider_choices()
        provider = self.fields["provider"]
        assert isinstance(provider, forms.ChoiceField)
        provider.choices = choices
        if len(choices) == 1:
            self.fields["provider"].initial = choices[0][0]


class InvoiceChangeForm(forms.ModelForm):
    """The only things a merchant edits: the attention flag and a note."""

    attention_note = forms.CharField(
        label=capfirst(gettext_lazy("note")),
        required=False,
        widget=forms.Textarea(attrs={"rows": 2, "cols": 60}),
        help_text=gettext_lazy(
            "Added to the attention history with your name. Required when you "
            "clear “needs attention”."
        ),
    )

    class Meta:
        model = Invoice
        fields = ["needs_attention"]

    def clean(self) -> dict[str, Any]:
        super().clean()
        data = self.cleaned_data
        clearing = self.instance.needs_attention and not data.get("needs_attention")
        if clearing and not data.get("attention_note", "").strip():
            self.add_error(
                "attention_note",
                _("Say what was done about it: the note is kept with the invoice."),
            )
        return data


class RefundForm(forms.Form):
    amount = forms.CharField(
        label=capfirst(gettext_lazy("amount to refund")),
        max_length=40,
        required=False,
        widget=forms.TextInput(attrs={"inputmode": "decimal"}),
        help_text=gettext_lazy("Leave empty to refund everything not yet refunded."),
    )


# --- inlines ----------------------------------------------------------------------


class _ReadOnlyInline(admin.TabularInline):
    extra = 0
    can_delete = False

    def has_add_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


class PaymentInline(_ReadOnlyInline):
    model = Payment
    fields = (
        "kind",
        "amount",
        "currency",
        "provider_payment_id",
        "source",
        "created_at",
    )
    readonly_fields = fields
    verbose_name_plural = gettext_lazy("money movements")


class OperationInline(_ReadOnlyInline):
    model = Operation
    fields = ("kind", "state", "amount", "reason", "created_at", "settled_at")
    readonly_fields = fields
    verbose_name_plural = gettext_lazy("operations sent to the provider")
    show_change_link = True


class WebhookEventInline(_ReadOnlyInline):
    model = WebhookEvent
    fields = ("event_type", "status", "result", "received_at")
    readonly_fields = fields
    show_change_link = True


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
class InvoiceAdmin(admin.ModelAdmin):
    list_display = (
        "reference",
        "amount_display",
        "status",
        "provider",
        "order_id",
        "needs_attention",
        "paid_twice",
        "created_at",
        "paid_at",
    )
    list_display_links = ("reference",)
    list_filter = (
        "status",
        "provider",
        "needs_attention",
        "paid_twice",
        InFlightFilter,
        OrderFilter,
        "created_at",
    )
    search_fields = (
        "order_id",
        "order_key",
        "customer_email",
        "customer_phone",
        "provider_payment_id",
        "uuid",
    )
    # No foreign keys in the list: one query for the page, none per row.
    list_select_related = False
    date_hierarchy = "created_at"
    list_per_page = 50
    actions = (
        "refresh_from_provider",
        "cancel_invoices",
        "capture_holds",
        "release_holds",
    )
    inlines = (PaymentInline, OperationInline, WebhookEventInline)
    form = InvoiceChangeForm

    add_fieldsets: Any = (
        (None, {"fields": ("provider", "amount", "currency")}),
        (
            gettext_lazy("Order"),
            {
                "fields": (
                    "order_id",
                    "order_key",
                    "description",
                    "customer_email",
                    "customer_phone",
                )
            },
        ),
    )
    change_fieldsets = (
        (
            None,
            {
                "fields": (
                    "reference",
                    "provider",
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
            gettext_lazy("Attention"),
            {
                "fields": (
                    "needs_attention",
                    "paid_twice",
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

    # --- columns and read-only fields --------------------------------------------

    @admin.display(description=gettext_lazy("invoice"), ordering="-created_at")
    def reference(self, obj: Invoice) -> str:
        return obj.order_id or str(obj.uuid)[:8]

    @admin.display(description=gettext_lazy("amount"), ordering="amount")
    def amount_display(self, obj: Invoice) -> str:
        return f"{_money(obj.amount, obj.currency)} {obj.currency}"

    @admin.display(description=gettext_lazy("paid"))
    def paid_display(self, obj: Invoice) -> str:
        return f"{_money(obj.paid_amount, obj.currency)} {obj.currency}"

    @admin.display(description=gettext_lazy("refunded"))
    def refunded_display(self, obj: Invoice) -> str:
        return f"{_money(obj.refunded_amount, obj.currency)} {obj.currency}"

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

    @admin.display(description=gettext_lazy("metadata"))
    def metadata_display(self, obj: Invoice) -> SafeString | str:
        if not obj.metadata:
            return "-"
        text = json.dumps(obj.metadata, indent=2, ensure_ascii=False, sort_keys=True)
        return format_html("<pre>{}</pre>", text)

    @admin.display(description=gettext_lazy("attention history"))
    def attention_reason_display(self, obj: Invoice) -> SafeString | str:
        if not obj.attention_reason:
            return "-"
        return format_html("<pre>{}</pre>", obj.attention_reason)

    @admin.display(description=gettext_lazy("payment link"))
    def payment_link(self, obj: Invoice) -> SafeString | str:
        checkout = obj.get_checkout()
        if checkout is None:
            return _("None yet: the payment has not been started.")
        note = ""
        if checkout.expires_at is not None and checkout.expires_at <= timezone.now():
            note = " " + _("(expired)")
        if not _safe_url(checkout.url):
            return f"{checkout.url}{note}"
        if checkout.method == "GET":
            return format_html(
                '<a href="{}" target="_blank" rel="noopener noreferrer">{}</a>{}',
                checkout.url,
                checkout.url,
                note,
            )
        # The admin's own form encloses read-only fields and forms do not nest:
        # the button submits the separate form the change page renders after it.
        return format_html(
            '<button type="submit" form="payments-ru-admin-checkout" '
            'class="button">{}</button> <span>{} {}</span>{}',
            _("Open the payment page"),
            "POST",
            checkout.url,
            note,
        )

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
        if not change:  # pragma: no cover - add_view below never gets here
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
                stamp = timezone.now().strftime("%Y-%m-%d %H:%M")
                template = (
                    _("%(user)s cleared the flag: %(note)s")
                    if not flag
                    else _("%(user)s: %(note)s")
                )
                line = f"{stamp}: " + template % {
                    "user": request.user.get_username(),
                    "note": note,
                }
                locked.attention_reason = (
                    f"{locked.attention_reason}\n{line}"
                    if locked.attention_reason
                    else line
                )
                fields.append("attention_reason")
            locked.save(update_fields=fields)
        obj.refresh_from_db()

    # --- adding: through the services -----------------------------------------------

    def add_view(
        self,
        request: HttpRequest,
        form_url: str = "",
        extra_context: dict[str, Any] | None = None,
    ) -> HttpResponse:
        """Create the invoice with :func:`services.create_invoice`, then start it
        at the provider with :func:`services.start_payment`.

        Not the stock add view: that one saves a model form inside one database
        transaction, and a provider call must run outside any transaction.
        Bad input is shown on its field and writes nothing. If the provider
        fails to start the payment, the invoice (valid, unpaid) is kept in
        ``created`` status and its page says so, with "Start payment" to try
        again: resubmitting the form would create a second invoice.
        """
        if not self.has_add_permission(request):
            raise PermissionDenied
        if request.method == "POST":
            form = InvoiceAddForm(request.POST)
            if form.is_valid():
                invoice = self._create_invoice(request, form)
                if invoice is not None:
                    return self._started(request, invoice)
        else:
            form = InvoiceAddForm(initial=self.get_changeform_initial_data(request))
        # AdminForm and AdminErrorList only read the form's fields and errors: a
        # plain Form serves (the stubs ask for a ModelForm).
        admin_form = helpers.AdminForm(
            form,  # type: ignore[arg-type]
            list(self.add_fieldsets),
            {},
            (),
            model_admin=self,
        )
        context = {
            **self.admin_site.each_context(request),
            "title": _("Add %s") % self.opts.verbose_name,
            "subtitle": None,
            "adminform": admin_form,
            "object_id": None,
            "original": None,
            "is_popup": False,
            "to_field": None,
            "media": self.media + admin_form.media,
            "inline_admin_formsets": [],
            "errors": helpers.AdminErrorList(form, []),  # type: ignore[arg-type]
            "preserved_filters": self.get_preserved_filters(request),
            "show_save_and_add_another": False,
            **(extra_context or {}),
        }
        return self.render_change_form(
            request, context, add=True, change=False, form_url=form_url
        )

    def _create_invoice(
        self, request: HttpRequest, form: InvoiceAddForm
    ) -> Invoice | None:
        data = form.cleaned_data
        try:
            invoice = services.create_invoice(
                provider=data["provider"],
                amount=data["amount"],
                currency=data["currency"],
                order_id=data["order_id"],
                order_key=data["order_key"],
                description=data["description"],
                customer_email=data["customer_email"],
                customer_phone=data["customer_phone"],
            )
        except InvalidInput as exc:
            field = exc.field if exc.field in form.fields else None
            form.add_error(field, exc.message)
            return None
        except ImproperlyConfigured as exc:
            form.add_error("provider", str(exc))
            return None
        except PaymentsError as exc:
            form.add_error(None, str(exc))
            return None
        self.log_addition(request, invoice, [{"added": {}}])
        return invoice

    def _started(self, request: HttpRequest, invoice: Invoice) -> HttpResponse:
        url = self._change_url(invoice)
        link = format_html('<a href="{}">{}</a>', url, _label(invoice))
        try:
            services.start_payment(invoice, request)
        except Exception as exc:
            if not isinstance(exc, OPERATION_ERRORS):
                logger.exception("Starting the payment of %s failed", invoice.uuid)
            self.message_user(
                request,
                format_html(
                    _(
                        "Invoice {} was created, but the provider did not start the "
                        "payment: {} It stays “Created” with no payment "
                        "link: use “Start payment” to try again, or cancel "
                        "it."
                    ),
                    link,
                    _error_text(exc),
                ),
                messages.ERROR,
            )
            return HttpResponseRedirect(url)
        self.message_user(
            request,
            format_html(_("Invoice {} was created; its payment link is below."), link),
            messages.SUCCESS,
        )
        return HttpResponseRedirect(url)

    # --- the change page ------------------------------------------------------------

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
        return super().change_view(request, object_id, form_url, extra)

    def _tools(self, request: HttpRequest, invoice: Invoice) -> dict[str, Any]:
        """Which operations the change page offers, and the POST checkout form."""
        checkout = invoice.get_checkout()
        context: dict[str, Any] = {
            "payments_ru_checkout": (
                {"url": checkout.url, "fields": list(checkout.fields.items())}
                if checkout is not None
                and checkout.method == "POST"
                and _safe_url(checkout.url)
                else None
            ),
        }
        if not self.has_change_permission(request, invoice):
            return context
        try:
            provider = invoice.get_provider()
        except ImproperlyConfigured:
            return context  # nothing can be asked of a provider that is gone
        holds = invoice.status == InvoiceStatus.ON_HOLD and provider.supports(
            Capability.HOLD
        )
        expired = (
            checkout is not None
            and checkout.expires_at is not None
            and checkout.expires_at <= timezone.now()
        )
        context.update(
            payments_ru_can_start=invoice.status in PAYABLE
            and (checkout is None or expired or invoice.status == InvoiceStatus.FAILED),
            payments_ru_can_refresh=provider.supports(Capability.STATUS),
            payments_ru_can_cancel=invoice.can_cancel,
            payments_ru_can_refund=(
                invoice.is_paid
                and invoice.refundable_amount > 0
                and provider.supports(Capability.REFUND)
            ),
            payments_ru_can_capture=holds,
            payments_ru_can_release=holds,
            payments_ru_forms=[
                {"url": self._form_url(invoice, spec), "label": spec.label}
                for spec in self._admin_forms(invoice)
            ],
        )
        return context

    def _admin_forms(self, invoice: Invoice) -> list[AdminForm]:
        """The provider's extra forms for ``invoice`` (none if it cannot say)."""
        try:
            return list(invoice.get_provider().admin_forms(invoice))
        except ImproperlyConfigured:
            return []
        except Exception:
            # A broken hook must not take the invoice's page down with it.
            logger.exception("admin_forms() of invoice %s failed", invoice.uuid)
            return []

    def _form_url(self, invoice: Invoice, spec: AdminForm) -> str:
        return reverse(
            f"admin:{self.opts.app_label}_{self.opts.model_name}_provider_form",
            args=[invoice.pk, spec.slug],
            current_app=self.admin_site.name,
        )

    def get_urls(self) -> list[URLPattern]:
        wrap = self.admin_site.admin_view
        info = self.opts.app_label, self.opts.model_name
        return [
            path(
                "<path:object_id>/refund/",
                wrap(self.refund_view),
                name="{}_{}_refund".format(*info),
            ),
            path(
                "<path:object_id>/form/<slug:slug>/",
                wrap(self.provider_form_view),
                name="{}_{}_provider_form".format(*info),
            ),
            path(
                "<path:object_id>/operation/<str:operation>/",
                wrap(self.operation_view),
                name="{}_{}_operation".format(*info),
            ),
            *super().get_urls(),
        ]

    def _change_url(self, invoice: Invoice) -> str:
        return reverse(
            f"admin:{self.opts.app_label}_{self.opts.model_name}_change",
            args=[invoice.pk],
            current_app=self.admin_site.name,
        )

    def _get_for_operation(self, request: HttpRequest, object_id: str) -> Invoice:
        invoice = self.get_object(request, unquote(object_id))
        if invoice is None:
            raise Http404(_("No such invoice."))
        if not self.has_change_permission(request, invoice):
            raise PermissionDenied
        return invoice

    # --- operations: actions on the list, buttons on the change page ----------------

    def _run(
        self,
        request: HttpRequest,
        invoice: Invoice,
        operation: str,
    ) -> bool:
        """Run one operation on one invoice and report it; never raises."""
        before = invoice.get_status_display()
        try:
            if operation == "refresh":
                invoice = services.refresh_invoice(invoice)
            elif operation == "cancel":
                invoice = services.cancel_invoice(invoice)
            elif operation == "start":
                services.start_payment(invoice, request)
                invoice.refresh_from_db()
            elif operation == "capture":
                invoice = services.capture_invoice(invoice)
            elif operation == "release":
                invoice = services.release_invoice(invoice)
            else:  # pragma: no cover - URLs and actions name only these
                raise ValueError(operation)
        except Exception as exc:
            if not isinstance(exc, OPERATION_ERRORS):
                logger.exception(
                    "Admin %s of invoice %s failed", operation, invoice.uuid
                )
            self.message_user(
                request,
                _("%(invoice)s: %(error)s")
                % {"invoice": _label(invoice), "error": _error_text(exc)},
                messages.ERROR,
            )
            return False
        done = {
            "refresh": _("refreshed from the provider"),
            "cancel": _("cancelled"),
            "start": _("payment started"),
            "capture": _("hold captured"),
            "release": _("hold released"),
        }[operation]
        after = invoice.get_status_display()
        self.log_change(request, invoice, done)
        self.message_user(
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
        return True

    @admin.action(
        description=gettext_lazy("Refresh from provider"), permissions=["change"]
    )
    def refresh_from_provider(
        self, request: HttpRequest, queryset: QuerySet[Invoice]
    ) -> None:
        for invoice in queryset:
            self._run(request, invoice, "refresh")

    @admin.action(description=gettext_lazy("Cancel"), permissions=["change"])
    def cancel_invoices(
        self, request: HttpRequest, queryset: QuerySet[Invoice]
    ) -> None:
        for invoice in queryset:
            self._run(request, invoice, "cancel")

    @admin.action(description=gettext_lazy("Capture hold"), permissions=["change"])
    def capture_holds(self, request: HttpRequest, queryset: QuerySet[Invoice]) -> None:
        for invoice in queryset:
            self._run(request, invoice, "capture")

    @admin.action(description=gettext_lazy("Release hold"), permissions=["change"])
    def release_holds(self, request: HttpRequest, queryset: QuerySet[Invoice]) -> None:
        for invoice in queryset:
            self._run(request, invoice, "release")

    def operation_view(
        self, request: HttpRequest, object_id: str, operation: str
    ) -> HttpResponse:
        """The change page's "Refresh", "Cancel", "Start payment", "Capture hold"
        and "Release hold" buttons."""
        if request.method != "POST":
            return HttpResponseNotAllowed(["POST"])
        if operation not in ("refresh", "cancel", "start", "capture", "release"):
            raise Http404(_("No such operation."))
        invoice = self._get_for_operation(request, object_id)
        self._run(request, invoice, operation)
        return HttpResponseRedirect(self._change_url(invoice))

    def refund_view(self, request: HttpRequest, object_id: str) -> HttpResponse:
        """Refund a paid invoice, fully or partly, after a confirmation form."""
        invoice = self._get_for_operation(request, object_id)
        if request.method == "POST":
            form = RefundForm(request.POST)
            if form.is_valid() and self._refund(request, invoice, form):
                return HttpResponseRedirect(self._change_url(invoice))
        else:
            form = RefundForm(
                initial={"amount": _money(invoice.refundable_amount, invoice.currency)}
            )
        context = {
            **self.admin_site.each_context(request),
            "title": _("Refund %(invoice)s") % {"invoice": _label(invoice)},
            "subtitle": None,
            "opts": self.opts,
            "app_label": self.opts.app_label,
            "original": invoice,
            "form": form,
            "change_url": self._change_url(invoice),
            "paid": _money(invoice.paid_amount, invoice.currency),
            "refunded": _money(invoice.refunded_amount, invoice.currency),
            "refundable": _money(invoice.refundable_amount, invoice.currency),
            "media": self.media + form.media,
        }
        request.current_app = self.admin_site.name
        return TemplateResponse(
            request, "admin/django_payments_ru/invoice/refund.html", context
        )

    def _refund(self, request: HttpRequest, invoice: Invoice, form: RefundForm) -> bool:
        amount = form.cleaned_data["amount"].strip() or None
        before = invoice.refunded_amount
        try:
            invoice = services.refund_invoice(invoice, amount)
        except InvalidInput as exc:
            form.add_error("amount" if exc.field == "amount" else None, exc.message)
            return False
        except Exception as exc:
            if not isinstance(exc, OPERATION_ERRORS):
                logger.exception("Refund of invoice %s failed", invoice.uuid)
            form.add_error(None, _error_text(exc))
            return False
        refunded = invoice.refunded_amount - before
        if refunded > 0:
            text = _("Refunded %(amount)s %(currency)s; the invoice is %(status)s.")
            amount_text = _money(refunded, invoice.currency)
        else:
            # The provider accepted the refund and will confirm it by webhook.
            text = _(
                "Refund of %(amount)s %(currency)s requested; the provider will "
                "confirm it. The invoice is %(status)s."
            )
            amount_text = _money(
                Decimal(amount) if amount else invoice.refundable_amount,
                invoice.currency,
            )
        message = text % {
            "amount": amount_text,
            "currency": invoice.currency,
            "status": invoice.get_status_display(),
        }
        self.log_change(request, invoice, message)
        self.message_user(request, message, messages.SUCCESS)
        return True

    # --- the providers' own forms -----------------------------------------------

    def provider_form_view(
        self, request: HttpRequest, object_id: str, slug: str
    ) -> HttpResponse:
        """One of the forms the invoice's provider offers
        (:meth:`~django_payments_ru.providers.base.BaseProvider.admin_forms`):
        shown filled in from the invoice, handled by the provider on submit."""
        invoice = self._get_for_operation(request, object_id)
        spec = next((f for f in self._admin_forms(invoice) if f.slug == slug), None)
        if spec is None:
            raise Http404(_("No such form for this invoice."))
        initial = spec.initial_for(invoice)
        if request.method == "POST":
            form = spec.form_class(request.POST, initial=initial)
            if form.is_valid() and self._handle_form(request, invoice, spec, form):
                return HttpResponseRedirect(self._change_url(invoice))
        else:
            form = spec.form_class(initial=initial)
        # A plain Form serves AdminForm (see add_view).
        admin_form = helpers.AdminForm(
            form,  # type: ignore[arg-type]
            [(None, {"fields": list(form.fields)})],
            {},
            (),
            model_admin=self,
        )
        context = {
            **self.admin_site.each_context(request),
            "title": f"{spec.label}: {_label(invoice)}",
            "subtitle": None,
            "form_label": spec.label,
            "help_text": spec.help_text,
            "opts": self.opts,
            "app_label": self.opts.app_label,
            "original": invoice,
            "form": form,
            "adminform": admin_form,
            "change_url": self._change_url(invoice),
            "media": self.media + admin_form.media,
        }
        request.current_app = self.admin_site.name
        return TemplateResponse(
            request, "admin/django_payments_ru/invoice/provider_form.html", context
        )

    def _handle_form(
        self,
        request: HttpRequest,
        invoice: Invoice,
        spec: AdminForm,
        form: forms.Form,
    ) -> bool:
        try:
            result = spec.handle(invoice, form.cleaned_data)
        except InvalidInput as exc:
            form.add_error(exc.field if exc.field in form.fields else None, exc.message)
            return False
        except Exception as exc:
            if not isinstance(exc, OPERATION_ERRORS):
                logger.exception(
                    "Admin form %r of invoice %s failed", spec.slug, invoice.uuid
                )
            form.add_error(None, _error_text(exc))
            return False
        message = _("%(invoice)s, %(form)s: %(result)s") % {
            "invoice": _label(invoice),
            "form": spec.label,
            "result": result or _("done."),
        }
        self.log_change(request, invoice, message)
        self.message_user(request, message, messages.SUCCESS)
        return True


# --- the webhook inbox ------------------------------------------------------------


def _pretty_json(value: Any) -> SafeString | str:
    if not value:
        return "-"
    text = json.dumps(value, indent=2, ensure_ascii=False, sort_keys=True, default=str)
    return format_html("<pre>{}</pre>", text)


class _RecordAdmin(admin.ModelAdmin):
    """A read-only page of records about invoices (operations, webhook events):
    nobody adds, edits or deletes them; each links to its invoice."""

    @admin.display(description=gettext_lazy("invoice"), ordering="invoice")
    def invoice_link(self, obj: Operation | WebhookEvent) -> SafeString | str:
        if obj.invoice is None:
            return "-"
        url = reverse(
            "admin:django_payments_ru_invoice_change",
            args=[obj.invoice.pk],
            current_app=self.admin_site.name,
        )
        return format_html('<a href="{}">{}</a>', url, obj.invoice)

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


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
        "reason",
        "created_at",
        "settled_at",
    )
    list_filter = ("state", "kind", "created_at")
    list_select_related = ("invoice",)
    search_fields = ("key", "invoice__uuid", "invoice__order_id")
    list_per_page = 50
    actions = ("release",)
    fields = (
        "invoice_link",
        "kind",
        "state",
        "amount",
        "key",
        "reason",
        "lease_until",
        "attempts",
        "created_at",
        "settled_at",
    )
    readonly_fields = fields

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
                services.release_claim(
                    operation,
                    _("released by %(user)s: not done at the provider")
                    % {"user": user},
                )
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


@admin.register(WebhookEvent)
class WebhookEventAdmin(_RecordAdmin):
    """Read-only: events are facts a provider sent. Reprocess re-runs a failed or
    rejected one through the services."""

    list_display = (
        "dedupe_id",
        "provider",
        "event_type",
        "status",
        "invoice_link",
        "attempts",
        "deliveries",
        "received_at",
    )
    list_filter = ("status", "provider", "event_type")
    list_select_related = ("invoice",)
    search_fields = ("dedupe_id", "invoice__uuid", "invoice__order_id")
    date_hierarchy = "received_at"
    list_per_page = 50
    actions = ("reprocess",)
    fields = (
        "provider",
        "dedupe_id",
        "event_type",
        "status",
        "invoice_link",
        "result",
        "traceback_display",
        "attempts",
        "deliveries",
        "received_at",
        "processed_at",
        "event_display",
        "payload_display",
    )
    readonly_fields = fields

    @admin.display(description=gettext_lazy("traceback"))
    def traceback_display(self, obj: WebhookEvent) -> SafeString | str:
        return format_html("<pre>{}</pre>", obj.traceback) if obj.traceback else "-"

    @admin.display(description=gettext_lazy("event"))
    def event_display(self, obj: WebhookEvent) -> SafeString | str:
        return _pretty_json(obj.event)

    @admin.display(description=gettext_lazy("payload"))
    def payload_display(self, obj: WebhookEvent) -> SafeString | str:
        return _pretty_json(obj.payload)

    def has_reprocess_permission(self, request: HttpRequest) -> bool:
        return request.user.has_perm(
            f"{self.opts.app_label}.change_{self.opts.model_name}"
        )

    @admin.action(description=gettext_lazy("Reprocess"), permissions=["reprocess"])
    def reprocess(self, request: HttpRequest, queryset: QuerySet[WebhookEvent]) -> None:
        for row in queryset.order_by("received_at", "pk"):
            label = str(row)
            if row.is_done and row.status != WebhookEvent.Status.REJECTED:
                # A processed or ignored event changed what it had to: running
                # it again would be a no-op (see services.process_webhook_event).
                self.message_user(
                    request,
                    _("%(event)s: already %(status)s; nothing to do.")
                    % {"event": label, "status": row.get_status_display()},
                    messages.INFO,
                )
                continue
            try:
                done = services.process_webhook_event(row.pk, force=True)
            except Exception as exc:
                # The services kept the error and traceback on the row.
                if not isinstance(exc, OPERATION_ERRORS):
                    logger.warning(
                        "Reprocessing webhook event %s failed: %s",
                        row.pk,
                        type(exc).__name__,
                    )
                self.message_user(
                    request,
                    _("%(event)s: failed again: %(error)s")
                    % {"event": label, "error": f"{type(exc).__name__}: {exc}"},
                    messages.ERROR,
                )
                continue
            self.message_user(
                request,
                _("%(event)s: %(status)s%(result)s")
                % {
                    "event": label,
                    "status": done.get_status_display(),
                    "result": f" ({done.result})" if done.result else "",
                },
                messages.SUCCESS
                if done.status != WebhookEvent.Status.FAILED
                else messages.ERROR,
            )


__all__ = [
    "InvoiceAddForm",
    "InvoiceAdmin",
    "InvoiceChangeForm",
    "RefundForm",
    "WebhookEventAdmin",
]
