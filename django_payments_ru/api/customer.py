"""The customer endpoints: a checkout page in the customer's browser, reached
with the invoice's pay link token (docs/api.rst).

* ``GET  pay/<token>/``: the invoice's public state;
* ``POST pay/<token>/checkout/``: start (or resume) paying it; the
  :class:`~django_payments_ru.providers.base.Checkout`.

The token is the pay link's (:func:`django_payments_ru.paylinks.make_token`):
the invoice's reference signed with the project's key, so a bare reference, a
guessed or an altered token is 404. The answers carry what the browser needs and
nothing else of the invoice. A provider that fails is a 502 or 503 in the error
shape, never a 500.
"""

from __future__ import annotations

import logging
import math

from django.core.exceptions import ImproperlyConfigured
from django.urls import path
from django.utils.translation import gettext as _
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse
from rest_framework import exceptions as drf
from rest_framework import status
from rest_framework.request import Request
from rest_framework.response import Response

from .. import customer, services
from ..exceptions import (
    InvalidOperation,
    OperationInFlight,
    PaymentsError,
    ProviderError,
    ProviderRateLimited,
    ProviderResponseError,
    ProviderUnavailable,
)
from ..models import Invoice
from ..paylinks import read_token
from ..status import PAYABLE
from ..validation import safe_redirect_url
from .base import CustomerAPIView, extend_schema
from .errors import (
    error_response,
    error_responses,
    payments_error_response,
    retry_after_header,
)
from .serializers import (
    CheckoutSerializer,
    PayStateSerializer,
    checkout_data,
    pay_state,
)

logger = logging.getLogger("django_payments_ru.api")

#: The pay link's token: ``<reference in hex>:<signature>``.
TOKEN_PATTERN = r"^[0-9a-f]{32}:[A-Za-z0-9_-]+$"

TOKEN = OpenApiParameter(
    "token",
    str,
    OpenApiParameter.PATH,
    description=(
        "The invoice's pay link token (the last part of its pay link "
        "`/payments/pay/<token>/`): its reference signed with the shop's key. "
        "A bare reference is not a token."
    ),
    pattern=TOKEN_PATTERN,
)


def invoice_for_token(token: str) -> Invoice:
    """The invoice ``token`` was made for; 404 for anything else."""
    key = read_token(token)
    invoice = Invoice.objects.filter(uuid=key).first() if key is not None else None
    if invoice is None:
        raise drf.NotFound(_("No such invoice."))
    return invoice


def _cannot_start() -> str:
    return _(
        "The payment cannot be started right now. Please try again in a few minutes."
    )


class PayStateView(CustomerAPIView):
    """The invoice's public state."""

    @extend_schema(
        operation_id="customer_pay_state",
        summary="An invoice's public state",
        description=(
            "What a checkout page shows: the status in words, whether the invoice "
            "can be paid now, the amount, the order, the provider's name. Never "
            "the customer's e-mail or phone, the metadata or the provider's ids."
        ),
        parameters=[TOKEN, retry_after_header(429)],
        responses={
            200: OpenApiResponse(PayStateSerializer, description="The state."),
            **error_responses(404, 429),
        },
    )
    def get(self, request: Request, token: str) -> Response:
        invoice = invoice_for_token(token)
        return Response(PayStateSerializer(pay_state(invoice)).data)


class PayCheckoutView(CustomerAPIView):
    """Start (or resume) paying the invoice."""

    @extend_schema(
        operation_id="customer_pay_checkout",
        summary="Start paying an invoice",
        description=(
            "Registers the payment with the provider when its API does that (once: "
            "a second call, a double click or another tab gets the same checkout "
            "while it is valid) and answers how the browser reaches the provider: "
            "a redirect to `url` (`GET`, with a QR code where the provider "
            "gives one) or a form of `fields` to post to `url` (`POST`). "
            "No request body."
        ),
        request=None,
        parameters=[TOKEN, retry_after_header()],
        responses={
            200: OpenApiResponse(
                CheckoutSerializer, description="How the browser reaches the provider."
            ),
            **error_responses(
                400,
                404,
                409,
                429,
                502,
                503,
                codes={
                    502: (
                        "provider_error",
                        "api_error",
                        "authentication_failed",
                        "bad_response",
                    ),
                    503: ("provider_unavailable", "rate_limited"),
                },
            ),
        },
    )
    def post(self, request: Request, token: str) -> Response:
        invoice = invoice_for_token(token)
        try:
            checkout = services.start_payment(invoice, request._request)
            if not safe_redirect_url(checkout.url):
                raise ProviderResponseError(
                    "The provider returned a payment URL that is not http(s).",
                    provider=invoice.provider,
                )
        except InvalidOperation as exc:
            return self._refused(invoice, exc)
        except ProviderError as exc:
            logger.warning(
                "API checkout of invoice %s failed: %s: %s",
                invoice.uuid,
                type(exc).__name__,
                exc,
            )
            return self._provider_failed(exc)
        except PaymentsError as exc:
            # Bad input for the provider (a currency it does not take...) or an
            # operation it does not offer: the invoice, not the request, is wrong.
            logger.warning(
                "API checkout of invoice %s refused: %s", invoice.uuid, exc.code
            )
            return payments_error_response(exc)
        except ImproperlyConfigured as exc:
            logger.error(
                "API checkout of invoice %s: the provider is misconfigured: %s",
                invoice.uuid,
                exc,
            )
            return error_response(
                status.HTTP_503_SERVICE_UNAVAILABLE,
                ProviderUnavailable.default_code,
                _cannot_start(),
            )
        except Exception:
            # A provider bug must not become a server error for the customer.
            logger.exception("API checkout of invoice %s failed", invoice.uuid)
            return error_response(
                status.HTTP_502_BAD_GATEWAY, ProviderError.default_code, _cannot_start()
            )
        return Response(CheckoutSerializer(checkout_data(checkout, invoice)).data)

    def _refused(self, invoice: Invoice, exc: InvalidOperation) -> Response:
        """409: paid, cancelled, expired or held meanwhile, its order paid
        through another invoice, or a start in flight in another tab. Told in
        the customer's words (the service's message names invoices)."""
        logger.info("API checkout of invoice %s: %s", invoice.uuid, exc.default_code)
        if isinstance(exc, OperationInFlight):
            detail = exc.message
        elif invoice.status in PAYABLE:
            detail = customer.paid_elsewhere_message()
        else:
            detail = customer.status_message(invoice)
        return error_response(status.HTTP_409_CONFLICT, exc.default_code, detail)

    def _provider_failed(self, exc: ProviderError) -> Response:
        """502 (refused, nonsense) or 503 (unreachable, rate limited): the code
        says which; the provider's own words stay in the log."""
        headers: dict[str, str] = {}
        code: int
        if isinstance(exc, ProviderRateLimited | ProviderUnavailable):
            code = status.HTTP_503_SERVICE_UNAVAILABLE
            wait = getattr(exc, "retry_after", None)
            if isinstance(wait, int | float) and 0 <= wait < math.inf:
                headers["Retry-After"] = str(math.ceil(wait))
        else:
            code = status.HTTP_502_BAD_GATEWAY
        # The class's code: ``exc.code`` may be the provider's own.
        return error_response(code, exc.default_code, _cannot_start(), headers=headers)


urlpatterns = [
    path("pay/<str:token>/", PayStateView.as_view(), name="pay"),
    path("pay/<str:token>/checkout/", PayCheckoutView.as_view(), name="pay-checkout"),
]
