"""What the Life-Pay emulator's surfaces share: field lists, statuses, numbers,
the two error envelopes and the formats of time and money."""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal

from ....emulator.base import EmulatorError
from ....money import format_amount
from ..notifications import MOSCOW

#: lifepay.md §3.2 fields of the pay form (``x``/``y``: the seed's image button).
INPUT_FIELDS = frozenset(
    {
        "key",
        "service_id",
        "version",
        "check",
        "cost",
        "name",
        "email",
        "phone_number",
        "order_id",
        "comment",
        "invoice_data",
        "payment_type",
        "url_success",
        "url_error",
        "recurrent_type",
        "recurrent_comment",
        "recurrent_url",
        "recurrent_period",
        "recurrent_order_id",
        "default_email",
        "commission",
        "x",
        "y",
    }
)
ECOM_CREATE_FIELDS = frozenset(
    {
        "order_id",
        "amount",
        "currency_code",
        "service_id",
        "name",
        "comment",
        "email",
        "phone",
        "is_recurrent",
        "send_receipt_through",
        "split_data",
        "recurrent_schedule",
        "url_success",
        "url_error",
        "expire_date",
    }
)
# lifepay.md §11.4 (+ ``name``, which the seed's PATCH example sends, and
# ``expire_date`` from T-NOTES).
ECOM_PATCH_FIELDS = frozenset(
    {
        "email",
        "phone",
        "is_recurrent",
        "send_receipt_through",
        "recurrent_schedule",
        "name",
        "expire_date",
    }
)

#: ``data["kind"]`` of an emulated payment: an A1Lite transaction or an ECOM
#: invoice.
A1LITE = "a1lite"
ECOM = "ecom"
# Transaction statuses (A-15; ``blocked`` for holds is ours, L-4).
OPEN, PAYED, ERROR, REFUNDED, BLOCKED = "open", "payed", "error", "refunded", "blocked"
# ECOM invoice statuses (§11.5).
I_OPEN, I_PENDING, I_SUCCESS, I_BLOCKED, I_ERROR = (
    "open",
    "pending",
    "success",
    "blocked",
    "error",
)
#: What a payment of each kind becomes when it is paid, declined or held (an
#: alba transaction, A-15; an ECOM invoice, A-13). A charged hold is paid, a
#: voided one declined (A-13).
OUTCOMES: dict[str, dict[str, str]] = {
    A1LITE: {"pay": PAYED, "decline": ERROR, "hold": BLOCKED},
    ECOM: {"pay": I_SUCCESS, "decline": I_ERROR, "hold": I_BLOCKED},
}
#: ``alba/details/``'s ``transaction_status`` of an ECOM invoice, which is
#: paid on the A1Lite pipeline (A-5, A-15).
DETAILS_STATES = {
    I_OPEN: OPEN,
    I_PENDING: OPEN,
    I_SUCCESS: PAYED,
    I_BLOCKED: BLOCKED,
    I_ERROR: ERROR,
}
DECLINE_TEXT = "Otkaz bez ob'jasnenija prichin"  # §5: transliterated decline
LP_PUBLIC = "-----BEGIN PUBLIC KEY-----\nEMULATED\n-----END PUBLIC KEY-----"
FIRST_TID = 100000001
FIRST_SHORT_ID = 491883531


def alba_error(code: str, message: str) -> EmulatorError:
    # alba answers every error with HTTP 200.
    return EmulatorError(200, code, message)


def ecom_error(status: int, slug: str, message: str) -> EmulatorError:
    return EmulatorError(status, slug, message, surface=ECOM)


def moscow(when: datetime) -> str:
    # YYYY-MM-DD HH:MM:SS, Moscow time.
    return when.astimezone(MOSCOW).strftime("%Y-%m-%d %H:%M:%S")


def rubles(value: Decimal) -> str:
    return format_amount(value, "RUB")
