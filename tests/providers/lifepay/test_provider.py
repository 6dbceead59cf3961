"""The Life-Pay provider without a network: options, the pay form, field limits,
notifications through the webhook view, JWT expiry and the ECOM invoice shape."""

from __future__ import annotations

import json
import uuid
from decimal import Decimal
from typing import Any
from urllib.parse import urlencode

import pytest
from django.core.checks import Error

from django_payments_ru import services
from django_payments_ru.checks import check_payments_settings
from django_payments_ru.events import EventType
from django_payments_ru.exceptions import (
    ConfigurationError,
    InvalidInput,
    ProviderAuthError,
    RemovedInDjangoPaymentsRu2Warning,
)
from django_payments_ru.models import Invoice, Payment, WebhookEvent
from django_payments_ru.providers.http import HttpClient
from django_payments_ru.providers.lifepay import Provider
from django_payments_ru.providers.lifepay.signature import (
    sign_notification,
    sign_v2,
)
from django_payments_ru.providers.tokens import jwt_expiry
from django_payments_ru.registry import get_provider
from django_payments_ru.status import InvoiceStatus

from .conftest import (
    KEY_V1,
    KEY_V2,
    SECRET,
    SECRET_V1,
    SERVICES,
    TESTSERVER,
    fixture,
    provider_options,
)

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("lifepay")]


def make(alias: str = "lifepay", **kwargs: Any) -> Invoice:
    kwargs.setdefault("amount", "100.50")
    kwargs.setdefault("order_id", f"order-{uuid.uuid4().hex[:8]}")
    kwargs.setdefault("description", "Order 1001")
    return services.create_invoice(provider=alias, **kwargs)


@pytest.fixture
def no_http(monkeypatch):
    """Fail any HTTP call: validation must refuse before sending."""
    sent: list[Any] = []

    def refuse(self, method, path, **kwargs):
        sent.append((method, path))
        raise AssertionError(f"a request was sent: {method} {path}")

    monkeypatch.setattr(HttpClient, "request_raw", refuse)
    return sent


# --- options --------------------------------------------------------------------


def _options(alias: str, **changes: Any) -> dict[str, Any]:
    return {**provider_options()[alias]["OPTIONS"], **changes}


def test_forced_signature_with_an_unsigned_form_is_a_check_error(settings):
    config = settings.PAYMENTS_RU
    config["PROVIDERS"]["lifepay_v1"]["OPTIONS"]["forced_signature"] = True
    errors = [m for m in check_payments_settings() if isinstance(m, Error)]
    assert any(
        m.id == "payments_ru.E007" and "forced_signature" in m.msg for m in errors
    )
    with pytest.raises(ConfigurationError, match="forced_signature"):
        Provider("lifepay_v1", _options("lifepay_v1", forced_signature=True))


@pytest.mark.parametrize(
    ("alias", "missing"),
    [("lifepay", "service_id"), ("lifepay_v1", "key"), ("lifepay_ecom", "api_key")],
)
def test_each_surface_names_the_option_it_needs(alias, missing):
    options = _options(alias)
    del options[missing]
    with pytest.raises(ConfigurationError, match=repr(missing)):
        Provider(alias, options)


def test_secret_key_is_always_needed_and_unknown_options_are_refused():
    options = _options("lifepay")
    del options["secret_key"]
    with pytest.raises(ConfigurationError, match="secret_key"):
        Provider("lifepay", options)
    with pytest.raises(ConfigurationError, match="'base_url'"):
        Provider("lifepay", {**_options("lifepay"), "base_url": "x"})


def test_capabilities_by_surface():
    a1lite, ecom = get_provider("lifepay"), get_provider("lifepay_ecom")
    assert a1lite.supports("refund") and a1lite.supports("hold")
    assert not a1lite.supports("split")
    assert ecom.supports("status") and ecom.supports("split")
    assert not ecom.supports("refund")
    # lifepay.md §9: ECOM holds end with PATCH/DELETE .../charges/<id>/blocked.
    assert ecom.supports("hold")


