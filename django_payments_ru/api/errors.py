"""One error shape for every answer of the API that is not a success.

Every error is a JSON object::

    {"code": "invalid_amount", "detail": "…", "field": "amount", "fields": {}}

* ``code``: a stable machine-readable code: the library's own
  (:attr:`PaymentsError.code <django_payments_ru.exceptions.PaymentsError.code>`:
  ``invalid_amount``, ``invalid_operation``, ``operation_in_flight``,
  ``provider_unavailable``...) or one of DRF's (``not_found``,
  ``not_authenticated``, ``permission_denied``, ``throttled``, ``parse_error``,
  ``method_not_allowed``, ``unsupported_media_type``, ``not_acceptable``);
  ``invalid_input`` for a request body that does not validate;
* ``detail``: what happened, in the request's language, for a person;
* ``field``: the request field the error is about, or ``null``;
* ``fields``: for ``invalid_input``, every field's messages
  (``{"amount": ["…"], "receipt.lines[1].price": ["…"]}``), else ``{}``.

HTTP statuses: 400 bad input or an operation the provider does not support,
401/403 authentication and permissions, 404 unknown, 405 another method, 409
an operation the invoice's state refuses (or one already in flight), 429
throttled, 502 the provider refused or answered nonsense, 503 the provider
cannot be reached (docs/api.rst lists the codes).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

from django.core.exceptions import PermissionDenied
from django.http import Http404, HttpRequest, HttpResponse, JsonResponse
from django.utils.translation import gettext as _
from rest_framework import exceptions as drf
from rest_framework import serializers, status
from rest_framework.response import Response

from ..exceptions import (
    InvalidInput,
    InvalidOperation,
    NotSupported,
    PaymentsError,
    ProviderError,
    ProviderRateLimited,
    ProviderUnavailable,
)


def error_body(
    code: str,
    detail: str,
    field: str | None = None,
    fields: dict[str, list[str]] | None = None,
) -> dict[str, Any]:
    """The error object every non-2xx answer carries (module docstring)."""
    return {"code": code, "detail": detail, "field": field, "fields": fields or {}}


def error_response(
    status_code: int,
    code: str,
    detail: str,
    *,
    field: str | None = None,
    headers: Mapping[str, str] | None = None,
) -> Response:
    """A response carrying the error object."""
    return Response(
        error_body(code, detail, field), status=status_code, headers=dict(headers or {})
    )


def not_found(request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
    """The API's 404 for a URL none of its patterns matches."""
    return JsonResponse(error_body("not_found", _("No such API endpoint.")), status=404)


def payments_status(exc: PaymentsError) -> int:
    """The HTTP status of a library error."""
    if isinstance(exc, InvalidOperation):
        return status.HTTP_409_CONFLICT
    if isinstance(exc, InvalidInput | NotSupported):
        return status.HTTP_400_BAD_REQUEST
    if isinstance(exc, ProviderUnavailable | ProviderRateLimited):
        return status.HTTP_503_SERVICE_UNAVAILABLE
    if isinstance(exc, ProviderError):
        return status.HTTP_502_BAD_GATEWAY
    return status.HTTP_400_BAD_REQUEST


def request_field(exc: PaymentsError) -> str | None:
    """The request field a library error is about, as the API names it
    (``"amount"``, ``"receipt.lines[1].amount"``: lines counted from 0, as in
    ``fields`` of a validation error), or None."""
    if exc.code == "receipts_not_supported":
        return "receipt"
    field = getattr(exc, "field", "") or ""
    if not field:
        named = exc.details.get("field") if isinstance(exc.details, dict) else None
        field = named if isinstance(named, str) else ""
    if field != "receipt":
        return field or None
    details = exc.details if isinstance(exc.details, dict) else {}
    line, inner = details.get("line"), details.get("field")
    if isinstance(line, int) and line >= 1 and isinstance(inner, str) and inner:
        # receipts.py counts lines from 1 for people.
        return f"receipt.lines[{line - 1}].{inner}"
    if isinstance(inner, str) and inner and inner != "receipt":
        return f"receipt.{inner}"
    return "receipt"


def printable(text: str) -> str:
    """``text`` as UTF-8 can carry it: an error may quote what it refuses (a
    receipt line's unknown key), and a lone surrogate from the request's JSON
    cannot be encoded (it is shown escaped, ``\\ud800``)."""
    return text.encode("utf-8", "backslashreplace").decode("utf-8")


def payments_error_response(exc: PaymentsError) -> Response:
    """The answer to a library error raised by a service: its code (a provider
    error's class code: its ``code`` is the provider's own), the request field
    it is about, ``Retry-After`` when the provider asked to slow down."""
    field = request_field(exc)
    field = printable(field) if field else None
    message = printable(exc.message.strip() or str(exc))
    fields = {field: [message]} if field and isinstance(exc, InvalidInput) else {}
    code = exc.default_code if isinstance(exc, ProviderError) else exc.code
    headers: dict[str, str] = {}
    retry_after = getattr(exc, "retry_after", None)
    if isinstance(retry_after, int | float) and 0 <= retry_after < math.inf:
        headers["Retry-After"] = str(math.ceil(retry_after))
    return Response(
        error_body(code, message, field, fields),
        status=payments_status(exc),
        headers=headers,
    )


