"""The two audiences' view bases: what every API view shares.

* JSON only, in and out, whatever the request's ``Accept`` says (no browsable
  API: it needs ``rest_framework`` in ``INSTALLED_APPS`` and would answer a
  browser with ``TemplateDoesNotExist``; no 406 either: a browser's
  ``Accept: text/html,...`` gets the JSON).
* The one error shape (:mod:`~django_payments_ru.api.errors`).
* The OpenAPI description (drf-spectacular's ``AutoSchema``, set per view so the
  project's ``REST_FRAMEWORK`` setting is not required to change), tagged with
  the audience (``customer``, ``merchant``).
* Permissions, authentication and throttles read from ``PAYMENTS_RU`` per
  audience at request time; ``throttle_scope`` (``payments_ru_customer``,
  ``payments_ru_merchant``) for DRF's ``ScopedRateThrottle``.
* Never inside the request's transaction (``ATOMIC_REQUESTS``): the services
  call providers, which they refuse inside a transaction.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, ClassVar

from django.db import transaction
from django.utils.decorators import method_decorator
from django.utils.module_loading import import_string
from django.utils.translation import gettext_lazy as _
from drf_spectacular.openapi import AutoSchema
from drf_spectacular.utils import OpenApiResponse
from drf_spectacular.utils import extend_schema as spectacular_extend_schema
from rest_framework.exceptions import ParseError
from rest_framework.negotiation import BaseContentNegotiation, DefaultContentNegotiation
from rest_framework.parsers import JSONParser
from rest_framework.renderers import JSONRenderer
from rest_framework.settings import api_settings
from rest_framework.views import APIView

from ..conf import payments_settings
from .errors import exception_handler


def _classes(setting: str) -> list[Any]:
    paths = getattr(payments_settings, setting)
    if paths is None:
        return []
    return [import_string(p) if isinstance(p, str) else p for p in paths]


class JSONOnly(BaseContentNegotiation):
    """The first renderer (JSON), whatever ``Accept`` asks for: an API that
    speaks one language answers in it rather than with 406."""

    def select_parser(self, request: Any, parsers: Any) -> Any:
        return DefaultContentNegotiation().select_parser(request, parsers)

    def select_renderer(
        self, request: Any, renderers: Any, format_suffix: str | None = None
    ) -> tuple[Any, str]:
        return renderers[0], renderers[0].media_type


class PaymentsAutoSchema(AutoSchema):
    """drf-spectacular's inspector, tagging each operation with its view's
    audience."""

    def get_tags(self) -> list[str]:
        audience = getattr(self.view, "audience", "")
        return [audience] if audience else super().get_tags()

    def _is_list_view(self, serializer: Any = None) -> bool:
        # A list's 200 given as OpenApiResponse (to carry its description) is
        # still a list: its pagination parameters are described.
        if serializer is None:
            serializer = self.get_response_serializers()
        if isinstance(serializer, dict) and serializer:
            by_code = {str(code): value for code, value in serializer.items()}
            serializer = by_code[min(by_code)]
        if isinstance(serializer, OpenApiResponse):
            serializer = serializer.response
        return bool(super()._is_list_view(serializer))


def extend_schema(**kwargs: Any) -> Any:
    """drf-spectacular's ``extend_schema`` for a handler (``get``, ``post``...)
    of these views: the same arguments, built on :class:`PaymentsAutoSchema`.

    drf-spectacular's own decorator builds a method's schema on the project's
    ``REST_FRAMEWORK["DEFAULT_SCHEMA_CLASS"]`` (DRF's inspector unless the
    project uses drf-spectacular), which then fails to generate; this one
    does not depend on that setting."""

    def decorator(f: Any) -> Any:
        if callable(f) and not isinstance(f, type):
            named = dict(getattr(f, "kwargs", None) or {})
            named.setdefault("schema", PaymentsAutoSchema)
            f.kwargs = named
        return spectacular_extend_schema(**kwargs)(f)

    return decorator


class SafeJSONParser(JSONParser):
    """JSON whose nesting is deeper than Python's recursion limit is a 400
    like any other unreadable body (``json`` raises ``RecursionError``, which
    DRF's parser lets through as a 500)."""

    def parse(
        self,
        stream: Any,
        media_type: str | None = None,
        parser_context: Mapping[str, Any] | None = None,
    ) -> Any:
        try:
            return super().parse(stream, media_type, parser_context)
        except RecursionError:
            raise ParseError(_("JSON parse error - nested too deeply.")) from None


# On dispatch, because as_view() copies dispatch's attributes to the view Django
# calls.
non_atomic = method_decorator(transaction.non_atomic_requests, name="dispatch")


@non_atomic
class PaymentsAPIView(APIView):
    """Shared by every endpoint; use one of the two audiences below."""

    #: "customer" or "merchant": which ``PAYMENTS_RU["API_<AUDIENCE>_*"]`` apply.
    audience: ClassVar[str] = ""
    renderer_classes = [JSONRenderer]
    parser_classes = [SafeJSONParser]
    content_negotiation_class = JSONOnly
    schema = PaymentsAutoSchema()

    def _setting(self, kind: str) -> str:
        return f"API_{self.audience.upper()}_{kind}_CLASSES"

    def get_permissions(self) -> list[Any]:
        return [cls() for cls in _classes(self._setting("PERMISSION"))]

    def get_authenticators(self) -> list[Any]:
        setting = self._setting("AUTHENTICATION")
        if getattr(payments_settings, setting) is None:
            # Imported classes at run time (the stubs say strings).
            defaults: list[Any] = list(api_settings.DEFAULT_AUTHENTICATION_CLASSES)
            return [cls() for cls in defaults]
        return [cls() for cls in _classes(setting)]

    def get_throttles(self) -> list[Any]:
        return [cls() for cls in _classes(self._setting("THROTTLE"))]

    def get_exception_handler(self) -> Any:
        return exception_handler

    @property
    def throttle_scope(self) -> str:  # type: ignore[override]
        return f"payments_ru_{self.audience}"


class CustomerAPIView(PaymentsAPIView):
    """An endpoint for the customer's browser, reached with the pay link's token."""

    audience = "customer"


class MerchantAPIView(PaymentsAPIView):
    """An endpoint for the shop's back office: ``required_permissions`` names the
    Django permissions it needs (:class:`~.permissions.MerchantPermissions`)."""

    audience = "merchant"
    required_permissions: ClassVar[list[str]] = ["django_payments_ru.view_invoice"]
