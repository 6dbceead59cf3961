"""Stored outcomes as codes with parameters, translated when shown.

What the services record for people (a webhook event's result, an
operation's reason, an invoice's attention notes) is stored as a stable code
and its parameters (:class:`Message`), never as text already translated into
the language of the process that wrote it: an English admin reading an event
a Russian worker processed sees English. :data:`MESSAGES` is the registry;
:func:`render` translates a code in the active language.

Parameters are plain JSON values. Free text that is not ours (an exception's
message, a provider's decline reason) is a parameter and stays as it came.
Some parameter names are rendered from a value into the active language:
``status`` (an :class:`~django_payments_ru.status.InvoiceStatus`), ``event``
(an :class:`~django_payments_ru.events.EventType`), ``kind`` (an
:class:`~django_payments_ru.models.Operation.Kind`); a parameter holding a
stored message (``{"code": ..., "params": ...}``) is rendered in turn.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation
from typing import Any

from django.utils.formats import number_format
from django.utils.functional import Promise
from django.utils.translation import gettext_lazy as _

#: code -> message (``%(name)s`` parameters). A code is never renamed or
#: reused for another meaning: stored rows keep it.
MESSAGES: dict[str, Promise] = {
    # The state machine (status.py).
    "same_state": _("already in this state"),
    "backwards": _("“%(event)s” cannot override “%(status)s”"),
    "refund_before_payment": _("a refund before any payment"),
    "late_payment": _(
        "paid after the invoice became “%(status)s”: the money moved, check the order"
    ),
    "late_hold": _("funds held after the invoice became “%(status)s”"),
    "informational": _("informational event"),
    # Applying events (services.py).
    "no_invoice": _("no matching invoice"),
    "currency_mismatch": _("currency %(got)s does not match the invoice's %(want)s"),
    "amount_mismatch": _("amount %(got)s does not match the invoice's %(want)s"),
    "second_payment": _(
        "a second payment %(new)s arrived for an invoice already paid by "
        "%(old)s: refund one of them"
    ),
    "event_rejected": _("“%(event)s” event rejected: %(problem)s"),
    "stale_attempt": _(
        "“%(event)s” of an earlier attempt %(old)s: the invoice's payment is "
        "now %(new)s"
    ),
    "order_paid_twice": _(
        "order %(order)s was already paid by invoice %(ref)s: this payment "
        "moved money too, refund one of them"
    ),
    "refund_recorded": _("refund already recorded"),
    "refund_exceeds": _("refund of %(amount)s exceeds what can be refunded (%(left)s)"),
    "invoice_became": _("the invoice became “%(status)s”"),
    "not_confirmed": _("the provider's API does not confirm this webhook: %(reason)s"),
    "processing_error": _("processing failed: %(error)s"),
    # Operations (services.py).
    "abandoned": _("abandoned: its caller gave no answer"),
    "no_answer": _(
        "no answer from the provider (%(error)s): settled by its webhook or a refresh"
    ),
    "refused": _("refused: %(error)s"),
    "cancelled_by_merchant": _("cancelled by the merchant"),
    "funds_released": _("funds released at the provider"),
    "released_by_merchant": _("released by the merchant: not done at the provider"),
    "order_close_failed": _(
        "order %(order)s was paid by invoice %(ref)s; cancelling this invoice "
        "at the provider failed: %(problem)s"
    ),
    # Jobs (jobs.py).
    "given_up": _(
        "webhook event #%(pk)s (“%(event)s”) could not be processed after "
        "%(attempts)s attempts: %(error)s"
    ),
    "no_error": _("no error recorded"),
    "released_by_user": _("released by %(user)s: not done at the provider"),
    "merchant_note": _("%(user)s: %(note)s"),
    "merchant_cleared": _("%(user)s cleared the flag: %(note)s"),
    # The invoice's admin history (LogEntry change messages).
    "log_operation": _("%(operation)s"),
    "log_refunded": _("refunded %(amount)s %(currency)s"),
    "log_refund_requested": _(
        "refund of %(amount)s %(currency)s requested; the provider will confirm it"
    ),
    "log_form": _("%(form)s: %(result)s"),
    # Free text: a merchant's note, a reason given by the caller.
    "text": _("%(text)s"),
}


#: Parameters whose stored value names something with a label, registered by
#: the module that defines the labels (the admin's operations).
_LABELS: dict[str, Mapping[str, Any]] = {}
#: Parameters holding an amount: shown with the active language's separators.
_AMOUNTS = frozenset({"amount", "left", "got", "want"})


def register_labels(name: str, labels: Mapping[str, Any]) -> None:
    """Show a parameter ``name`` by ``labels[value]`` (lazy translations)."""
    _LABELS[name] = labels


def _label(name: str, value: Any) -> Any:
    """A parameter named for a choice, as its label in the active language."""
    from .events import EventType
    from .status import InvoiceStatus

    if not isinstance(value, str):
        return value
    if name in _AMOUNTS:
        try:
            return number_format(Decimal(value), force_grouping=True)
        except (InvalidOperation, ValueError):  # a currency code, free text
            return value
    choices: dict[str, Any] = {"status": InvoiceStatus, "event": EventType}
    if name == "kind":
        from .models import Operation

        choices["kind"] = Operation.Kind
    if name in _LABELS:
        return str(_LABELS[name].get(value, value))
    enum = choices.get(name)
    if enum is None:
        return value
    try:
        return enum(value).label
    except ValueError:  # a value from a newer version, or free text
        return value


def _param(name: str, value: Any) -> Any:
    if isinstance(value, Mapping) and "code" in value:
        return render(str(value["code"]), value.get("params") or {})
    return _label(name, value)


def render(code: str, params: Mapping[str, Any] | None = None) -> str:
    """The message ``code`` with ``params``, in the active language. An
    unknown code (from a newer version) shows its code and parameters rather
    than failing."""
    params = params or {}
    message = MESSAGES.get(code)
    if message is None:
        shown = ", ".join(f"{k}={v}" for k, v in params.items())
        return f"{code} ({shown})" if shown else code
    values = {name: _param(name, value) for name, value in params.items()}
    try:
        return str(message) % values
    except (KeyError, TypeError, ValueError):  # a translation missing a name
        return str(message)


def _plain(value: Any) -> Any:
    """``value`` as JSON: messages nested, decimals and ids as text."""
    if isinstance(value, Message):
        return value.to_json()
    if isinstance(value, bool | int | float | str) or value is None:
        return value
    if isinstance(value, Mapping) and "code" in value:  # a stored message
        return {"code": str(value["code"]), "params": dict(value.get("params") or {})}
    return str(value)  # a Decimal, a UUID


@dataclass(frozen=True)
class Message:
    """A stored outcome: a code of :data:`MESSAGES` and its parameters.
    ``str()`` renders it in the active language."""

    code: str
    params: Mapping[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.code not in MESSAGES:
            raise ValueError(f"unknown message code {self.code!r}")
        plain = {name: _plain(value) for name, value in self.params.items()}
        object.__setattr__(self, "params", plain)

    def __str__(self) -> str:
        return render(self.code, self.params)

    def __bool__(self) -> bool:
        return True

    def to_json(self) -> dict[str, Any]:
        return {"code": self.code, "params": dict(self.params)}

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Message:
        return cls(str(data.get("code", "")), dict(data.get("params") or {}))


def msg(code: str, **params: Any) -> Message:
    """``Message(code, params)``."""
    return Message(code, params)


def text(value: str) -> Message:
    """Free text that is not ours, shown as it came."""
    return Message("text", {"text": str(value)[:2000]})


def shown(code: str, params: Mapping[str, Any] | None, stored: str) -> str:
    """What a row's stored outcome says in the active language: its code, or
    for a row written before codes (no code) its stored text."""
    if code:
        return render(code, params)
    return stored


#: The key of our messages in a LogEntry's JSON change message.
LOG_KEY = "payments_ru"


def log_message(entry: Any) -> str:
    """What a LogEntry (an invoice's admin history) says in the active
    language: our messages (stored as codes under :data:`LOG_KEY`) rendered,
    Django's own messages as Django shows them."""
    import json

    try:
        data = json.loads(entry.change_message or "[]")
    except ValueError:
        data = None
    if isinstance(data, list):
        ours = [
            item[LOG_KEY]
            for item in data
            if isinstance(item, dict) and isinstance(item.get(LOG_KEY), dict)
        ]
        if ours:
            return "; ".join(
                render(str(m.get("code", "")), m.get("params") or {}) for m in ours
            )
    return str(entry.get_change_message())
