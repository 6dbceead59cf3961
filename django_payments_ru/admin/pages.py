"""The invoice admin's own views, the ones the stock ``ModelAdmin`` has none
for: adding an invoice through the services, running an operation by name,
refunding, and the forms an invoice's provider offers. :class:`InvoicePages`
holds them, their URLs and what they share (the page context, the permission
check); :class:`~django_payments_ru.admin.invoices.InvoiceAdmin` builds on it.
"""

from __future__ import annotations

import json
from decimal import Decimal
from typing import Any

from django import forms
from django.contrib import messages
from django.contrib.admin import helpers
from django.contrib.admin.utils import unquote
from django.core.exceptions import ImproperlyConfigured, PermissionDenied
from django.db.models import Sum
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
from django.utils.translation import gettext_lazy, ngettext

from .. import registry, services
from ..exceptions import InvalidInput, PaymentsError
from ..formatting import plain_amount
from ..models import Invoice, Operation
from ..money import to_amount
from ..providers.base import AdminForm, BaseProvider, Capability, ProviderAdminView
from ..receipts import ReceiptLine, refundable_lines
from ..results import LOG_KEY, Message, msg
from ..status import InvoiceStatus
from .base import (
    NamedFilters,
    _error_text,
    _label,
    _money_display,
    _provider_label,
    _provider_name,
    log_repr,
    logger,
)
from .forms import InvoiceAddForm, RefundForm, _show_error
from .operations import CONFIRM_FIELD, OPERATIONS_BY_NAME, InvoiceOperation
from .status import StatusPage


