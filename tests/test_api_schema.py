"""The API's OpenAPI schema (django_payments_ru.api.schema): generated without
a warning, served where the API is mounted, independent of the project's
drf-spectacular settings, and the same as the copy checked into the docs."""

from __future__ import annotations

import difflib
import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from django.conf import settings
from django.test import override_settings
from django.urls import include, path
from django.utils import translation
from drf_spectacular.drainage import GENERATOR_STATS
from drf_spectacular.settings import spectacular_settings

from django_payments_ru import __version__
from django_payments_ru.api import schema as api_schema
from django_payments_ru.api.errors import ERROR_CODES
from django_payments_ru.api.schema import (
    DEFAULT_PREFIX,
    REGENERATE,
    SCHEMA_FILE,
    canonical_schema,
    generate_schema,
    render_yaml,
    schema_warnings,
)
from tests.contracts.docs import list_table, plain, read

ROOT = Path(__file__).resolve().parent.parent
METHODS = {"get", "put", "post", "delete", "options", "head", "patch", "trace"}
TAGS = {"customer", "merchant", "schema"}

# For the test of a mount elsewhere (ROOT_URLCONF = this module).
urlpatterns = [path("elsewhere/api/", include("django_payments_ru.api.urls"))]


def operations(schema: dict[str, Any]) -> Iterator[tuple[str, str, dict[str, Any]]]:
    for where, item in schema["paths"].items():
        for method, operation in item.items():
            if method in METHODS:
                yield where, method, operation


@pytest.fixture(scope="module")
def canonical() -> dict[str, Any]:
    return canonical_schema()


def test_the_schema_generates_without_a_warning():
    GENERATOR_STATS.reset()
    canonical_schema()
    generate_schema("/payments/api/")
    assert schema_warnings() == []


def test_the_checked_in_schema_is_the_codes(canonical):
    file = ROOT / SCHEMA_FILE
    checked_in = file.read_text(encoding="utf-8") if file.exists() else ""
    generated = render_yaml(canonical)
    if checked_in != generated:
        diff = "".join(
            difflib.unified_diff(
                checked_in.splitlines(keepends=True),
                generated.splitlines(keepends=True),
                SCHEMA_FILE,
                "generated",
                n=1,
            )
        )
        pytest.fail(
            f"{SCHEMA_FILE} is out of date; regenerate it with:\n\n"
            f"    {REGENERATE}\n\n{diff[:4000]}"
        )


