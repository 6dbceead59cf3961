"""The invoice admin's Refresh and Refund (full and partial) for PayConnect:
Django's admin client, the provider calling the emulator on the live server."""

from __future__ import annotations

from decimal import Decimal

from django.contrib.messages import get_messages
from django.urls import reverse

from django_payments_ru.admin.operations import CONFIRM_FIELD
from django_payments_ru.formatting import format_money
from django_payments_ru.providers.payconnect.emulator import emulator
from django_payments_ru.status import InvoiceStatus

from .cases import PayConnectCase


def change_url(invoice) -> str:
    return reverse("admin:django_payments_ru_invoice_change", args=[invoice.pk])


class TestPayConnectAdmin(PayConnectCase):
    def test_refresh_then_partial_and_full_refund(self, admin_client):
        # The webhook is lost: the admin's Refresh finds the payment.
        self.set_emulator(webhook_urls=[])
        invoice = self.create_invoice(amount="100.00")
        self.press(self.open_checkout(self.start(invoice)), "pay", follow=False)
        page = admin_client.get(change_url(invoice)).content.decode()
        assert "operation/refresh/" in page
        assert "/refund/" not in page  # not paid yet, as far as we know

        response = admin_client.post(
            reverse(
                "admin:django_payments_ru_invoice_operation",
                args=[invoice.pk, "refresh"],
            ),
            follow=True,
        )
        messages = [str(m) for m in get_messages(response.wsgi_request)]
        assert any("Pending → Paid" in m for m in messages), messages
        self.assert_invoice(invoice, InvoiceStatus.PAID, charges=1)

        refund_url = reverse(
            "admin:django_payments_ru_invoice_refund", args=[invoice.pk]
        )
        assert refund_url in admin_client.get(change_url(invoice)).content.decode()
        form = admin_client.get(refund_url)
        assert form.status_code == 200

        partial = admin_client.post(
            refund_url, {"amount": "30.00", CONFIRM_FIELD: "yes"}, follow=True
        )
        assert partial.redirect_chain[-1][0] == change_url(invoice)
        self.assert_invoice(
            invoice, InvoiceStatus.PARTIALLY_REFUNDED, refunds=1, refunded="30.00"
        )

        full = admin_client.post(
            refund_url, {"amount": "", CONFIRM_FIELD: "yes"}, follow=True
        )
        messages = [str(m) for m in get_messages(full.wsgi_request)]
        refunded = format_money(Decimal("70.00"), "RUB")
        assert any(f"Refunded {refunded};" in m for m in messages), messages
        self.assert_invoice(
            invoice, InvoiceStatus.REFUNDED, refunds=2, refunded="100.00"
        )
        emulated = self.emulated(invoice)
        assert (emulated.status, emulated.refunded_amount) == (
            "refunded",
            Decimal("100.00"),
        )
        assert [c.endpoint for c in emulator.calls() if c.endpoint != "pay_page"] == [
            "token",
            "create",
            "get",
            "refund",
            "refund",
        ]

    def test_a_refund_refused_by_payconnect_is_shown_on_the_form(self, admin_client):
        invoice = self.create_invoice(amount="100.00")
        self.pay(invoice)
        self.assert_invoice(invoice, InvoiceStatus.PAID)
        self.set_emulator(faults={"refund": {"status": 409, "times": 1}})
        refund_url = reverse(
            "admin:django_payments_ru_invoice_refund", args=[invoice.pk]
        )

        response = admin_client.post(
            refund_url, {"amount": "10.00", CONFIRM_FIELD: "yes"}
        )

        assert response.status_code == 200
        assert "HTTP 409" in response.content.decode()
        self.assert_invoice(invoice, InvoiceStatus.PAID, refunds=0)
