"""The merchant endpoints: the shop's back office (docs/api-merchant.rst).

Under the API's mount (``payments/api/``):

* ``GET  invoices/``: the invoices, newest first, filtered, a page at a time
  (a cursor);
* ``POST invoices/``: a new invoice and its pay link (``Idempotency-Key``);
* ``GET  invoices/<ref>/``: one invoice with its payments, operations and
  webhook events;
* ``POST invoices/<ref>/refresh/``, ``refund/``, ``cancel/``, ``capture/``,
  ``release/``: the admin's operations.

Everything goes through :mod:`django_payments_ru.services`, with their checks
and errors (the admin's); every error is the one error object
(:mod:`~django_payments_ru.api.errors`), with ``field`` naming the request field
(``"receipt.lines[1].amount"``). By default the caller needs the Django model
permission the admin asks for: ``view_invoice`` to read, ``add_invoice`` to
create, ``change_invoice`` for an operation.
"""

from __future__ import annotations

import hashlib
import json
import re
import uuid
from collections.abc import Callable
from datetime import timedelta
from typing import Any

from django.db import IntegrityError, transaction
from django.db.models import Prefetch, QuerySet
from django.urls import NoReverseMatch, path, reverse
from django.utils import timezone
from django.utils.translation import gettext_lazy as _
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import (
    OpenApiExample,
    OpenApiParameter,
    OpenApiResponse,
)
from rest_framework import status
from rest_framework.exceptions import APIException, NotFound
from rest_framework.exceptions import ValidationError as DRFValidationError
from rest_framework.renderers import JSONRenderer
from rest_framework.request import Request
from rest_framework.response import Response

from .. import services
from ..conf import payments_settings
from ..exceptions import (
    ConfigurationError,
    UnknownProvider,
)
from ..models import IdempotencyKey, Invoice, Operation, WebhookEvent
from .base import MerchantAPIView, extend_schema
from .errors import (
    ErrorSerializer,
    error_body,
    error_responses,
    retry_after_header,
)
from .merchant_serializers import (
    InvalidCursor,
    InvoiceCursorPagination,
    MerchantCaptureSerializer,
    MerchantInvoiceCreateSerializer,
    MerchantInvoiceDetailSerializer,
    MerchantInvoiceFilterSerializer,
    MerchantInvoiceSerializer,
    MerchantRefundSerializer,
    query_data,
)

VIEW = "django_payments_ru.view_invoice"
ADD = "django_payments_ru.add_invoice"
CHANGE = "django_payments_ru.change_invoice"

TAGS = ["merchant"]

#: The header, and what a key may hold: 1 to 255 visible ASCII characters
#: (a UUID is the usual choice), optionally in double quotes (the IETF draft's
#: structured-field string).
IDEMPOTENCY_HEADER = "Idempotency-Key"
_KEY = re.compile(r"[\x21\x23-\x7e]{1,255}")

#: Expired keys one create removes at most, besides its own.
_SWEEP = 100


# --- errors ---------------------------------------------------------------------


class IdempotencyKeyReused(APIException):
    """The ``Idempotency-Key`` was first used with another body (IETF draft
    ``httpapi-idempotency-key-header``: 422)."""

    status_code = status.HTTP_422_UNPROCESSABLE_ENTITY
    default_code = "idempotency_key_reused"
    default_detail = _(
        "This Idempotency-Key was used with another request body: use a new key "
        "for another request."
    )


# --- the views --------------------------------------------------------------------


REF = OpenApiParameter(
    "ref",
    OpenApiTypes.UUID,
    OpenApiParameter.PATH,
    description="The invoice's reference (its UUID).",
)

IDEMPOTENCY_KEY = OpenApiParameter(
    IDEMPOTENCY_HEADER,
    OpenApiTypes.STR,
    OpenApiParameter.HEADER,
    required=False,
    pattern=r"^[\x21\x23-\x7e]{1,255}$",
    description=(
        "Makes the create safe to retry: the same key with the same body, from "
        "the same user, answers with the first answer (and the header "
        "Idempotent-Replayed: true) instead of making a second invoice; with "
        "another body it is a 422 (idempotency_key_reused). 1 to 255 visible "
        "ASCII characters, e.g. a UUID; kept for "
        'PAYMENTS_RU["API_IDEMPOTENCY_TTL"] (24 hours by default).'
    ),
)

