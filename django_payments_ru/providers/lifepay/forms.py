"""The Life-Pay form of the invoice admin: change an ECOM invoice at Life-Pay.

:meth:`EcomProvider.admin_forms <.ecom.EcomProvider.admin_forms>` offers it for
ECOM invoices already created at Life-Pay. It edits what ``PATCH
/v1/invoices/<id>`` changes (lifepay.md §11.4): e-mail, phone, receipt channel,
the payer's recurrent consent and the recurrent schedule. Only the values that
differ from the invoice are sent, through :meth:`EcomProvider.update_invoice
<.ecom.EcomProvider.update_invoice>`, which checks them before sending and has
the services record them only once Life-Pay has accepted them.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from django import forms
from django.utils.text import capfirst
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy

from ...exceptions import InvalidInput
from ..base import AdminForm
from . import metadata as meta

if TYPE_CHECKING:
    from ...models import Invoice
    from .ecom import EcomProvider

#: The slug of the form in the admin's URL.
SLUG = "lifepay-invoice"

#: ``update_invoice`` names schedule errors by the PATCH field; the form splits
#: the schedule into two fields.
_FIELDS = {
    "recurrent_schedule": "interval",
    "recurrent_schedule.interval": "interval",
    "recurrent_schedule.frequency": "frequency",
    "metadata.lifepay.is_recurrent": "is_recurrent",
}


class EcomInvoiceForm(forms.Form):
    """What Life-Pay lets a merchant change on an ECOM invoice (§11.4)."""

    email = forms.EmailField(label=capfirst(gettext_lazy("e-mail")), required=False)
    phone = forms.RegexField(
        label=capfirst(gettext_lazy("phone")),
        # lifepay.md §11.4: the phone is sent as a number (digits only).
        regex=r"^\+?\d{1,15}$",
        required=False,
        help_text=gettext_lazy("Digits only, e.g. 79991234567."),
    )
    send_receipt_through = forms.ChoiceField(
        label=capfirst(gettext_lazy("send the receipt by")),
        choices=[("", "---------"), *((c, c) for c in meta.RECEIPT_CHANNELS)],
        required=False,
    )
    is_recurrent = forms.BooleanField(
        label=capfirst(gettext_lazy("recurrent payments allowed")), required=False
    )
    interval = forms.ChoiceField(
        label=capfirst(gettext_lazy("schedule interval")),
        choices=[("", "---------"), *((c, c) for c in meta.SCHEDULE_INTERVALS)],
        required=False,
        help_text=gettext_lazy(
            "Leave empty for no schedule. A schedule needs recurrent payments."
        ),
    )
    frequency = forms.IntegerField(
        label=capfirst(gettext_lazy("schedule frequency")),
        min_value=1,
        required=False,
    )


def initial(invoice: Invoice) -> dict[str, Any]:
    """The form's values from where the provider keeps them: the invoice's
    e-mail and phone, ``metadata["lifepay"]`` for the rest."""
    options = invoice.metadata.get("lifepay") or {}
    schedule = options.get("recurrent_schedule") or {}
    return {
        "email": invoice.customer_email,
        "phone": invoice.customer_phone,
        "send_receipt_through": options.get("send_receipt_through", ""),
        "is_recurrent": bool(options.get("is_recurrent", False)),
        "interval": schedule.get("interval", ""),
        "frequency": schedule.get("frequency"),
    }


def _cannot_remove(field: str, alias: str) -> InvalidInput:
    # lifepay.md §11.4 documents no way to remove a value.
    return InvalidInput(
        _("Life-Pay cannot remove it; enter a new one."), field=field, provider=alias
    )


def _changes(alias: str, invoice: Invoice, data: dict[str, Any]) -> dict[str, Any]:
    """The PATCH arguments: only what differs from the invoice."""
    current = initial(invoice)
    changes: dict[str, Any] = {}
    for name in ("email", "phone", "send_receipt_through"):
        value = data.get(name) or ""
        before = current[name] or ""
        if name == "phone":
            value, before = value.lstrip("+"), before.lstrip("+")
        if value == before:
            continue
        if not value:
            raise _cannot_remove(name, alias)
        changes[name] = value
    if bool(data.get("is_recurrent")) != current["is_recurrent"]:
        changes["is_recurrent"] = bool(data.get("is_recurrent"))
    interval, frequency = data.get("interval") or "", data.get("frequency")
    if interval or frequency is not None:
        schedule = {"interval": interval, "frequency": frequency}
        if schedule != {
            "interval": current["interval"],
            "frequency": current["frequency"],
        }:
            changes["recurrent_schedule"] = schedule
    elif current["interval"]:
        raise _cannot_remove("interval", alias)
    return changes


def handle(
    provider: EcomProvider, invoice: Invoice, data: dict[str, Any]
) -> str | None:
    """Send the changes to Life-Pay; nothing is saved locally if it refuses."""
    changes = _changes(provider.alias, invoice, data)
    if not changes:
        return _("nothing to change.")
    try:
        provider.update_invoice(invoice, **changes)
    except InvalidInput as exc:
        field = _FIELDS.get(exc.field, exc.field)
        message = exc.message
        if field in EcomInvoiceForm.base_fields:
            # Shown on the form's own field: the PATCH field's name is noise.
            message = message.removeprefix(f"{exc.field}: ")
        raise InvalidInput(message, field=field, provider=provider.alias) from exc
    return _("Life-Pay accepted the changes.")


def admin_forms(provider: EcomProvider, invoice: Invoice) -> list[AdminForm]:
    """The form, for :meth:`EcomProvider.admin_forms
    <.ecom.EcomProvider.admin_forms>` to offer on ECOM invoices."""
    return [
        AdminForm(
            slug=SLUG,
            label=gettext_lazy("Change at Life-Pay"),
            form_class=EcomInvoiceForm,
            initial=initial,
            handle=lambda invoice, data: handle(provider, invoice, data),
            help_text=gettext_lazy(
                "Only the values you change are sent to Life-Pay; the invoice "
                "is updated here once Life-Pay accepts them."
            ),
        )
    ]


__all__ = ["SLUG", "EcomInvoiceForm", "admin_forms", "handle", "initial"]
