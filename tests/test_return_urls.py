"""Return URLs lead back to the shop only, and no text field takes control
characters: both refused by create_invoice with InvalidInput naming the field,
and the return view re-checks what is stored before redirecting."""

from __future__ import annotations

import copy
from typing import Any
from unittest import mock

import pytest
from django.http import Http404
from django.test import RequestFactory, override_settings

from django_payments_ru.exceptions import ConfigurationError, InvalidInput
from django_payments_ru.models import Invoice
from django_payments_ru.providers.sandbox import Provider as Sandbox
from django_payments_ru.views import return_view
from tests.helpers import make_invoice

pytestmark = pytest.mark.django_db(transaction=True)


def payments(settings: Any, **changes: Any) -> Any:
    """``override_settings`` of PAYMENTS_RU with ``changes``."""
    value = copy.deepcopy(settings.PAYMENTS_RU)
    value.update(changes)
    return override_settings(PAYMENTS_RU=value)


def refused(field: str, **kwargs: Any) -> InvalidInput:
    before = Invoice.objects.count()
    with pytest.raises(InvalidInput) as caught:
        make_invoice(**kwargs)
    assert caught.value.field == field
    assert Invoice.objects.count() == before  # nothing written
    return caught.value


# --- create_invoice: return_url -------------------------------------------------


@pytest.mark.parametrize(
    "url",
    [
        "javascript:alert(1)",
        " javascript:alert(1)",
        "JavaScript:alert(1)",
        "data:text/html,<script>alert(1)</script>",
        "//evil.example.com/",
        "///evil.example.com/",
        "\\\\evil.example.com/",
        "http://evil.example.com/",
        "https://testserver.evil.example.com/",
        "http://testserver@evil.example.com/",
        "http://user@testserver/",
        "http://testserver:8080/",
        "http:///testserver/",
        "http:\\\\testserver/",
        "ftp://testserver/",
        "/orders/42/",
        "orders/42/",
        "http://[testserver/",
    ],
)
def test_return_url_off_the_shops_host_is_refused(url: str) -> None:
    error = refused("return_url", return_url=url)
    assert "PAYMENTS_RU['RETURN_URL_HOSTS']" in str(error)
    assert "testserver" in str(error)  # says which host is allowed


@pytest.mark.parametrize(
    "url",
    [
        "http://testserver/orders/42/",
        "https://testserver/orders/42/?paid=1#top",
        "HTTP://TestServer/orders/42/",
    ],
)
def test_return_url_on_the_shops_host_is_kept(url: str) -> None:
    assert make_invoice(return_url=url).return_url == url


def test_return_url_hosts_adds_hosts(settings: Any) -> None:
    with payments(
        settings, RETURN_URL_HOSTS=["app.example.com", "Pay.Example.com:8443"]
    ):
        for url in (
            "http://testserver/x/",  # BASE_URL's host stays allowed
            "https://app.example.com/orders/1/",
            "https://pay.example.com:8443/back/",
        ):
            assert make_invoice(return_url=url).return_url == url
        refused("return_url", return_url="https://pay.example.com/back/")
        refused("return_url", return_url="https://other.example.com/")


def test_an_https_shop_returns_over_https_only(settings: Any) -> None:
    with payments(settings, BASE_URL="https://shop.example.com"):
        assert make_invoice(return_url="https://shop.example.com/o/").return_url
        error = refused("return_url", return_url="http://shop.example.com/o/")
        assert "https URL" in str(error)


def test_without_base_url_or_hosts_every_return_url_is_refused(settings: Any) -> None:
    with payments(settings, BASE_URL="", RETURN_URL_HOSTS=[]):
        error = refused("return_url", return_url="http://testserver/orders/1/")
        assert "PAYMENTS_RU['BASE_URL']" in str(error)
        assert "PAYMENTS_RU['RETURN_URL_HOSTS']" in str(error)
        # No return_url at all is fine: the return view shows its own page.
        assert make_invoice().return_url == ""
    with payments(settings, BASE_URL="", RETURN_URL_HOSTS=["testserver"]):
        assert make_invoice(return_url="http://testserver/orders/1/").return_url


@pytest.mark.parametrize("hosts", ["testserver", None, {"testserver": 1}])
def test_return_url_hosts_must_be_a_list(settings: Any, hosts: Any) -> None:
    with (
        payments(settings, RETURN_URL_HOSTS=hosts),
        pytest.raises(ConfigurationError, match="RETURN_URL_HOSTS"),
    ):
        make_invoice(return_url="http://testserver/x/")


