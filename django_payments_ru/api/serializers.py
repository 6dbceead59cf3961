from __future__ import annotations

from typing import Any

from rest_framework import serializers

from ..formatting import plain_amount
from ..models import Invoice
from ..providers.base import Checkout


def checkout_data(checkout: Checkout) -> dict[str, Any]:
    """How the customer reaches the provider: a redirect (``method="GET"``) or a
    form (``method="POST"`` of ``fields`` to ``url``)."""
    return {
        "method": checkout.method,
        "url": checkout.url,
        "fields": dict(checkout.fields),
        "expires_at": (
            serializers.DateTimeField().to_representation(checkout.expires_at)
            if checkout.expires_at
            else None
        ),
    }


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


class InvoiceSerializer(serializers.ModelSerializer):
    reference = serializers.UUIDField(source="uuid", read_only=True)
    status_display = serializers.CharField(source="get_status_display", read_only=True)
    is_paid = serializers.BooleanField(read_only=True)
    amount = AmountField()
    #: The 54-FZ receipt (:meth:`Receipt.to_json()
    #: <django_payments_ru.receipts.Receipt.to_json>`: decimals as strings), or
    #: ``null``.
    receipt = serializers.SerializerMethodField()

    class Meta:
        model = Invoice
        fields = [
            "reference",
            "provider",
            "status",
            "status_display",
            "is_paid",
            "amount",
            "currency",
            "order_id",
            "description",
            "created_at",
            "status_changed_at",
            "expires_at",
            "receipt",
        ]
        read_only_fields = fields

    def get_receipt(self, obj: Invoice) -> dict[str, Any] | None:
        return obj.receipt or None
