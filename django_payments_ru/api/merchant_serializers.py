"""What the merchant endpoints read and answer (docs/api-merchant.rst).

Every answer that carries an invoice carries it in one shape
(:class:`MerchantInvoiceSerializer`, with its payments, operations and webhook
events in :class:`MerchantInvoiceDetailSerializer`); every amount in it is a
string with exactly the currency's decimals (``"1234.50"`` RUB, ``"1234"`` JPY,
``"1.234"`` BHD). The request serializers check the shape of what comes in
(types, lengths); the services check the values, with the same rules and errors
as the admin.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC
from typing import Any, TypeVar

from django.utils.dateparse import parse_datetime
from django.utils.translation import gettext_lazy as _
from drf_spectacular.extensions import OpenApiSerializerFieldExtension
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers
from rest_framework.exceptions import NotFound, ValidationError
from rest_framework.pagination import Cursor, CursorPagination
from rest_framework.request import Request

from .. import receipts, registry
from ..conf import payments_settings
from ..events import EventType
from ..formatting import plain_amount
from ..models import Invoice, Operation, Payment, WebhookEvent
from ..services import pay_link
from ..status import InvoiceStatus
from .serializers import AmountField

F = TypeVar("F", bound=Callable[..., Any])


#: An amount as the API writes it: digits, and the currency's decimals after a
#: point (none for JPY).
AMOUNT_SCHEMA: dict[str, Any] = {
    "type": "string",
    "pattern": r"^[0-9]+(\.[0-9]{1,3})?$",
    "example": "1234.50",
}

#: An amount as the API reads it: a string, never a JSON number (a float
#: cannot hold a sum of money exactly).
AMOUNT_INPUT_SCHEMA: dict[str, Any] = {
    "type": "string",
    "pattern": r"^[0-9]{1,15}(\.[0-9]{1,3})?$",
    "maxLength": 40,
    "example": "100.00",
}


@extend_schema_field(AMOUNT_SCHEMA)
class MoneyField(AmountField):
    """:class:`~.serializers.AmountField`, described in the schema as the
    decimal string it is."""


@extend_schema_field({**AMOUNT_SCHEMA, "nullable": True})
class _OperationAmountField(serializers.Field):
    """An operation's amount in its invoice's currency, or ``null``."""

    def __init__(self, **kwargs: Any) -> None:
        kwargs.setdefault("read_only", True)
        kwargs["source"] = "*"
        super().__init__(**kwargs)

    def to_representation(self, value: Operation) -> str | None:
        if value.amount is None:
            return None
        return plain_amount(value.amount, value.invoice.currency)


#: The characters the services refuse in a text
#: (:mod:`django_payments_ru.validation`): C0 and C1 controls.
PRINTABLE = "^[^\\u0000-\\u001f\\u007f-\\u009f]*$"
#: The one character a filter refuses (PostgreSQL compares no text with NUL).
NO_NUL = "^[^\\u0000]*$"


class TextField(serializers.CharField):
    """A text whose schema states the characters it refuses (``pattern``), so
    that a client (or a fuzzer) knows what is accepted."""

    default_error_messages = {"not_text": _("Not text: a JSON string is expected.")}

    def __init__(self, *, pattern: str, **kwargs: Any) -> None:
        self.pattern = pattern
        super().__init__(**kwargs)

    def to_internal_value(self, data: Any) -> str:
        # DRF's CharField takes 123 for "123": the schema says a string.
        if not isinstance(data, str):
            self.fail("not_text")
        return str(super().to_internal_value(data))


class _TextFieldSchema(OpenApiSerializerFieldExtension):
    target_class = TextField
    match_subclasses = True

    def map_serializer_field(self, auto_schema: Any, direction: Any) -> Any:
        schema = auto_schema._map_serializer_field(
            self.target, direction, bypass_extensions=True
        )
        return {**schema, "pattern": self.target.pattern}


class ProviderField(TextField):
    """A configured provider's alias; the schema lists those configured when
    it is generated."""

    def to_internal_value(self, data: Any) -> str:
        value = str(super().to_internal_value(data))
        known = registry.aliases()
        if value not in known:
            raise ValidationError(
                _("%(alias)r is not a configured provider (known: %(known)s).")
                % {"alias": value, "known": ", ".join(known) or "-"}
            )
        return value


class _ProviderFieldSchema(OpenApiSerializerFieldExtension):
    target_class = ProviderField
    priority = 1  # before _TextFieldSchema, which matches it too

    def map_serializer_field(self, auto_schema: Any, direction: Any) -> Any:
        aliases = registry.aliases()
        return {"type": "string", "enum": aliases} if aliases else {"type": "string"}


# --- receipts ---------------------------------------------------------------------


class MerchantReceiptLineSerializer(serializers.Serializer):
    """One line of a 54-FZ receipt (docs/receipts.rst); decimals as strings."""

    name = serializers.CharField(max_length=receipts.NAME_MAX_LENGTH)
    quantity = serializers.CharField(
        help_text='Greater than zero, at most three decimals ("0.5").'
    )
    price = serializers.CharField(
        help_text='The unit price in the currency\'s decimals ("300.00").'
    )
    amount = serializers.CharField(
        help_text="price x quantity rounded half up to the currency's decimals."
    )
    vat = serializers.ChoiceField(choices=receipts.VAT_RATES)
    unit = serializers.ChoiceField(choices=receipts.UNITS, default="piece")
    payment_object = serializers.ChoiceField(
        choices=receipts.PAYMENT_OBJECTS, default="commodity"
    )
    payment_method = serializers.ChoiceField(
        choices=receipts.PAYMENT_METHODS, default="full_payment"
    )
    code = serializers.CharField(max_length=64, default="", allow_blank=True)


class MerchantReceiptSerializer(serializers.Serializer):
    """A 54-FZ receipt: its lines and how it reaches the customer."""

    lines = MerchantReceiptLineSerializer(  # type: ignore[call-arg]
        many=True, min_length=1, max_length=receipts.MAX_LINES
    )
    delivery = serializers.ChoiceField(choices=receipts.DELIVERIES, default="email")


@extend_schema_field(MerchantReceiptSerializer)
class ReceiptInputField(serializers.JSONField):
    """A receipt in a request: an object ``{"lines": [...], "delivery": ...}``,
    handed to the services as it is (they check every line and name it)."""

    default_error_messages = {
        # DRF formats the message: the braces are doubled.
        "not_an_object": _(
            'A receipt is an object: {{"lines": [...], "delivery": ...}}.'
        )
    }

    def to_internal_value(self, data: Any) -> Any:
        if not isinstance(data, dict):
            self.fail("not_an_object")
        return data


@extend_schema_field(AMOUNT_INPUT_SCHEMA)
class AmountInputField(serializers.CharField):
    """An amount in a request: a decimal string, checked by the services
    (:func:`~django_payments_ru.money.to_amount`)."""

    default_error_messages = {
        "not_a_string": _(
            "An amount is a decimal string such as '100.00', never a JSON number."
        )
    }

    def __init__(self, **kwargs: Any) -> None:
        kwargs.setdefault("max_length", 40)
        super().__init__(**kwargs)

    def to_internal_value(self, data: Any) -> str:
        if not isinstance(data, str):
            self.fail("not_a_string")
        return str(super().to_internal_value(data))


# --- what the answers carry ---------------------------------------------------------


class MerchantPaymentSerializer(serializers.ModelSerializer):
    """Money that moved: a charge or a refund."""

    kind = serializers.ChoiceField(Payment.Kind.choices, read_only=True)
    amount = MoneyField()
    event: serializers.PrimaryKeyRelatedField[WebhookEvent] = (
        serializers.PrimaryKeyRelatedField(
            read_only=True,
            allow_null=True,
            help_text="The webhook event that recorded it (its id in events), or null.",
        )
    )

    class Meta:
        model = Payment
        fields = [
            "kind",
            "amount",
            "currency",
            "provider_payment_id",
            "event",
            "created_at",
        ]
        read_only_fields = fields


class MerchantOperationSerializer(serializers.ModelSerializer):
    """An operation sent to the provider (a start, refund, capture, release or
    cancel) and how it ended."""

    kind = serializers.ChoiceField(Operation.Kind.choices, read_only=True)
    state = serializers.ChoiceField(Operation.State.choices, read_only=True)
    amount = _OperationAmountField()
    result = serializers.CharField(
        source="reason_text",
        read_only=True,
        help_text="Why it failed, or what confirmed it, in the request's language.",
    )
    receipt = serializers.SerializerMethodField(
        help_text="A refund's receipt lines, or null."
    )

    class Meta:
        model = Operation
        fields = [
            "kind",
            "state",
            "amount",
            "result",
            "receipt",
            "attempts",
            "created_at",
            "settled_at",
        ]
        read_only_fields = fields

    @extend_schema_field(MerchantReceiptSerializer(allow_null=True))
    def get_receipt(self, obj: Operation) -> dict[str, Any] | None:
        return obj.receipt or None


class MerchantWebhookEventSerializer(serializers.ModelSerializer):
    """A webhook event of the invoice as the inbox keeps it; never its raw
    payload, headers or traceback."""

    event_type = serializers.ChoiceField(EventType.choices, read_only=True)
    status = serializers.ChoiceField(WebhookEvent.Status.choices, read_only=True)
    event_id = serializers.CharField(
        source="dedupe_id",
        read_only=True,
        help_text="The provider's event id (or a hash of the signed payload).",
    )
    result = serializers.CharField(
        source="result_text",
        read_only=True,
        help_text="Why it was ignored or rejected, or its last error.",
    )

    class Meta:
        model = WebhookEvent
        fields = [
            "id",
            "provider",
            "event_id",
            "event_type",
            "status",
            "result",
            "attempts",
            "deliveries",
            "needs_attention",
            "received_at",
            "processed_at",
        ]
        read_only_fields = fields


class MerchantInvoiceSerializer(serializers.ModelSerializer):
    """An invoice as the shop's back office sees it."""

    reference = serializers.UUIDField(source="uuid", read_only=True)
    status = serializers.ChoiceField(InvoiceStatus.choices, read_only=True)
    status_display = serializers.CharField(source="get_status_display", read_only=True)
    is_paid = serializers.BooleanField(read_only=True)
    amount = MoneyField()
    paid = MoneyField("paid_amount", help_text="Paid so far.")
    refunded = MoneyField("refunded_amount", help_text="Refunded so far.")
    #: Not ``format: email``: empty when the shop gave none.
    customer_email = serializers.CharField(
        read_only=True, help_text="An e-mail address, or empty."
    )
    receipt = serializers.SerializerMethodField(
        help_text="The 54-FZ receipt (decimals as strings), or null."
    )
    attention = serializers.ListField(
        source="attention_lines",
        child=serializers.CharField(),
        read_only=True,
        help_text="Why the invoice needs attention, a line per note.",
    )
    pay_link = serializers.SerializerMethodField(
        help_text="The link that starts the payment; it can go in an e-mail."
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
            "paid",
            "refunded",
            "currency",
            "order_id",
            "order_key",
            "description",
            "customer_email",
            "customer_phone",
            "metadata",
            "receipt",
            "return_url",
            "provider_payment_id",
            "needs_attention",
            "paid_twice",
            "attention",
            "created_at",
            "updated_at",
            "status_changed_at",
            "paid_at",
            "expires_at",
            "pay_link",
        ]
        read_only_fields = fields

    @extend_schema_field(MerchantReceiptSerializer(allow_null=True))
    def get_receipt(self, obj: Invoice) -> dict[str, Any] | None:
        return obj.receipt or None

    @extend_schema_field(OpenApiTypes.URI)
    def get_pay_link(self, obj: Invoice) -> str:
        request = self.context.get("request")
        return pay_link(obj, getattr(request, "_request", request))