# --- the A1Lite pay form ---------------------------------------------------------


def test_v2_form_is_signed_over_the_input_url():
    invoice = make(customer_email="buyer@example.com", customer_phone="+74951234567")
    checkout = services.start_payment(invoice)

    assert checkout.method == "POST"
    assert checkout.url == f"{TESTSERVER}/emulator/lifepay/alba/input/"
    fields = dict(checkout.fields)
    check = fields.pop("check")
    assert fields == {
        "service_id": str(SERVICES["lifepay"]),
        "version": "2.0",
        "cost": "100.50",
        "name": "Order 1001",
        "order_id": invoice.order_id,
        "email": "buyer@example.com",
        "phone_number": "74951234567",
        "url_success": f"{TESTSERVER}/payments/return/{invoice.uuid}/",
        "url_error": f"{TESTSERVER}/payments/return/{invoice.uuid}/",
    }
    assert check == sign_v2(SECRET, "POST", checkout.url, fields)
    assert "key" not in fields


def test_v1_form_carries_the_public_key_and_no_check():
    invoice = make("lifepay_v1", amount="100")
    fields = dict(services.start_payment(invoice).fields)
    assert fields["key"] == KEY_V1
    assert fields["cost"] == "100.00"
    assert "check" not in fields and "service_id" not in fields


def test_invoice_without_order_id_sends_its_uuid():
    invoice = make(order_id="")
    fields = services.start_payment(invoice).fields
    assert fields["order_id"] == invoice.uuid.hex


def test_receipt_lines_become_invoice_data():
    invoice = make(
        amount="680.00",
        receipt=[
            {
                "code": "21321312122",
                "name": "Маракуя",
                "unit": "kg",
                "price": "340.00",
                "quantity": "2",
                "amount": "680.00",
                "vat": "none",
            }
        ],
    )
    fields = services.start_payment(invoice).fields
    # lifepay.md §10: the example item's fields, in its order.
    assert fields["invoice_data"] == (
        '{"items":[{"code":"21321312122","name":"Маракуя","unit":"kg",'
        '"price":340.00,"quantity":2,"sum":680.00,"vat_mode":"none"}]}'
    )


def test_invoice_data_writes_quantities_and_subjects_as_given():
    invoice = make(
        amount="170.01",
        receipt=[
            {
                "name": "Маракуя",
                "unit": "kg",
                "price": "340.00",
                "quantity": "0.500",
                "amount": "170.00",
                "vat": "vat20",
                "payment_method": "full_prepayment",
            },
            {
                "name": "Пакет",
                "price": "0.01",
                "quantity": "1",
                "amount": "0.01",
                "vat": "vat20",
                "payment_object": "service",
            },
        ],
    )
    items = json.loads(
        services.start_payment(invoice).fields["invoice_data"], parse_float=Decimal
    )["items"]
    # No float: 0.5 kg, not 0.500; the subject and method only where they are
    # not the example's (commodity, full payment: ASSUMPTION L-8).
    assert items == [
        {
            "name": "Маракуя",
            "unit": "kg",
            "price": Decimal("340.00"),
            "quantity": Decimal("0.5"),
            "sum": Decimal("170.00"),
            "vat_mode": "vat20",
            "payment_method": "full_prepayment",
        },
        {
            "name": "Пакет",
            "unit": "piece",
            "price": Decimal("0.01"),
            "quantity": 1,
            "sum": Decimal("0.01"),
            "vat_mode": "vat20",
            "payment_object": "service",
        },
    ]


