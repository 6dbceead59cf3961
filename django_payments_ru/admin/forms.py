"""The admin's forms: adding an invoice, the merchant's note on its page, a
refund's amount, and how an error is shown on a form."""

from __future__ import annotations

import re
from typing import Any

from django import forms
from django.core.exceptions import ImproperlyConfigured
from django.utils.formats import get_format
from django.utils.text import capfirst
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy

from .. import registry
from ..exceptions import InvalidInput
from ..models import Invoice
from .base import _error_text, _provider_label


class AmountField(forms.CharField):
    """An amount as the merchant types it: the active language's decimal
    separator ("10,50" in Russian) and spaces between digit groups are
    accepted and handed on with a point ("10.50"). Still text: the services
    parse it strictly and say exactly what is wrong ("10.001" has more
    decimals than RUB allows)."""

    def to_python(self, value: Any) -> str:
        text = super().to_python(value)
        return normalize_amount(text or "")


def normalize_amount(text: str) -> str:
    """``text`` with the locale's decimal separator made a point."""
    text = re.sub(r"(?<=\d)[\s\u00a0\u202f](?=\d)", "", text.strip())
    separator = str(get_format("DECIMAL_SEPARATOR"))
    if separator != "." and separator in text and "." not in text:
        text = text.replace(separator, ".", 1)
    return text


def _amount_help() -> str:
    example = "1234.50".replace(".", str(get_format("DECIMAL_SEPARATOR")))
    return _("In major units: %(example)s") % {"example": example}


def _provider_choices() -> list[tuple[str, str]]:
    """The configured providers by name ("Life-Pay: ECOM"); a broken alias by
    its alias, for the merchant to recognise."""
    choices = []
    for alias in registry.aliases():
        try:
            label = _provider_label(registry.get_provider(alias))
        except ImproperlyConfigured:
            label = alias
        choices.append((alias, label))
    return choices


class InvoiceAddForm(forms.Form):
    """The merchant's new invoice; :func:`services.create_invoice` validates it."""

    provider = forms.ChoiceField(label=capfirst(gettext_lazy("provider")), choices=())
    amount = AmountField(
        label=capfirst(gettext_lazy("amount")),
        max_length=40,
        widget=forms.TextInput(attrs={"inputmode": "decimal", "class": "vTextField"}),
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
        # In the language of this request: "1234,50" in Russian.
        self.fields["amount"].help_text = _amount_help()
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
    """How much to refund: never prefilled (a merchant who presses on
    refunds nothing by mistake); empty means everything not yet refunded, and
    the help text says how much that is."""

    amount = AmountField(
        label=capfirst(gettext_lazy("amount to refund")),
        max_length=40,
        required=False,
        widget=forms.TextInput(attrs={"inputmode": "decimal"}),
        help_text=gettext_lazy("Leave empty to refund everything not yet refunded."),
    )

    def __init__(self, *args: Any, refundable: str = "", **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        if refundable:
            self.fields["amount"].help_text = _(
                "Leave empty to refund everything not yet refunded (%(amount)s). "
                "The next page states the amount before anything is refunded."
            ) % {"amount": refundable}


def _show_error(form: forms.Form, exc: Exception, failed: str, *args: object) -> None:
    """Put ``exc`` on ``form``: bad input on its field when the form has it,
    anything else above the fields (an unexpected error logged as ``failed``)."""
    if isinstance(exc, InvalidInput):
        form.add_error(exc.field if exc.field in form.fields else None, exc.message)
    else:
        form.add_error(None, _error_text(exc, failed, *args))
