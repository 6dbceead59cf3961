"""The QuantaPay page of the admin: the wallets' balances per coin and the
credits that pay QuantaPay's fees (a low balance is a warning)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from django.contrib import messages
from django.utils.translation import gettext as _

from ...exceptions import ProviderError

if TYPE_CHECKING:
    from django.http import HttpRequest

    from ..base import BaseProvider


def balances_view(request: HttpRequest, provider: BaseProvider) -> dict[str, Any]:
    """The context of ``admin/django_payments_ru/quantapay/balances.html``: ``balances``
    (``[(coin, amount, fiat)]``), ``credit``, ``credit_currency``,
    ``low_credit``, ``error``. A failed call is shown, never raised: its text
    is the redacted error's."""
    from .provider import Provider

    assert isinstance(provider, Provider)
    context: dict[str, Any] = {
        "balances": [],
        "credit": None,
        "credit_currency": "",
        "low_credit": False,
        "threshold": provider.low_credit_threshold,
        "error": "",
    }
    try:
        balances = provider.get_balances()
        credit, currency = provider.get_credit_balance()
    except ProviderError as exc:
        # The error's text is redacted at its root (HttpClient, provider_error).
        context["error"] = str(exc)
        messages.error(
            request, _("QuantaPay could not be asked for the balances: %s") % exc
        )
        return context
    context["balances"] = [
        (coin.upper(), value["amount"], value["fiat"])
        for coin, value in sorted(balances.items())
    ]
    context["credit"] = credit
    context["credit_currency"] = currency
    if provider.is_low_credit(credit):
        context["low_credit"] = True
        messages.warning(
            request,
            _(
                "QuantaPay credits are low (%(amount)s %(currency)s): fees are paid "
                "from them, top them up in the QuantaPay cabinet."
            )
            % {"amount": credit, "currency": currency},
        )
    return context