def test_the_old_metadata_receipt_still_becomes_invoice_data():
    with pytest.warns(RemovedInDjangoPaymentsRu2Warning, match="receipt"):
        invoice = make(
            amount="680.00",
            metadata={
                "receipt": [
                    {
                        "code": "21321312122",
                        "name": "Маракуя",
                        "unit": "kg",
                        "price": "340.00",
                        "quantity": "2",
                        "sum": "680.00",
                        "vat_mode": "none",
                    }
                ]
            },
        )
    assert "receipt" not in invoice.metadata
    fields = services.start_payment(invoice).fields
    assert fields["invoice_data"] == (
        '{"items":[{"code":"21321312122","name":"Маракуя","unit":"kg",'
        '"price":340.00,"quantity":2,"sum":680.00,"vat_mode":"none"}]}'
    )


def test_an_invoice_without_a_receipt_sends_no_invoice_data():
    assert "invoice_data" not in services.start_payment(make()).fields


def test_ecom_sends_the_receipts_delivery_as_send_receipt_through():
    invoice = make(
        "lifepay_ecom",
        amount="100.00",
        receipt={
            "delivery": "sms",
            "lines": [
                {
                    "name": "A",
                    "price": "100.00",
                    "quantity": "1",
                    "amount": "100.00",
                    "vat": "vat20",
                }
            ],
        },
    )
    body = get_provider("lifepay_ecom").checkout_data(invoice, None)
    # lifepay.md §11.2: the invoice takes the channel, and no lines.
    assert body["send_receipt_through"] == "sms"
    assert not {"items", "invoice_data", "receipt"} & set(body)


def test_ecom_old_receipt_takes_its_delivery_from_send_receipt_through():
    with pytest.warns(RemovedInDjangoPaymentsRu2Warning):
        invoice = make(
            "lifepay_ecom",
            amount="1.00",
            metadata={
                "receipt": [
                    {
                        "name": "A",
                        "price": "1.00",
                        "quantity": "1",
                        "sum": "1.00",
                        "vat_mode": "none",
                    }
                ],
                "lifepay": {"send_receipt_through": "nothing"},
            },
        )
    body = get_provider("lifepay_ecom").checkout_data(invoice, None)
    assert body["send_receipt_through"] == "nothing"
    assert invoice.get_receipt().delivery == "nothing"


def test_recurrent_registration_fields():
    invoice = make(
        order_id="rec-000123",
        customer_email="buyer@example.com",
        metadata={
            "lifepay": {
                "recurrent": {
                    "comment": "Monthly subscription",
                    "url": "https://shop.example.com/offer",
                }
            }
        },
    )
    fields = services.start_payment(invoice).fields
    assert fields["recurrent_type"] == "first"
    assert fields["recurrent_comment"] == "Monthly subscription"
    assert fields["recurrent_url"] == "https://shop.example.com/offer"
    assert fields["recurrent_period"] == "byrequest"


