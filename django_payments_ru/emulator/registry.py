"""Which emulators are served: registered explicitly, never discovered.

An emulator is a module exposing ``urlpatterns`` and ``emulator`` (an instance
of :class:`~.base.Emulator`), served under ``emulator/<emulator.slug>/``. The
emulators served are:

* the one of each provider configured in ``PAYMENTS_RU["PROVIDERS"]``: its
  ``BACKEND`` class names the module in its ``emulator`` attribute (and so do
  the classes of its ``surfaces``), so a provider from another package brings
  its own;
* each module listed in ``PAYMENTS_RU_EMULATOR["EMULATORS"]``, for an emulator
  whose provider is not configured (a test suite that configures providers per
  test).

One emulator per slug. The list is built on first use and again after either
setting changes (``override_settings``); the URLconf, though, takes the list
that holds when it is first loaded.
"""

from __future__ import annotations

import importlib
from collections.abc import Iterator, Mapping
from functools import cache
from types import ModuleType
from typing import TYPE_CHECKING, Any

from django.conf import settings as django_settings

from ..exceptions import ConfigurationError
from .apps import SETTING_NAME

if TYPE_CHECKING:
    from .base import Emulator

#: ``PAYMENTS_RU_EMULATOR["EMULATORS"]``: dotted paths of emulator modules
#: served besides those of the configured providers.
EMULATORS = "EMULATORS"
#: The keys of ``PAYMENTS_RU_EMULATOR`` itself (besides one entry per emulator
#: slug) and their defaults.
DEFAULTS: dict[str, Any] = {EMULATORS: []}


def _configured_providers() -> Iterator[tuple[str, str]]:
    """``(module path, where it is named)`` for the emulator of each provider
    class configured. A malformed entry is skipped: the system checks report
    it, and the URLconf must still load for them to run."""
    from ..registry import load_backend

    value = getattr(django_settings, "PAYMENTS_RU", None)
    providers = value.get("PROVIDERS") if isinstance(value, Mapping) else None
    if not isinstance(providers, Mapping):
        return
    for alias, config in providers.items():
        backend = config.get("BACKEND") if isinstance(config, Mapping) else None
        if not isinstance(backend, str):
            continue
        try:
            cls = load_backend(backend, alias)
        except ConfigurationError:  # payments_ru.E004, E005
            continue
        for provider in (cls, *cls.surfaces):
            if provider.emulator:
                yield (
                    provider.emulator,
                    f"{provider.__module__}.{provider.__qualname__}.emulator",
                )


def _listed() -> Iterator[tuple[str, str]]:
    """``(module path, where it is named)`` of each module listed in
    ``PAYMENTS_RU_EMULATOR["EMULATORS"]``."""
    where = f"settings.{SETTING_NAME}[{EMULATORS!r}]"
    value = getattr(django_settings, SETTING_NAME, None) or {}
    if not isinstance(value, Mapping):
        return  # the emulators say so when called (Emulator.config)
    paths = value.get(EMULATORS, DEFAULTS[EMULATORS])
    if not (isinstance(paths, list | tuple) and all(isinstance(p, str) for p in paths)):
        raise ConfigurationError(
            f"{where} must be a list of dotted module paths, such as "
            "['django_payments_ru.providers.sandbox.emulator']."
        )
    for path in paths:
        yield path, where


def load_emulator_module(path: str, where: str) -> ModuleType:
    """The emulator module ``path``, named by ``where``; raises
    :class:`~django_payments_ru.exceptions.ConfigurationError` saying what is
    wrong with it."""
    from .base import Emulator

    try:
        module = importlib.import_module(path)
    except ImportError as exc:
        raise ConfigurationError(
            f"The emulator module {path!r} of {where} cannot be imported: {exc}"
        ) from exc
    if not (
        hasattr(module, "urlpatterns")
        and isinstance(getattr(module, "emulator", None), Emulator)
        and module.emulator.slug
    ):
        raise ConfigurationError(
            f"The emulator module {path!r} of {where} must define urlpatterns and "
            "emulator, an instance of django_payments_ru.emulator.base.Emulator "
            "with a slug."
        )
    return module


@cache
def emulator_modules() -> dict[str, ModuleType]:
    """``{slug: module}`` of every emulator registered, by slug."""
    found: dict[str, ModuleType] = {}
    for path, where in [*_configured_providers(), *_listed()]:
        module = load_emulator_module(path, where)
        slug = module.emulator.slug
        other = found.setdefault(slug, module)
        if other is not module:
            raise ConfigurationError(
                f"Two emulator modules serve the slug {slug!r}: {other.__name__!r} "
                f"and {path!r} (of {where}); a slug is one URL prefix, "
                "emulator/<slug>/."
            )
    return dict(sorted(found.items()))


def get_emulator(slug: str) -> Emulator | None:
    """The :class:`~.base.Emulator` of ``slug``, if it has one."""
    module = emulator_modules().get(slug)
    return getattr(module, "emulator", None) if module is not None else None


def reset() -> None:
    """Forget the emulators found (called when the settings change)."""
    emulator_modules.cache_clear()
