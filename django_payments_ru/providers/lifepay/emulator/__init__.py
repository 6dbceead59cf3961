"""The Life-Pay emulator: A1Lite ("alba") and ECOM, served under
``emulator/lifepay/`` (reference: ``lifepay.md``).

* :mod:`.a1lite`: the pay form ``alba/input/``, the pay page
  ``alba/pay/<tid>/`` and the signed ``alba/*`` server calls (§3 to §5);
  errors as ``{"status": "error", "code", "message"}`` with HTTP 200 (A-15).
* :mod:`.ecom`: ``v1/auth``, ``v1/invoices[/<id>]``, the hold endpoint
  ``v1/services/<service_id>/charges/<tid>/blocked`` and the invoice's
  ``form_link`` ``pay/<id>/`` (§9, §11); errors as ``{"status": <slug>,
  "message"}`` with 400/401/404/498 (A-11).
* :mod:`.service`: :class:`LifePayEmulator` and its one instance
  :data:`emulator`: the services, the pay page both surfaces share, the end of
  a hold, the ECOM JWT.
* :mod:`.notifications`: the notifications' fields and signature (§6).
* :mod:`.common`: field lists, statuses and formats.

Both surfaces end a hold alike (A-13): a charge makes the transaction paid and
notifies ``success``; a void makes it ``error`` and notifies nothing (L-5).
Each charge or unblock is recorded in ``data["hold_operations"]``.

Notifications: form-encoded POSTs to the service's ``webhook_url`` with every
field of §6.2 (A-7), signed with the service's ``signature_version`` (v1.0 MD5
or v2.0 HMAC over the URL posted to, A-4), retried on A-6's schedule.

Settings, ``PAYMENTS_RU_EMULATOR["lifepay"]``: ``services`` (required: a list of
``{"service_id", "key", "secret_key", "signature_version", "webhook_url",
"api_key", "forced_signature", "success_url", "error_url", "partner_id"}``),
``fee_percent`` (``"2.5"``, A-1), ``jwt_secret``, ``jwt_lifetime`` (10800 s,
A-9), ``invoice_lifetime`` (86400 s, A-13) and the common emulator options.
Endpoint names for faults: ``input``, ``pay_page``, ``details``, ``refund``,
``funds``, ``recurrent``, ``auth``, ``create``, ``invoice``, ``blocked``.
"""

from . import a1lite, ecom
from .common import (
    A1LITE,
    BLOCKED,
    DECLINE_TEXT,
    ECOM,
    ECOM_CREATE_FIELDS,
    ECOM_PATCH_FIELDS,
    ERROR,
    FIRST_SHORT_ID,
    FIRST_TID,
    I_BLOCKED,
    I_ERROR,
    I_OPEN,
    I_PENDING,
    I_SUCCESS,
    INPUT_FIELDS,
    LP_PUBLIC,
    OPEN,
    PAYED,
    REFUNDED,
)
from .service import LifePayEmulator, emulator

urlpatterns = [*a1lite.urlpatterns, *ecom.urlpatterns]

__all__ = [
    "A1LITE",
    "BLOCKED",
    "DECLINE_TEXT",
    "ECOM",
    "ECOM_CREATE_FIELDS",
    "ECOM_PATCH_FIELDS",
    "ERROR",
    "FIRST_SHORT_ID",
    "FIRST_TID",
    "INPUT_FIELDS",
    "I_BLOCKED",
    "I_ERROR",
    "I_OPEN",
    "I_PENDING",
    "I_SUCCESS",
    "LP_PUBLIC",
    "OPEN",
    "PAYED",
    "REFUNDED",
    "LifePayEmulator",
    "emulator",
    "urlpatterns",
]
