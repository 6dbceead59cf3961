"""The invoice admin for Life-Pay: capture and release of an A1Lite hold, and
"Change at Life-Pay" (the ECOM PATCH form). Django's admin client; the provider
calls the emulator on the live server."""

from __future__ import annotations

from typing import Any

import pytest
import requests
from django.contrib.auth.models import Permission, User
from django.contrib.messages import get_messages
from django.test import Client
from django.urls import reverse

from django_payments_ru.admin.operations import CONFIRM_FIELD
from django_payments_ru.emulator.models import EmulatedPayment
from django_payments_ru.models import Invoice
from django_payments_ru.providers.lifepay import EcomProvider
from django_payments_ru.providers.lifepay.forms import SLUG
from django_payments_ru.status import InvoiceStatus

from .test_flows import LifePayCase


def change_url(invoice: Invoice) -> str:
    return reverse("admin:django_payments_ru_invoice_change", args=[invoice.pk])


def operation_url(invoice: Invoice, operation: str) -> str:
    return reverse(
        "admin:django_payments_ru_invoice_operation", args=[invoice.pk, operation]
    )


def form_url(invoice: Invoice) -> str:
    return reverse(
        "admin:django_payments_ru_invoice_provider_form", args=[invoice.pk, SLUG]
    )


def texts(response: Any) -> list[str]:
    return [str(m) for m in get_messages(response.wsgi_request)]


@pytest.fixture
def viewer_client(db: Any) -> Client:
    """A staff user who may view invoices but not change them."""
    user = User.objects.create_user("viewer", password="pw", is_staff=True)
    user.user_permissions.set(Permission.objects.filter(codename="view_invoice"))
    client = Client()
    client.force_login(user)
    return client


class TestA1LiteHolds(LifePayCase):
    def held(self) -> Invoice:
        invoice = self.create_invoice()
        self.pay(invoice, "hold")
        self.assert_invoice(invoice, InvoiceStatus.ON_HOLD, charges=0)
        assert self.transaction(invoice).status == "blocked"
        return invoice

    def test_capture_from_the_admin(self, admin_client):
        invoice = self.held()
        page = admin_client.get(change_url(invoice)).content.decode()
        assert operation_url(invoice, "capture") in page
        assert operation_url(invoice, "release") in page
        assert "/form/" not in page  # A1Lite has no PATCH

        response = admin_client.post(
            operation_url(invoice, "capture"), {CONFIRM_FIELD: "yes"}, follow=True
        )

        assert response.redirect_chain[-1][0] == change_url(invoice)
        messages = texts(response)
        assert any("hold captured; status On hold → Paid." in m for m in messages)
        self.assert_invoice(invoice, InvoiceStatus.PAID, charges=1)
        assert self.transaction(invoice).status == "payed"
        page = response.content.decode()
        assert operation_url(invoice, "capture") not in page
        assert operation_url(invoice, "release") not in page

    def test_release_from_the_admin(self, admin_client):
        invoice = self.held()

        response = admin_client.post(
            operation_url(invoice, "release"), {CONFIRM_FIELD: "yes"}, follow=True
        )

        messages = texts(response)
        assert any("hold released; status On hold → Cancelled." in m for m in messages)
        self.assert_invoice(invoice, InvoiceStatus.CANCELLED, charges=0)
        assert self.transaction(invoice).status == "error"

    def test_a_capture_refused_by_life_pay_is_a_message(self, admin_client):
        invoice = self.held()
        self.set_emulator(faults={"funds": {"status": 400, "times": 1}})

        response = admin_client.post(
            operation_url(invoice, "capture"), {CONFIRM_FIELD: "yes"}, follow=True
        )

        assert response.status_code == 200
        [message] = texts(response)
        # For people: no "[lifepay]" alias before the error.
        assert "[lifepay]" not in message and "HTTP 400" in message
        self.assert_invoice(invoice, InvoiceStatus.ON_HOLD, charges=0)
        assert self.transaction(invoice).status == "blocked"

    def test_no_hold_buttons_for_a_paid_invoice(self, admin_client):
        invoice = self.create_invoice()
        self.pay(invoice)
        self.assert_invoice(invoice, InvoiceStatus.PAID)
        page = admin_client.get(change_url(invoice)).content.decode()
        assert operation_url(invoice, "capture") not in page
        assert operation_url(invoice, "release") not in page
        assert admin_client.get(form_url(invoice)).status_code == 404

    def test_no_hold_buttons_without_server_calls(self, admin_client):
        # Without the service id and secret there are no signed alba calls
        # (lifepay.md §5): the alias does not offer holds (its enabled
        # capabilities), and a capture sent anyway is refused with the reason
        # and nothing reaches Life-Pay.
        invoice = self.held()
        self.set_provider_options(service_id=None, signature_version="1.0")
        page = admin_client.get(change_url(invoice)).content.decode()
        assert operation_url(invoice, "capture") not in page

        response = admin_client.post(
            operation_url(invoice, "capture"), {CONFIRM_FIELD: "yes"}, follow=True
        )

        assert response.status_code == 200
        [message] = texts(response)
        assert "does not support" in message, message
        self.assert_invoice(invoice, InvoiceStatus.ON_HOLD, charges=0)
        assert self.transaction(invoice).status == "blocked"
        assert self.transaction(invoice).data.get("hold_operations", []) == []

    def test_a_viewer_cannot_capture(self, viewer_client):
        invoice = self.held()
        assert viewer_client.post(operation_url(invoice, "capture")).status_code == 403
        assert viewer_client.post(operation_url(invoice, "release")).status_code == 403
        self.assert_invoice(invoice, InvoiceStatus.ON_HOLD)
        assert self.transaction(invoice).status == "blocked"


