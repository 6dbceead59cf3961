"""What the customer endpoints answer (docs/api.rst), and the fields the two
audiences share.

The customer's answers are built from the invoice by :func:`pay_state` and
:func:`checkout_data` and rendered through plain serializers, which are also
their OpenAPI description: nothing of the row is shown that is not named here
(never the customer's e-mail or phone, the metadata, the provider's alias or
payment ids).
"""

from __future__ import annotations

from typing import Any

from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from .. import customer
from ..formatting import format_money, plain_amount
from ..models import Invoice
from ..providers.base import Checkout
from ..status import PAYABLE, InvoiceStatus

#: An amount as the API writes it: digits, and a point before the currency's
#: decimals when it has any ("1234.50" RUB, "1234" JPY, "1.234" BHD).
AMOUNT_PATTERN = r"^-?[0-9]+(\.[0-9]+)?$"
AMOUNT_SCHEMA: dict[str, Any] = {
    "type": "string",
    "pattern": AMOUNT_PATTERN,
    "example": "1234.50",
}


@extend_schema_field(AMOUNT_SCHEMA)
class AmountField(serializers.Field):
    """An invoice's amount as a string with exactly its currency's decimals
    ("1234.50" for RUB, "1234" for JPY, "1.234" for BHD), whatever the column
    keeps (three places). Read-only; reads the invoice's ``currency``."""

    def __init__(self, attribute: str = "amount", **kwargs: Any) -> None:
        self.attribute = attribute
        kwargs.setdefault("read_only", True)
        kwargs["source"] = "*"
        super().__init__(**kwargs)

    def to_representation(self, value: Any) -> str | None:
        amount = getattr(value, self.attribute)
        return None if amount is None else plain_amount(amount, value.currency)


@extend_schema_field(AMOUNT_SCHEMA)
class AmountTextField(serializers.CharField):
    """An amount already written by :func:`plain_amount` (a string)."""


# --- the invoice's public state -------------------------------------------------


class ReceiptLineSerializer(serializers.Serializer):
    """One line of the invoice's 54-FZ receipt, as the customer sees it."""

    name = serializers.CharField(help_text="What is sold.")
    quantity = serializers.CharField(
        help_text='The quantity, a decimal as a string ("1", "0.5").'
    )
    unit = serializers.CharField(help_text='The unit of the quantity ("piece", "kg").')
    price = AmountTextField(help_text="The price of one unit.")
    amount = AmountTextField(help_text="The line's sum: price x quantity.")


class PayStateSerializer(serializers.Serializer):
    """An invoice's public state: what a checkout page shows."""

    reference = serializers.UUIDField(help_text="The invoice's reference.")
    status = serializers.ChoiceField(
        choices=InvoiceStatus.choices, help_text="The invoice's status."
    )
    status_display = serializers.CharField(
        help_text="The status in words, in the request's language."
    )
    status_message = serializers.CharField(
        help_text="A sentence for the customer about where the payment stands."
    )
    payable = serializers.BooleanField(
        help_text="Whether the invoice can be paid now (POST its checkout)."
    )
    is_paid = serializers.BooleanField(
        help_text="Whether the money was received (refunds included)."
    )
    amount = AmountTextField(help_text="The amount, with the currency's decimals.")
    amount_display = serializers.CharField(
        help_text='The amount for people, in the request\'s language ("1 234,50 ₽").'
    )
    currency = serializers.CharField(help_text="ISO 4217 code.")
    order_id = serializers.CharField(help_text="The shop's order id, or empty.")
    description = serializers.CharField(help_text="What is paid for, or empty.")
    provider_name = serializers.CharField(help_text="The payment provider's name.")
    expires_at = serializers.DateTimeField(
        allow_null=True,
        help_text="When the provider stops accepting the payment, if known.",
    )
    back_url = serializers.CharField(
        help_text='Where "back to the shop" leads (the order page), or empty.'
    )
    receipt_lines = ReceiptLineSerializer(
        many=True, help_text="The receipt's lines (empty without a receipt)."
    )


def pay_state(invoice: Invoice) -> dict[str, Any]:
    """The values of :class:`PayStateSerializer` for ``invoice``."""
    payable = customer.can_pay(invoice)
    message = customer.status_message(invoice)
    if invoice.status in PAYABLE and not payable:
        message = customer.paid_elsewhere_message()
    receipt = invoice.get_receipt()
    lines = [
        {
            "name": line.name,
            "quantity": line.to_json()["quantity"],
            "unit": line.unit,
            "price": plain_amount(line.price, invoice.currency),
            "amount": plain_amount(line.amount, invoice.currency),
        }
        for line in (receipt.lines if receipt is not None else ())
    ]
    return {
        "reference": invoice.uuid,
        "status": invoice.status,
        "status_display": invoice.get_status_display(),
        "status_message": message,
        "payable": payable,
        "is_paid": invoice.is_paid,
        "amount": plain_amount(invoice.amount, invoice.currency),
        "amount_display": format_money(invoice.amount, invoice.currency),
        "currency": invoice.currency,
        "order_id": invoice.order_id,
        "description": invoice.description,
        "provider_name": customer.provider_name(invoice),
        "expires_at": invoice.expires_at,
        "back_url": customer.back_url(invoice),
        "receipt_lines": lines,
    }


# --- the checkout -------------------------------------------------------------------


class QRSerializer(serializers.Serializer):
    """A QR code the customer can scan with a phone to pay (an SBP payment)."""

    image = serializers.CharField(
        help_text="The image: an https: URL or a data:image/... URL."
    )
    payload = serializers.CharField(
        help_text="The link the code encodes (to open on this device), or empty."
    )


class CheckoutSerializer(serializers.Serializer):
    """How the customer's browser reaches the provider."""

    method = serializers.ChoiceField(
        choices=[("GET", "GET"), ("POST", "POST")],
        help_text=(
            "GET: send the browser to url (a link or a redirect). POST: submit a "
            "form of fields to url (an auto-submitting form)."
        ),
    )
    url = serializers.CharField(help_text="The provider's page (http or https).")
    # Declared fields leave the class (DRF's metaclass): this one does not
    # shadow Serializer.fields.
    fields = serializers.DictField(  # type: ignore[assignment]
        child=serializers.CharField(allow_blank=True),
        help_text=(
            "For POST: the form's fields, to post exactly as given (they are "
            "signed); empty for GET."
        ),
    )
    qr = QRSerializer(
        allow_null=True, help_text="A QR code to show beside the link, or null."
    )
    expires_at = serializers.DateTimeField(
        allow_null=True,
        help_text="When the provider's page stops taking the payment, if known.",
    )


def checkout_data(checkout: Checkout, invoice: Invoice | None = None) -> dict[str, Any]:
    """The values of :class:`CheckoutSerializer`: how the customer reaches the
    provider, a redirect (``method="GET"``, with its QR code when the provider
    gives one and it is safe to show) or a form (``method="POST"`` of
    ``fields`` to ``url``). Never the provider's payment id."""
    return {
        "method": checkout.method,
        "url": checkout.url,
        "fields": dict(checkout.fields),
        "qr": customer.checkout_qr(invoice, checkout),
        "expires_at": checkout.expires_at,
    }


__all__ = [
    "AmountField",
    "AmountTextField",
    "CheckoutSerializer",
    "PayStateSerializer",
    "checkout_data",
    "pay_state",
]