LOCATION = OpenApiParameter(
    "Location",
    OpenApiTypes.URI,
    OpenApiParameter.HEADER,
    response=[201],
    description="The new invoice's URL (invoices_retrieve).",
)

REPLAYED = OpenApiParameter(
    "Idempotent-Replayed",
    OpenApiTypes.STR,
    OpenApiParameter.HEADER,
    response=[201],
    enum=["true"],
    description="Present on an answer replayed for a repeated Idempotency-Key.",
)

KEY_REUSED = OpenApiResponse(
    ErrorSerializer,
    description="The Idempotency-Key was used with another body.",
)

BAD_CURSOR = OpenApiResponse(
    ErrorSerializer,
    description="The cursor was not made here (invalid_cursor).",
)

#: The errors every operation on one invoice can answer with.
OPERATION_ERRORS = (400, 401, 403, 404, 409, 429, 502, 503)


class MerchantView(MerchantAPIView):
    """What the merchant endpoints share: the invoice by its reference, the
    answer with an invoice, the library's errors with their request field."""

    def handle_exception(self, exc: Exception) -> Response:
        if isinstance(exc, InvalidCursor):
            response = Response(
                error_body(exc.default_code, str(exc.detail), "cursor"),
                status=exc.status_code,
            )
        elif isinstance(exc, UnknownProvider):
            # An invoice of a provider no longer in the settings.
            response = Response(
                error_body("unknown_provider", str(exc), "provider"),
                status=status.HTTP_409_CONFLICT,
            )
        else:
            return super().handle_exception(exc)
        response.exception = True
        return response

    def get_invoice(
        self, ref: str, queryset: QuerySet[Invoice] | None = None
    ) -> Invoice:
        try:
            reference = uuid.UUID(ref)
        except ValueError:
            raise NotFound(_("No such invoice.")) from None
        try:
            return (queryset if queryset is not None else Invoice.objects).get(
                uuid=reference
            )
        except Invoice.DoesNotExist:
            raise NotFound(_("No such invoice.")) from None

    def detail(self, invoice: Invoice, *, reread: bool = True) -> dict[str, Any]:
        """The answer with one invoice: by default read again, with its
        payments, operations and events (``reread=False``: ``invoice`` was read
        :func:`with_history`)."""
        if reread:
            invoice = with_history(Invoice.objects.filter(pk=invoice.pk)).get()
        return MerchantInvoiceDetailSerializer(
            invoice, context={"request": self.request}
        ).data


def with_history(queryset: QuerySet[Invoice]) -> QuerySet[Invoice]:
    """``queryset`` with what the detail shows, in three queries; the events
    without their payloads."""
    return queryset.prefetch_related(
        "payments",
        Prefetch("operations", queryset=Operation.objects.order_by("created_at", "id")),
        Prefetch(
            "webhook_events",
            queryset=WebhookEvent.objects.defer(
                "payload", "event", "traceback"
            ).order_by("received_at", "id"),
        ),
    )


# --- the list and the create --------------------------------------------------------


def _ttl() -> timedelta:
    value = payments_settings.API_IDEMPOTENCY_TTL
    if isinstance(value, timedelta):
        return value
    if isinstance(value, int | float) and not isinstance(value, bool) and value > 0:
        return timedelta(seconds=value)
    raise ConfigurationError(
        "PAYMENTS_RU['API_IDEMPOTENCY_TTL'] must be a number of seconds or a "
        f"timedelta, not {value!r}."
    )


def idempotency_key(request: Request) -> str | None:
    """The request's ``Idempotency-Key``, or None; a 400 when it is not 1 to
    255 visible ASCII characters."""
    raw = request.headers.get(IDEMPOTENCY_HEADER)
    if raw is None:
        return None
    key = raw[1:-1] if len(raw) >= 2 and raw[0] == raw[-1] == '"' else raw
    if not _KEY.fullmatch(key):
        raise DRFValidationError(
            {
                IDEMPOTENCY_HEADER: [
                    _("An Idempotency-Key is 1 to 255 visible ASCII characters.")
                ]
            }
        )
    return key


