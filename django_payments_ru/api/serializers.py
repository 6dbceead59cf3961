from __future__ import annotations

from typing import Any

from rest_framework import serializers

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


class InvoiceSerializer(serializers.ModelSerializer):
    reference = serializers.UUIDField(source="uuid", read_only=True)
    status_display = serializers.CharField(source="get_status_display", read_only=True)
    is_paid = serializers.BooleanField(read_only=True)
    amount = serializers.DecimalField(
        max_digits=18, decimal_places=3, coerce_to_string=True, read_only=True
    )

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
        ]
        read_only_fields = fields
