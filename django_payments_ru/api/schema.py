"""The API's OpenAPI 3 schema (drf-spectacular; docs/api.rst).

* ``GET <prefix>/schema/`` serves it for the URL patterns of this API only,
  with its paths where the API is mounted (JSON; YAML with
  ``Accept: application/yaml``), for the settings in force;
* :func:`canonical_schema` is the same schema for the default ``PAYMENTS_RU``
  ``API_*`` settings mounted at ``/payments/api/``, in English: the one checked
  into the docs (``docs/api/openapi.yaml``). Regenerate it with::

      python -m django_payments_ru.api --write docs/api/openapi.yaml

  (``--check`` instead of ``--write`` fails when the file differs).

drf-spectacular's settings come from :func:`spectacular_settings`, every key of
them: the project's ``SPECTACULAR_SETTINGS`` (made for its own API) neither
needs to exist nor changes this schema.
"""

from __future__ import annotations

import argparse
import copy
import difflib
import sys
import threading
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from django.conf import settings as django_settings
from django.http import Http404
from django.urls import include, path
from django.utils import translation
from drf_spectacular import plumbing
from drf_spectacular.drainage import GENERATOR_STATS
from drf_spectacular.generators import SchemaGenerator
from drf_spectacular.renderers import (
    OpenApiJsonRenderer,
    OpenApiJsonRenderer2,
    OpenApiYamlRenderer,
    OpenApiYamlRenderer2,
)
from drf_spectacular.settings import (
    SPECTACULAR_DEFAULTS,
    patched_settings,
)
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse
from rest_framework.exceptions import NotAcceptable
from rest_framework.negotiation import DefaultContentNegotiation
from rest_framework.permissions import AllowAny
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from .. import __version__
from .base import PaymentsAutoSchema, extend_schema, non_atomic
from .errors import exception_handler

#: Where the docs and the checked-in schema mount the API.
DEFAULT_PREFIX = "/payments/api/"
#: The checked-in schema, from the repository's root.
SCHEMA_FILE = "docs/api/openapi.yaml"
REGENERATE = f"python -m django_payments_ru.api --write {SCHEMA_FILE}"

#: OpenAPI links between operations (by operation id), for clients and for
#: stateful testing: ``{source: {status: {name: {"operationId": target,
#: "parameters": {...}, "description": ...}}}}``. A link whose target is not in
#: the schema is left out. See :func:`add_link`.
LINKS: dict[str, dict[str, dict[str, dict[str, Any]]]] = {}


def add_link(
    source: str,
    status: int | str,
    name: str,
    target: str,
    parameters: Mapping[str, str],
    description: str = "",
) -> None:
    """Link ``source``'s ``status`` answer to the operation ``target``,
    ``parameters`` naming runtime expressions (``"$request.path.token"``,
    ``"$response.body#/reference"``)."""
    link: dict[str, Any] = {"operationId": target, "parameters": dict(parameters)}
    if description:
        link["description"] = description
    LINKS.setdefault(source, {}).setdefault(str(status), {})[name] = link


add_link(
    "customer_pay_state",
    200,
    "checkout",
    "customer_pay_checkout",
    {"token": "$request.path.token"},
    "Start paying the same invoice.",
)
add_link(
    "customer_pay_checkout",
    200,
    "state",
    "customer_pay_state",
    {"token": "$request.path.token"},
    "The same invoice's state (after the customer comes back).",
)


def add_links(
    result: dict[str, Any], generator: Any, request: Any, public: bool
) -> dict[str, Any]:
    """drf-spectacular postprocessing hook: :data:`LINKS` into the responses."""
    operations = {
        op.get("operationId"): op
        for item in result.get("paths", {}).values()
        for op in item.values()
        if isinstance(op, dict)
    }
    for source, by_status in LINKS.items():
        operation = operations.get(source)
        if operation is None:
            continue
        for status, links in by_status.items():
            response = operation.get("responses", {}).get(status)
            if response is None:
                continue
            present = {
                name: copy.deepcopy(link)
                for name, link in links.items()
                if link["operationId"] in operations
            }
            if present:
                response.setdefault("links", {}).update(present)
    return result


DESCRIPTION = """\
The JSON API of django-payments-ru, for single-page and mobile checkouts
(the **customer** endpoints, reached with the invoice's pay link token) and
for the shop's back office (the **merchant** endpoints, authenticated).

Every error is one object: `code` (stable, machine-readable), `detail`
(for a person, in the request's language), `field` (the request field it is
about, or null) and `fields` (every field's messages for `invalid_input`).
Amounts are strings with exactly the currency's decimals ("1234.50" RUB,
"1234" JPY, "1.234" BHD).
"""

