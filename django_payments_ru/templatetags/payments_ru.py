"""``{% load payments_ru %}{% payment_button invoice %}``.

Renders how the customer reaches the provider, from the invoice's
:class:`~django_payments_ru.providers.base.Checkout`: a link for a redirect
checkout, an auto-submitting form for a POST checkout. Optional arguments:

``label``
    The button text (default: "Pay with <provider>").
``css_class``
    Extra CSS classes of the link or the form's button.
``autosubmit``
    ``False`` renders a POST checkout without the script that submits it, for a
    page that shows the button first (the form carries
    ``data-payments-ru-autosubmit="false"`` either way, for a page's own script).

The tag never raises: an invoice that cannot be paid renders its status, and a
provider failure renders a short error message (and is logged).
"""

from __future__ import annotations

import logging
from typing import Any

from django import template
from django.core.exceptions import ImproperlyConfigured
from django.template.loader import get_template
from django.utils.translation import gettext as _

from .. import services
from ..exceptions import PaymentsError
from ..models import Invoice
from ..providers.base import Checkout
from ..status import PAYABLE
from ..validation import safe_image_url, safe_redirect_url

logger = logging.getLogger("django_payments_ru")
register = template.Library()

TEMPLATE = "django_payments_ru/payment_button.html"


def _display_name(invoice: Invoice) -> str:
    try:
        return invoice.get_provider().display_name or invoice.provider
    except ImproperlyConfigured:
        return invoice.provider


def _checkout(invoice: Invoice, request: Any) -> Checkout:
    checkout = invoice.get_checkout()
    if checkout is not None and services.checkout_usable(invoice, checkout):
        return checkout
    return services.start_payment(invoice, request)


def _qr(invoice: Invoice, checkout: Checkout) -> dict[str, str] | None:
    if not checkout.qr_image:
        return None
    payload = checkout.qr_payload
    if not safe_image_url(checkout.qr_image) or (
        payload and not safe_redirect_url(payload)
    ):
        logger.warning(
            "Invoice %s: the provider's QR code is not a safe image or link; not shown",
            invoice.uuid,
        )
        return None
    return {"image": checkout.qr_image, "payload": payload}


@register.simple_tag(takes_context=True)
def payment_button(
    context: template.Context,
    invoice: Invoice | None,
    label: str | None = None,
    css_class: str = "",
    autosubmit: bool = True,
) -> str:
    """The pay button (or status, or error) of ``invoice``."""
    if not isinstance(invoice, Invoice):
        # ``{% payment_button order.invoice %}`` before the order has one.
        return ""
    request = context.get("request")
    values: dict[str, Any] = {
        "invoice": invoice,
        "css_class": css_class,
        "autosubmit": bool(autosubmit),
        "dom_id": f"payments-ru-checkout-{invoice.uuid}",
        "nonce": getattr(request, "csp_nonce", "") if request is not None else "",
    }
    if invoice.status not in PAYABLE:
        values["state"] = "status"
        return get_template(TEMPLATE).render(values)
    try:
        checkout = _checkout(invoice, request)
        if not safe_redirect_url(checkout.url):
            raise PaymentsError(
                "The provider returned a payment URL that is not http(s).",
                provider=invoice.provider,
            )
    except (PaymentsError, ImproperlyConfigured) as exc:
        logger.warning(
            "Cannot render the payment button of invoice %s: %s: %s",
            invoice.uuid,
            type(exc).__name__,
            exc,
        )
        # start_payment re-read the invoice: a webhook may have just paid it.
        values["state"] = "status" if invoice.status not in PAYABLE else "error"
        return get_template(TEMPLATE).render(values)
    except Exception:
        # A template must not turn a provider bug into an error page for the shop.
        logger.exception("Cannot render the payment button of invoice %s", invoice.uuid)
        values["state"] = "error"
        return get_template(TEMPLATE).render(values)
    values.update(
        state="checkout",
        checkout=checkout,
        # A QR code only when both halves are safe to show; a bad one is dropped,
        # the link still works.
        qr=_qr(invoice, checkout),
        # A list of pairs: a template lookup of ``fields.items`` would return a
        # field named "items" instead of calling the method.
        fields=list(checkout.fields.items()),
        label=label
        or _("Pay with %(provider)s") % {"provider": _display_name(invoice)},
    )
    return get_template(TEMPLATE).render(values)
