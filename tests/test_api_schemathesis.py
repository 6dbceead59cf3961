"""Schemathesis against the API's own schema, over a live server: every
operation of the schema (customer's, merchant's, the schema's), with every
check (no 5xx, each answer's status, content type, headers and body as the
schema says, invalid input refused, authentication not ignored...), then
stateful sequences along the schema's links.

The data is real: invoices of every provider (the sandbox in every status,
Life-Pay's A1Lite form, Love&Pay's SBP QR code, the redirects of Life-Pay ECOM,
PayConnect and QuantaPay), whose pay link tokens and references are mixed into the
generated path parameters (by name ``token``, by ``format: uuid``); the
providers reach their emulators on the live server, so a 5xx is never
legitimate. The merchant endpoints are called as a superuser (HTTP Basic).
A new endpoint is covered as soon as it is in the schema.
"""

from __future__ import annotations

import base64
import copy
import socket
import uuid
from collections.abc import Iterator
from typing import Any

import hypothesis
import pytest
import schemathesis
from django.contrib.auth import get_user_model
from hypothesis import HealthCheck
from hypothesis import strategies as st
from schemathesis.core.parameters import ParameterLocation
from schemathesis.generation import GenerationMode

from django_payments_ru import services
from django_payments_ru.api.schema import generate_schema
from django_payments_ru.emulator.models import EmulatedPayment
from django_payments_ru.events import EventType
from django_payments_ru.models import Invoice
from django_payments_ru.paylinks import make_token
from django_payments_ru.providers.payconnect.emulator import (
    emulator as payconnect_emulator,
)
from tests.helpers import event, make_invoice
from tests.providers.lifepay.conftest import emulator_services, provider_options
from tests.providers.loveandpay import cases as loveandpay
from tests.providers.payconnect import cases as payconnect
from tests.providers.quantapay import cases as quantapay

pytestmark = [pytest.mark.live, pytest.mark.django_db(transaction=True)]

#: The schema as the code generates it for the suite's settings (what
#: ``schema/`` serves): one test per operation.
SCHEMA = schemathesis.openapi.from_dict(generate_schema("/payments/api/"))

SETTINGS = hypothesis.settings(
    max_examples=40,
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=list(HealthCheck),
    print_blob=True,
)

USERNAME, PASSWORD = "schemathesis", "schemathesis-pw"
AUTHORIZATION = "Basic " + base64.b64encode(f"{USERNAME}:{PASSWORD}".encode()).decode()

#: Real values of path parameters, filled per test by the ``real_data`` fixture:
#: ``"token"`` (pay link tokens), ``"uuid"`` (invoice references).
REAL: dict[str, list[str]] = {"token": [], "uuid": []}


def _pool(name: str, parameter: dict[str, Any]) -> list[str] | None:
    if name == "token":
        return REAL["token"]
    if parameter.get("format") == "uuid" or name in ("uuid", "reference", "ref"):
        return REAL["uuid"]
    return None


def _path_schemas(case: Any) -> dict[str, dict[str, Any]]:
    raw = SCHEMA.raw_schema["paths"][case.path][case.method.lower()]
    return {
        p["name"]: p.get("schema", {})
        for p in raw.get("parameters", [])
        if p.get("in") == "path"
    }


@SCHEMA.hook
def flatmap_case(context: Any, case: Any) -> Any:
    """Most cases get real path parameters (the others stay as generated:
    unknown tokens and references). Never a case whose path is the invalid
    part: it must stay invalid."""
    meta = case.meta
    if meta is not None:
        path = meta.components.get(ParameterLocation.PATH)
        if path is not None and path.mode is GenerationMode.NEGATIVE:
            return st.just(case)
    pools = {
        name: pool
        for name, parameter in _path_schemas(case).items()
        if (pool := _pool(name, parameter))
    }
    if not pools or not case.path_parameters:
        return st.just(case)

    def real(indexes: dict[str, int]) -> Any:
        params = dict(case.path_parameters)
        for name, index in indexes.items():
            params[name] = pools[name][index % len(pools[name])]
        case.path_parameters = params
        return case

    # Two in three: a real value of each pool.
    indexes = st.fixed_dictionaries({name: st.integers(0, 1000) for name in pools})
    return st.sampled_from((True, True, False)).flatmap(
        lambda use_real: indexes.map(real) if use_real else st.just(case)
    )