class MerchantInvoiceDetailSerializer(MerchantInvoiceSerializer):
    """An invoice with the money that moved, the operations sent to its
    provider and its webhook events, oldest first."""

    payments = MerchantPaymentSerializer(many=True, read_only=True)
    operations = MerchantOperationSerializer(many=True, read_only=True)
    events = MerchantWebhookEventSerializer(
        source="webhook_events", many=True, read_only=True
    )

    class Meta(MerchantInvoiceSerializer.Meta):
        fields = [
            *MerchantInvoiceSerializer.Meta.fields,
            "payments",
            "operations",
            "events",
        ]
        read_only_fields = fields


# --- what the requests carry ---------------------------------------------------------


def _text(max_length: int, help_text: str) -> serializers.CharField:
    return TextField(
        pattern=PRINTABLE,
        max_length=max_length,
        required=False,
        allow_blank=True,
        help_text=help_text,
    )


class MerchantInvoiceCreateSerializer(serializers.Serializer):
    """A new invoice (``services.create_invoice``); nothing is sent to the
    provider until the customer opens the pay link."""

    provider = ProviderField(
        pattern=PRINTABLE,
        max_length=64,
        help_text='An alias of PAYMENTS_RU["PROVIDERS"].',
    )
    amount = AmountInputField(help_text="In the currency's decimals.")
    currency = serializers.CharField(
        max_length=3, min_length=3, default="RUB", help_text="ISO 4217."
    )
    order_id = _text(64, "The shop's order number, shown to people.")
    order_key = _text(
        64,
        "Groups the invoices of one order: once one is paid, the others are cancelled.",
    )
    description = _text(255, "What is paid for.")
    customer_email = _text(254, "Where the receipt goes.")
    customer_phone = _text(32, "Digits with an optional leading '+'.")
    return_url = _text(
        2000, "Where the customer is sent back: a URL on the shop's host."
    )
    metadata = serializers.DictField(
        required=False, help_text="Anything the shop keeps with the invoice."
    )
    receipt = ReceiptInputField(
        required=False,
        allow_null=True,
        help_text="The 54-FZ receipt: lines adding up to the amount.",
    )