TAGS = [
    {
        "name": "customer",
        "description": "A checkout page in the customer's browser, reached with "
        "the invoice's pay link token; no login.",
    },
    {
        "name": "merchant",
        "description": "The shop's back office: an authenticated user with the "
        "Django permissions each endpoint names.",
    },
    {"name": "schema", "description": "This description."},
]


def spectacular_settings(prefix: str = DEFAULT_PREFIX) -> dict[str, Any]:
    """Every drf-spectacular setting for this API's schema (the project's
    ``SPECTACULAR_SETTINGS`` are for its own API and left out)."""
    values = {
        key: copy.deepcopy(value)
        for key, value in SPECTACULAR_DEFAULTS.items()
        # Not patchable: they configure drf-spectacular's own views.
        if not key.startswith("SERVE_") and key != "DEFAULT_GENERATOR_CLASS"
    }
    values.update(
        {
            "TITLE": "django-payments-ru API",
            "DESCRIPTION": DESCRIPTION,
            "VERSION": __version__,
            "LICENSE": {"name": "MIT"},
            "TAGS": TAGS,
            "OAS_VERSION": "3.0.3",
            # Request and response bodies described apart (a create's body is
            # not the invoice it answers with).
            "COMPONENT_SPLIT_REQUEST": True,
            "SCHEMA_PATH_PREFIX": "^" + prefix.rstrip("/"),
            "ENUM_NAME_OVERRIDES": {
                "InvoiceStatusEnum": "django_payments_ru.status.InvoiceStatus",
                # Named apart: drf-spectacular names an enum after its field,
                # and an invoice's and a webhook event's are both "status".
                "WebhookEventStatusEnum": (
                    "django_payments_ru.models.WebhookEvent.Status"
                ),
                "EventTypeEnum": "django_payments_ru.events.EventType",
                "PaymentKindEnum": "django_payments_ru.models.Payment.Kind",
                "OperationKindEnum": "django_payments_ru.models.Operation.Kind",
                "OperationStateEnum": "django_payments_ru.models.Operation.State",
                "CheckoutMethodEnum": [("GET", "GET"), ("POST", "POST")],
            },
            "POSTPROCESSING_HOOKS": [
                "drf_spectacular.hooks.postprocess_schema_enums",
                "django_payments_ru.api.schema.add_links",
            ],
        }
    )
    return values


_LOCK = threading.Lock()


def _clear_enum_cache() -> None:
    # drf-spectacular caches ENUM_NAME_OVERRIDES (keyed by language only).
    for name in ("_load_enum_name_overrides", "load_enum_name_overrides"):
        clear = getattr(getattr(plumbing, name, None), "cache_clear", None)
        if clear is not None:
            clear()


@contextmanager
def _our_settings(prefix: str) -> Iterator[None]:
    # drf-spectacular's settings are global: one generation at a time, and
    # its enum-name cache emptied on the way in and out so that neither this
    # schema nor the project's sees the other's names.
    with _LOCK:
        _clear_enum_cache()
        try:
            with patched_settings(spectacular_settings(prefix)):
                yield
        finally:
            _clear_enum_cache()


def api_patterns(prefix: str = DEFAULT_PREFIX) -> list[Any]:
    """This API's URL patterns, mounted at ``prefix``."""
    return [path(prefix.lstrip("/"), include("django_payments_ru.api.urls"))]


def generate_schema(
    prefix: str = DEFAULT_PREFIX,
    request: Any = None,
    patterns: list[Any] | None = None,
) -> dict[str, Any]:
    """The schema of this API mounted at ``prefix``, for the settings in
    force (``patterns``: only these, as they are, e.g. one audience's)."""
    if not prefix.startswith("/"):
        prefix = "/" + prefix
    if not prefix.endswith("/"):
        prefix += "/"
    with _our_settings(prefix):
        generator = SchemaGenerator(
            patterns=api_patterns(prefix) if patterns is None else patterns
        )
        return generator.get_schema(request=request, public=True)


def _without_api_settings(config: Any) -> dict[str, Any]:
    if not isinstance(config, dict):
        return {}
    return {k: v for k, v in config.items() if not str(k).startswith("API_")}


