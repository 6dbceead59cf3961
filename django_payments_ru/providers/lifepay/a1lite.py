"""Life-Pay A1Lite: the signed pay form and the "alba" server calls.

:meth:`A1LiteProvider.start` returns a POST form to ``{partner_url}alba/input/``
(lifepay.md §3), unsigned with the public ``key`` (v1.0) or signed with
``check`` (v2.0, §4). Status, refunds, holds and the recurrent cancel are signed
``alba/*`` calls (§5). Notifications: :mod:`.notifications` (§6).
"""

from __future__ import annotations

from collections.abc import Mapping
from decimal import Decimal
from typing import TYPE_CHECKING, Any, ClassVar

from django.http import HttpRequest
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy

from ...events import EventType, PaymentEvent
from ...exceptions import (
    InvalidInput,
    NotSupported,
    ProviderAPIError,
    ProviderAuthError,
    ProviderResponseError,
)
from ...money import format_amount
from ..base import Capability, Checkout
from . import metadata as meta
from . import notifications
from .provider import A1LITE, Provider, _under_alias, lifepay_order_id
from .signature import sign_v2

if TYPE_CHECKING:
    from ...models import Invoice
    from ...receipts import Receipt


#: What Life-Pay is assumed to print for an item without ``payment_object`` or
#: ``payment_method`` (ASSUMPTION L-8: the official example item of lifepay.md
#: §10 sends neither; only the plugins add them, C-DRUPAL). A line with these
#: values is sent as the example is, without them.
ITEM_DEFAULTS = {"payment_object": "commodity", "payment_method": "full_payment"}
KOPECK = Decimal("0.01")


def _quantity(value: Decimal) -> Decimal:
    """A quantity as §10's example writes it: ``1``, not ``1.000``."""
    if value == value.to_integral_value():
        return value.quantize(Decimal(1))
    return value.normalize()


def invoice_items(receipt: Receipt) -> list[dict[str, Any]]:
    """The neutral receipt's lines as ``invoice_data`` items (lifepay.md §10),
    in the order of the reference's example (``code, name, unit, price,
    quantity, sum, vat_mode``): vat -> ``vat_mode``, amount -> ``sum``; prices
    and sums in rubles with two decimals, JSON numbers (:func:`.metadata.dumps`
    writes Decimals digit for digit)."""
    items = []
    for line in receipt.lines:
        item: dict[str, Any] = {}
        if line.code:
            item["code"] = line.code
        item["name"] = line.name
        item["unit"] = line.unit
        item["price"] = line.price.quantize(KOPECK)
        item["quantity"] = _quantity(line.quantity)
        item["sum"] = line.amount.quantize(KOPECK)
        item["vat_mode"] = line.vat
        for name, default in ITEM_DEFAULTS.items():
            value = getattr(line, name)
            if value != default:
                item[name] = value
        items.append(item)
    return items


