"""Provider instances by alias, built from ``PAYMENTS_RU["PROVIDERS"]``.

Explicit: an alias exists because the settings name it, and its ``BACKEND`` is
imported by dotted path. Instances are kept (they hold a keep-alive HTTP session)
until the setting changes.
"""

from __future__ import annotations

import threading
from typing import TYPE_CHECKING, Any

from django.utils.module_loading import import_string

from .conf import payments_settings
from .exceptions import ConfigurationError, UnknownProvider

if TYPE_CHECKING:
    from .providers.base import BaseProvider

_lock = threading.Lock()
_instances: dict[str, BaseProvider] = {}


def provider_config(alias: str) -> dict[str, Any]:
    providers = payments_settings.PROVIDERS
    if not isinstance(providers, dict) or alias not in providers:
        known = ", ".join(sorted(providers)) if isinstance(providers, dict) else ""
        raise UnknownProvider(
            f"No payment provider {alias!r} in PAYMENTS_RU['PROVIDERS']"
            + (f" (configured: {known})." if known else " (none configured).")
        )
    config = providers[alias]
    if not isinstance(config, dict) or "BACKEND" not in config:
        raise ConfigurationError(
            f"PAYMENTS_RU['PROVIDERS'][{alias!r}] must be a dict with a 'BACKEND' "
            "dotted path and an 'OPTIONS' dict."
        )
    return config


class BackendNotFound(ConfigurationError):
    """A ``BACKEND`` dotted path that cannot be imported (check ``E004``)."""


class NotAProvider(ConfigurationError):
    """A ``BACKEND`` that is not a provider class (check ``E005``)."""


def load_backend(path: str, alias: str = "") -> type[BaseProvider]:
    """The provider class named by ``path``: the one loader the registry and
    the system checks share (the checks turn its errors into E004 and E005)."""
    from .providers.base import BaseProvider

    try:
        cls = import_string(path)
    except ImportError as exc:
        raise BackendNotFound(
            f"PAYMENTS_RU['PROVIDERS'][{alias!r}]['BACKEND'] = {path!r} cannot be "
            f"imported: {exc}"
        ) from exc
    if not (isinstance(cls, type) and issubclass(cls, BaseProvider)):
        raise NotAProvider(
            f"PAYMENTS_RU['PROVIDERS'][{alias!r}]['BACKEND'] = {path!r} is not a "
            "subclass of django_payments_ru.providers.base.BaseProvider."
        )
    return cls


def build_provider(alias: str) -> BaseProvider:
    config = provider_config(alias)
    cls = load_backend(config["BACKEND"], alias)
    options = config.get("OPTIONS", {})
    if not isinstance(options, dict):
        raise ConfigurationError(
            f"PAYMENTS_RU['PROVIDERS'][{alias!r}]['OPTIONS'] must be a dict."
        )
    return cls(alias, options)


def get_provider(alias: str) -> BaseProvider:
    """The provider configured under ``alias`` (raises :class:`UnknownProvider`)."""
    provider = _instances.get(alias)
    if provider is None:
        with _lock:
            provider = _instances.get(alias)
            if provider is None:
                provider = build_provider(alias)
                _instances[alias] = provider
    return provider


def aliases() -> list[str]:
    providers = payments_settings.PROVIDERS
    return list(providers) if isinstance(providers, dict) else []


def reset() -> None:
    """Forget every provider instance (called when the settings change)."""
    with _lock:
        for provider in _instances.values():
            provider.close()
        _instances.clear()