LIMITS = [
    ("lifepay", {"description": "x" * 129}, "description"),
    ("lifepay", {"currency": "USD"}, "currency"),
    (
        "lifepay",
        {"metadata": {"lifepay": {"recurrent": {"comment": "c"}}}},
        "metadata.lifepay.recurrent.url",
    ),
    (
        "lifepay",
        {
            "customer_email": "a@example.com",
            "order_id": "o" * 21,
            "metadata": {
                "lifepay": {"recurrent": {"comment": "c", "url": "https://x.ru/o"}}
            },
        },
        "order_id",
    ),
    ("lifepay", {"metadata": {"lifepay": {"split_data": []}}}, "split_data"),
    ("lifepay", {"metadata": {"lifepay": {"colour": "red"}}}, "colour"),
    ("lifepay_ecom", {"description": "x" * 129}, "description"),
    ("lifepay_ecom", {"currency": "KZT"}, "currency"),
    ("lifepay_ecom", {"amount": "0.50"}, "amount"),
    (
        "lifepay_ecom",
        {"metadata": {"lifepay": {"comment": "x" * 513}}},
        "metadata.lifepay.comment",
    ),
    ("lifepay_ecom", {"metadata": {"lifepay": {"comment": ""}}}, "comment"),
    (
        "lifepay_ecom",
        {"metadata": {"lifepay": {"send_receipt_through": "fax"}}},
        "send_receipt_through",
    ),
    (
        "lifepay_ecom",
        {
            "metadata": {
                "lifepay": {
                    "is_recurrent": True,
                    "recurrent_schedule": {"interval": "year", "frequency": 1},
                }
            }
        },
        "recurrent_schedule.interval",
    ),
    (
        "lifepay_ecom",
        {
            "metadata": {
                "lifepay": {
                    "is_recurrent": True,
                    "recurrent_schedule": {"interval": "month", "frequency": 0},
                }
            }
        },
        "recurrent_schedule.frequency",
    ),
    (
        "lifepay_ecom",
        {"metadata": {"lifepay": {"recurrent_schedule": {"interval": "month"}}}},
        "recurrent_schedule",
    ),
    (
        "lifepay_ecom",
        {
            "metadata": {
                "lifepay": {
                    "split_data": [
                        {
                            "order_id": "s1",
                            "amount": "10.00",
                            "merchant_id": "m1",
                            "comment": "x" * 65,
                        }
                    ]
                }
            }
        },
        "split_data[0].comment",
    ),
    (
        "lifepay_ecom",
        {
            "metadata": {
                "lifepay": {
                    "split_data": [
                        {"order_id": "x" * 65, "amount": "10.00", "merchant_id": "m"}
                    ]
                }
            }
        },
        "split_data[0].order_id",
    ),
    (
        "lifepay_ecom",
        {
            "metadata": {
                "lifepay": {
                    "split_data": [
                        {"order_id": "s1", "amount": "60.00", "merchant_id": "m1"},
                        {"order_id": "s2", "amount": "60.00", "merchant_id": "m2"},
                    ]
                }
            }
        },
        "metadata.lifepay.split_data",
    ),
    (
        "lifepay_ecom",
        {
            "receipt": {
                "delivery": "email",
                "lines": [
                    {
                        "name": "A",
                        "price": "100.50",
                        "quantity": "1",
                        "amount": "100.50",
                        "vat": "none",
                    }
                ],
            },
            "metadata": {"lifepay": {"send_receipt_through": "sms"}},
        },
        "metadata.lifepay.send_receipt_through",
    ),
    (
        "lifepay_ecom",
        {"metadata": {"lifepay": {"expire_date": "tomorrow"}}},
        "expire_date",
    ),
]


@pytest.mark.parametrize(("alias", "changes", "field"), LIMITS)
def test_every_limit_names_the_field_and_sends_nothing(no_http, alias, changes, field):
    before = Invoice.objects.count()
    with pytest.raises(InvalidInput) as caught:
        make(alias, **changes)
    assert field in caught.value.field
    assert caught.value.provider == alias  # the alias, not the class's slug
    if caught.value.field != "currency":  # the core's own message names it
        assert field.split(".")[-1].split("[")[0] in str(caught.value)
    assert Invoice.objects.count() == before
    assert no_http == []


@pytest.mark.parametrize(
    ("changes", "field"),
    [
        ({"email": "not-an-email"}, "email"),
        ({"phone": "+7 999"}, "phone"),
        ({"send_receipt_through": "fax"}, "send_receipt_through"),
        ({"recurrent_schedule": {"interval": "month", "frequency": 1}}, "recurrent"),
        (
            {
                "is_recurrent": True,
                "recurrent_schedule": {"interval": "month", "frequency": "1"},
            },
            "recurrent_schedule.frequency",
        ),
        ({"amount": "5.00"}, "amount"),
    ],
)
def test_patch_limits_send_nothing(no_http, changes, field):
    invoice = make("lifepay_ecom")
    Invoice.objects.filter(pk=invoice.pk).update(provider_payment_id=str(uuid.uuid4()))
    invoice.refresh_from_db()
    with pytest.raises(InvalidInput) as caught:
        get_provider("lifepay_ecom").update_invoice(invoice, **changes)
    assert field in caught.value.field
    assert caught.value.provider == "lifepay_ecom"
    assert no_http == []


# --- notifications ----------------------------------------------------------------


