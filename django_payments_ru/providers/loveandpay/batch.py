"""Many invoices at once through Love&Pay's CSV batch upload (loveandpay.md 4.6).

The seed asks for the Batch API instead of many single calls. The upload is
``POST /api/v1/batch/invoices`` (LP1-BATCH: ``multipart/form-data`` with a CSV
of at most 1000 rows, ``sendEmails``), the only documented upload (the v2 one
is not available); it takes ``x-api-key`` alone (2.1).

:func:`upload_batch` reads the merchant's CSV (columns ``amount`` (required,
rubles), ``description``, ``email``, ``phone``, ``order_id``), checks every row
as a single invoice would be checked, names each row with a new invoice UUID
(``externalId`` and the description carry it), uploads the rows that passed,
and creates one :class:`~django_payments_ru.models.Invoice` per row Love&Pay
accepted, linked to Love&Pay's invoice (``provider_payment_id``, and
``metadata["loveandpay"]``). A row refused here or by Love&Pay is reported with
its row number (the first data row is 1) and creates nothing.
"""

from __future__ import annotations

import csv
import io
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from decimal import Decimal
from typing import TYPE_CHECKING, Any

from django.utils.translation import gettext as _

from ... import services
from ...events import EventType, PaymentEvent
from ...exceptions import InvalidInput, PaymentsError, ProviderResponseError
from ...money import to_amount
from ...registry import get_provider
from .provider import PHONE, Provider, rubles_number

if TYPE_CHECKING:
    from ...models import Invoice

#: LP1-BATCH: at most 1000 rows a file.
MAX_ROWS = 1000
COLUMNS = ("amount", "description", "email", "phone", "order_id")


@dataclass(frozen=True)
class RowError:
    """A row that created nothing, and why."""

    row: int
    message: str
    field: str = ""


@dataclass
class BatchResult:
    """What an upload did."""

    batch_id: str = ""
    invoices: list[Invoice] = field(default_factory=list)
    errors: list[RowError] = field(default_factory=list)

    @property
    def created(self) -> int:
        return len(self.invoices)


@dataclass
class _Row:
    number: int
    uuid: uuid.UUID
    amount: Decimal
    description: str
    email: str
    phone: str
    order_id: str


class _Draft:
    """The parts of an Invoice the provider reads to describe a row."""

    def __init__(self, row: _Row) -> None:
        self.uuid = row.uuid
        self.description = row.description
        self.order_id = row.order_id
        self.amount = row.amount
        self.currency = "RUB"
        self.customer_email = row.email
        self.customer_phone = row.phone
        self.provider_payment_id = ""


def read_rows(data: bytes | str) -> tuple[list[_Row], list[RowError]]:
    """The merchant's CSV: the rows that pass the checks, and the others."""
    text = data.decode("utf-8-sig") if isinstance(data, bytes) else data
    reader = csv.DictReader(io.StringIO(text))
    if not reader.fieldnames or "amount" not in reader.fieldnames:
        raise InvalidInput(
            _("The CSV needs a header row with at least the column amount."),
            field="file",
        )
    unknown = [c for c in reader.fieldnames if c not in COLUMNS]
    if unknown:
        raise InvalidInput(
            _("Unknown column %(column)s (known: %(known)s).")
            % {"column": unknown[0], "known": ", ".join(COLUMNS)},
            field="file",
        )
    good: list[_Row] = []
    bad: list[RowError] = []
    for number, raw in enumerate(reader, start=1):
        if number > MAX_ROWS:
            raise InvalidInput(
                _("Love&Pay takes at most %(max)d rows in one batch.")
                % {"max": MAX_ROWS},
                field="file",
            )
        try:
            amount = to_amount((raw.get("amount") or "").strip(), "RUB")
            rubles_number(amount)
        except PaymentsError as exc:
            bad.append(RowError(number, str(exc.message), "amount"))
            continue
        phone = (raw.get("phone") or "").strip()
        if phone and not PHONE.match(phone):
            bad.append(RowError(number, _("phone must be +7XXXXXXXXXX."), "phone"))
            continue
        good.append(
            _Row(
                number=number,
                uuid=uuid.uuid4(),
                amount=amount,
                description=(raw.get("description") or "").strip(),
                email=(raw.get("email") or "").strip(),
                phone=phone,
                order_id=(raw.get("order_id") or "").strip(),
            )
        )
    return good, bad


