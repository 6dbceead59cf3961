"""What the admin pages share: how errors, amounts and invoices are shown, the
URL and checkout checks, and the read-only bases for inlines and record pages.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from decimal import Decimal
from typing import TYPE_CHECKING, Any

from django.contrib import admin
from django.core.exceptions import ImproperlyConfigured
from django.http import HttpRequest
from django.urls import reverse
from django.utils.formats import get_format
from django.utils.html import format_html
from django.utils.safestring import SafeString
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy

from ..exceptions import InvalidInput, PaymentsError, ProviderAPIError
from ..formatting import format_money
from ..models import Invoice, Operation, WebhookEvent
from ..money import format_amount

if TYPE_CHECKING:
    from django.utils.functional import _StrOrPromise

    from ..providers.base import BaseProvider

logger = logging.getLogger("django_payments_ru")

#: Errors an admin operation reports as a message instead of a server error.
#: ImproperlyConfigured: the invoice's provider alias is no longer configured.
OPERATION_ERRORS = (PaymentsError, ImproperlyConfigured)


def _error_text(exc: BaseException, failed: str, *args: object) -> str:
    """What to tell the merchant about ``exc``; an unexpected one is first
    logged, with its traceback, as ``failed % args``."""
    # PaymentsError.__str__ already says what happened and what to do, without
    # secrets; other exceptions are unexpected and logged with their traceback.
    if isinstance(exc, ProviderAPIError) and exc.provider:
        return _refusal_text(exc)
    if isinstance(exc, OPERATION_ERRORS):
        text = str(exc)
        # For people: without the "[alias] " a PaymentsError starts with (for
        # logs); the message names the provider where it matters.
        alias = getattr(exc, "provider", "")
        if alias and text.startswith(f"[{alias}] "):
            text = text[len(alias) + 3 :]
        return text
    logger.error(failed, *args, exc_info=exc)
    return _("Unexpected error (%(type)s); the details are in the server log.") % {
        "type": type(exc).__name__
    }


def _refusal_text(exc: ProviderAPIError) -> str:
    """A provider's refusal in our words, by the provider's name, then its own
    message quoted (not translated: it is the provider's)."""
    answer = (exc.provider_message or exc.message).strip()
    details = []
    if exc.status is not None:
        details.append(f"HTTP {exc.status}")
    if exc.code and exc.code != exc.default_code:
        details.append(exc.code)
    text = _("%(provider)s refused the request. Its answer: “%(answer)s”") % {
        "provider": _alias_name(exc.provider),
        "answer": answer,
    }
    if details:
        text += f" ({', '.join(details)})"
    return f"{text} {exc.hint}" if exc.hint else text


def _alias_name(alias: str) -> str:
    """The provider of ``alias`` as people call it ("Life-Pay: ECOM")."""
    from .. import registry

    try:
        return _provider_name(registry.get_provider(alias))
    except ImproperlyConfigured:
        return alias  # no longer configured: all there is to show


def _money(amount: Decimal | None, currency: str) -> str:
    """``amount`` as a number with its currency's decimals (the column keeps
    three) and the active language's decimal separator, without grouping:
    "1500,50" in Russian. What the amount inputs accept back (the refund
    form's initial value) and what messages put before the currency code."""
    if amount is None:
        return "-"
    try:
        plain = format_amount(amount, currency)
    except InvalidInput:  # a currency unregistered since: show what is stored
        return str(amount)
    return plain.replace(".", str(get_format("DECIMAL_SEPARATOR")))


def _money_display(amount: Decimal | None, currency: str) -> str:
    """``amount`` for people, with the currency's sign: "1 500,50 ₽" in
    Russian (:func:`~django_payments_ru.formatting.format_money`)."""
    if amount is None:
        return "-"
    return format_money(amount, currency)


def _label(invoice: Invoice) -> str:
    reference = invoice.order_id or str(invoice.uuid)[:8]
    return f"{reference} ({_money_display(invoice.amount, invoice.currency)})"


def _provider_label(provider: BaseProvider) -> str:
    """How a list of providers names one for people (a page title, a choice, a
    warning): its name (:func:`_provider_name`), and its alias too only when
    another configured alias has the same name ("Life-Pay (shop_a)",
    "Life-Pay (shop_b)"), so that they can be told apart."""
    name = _provider_name(provider)
    if name in _shared_names():
        return f"{name} ({provider.alias})"
    return name


def _shared_names() -> set[str]:
    """The names that more than one configured alias goes by."""
    from .. import registry

    seen: set[str] = set()
    shared: set[str] = set()
    for alias in registry.aliases():
        try:
            name = _provider_name(registry.get_provider(alias))
        except ImproperlyConfigured:
            continue
        (shared if name in seen else seen).add(name)
    return shared


def _provider_name(provider: BaseProvider) -> str:
    """ "Life-Pay: ECOM", "QuantaPay": how messages and columns name a
    provider for people (its display name, and the surface where one provider
    has several), never its alias."""
    name = str(provider.display_name or provider.alias)
    surface = getattr(provider, "surface_label", "")
    return f"{name}: {surface}" if surface else name


def _preformatted(text: str) -> SafeString | str:
    """Multi-line text as it was written (a history, a traceback), or "-"."""
    return format_html("<pre>{}</pre>", text) if text else "-"


def _pretty_json(value: Any) -> SafeString | str:
    if not value:
        return "-"
    return _preformatted(
        json.dumps(value, indent=2, ensure_ascii=False, sort_keys=True, default=str)
    )


def _preformatted_field(
    name: str, description: _StrOrPromise, *, as_json: bool = False
) -> Callable[[Any, Any], SafeString | str]:
    """A read-only field of the admin showing the model's field ``name`` as
    preformatted text, or as indented JSON."""
    render = _pretty_json if as_json else _preformatted

    @admin.display(description=description)
    def field(modeladmin: Any, obj: Any) -> SafeString | str:
        return render(getattr(obj, name))

    return field


def _result_field(name: str) -> Callable[[Any, Any], str]:
    """A read-only field showing a stored outcome (``result_text``,
    ``reason_text``: a code translated in the active language)."""

    @admin.display(description=gettext_lazy("result"))
    def field(modeladmin: Any, obj: Any) -> str:
        return getattr(obj, name) or "-"

    return field


class _NoWrites:
    """Nobody adds, changes or deletes these rows from the admin: they are
    records of what happened."""

    def has_add_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


class _ReadOnlyInline(_NoWrites, admin.TabularInline):
    extra = 0
    can_delete = False


#: The filters' template: the title as a heading (see the template).
FILTER_TEMPLATE = "admin/django_payments_ru/filter.html"


class NamedFilters(admin.ModelAdmin):
    """The list's filters titled by their name ("Статус"), not "By <name>",
    which Russian cannot say without declining the name."""

    def get_changelist_instance(self, request: HttpRequest) -> Any:
        changelist = super().get_changelist_instance(request)
        for spec in changelist.filter_specs:
            spec.template = FILTER_TEMPLATE
        return changelist


class _RecordAdmin(_NoWrites, NamedFilters):
    """A read-only page of records about invoices (operations, webhook events):
    nobody adds, edits or deletes them; each links to its invoice."""

    # The invoice link is a column: one query for the page, none per row.
    list_select_related = ("invoice",)
    list_per_page = 50

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


def log_repr(obj: Any) -> str:
    """How the admin's history names ``obj`` ("Recent actions"): in no
    language, since it is stored. An invoice by its order id (or reference)
    and amount, without its status (which changes, and is a translated word)."""
    if isinstance(obj, Invoice):
        reference = obj.order_id or str(obj.uuid)[:8]
        return f"{reference}: {obj.quantize(obj.amount)} {obj.currency}"
    return str(obj)
