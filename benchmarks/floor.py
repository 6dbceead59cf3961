"""The floor: the least a signed PayConnect webhook can cost in Django.

HMAC-SHA256 of the raw body against the ``x-payconnect-signature`` header (the
same secret and header as this app's PayConnect provider), the invoice's row
locked with ``select_for_update().get()`` on its unique reference and one
``UPDATE``, in one transaction (one durable commit). It reads the reference
from the body (``data.object.metadata.invoice_id``) and nothing else: no
inbox, no dedupe, no amount check, no payment row, no signals. Every delivery,
a duplicate too, does the same work. The benchmarks divide this app's figures
by this view's, measured in the same run under the same settings.
"""

from __future__ import annotations

import hashlib
import hmac
import json

from django.conf import settings
from django.db import transaction
from django.http import HttpRequest, HttpResponse
from django.utils import timezone

from django_payments_ru.models import Invoice
from django_payments_ru.providers.payconnect.provider import SIGNATURE_HEADER
from django_payments_ru.status import InvoiceStatus

_KEY = settings.PAYCONNECT_SECRET.encode()


def webhook(request: HttpRequest) -> HttpResponse:
    if request.method != "POST":
        return HttpResponse(status=405, headers={"Allow": "POST"})
    body = request.body
    given = request.headers.get(SIGNATURE_HEADER, "").strip().lower()
    expected = hmac.new(_KEY, body, hashlib.sha256).hexdigest()
    if not hmac.compare_digest(given, expected):
        return HttpResponse("Invalid signature", status=400)
    ref = json.loads(body)["data"]["object"]["metadata"]["invoice_id"]
    now = timezone.now()
    with transaction.atomic(durable=True):
        invoice = Invoice.objects.select_for_update().only("pk").get(uuid=ref)
        Invoice.objects.filter(pk=invoice.pk).update(
            status=InvoiceStatus.PAID, paid_at=now, updated_at=now
        )
    return HttpResponse("OK", content_type="text/plain")