class MerchantRefundSerializer(serializers.Serializer):
    """A refund: everything not yet refunded by default."""

    amount = AmountInputField(
        required=False,
        allow_null=True,
        help_text="Default: everything not yet refunded (or the lines' total).",
    )
    receipt = ReceiptInputField(
        required=False,
        allow_null=True,
        help_text=(
            "For an invoice with a receipt: the lines refunded (paid lines, at "
            "most the quantity left). Default: every line not yet refunded."
        ),
    )


class MerchantCaptureSerializer(serializers.Serializer):
    """A capture of the funds on hold."""

    amount = AmountInputField(
        required=False,
        allow_null=True,
        help_text="Default: the whole hold; less where the provider allows.",
    )


# --- the list -----------------------------------------------------------------------


def _filter_text(help_text: str) -> serializers.CharField:
    # As sent: " A-1" is not "A-1" (and a blank value is refused).
    return TextField(
        pattern=NO_NUL,
        max_length=64,
        min_length=1,
        required=False,
        trim_whitespace=False,
        help_text=help_text,
    )


class MerchantInvoiceFilterSerializer(serializers.Serializer):
    """The list's filters (query parameters); each narrows the list. Give it
    :func:`query_data`: an empty value is refused like any other that does not
    parse (DRF would read a form's empty field as absent)."""

    status = serializers.MultipleChoiceField(
        choices=InvoiceStatus.choices,
        required=False,
        help_text="One or several: ?status=paid&status=refunded.",
    )
    provider = _filter_text("A provider alias.")
    order_id = _filter_text("The shop's order number (exact).")
    order_key = _filter_text("The order's group of invoices (exact).")
    created_after = serializers.DateTimeField(
        required=False, help_text="Created at or after (ISO 8601)."
    )
    created_before = serializers.DateTimeField(
        required=False, help_text="Created before (ISO 8601)."
    )
    needs_attention = serializers.BooleanField(
        required=False,
        help_text="true: only the invoices flagged for the merchant; false: others.",
    )


