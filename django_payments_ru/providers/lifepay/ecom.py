"""Life-Pay ECOM: the invoices API (lifepay.md §11).

``POST {api_url}invoices`` with a JWT from ``{api_url}auth``; the customer is
redirected to the invoice's ``form_link``. Status is read with
``GET invoices/<id>``, contact data and the recurrent schedule changed with
``PATCH`` (:meth:`EcomProvider.update_invoice`); a hold is captured with
``PATCH`` and released with ``DELETE`` on
``services/<service_id>/charges/<tid>/blocked`` (§9, L-6, L-7). Notifications
are the A1Lite form posts plus ``invoice_id`` (A-5, :mod:`.notifications`).
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, ClassVar

from django.http import HttpRequest
from django.utils.functional import cached_property
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy

from ...events import EventType, PaymentEvent
from ...exceptions import (
    InvalidInput,
    InvalidOperation,
    NotSupported,
    ProviderAPIError,
    ProviderAuthError,
    ProviderResponseError,
)
from ..base import AdminForm, Capability, Checkout
from ..tokens import Token, TokenCache, fingerprint, jwt_expiry
from . import forms as admin_forms
from . import metadata as meta
from . import notifications
from .provider import ECOM, Provider, _under_alias, lifepay_order_id

if TYPE_CHECKING:
    from ...models import Invoice

#: What a PATCH may change and where the invoice keeps it: under
#: ``metadata["lifepay"]`` (lifepay.md §11.4).
PATCH_DETAILS = ("is_recurrent", "send_receipt_through", "recurrent_schedule")


class EcomProvider(Provider):
    """Life-Pay's ECOM surface (``"surface": "ecom"``): the invoices API. Built
    by :class:`~.provider.Provider`."""

    surface_option = ECOM
    surface_label = "ECOM"
    surfaces = ()
    checkout_kind = "redirect"
    webhook_auth = notifications.WEBHOOK_AUTH
    # lifepay.md §11.2: currency_code RUB, EUR or USD.
    currencies = frozenset({"RUB", "EUR", "USD"})
    # lifepay.md §11.7: ECOM refunds are documented only by T-NOTES (low
    # confidence) and not offered (docs: limitations). Holds are: §9 gives the
    # charges/{charge_id}/blocked endpoint (end_hold).
    #
    # RECEIPTS: lifepay.md §11.2 gives the invoice ``send_receipt_through``
    # (email|sms|nothing, default email): Life-Pay issues the receipt of every
    # ECOM invoice and sends it as that says. The reference gives the invoice
    # no receipt lines (§10's invoice_data is the A1Lite form's): the printed
    # receipt is the one Life-Pay makes for the invoice (its name and amount);
    # the neutral lines are validated and kept by us, and the receipt's
    # ``delivery`` becomes ``send_receipt_through`` (docs: receipt mapping).
    capabilities = frozenset(
        {
            Capability.STATUS,
            Capability.RECURRENT,
            Capability.SPLIT,
            Capability.HOLD,
            Capability.RECEIPTS,
        }
    )
    base_url_option = "api_url"
    # lifepay.md §3.2, §8: these exist for the A1Lite pay form only.
    foreign_keys = ("recurrent", "payment_type")
    foreign_refusal = gettext_lazy(
        "exists only for the A1Lite pay form (surface 'a1lite')."
    )
    #: lifepay.md §11.5 invoice statuses.
    ECOM_STATUSES: ClassVar[dict[str, EventType | None]] = {
        "open": None,
        "pending": EventType.PENDING,
        "success": EventType.PAID,
        "blocked": EventType.HELD,
        "error": EventType.FAILED,
    }

    @classmethod
    def needed_options(cls, version: str) -> list[str]:
        # §11.1: /v1/auth takes service_id and api_key.
        return ["service_id", "api_key"]

    # --- the JWT (§11.1) ----------------------------------------------------------

    @cached_property
    def tokens(self) -> TokenCache:
        credentials = fingerprint(
            str(self.config["service_id"]),
            str(self.config["api_key"]),
            str(self.config["api_url"]),
        )
        return TokenCache(
            f"lifepay:{self.alias}:{credentials}",
            self._fetch_token,
            on_token=self.http.add_secret,
            provider=self.alias,
        )

    def _fetch_token(self) -> Token:
        # lifepay.md §11.1 and ASSUMPTION A-10: {"jwt": ...} ("token" as alias).
        data = self.http.request(
            "POST",
            "auth",
            json={
                "service_id": self.config["service_id"],
                "api_key": self.config["api_key"],
            },
        )
        value = (
            data.get("jwt") or data.get("token") if isinstance(data, Mapping) else None
        )
        if not isinstance(value, str) or not value:
            raise ProviderResponseError(
                "Life-Pay /v1/auth answered without a jwt.", provider=self.alias
            )
        self.http.add_secret(value)
        # The lifetime is not documented (§11.1): the token's own exp says it.
        return Token(value, jwt_expiry(value))

    def _ecom(self, method: str, path: str, **kwargs: Any) -> Any:
        def call(token: str) -> Any:
            headers = {
                "Authorization": f"Bearer {token}",
                "Content-Type": "application/json",
            }
            try:
                return self.http.request(method, path, headers=headers, **kwargs)
            except ProviderAPIError as exc:
                if exc.status == 498 and not isinstance(exc, ProviderAuthError):
                    # lifepay.md §11.1, A-9: 498 "Invalid Token" is a rejected
                    # token like 401: TokenCache.call gets a new one once.
                    raise self.provider_error(
                        ProviderAuthError,
                        exc.message,
                        status=498,
                        code=exc.code,
                        provider_message=exc.provider_message,
                        details=exc.details,
                    ) from None
                raise

        return self.tokens.call(call)

    # --- the invoice (§11.2, §11.3) ---------------------------------------------

    def checkout_data(
        self, invoice: Invoice, request: HttpRequest | None
    ) -> dict[str, Any]:
        """The ``POST /v1/invoices`` body, every field and limit of lifepay.md
        §11.2 checked first."""
        if invoice.currency not in self.currencies:
            raise InvalidInput(
                _("currency: Life-Pay ECOM takes RUB, EUR or USD."),
                field="currency",
                provider=self.alias,
            )
        if invoice.amount < 1:
            raise InvalidInput(
                _(
                    "amount: a Life-Pay ECOM invoice is for at least 1 "
                    "(in major units)."
                ),
                field="amount",
                provider=self.alias,
            )
        options = self.lifepay_options(invoice)
        body: dict[str, Any] = {
            "order_id": meta.text(
                lifepay_order_id(invoice), "order_id", longest=64, shortest=1
            ),
            "amount": invoice.quantize(invoice.amount),
            "currency_code": invoice.currency,
            "service_id": self.config["service_id"],
            "name": self._name(invoice),
        }
        text = meta.comment(options)
        if text:
            body["comment"] = text
        if invoice.customer_email:
            body["email"] = invoice.customer_email
        if invoice.customer_phone:
            body["phone"] = int(invoice.customer_phone.lstrip("+"))
        if "is_recurrent" in options:
            body["is_recurrent"] = meta.is_recurrent(options)
        receipt = invoice.get_receipt()
        if "send_receipt_through" in options:
            channel = meta.receipt_channel(options["send_receipt_through"])
            if receipt is not None and channel != receipt.delivery:
                raise meta.invalid(
                    "metadata.lifepay.send_receipt_through",
                    _(
                        "is %(channel)s, but the receipt's delivery is "
                        "%(delivery)s: give one of them."
                    )
                    % {"channel": channel, "delivery": receipt.delivery},
                )
            body["send_receipt_through"] = channel
        if receipt is not None:
            # lifepay.md §11.2: the receipt's delivery is the channel; its
            # lines are not sent (the invoice takes none, see capabilities).
            body["send_receipt_through"] = receipt.delivery
        if "recurrent_schedule" in options:
            if not body.get("is_recurrent"):
                raise meta.invalid(
                    "metadata.lifepay.recurrent_schedule",
                    _("needs is_recurrent (the payer's consent)."),
                )
            body["recurrent_schedule"] = meta.schedule(options["recurrent_schedule"])
        split = meta.split_lines(options, invoice.amount)
        if split:
            body["split_data"] = split
        expires = meta.expire_date(options)
        if expires:
            body["expire_date"] = expires
        back = self._return_url(invoice, request)
        if back:
            # lifepay.md §11.2: url_success/url_error at most 255 characters.
            body["url_success"] = meta.text(back, "url_success", longest=255)
            body["url_error"] = body["url_success"]
        return body

    @_under_alias
    def start(
        self, invoice: Invoice, request: HttpRequest | None = None, *, key: str = ""
    ) -> Checkout:
        # ``key`` is not sent: lifepay.md has no idempotency key anywhere. A
        # create whose answer was lost cannot be found again (§11 has no lookup
        # by order_id), so recover_start keeps the default (docs: limitations).
        body = self.checkout_data(invoice, request)
        data = self._ecom("POST", "invoices", data=meta.dumps(body).encode("utf-8"))
        if (
            not isinstance(data, Mapping)
            or not data.get("id")
            or not data.get("form_link")
        ):
            raise ProviderResponseError(
                "Life-Pay answered the invoice without id and form_link.",
                provider=self.alias,
            )
        return Checkout(
            method="GET", url=str(data["form_link"]), payment_id=str(data["id"])
        )

    def get_invoice(self, invoice_id: str) -> dict[str, Any]:
        """``GET /v1/invoices/<id>`` (lifepay.md §11.3)."""
        try:
            uuid.UUID(invoice_id)
        except ValueError:
            raise InvalidInput(
                _("A Life-Pay invoice id is a UUID."),
                field="provider_payment_id",
                provider=self.alias,
            ) from None
        data = self._ecom("GET", f"invoices/{invoice_id}")
        if not isinstance(data, Mapping) or "status" not in data:
            raise ProviderResponseError(
                "Life-Pay answered without an invoice.", provider=self.alias
            )
        return dict(data)

    def fetch_status(self, invoice: Invoice) -> PaymentEvent | None:
        if not invoice.provider_payment_id:
            return None
        data = self.get_invoice(invoice.provider_payment_id)
        # No transaction_id: the invoice object names no charge (L-6).
        return self.poll_event(
            invoice,
            data,
            statuses=self.ECOM_STATUSES,
            state=str(data.get("status")),
            noun="invoice",
            payment_id=str(data.get("id", "")),
            amount=_number_text(data.get("amount")),
            currency=str(data.get("currency_code") or invoice.currency),
        )

    # --- holds (§9) ---------------------------------------------------------------

    def _charge_id(self, invoice: Invoice) -> str:
        """The ``charge_id`` of the ECOM hold on ``invoice`` (lifepay.md §9).

        ASSUMPTION L-6 (ours: the reference does not say where a charge id comes
        from, and the invoice object of §11.2/§11.3 carries none): it is the
        ``tid`` of the invoice's ``funds_blocked`` notification, which the
        services keep as its ``provider_transaction_id``. ECOM invoices are
        paid on the A1Lite pipeline and notify like it (A-5), and §6.2's
        ``tid`` is that pipeline's transaction: the charge. A hold seen only by
        a poll can be captured or released once its notification has arrived.
        """
        tid = invoice.provider_transaction_id
        if tid.isdigit():  # an integer; it becomes part of a URL path
            return tid
        raise InvalidOperation(
            _(
                "Life-Pay has not yet sent the notification naming this hold's "
                "charge (funds_blocked); try again once it has arrived."
            ),
            provider=self.alias,
        )

    def end_hold(self, invoice: Invoice, *, capture: bool) -> PaymentEvent:
        """Capture (``PATCH``) or void (``DELETE``) an ECOM hold with
        ``services/{service_id}/charges/{charge_id}/blocked`` (lifepay.md §9:
        DELETE from LP-UNBLOCK, PATCH from T-NOTES), and return the event
        Life-Pay's answer confirms."""
        charge_id = self._charge_id(invoice)
        path = f"services/{self.config['service_id']}/charges/{charge_id}/blocked"
        # No body: without the optional amount the whole hold is taken or
        # voided (ASSUMPTION L-7), the only capture the invoice can record.
        # Never repeated after a lost answer: the repeat would find the hold
        # ended and report an error for an operation that was done.
        data = self._ecom("PATCH" if capture else "DELETE", path, idempotent=False)
        state = data.get("status") if isinstance(data, Mapping) else None
        if state == "error":
            # §9: a refusal is status=error with decline_code and message
            # (ASSUMPTION L-7: with HTTP 200, like charged and voided).
            raise self.provider_error(
                ProviderAPIError,
                _("Life-Pay refused to capture the hold.")
                if capture
                else _("Life-Pay refused to release the hold."),
                status=200,
                code=str(data.get("decline_code") or "error"),
                provider_message=str(data.get("message") or ""),
            )
        if state != ("charged" if capture else "voided"):
            raise self.provider_error(
                ProviderResponseError,
                _("Life-Pay answered the hold's charge with the status %(status)s.")
                % {"status": repr(state)},
            )
        # The invoice's id as payment id, which the success notification
        # (invoice_id, A-5) and the poll carry too: their PAID is then a no-op
        # on the paid invoice, never "a second payment".
        return self.hold_ended(
            invoice,
            capture=capture,
            charge=charge_id,
            payment_id=invoice.provider_payment_id,
            raw=data,
        )

    # --- changing the invoice (§11.4) ---------------------------------------------

    @_under_alias
    def update_invoice(self, invoice: Invoice, **changes: Any) -> None:
        """``PATCH /v1/invoices/<id>`` (lifepay.md §11.4) with any of ``email``,
        ``phone``, ``is_recurrent``, ``send_receipt_through``,
        ``recurrent_schedule``; everything is checked before sending, and the
        invoice is updated locally only once Life-Pay has accepted it."""
        from ... import services

        if not invoice.provider_payment_id:
            raise NotSupported(
                _("The invoice has not been created at Life-Pay yet."),
                provider=self.alias,
            )
        body = self.patch_body(invoice, changes)
        if not body:
            return
        self._ecom(
            "PATCH",
            f"invoices/{invoice.provider_payment_id}",
            data=meta.dumps(body).encode("utf-8"),
        )
        # Life-Pay accepted it: the services record it under the row lock (a
        # provider never writes the invoice itself).
        contacts: dict[str, str] = {}
        if "email" in body:
            contacts["customer_email"] = body["email"]
        if "phone" in body:
            contacts["customer_phone"] = str(body["phone"])
        services.update_invoice_details(
            invoice,
            provider_details={k: body[k] for k in PATCH_DETAILS if k in body},
            **contacts,
        )

    def admin_forms(self, invoice: Invoice) -> list[AdminForm]:
        """ "Change at Life-Pay" (:mod:`.forms`) for an invoice created at
        Life-Pay: e-mail, phone, receipt channel, recurrent consent and schedule,
        sent with :meth:`update_invoice`."""
        if not invoice.provider_payment_id:
            return []
        return admin_forms.admin_forms(self, invoice)

    def patch_body(
        self, invoice: Invoice, changes: Mapping[str, Any]
    ) -> dict[str, Any]:
        """The validated PATCH body (lifepay.md §11.4)."""
        body: dict[str, Any] = {}
        for key, value in changes.items():
            if key == "email":
                from django.core.exceptions import ValidationError
                from django.core.validators import validate_email

                try:
                    validate_email(value)
                except ValidationError:
                    raise meta.invalid(
                        "email", _("is not an e-mail address.")
                    ) from None
                body["email"] = value
            elif key == "phone":
                digits = str(value).lstrip("+")
                if not digits.isdigit() or len(digits) > 15:
                    raise meta.invalid("phone", _("must be digits, e.g. 79999999999."))
                # lifepay.md §11.4: phone is an integer in PATCH.
                body["phone"] = int(digits)
            elif key == "is_recurrent":
                body["is_recurrent"] = meta.is_recurrent({"is_recurrent": value})
            elif key == "send_receipt_through":
                body["send_receipt_through"] = meta.receipt_channel(
                    value, "send_receipt_through"
                )
            elif key == "recurrent_schedule":
                body["recurrent_schedule"] = meta.schedule(value, "recurrent_schedule")
            else:
                raise meta.invalid(key, _("cannot be changed at Life-Pay."))
        if "recurrent_schedule" in body:
            consent = body.get(
                "is_recurrent",
                (invoice.metadata.get("lifepay") or {}).get("is_recurrent", False),
            )
            if not consent:
                # lifepay.md §11.4: only for invoices with the payer's consent.
                raise meta.invalid(
                    "recurrent_schedule", _("needs is_recurrent (the payer's consent).")
                )
        return body


def _number_text(value: Any) -> str:
    # ECOM amounts are JSON numbers, decoded by requests as int/float;
    # their shortest repr is the decimal Life-Pay wrote.
    if isinstance(value, bool) or not isinstance(value, int | float | str):
        return "0"
    return repr(value) if isinstance(value, float) else str(value)


__all__ = ["EcomProvider"]