def _set_status(invoice: Invoice, *types: EventType) -> Invoice:
    if EventType.PAID in types:
        # Paid at the emulator too, as a customer would have: a refund is then
        # one the provider takes (a 5xx is never legitimate here).
        services.start_payment(invoice)
        invoice.refresh_from_db()
        EmulatedPayment.objects.filter(
            slug="sandbox", external_id=invoice.provider_payment_id
        ).update(status="succeeded")
    for type_ in types:
        amount = invoice.amount if type_ is EventType.REFUNDED else None
        services.apply_event(event(invoice, type_, amount=amount))
    invoice.refresh_from_db()
    return invoice


@pytest.fixture
def real_data(live_payments: Any, settings: Any) -> Iterator[str]:
    """Providers reaching their emulators on the live server, a superuser,
    and invoices in every status; yields the live server's URL."""
    live = live_payments.url
    # Keep-alive calls to the emulators would wait for delayed ACKs (40 ms).
    live_payments.thread.httpd.socket.setsockopt(
        socket.IPPROTO_TCP, socket.TCP_NODELAY, 1
    )
    config = copy.deepcopy(settings.PAYMENTS_RU)
    lifepay = provider_options(live)
    config["PROVIDERS"].update(
        {
            "lifepay": lifepay["lifepay"],
            "lifepay_ecom": lifepay["lifepay_ecom"],
            loveandpay.ALIAS: loveandpay.provider_config(
                api_url=f"{live}/emulator/loveandpay/api/v2"
            ),
            payconnect.ALIAS: payconnect.provider_config(
                api_url=f"{live}/emulator/payconnect/v1/"
            ),
            quantapay.ALIAS: quantapay.provider_config(
                api_url=f"{live}{quantapay.API_PATH}"
            ),
        }
    )
    # HTTP Basic first: a request without credentials is a 401 (with the
    # session first, DRF answers 403), which schemathesis's auth check expects.
    config["API_MERCHANT_AUTHENTICATION_CLASSES"] = [
        "rest_framework.authentication.BasicAuthentication",
        "rest_framework.authentication.SessionAuthentication",
    ]
    settings.PAYMENTS_RU = config
    emulated = copy.deepcopy(settings.PAYMENTS_RU_EMULATOR)
    emulated["lifepay"] = {"services": emulator_services(live)}
    emulated[loveandpay.ALIAS] = loveandpay.emulator_config()
    emulated[payconnect.ALIAS] = {"secret_keys": [payconnect.SECRET]}
    emulated[quantapay.ALIAS] = quantapay.emulator_config()
    settings.PAYMENTS_RU_EMULATOR = emulated
    settings.CACHES = loveandpay.fresh_caches()
    payconnect_emulator.reset()
    get_user_model().objects.create_superuser(USERNAME, "st@example.com", PASSWORD)

    def other(alias: str, amount: str = "340.00") -> Invoice:
        return services.create_invoice(
            provider=alias,
            amount=amount,
            order_id=f"st-{alias}",
            customer_email="buyer@example.com",
        )

    invoices = [
        make_invoice("1500.00", description="Tea", customer_email="a@example.com"),
        make_invoice("99.90", receipt=[_line("99.90")]),
        # A form to post (A1Lite), an SBP QR code (Love&Pay), redirects.
        *(other(alias) for alias in ("lifepay", "lifepay_ecom", loveandpay.ALIAS)),
        *(other(alias) for alias in (payconnect.ALIAS, quantapay.ALIAS)),
    ]
    started = make_invoice("250.00")
    services.start_payment(started)
    invoices.append(started)
    for types in (
        (EventType.PAID,),
        (EventType.PAID, EventType.REFUNDED),
        (EventType.HELD,),
        (EventType.FAILED,),
        (EventType.EXPIRED,),
        (EventType.CANCELLED,),
    ):
        invoices.append(_set_status(make_invoice("120.00"), *types))
    REAL["token"][:] = [make_token(i) for i in invoices]
    REAL["uuid"][:] = [str(i.uuid) for i in invoices]
    try:
        yield live
    finally:
        for pool in REAL.values():
            pool.clear()


def _line(amount: str) -> dict[str, str]:
    return {
        "name": "Tea",
        "quantity": "1",
        "price": amount,
        "amount": amount,
        "vat": "vat20",
    }


@SCHEMA.auth()
class SuperuserBasic:
    """The merchant's credentials, as schemathesis' own auth: it then also
    sends each request without them and with wrong ones, and expects a 401 or
    403 wherever the schema requires authentication."""

    def get(self, case: Any, context: Any) -> str:
        return AUTHORIZATION

    def set(self, case: Any, data: str, context: Any) -> None:
        case.headers = {**(case.headers or {}), "Authorization": data}