class TestEcomForm(LifePayCase):
    alias = "lifepay_ecom"

    @pytest.fixture(autouse=True)
    def _patches(self, monkeypatch: pytest.MonkeyPatch) -> None:
        """Record the PATCH calls the provider makes."""
        self.patches: list[str] = []
        original = EcomProvider._ecom

        def spy(provider: EcomProvider, method: str, path: str, **kwargs: Any) -> Any:
            if method == "PATCH":
                self.patches.append(kwargs["data"].decode())
            return original(provider, method, path, **kwargs)

        monkeypatch.setattr(EcomProvider, "_ecom", spy)

    def started(self, **metadata: Any) -> Invoice:
        invoice = self.create_invoice(
            customer_email="old@example.com",
            customer_phone="+79990000001",
            metadata={"lifepay": metadata} if metadata else {},
        )
        self.start(invoice)
        invoice.refresh_from_db()
        return invoice

    def form_data(self, invoice: Invoice, **changes: Any) -> dict[str, Any]:
        """The form as the page shows it, with ``changes``."""
        data: dict[str, Any] = {
            "email": invoice.customer_email,
            "phone": invoice.customer_phone,
            "send_receipt_through": "",
            "interval": "",
            "frequency": "",
        }
        data.update(changes)
        return {k: v for k, v in data.items() if v is not None}

    def assert_unchanged(self, invoice: Invoice, before: EmulatedPayment) -> None:
        stored = Invoice.objects.get(pk=invoice.pk)
        assert (stored.customer_email, stored.customer_phone, stored.metadata) == (
            invoice.customer_email,
            invoice.customer_phone,
            invoice.metadata,
        )
        after = self.emulated(invoice)
        assert (after.customer_email, after.data) == (
            before.customer_email,
            before.data,
        )

    def test_the_form_changes_the_invoice_at_life_pay_and_here(self, admin_client):
        invoice = self.started(is_recurrent=True, send_receipt_through="email")
        page = admin_client.get(change_url(invoice)).content.decode()
        assert f'<a href="{form_url(invoice)}">Change at Life-Pay</a>' in page
        form = admin_client.get(form_url(invoice))
        assert form.status_code == 200
        assert form.context["form"].initial == {
            "email": "old@example.com",
            "phone": "+79990000001",
            "send_receipt_through": "email",
            "is_recurrent": True,
            "interval": "",
            "frequency": None,
        }

        response = admin_client.post(
            form_url(invoice),
            self.form_data(
                invoice,
                email="new@example.com",
                phone="79990000002",
                send_receipt_through="sms",
                is_recurrent="on",
                interval="month",
                frequency="2",
            ),
            follow=True,
        )

        assert response.redirect_chain[-1][0] == change_url(invoice)
        assert any("Life-Pay accepted the changes." in m for m in texts(response))
        # Only what changed was sent (the consent was already given).
        assert self.patches == [
            '{"email":"new@example.com","phone":79990000002,'
            '"send_receipt_through":"sms",'
            '"recurrent_schedule":{"interval":"month","frequency":2}}'
        ]
        emulated = self.emulated(invoice)
        assert emulated.customer_email == "new@example.com"
        assert emulated.data["phone"] == "79990000002"
        assert emulated.data["send_receipt_through"] == "sms"
        assert emulated.data["recurrent_schedule"] == {
            "interval": "month",
            "frequency": 2,
        }
        invoice.refresh_from_db()
        assert invoice.customer_email == "new@example.com"
        assert invoice.customer_phone == "79990000002"
        assert invoice.metadata["lifepay"] == {
            "is_recurrent": True,
            "send_receipt_through": "sms",
            "recurrent_schedule": {"interval": "month", "frequency": 2},
        }
        # The form now shows the new values; sending them again changes nothing.
        initial = admin_client.get(form_url(invoice)).context["form"].initial
        assert (initial["interval"], initial["frequency"]) == ("month", 2)
        again = admin_client.post(
            form_url(invoice),
            self.form_data(
                invoice,
                send_receipt_through="sms",
                is_recurrent="on",
                interval="month",
                frequency="2",
            ),
            follow=True,
        )
        assert any("nothing to change." in m for m in texts(again))
        assert len(self.patches) == 1

    def test_a_patch_refused_by_life_pay_saves_nothing(self, admin_client):
        invoice = self.started(is_recurrent=True)
        # The payer's consent was withdrawn at Life-Pay behind the shop's back:
        # the emulator refuses a schedule without it (lifepay.md §11.4).
        answer = requests.patch(
            self.emulator_url(f"v1/invoices/{invoice.provider_payment_id}"),
            json={"is_recurrent": False},
            headers={"Authorization": f"Bearer {self.provider.tokens.get()}"},
            timeout=10,
        )
        assert answer.status_code == 200
        before = self.emulated(invoice)

        response = admin_client.post(
            form_url(invoice),
            self.form_data(
                invoice,
                email="new@example.com",
                is_recurrent="on",
                interval="week",
                frequency="1",
            ),
        )

        assert response.status_code == 200
        [error] = response.context["form"].non_field_errors()
        assert "HTTP 400" in error and "needs is_recurrent" in error
        assert "needs is_recurrent" in response.content.decode()
        assert len(self.patches) == 1
        self.assert_unchanged(invoice, before)

    @pytest.mark.parametrize(
        ("changes", "field", "text"),
        [
            (
                {"interval": "week", "frequency": "0"},
                "frequency",
                "greater than or equal to 1",
            ),
            ({"interval": "week"}, "frequency", "integer of at least 1"),
            ({"frequency": "3"}, "interval", "must be one of day, week"),
            ({"interval": "week", "frequency": "1"}, "interval", "needs is_recurrent"),
            ({"email": ""}, "email", "Life-Pay cannot remove it"),
            ({"phone": "12-34"}, "phone", "Enter a valid value"),
        ],
    )
    def test_bad_values_are_refused_before_sending(
        self, admin_client, changes, field, text
    ):
        invoice = self.started()
        before = self.emulated(invoice)

        response = admin_client.post(
            form_url(invoice), self.form_data(invoice, **changes)
        )

        assert response.status_code == 200
        errors = response.context["form"].errors
        assert list(errors) == [field], errors
        assert text in errors[field][0]
        assert self.patches == []
        self.assert_unchanged(invoice, before)

    def test_no_form_before_the_invoice_exists_at_life_pay(self, admin_client):
        invoice = self.create_invoice()
        page = admin_client.get(change_url(invoice)).content.decode()
        assert "/form/" not in page
        assert admin_client.get(form_url(invoice)).status_code == 404

    def test_a_viewer_cannot_change_the_invoice(self, viewer_client):
        invoice = self.started()
        before = self.emulated(invoice)
        page = viewer_client.get(change_url(invoice)).content.decode()
        assert form_url(invoice) not in page
        assert viewer_client.get(form_url(invoice)).status_code == 403
        response = viewer_client.post(
            form_url(invoice), self.form_data(invoice, email="new@example.com")
        )
        assert response.status_code == 403
        assert self.patches == []
        self.assert_unchanged(invoice, before)
