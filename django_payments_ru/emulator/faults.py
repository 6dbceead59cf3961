"""Fault injection: make the next N calls to an emulator endpoint fail or wait.

Two sources, checked in this order on every call of an endpoint named by its
emulator (``create``, ``get``, ``refund``...; ``*`` matches every endpoint):

* the settings, ``PAYMENTS_RU_EMULATOR[<slug>]["faults"]``::

      {"create": {"status": 500, "times": 1},   # the next create answers 500
       "get": {"delay": 2.5},                    # every status read waits 2.5 s
       "refund": {"status": 500, "after": True, "times": 1}}

  ``status`` (the HTTP status; omit it for a pure delay), ``delay`` (seconds),
  ``after`` (do the work, then answer with the error: a committed change whose
  answer is lost), ``times`` (how many calls; omitted = every call),
  ``retry_after`` (a ``Retry-After`` header, in seconds). The calls are counted
  per process, from the moment the setting took its value;
* :class:`~.models.EmulatedFault` rows, added with :func:`inject_fault` or in the
  Django admin while the demo runs; shared by every process using the database.
"""

from __future__ import annotations

import threading
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from django.db.models import F, Q
from django.utils.translation import gettext as _

from ..exceptions import ConfigurationError
from . import clock

if TYPE_CHECKING:
    from django.http import HttpResponse

    from .base import Emulator
    from .models import EmulatedFault

SPEC_KEYS = frozenset({"status", "delay", "after", "times", "retry_after"})

_lock = threading.Lock()
_used: dict[tuple[str, str], int] = {}


@dataclass(frozen=True)
class Fault:
    """One injected fault, about to hit a call."""

    status: int | None = 500
    delay: float = 0.0
    after: bool = False
    retry_after: int | None = None

    def apply(self, emulator: Emulator) -> HttpResponse | None:
        """Wait, then return the error answer (``None``: answer normally)."""
        clock.sleep(self.delay)
        if not self.status:
            return None
        headers = {}
        if self.retry_after is not None:
            headers["Retry-After"] = str(self.retry_after)
        return emulator.error(
            self.status,
            "emulated_fault",
            _("A fault injected into the emulator answered this call."),
            headers=headers,
        )


def reset() -> None:
    """Forget how many calls the settings' faults have hit."""
    with _lock:
        _used.clear()


def inject_fault(
    slug: str,
    endpoint: str = "*",
    *,
    status: int | None = 500,
    times: int | None = 1,
    delay: float = 0.0,
    after: bool = False,
) -> EmulatedFault:
    """Make the next ``times`` calls (``None``: all) of ``endpoint`` of the
    emulator ``slug`` wait ``delay`` seconds and answer ``status``."""
    from .models import EmulatedFault

    return EmulatedFault.objects.create(
        slug=slug,
        endpoint=endpoint,
        status=status,
        remaining=times,
        delay=delay,
        after=after,
    )


def clear_faults(slug: str | None = None) -> None:
    """Remove the injected faults (of one emulator, or all of them)."""
    from .models import EmulatedFault

    qs = EmulatedFault.objects.all()
    if slug is not None:
        qs = qs.filter(slug=slug)
    qs.delete()


def _from_spec(slug: str, name: str, spec: Any) -> Fault:
    where = f"PAYMENTS_RU_EMULATOR[{slug!r}]['faults'][{name!r}]"
    if not isinstance(spec, Mapping):
        raise ConfigurationError(
            f"{where} must be a dict such as {{'status': 500, 'times': 1}}."
        )
    unknown = sorted(set(spec) - SPEC_KEYS)
    if unknown:
        raise ConfigurationError(
            f"Unknown key {unknown[0]!r} in {where} (known: "
            f"{', '.join(sorted(SPEC_KEYS))})."
        )
    return Fault(
        status=spec.get("status", 500 if "delay" not in spec else None),
        delay=float(spec.get("delay", 0.0)),
        after=bool(spec.get("after", False)),
        retry_after=spec.get("retry_after"),
    )


def take_fault(slug: str, endpoint: str, specs: Mapping[str, Any]) -> Fault | None:
    """The fault that hits this call of ``endpoint``, if any, counting it."""
    for name in (endpoint, "*"):
        spec = specs.get(name)
        if spec is None:
            continue
        fault = _from_spec(slug, name, spec)
        times = spec.get("times")
        with _lock:
            used = _used.get((slug, name), 0)
            if times is not None and used >= times:
                continue
            _used[(slug, name)] = used + 1
        return fault

    from .models import EmulatedFault

    rows = EmulatedFault.objects.filter(
        Q(remaining__isnull=True) | Q(remaining__gt=0),
        slug=slug,
        endpoint__in=[endpoint, "*"],
    ).order_by("created_at", "id")
    for row in rows:
        if row.remaining is not None:
            # Conditional decrement: two concurrent calls never share one use.
            taken = EmulatedFault.objects.filter(pk=row.pk, remaining__gt=0).update(
                remaining=F("remaining") - 1
            )
            if not taken:
                continue
        return Fault(status=row.status, delay=row.delay, after=row.after)
    return None