class A1LiteProvider(Provider):
    """Life-Pay's A1Lite surface (``"surface": "a1lite"``): the pay form, the
    alba server calls. Built by :class:`~.provider.Provider`."""

    surface_option = A1LITE
    surface_label = "A1Lite"
    surfaces = ()
    checkout_kind = "POST form"
    webhook_auth = notifications.WEBHOOK_AUTH
    # ASSUMPTION A-17: the pay form takes rubles only.
    currencies = frozenset({"RUB"})
    # lifepay.md §5: refunds, details, holds (process_funds_blocked) and §8
    # recurrent registration; split_data exists in ECOM only (§11.2).
    # lifepay.md §10: the pay form's invoice_data carries the receipt's lines.
    capabilities = frozenset(
        {
            Capability.REFUND,
            Capability.PARTIAL_REFUND,
            Capability.STATUS,
            Capability.RECURRENT,
            Capability.HOLD,
            Capability.RECEIPTS,
        }
    )
    #: What the signed alba calls do (§5): refunds, details, holds.
    SERVER_CAPABILITIES = frozenset(
        {
            Capability.REFUND,
            Capability.PARTIAL_REFUND,
            Capability.STATUS,
            Capability.HOLD,
        }
    )

    def enabled_capabilities(self) -> frozenset[Capability]:
        # §5: every alba call is signed 2.0 with service_id and secret_key; a
        # v1.0 form-only alias has neither, so it offers none of them (and a
        # direct call still raises NotSupported naming the options, _alba).
        if self.config["service_id"] and self.config["secret_key"]:
            return self.capabilities
        return self.capabilities - self.SERVER_CAPABILITIES

    # lifepay.md §11.2: these exist for ECOM invoices only.
    foreign_keys = (
        "split_data",
        "recurrent_schedule",
        "is_recurrent",
        "expire_date",
        "send_receipt_through",
    )
    foreign_refusal = gettext_lazy("exists only for ECOM invoices (surface 'ecom').")
    #: ``alba/details/`` ``transaction_status`` (ASSUMPTION A-15; ``blocked`` is
    #: ours, L-4). ``refunded`` says the money moved once: refunds themselves are
    #: recorded from the refund notifications only, so nothing counts twice.
    DETAILS_STATUSES: ClassVar[dict[str, EventType | None]] = {
        "open": None,
        "payed": EventType.PAID,
        "success": EventType.PAID,
        "refunded": EventType.PAID,
        "blocked": EventType.HELD,
        "error": EventType.FAILED,
    }

    # --- options ------------------------------------------------------------

    @classmethod
    def needed_options(cls, version: str) -> list[str]:
        # §3.2: v1.0 identifies the service by its key, v2.0 by its id.
        return ["key"] if version == "1.0" else ["service_id"]

    @classmethod
    def surface_errors(cls, where: str, options: Mapping[str, Any]) -> list[str]:
        if options.get("signature_version", "2.0") == "1.0" and options.get(
            "forced_signature"
        ):
            # SEED-003: Life-Pay then refuses every unsigned form.
            return [
                f"{where}['signature_version'] is '1.0' (an unsigned pay form) "
                "but Life-Pay enforces signatures for this service "
                "(forced_signature): set it to '2.0' with service_id and "
                "secret_key."
            ]
        return []

    # --- the pay form (§3, §4) ------------------------------------------------

    def input_url(self) -> str:
        return self.http.url("alba/input/")

    def checkout_data(
        self, invoice: Invoice, request: HttpRequest | None
    ) -> dict[str, Any]:
        """The form's fields (lifepay.md §3.2), signed with signature 2.0."""
        if invoice.currency != "RUB":
            # ASSUMPTION A-17: the A1Lite form takes rubles only.
            raise InvalidInput(
                _("currency: the Life-Pay pay form takes RUB only."),
                field="currency",
                provider=self.alias,
            )
        options = self.lifepay_options(invoice)
        order_id = lifepay_order_id(invoice)
        fields: dict[str, str] = {}
        if self.version == "1.0":
            fields["key"] = str(self.config["key"])
        else:
            fields["service_id"] = str(self.config["service_id"])
            fields["version"] = "2.0"
        # lifepay.md §3.2: cost in rubles with a dot, two decimals.
        fields["cost"] = format_amount(invoice.amount, "RUB")
        fields["name"] = self._name(invoice)
        fields["order_id"] = meta.text(order_id, "order_id", longest=64, shortest=1)
        if invoice.customer_email:
            fields["email"] = invoice.customer_email
        if invoice.customer_phone:
            # lifepay.md §3.2: digits only, e.g. 74951234567.
            fields["phone_number"] = invoice.customer_phone.lstrip("+")
        text = meta.comment(options)
        if text:
            fields["comment"] = text
        channel = meta.payment_type(options) or str(self.config["payment_type"] or "")
        if channel:
            fields["payment_type"] = channel
        receipt = invoice.get_receipt()
        if receipt is not None:
            # lifepay.md §10: invoice_data is a JSON string with items[].
            fields["invoice_data"] = meta.dumps({"items": invoice_items(receipt)})
        fields.update(
            meta.recurrent_registration(
                options, order_id=order_id, email=invoice.customer_email
            )
        )
        back = self._return_url(invoice, request)
        if back:
            # The customer's GET back carries the notification fields; the
            # return view ignores them (lifepay.md §6.1, never proof of payment).
            # ASSUMPTION L-3: sent with signature 1.0 too.
            fields["url_success"] = back
            fields["url_error"] = back
        if self.version == "2.0":
            fields["check"] = sign_v2(
                self.config["secret_key"], "POST", self.input_url(), fields
            )
        return fields

    @_under_alias
    def start(
        self, invoice: Invoice, request: HttpRequest | None = None, *, key: str = ""
    ) -> Checkout:
        # ``key`` is not sent: lifepay.md has no idempotency key anywhere, and
        # nothing is registered here: Life-Pay pays an order_id once.
        # lifepay.md §3.1: the browser posts the form.
        return Checkout(
            method="POST",
            url=self.input_url(),
            fields=self.checkout_data(invoice, request),
        )

    # --- alba server calls (§5) ---------------------------------------------------

    def _alba(
        self, endpoint: str, params: Mapping[str, str], *, idempotent: bool = False
    ) -> dict[str, Any]:
        """A signed ``alba/<endpoint>/`` call; its ``status:error`` envelope
        (HTTP 200, ASSUMPTION A-15) raised as a typed error."""
        if not (self.config["service_id"] and self.config["secret_key"]):
            # §5: every alba server call is signed 2.0 with the service id.
            raise NotSupported(
                _("Life-Pay server calls need the service_id and secret_key options."),
                provider=self.alias,
            )
        path = f"alba/{endpoint}/"
        fields = {
            **params,
            "service_id": str(self.config["service_id"]),
            "version": "2.0",
        }
        fields["check"] = sign_v2(
            self.config["secret_key"], "POST", self.http.url(path), fields
        )
        body = self.http.request("POST", path, data=fields, idempotent=idempotent)
        if not isinstance(body, Mapping):
            raise ProviderResponseError(
                f"Life-Pay answered {endpoint} without a JSON object.",
                provider=self.alias,
            )
        if body.get("status") != "success":
            code, message, _details = self.parse_error(200, body)
            error_cls = ProviderAuthError if code == "auth" else ProviderAPIError
            # Read here, not by the HTTP client: redacted like its errors (the
            # message may echo the secret key).
            raise self.provider_error(
                error_cls,
                f"Life-Pay refused {endpoint}.",
                status=200,
                code=code or "error",
                provider_message=message,
            )
        return dict(body)

    def _tid(self, invoice: Invoice) -> str:
        """The Life-Pay transaction of ``invoice``'s charge or hold: the tid the
        services kept from its notification or poll (``transaction_id``), else
        the invoice's payment id. Not merely the payment id: a declined first
        attempt's tid may stay there (docs: limitations)."""
        tid = invoice.provider_transaction_id or invoice.provider_payment_id
        if not tid:
            raise NotSupported(
                _("No Life-Pay transaction is known for this invoice yet."),
                provider=self.alias,
            )
        return tid

    def fetch_status(self, invoice: Invoice) -> PaymentEvent | None:
        if invoice.provider_payment_id:
            params = {"tid": invoice.provider_payment_id}
        else:
            # lifepay.md §5: tid, or order_id with service_id.
            params = {"order_id": lifepay_order_id(invoice)}
        try:
            data = self._alba("details", params, idempotent=True)
        except ProviderAPIError as exc:
            if exc.code == "unknown" and "tid" not in params:
                return None  # ASSUMPTION L-4: the customer never posted the form
            raise
        tid = str(data.get("tid", ""))
        return self.poll_event(
            invoice,
            data,
            statuses=self.DETAILS_STATUSES,
            state=str(data.get("transaction_status", "")),
            noun="transaction",
            payment_id=tid,
            amount=str(data.get("cost", "0")),
            currency=invoice.currency,
            # §5: details names the transaction; kept for refunds and holds.
            transaction_id=tid,
            reason=str(data.get("resultStr") or ""),
        )

    def refund(
        self,
        invoice: Invoice,
        amount: Decimal,
        *,
        key: str = "",
        receipt: Receipt | None = None,
    ) -> PaymentEvent | None:
        # ``key`` is not sent: alba/refund/ takes no idempotency key (§5).
        # Nor ``receipt``: alba/refund/ takes tid, amount and reason only (§5,
        # C-RFI); the refunded lines are recorded by us (the refund's
        # Operation), and Life-Pay prints the refund receipt itself.
        self._alba(
            "refund",
            {
                "tid": self._tid(invoice),
                "amount": format_amount(amount, invoice.currency),
            },
        )
        # ASSUMPTION A-16: the command=refund notification confirms the refund
        # and records it (its dedupe id is the notification's), so the answer
        # here records nothing: a refund is never counted twice.
        return None

    def end_hold(self, invoice: Invoice, *, capture: bool) -> PaymentEvent:
        # §5 (C-SMARTIK): alba/process_funds_blocked/ with action charge|unblock.
        tid = self._tid(invoice)
        action = "charge" if capture else "unblock"
        data = self._alba("process_funds_blocked", {"tid": tid, "action": action})
        return self.hold_ended(
            invoice, capture=capture, charge=tid, payment_id=tid, raw=data
        )

    def cancel_recurrent(self, recurrent_order_id: str) -> None:
        """Withdraw a recurrent consent (``alba/recurrent_change/``,
        ``operation=cancel``, lifepay.md §5 and §8)."""
        meta.text(recurrent_order_id, "recurrent_order_id", longest=64, shortest=1)
        self._alba(
            "recurrent_change", {"operation": "cancel", "order_id": recurrent_order_id}
        )


__all__ = ["A1LiteProvider"]