def query_data(request: Request) -> dict[str, Any]:
    """The query parameters for :class:`MerchantInvoiceFilterSerializer`: each
    value as it was sent (the last one), ``status`` as the list of all."""
    params = request.query_params
    return {
        key: params.getlist(key) if key == "status" else params[key] for key in params
    }


class InvalidCursor(NotFound):
    """A cursor that was not made here: DRF's 404 (the page it names does not
    exist), with its own code."""

    default_code = "invalid_cursor"


class InvoiceCursorPagination(CursorPagination):
    """Newest first, by ``(created_at, id)`` (the index
    ``payments_ru_inv_created_sort``, and the status and provider ones when
    those are filtered); ``page_size`` at most ``PAYMENTS_RU["API_PAGE_SIZE"]``.
    A cursor that was not made here is a 404 (:class:`InvalidCursor`, as DRF
    answers), never a 500."""

    ordering = ("-created_at", "-id")
    page_size_query_param = "page_size"
    invalid_cursor_message = _(  # type: ignore[assignment]
        "Invalid cursor: use the next or previous link."
    )

    def get_page_size(self, request: Request) -> int:
        cap = int(payments_settings.API_PAGE_SIZE)
        raw = request.query_params.get(self.page_size_query_param)
        if raw is None:
            return cap
        if not (raw.isascii() and raw.isdigit()) or int(raw) < 1:
            raise ValidationError(
                {
                    self.page_size_query_param: [
                        _("A whole number from 1 (at most %(max)d are given).")
                        % {"max": cap}
                    ]
                }
            )
        return min(int(raw), cap)

    def decode_cursor(self, request: Request) -> Cursor | None:
        invalid = InvalidCursor(self.invalid_cursor_message)
        try:
            cursor = super().decode_cursor(request)
        except NotFound:
            raise invalid from None
        if cursor is None or cursor.position is None:
            return cursor
        # DRF filters by the position as it is: a position that is not a time
        # would be a 500 (ValidationError inside the query), a time out of range
        # an OverflowError when the database adapts it.
        try:
            when = parse_datetime(str(cursor.position))
            if when is None or when.tzinfo is None:
                raise ValueError(cursor.position)
            when.astimezone(UTC)
        except (ValueError, OverflowError):
            raise invalid from None
        return cursor

    def get_schema_operation_parameters(self, view: Any) -> list[dict[str, Any]]:
        parameters = super().get_schema_operation_parameters(view)
        for parameter in parameters:
            if parameter["name"] == self.page_size_query_param:
                parameter["schema"]["minimum"] = 1
        return parameters
