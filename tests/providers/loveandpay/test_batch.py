"""The CSV batch upload (4.6, LP1-BATCH): one Invoice per row Love&Pay
accepted, linked to its invoice; refused rows reported by row number, creating
nothing; the admin page."""

from __future__ import annotations

from typing import Any

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.urls import reverse

from django_payments_ru import services
from django_payments_ru.emulator.models import EmulatedPayment
from django_payments_ru.exceptions import InvalidOperation
from django_payments_ru.models import Invoice
from django_payments_ru.providers.base import Checkout
from django_payments_ru.providers.loveandpay.batch import upload_batch
from django_payments_ru.providers.loveandpay.emulator import emulator
from django_payments_ru.status import InvoiceStatus

from .cases import ALIAS, LoveAndPayCase

THREE_ROWS = (
    "amount,description,email,order_id\n"
    "100.00,First,a@example.com,o-1\n"
    "5.00,Too small,b@example.com,o-2\n"
    "250.50,Third,,o-3\n"
)


class TestBatch(LoveAndPayCase):
    emulator_options = {"min_amount": "10.00"}

    def test_three_rows_one_refused_by_love_and_pay(self):
        result = upload_batch(ALIAS, THREE_ROWS, send_emails=True)

        assert result.created == 2 and result.batch_id.startswith("batch_")
        [refused] = result.errors
        assert (refused.row, refused.field) == (2, "amount")
        assert "10.00" in refused.message
        assert len(emulator.calls("batch")) == 1
        assert Invoice.objects.count() == 2
        first, third = sorted(result.invoices, key=lambda i: i.order_id)
        assert (first.order_id, first.amount, third.amount) == ("o-1", 100, 250.5)
        for invoice in (first, third):
            invoice.refresh_from_db()
            emulated = EmulatedPayment.objects.get(
                external_id=invoice.provider_payment_id
            )
            assert invoice.status == InvoiceStatus.PENDING
            assert emulated.data["externalId"] == str(invoice.uuid)
            details = invoice.metadata["loveandpay"]
            assert details["invoice_number"] == emulated.reference
            assert details["batch_id"] == result.batch_id
        assert EmulatedPayment.objects.get(external_id=first.provider_payment_id).data[
            "emailSent"
        ]

        # The customer pays through the link: the webhook finds the invoice.
        link = first.metadata["loveandpay"]["payment_link"]
        self.press(self.open_pay_page(link), "pay")
        self.assert_invoice(first, InvoiceStatus.PAID, charges=1)

    def test_a_row_refused_here_is_never_sent(self):
        rows = "amount,phone\n100.00,+79991234567\n100.00,89991234567\n1.001,\n"
        result = upload_batch(ALIAS, rows)
        assert [(e.row, e.field) for e in result.errors] == [
            (2, "phone"),
            (3, "amount"),
        ]
        assert result.created == 1
        assert EmulatedPayment.objects.count() == 1

    def test_nothing_valid_sends_nothing(self):
        result = upload_batch(ALIAS, "amount\nabc\n")
        assert [e.row for e in result.errors] == [1]
        assert emulator.calls() == []

    def test_starting_a_batch_invoice_reuses_it(self):
        result = upload_batch(ALIAS, "amount,email\n100.00,a@example.com\n")
        [invoice] = result.invoices

        checkout = services.start_payment(invoice)

        assert isinstance(checkout, Checkout)
        assert checkout.payment_id == invoice.provider_payment_id
        assert emulator.calls("create") == []
        assert EmulatedPayment.objects.count() == 1

    def test_the_admin_page(self, admin_client: Any):
        url = reverse(
            "admin:django_payments_ru_invoice_provider_view", args=[ALIAS, "batch"]
        )
        assert admin_client.get(url).status_code == 200
        upload = SimpleUploadedFile("rows.csv", THREE_ROWS.encode(), "text/csv")

        page = admin_client.post(url, {"file": upload})

        assert page.status_code == 200
        text = page.content.decode()
        assert 'data-row="2"' in text
        assert Invoice.objects.count() == 2

    def test_a_batch_invoice_paid_unseen_is_not_started_again(self):
        result = upload_batch(ALIAS, "amount\n100.00\n")
        [invoice] = result.invoices
        EmulatedPayment.objects.filter(external_id=invoice.provider_payment_id).update(
            status="PAID"
        )

        with pytest.raises(InvalidOperation):
            services.start_payment(invoice)

        assert emulator.calls("create") == []
        services.refresh_invoice(invoice)
        invoice.refresh_from_db()
        assert invoice.status == InvoiceStatus.PAID
