"""The order's invoices, one per configured provider, ready to be paid.

Nothing here calls a provider: each option's button is the invoice's pay link
(``{% payment_button %}``), which starts the payment when the customer
follows it. Rendering the order page registers no payment anywhere."""

from __future__ import annotations

import logging
from dataclasses import dataclass

from django.db import transaction
from django.http import HttpRequest
from django.utils.translation import gettext as _

from django_payments_ru import services
from django_payments_ru.conf import payments_settings
from django_payments_ru.exceptions import PaymentsError
from django_payments_ru.models import Invoice
from django_payments_ru.registry import get_provider
from django_payments_ru.status import PAYABLE

from .models import ENDED, MIN_PRICE, Order, PaymentAttempt

logger = logging.getLogger("shop")


@dataclass(frozen=True)
class PayOption:
    alias: str
    name: str
    invoice: Invoice | None
    error: str = ""
    #: The button's text: "Pay with Life-Pay: ECOM" when two aliases share a
    #: provider, so that the customer can tell them apart.
    label: str = ""

    @property
    def payable(self) -> bool:
        return self.invoice is not None and not self.error


def _absolute(path: str, request: HttpRequest) -> str:
    base = payments_settings.BASE_URL
    return base.rstrip("/") + path if base else request.build_absolute_uri(path)


def _create_invoice(order: Order, alias: str, request: HttpRequest) -> Invoice:
    attempt = order.attempts.count() + 1
    invoice = services.create_invoice(
        provider=alias,
        amount=order.amount,
        currency=order.currency,
        # One id per attempt: some providers refuse an order id they have seen,
        # or answer with the old, declined payment.
        order_id=f"{order.number}-{attempt}",
        # The order's invoices are alternatives: once one is paid the app
        # cancels the others, and flags a payment that still arrives on one.
        order_key=str(order.uuid),
        description=_("Order %(number)s: %(product)s")
        % {"number": order.number, "product": order.product.name},
        customer_email=order.email,
        metadata={"shop_order": str(order.uuid)},
        # The customer comes back to the order page after the provider's page:
        # on BASE_URL's host, which the app accepts as a return URL, rather
        # than the request's Host header.
        return_url=_absolute(order.get_absolute_url(), request),
    )
    PaymentAttempt.objects.create(order=order, invoice=invoice)
    return invoice


def _names(aliases: list[str]) -> dict[str, str]:
    """What the customer reads for each alias: the provider's display name,
    and where two aliases share it (Life-Pay's A1Lite and ECOM), the second
    one's surface after it ("Life-Pay", "Life-Pay: ECOM"). Never the alias."""
    names: dict[str, str] = {}
    seen: dict[str, int] = {}
    for alias in aliases:
        provider = get_provider(alias)
        name = str(provider.display_name or alias)
        seen[name] = seen.get(name, 0) + 1
        if seen[name] == 1:
            names[alias] = name
        else:
            surface = getattr(provider, "surface_label", "") or str(seen[name])
            names[alias] = f"{name}: {surface}"
    return names


def payment_options(order: Order, request: HttpRequest) -> list[PayOption]:
    """One option per provider in ``PAYMENTS_RU["PROVIDERS"]``, creating the
    invoices the order lacks (no provider is called: the pay link starts the
    payment the customer chooses)."""
    aliases = list(payments_settings.PROVIDERS)
    if order.amount < MIN_PRICE:
        # Nothing is sold for free (the constraints keep such orders out; this
        # is for a row written around them): no invoice, no pay button.
        error = _("This order cannot be paid: its amount is not positive.")
        return [
            PayOption(alias, name, None, error)
            for alias, name in _names(aliases).items()
        ]
    invoices: dict[str, Invoice] = {}
    errors: dict[str, str] = {}
    with transaction.atomic():
        # One page view at a time creates this order's invoices: a double
        # reload must not give the customer two invoices for one provider.
        Order.objects.select_for_update().only("pk").get(pk=order.pk)
        latest = order.latest_invoices()
        for alias in aliases:
            invoice = latest.get(alias)
            if invoice is None or invoice.status in ENDED:
                try:
                    invoice = _create_invoice(order, alias, request)
                except PaymentsError as exc:  # e.g. a currency it does not take
                    logger.warning(
                        "No %s invoice for order %s: %s", alias, order.number, exc
                    )
                    errors[alias] = _("This payment method cannot take this order.")
                    continue
            invoices[alias] = invoice

    names = _names(aliases)
    options = []
    for alias in aliases:
        name = names[alias]
        label = _("Pay with %(provider)s") % {"provider": name}
        invoice = invoices.get(alias)
        if invoice is not None and invoice.status not in PAYABLE:
            # On hold, or paid: nothing for the customer to press.
            invoice = None
        options.append(PayOption(alias, name, invoice, errors.get(alias, ""), label))
    return options