def notification(
    invoice: Invoice, command: str = "success", *, version: str = "2.0", **extra: str
) -> dict[str, str]:
    amount = str(invoice.amount)
    fields = {
        "tid": "100000001",
        "name": invoice.description,
        "comment": "",
        "partner_id": "1",
        "service_id": str(SERVICES[invoice.provider]),
        "order_id": invoice.order_id,
        "type": "spg_test",
        "cost": amount,
        "income_total": amount,
        "income": amount,
        "partner_income": amount,
        "system_income": amount,
        "command": command,
        "phone_number": "",
        "email": "",
        "resultStr": "",
        "date_created": "2024-01-15 10:30:00",
        "version": version,
        "currency": "RUB",
    }
    fields.update(extra)
    return fields


def signed(
    fields: dict[str, str],
    *,
    alias: str = "lifepay",
    secret: str | None = None,
    url: str | None = None,
) -> dict[str, str]:
    secret = secret or (SECRET_V1 if alias == "lifepay_v1" else SECRET)
    url = url or f"{TESTSERVER}/payments/webhooks/{alias}/"
    return {
        **fields,
        "check": sign_notification(fields["version"], secret, url, fields),
    }


def post(client, fields: dict[str, str], alias: str = "lifepay"):
    return client.post(
        f"/payments/webhooks/{alias}/",
        data=urlencode(fields),
        content_type="application/x-www-form-urlencoded",
    )


def _refused(client, fields, alias="lifepay"):
    invoice = Invoice.objects.get(provider=alias)
    response = post(client, fields, alias)
    assert response.status_code == 400
    assert WebhookEvent.objects.count() == 0
    assert Payment.objects.count() == 0
    invoice.refresh_from_db()
    assert invoice.status == InvoiceStatus.CREATED
    return response


def test_wrong_version_is_refused(client):
    # A valid v1.0 MD5 sent to a v2.0 service: a downgrade.
    fields = signed(notification(make(), version="1.0"))
    _refused(client, fields)


def test_v1_check_over_other_fields_is_refused(client):
    invoice = make("lifepay_v1")
    fields = signed(notification(invoice, version="1.0"), alias="lifepay_v1")
    fields["email"] = "attacker@example.com"
    _refused(client, fields, "lifepay_v1")


def test_signed_over_another_url_is_refused(client):
    fields = signed(
        notification(make()), url="https://evil.example.com/payments/webhooks/lifepay/"
    )
    _refused(client, fields)


def test_a_check_for_another_service_is_refused(client):
    # Signed with the right secret, but for a service_id that is not ours.
    _refused(client, signed(notification(make(), service_id="99999")))


def test_json_body_is_refused(client):
    make()
    response = client.post(
        "/payments/webhooks/lifepay/", data={"a": "b"}, content_type="application/json"
    )
    assert response.status_code == 400
    assert WebhookEvent.objects.count() == 0


def test_get_redirect_is_never_a_payment(client):
    invoice = make()
    fields = signed(notification(invoice))
    assert (
        client.get(f"/payments/webhooks/lifepay/?{urlencode(fields)}").status_code
        == 405
    )
    response = client.get(f"/payments/return/{invoice.uuid}/?{urlencode(fields)}")
    assert response.status_code in (200, 302)
    invoice.refresh_from_db()
    assert invoice.status == InvoiceStatus.CREATED
    assert WebhookEvent.objects.count() == 0


def test_refund_notifications_count_each_refund_once(client):
    invoice = make(amount="100.00")
    post(client, signed(notification(invoice)))
    refund = notification(
        invoice,
        "refund",
        income="30.00",
        result="ok",
        payback_id="5001",
        date_created="2024-01-15 11:00:00",
    )
    assert post(client, signed(refund)).status_code == 200
    assert post(client, signed(refund)).status_code == 200  # a retry
    second = {**refund, "payback_id": "5002", "date_created": "2024-01-15 11:05:00"}
    assert post(client, signed(second)).status_code == 200
    invoice.refresh_from_db()
    assert invoice.refunded_amount == Decimal("60.00")
    assert invoice.status == InvoiceStatus.PARTIALLY_REFUNDED
    assert invoice.payments.filter(kind="refund").count() == 2