def provider_csv(provider: Provider, rows: list[_Row]) -> bytes:
    """The LP1-BATCH CSV of ``rows`` (``externalId`` = our invoice UUID)."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(
        ["amount", "currency", "description", "email", "externalId", "redirectUrl"]
    )
    for row in rows:
        draft: Any = _Draft(row)
        writer.writerow(
            [
                f"{row.amount:.2f}",
                "RUB",
                provider.description(draft),
                row.email,
                str(row.uuid),
                provider.return_url(draft),
            ]
        )
    return out.getvalue().encode("utf-8")


def upload_batch(
    alias: str, data: bytes | str, *, send_emails: bool = False
) -> BatchResult:
    """Issue every row of the merchant's CSV ``data`` as a Love&Pay invoice in
    one upload; see the module docstring."""
    provider = get_provider(alias)
    if not isinstance(provider, Provider):
        raise InvalidInput(
            _("%(alias)s is not a Love&Pay alias.") % {"alias": alias}, field="provider"
        )
    rows, refused = read_rows(data)
    result = BatchResult(errors=list(refused))
    checked: list[_Row] = []
    for row in rows:
        try:
            provider.validate_invoice(_Draft(row))  # type: ignore[arg-type]
        except InvalidInput as exc:
            result.errors.append(RowError(row.number, str(exc.message), exc.field))
        else:
            checked.append(row)
    if checked:
        answer = provider.call(
            "POST",
            provider.v1_url() + "batch/invoices",
            files={
                "file": ("invoices.csv", provider_csv(provider, checked), "text/csv")
            },
            data={
                "sendEmails": "true" if send_emails else "false",
                "defaultCurrency": "RUB",
            },
        )
        result.batch_id = _accept(provider, answer, checked, result)
    result.errors.sort(key=lambda e: e.row)
    return result


def _accept(
    provider: Provider, answer: Any, rows: list[_Row], result: BatchResult
) -> str:
    if not isinstance(answer, Mapping) or not isinstance(answer.get("invoices"), list):
        raise provider.provider_error(
            ProviderResponseError, "Love&Pay answered the batch without invoices."
        )
    # Love&Pay numbers the rows of the file it got; ours skip the refused ones.
    by_upload: dict[Any, _Row] = dict(enumerate(rows, start=1))
    by_uuid = {str(row.uuid): row for row in rows}
    for error in answer.get("errors") or []:
        if isinstance(error, Mapping) and by_upload.get(error.get("row")) is not None:
            row = by_upload[error["row"]]
            result.errors.append(
                RowError(
                    row.number,
                    str(error.get("message", "")),
                    str(error.get("field", "")),
                )
            )
    for item in answer["invoices"]:
        if not isinstance(item, Mapping) or not item.get("id"):
            continue
        found = by_uuid.get(
            str(item.get("externalId") or item.get("externalOrderId") or "")
        ) or by_upload.get(item.get("row"))
        if found is None:
            continue
        row = found
        result.invoices.append(
            _create(provider, row, item, str(answer.get("batchId", "")))
        )
    return str(answer.get("batchId", ""))


def _create(
    provider: Provider, row: _Row, item: Mapping[str, Any], batch_id: str
) -> Invoice:
    invoice = services.create_invoice(
        provider=provider.alias,
        amount=row.amount,
        currency="RUB",
        order_id=row.order_id,
        description=row.description,
        customer_email=row.email,
        customer_phone=row.phone,
        uuid=row.uuid,
    )
    # Love&Pay holds this invoice now: the same fact a start records.
    services.apply_event(
        PaymentEvent(
            provider=provider.alias,
            dedupe_id=f"batch:{item['id']}",
            type=EventType.PENDING,
            invoice_ref=str(invoice.uuid),
            provider_payment_id=str(item["id"]),
        )
    )
    return services.update_invoice_details(
        invoice,
        provider_details={
            "invoice_id": str(item["id"]),
            "invoice_number": str(item.get("invoiceNumber", "")),
            "payment_link": str(item.get("paymentLink", "")),
            "expires_at": str(item.get("expiresAt", "")),
            "batch_id": batch_id,
        },
    )
