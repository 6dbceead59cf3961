"""The invoice admin's own views, the ones the stock ``ModelAdmin`` has none
for: adding an invoice through the services, running an operation by name,
refunding, and the forms an invoice's provider offers. :class:`InvoicePages`
holds them, their URLs and what they share (the page context, the permission
check); :class:`~django_payments_ru.admin.invoices.InvoiceAdmin` builds on it.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from django import forms
from django.contrib import admin, messages
from django.contrib.admin import helpers
from django.contrib.admin.utils import unquote
from django.core.exceptions import ImproperlyConfigured, PermissionDenied
from django.http import (
    Http404,
    HttpRequest,
    HttpResponse,
    HttpResponseNotAllowed,
    HttpResponseRedirect,
)
from django.template.response import TemplateResponse
from django.urls import URLPattern, path, reverse
from django.utils.html import format_html
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy

from .. import registry, services
from ..exceptions import InvalidInput, PaymentsError
from ..models import Invoice
from ..providers.base import AdminForm, BaseProvider, ProviderAdminView
from .base import _error_text, _label, _money, _provider_label, logger
from .forms import InvoiceAddForm, RefundForm, _show_error
from .operations import OPERATIONS_BY_NAME
from .status import StatusPage


class InvoicePages(StatusPage, admin.ModelAdmin):
    """The add, operation, refund and provider-form views of the invoice admin."""

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

    # --- what the pages share ---------------------------------------------------

    def _url(self, invoice: Invoice, view: str, *args: str) -> str:
        """The URL of one of ``invoice``'s admin pages: ``change``, ``refund``,
        ``operation`` (with its name), ``provider_form`` (with its slug)."""
        return reverse(
            f"admin:{self.opts.app_label}_{self.opts.model_name}_{view}",
            args=[invoice.pk, *args],
            current_app=self.admin_site.name,
        )

    def _allowed(self, request: HttpRequest, permission: str, invoice: Invoice) -> bool:
        check = getattr(self, f"has_{permission}_permission")
        return bool(check(request, invoice))

    def _get_for_operation(
        self, request: HttpRequest, object_id: str, permission: str = "change"
    ) -> Invoice:
        """The invoice a page or an operation acts on, if the user may."""
        invoice = self.get_object(request, unquote(object_id))
        if invoice is None:
            raise Http404(_("No such invoice."))
        if not self._allowed(request, permission, invoice):
            raise PermissionDenied
        return invoice

    def _page_context(
        self,
        request: HttpRequest,
        invoice: Invoice | None,
        title: str,
        media: forms.Media,
        **extra: Any,
    ) -> dict[str, Any]:
        """What every page here starts from: the admin site's context, the
        title, the model and, on an invoice's own pages, the invoice and the way
        back to it."""
        context = {
            **self.admin_site.each_context(request),
            "title": title,
            "subtitle": None,
            "opts": self.opts,
            "app_label": self.opts.app_label,
            "original": invoice,
            "media": self.media + media,
        }
        if invoice is not None:
            context["change_url"] = self._url(invoice, "change")
        context.update(extra)
        return context

    def _render_page(
        self, request: HttpRequest, template: str, context: dict[str, Any]
    ) -> HttpResponse:
        request.current_app = self.admin_site.name
        return TemplateResponse(
            request, f"admin/django_payments_ru/invoice/{template}", context
        )

    def _done(self, request: HttpRequest, invoice: Invoice, message: str) -> None:
        """Report what a page did, and keep it in the invoice's history."""
        self.log_change(request, invoice, message)
        self.message_user(request, message, messages.SUCCESS)

    # --- the URLs and the operation view -----------------------------------------

    def get_urls(self) -> list[URLPattern]:
        wrap = self.admin_site.admin_view
        info = self.opts.app_label, self.opts.model_name
        return [
            path(
                "provider/<str:alias>/<slug:slug>/",
                wrap(self.provider_view),
                name="{}_{}_provider_view".format(*info),
            ),
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

    # --- the providers' own pages (BaseProvider.admin_views) ---------------------

    def _provider_views(
        self, request: HttpRequest
    ) -> list[tuple[BaseProvider, ProviderAdminView]]:
        """Every provider page the user may see, alias by alias."""
        found = []
        for alias in registry.aliases():
            try:
                provider = registry.get_provider(alias)
                views = provider.admin_views()
            except ImproperlyConfigured:
                continue  # the system checks report it
            except Exception:  # a provider bug must not break the invoice list
                logger.exception("The admin pages of %s cannot be listed", alias)
                continue
            found += [
                (provider, spec)
                for spec in views
                if request.user.has_perm(spec.permission)
            ]
        return found

    def provider_view_links(self, request: HttpRequest) -> list[dict[str, str]]:
        return [
            {
                "url": reverse(
                    f"admin:{self.opts.app_label}_{self.opts.model_name}_provider_view",
                    args=[provider.alias, spec.slug],
                    current_app=self.admin_site.name,
                ),
                "label": f"{_provider_label(provider)}: {spec.title}",
            }
            for provider, spec in self._provider_views(request)
        ]

    def provider_view(
        self, request: HttpRequest, alias: str, slug: str
    ) -> HttpResponse:
        """One page of :meth:`~BaseProvider.admin_views`, for one alias."""
        try:
            provider = registry.get_provider(alias)
        except ImproperlyConfigured:
            raise Http404(_("No such payment provider.")) from None
        spec = next((v for v in provider.admin_views() if v.slug == slug), None)
        if spec is None:
            raise Http404(_("No such page."))
        if not request.user.has_perm(spec.permission) or (
            request.method not in ("GET", "HEAD")
            and not self.has_change_permission(request)
        ):
            raise PermissionDenied
        answer = spec.view(request, provider)
        if isinstance(answer, HttpResponse):
            return answer
        title = f"{_provider_label(provider)}: {spec.title}"
        context = self._page_context(
            request, None, title, forms.Media(), provider=provider, **answer
        )
        context["changelist_url"] = reverse(
            f"admin:{self.opts.app_label}_{self.opts.model_name}_changelist",
            current_app=self.admin_site.name,
        )
        request.current_app = self.admin_site.name
        return TemplateResponse(
            request,
            spec.template or "admin/django_payments_ru/provider_page.html",
            context,
        )

    def operation_view(
        self, request: HttpRequest, object_id: str, operation: str
    ) -> HttpResponse:
        """The change page's buttons: one operation of
        :data:`~.operations.INVOICE_OPERATIONS`, by name, POST only."""
        if request.method != "POST":
            return HttpResponseNotAllowed(["POST"])
        spec = OPERATIONS_BY_NAME.get(operation)
        if spec is None:
            raise Http404(_("No such operation."))
        invoice = self._get_for_operation(request, object_id, spec.permission)
        spec.run(self, request, invoice)
        return HttpResponseRedirect(self._url(invoice, "change"))

    # --- adding: through the services -------------------------------------------

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
        admin_form = self._admin_form(form, list(self.add_fieldsets))
        context = self._page_context(
            request,
            None,
            _("Add %s") % self.opts.verbose_name,
            admin_form.media,
            adminform=admin_form,
            object_id=None,
            is_popup=False,
            to_field=None,
            inline_admin_formsets=[],
            errors=helpers.AdminErrorList(form, []),  # type: ignore[arg-type]
            preserved_filters=self.get_preserved_filters(request),
            show_save_and_add_another=False,
        )
        context.update(extra_context or {})
        return self.render_change_form(
            request, context, add=True, change=False, form_url=form_url
        )

    def _admin_form(self, form: forms.Form, fieldsets: list[Any]) -> helpers.AdminForm:
        # AdminForm and AdminErrorList only read the form's fields and errors: a
        # plain Form serves (the stubs ask for a ModelForm).
        return helpers.AdminForm(
            form,  # type: ignore[arg-type]
            fieldsets,
            {},
            (),
            model_admin=self,
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
        url = self._url(invoice, "change")
        link = format_html('<a href="{}">{}</a>', url, _label(invoice))
        try:
            services.start_payment(invoice, request)
        except Exception as exc:
            error = _error_text(exc, "Starting the payment of %s failed", invoice.uuid)
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
                    error,
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

    # --- refunds ----------------------------------------------------------------

    def refund_view(self, request: HttpRequest, object_id: str) -> HttpResponse:
        """Refund a paid invoice, fully or partly, after a confirmation form."""
        invoice = self._get_for_operation(request, object_id)
        if request.method == "POST":
            form = RefundForm(request.POST)
            if form.is_valid() and self._refund(request, invoice, form):
                return HttpResponseRedirect(self._url(invoice, "change"))
        else:
            form = RefundForm(
                initial={"amount": _money(invoice.refundable_amount, invoice.currency)}
            )
        context = self._page_context(
            request,
            invoice,
            _("Refund %(invoice)s") % {"invoice": _label(invoice)},
            form.media,
            form=form,
            paid=_money(invoice.paid_amount, invoice.currency),
            refunded=_money(invoice.refunded_amount, invoice.currency),
            refundable=_money(invoice.refundable_amount, invoice.currency),
        )
        return self._render_page(request, "refund.html", context)

    def _refund(self, request: HttpRequest, invoice: Invoice, form: RefundForm) -> bool:
        amount = form.cleaned_data["amount"].strip() or None
        before = invoice.refunded_amount
        try:
            invoice = services.refund_invoice(invoice, amount)
        except Exception as exc:
            _show_error(form, exc, "Refund of invoice %s failed", invoice.uuid)
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
        self._done(request, invoice, message)
        return True

    # --- the providers' own forms -----------------------------------------------

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
                return HttpResponseRedirect(self._url(invoice, "change"))
        else:
            form = spec.form_class(initial=initial)
        admin_form = self._admin_form(form, [(None, {"fields": list(form.fields)})])
        context = self._page_context(
            request,
            invoice,
            f"{spec.label}: {_label(invoice)}",
            admin_form.media,
            form_label=spec.label,
            help_text=spec.help_text,
            form=form,
            adminform=admin_form,
        )
        return self._render_page(request, "provider_form.html", context)

    def _handle_form(
        self,
        request: HttpRequest,
        invoice: Invoice,
        spec: AdminForm,
        form: forms.Form,
    ) -> bool:
        try:
            result = spec.handle(invoice, form.cleaned_data)
        except Exception as exc:
            _show_error(
                form, exc, "Admin form %r of invoice %s failed", spec.slug, invoice.uuid
            )
            return False
        message = _("%(invoice)s, %(form)s: %(result)s") % {
            "invoice": _label(invoice),
            "form": spec.label,
            "result": result or _("done."),
        }
        self._done(request, invoice, message)
        return True
