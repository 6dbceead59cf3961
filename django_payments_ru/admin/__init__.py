"""The merchant admin: invoices, the operations sent to the providers and the
webhook inbox.

Everything that moves money or changes a status goes through
:mod:`django_payments_ru.services`: adding an invoice (created, then started at
the provider), refreshing, cancelling and refunding it, capturing or releasing a
hold, reprocessing a webhook event. A provider may add its own forms to an
invoice's page (:meth:`BaseProvider.admin_forms
<django_payments_ru.providers.base.BaseProvider.admin_forms>`); their handlers
call the provider themselves.

Importing this package registers the three pages. The modules:

* :mod:`.base`: what the pages share (errors, amounts, read-only bases);
* :mod:`.forms`: the add, note and refund forms;
* :mod:`.operations`: the table of invoice operations, and ``OperationAdmin``;
* :mod:`.pages`: the invoice admin's own views (add, operation, refund,
  provider forms);
* :mod:`.invoices`: ``InvoiceAdmin``, its inlines and list filters;
* :mod:`.webhooks`: ``WebhookEventAdmin``;
* :mod:`.status`: the status page (``manage.py payments_status`` in the admin).
"""

from __future__ import annotations

from .base import OPERATION_ERRORS, logger
from .forms import InvoiceAddForm, InvoiceChangeForm, RefundForm
from .invoices import (
    InFlightFilter,
    InvoiceAdmin,
    OperationInline,
    OrderFilter,
    PaymentInline,
    WebhookEventInline,
)
from .operations import INVOICE_OPERATIONS, InvoiceOperation, OperationAdmin
from .webhooks import WebhookEventAdmin

__all__ = [
    "INVOICE_OPERATIONS",
    "OPERATION_ERRORS",
    "InFlightFilter",
    "InvoiceAddForm",
    "InvoiceAdmin",
    "InvoiceChangeForm",
    "InvoiceOperation",
    "OperationAdmin",
    "OperationInline",
    "OrderFilter",
    "PaymentInline",
    "RefundForm",
    "WebhookEventAdmin",
    "WebhookEventInline",
    "logger",
]