def _flatten(detail: Any, prefix: str = "") -> dict[str, list[str]]:
    """DRF's nested validation errors as ``{"a.b[0].c": ["message", ...]}``."""
    out: dict[str, list[str]] = {}
    if isinstance(detail, dict):
        for key, value in detail.items():
            name = key if key != "non_field_errors" else ""
            path = f"{prefix}.{name}" if prefix and name else (name or prefix)
            for k, v in _flatten(value, path).items():
                out.setdefault(k, []).extend(v)
    elif isinstance(detail, list):
        if all(not isinstance(item, dict | list) for item in detail):
            out[prefix] = [str(item) for item in detail]
        else:
            for index, item in enumerate(detail):
                for k, v in _flatten(item, f"{prefix}[{index}]").items():
                    out.setdefault(k, []).extend(v)
    else:
        out[prefix] = [str(detail)]
    return out


def exception_handler(exc: Exception, context: dict[str, Any]) -> Response | None:
    """DRF's ``EXCEPTION_HANDLER`` for the app's views (set on each view, so the
    project's ``REST_FRAMEWORK`` setting is not touched): every error in the
    one shape. Anything else is a bug and propagates (Django's 500)."""
    if isinstance(exc, PaymentsError):
        return payments_error_response(exc)
    if isinstance(exc, Http404):
        exc = drf.NotFound()
    elif isinstance(exc, PermissionDenied):
        exc = drf.PermissionDenied()
    if not isinstance(exc, drf.APIException):
        return None
    headers: dict[str, str] = {}
    if getattr(exc, "auth_header", None):
        headers["WWW-Authenticate"] = exc.auth_header  # type: ignore[attr-defined]
    if getattr(exc, "wait", None) is not None:
        headers["Retry-After"] = str(int(exc.wait))  # type: ignore[attr-defined]
    if isinstance(exc, drf.ValidationError):
        fields = _flatten(exc.detail)
        field = next(iter(fields)) if len(fields) == 1 else None
        first = next(iter(fields.values()), [_("The request is not valid.")])
        body = error_body(
            "invalid_input",
            first[0] if field is not None else _("The request is not valid."),
            field or None,
            fields,
        )
        return Response(body, status=exc.status_code, headers=headers)
    code = exc.default_code if isinstance(exc.default_code, str) else "error"
    codes = exc.get_codes()
    if isinstance(codes, str):
        code = codes
    return Response(
        error_body(code, str(exc.detail)), status=exc.status_code, headers=headers
    )


class ErrorSerializer(serializers.Serializer):
    """The error object of every answer that is not a success."""

    code = serializers.CharField(help_text="A stable machine-readable code.")
    detail = serializers.CharField(help_text="What happened, for a person.")
    field = serializers.CharField(
        allow_null=True, help_text="The request field the error is about."
    )
    # Declared fields leave the class (DRF's metaclass): this one does not
    # shadow Serializer.fields.
    fields = serializers.DictField(  # type: ignore[assignment]
        child=serializers.ListField(child=serializers.CharField()),
        help_text="For invalid_input: every field's messages.",
    )


#: What each error status means, for the schema's descriptions.
ERROR_MEANINGS: dict[int, str] = {
    400: "The request is not valid, or the provider does not support it.",
    401: "Not authenticated.",
    403: "Not allowed.",
    404: "No such invoice.",
    405: "Another method than the endpoint's (`Allow` names them).",
    409: "The invoice's state does not allow it, or an operation is in flight.",
    415: "The body is not JSON (`Content-Type: application/json`).",
    422: "The Idempotency-Key was used with another request body.",
    429: "Throttled: retry after `Retry-After` seconds.",
    502: "The provider refused the request or answered nonsense.",
    503: "The provider cannot be reached or asks to slow down: retry later "
    "(after `Retry-After` seconds when given).",
}


#: The codes each error status carries (the library's and DRF's), for the
#: schema's descriptions; an endpoint may name fewer.
ERROR_CODES: dict[int, tuple[str, ...]] = {
    400: (
        "invalid_input",
        "invalid_amount",
        "invalid_currency",
        "not_supported",
        "receipts_not_supported",
        "parse_error",
    ),
    401: ("not_authenticated", "authentication_failed"),
    403: ("permission_denied",),
    404: ("not_found", "invalid_cursor"),
    405: ("method_not_allowed",),
    409: ("invalid_operation", "operation_in_flight", "unknown_provider"),
    415: ("unsupported_media_type",),
    422: ("idempotency_key_reused",),
    429: ("throttled",),
    502: ("provider_error", "api_error", "authentication_failed", "bad_response"),
    503: ("provider_unavailable", "rate_limited"),
}

#: The statuses that may carry ``Retry-After`` (seconds).
RETRY_AFTER_STATUSES = (429, 503)


def error_responses(
    *statuses: int, codes: Mapping[int, Sequence[str]] | None = None
) -> dict[int, Any]:
    """``responses=`` entries of ``extend_schema`` for these error statuses, each
    the :class:`ErrorSerializer` with its meaning and its possible ``code``
    values (:data:`ERROR_CODES`, or ``codes[status]`` when given)."""
    from drf_spectacular.utils import OpenApiResponse

    named = dict(codes or {})
    out: dict[int, Any] = {}
    for status_code in statuses:
        listed = named.get(status_code, ERROR_CODES.get(status_code, ()))
        description = ERROR_MEANINGS[status_code]
        if listed:
            description += " Codes: " + ", ".join(f"`{c}`" for c in listed) + "."
        out[status_code] = OpenApiResponse(ErrorSerializer, description=description)
    return out


def retry_after_header(*statuses: int) -> Any:
    """The ``Retry-After`` response header of ``statuses`` (default: 429 and
    503), for ``extend_schema(parameters=[...])``."""
    from drf_spectacular.utils import OpenApiParameter

    return OpenApiParameter(
        "Retry-After",
        int,
        OpenApiParameter.HEADER,
        description="Seconds to wait before trying again.",
        response=list(statuses or RETRY_AFTER_STATUSES),
    )
