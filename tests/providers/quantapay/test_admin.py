"""The QuantaPay page of the admin (balances per coin, the credits, a low
balance as a warning) and the refund note on a QuantaPay invoice."""

from __future__ import annotations

from django.test import Client
from django.urls import reverse

from django_payments_ru.providers.base import Capability
from django_payments_ru.providers.quantapay import Provider

from .cases import ALIAS, QuantaPayCase


class TestAdmin(QuantaPayCase):
    def admin(self, django_user_model) -> Client:
        user = django_user_model.objects.create_superuser("qp-admin", "a@b.c", "pw")
        client = Client()
        client.force_login(user)
        return client

    def page(self, client: Client) -> str:
        url = reverse(
            "admin:django_payments_ru_invoice_provider_view", args=[ALIAS, "balances"]
        )
        response = client.get(url)
        assert response.status_code == 200
        return response.content.decode()

    def test_the_balances_page(self, django_user_model):
        client = self.admin(django_user_model)
        text = self.page(client)
        assert 'data-coin="BTC"' in text and "0.5432" in text and "35210.50" in text
        assert 'data-coin="ETH"' in text
        assert 'data-credit="150.00"' in text and "low-credit" not in text
        listing = client.get(reverse("admin:django_payments_ru_invoice_changelist"))
        assert b"QuantaPay balances" in listing.content

    def test_a_low_credit_balance_is_a_warning(self, django_user_model):
        self.set_emulator(credit_balance="2.00")
        text = self.page(self.admin(django_user_model))
        assert "low-credit" in text and "top them up" in text

    def test_an_unreachable_api_is_shown_not_raised(self, django_user_model):
        self.set_emulator(faults={"get-balances": {"status": 503}})
        text = self.page(self.admin(django_user_model))
        assert "errornote" in text

    def test_the_invoice_page_says_why_there_is_no_refund(self, django_user_model):
        assert not Provider.capabilities & {Capability.REFUND}
        invoice = self.paid_invoice()
        client = self.admin(django_user_model)
        response = client.get(
            reverse("admin:django_payments_ru_invoice_change", args=[invoice.pk])
        )
        assert response.status_code == 200
        assert "on-chain transfer" in response.content.decode()

    def paid_invoice(self):
        invoice = self.create_invoice()
        self.pay(invoice, "pay")
        invoice.refresh_from_db()
        assert invoice.status == "paid"
        return invoice
