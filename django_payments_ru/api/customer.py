from __future__ import annotations

import logging
from typing import Any

from django.db import transaction
from django.shortcuts import get_object_or_404
from django.utils.decorators import method_decorator
from rest_framework import status
from rest_framework.permissions import AllowAny
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from .. import services
from ..exceptions import (
    InvalidInput,
    InvalidOperation,
    NotSupported,
    PaymentsError,
    ProviderError,
)
from ..models import Invoice
from .serializers import InvoiceSerializer, checkout_data

logger = logging.getLogger("django_payments_ru.api")


def _error(exc: PaymentsError) -> Response:
    code: int
    if isinstance(exc, InvalidOperation):
        code = status.HTTP_409_CONFLICT
    elif isinstance(exc, InvalidInput | NotSupported):
        code = status.HTTP_400_BAD_REQUEST
    elif isinstance(exc, ProviderError):
        code = status.HTTP_502_BAD_GATEWAY
    else:
        code = status.HTTP_400_BAD_REQUEST
    return Response({"code": exc.code, "detail": str(exc)}, status=code)


# Never inside the request's transaction (ATOMIC_REQUESTS): the services call
# providers, which they refuse inside a transaction. On dispatch, because
# as_view() copies dispatch's attributes to the view Django calls.
_non_atomic = method_decorator(transaction.non_atomic_requests, name="dispatch")


@_non_atomic
class InvoiceView(APIView):
    """The public state of one invoice."""

    permission_classes = [AllowAny]
    authentication_classes: list[Any] = []

    def get(self, request: Request, ref: str) -> Response:
        invoice = get_object_or_404(Invoice, uuid=ref)
        return Response(InvoiceSerializer(invoice).data)


@_non_atomic
class CheckoutView(APIView):
    """Start (or resume) paying an invoice; answers with the Checkout."""

    permission_classes = [AllowAny]
    authentication_classes: list[Any] = []

    def post(self, request: Request, ref: str) -> Response:
        invoice = get_object_or_404(Invoice, uuid=ref)
        try:
            checkout = services.start_payment(invoice, request._request)
        except PaymentsError as exc:
            logger.warning("Checkout for %s failed: %s", invoice.uuid, exc.code)
            return _error(exc)
        return Response(checkout_data(checkout))


urlpatterns: list = []
