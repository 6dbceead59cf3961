"""``{% load payments_ru %}``: the pay button, the status words, the ``money``
and ``count`` filters.

``{% payment_button invoice %}`` renders a link to the invoice's pay link
(``/payments/pay/<token>/``, :func:`django_payments_ru.services.pay_link`),
which starts the payment when the customer follows it. Rendering a page never
calls a provider and never writes to the database. Optional arguments:

``label``
    The button text (default: "Pay with <provider>").
``css_class``
    Extra CSS classes of the link.
``autosubmit``
    Accepted for compatibility and ignored: the button is always a link, and
    the pay link's own page submits a POST checkout (with a button for a
    browser without JavaScript).

An invoice that cannot be paid (on hold, paid, refunded, expired, cancelled)
renders its state instead (``django_payments_ru/status.html``, the snippet
``{% payment_status invoice %}`` renders). The tag never raises.

``{{ invoice.amount|money:invoice.currency }}`` shows an amount with the
currency's decimals in the active language ("1 234,50 ₽"): see
:func:`django_payments_ru.formatting.format_money`.
"""

from __future__ import annotations

import logging
from typing import Any

from django import template
from django.core.exceptions import ImproperlyConfigured
from django.template.loader import get_template
from django.urls import NoReverseMatch
from django.utils.formats import number_format
from django.utils.translation import gettext as _

from .. import customer
from ..conf import payments_settings
from ..formatting import format_money
from ..models import Invoice
from ..paylinks import pay_link, pay_path
from ..status import PAYABLE

logger = logging.getLogger("django_payments_ru")
register = template.Library()

TEMPLATE = "django_payments_ru/payment_button.html"


def _display_name(invoice: Invoice) -> str:
    try:
        return invoice.get_provider().display_name or invoice.provider
    except ImproperlyConfigured:
        return invoice.provider


def _url(invoice: Invoice, request: Any) -> str:
    """Absolute when it can be (an e-mail needs it), else the path."""
    if request is not None or payments_settings.BASE_URL:
        return pay_link(invoice, request)
    return pay_path(invoice)


@register.simple_tag(takes_context=True)
def payment_button(
    context: template.Context,
    invoice: Invoice | None,
    label: str | None = None,
    css_class: str = "",
    autosubmit: bool = True,  # ignored: see above
) -> str:
    """The pay button (or the state) of ``invoice``: reads only, never starts."""
    if not isinstance(invoice, Invoice):
        # ``{% payment_button order.invoice %}`` before the order has one.
        return ""
    values: dict[str, Any] = {"invoice": invoice, "css_class": css_class}
    if invoice.status not in PAYABLE:
        values.update(customer.status_context(invoice), state="status")
        return get_template(TEMPLATE).render(values)
    try:
        url = _url(invoice, context.get("request"))
    except (NoReverseMatch, ImproperlyConfigured) as exc:
        logger.warning(
            "Cannot render the payment button of invoice %s: %s: %s",
            invoice.uuid,
            type(exc).__name__,
            exc,
        )
        values["state"] = "error"
        return get_template(TEMPLATE).render(values)
    values.update(
        state="link",
        url=url,
        label=label
        or _("Pay with %(provider)s") % {"provider": _display_name(invoice)},
    )
    return get_template(TEMPLATE).render(values)


@register.simple_tag
def payment_status(invoice: Invoice | None) -> str:
    """Where ``invoice``'s payment stands, in words for its customer."""
    if not isinstance(invoice, Invoice):
        return ""
    return get_template(customer.STATUS_TEMPLATE).render(
        customer.status_context(invoice)
    )


@register.filter
def money(amount: Any, currency: str = "") -> str:
    """``{{ amount|money:currency }}``: "1 234,50 ₽" in Russian."""
    return format_money(amount, currency)


@register.filter
def count(value: Any) -> str:
    """``{{ cl.result_count|count }}``: a count grouped as the active language
    groups digits ("1 000 000" in Russian, "1,000,000" in English)."""
    try:
        number = int(value)
    except (TypeError, ValueError):
        return str(value)
    return number_format(number, force_grouping=True)


@register.filter
def change_message(entry: Any) -> str:
    """``{{ action|change_message }}``: a LogEntry's message in the active
    language (our codes rendered, see
    :func:`~django_payments_ru.results.log_message`)."""
    from ..results import log_message

    return log_message(entry)