def canonical_schema() -> dict[str, Any]:
    """The schema checked into the docs: the default ``API_*`` settings and
    DRF's defaults, no providers, mounted at :data:`DEFAULT_PREFIX`, in
    English."""
    from django.test import override_settings

    payments = _without_api_settings(getattr(django_settings, "PAYMENTS_RU", {}))
    # No providers: the served schema lists the project's aliases, the docs'
    # says "a string" (the same for every project).
    payments.pop("PROVIDERS", None)
    with (
        override_settings(PAYMENTS_RU=payments, REST_FRAMEWORK={}),
        translation.override("en"),
    ):
        return generate_schema(DEFAULT_PREFIX)


def render_yaml(schema: Mapping[str, Any]) -> str:
    """``schema`` as drf-spectacular writes YAML."""
    return OpenApiYamlRenderer().render(schema, renderer_context={}).decode("utf-8")


def schema_warnings() -> list[str]:
    """What drf-spectacular warned about or failed at since the last reset
    (``GENERATOR_STATS.reset()``)."""
    return [
        *(f"warning: {m}" for m in GENERATOR_STATS._warn_cache),
        *(f"error: {m}" for m in GENERATOR_STATS._error_cache),
    ]


# --- the view -----------------------------------------------------------------------


class JSONUnlessAsked(DefaultContentNegotiation):
    """The renderer ``Accept`` (or ``?format=json|yaml``) asks for, else JSON:
    never a 406 or a 404 for a browser's ``Accept``."""

    def select_renderer(
        self, request: Any, renderers: Any, format_suffix: str | None = None
    ) -> tuple[Any, str]:
        try:
            return super().select_renderer(request, renderers, format_suffix)
        except (NotAcceptable, Http404):
            asked = format_suffix or request.query_params.get("format")
            chosen = next((r for r in renderers if r.format == asked), renderers[0])
            return chosen, chosen.media_type


@non_atomic
class SchemaView(APIView):
    """``GET schema/``: this API's OpenAPI 3 schema (no transaction: it reads
    nothing from the database)."""

    renderer_classes = [
        OpenApiJsonRenderer,
        OpenApiJsonRenderer2,
        OpenApiYamlRenderer,
        OpenApiYamlRenderer2,
    ]
    content_negotiation_class = JSONUnlessAsked
    permission_classes = [AllowAny]
    authentication_classes: list[Any] = []
    throttle_classes: list[Any] = []
    schema = PaymentsAutoSchema()

    def get_exception_handler(self) -> Any:
        return exception_handler

    @extend_schema(
        operation_id="schema",
        summary="This OpenAPI schema",
        description=(
            "The schema of this API, with its paths where it is mounted. JSON by "
            "default; YAML with `Accept: application/yaml` (or "
            "`application/vnd.oai.openapi`, or `?format=yaml`)."
        ),
        tags=["schema"],
        parameters=[
            OpenApiParameter(
                "format",
                str,
                OpenApiParameter.QUERY,
                description=(
                    "`json` or `yaml`, whatever `Accept` says; another value is "
                    "ignored (`Accept` chooses, JSON by default)."
                ),
            )
        ],
        responses={
            200: OpenApiResponse(OpenApiTypes.OBJECT, description="The schema.")
        },
    )
    def get(self, request: Request) -> Response:
        where = request.path_info
        prefix = where[: -len("schema/")] if where.endswith("schema/") else "/"
        return Response(generate_schema(prefix, request))


urlpatterns = [path("schema/", SchemaView.as_view(), name="schema")]


# --- the command --------------------------------------------------------------------


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m django_payments_ru.api",
        description="The API's OpenAPI schema as checked into the docs (YAML).",
    )
    group = parser.add_mutually_exclusive_group()
    group.add_argument("--write", metavar="FILE", help="write it to FILE")
    group.add_argument(
        "--check", metavar="FILE", help="exit 1 when FILE differs from it"
    )
    args = parser.parse_args(argv)
    GENERATOR_STATS.reset()
    text = render_yaml(canonical_schema())
    problems = schema_warnings()
    for problem in problems:
        print(problem, file=sys.stderr)
    if args.write:
        Path(args.write).parent.mkdir(parents=True, exist_ok=True)
        Path(args.write).write_text(text, encoding="utf-8")
    elif args.check:
        file = Path(args.check)
        old = file.read_text(encoding="utf-8") if file.exists() else ""
        if old != text:
            sys.stderr.writelines(
                difflib.unified_diff(
                    old.splitlines(keepends=True),
                    text.splitlines(keepends=True),
                    str(file),
                    "generated",
                )
            )
            print(f"\n{file} is out of date: {REGENERATE}", file=sys.stderr)
            return 1
    else:
        sys.stdout.write(text)
    return 1 if problems else 0
