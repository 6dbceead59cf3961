"""Finding the provider emulators.

An emulator is the module ``django_payments_ru.providers.<slug>.emulator`` with
``urlpatterns`` (and, for the shared machinery, an ``emulator`` instance of
:class:`~.base.Emulator`). They are found by listing the provider packages, so a
new provider's emulator needs no change anywhere else.
"""

from __future__ import annotations

import importlib
import importlib.util
import pkgutil
from functools import cache
from types import ModuleType
from typing import TYPE_CHECKING

from .. import providers

if TYPE_CHECKING:
    from .base import Emulator


@cache
def emulator_modules() -> dict[str, ModuleType]:
    """``{slug: module}`` of every provider package with an emulator."""
    found = {}
    for info in sorted(pkgutil.iter_modules(providers.__path__), key=lambda i: i.name):
        if not info.ispkg:
            continue
        name = f"{providers.__name__}.{info.name}.emulator"
        if importlib.util.find_spec(name) is None:
            continue
        module = importlib.import_module(name)
        if hasattr(module, "urlpatterns"):
            found[info.name] = module
    return found


def get_emulator(slug: str) -> Emulator | None:
    """The :class:`~.base.Emulator` of ``slug``, if it has one."""
    module = emulator_modules().get(slug)
    return getattr(module, "emulator", None) if module is not None else None
