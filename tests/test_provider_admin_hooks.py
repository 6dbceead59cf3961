"""What a provider adds to the admin through the generic hooks: its own pages
(``admin_views``), its health (``health``: the admin and ``manage.py check``),
and why an action is missing (``capability_notes``). Through the sandbox."""

from __future__ import annotations

from typing import Any

import pytest
from django.contrib import messages
from django.contrib.auth.models import Permission, User
from django.core import checks
from django.http import HttpResponseRedirect
from django.test import Client
from django.urls import reverse

from django_payments_ru.providers.base import Capability, ProviderAdminView
from django_payments_ru.providers.sandbox import Provider as Sandbox
from tests.helpers import make_invoice

pytestmark = pytest.mark.django_db

CHANGELIST = reverse("admin:django_payments_ru_invoice_changelist")
PAGE = reverse(
    "admin:django_payments_ru_invoice_provider_view", args=["sandbox", "balance"]
)


class Pages:
    def __init__(self) -> None:
        self.posts: list[str] = []

    def view(self, request: Any, provider: Sandbox) -> Any:
        if request.method == "POST":
            self.posts.append(provider.alias)
            messages.success(request, "Done.")
            return HttpResponseRedirect(PAGE)
        return {"balance": "12.50 USDT"}


@pytest.fixture
def pages(monkeypatch: pytest.MonkeyPatch) -> Pages:
    spy = Pages()
    monkeypatch.setattr(
        Sandbox,
        "admin_views",
        lambda self: [
            ProviderAdminView(
                slug="balance",
                title="Balance",
                view=spy.view,
                template="testapp/provider_page.html",
            )
        ],
    )
    return spy


def viewer() -> Client:
    user = User.objects.create_user("viewer", password="pw", is_staff=True)
    user.user_permissions.add(
        Permission.objects.get(
            codename="view_invoice", content_type__app_label="django_payments_ru"
        )
    )
    client = Client()
    client.force_login(user)
    return client


def test_a_provider_page_is_linked_from_the_list_and_renders(
    admin_client: Client, pages: Pages
) -> None:
    listing = admin_client.get(CHANGELIST)
    assert f'href="{PAGE}"' in listing.content.decode()
    assert "Sandbox: Balance" in listing.content.decode()
    page = admin_client.get(PAGE)
    assert page.status_code == 200
    body = page.content.decode()
    assert '<p id="balance">12.50 USDT for sandbox</p>' in body
    assert "<title>Sandbox: Balance" in body
    assert f'href="{CHANGELIST}"' in body  # the way back


def test_a_post_runs_the_view_and_needs_the_change_permission(
    admin_client: Client, pages: Pages
) -> None:
    assert admin_client.post(PAGE).status_code == 302
    assert pages.posts == ["sandbox"]
    client = viewer()
    assert client.get(PAGE).status_code == 200  # may look
    assert client.post(PAGE).status_code == 403  # may not act
    assert pages.posts == ["sandbox"]


def test_no_page_without_the_permission(pages: Pages) -> None:
    user = User.objects.create_user("nobody", password="pw", is_staff=True)
    client = Client()
    client.force_login(user)
    assert client.get(PAGE).status_code == 403


def test_unknown_pages_and_aliases_are_404(admin_client: Client, pages: Pages) -> None:
    url = "admin:django_payments_ru_invoice_provider_view"
    assert admin_client.get(reverse(url, args=["sandbox", "nope"])).status_code == 404
    assert admin_client.get(reverse(url, args=["nope", "balance"])).status_code == 404


def test_a_provider_without_pages_adds_no_link(admin_client: Client) -> None:
    assert "/provider/" not in admin_client.get(CHANGELIST).content.decode()


def test_health_is_shown_in_the_admin_and_by_check(
    admin_client: Client, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(
        Sandbox, "health", lambda self: ["The API key is blocked: re-index it."]
    )
    listing = admin_client.get(CHANGELIST).content.decode()
    assert "Sandbox: The API key is blocked: re-index it." in listing
    invoice = make_invoice()
    change = reverse("admin:django_payments_ru_invoice_change", args=[invoice.pk])
    assert "The API key is blocked" in admin_client.get(change).content.decode()
    found = [m for m in checks.run_checks() if m.id == "payments_ru.W004"]
    assert [m.obj for m in found] == ["sandbox"]
    assert "PAYMENTS_RU['PROVIDERS']['sandbox']: The API key is blocked" in found[0].msg


def test_a_healthy_provider_warns_nothing(admin_client: Client) -> None:
    assert not [m for m in checks.run_checks() if m.id == "payments_ru.W004"]
    assert "messagelist" not in admin_client.get(CHANGELIST).content.decode()


def test_a_health_that_fails_is_reported_not_raised(
    admin_client: Client, monkeypatch: pytest.MonkeyPatch
) -> None:
    def broken(self: Sandbox) -> list[str]:
        raise RuntimeError("cache down")

    monkeypatch.setattr(Sandbox, "health", broken)
    assert admin_client.get(CHANGELIST).status_code == 200
    found = [m for m in checks.run_checks() if m.id == "payments_ru.W004"]
    assert "cannot be read (RuntimeError)" in found[0].msg


def test_capability_notes_say_why_an_action_is_missing(
    admin_client: Client, monkeypatch: pytest.MonkeyPatch
) -> None:
    note = "Refunds are on-chain transfers made by the merchant."
    monkeypatch.setattr(Sandbox, "capability_notes", {Capability.REFUND: note})
    invoice = make_invoice()
    change = reverse("admin:django_payments_ru_invoice_change", args=[invoice.pk])
    assert note not in admin_client.get(change).content.decode()  # it can refund
    monkeypatch.setattr(
        Sandbox,
        "enabled_capabilities",
        lambda self: frozenset(type(self).capabilities) - {Capability.REFUND},
    )
    assert note in admin_client.get(change).content.decode()
