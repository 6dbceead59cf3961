"""Reading webhook bodies that are signed but not necessarily sane.

A valid signature says who sent a body, not that the database, the money code
or the Python runtime can hold what it carries. Every provider reads its webhook
body through :func:`load_json` or :func:`load_form` and wraps its parsing in
:func:`webhook_parsing`, so that whatever a body holds ends as a
:class:`~django_payments_ru.exceptions.WebhookParseError` (HTTP 400, nothing
written) and never as a 500 that makes the provider deliver it again for ever:

* bytes that are not UTF-8 (:rfc:`8259` section 8.1 asks for UTF-8, and so do
  form posts);
* ``NaN``, ``Infinity``, ``-Infinity`` and numbers that overflow to them
  (``1e400``): not JSON, and PostgreSQL's ``jsonb`` refuses them;
* nesting deeper than :data:`MAX_DEPTH`: Python's parser would raise
  :class:`RecursionError`, and no provider nests that deep;
* integers longer than :data:`MAX_INT_DIGITS` digits: no amount or id is, and
  Python refuses to convert very long ones anyway;
* text holding NUL, another C0 control character than tab, line feed and
  carriage return, or a lone UTF-16 surrogate (``"\\ud800"``): PostgreSQL
  stores no NUL in ``text`` or ``jsonb``, and a lone surrogate cannot be
  encoded as UTF-8 at all.

The same rules are applied to every normalized event and to the payload stored
with it (:func:`django_payments_ru.events.check_event`,
:func:`check_json_value`), so a provider that reads its body some other way is
held to them too.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from contextvars import ContextVar
from itertools import accumulate
from typing import Any, Final, NoReturn
from urllib.parse import parse_qsl

from django.conf import settings
from django.core.exceptions import ValidationError
from django.utils.functional import Promise
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy

from ..exceptions import (
    PaymentsError,
    ProviderRateLimited,
    ProviderUnavailable,
    WebhookError,
    WebhookParseError,
    WebhookVerificationError,
)

#: Deepest nesting of objects and arrays accepted in a webhook body.
MAX_DEPTH: Final = 32
#: Most digits accepted in a JSON integer (amounts in minor units and numeric
#: ids have at most 20).
MAX_INT_DIGITS: Final = 32

#: Characters no stored text may hold: NUL and the other C0 controls except
#: tab, line feed and carriage return, and lone surrogates.
UNSAFE_TEXT: Final = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ud800-\udfff]")

#: What the webhook view and :func:`webhook_parsing` treat as "the body cannot
#: be understood": the errors hostile input raises in parsing code. A failed
#: call to the provider (:class:`ProviderUnavailable`, :class:`ProviderRateLimited`)
#: is not among them: it is worth the provider's next delivery.
MALFORMED: Final = (
    PaymentsError,
    ValidationError,
    ValueError,  # also UnicodeError, json.JSONDecodeError
    TypeError,
    LookupError,  # KeyError, IndexError
    AttributeError,
    ArithmeticError,  # OverflowError, decimal.InvalidOperation
    RecursionError,
)
_TRANSIENT: Final = (ProviderUnavailable, ProviderRateLimited)

# A JSON string (escapes included), or an unterminated one up to the end of the
# text: possessive, and always matching from its opening quote, so the scan is
# linear however the quotes and backslashes are arranged.
_JSON_STRING = re.compile(r'"[^"\\]*+(?:\\.[^"\\]*+)*+(?:"|\\?\Z)', re.DOTALL)
_BRACKETS = re.compile(r"[\[\]{}]")
_DEPTH_STEP = {"[": 1, "{": 1, "]": -1, "}": -1}
_INT_CEILING: Final = 10**MAX_INT_DIGITS
#: In a JSON text, an escape that may decode to an unsafe character: ``\b``,
#: ``\f``, ``\u0000`` to ``\u001f``, a surrogate. It over-matches (an escaped
#: backslash before a ``b``): a match only means that the decoded value is
#: walked (:func:`check_json_value`).
_UNSAFE_ESCAPE = re.compile(r"\\(?:[bf]|u00[01]|u[dD][89a-fA-F])")
#: The value :func:`load_json` returned last in this context, known to be safe:
#: :func:`check_json_value` does not walk it again (the event whose raw
#: payload is the body, :func:`~django_payments_ru.events.check_event`).
_SAFE: ContextVar[Any] = ContextVar("payments_ru_safe_json", default=None)


def _refuse(message: str, *, code: str, provider: str) -> NoReturn:
    raise WebhookParseError(message, provider=provider, code=code)


def unsafe_text(value: str) -> bool:
    """Whether ``value`` holds a character no stored text may hold (see
    :data:`UNSAFE_TEXT`)."""
    return UNSAFE_TEXT.search(value) is not None


def check_text(value: str, *, where: str | Promise = "", provider: str = "") -> str:
    """Return ``value``, or raise :class:`WebhookParseError` when it holds NUL,
    a control character or a lone surrogate (``where`` names it in the
    message)."""
    if unsafe_text(value):
        _refuse(
            _("The webhook has a control character or a broken character in %(where)s.")
            % {"where": where or _("a text")},
            code="unsafe_text",
            provider=provider,
        )
    return value


def decode_utf8(body: bytes | str, *, provider: str = "") -> str:
    """``body`` as text, or :class:`WebhookParseError` when it is not UTF-8."""
    if isinstance(body, str):
        return body
    try:
        return bytes(body).decode("utf-8")
    except UnicodeDecodeError:
        _refuse(_("The webhook body is not UTF-8."), code="not_utf8", provider=provider)


def json_depth(text: str) -> int:
    """How deep objects and arrays nest in the JSON ``text``, without parsing it
    and without recursion (strings are skipped, so brackets in them do not
    count)."""
    brackets = _BRACKETS.findall(_JSON_STRING.sub("", text))
    return max(accumulate(map(_DEPTH_STEP.__getitem__, brackets)), default=0)


def _int(provider: str) -> Any:
    def parse_int(text: str) -> int:
        if len(text.lstrip("-")) > MAX_INT_DIGITS:
            _refuse(
                _("The webhook has an integer longer than %(max)d digits.")
                % {"max": MAX_INT_DIGITS},
                code="unsafe_number",
                provider=provider,
            )
        return int(text)

    return parse_int


def _float(provider: str) -> Any:
    def parse_float(text: str) -> float:
        value = float(text)
        if not math.isfinite(value):  # 1e400
            _refuse(
                _("The webhook has a number too large to hold."),
                code="unsafe_number",
                provider=provider,
            )
        return value

    return parse_float


def _constant(provider: str) -> Any:
    def parse_constant(text: str) -> NoReturn:
        _refuse(
            _("The webhook has %(constant)s, which is not a JSON number.")
            % {"constant": text},
            code="unsafe_number",
            provider=provider,
        )

    return parse_constant


def load_json(body: bytes | str, *, provider: str = "") -> Any:
    """Decode a webhook's JSON body, refusing what the module docstring lists
    with :class:`WebhookParseError` (``provider`` is the alias, for the error)."""
    text = decode_utf8(body, provider=provider)
    if json_depth(text) > MAX_DEPTH:
        _refuse(
            _("The webhook nests deeper than %(max)d levels.") % {"max": MAX_DEPTH},
            code="too_deep",
            provider=provider,
        )
    try:
        data = json.loads(
            text,
            parse_int=_int(provider),
            parse_float=_float(provider),
            parse_constant=_constant(provider),
        )
    except (ValueError, RecursionError):
        _refuse(
            _("The webhook body is not JSON."), code="invalid_json", provider=provider
        )
    # What the parse let through: its hooks refused the numbers, the depth was
    # measured, keys are text, and a string can only hold an unsafe character
    # that the text holds or escapes. Only then is the value walked.
    if unsafe_text(text) or _UNSAFE_ESCAPE.search(text):
        check_json_value(data, provider=provider)
    if isinstance(data, dict | list):
        _SAFE.set(data)
    return data


def load_json_object(body: bytes | str, *, provider: str = "") -> dict[str, Any]:
    """:func:`load_json` for a body that must be a JSON object (every webhook
    the app knows is one)."""
    data = load_json(body, provider=provider)
    if not isinstance(data, dict):
        _refuse(
            _("The webhook body is not a JSON object."),
            code="invalid_json",
            provider=provider,
        )
    return data


#: Named in the message only when a text is refused: translated then, not once
#: per string of every webhook.
_A_VALUE = gettext_lazy("a value")
_A_KEY = gettext_lazy("a key")


def check_json_value(
    value: Any, *, provider: str = "", max_depth: int = MAX_DEPTH
) -> Any:
    """Return ``value`` when it is plain JSON data the database can store, else
    raise :class:`WebhookParseError`: only mappings with string keys, lists,
    tuples, strings, booleans, ``None``, bounded integers and finite floats, no
    unsafe text (:data:`UNSAFE_TEXT`), no deeper than ``max_depth``. Walks
    without recursion, so any depth is refused cleanly. The body that
    :func:`load_json` returned last is known to be safe and not walked again."""
    if value is not None and value is _SAFE.get() and max_depth >= MAX_DEPTH:
        return value
    stack: list[tuple[Any, int]] = [(value, 0)]
    while stack:
        item, depth = stack.pop()
        if isinstance(item, str):
            check_text(item, where=_A_VALUE, provider=provider)
        elif item is None or isinstance(item, bool):
            pass
        elif isinstance(item, int):
            # Compared, not converted: str() of a huge int is itself refused.
            if abs(item) >= _INT_CEILING:
                _refuse(
                    _("The webhook has an integer longer than %(max)d digits.")
                    % {"max": MAX_INT_DIGITS},
                    code="unsafe_number",
                    provider=provider,
                )
        elif isinstance(item, float):
            if not math.isfinite(item):
                _refuse(
                    _("The webhook has a number that is not finite."),
                    code="unsafe_number",
                    provider=provider,
                )
        elif isinstance(item, Mapping | list | tuple):
            if depth >= max_depth:
                _refuse(
                    _("The webhook nests deeper than %(max)d levels.")
                    % {"max": max_depth},
                    code="too_deep",
                    provider=provider,
                )
            if isinstance(item, Mapping):
                for key, child in item.items():
                    if not isinstance(key, str):
                        _refuse(
                            _("The webhook has a key that is not text."),
                            code="invalid_json",
                            provider=provider,
                        )
                    check_text(key, where=_A_KEY, provider=provider)
                    stack.append((child, depth + 1))
            else:
                stack.extend((child, depth + 1) for child in item)
        else:
            _refuse(
                _("The webhook payload holds a %(type)s, which is not JSON data.")
                % {"type": type(item).__name__},
                code="invalid_json",
                provider=provider,
            )
    return value


def load_form(body: bytes | str, *, provider: str = "") -> list[tuple[str, str]]:
    """The ``(name, value)`` pairs of a form-encoded webhook body, in order,
    refusing with :class:`WebhookParseError` a body that is not UTF-8 (raw or
    percent-encoded: Django's own parser would quietly replace such bytes with
    U+FFFD), more fields than ``DATA_UPLOAD_MAX_NUMBER_FIELDS``, and names or
    values holding unsafe text (:data:`UNSAFE_TEXT`, e.g. ``%00``)."""
    text = decode_utf8(body, provider=provider)
    try:
        pairs = parse_qsl(
            text,
            keep_blank_values=True,
            encoding="utf-8",
            errors="strict",
            max_num_fields=settings.DATA_UPLOAD_MAX_NUMBER_FIELDS,
            separator="&",
        )
    except ValueError:  # UnicodeDecodeError of a %XX escape, too many fields
        _refuse(
            _("The webhook form is not UTF-8 or has too many fields."),
            code="invalid_form",
            provider=provider,
        )
    for name, value in pairs:
        check_text(name, where=_("a field name"), provider=provider)
        check_text(
            value,
            where=_("the field %(name)s") % {"name": name[:40]},
            provider=provider,
        )
    return pairs


@contextmanager
def webhook_parsing(provider: str) -> Iterator[None]:
    """Turn whatever the parsing of a verified webhook raises on hostile content
    (:data:`MALFORMED`: an invalid amount or currency, a missing key, a wrong
    type, an overflow...) into :class:`WebhookParseError`, so the webhook is
    answered 400 with nothing written. A :class:`WebhookError` passes unchanged;
    a failed provider call (:class:`ProviderUnavailable`,
    :class:`ProviderRateLimited`) propagates, to be retried. Used by every
    provider's ``parse_webhook`` and, for providers that forget it, by the
    webhook view."""
    try:
        yield
    except WebhookError:
        raise
    except _TRANSIENT:
        raise
    except MALFORMED as exc:
        field = getattr(exc, "field", "")
        raise WebhookParseError(
            _("The webhook's content cannot be understood (%(error)s%(field)s).")
            % {
                "error": type(exc).__name__,
                "field": f": {field}" if field else "",
            },
            provider=provider,
            code=exc.code if isinstance(exc, PaymentsError) else "",
        ) from exc


@contextmanager
def webhook_verifying(provider: str) -> Iterator[None]:
    """Like :func:`webhook_parsing`, for verification: what a provider's
    ``verify_webhook`` raises on hostile content becomes
    :class:`WebhookVerificationError` (a body that cannot be verified is not
    provably from the provider)."""
    try:
        yield
    except WebhookError:
        raise
    except _TRANSIENT:
        raise
    except MALFORMED as exc:
        raise WebhookVerificationError(
            _("The webhook cannot be verified (%(error)s).")
            % {"error": type(exc).__name__},
            provider=provider,
            code="unverifiable",
        ) from exc


__all__ = [
    "MALFORMED",
    "MAX_DEPTH",
    "MAX_INT_DIGITS",
    "UNSAFE_TEXT",
    "check_json_value",
    "check_text",
    "decode_utf8",
    "json_depth",
    "load_form",
    "load_json",
    "load_json_object",
    "unsafe_text",
    "webhook_parsing",
    "webhook_verifying",
]