def test_the_command_needs_no_project():
    """``python -m django_payments_ru.api`` runs without a settings module
    and writes what the suite's settings generate."""
    env = {k: v for k, v in os.environ.items() if k != "DJANGO_SETTINGS_MODULE"}
    done = subprocess.run(
        [sys.executable, "-m", "django_payments_ru.api", "--check", SCHEMA_FILE],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr


def test_the_command_writes_and_checks(tmp_path, capsys):
    target = tmp_path / "api" / "openapi.yaml"
    assert api_schema.main(["--write", str(target)]) == 0
    assert target.read_text(encoding="utf-8") == render_yaml(canonical_schema())
    assert api_schema.main(["--check", str(target)]) == 0

    target.write_text(
        target.read_text(encoding="utf-8").replace(__version__, "9.9.9"), "utf-8"
    )
    assert api_schema.main(["--check", str(target)]) == 1
    err = capsys.readouterr().err
    assert "-  version: 9.9.9" in err and f"+  version: {__version__}" in err
    assert REGENERATE in err


def test_the_schema_describes_this_api(canonical):
    info = canonical["info"]
    assert info["title"] == "django-payments-ru API"
    assert info["version"] == __version__
    assert canonical["openapi"] == "3.0.3"
    ids = {op["operationId"]: (m, p) for p, m, op in operations(canonical)}
    assert ids["customer_pay_state"] == ("get", "/payments/api/pay/{token}/")
    assert ids["customer_pay_checkout"] == (
        "post",
        "/payments/api/pay/{token}/checkout/",
    )
    assert ids["schema"] == ("get", "/payments/api/schema/")
    # Nothing else of the project (the admin, the pay link, the emulators).
    assert all(p.startswith("/payments/api/") for p in canonical["paths"])


def test_every_operation_is_described(canonical):
    """Of every operation, customer's and merchant's: an id, a summary, a
    description, its audience's tag; every parameter described; every answer
    described, every error the error object."""
    seen = []
    for where, method, op in operations(canonical):
        name = f"{method.upper()} {where}"
        seen.append(op["operationId"])
        assert op.get("summary") and op.get("description"), name
        assert len(op["tags"]) == 1 and op["tags"][0] in TAGS, name
        for parameter in op.get("parameters", []):
            assert parameter.get("description"), (name, parameter["name"])
        for status, response in op["responses"].items():
            assert response.get("description"), (name, status)
            if int(status) >= 400:
                assert response["content"] == {
                    "application/json": {
                        "schema": {"$ref": "#/components/schemas/Error"}
                    }
                }, (name, status)
        responses = op["responses"]
        if op["tags"] != ["schema"]:
            # Every audience has its throttle hook.
            assert "429" in responses, name
            assert "Retry-After" in responses["429"]["headers"], name
        if "{" in where:
            assert "404" in responses, name
        if op["tags"] == ["merchant"]:
            assert {"401", "403"} <= set(responses), name
    assert len(seen) == len(set(seen))


def test_the_error_object(canonical):
    error = canonical["components"]["schemas"]["Error"]
    assert set(error["required"]) == {"code", "detail", "field", "fields"}
    assert error["properties"]["field"]["nullable"] is True


def test_the_customer_answers_name_nothing_private(canonical):
    components = canonical["components"]["schemas"]
    for name in ("PayState", "Checkout"):
        properties = set(components[name]["properties"])
        for private in ("customer_email", "customer_phone", "metadata", "email"):
            assert private not in properties, (name, private)
        assert not {p for p in properties if "payment_id" in p or p == "provider"}


def test_amounts_are_strings(canonical):
    state = canonical["components"]["schemas"]["PayState"]["properties"]
    assert state["amount"]["type"] == "string"
    assert state["amount"]["pattern"] == r"^-?[0-9]+(\.[0-9]+)?$"


def test_the_customer_operations_are_linked(canonical):
    by_id = {op["operationId"]: op for _, _, op in operations(canonical)}
    links = by_id["customer_pay_state"]["responses"]["200"]["links"]
    assert links["checkout"]["operationId"] == "customer_pay_checkout"
    assert links["checkout"]["parameters"] == {"token": "$request.path.token"}
    back = by_id["customer_pay_checkout"]["responses"]["200"]["links"]
    assert back["state"]["operationId"] == "customer_pay_state"


def test_a_link_to_an_operation_not_in_the_schema_is_left_out(monkeypatch):
    monkeypatch.setattr(api_schema, "LINKS", {})
    api_schema.add_link("customer_pay_state", 200, "gone", "no_such_op", {})
    api_schema.add_link("customer_pay_state", 404, "none", "schema", {})
    by_id = {op["operationId"]: op for _, _, op in operations(canonical_schema())}
    assert "links" not in by_id["customer_pay_state"]["responses"]["200"]
    assert by_id["customer_pay_state"]["responses"]["404"]["links"] == {
        "none": {"operationId": "schema", "parameters": {}}
    }


# --- served -------------------------------------------------------------------------


@pytest.fixture(scope="module")
def served_expected() -> dict:
    """What the suite's project serves: the checked-in schema, but for the
    providers it configures (the docs' schema names none)."""
    with translation.override("en"):
        return json.loads(json.dumps(generate_schema(DEFAULT_PREFIX)))


def test_only_the_served_schema_names_the_projects_providers(
    canonical, served_expected
):
    def provider(schema: dict) -> dict:
        create = schema["components"]["schemas"]["MerchantInvoiceCreateRequest"]
        return create["properties"]["provider"]

    assert "ProviderEnum" not in canonical["components"]["schemas"]
    assert provider(canonical)["type"] == "string"
    enum = served_expected["components"]["schemas"]["ProviderEnum"]["enum"]
    assert set(enum) == set(settings.PAYMENTS_RU["PROVIDERS"])


@pytest.mark.django_db
def test_the_schema_is_served_as_json_by_default(client, served_expected):
    response = client.get(
        "/payments/api/schema/",
        HTTP_ACCEPT="text/html,application/xhtml+xml,*/*;q=0.8",
    )
    assert response.status_code == 200
    assert response["Content-Type"].startswith("application/vnd.oai.openapi+json")
    assert json.loads(response.content) == served_expected
    strict = client.get("/payments/api/schema/", HTTP_ACCEPT="text/html")
    assert strict.status_code == 200 and json.loads(strict.content)
    # An unknown format is ignored, as the schema says.
    other = client.get("/payments/api/schema/?format=nonsense")
    assert other.status_code == 200 and json.loads(other.content)


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("accept", "query"),
    [
        ("application/yaml", ""),
        ("application/vnd.oai.openapi", ""),
        ("", "?format=yaml"),
    ],
)
def test_the_schema_is_served_as_yaml_when_asked(
    client, served_expected, accept, query
):
    response = client.get(f"/payments/api/schema/{query}", HTTP_ACCEPT=accept)
    assert response.status_code == 200
    assert "yaml" in response["Content-Type"] or "openapi;" in (
        response["Content-Type"] + ";"
    )
    assert yaml.safe_load(response.content) == served_expected


