"""Views shared by the emulators."""

from __future__ import annotations

from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, render

from ..money import format_amount
from .models import EmulatedPayment
from .registry import get_emulator


def done(request: HttpRequest, slug: str, external_id: str) -> HttpResponse:
    """Where the pay page sends the customer when the payment has no return URL."""
    payment = get_object_or_404(EmulatedPayment, slug=slug, external_id=external_id)
    emulator = get_emulator(slug)
    return render(
        request,
        "payments_ru_emulator/done.html",
        {
            "payment": payment,
            "provider_name": emulator.display_name if emulator else slug,
            "status_label": emulator.status_label(payment)
            if emulator
            else payment.status,
            "amount": format_amount(payment.amount, payment.currency),
        },
    )