def key_owner(request: Request) -> str:
    """Whose keys: the user's (keys are per user), or ``"anonymous"``."""
    user = request.user
    if user is not None and user.is_authenticated:
        return f"{user._meta.label_lower}:{user.pk}"
    return "anonymous"


def fingerprint(data: Any) -> str:
    """SHA-256 of the request body as canonical JSON (keys sorted, no spaces):
    the same data however it was spelled."""
    text = json.dumps(data, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(text.encode()).hexdigest()


def _live_key(owner: str, key: str) -> IdempotencyKey | None:
    """The key's row if it has not expired (an expired one is removed)."""
    row = IdempotencyKey.objects.filter(owner=owner, key=key).first()
    if row is not None and row.created_at < timezone.now() - _ttl():
        IdempotencyKey.objects.filter(pk=row.pk).delete()
        return None
    return row


def _sweep_keys() -> None:
    """Remove some expired keys (every create with a key does its share)."""
    cutoff = timezone.now() - _ttl()
    stale = list(
        IdempotencyKey.objects.filter(created_at__lt=cutoff)
        .order_by("created_at")
        .values_list("pk", flat=True)[:_SWEEP]
    )
    if stale:
        IdempotencyKey.objects.filter(pk__in=stale).delete()


def _replay(request: Request, row: IdempotencyKey, print_: str) -> Response:
    """The first answer given with ``row``'s key, or the 422 when this
    request's body is not the first's."""
    if row.fingerprint != print_:
        raise IdempotencyKeyReused()
    headers = _location(request, str(row.response.get("reference", "")))
    return Response(
        row.response,
        status=row.status_code,
        headers={**headers, "Idempotent-Replayed": "true"},
    )


def _location(request: Request, reference: str) -> dict[str, str]:
    """The ``Location`` header of a created invoice."""
    try:
        where = reverse(
            "django_payments_ru_api:merchant-invoice-detail", kwargs={"ref": reference}
        )
    except NoReverseMatch:  # included under another namespace
        return {}
    return {"Location": request.build_absolute_uri(where)}


class InvoiceListView(MerchantView):
    """``GET``: the invoices; ``POST``: a new one."""

    pagination_class = InvoiceCursorPagination

    @property
    def required_permissions(self) -> list[str]:  # type: ignore[override]
        return [ADD] if self.request.method == "POST" else [VIEW]

    @extend_schema(
        operation_id="invoices_list",
        tags=TAGS,
        summary="List invoices",
        description=(
            "The invoices, newest first, a page at a time: follow `next` (and "
            "`previous`) as they are; `page_size` asks for fewer than "
            '`PAYMENTS_RU["API_PAGE_SIZE"]`. Filters combine (AND); `status` '
            "may be repeated (OR). A filter value that does not parse is a 400. "
            "Needs `view_invoice`."
        ),
        parameters=[MerchantInvoiceFilterSerializer, retry_after_header(429)],
        responses={
            200: OpenApiResponse(
                MerchantInvoiceSerializer(many=True),
                description="A page of invoices, newest first.",
            ),
            **error_responses(400, 401, 403, 429),
            404: BAD_CURSOR,
        },
    )
    def get(self, request: Request) -> Response:
        filters = MerchantInvoiceFilterSerializer(data=query_data(request))
        filters.is_valid(raise_exception=True)
        queryset = filtered(Invoice.objects.all(), filters.validated_data)
        paginator = self.pagination_class()
        page = paginator.paginate_queryset(queryset, request, view=self)
        data = MerchantInvoiceSerializer(
            page, many=True, context={"request": request}
        ).data
        return paginator.get_paginated_response(data)

    @extend_schema(
        operation_id="invoices_create",
        tags=TAGS,
        summary="Create an invoice",
        description=(
            "A new invoice (`services.create_invoice`, the admin's add form's "
            "checks) and its `pay_link`; nothing is sent to the provider until "
            "the customer opens the link. `receipt` takes the 54-FZ lines, which "
            "must add up to `amount`; a provider that prints no receipts refuses "
            "them (`receipts_not_supported`). Send an `Idempotency-Key` to retry "
            "safely. Needs `add_invoice`."
        ),
        parameters=[IDEMPOTENCY_KEY, LOCATION, REPLAYED, retry_after_header(429)],
        request=MerchantInvoiceCreateSerializer,
        responses={
            201: OpenApiResponse(
                MerchantInvoiceDetailSerializer,
                description="The invoice made (or, for a repeated "
                "Idempotency-Key, the one made the first time).",
            ),
            **error_responses(400, 401, 403, 409, 429),
            422: KEY_REUSED,
        },
        examples=[
            OpenApiExample(
                "An order of two lines",
                request_only=True,
                value={
                    "provider": "sandbox",
                    "amount": "930.00",
                    "order_id": "A-1001",
                    "customer_email": "buyer@example.com",
                    "receipt": {
                        "delivery": "email",
                        "lines": [
                            {
                                "name": "Маракуя",
                                "quantity": "2",
                                "price": "415.00",
                                "amount": "830.00",
                                "vat": "vat20",
                            },
                            {
                                "name": "Доставка",
                                "quantity": "1",
                                "price": "100.00",
                                "amount": "100.00",
                                "vat": "vat20",
                                "unit": "service",
                                "payment_object": "service",
                            },
                        ],
                    },
                },
            )
        ],
    )
    def post(self, request: Request) -> Response:
        key = idempotency_key(request)
        data = request.data
        owner = key_owner(request)
        print_ = fingerprint(data) if key is not None else ""
        if key is not None:
            found = _live_key(owner, key)
            if found is not None:
                return _replay(request, found, print_)
            _sweep_keys()
        serializer = MerchantInvoiceCreateSerializer(data=data)
        serializer.is_valid(raise_exception=True)
        try:
            # The key's row and the invoice together: a create that fails
            # leaves no key, and a second request with the key waits here on the
            # unique index until the first commits, then replays its answer.
            with transaction.atomic():
                invoice = services.create_invoice(**serializer.validated_data)
                body = _json(self.detail(invoice))
                if key is not None:
                    IdempotencyKey.objects.create(
                        owner=owner,
                        key=key,
                        fingerprint=print_,
                        invoice=invoice,
                        status_code=status.HTTP_201_CREATED,
                        response=body,
                    )
        except IntegrityError:
            found = _live_key(owner, key) if key is not None else None
            if found is None:
                raise
            return _replay(request, found, print_)
        return Response(
            body,
            status=status.HTTP_201_CREATED,
            headers=_location(request, str(invoice.uuid)),
        )


def _json(data: Any) -> Any:
    """``data`` as JSON values only (what the key's row stores and replays)."""
    return json.loads(JSONRenderer().render(data))


def filtered(queryset: QuerySet[Invoice], filters: dict[str, Any]) -> QuerySet[Invoice]:
    """``queryset`` narrowed by the list's validated filters."""
    if filters.get("status"):
        queryset = queryset.filter(status__in=sorted(filters["status"]))
    for name in ("provider", "order_id", "order_key"):
        if name in filters:
            queryset = queryset.filter(**{name: filters[name]})
    if "created_after" in filters:
        queryset = queryset.filter(created_at__gte=filters["created_after"])
    if "created_before" in filters:
        queryset = queryset.filter(created_at__lt=filters["created_before"])
    if "needs_attention" in filters:
        queryset = queryset.filter(needs_attention=filters["needs_attention"])
    return queryset


# --- one invoice -------------------------------------------------------------------


class InvoiceDetailView(MerchantView):
    required_permissions = [VIEW]

    @extend_schema(
        operation_id="invoices_retrieve",
        tags=TAGS,
        summary="One invoice",
        description=(
            "The invoice with its payments (charges and refunds), the operations "
            "sent to its provider and its webhook events, oldest first; never a "
            "webhook's raw payload. Needs `view_invoice`."
        ),
        parameters=[REF, retry_after_header(429)],
        responses={
            200: OpenApiResponse(
                MerchantInvoiceDetailSerializer,
                description="The invoice with its payments, operations and events.",
            ),
            **error_responses(401, 403, 404, 429),
        },
    )
    def get(self, request: Request, ref: str) -> Response:
        invoice = self.get_invoice(ref, with_history(Invoice.objects.all()))
        return Response(self.detail(invoice, reread=False))


class OperationView(MerchantView):
    """An operation on one invoice, through its service; answers with the
    invoice as it is afterwards."""

    required_permissions = [CHANGE]

    def operate(self, ref: str, run: Callable[[Invoice], Any]) -> Response:
        invoice = self.get_invoice(ref)
        run(invoice)
        return Response(self.detail(invoice))

    def body(self, serializer_class: type[Any]) -> dict[str, Any]:
        serializer = serializer_class(data=self.request.data)
        serializer.is_valid(raise_exception=True)
        return dict(serializer.validated_data)


def _operation_schema(
    name: str, summary: str, description: str, **kwargs: Any
) -> Callable[[Any], Any]:
    return extend_schema(
        operation_id=f"invoices_{name}",
        tags=TAGS,
        summary=summary,
        description=description + " Needs `change_invoice`.",
        parameters=[REF, retry_after_header()],
        responses={
            200: OpenApiResponse(
                MerchantInvoiceDetailSerializer,
                description="The invoice after the operation.",
            ),
            **error_responses(*OPERATION_ERRORS),
        },
        **kwargs,
    )


class RefreshView(OperationView):
    @_operation_schema(
        "refresh",
        "Ask the provider",
        "Asks the provider where the payment stands and applies the answer "
        "(`services.refresh_invoice`); 400 `not_supported` where it cannot be "
        "asked.",
        request=None,
    )
    def post(self, request: Request, ref: str) -> Response:
        return self.operate(ref, services.refresh_invoice)


class RefundView(OperationView):
    @_operation_schema(
        "refund",
        "Refund",
        "Refunds `amount` (default: everything not yet refunded) through the "
        "provider (`services.refund_invoice`). An invoice with a receipt refunds "
        "receipt lines: `receipt.lines` names those of a partial refund (paid "
        "lines, at most the quantity left; the amount is their total), none "
        "refunds every line left. 409 when nothing is left to refund or a "
        "refund awaits the provider's confirmation (`operation_in_flight`).",
        request=MerchantRefundSerializer,
        examples=[
            OpenApiExample("Part", request_only=True, value={"amount": "100.00"}),
            OpenApiExample("Everything left", request_only=True, value={}),
        ],
    )
    def post(self, request: Request, ref: str) -> Response:
        data = self.body(MerchantRefundSerializer)
        return self.operate(
            ref,
            lambda invoice: services.refund_invoice(
                invoice, data.get("amount"), receipt=data.get("receipt")
            ),
        )


class CancelView(OperationView):
    @_operation_schema(
        "cancel",
        "Cancel",
        "Cancels an unpaid invoice, at the provider where it can cancel "
        "(`services.cancel_invoice`); funds on hold are released first. 409 for "
        "a paid invoice (refund it).",
        request=None,
    )
    def post(self, request: Request, ref: str) -> Response:
        return self.operate(ref, services.cancel_invoice)


class CaptureView(OperationView):
    @_operation_schema(
        "capture",
        "Capture a hold",
        "Takes the funds on hold (`services.capture_invoice`): `amount`, where "
        "the provider allows less than the hold, else the whole hold. 409 when "
        "the invoice is not on hold; 400 `not_supported` at a provider without "
        "holds.",
        request=MerchantCaptureSerializer,
    )
    def post(self, request: Request, ref: str) -> Response:
        data = self.body(MerchantCaptureSerializer)
        return self.operate(
            ref, lambda invoice: services.capture_invoice(invoice, data.get("amount"))
        )


class ReleaseView(OperationView):
    @_operation_schema(
        "release",
        "Release a hold",
        "Releases the funds on hold to the customer; the invoice is then "
        "cancelled (`services.release_invoice`). 409 when the invoice is not on "
        "hold.",
        request=None,
    )
    def post(self, request: Request, ref: str) -> Response:
        return self.operate(ref, services.release_invoice)


urlpatterns = [
    path("invoices/", InvoiceListView.as_view(), name="merchant-invoice-list"),
    path(
        "invoices/<str:ref>/",
        InvoiceDetailView.as_view(),
        name="merchant-invoice-detail",
    ),
    *(
        path(
            f"invoices/<str:ref>/{name}/",
            view.as_view(),
            name=f"merchant-invoice-{name}",
        )
        for name, view in (
            ("refresh", RefreshView),
            ("refund", RefundView),
            ("cancel", CancelView),
            ("capture", CaptureView),
            ("release", ReleaseView),
        )
    ),
]