class InvoicePages(StatusPage, NamedFilters):
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
        (
            gettext_lazy("Receipt (54-FZ)"),
            {"fields": ("receipt", "receipt_delivery")},
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

    def _done(
        self, request: HttpRequest, invoice: Invoice, message: str, logged: Message
    ) -> None:
        """Report what a page did, and keep it in the invoice's history (as a
        code, translated when the history is shown)."""
        self.log_change(request, invoice, logged)
        self.message_user(request, message, messages.SUCCESS)

    # --- the history (LogEntry) -----------------------------------------------

    def _log(self, request: HttpRequest, obj: Any, flag: int, message: Any) -> Any:
        """A LogEntry as Django's ``log_*`` write it, but named in no language
        (the invoice's status would stay in the words of the day it was
        written, "(Created)", in "Recent actions"), and with our messages
        stored as codes (:func:`log_message`)."""
        from django.contrib.admin.models import LogEntry
        from django.contrib.contenttypes.models import ContentType

        if isinstance(message, Message):
            message = [{LOG_KEY: message.to_json()}]
        if isinstance(message, list):
            message = json.dumps(message)
        content_type = ContentType.objects.get_for_model(obj, for_concrete_model=False)
        return LogEntry.objects.create(
            user_id=request.user.pk,  # type: ignore[misc]  # staff: logged in
            content_type_id=content_type.pk,
            object_id=str(obj.pk),
            object_repr=log_repr(obj)[:200],
            action_flag=flag,
            change_message=message,
        )

    def log_addition(self, request: HttpRequest, obj: Any, message: Any) -> Any:
        from django.contrib.admin.models import ADDITION

        return self._log(request, obj, ADDITION, message)

    def log_change(self, request: HttpRequest, obj: Any, message: Any) -> Any:
        from django.contrib.admin.models import CHANGE

        return self._log(request, obj, CHANGE, message)

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
        :data:`~.operations.INVOICE_OPERATIONS`, by name. One that moves or
        ends money (cancel, capture, release) first shows what will happen
        (GET, or a POST without the confirmation) and runs only on the
        confirming POST; the others run on a POST."""
        spec = OPERATIONS_BY_NAME.get(operation)
        if spec is None:
            raise Http404(_("No such operation."))
        allowed = ["GET", "HEAD", "POST"] if spec.confirms else ["POST"]
        if request.method not in allowed:
            return HttpResponseNotAllowed(allowed)
        invoice = self._get_for_operation(request, object_id, spec.permission)
        if spec.confirms and request.POST.get(CONFIRM_FIELD) != "yes":
            text, possible = spec.describe(invoice)
            return self._confirm_page(
                request,
                invoice,
                title=_("%(operation)s: %(invoice)s")
                % {"operation": spec.label, "invoice": _label(invoice)},
                items=[
                    {"invoice": _label(invoice), "text": text, "possible": possible}
                ],
                submit_label=str(spec.label),
                crumb=spec.label,
            )
        spec.run(self, request, invoice)
        return HttpResponseRedirect(self._url(invoice, "change"))

    def confirm_action(
        self, request: HttpRequest, spec: InvoiceOperation, invoices: list[Invoice]
    ) -> HttpResponse:
        """The confirmation page of a list action: what will happen to each
        selected invoice, or why it cannot; its form posts the action again,
        confirmed, with the invoices that can (the others are left alone)."""
        items = []
        for invoice in invoices:
            text, possible = spec.describe(invoice)
            items.append(
                {
                    "invoice": _label(invoice),
                    "url": self._url(invoice, "change"),
                    "text": text,
                    "possible": possible,
                    "pk": invoice.pk,
                }
            )
        hidden = [("action", spec.action or "")] + [
            (helpers.ACTION_CHECKBOX_NAME, str(item["pk"]))
            for item in items
            if item["possible"]
        ]
        count = len(hidden) - 1
        return self._confirm_page(
            request,
            None,
            title=str(spec.label),
            items=items,
            submit_label=ngettext(
                "%(operation)s %(count)d invoice",
                "%(operation)s %(count)d invoices",
                count,
            )
            % {"operation": spec.label, "count": count},
            crumb=spec.label,
            hidden=hidden,
            action_url=request.get_full_path(),
            back_url=reverse(
                f"admin:{self.opts.app_label}_{self.opts.model_name}_changelist",
                current_app=self.admin_site.name,
            ),
        )

    def _confirm_page(
        self,
        request: HttpRequest,
        invoice: Invoice | None,
        *,
        title: str,
        items: list[dict[str, Any]],
        submit_label: str,
        crumb: object,
        hidden: list[tuple[str, str]] | None = None,
        action_url: str = "",
        back_url: str = "",
    ) -> HttpResponse:
        """``confirm.html``: what will happen, and a form whose POST carries
        :data:`~.operations.CONFIRM_FIELD`; only the sentence when nothing can
        be done."""
        context = self._page_context(
            request,
            invoice,
            title,
            forms.Media(),
            items=items,
            possible=any(item["possible"] for item in items),
            hidden=hidden or [],
            confirm_field=CONFIRM_FIELD,
            action_url=action_url,
            submit_label=submit_label,
            crumb=crumb,
        )
        if back_url:
            context["change_url"] = back_url
        return self._render_page(request, "confirm.html", context)

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
                receipt=data.get("receipt_data"),
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
        """Refund a paid invoice, fully or partly: the form (empty: everything
        left), then the confirmation page stating the amount, then the refund.
        An invoice with nothing left to refund gets a sentence, not a form."""
        invoice = self._get_for_operation(request, object_id)
        left = self._refundable(invoice)
        refusal = self._refund_refusal(invoice, left)
        form = RefundForm(
            request.POST if request.method == "POST" else None,
            refundable=_money_display(left, invoice.currency),
            lines=self._refundable_lines(invoice),
            currency=invoice.currency,
        )
        if refusal is None and request.method == "POST" and form.is_valid():
            amount = self._refund_amount(invoice, form, left)
            if amount is not None and request.POST.get(CONFIRM_FIELD) == "yes":
                if self._refund(request, invoice, form):
                    return HttpResponseRedirect(self._url(invoice, "change"))
            elif amount is not None:
                return self._confirm_refund(request, invoice, form, amount, left)
        currency = invoice.currency
        context = self._page_context(
            request,
            invoice,
            _("Refund %(invoice)s") % {"invoice": _label(invoice)},
            form.media,
            form=form,
            refusal=refusal,
            paid=_money_display(invoice.paid_amount, currency),
            refunded=_money_display(invoice.refunded_amount, currency),
            refundable=_money_display(left, currency),
        )
        return self._render_page(request, "refund.html", context)

    def _refundable_lines(self, invoice: Invoice) -> tuple[ReceiptLine, ...]:
        """The receipt lines not yet refunded nor being refunded (none for an
        invoice without a receipt)."""
        paid = invoice.get_receipt()
        if paid is None:
            return ()
        return refundable_lines(paid, services.refunded_receipts(invoice))

    def _refundable(self, invoice: Invoice) -> Decimal:
        """What can still be refunded: paid, less refunded and refunds in flight."""
        in_flight = invoice.operations.filter(
            kind=Operation.Kind.REFUND, state=Operation.State.IN_FLIGHT
        ).aggregate(total=Sum("amount"))["total"] or Decimal(0)
        return max(invoice.quantize(invoice.refundable_amount - in_flight), Decimal(0))

    def _refund_refusal(self, invoice: Invoice, left: Decimal) -> str | None:
        """Why ``invoice`` cannot be refunded now, or None."""
        money = _money_display(invoice.paid_amount, invoice.currency)
        if invoice.status == InvoiceStatus.REFUNDED or (
            invoice.is_paid and invoice.refundable_amount <= 0
        ):
            return _(
                "This invoice is refunded in full (%(amount)s): nothing is left "
                "to refund."
            ) % {"amount": money}
        if not invoice.is_paid:
            return _(
                "This invoice is %(status)s: nothing has been paid, so there is "
                "nothing to refund."
            ) % {"status": invoice.get_status_display()}
        try:
            provider = invoice.get_provider()
        except ImproperlyConfigured as exc:
            return str(exc)
        if not provider.supports(Capability.REFUND):
            return _("%(provider)s does not support refunds.") % {
                "provider": _provider_name(provider)
            }
        if left <= 0:
            return _(
                "Refunds of everything left are awaiting the confirmation of "
                "%(provider)s: wait for it before refunding again."
            ) % {"provider": _provider_name(provider)}
        return None

    def _refund_amount(
        self, invoice: Invoice, form: RefundForm, left: Decimal
    ) -> Decimal | None:
        """The amount the form asks for (empty: everything left), or None with
        the error on the form."""
        text = form.cleaned_data["amount"].strip()
        if form.receipt_lines:
            return self._lines_amount(invoice, form, text, left)
        if not text:
            return left
        try:
            amount = to_amount(text, invoice.currency)
        except InvalidInput as exc:
            form.add_error("amount", exc.message)
            return None
        if amount > left:
            form.add_error(
                "amount",
                _("At most %(left)s can be refunded.")
                % {"left": _money_display(left, invoice.currency)},
            )
            return None
        return amount

    def _lines_amount(
        self, invoice: Invoice, form: RefundForm, text: str, left: Decimal
    ) -> Decimal | None:
        """The amount of a refund of receipt lines: the chosen lines' total
        (every line left when none is chosen), checked by the services before
        the confirmation page states it."""
        try:
            lines = services.refund_lines(invoice, form.chosen_lines(), text or None)
        except InvalidInput as exc:
            line = exc.details.get("line")
            field = "amount"
            if isinstance(line, int) and form.chosen_lines():
                chosen = form.hidden_lines()
                if 0 < line <= len(chosen):
                    field = chosen[line - 1][0]
            form.add_error(field, exc.message)
            return None
        if lines is None:  # pragma: no cover - the form has lines
            return left
        if lines.total > left:
            form.add_error(
                "amount",
                _("At most %(left)s can be refunded.")
                % {"left": _money_display(left, invoice.currency)},
            )
            return None
        return lines.total

    def _confirm_refund(
        self,
        request: HttpRequest,
        invoice: Invoice,
        form: RefundForm,
        amount: Decimal,
        left: Decimal,
    ) -> HttpResponse:
        currency = invoice.currency
        values = {
            "amount": _money_display(amount, currency),
            "provider": _provider_name(invoice.get_provider()),
            "left": _money_display(left - amount, currency),
        }
        chosen = form.chosen_lines() if form.receipt_lines else None
        if chosen is not None:
            text = _(
                "%(amount)s will be returned to the customer through "
                "%(provider)s for these receipt lines: %(lines)s; %(left)s can "
                "still be refunded afterwards."
            ) % {
                **values,
                "lines": "; ".join(
                    f"{line['name']} \u00d7 {line['quantity']}" for line in chosen
                ),
            }
        elif amount == invoice.refundable_amount:
            text = (
                _(
                    "%(amount)s will be returned to the customer through "
                    "%(provider)s: everything not yet refunded. The invoice "
                    "becomes refunded."
                )
                % values
            )
        else:
            text = (
                _(
                    "%(amount)s will be returned to the customer through "
                    "%(provider)s; %(left)s can still be refunded afterwards."
                )
                % values
            )
        return self._confirm_page(
            request,
            invoice,
            title=_("Refund %(invoice)s") % {"invoice": _label(invoice)},
            items=[{"invoice": _label(invoice), "text": text, "possible": True}],
            submit_label=_("Refund %(amount)s") % values,
            crumb=_("Refund"),
            # The amount stated, exactly (an empty field: what was left when
            # the page was shown, not what is left when it is confirmed).
            hidden=[("amount", plain_amount(amount, currency)), *form.hidden_lines()],
            action_url=self._url(invoice, "refund"),
        )

    def _refund(self, request: HttpRequest, invoice: Invoice, form: RefundForm) -> bool:
        amount = form.cleaned_data["amount"].strip() or None
        before = invoice.refunded_amount
        lines = form.chosen_lines() if form.receipt_lines else None
        try:
            invoice = services.refund_invoice(invoice, amount, receipt=lines)
        except Exception as exc:
            _show_error(form, exc, "Refund of invoice %s failed", invoice.uuid)
            return False
        refunded = invoice.refunded_amount - before
        if refunded > 0:
            text = _("Refunded %(amount)s; the invoice is %(status)s.")
            amount_text = _money_display(refunded, invoice.currency)
        else:
            # The provider accepted the refund and will confirm it by webhook.
            text = _(
                "Refund of %(amount)s requested; the provider will confirm it. The "
                "invoice is %(status)s."
            )
            amount_text = _money_display(
                Decimal(amount) if amount else invoice.refundable_amount,
                invoice.currency,
            )
        message = text % {
            "amount": amount_text,
            "status": invoice.get_status_display(),
        }
        logged = msg(
            "log_refunded" if refunded > 0 else "log_refund_requested",
            amount=refunded
            if refunded > 0
            else (Decimal(amount) if amount else invoice.refundable_amount),
            currency=invoice.currency,
        )
        self._done(request, invoice, message, logged)
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
        # The form's label and the provider's answer are kept as they were said.
        logged = msg("log_form", form=str(spec.label), result=result or _("done."))
        self._done(request, invoice, message, logged)
        return True