#: Operations whose answer to a schema-valid request depends on what the schema
#: cannot say (the invoice's state, the provider's capabilities, an earlier
#: request with the same Idempotency-Key): a 400 ``not_supported`` or a 422 is
#: right there, so the check that schema-valid data is accepted is left out.
STATEFUL_OPERATIONS = {
    "POST /payments/api/invoices/",
    "POST /payments/api/invoices/{ref}/refund/",
    "POST /payments/api/invoices/{ref}/cancel/",
    "POST /payments/api/invoices/{ref}/capture/",
    "POST /payments/api/invoices/{ref}/release/",
}


def _excluded(case: Any) -> list[Any]:
    if case.operation.label in STATEFUL_OPERATIONS:
        return [schemathesis.checks.positive_data_acceptance]
    return []


@SCHEMA.parametrize()
@SETTINGS
def test_every_operation(case: Any, real_data: str) -> None:
    case.call_and_validate(
        base_url=real_data, timeout=30, excluded_checks=_excluded(case)
    )


def test_the_real_data_is_used(real_data: str) -> None:
    """The cases above reach real invoices: a real token is drawn often."""
    seen: set[str] = set()
    token_op = SCHEMA["/payments/api/pay/{token}/"]["GET"]
    strategy = token_op.as_strategy()

    @hypothesis.settings(SETTINGS, max_examples=40)
    @hypothesis.given(strategy)
    def draw(case: Any) -> None:
        seen.add(case.path_parameters["token"])

    draw()
    assert seen & set(REAL["token"]), seen


def _needs_only_path(operation: Any) -> list[str] | None:
    """The path parameters of ``operation`` when they are all it needs (no
    required body, query or header) and each has real values; else None."""
    raw = operation.definition.raw
    body = raw.get("requestBody")
    if body and body.get("required"):
        return None
    names = []
    for parameter in raw.get("parameters", []):
        if parameter.get("in") == "path":
            if not _pool(parameter["name"], parameter.get("schema", {})):
                return None
            names.append(parameter["name"])
        elif parameter.get("required"):
            return None
    return names or None


def test_every_real_invoice_through_each_operation(real_data: str) -> None:
    """Deterministically, besides the random draws: every invoice (each
    provider's checkout shape, every status) through each operation that
    needs only its path, every answer checked against the schema."""
    statuses: dict[str, set[int]] = {}
    # Reads first, then the customer's checkout: another operation (a
    # merchant's cancel) may leave no invoice to pay.
    ordered = sorted(
        (result.ok() for result in SCHEMA.get_all_operations()),
        key=lambda op: (op.method.upper() != "GET", "customer" not in op.tags),
    )
    for operation in ordered:
        names = _needs_only_path(operation)
        if names is None:
            continue
        pools = {n: _pool(n, {}) or REAL["uuid"] for n in names}
        for index in range(max(len(p) for p in pools.values())):
            params = {n: pool[index % len(pool)] for n, pool in pools.items()}
            case = operation.Case(path_parameters=params)
            response = case.call_and_validate(
                base_url=real_data,
                headers={"Authorization": AUTHORIZATION},
                timeout=30,
            )
            statuses.setdefault(operation.label, set()).add(response.status_code)
    assert statuses["GET /payments/api/pay/{token}/"] == {200}
    assert statuses["POST /payments/api/pay/{token}/checkout/"] == {200, 409}


class APIStateMachine(SCHEMA.as_state_machine()):
    base_url = ""

    def get_call_kwargs(self, case: Any) -> dict[str, Any]:
        return {
            "base_url": self.base_url,
            "headers": {"Authorization": AUTHORIZATION},
            "timeout": 30,
        }


def test_stateful(real_data: str) -> None:
    """Sequences along the schema's links (state -> checkout -> state; the
    merchant's create -> retrieve...)."""
    APIStateMachine.base_url = real_data
    APIStateMachine.run(
        settings=hypothesis.settings(SETTINGS, max_examples=25, stateful_step_count=6)
    )


def test_unknown_references_are_not_found(client: Any, real_data: str) -> None:
    # What most generated cases meet: an unknown reference in the error shape.
    response = client.get(f"/payments/api/pay/{uuid.uuid4().hex}:x/")
    assert response.status_code == 404
    assert response.json()["code"] == "not_found"
