"""The admin's forms: adding an invoice, the merchant's note on its page, a
refund's amount, and how an error is shown on a form."""

from __future__ import annotations

import contextlib
import re
from decimal import Decimal, InvalidOperation
from typing import Any

from django import forms
from django.core.exceptions import ImproperlyConfigured
from django.utils.formats import get_format
from django.utils.text import capfirst
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy

from .. import money, registry
from ..exceptions import InvalidInput
from ..models import Invoice
from ..receipts import DELIVERIES, ReceiptLine, line_amount
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


class QuantityField(AmountField):
    """A quantity of a receipt line: "0,25" is a quarter in any language (a
    quantity has no digit groups, so a lone comma is a decimal comma)."""

    def to_python(self, value: Any) -> str:
        return decimal_comma(super().to_python(value))


def decimal_comma(text: str) -> str:
    """``text`` with a lone comma made a point ("340,00" -> "340.00")."""
    if "," in text and "." not in text:
        return text.replace(",", ".", 1)
    return text


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
    receipt = forms.CharField(
        label=capfirst(gettext_lazy("receipt lines")),
        required=False,
        widget=forms.Textarea(
            attrs={"rows": 4, "cols": 80, "class": "vLargeTextField"}
        ),
        help_text=gettext_lazy(
            "One line of the receipt per row: name | quantity | price | VAT rate, "
            "optionally followed by | unit | payment subject | payment method. "
            "For example: Маракуя | 2 | 340,00 | none | kg. The line sum is price "
            "times quantity; the lines must add up to the amount. VAT rates: "
            "none (no VAT), vat0, vat10, vat20 (10 and 20 %), vat110, vat120 "
            "(10/110 and 20/120). Leave empty for an invoice without a receipt."
        ),
    )
    receipt_delivery = forms.ChoiceField(
        label=capfirst(gettext_lazy("send the receipt by")),
        required=False,
        initial="email",
        choices=(),
    )

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        delivery = self.fields["receipt_delivery"]
        assert isinstance(delivery, forms.ChoiceField)
        delivery.choices = delivery_choices()
        # In the language of this request: "1234,50" in Russian.
        self.fields["amount"].help_text = _amount_help()
        # Read at each request: PAYMENTS_RU may change (override_settings, reload).
        choices = _provider_choices()
        provider = self.fields["provider"]
        assert isinstance(provider, forms.ChoiceField)
        provider.choices = choices
        if len(choices) == 1:
            self.fields["provider"].initial = choices[0][0]

    def clean(self) -> dict[str, Any]:
        data = super().clean() or {}
        text = data.get("receipt", "")
        if text and text.strip():
            data["receipt_data"] = {
                "lines": receipt_rows(text, str(data.get("currency") or "RUB")),
                "delivery": data.get("receipt_delivery") or "email",
            }
        else:
            data["receipt_data"] = None
        return data


def delivery_choices() -> list[tuple[str, str]]:
    labels = {
        "email": _("e-mail"),
        "sms": _("SMS"),
        "nothing": _("not sent (printed only)"),
    }
    return [(value, labels[value]) for value in DELIVERIES]


#: The optional columns of a row of :attr:`InvoiceAddForm.receipt`, in order.
ROW_COLUMNS = ("name", "quantity", "price", "vat", "unit", "payment_object")


def receipt_rows(text: str, currency: str) -> list[dict[str, Any]]:
    """The receipt lines the merchant typed, one per row (``name | quantity |
    price | vat [| unit | payment_object | payment_method]``), each with its sum
    computed; :func:`~django_payments_ru.receipts.parse_receipt` then checks
    them and names the row (line) and the field of any error."""
    lines = []
    for row in text.strip().splitlines():
        if not row.strip():
            continue
        cells = [cell.strip() for cell in row.split("|")]
        line: dict[str, Any] = {
            key: value
            for key, value in zip((*ROW_COLUMNS, "payment_method"), cells, strict=False)
            if value
        }
        if len(cells) > len(ROW_COLUMNS) + 1:
            line["columns"] = cells  # refused by the parser, naming the row
        for key in ("quantity", "price"):
            if key in line:
                # Between the bars a comma can only be a decimal comma
                # ("340,00"), whatever the language of the page.
                line[key] = decimal_comma(normalize_amount(line[key]))
        # What is missing or wrong is named by the parser, not here.
        with contextlib.suppress(KeyError, InvalidOperation, InvalidInput, ValueError):
            price, quantity = Decimal(line["price"]), Decimal(line["quantity"])
            line["amount"] = str(line_amount(price, quantity, currency))
        lines.append(line)
    return lines


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

    def __init__(
        self,
        *args: Any,
        refundable: str = "",
        lines: tuple[ReceiptLine, ...] = (),
        currency: str = "RUB",
        **kwargs: Any,
    ) -> None:
        super().__init__(*args, **kwargs)
        self.receipt_lines = lines
        self.currency = currency
        if refundable:
            self.fields["amount"].help_text = _(
                "Leave empty to refund everything not yet refunded (%(amount)s). "
                "The next page states the amount before anything is refunded."
            ) % {"amount": refundable}
        for index, line in enumerate(lines):
            # The receipt's lines not yet refunded: a quantity for each line
            # of a partial refund; all empty refunds every line.
            self.fields[f"line_{index}"] = QuantityField(
                label=_("%(name)s at %(price)s")
                % {
                    "name": line.name,
                    "price": money.format_amount(line.price, currency),
                },
                max_length=20,
                required=False,
                widget=forms.TextInput(attrs={"inputmode": "decimal", "size": 8}),
                help_text=_("up to %(quantity)s")
                % {"quantity": f"{line.quantity.normalize():f}"},
            )

    @property
    def line_fields(self) -> list[forms.BoundField]:
        return [self[f"line_{index}"] for index in range(len(self.receipt_lines))]

    def chosen_lines(self) -> list[dict[str, Any]] | None:
        """The lines of a partial refund (a quantity typed for each), or
        ``None`` when none was typed (every line is refunded)."""
        chosen = []
        for index, line in enumerate(self.receipt_lines):
            text = (self.cleaned_data.get(f"line_{index}") or "").strip()
            if not text:
                continue
            data = line.to_json()
            data["quantity"] = text
            try:
                quantity = Decimal(text)
                # All that is left of the line: its sum left, exactly.
                data["amount"] = str(
                    line.amount
                    if quantity == line.quantity
                    else line_amount(line.price, quantity, self.currency)
                )
            except (InvalidOperation, ValueError):
                pass  # the services name the line and the field
            chosen.append(data)
        return chosen or None

    def hidden_lines(self) -> list[tuple[str, str]]:
        """The quantities typed, for the confirmation page to carry."""
        return [
            (f"line_{index}", text)
            for index in range(len(self.receipt_lines))
            if (text := (self.cleaned_data.get(f"line_{index}") or "").strip())
        ]


def _show_error(form: forms.Form, exc: Exception, failed: str, *args: object) -> None:
    """Put ``exc`` on ``form``: bad input on its field when the form has it,
    anything else above the fields (an unexpected error logged as ``failed``)."""
    if isinstance(exc, InvalidInput):
        form.add_error(exc.field if exc.field in form.fields else None, exc.message)
    else:
        form.add_error(None, _error_text(exc, failed, *args))