@pytest.mark.django_db
@override_settings(ROOT_URLCONF=__name__)
def test_the_served_schema_has_the_paths_where_the_api_is_mounted(client):
    response = client.get("/elsewhere/api/schema/")
    assert response.status_code == 200
    paths = json.loads(response.content)["paths"]
    assert "/elsewhere/api/pay/{token}/" in paths
    assert all(p.startswith("/elsewhere/api/") for p in paths)


@pytest.mark.django_db
def test_the_served_schema_follows_the_settings(client, settings):
    settings.PAYMENTS_RU = dict(
        settings.PAYMENTS_RU,
        API_CUSTOMER_AUTHENTICATION_CLASSES=[
            "rest_framework.authentication.BasicAuthentication"
        ],
    )
    served = json.loads(client.get("/payments/api/schema/").content)
    by_id = {op["operationId"]: op for _, _, op in operations(served)}
    assert {"basicAuth": []} in by_id["customer_pay_state"]["security"]
    # The checked-in schema stays the defaults'.
    by_id = {op["operationId"]: op for _, _, op in operations(canonical_schema())}
    assert by_id["customer_pay_state"]["security"] == [{}]


# --- the project's drf-spectacular settings -------------------------------------------


@pytest.fixture
def project_spectacular(monkeypatch):
    """Make ``values`` the project's ``SPECTACULAR_SETTINGS`` for the test."""

    def forget() -> None:
        for attr in list(spectacular_settings._cached_attrs):
            if attr in spectacular_settings.__dict__:
                delattr(spectacular_settings, attr)
        spectacular_settings._cached_attrs.clear()

    def use(values: dict[str, Any]) -> None:
        forget()
        monkeypatch.setattr(spectacular_settings, "_user_settings", values)

    yield use
    monkeypatch.undo()
    forget()


def test_the_projects_spectacular_settings_change_nothing(
    canonical, project_spectacular
):
    project_spectacular(
        {
            "TITLE": "The shop's own API",
            "VERSION": "7.0",
            "COMPONENT_SPLIT_REQUEST": False,
            "SCHEMA_PATH_PREFIX": "/shop",
            "POSTPROCESSING_HOOKS": [],
            "SORT_OPERATIONS": False,
            "CAMELIZE_NAMES": True,
            "ENUM_NAME_OVERRIDES": {"ShopStatus": ["created", "paid"]},
        }
    )
    GENERATOR_STATS.reset()

    assert canonical_schema() == canonical
    assert schema_warnings() == []
    # ...and the project's settings are its own again.
    assert spectacular_settings.TITLE == "The shop's own API"
    assert spectacular_settings.POSTPROCESSING_HOOKS == []


def test_no_spectacular_settings_are_needed(canonical, project_spectacular):
    project_spectacular({})
    assert canonical_schema() == canonical


def test_the_docs_list_every_error_code():
    rows = list_table(read("api.rst"), ".. _api-error-codes:")
    documented = {
        int(plain(row[0])): tuple(plain(c) for c in row[1].split(","))
        for row in rows[1:]
    }
    assert documented == ERROR_CODES