@pytest.mark.parametrize(
    ("command", "extra", "expected"),
    [
        ("success", {}, EventType.PAID),
        ("process", {}, EventType.PAID),
        ("process", {"income_total": "10.00", "income": "10.00"}, EventType.PENDING),
        ("cancel", {"resultStr": "Nedostatochno sredstv"}, EventType.FAILED),
        ("refund", {"result": "ok"}, EventType.REFUNDED),
        ("refund", {"result": "fail"}, EventType.INFO),
        ("funds_blocked", {}, EventType.HELD),
        ("recurrent_cancel", {"recurrent_order_id": "1"}, EventType.INFO),
        ("recurrent_expire", {"recurrent_order_id": "1"}, EventType.INFO),
        ("something_new", {}, EventType.INFO),
    ],
)
def test_every_command_maps_to_an_event(command, extra, expected):
    invoice = make()
    event = get_provider("lifepay").event_from_notification(
        notification(invoice, command, **extra)
    )
    assert event.type is expected
    assert event.order_id == invoice.order_id
    assert event.provider_payment_id == "100000001"


def test_declined_payment_keeps_the_reason(client):
    invoice = make()
    post(
        client,
        signed(notification(invoice, "cancel", resultStr="Nedostatochno sredstv")),
    )
    invoice.refresh_from_db()
    assert invoice.status == InvoiceStatus.FAILED
    assert WebhookEvent.objects.get().event["reason"] == "Nedostatochno sredstv"


# --- ECOM: seed tokens and invoice shape -------------------------------------------


def test_seed_tokens_expiry_is_read_from_the_token():
    for entry in fixture("seed_tokens.json").values():
        assert jwt_expiry(entry["token"]) == entry["exp"]


def test_seed_get_response_is_parsed(monkeypatch):
    invoice = make("lifepay_ecom", amount="100")
    answer = fixture("seed_get_response.json")
    Invoice.objects.filter(pk=invoice.pk).update(provider_payment_id=answer["id"])
    invoice.refresh_from_db()
    provider = get_provider("lifepay_ecom")
    monkeypatch.setattr(provider, "_ecom", lambda method, path, **kw: dict(answer))
    assert provider.fetch_status(invoice) is None  # open

    answer["status"] = "success"
    event = provider.fetch_status(invoice)
    assert event.type is EventType.PAID
    assert event.amount == Decimal("100")
    assert event.provider_payment_id == answer["id"]
    assert event.order_id == "my-order-01"


def test_ecom_498_is_an_auth_error_refreshed_once(monkeypatch):
    provider = get_provider("lifepay_ecom")
    calls = []

    class Answer:
        status_code = 498
        content = b'{"status": "invalid_token", "message": "no"}'
        headers: dict[str, str] = {}
        url = "http://testserver/emulator/lifepay/v1/invoices/x"
        request = None

        def json(self):
            return json.loads(self.content)

    def fake(self, method, path, **kwargs):
        calls.append(path)
        if path == "auth":
            answer = Answer()
            answer.status_code = 200
            answer.content = json.dumps(
                {"jwt": fixture("seed_tokens.json")["create"]["token"]}
            ).encode()
            return answer
        return Answer()

    monkeypatch.setattr(HttpClient, "request_raw", fake)
    monkeypatch.setattr(provider.tokens, "clock", lambda: 1680000000.0)
    with pytest.raises(ProviderAuthError, match="freshly issued"):
        provider.get_invoice(str(uuid.uuid4()))
    assert calls.count("auth") == 2
    assert len(calls) == 4


def test_key_is_not_a_secret_but_secret_key_is():
    provider = get_provider("lifepay")
    assert SECRET in provider.secrets()
    assert KEY_V2 not in provider.secrets()