# --- create_invoice: unsafe characters in every text field -----------------------

UNSAFE = ["\x00", "\x07", "\t", "\n", "\x1b", "\x7f", "\x85", "\ud800", "\udfff"]
TEXT_FIELDS = {
    "order_id": "A-{}1",
    "description": "Order {}1",
    "customer_email": "a{}b@example.com",
    "customer_phone": "+7{}900",
    "return_url": "http://testserver/{}x/",
}


@pytest.mark.parametrize("char", UNSAFE)
@pytest.mark.parametrize("field", sorted(TEXT_FIELDS))
def test_control_characters_and_lone_surrogates_are_refused(
    field: str, char: str
) -> None:
    # Also on PostgreSQL, which would answer NUL with a raw DataError and a
    # lone surrogate with an encoding error.
    error = refused(field, **{field: TEXT_FIELDS[field].format(char)})
    assert field in str(error)
    assert f"U+{ord(char):04X}" in str(error)


@pytest.mark.parametrize(
    ("metadata", "where"),
    [
        ({"note": "a\x00b"}, "metadata['note']"),
        ({"lines": ["ok", {"sku": "x\ud83d"}]}, "metadata['lines'][1]['sku']"),
        ({"k\x00": "v"}, "a key of metadata"),
        ({"deep": {"k\x1b": 1}}, "a key of metadata['deep']"),
    ],
)
def test_metadata_strings_are_checked_at_any_depth(
    metadata: dict[str, Any], where: str
) -> None:
    error = refused("metadata", metadata=metadata)
    assert where in str(error)


def test_printable_text_is_kept() -> None:
    invoice = make_invoice(
        order_id="Заказ-1",
        description="Кофе «Арабика» ☕ 250 граммов",
        metadata={"note": "ünïcödé", "n": 1, "tags": ["a", None, True]},
    )
    invoice.refresh_from_db()
    assert invoice.description == "Кофе «Арабика» ☕ 250 граммов"
    assert invoice.metadata["note"] == "ünïcödé"


# --- the return view ----------------------------------------------------------------


def _url(invoice: Invoice) -> str:
    return f"/payments/return/{invoice.uuid}/"


@pytest.mark.parametrize(
    "stored",
    [
        "javascript:alert(1)",
        "//evil.example.com/",
        "http://evil.example.com/",
        "/orders/42/",
        "orders",  # redirect() would have taken it for a view name: a 500
    ],
)
def test_return_view_redirects_only_to_a_url_that_passes_again(
    client: Any, stored: str
) -> None:
    # Stored before the checks existed (or edited in the database).
    invoice = make_invoice()
    Invoice.objects.filter(pk=invoice.pk).update(return_url=stored)
    with mock.patch.object(Sandbox, "fetch_status", return_value=None):
        response = client.get(_url(invoice))
    assert response.status_code == 200
    assert "Location" not in response
    assert stored.encode() not in response.content


def test_return_view_stops_redirecting_to_a_host_no_longer_allowed(
    client: Any, settings: Any
) -> None:
    with payments(settings, RETURN_URL_HOSTS=["app.example.com"]):
        invoice = make_invoice(return_url="https://app.example.com/orders/1/")
        with mock.patch.object(Sandbox, "fetch_status", return_value=None):
            response = client.get(_url(invoice))
        assert response.status_code == 302
        assert response["Location"] == "https://app.example.com/orders/1/"
    with mock.patch.object(Sandbox, "fetch_status", return_value=None):
        response = client.get(_url(invoice))
    assert response.status_code == 200


def test_return_view_answers_404_for_a_malformed_reference(client: Any) -> None:
    assert client.get("/payments/return/not-a-uuid/").status_code == 404
    # Called directly (a project routing it with <str:ref>): 404, not a
    # ValidationError from the UUID column.
    request = RequestFactory().get("/back/")
    for ref in ("not-a-uuid", "", "1' OR '1'='1", "\x00"):
        with pytest.raises(Http404):
            return_view(request, ref)


def test_return_view_survives_an_unexpected_error(client: Any) -> None:
    invoice = make_invoice(return_url="http://testserver/orders/9/")
    with mock.patch.object(Sandbox, "fetch_status", side_effect=RuntimeError("x")):
        response = client.get(_url(invoice))
    assert response.status_code == 302
    assert response["Location"] == "http://testserver/orders/9/"
