"""Django system checks for ``settings.PAYMENTS_RU`` (``manage.py check``).

Each problem has its own id, so a project can silence one it accepts on purpose
(``SILENCED_SYSTEM_CHECKS = ["payments_ru.W002"]``):

========================  ====================================================
``payments_ru.E001``      ``PAYMENTS_RU`` is not a dict
``payments_ru.W001``      ``PAYMENTS_RU`` has a key the app does not know
``payments_ru.E002``      ``PROVIDERS`` is not a dict
``payments_ru.E003``      a provider entry is not a dict with a ``BACKEND`` string
``payments_ru.E004``      a ``BACKEND`` cannot be imported
``payments_ru.E005``      a ``BACKEND`` is not a ``BaseProvider`` subclass
``payments_ru.E006``      a provider's ``OPTIONS`` is not a dict
``payments_ru.E007``      an option is missing, unknown or of the wrong type
``payments_ru.E008``      a secret option is empty while ``DEBUG`` is off
``payments_ru.E009``      ``WEBHOOK_PROCESSING`` is not ``"sync"`` or ``"celery"``
``payments_ru.E010``      ``BASE_URL`` is not an absolute http(s) URL
``payments_ru.W002``      ``BASE_URL`` is empty
``payments_ru.E011``      ``HTTP_TIMEOUT`` is not a positive number or pair
``payments_ru.E012``      ``HTTP_RETRIES`` is not a non-negative integer
``payments_ru.E013``      ``HTTP_MAX_RETRY_AFTER`` is not a non-negative number
``payments_ru.E014``      ``CACHE`` names no entry of ``settings.CACHES``
``payments_ru.E015``      a provider alias cannot appear in a webhook URL
``payments_ru.E016``      ``RETURN_URL_HOSTS`` is not a list of host names
``payments_ru.E017``      a provider declares a capability without its hook
``payments_ru.W003``      the emulators are installed or routed while ``DEBUG`` is off
``payments_ru.E018``      the emulator URLs are included without the emulator app
``payments_ru.W004``      a provider reports a problem the merchant must act on
                          (a blocked API key)
``payments_ru.W005``      ``WEBHOOK_PROCESSING`` is ``"celery"`` but no Celery app
                          of the project is loaded (:mod:`.celery_checks`)
``payments_ru.W006``      ``"celery"`` mode with tasks run eagerly while ``DEBUG``
                          is off (:mod:`.celery_checks`)
``payments_ru.W007``      the Celery app does not read ``CELERY_BROKER_URL`` from
                          the settings (:mod:`.celery_checks`)
========================  ====================================================

The checks read ``django.conf.settings`` directly rather than through
:mod:`~django_payments_ru.conf`, which raises on the first malformed value: a
check reports every problem at once.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from django.apps import apps
from django.conf import settings
from django.core.checks import CheckMessage, Error, Tags, Warning, register
from django.urls import URLResolver, get_resolver

from .conf import DEFAULTS, SETTING_NAME, WEBHOOK_MODES

if TYPE_CHECKING:
    from .providers.base import BaseProvider

__all__ = [
    "check_emulator_not_in_production",
    "check_emulator_urls_have_the_app",
    "check_payments_settings",
    "check_provider_health",
]

_PROVIDERS = f"{SETTING_NAME}['PROVIDERS']"
#: An alias becomes a path segment of ``webhooks/<alias>/`` and a cache key part.
_ALIAS = re.compile(r"^[A-Za-z0-9_-]+$")


def _id(kind: str, number: int) -> str:
    return f"payments_ru.{kind}{number:03d}"


@register()
def check_payments_settings(
    app_configs: Any = None, **kwargs: Any
) -> list[CheckMessage]:
    """Every problem with ``settings.PAYMENTS_RU``."""
    value = getattr(settings, SETTING_NAME, {})
    if value is None:
        value = {}
    if not isinstance(value, dict):
        return [
            Error(
                f"settings.{SETTING_NAME} must be a dict, not {type(value).__name__}.",
                hint=f"Set {SETTING_NAME} = {{'PROVIDERS': {{...}}}} in settings.",
                id=_id("E", 1),
            )
        ]
    messages: list[CheckMessage] = []
    for key in sorted(set(value) - set(DEFAULTS), key=str):
        messages.append(
            Warning(
                f"Unknown key {key!r} in settings.{SETTING_NAME}.",
                hint="Known keys: " + ", ".join(DEFAULTS) + ". A misspelt key is "
                "ignored and its default used.",
                id=_id("W", 1),
            )
        )
    messages += _check_providers(value.get("PROVIDERS", DEFAULTS["PROVIDERS"]))
    messages += _check_webhook_processing(
        value.get("WEBHOOK_PROCESSING", DEFAULTS["WEBHOOK_PROCESSING"])
    )
    messages += _check_base_url(
        value.get("BASE_URL", DEFAULTS["BASE_URL"]),
        has_providers=bool(value.get("PROVIDERS")),
    )
    messages += _check_return_url_hosts(
        value.get("RETURN_URL_HOSTS", DEFAULTS["RETURN_URL_HOSTS"])
    )
    messages += _check_http(value)
    messages += _check_cache(value.get("CACHE", DEFAULTS["CACHE"]))
    return messages


# --- providers ------------------------------------------------------------------


def _check_providers(providers: Any) -> list[CheckMessage]:
    if not isinstance(providers, dict):
        return [
            Error(
                f"{_PROVIDERS} must be a dict of alias -> {{'BACKEND': ..., "
                f"'OPTIONS': {{...}}}}, not {type(providers).__name__}.",
                hint=f"Set {_PROVIDERS} = {{'sandbox': {{'BACKEND': "
                "'django_payments_ru.providers.sandbox.Provider', 'OPTIONS': "
                "{...}}}.",
                id=_id("E", 2),
            )
        ]
    messages: list[CheckMessage] = []
    for alias, config in providers.items():
        messages += _check_provider(alias, config)
    return messages


def _check_provider(alias: Any, config: Any) -> list[CheckMessage]:
    where = f"{_PROVIDERS}[{alias!r}]"
    messages: list[CheckMessage] = []
    if not (isinstance(alias, str) and _ALIAS.match(alias)):
        messages.append(
            Error(
                f"The provider alias {alias!r} in {_PROVIDERS} is not usable in the "
                "webhook URL webhooks/<alias>/.",
                hint="Use letters, digits, '-' and '_' only, e.g. 'payconnect'.",
                id=_id("E", 15),
            )
        )
    if not isinstance(config, dict) or not isinstance(config.get("BACKEND"), str):
        messages.append(
            Error(
                f"{where} must be a dict with a 'BACKEND' dotted path.",
                hint=f"Set {where}['BACKEND'], e.g. "
                "'django_payments_ru.providers.sandbox.Provider'.",
                id=_id("E", 3),
            )
        )
        return messages
    path = config["BACKEND"]
    cls = _load(path, alias, where, messages)
    options = config.get("OPTIONS", {})
    if not isinstance(options, dict):
        messages.append(
            Error(
                f"{where}['OPTIONS'] must be a dict, not {type(options).__name__}.",
                hint=f"Set {where}['OPTIONS'] = {{...}} with the options the "
                "provider's documentation lists.",
                id=_id("E", 6),
            )
        )
        return messages
    if cls is None:
        return messages
    for problem in cls.check_options(alias, options):
        messages.append(
            Error(
                problem,
                hint=f"Fix {where}['OPTIONS']; {cls.__name__}'s docstring lists "
                "its options.",
                obj=path,
                id=_id("E", 7),
            )
        )
    messages += _check_hooks(cls, where)
    if not settings.DEBUG:
        messages += _check_secrets(cls, where, options)
    return messages


def _load(
    path: str, alias: str, where: str, messages: list[CheckMessage]
) -> type[BaseProvider] | None:
    from .registry import BackendNotFound, NotAProvider, load_backend

    try:
        return load_backend(path, alias)
    except BackendNotFound as exc:
        messages.append(
            Error(
                str(exc),
                hint="Check the dotted path; the built-in providers are "
                "'django_payments_ru.providers.<slug>.Provider'.",
                id=_id("E", 4),
            )
        )
    except NotAProvider as exc:
        messages.append(
            Error(
                str(exc),
                hint=f"Point {where}['BACKEND'] at a provider class.",
                id=_id("E", 5),
            )
        )
    return None


def _check_hooks(cls: type[BaseProvider], where: str) -> list[CheckMessage]:
    """A capability the class declares must have its hook: the services would
    otherwise offer an operation (a refund button, a poll) that can only fail."""
    classes = cls.surfaces or (cls,)
    return [
        Error(
            f"{surface.__qualname__} declares the capability {capability.value!r} "
            f"but does not implement {hook}().",
            hint=f"Implement {surface.__qualname__}.{hook}() or remove "
            f"Capability.{capability.name} from its capabilities ({where}).",
            obj=surface.__module__ + "." + surface.__qualname__,
            id=_id("E", 17),
        )
        for surface in classes
        for capability, hook in surface.missing_hooks()
    ]


def _blank(value: Any) -> bool:
    return isinstance(value, str) and not value.strip()


def _check_secrets(
    cls: type[BaseProvider], where: str, options: Mapping[str, Any]
) -> list[CheckMessage]:
    """An empty secret in production: anyone could sign a webhook with it.
    Every ``Option(secret=True)`` counts, whatever its name (a ``password`` or a
    ``token`` as much as a ``secret_key``)."""
    messages: list[CheckMessage] = []
    for name in cls.secret_option_names():
        if name not in options:
            continue  # a missing required option is E007; an optional one is unused
        value = options[name]
        values = value if isinstance(value, list | tuple) else [value]
        if any(_blank(v) for v in values):
            messages.append(
                Error(
                    f"{where}['OPTIONS'][{name!r}] is empty.",
                    hint=f"Set {where}['OPTIONS'][{name!r}] to the value from the "
                    "provider's dashboard (an empty secret lets anyone forge a "
                    "webhook). It may be empty only while DEBUG is on.",
                    obj=cls.__module__ + "." + cls.__qualname__,
                    id=_id("E", 8),
                )
            )
    return messages


# --- the other keys -------------------------------------------------------------


def _check_webhook_processing(mode: Any) -> list[CheckMessage]:
    if mode in WEBHOOK_MODES:
        return []
    return [
        Error(
            f"{SETTING_NAME}['WEBHOOK_PROCESSING'] = {mode!r} is not one of "
            + ", ".join(repr(m) for m in WEBHOOK_MODES)
            + ".",
            hint=f"Set {SETTING_NAME}['WEBHOOK_PROCESSING'] to 'sync' (process in "
            "the webhook's request) or 'celery' (in a task after commit).",
            id=_id("E", 9),
        )
    ]


def _check_base_url(base_url: Any, *, has_providers: bool) -> list[CheckMessage]:
    name = f"{SETTING_NAME}['BASE_URL']"
    if base_url in ("", None):
        if not has_providers:
            return []
        return [
            Warning(
                f"{name} is empty.",
                hint=f"Set {name} = 'https://shop.example.com': webhook and return "
                "URLs built outside a request (Celery tasks, the admin, management "
                "commands) need it.",
                id=_id("W", 2),
            )
        ]
    parts = urlsplit(base_url) if isinstance(base_url, str) else None
    if parts is None or parts.scheme not in ("http", "https") or not parts.netloc:
        return [
            Error(
                f"{name} = {base_url!r} is not an absolute http(s) URL.",
                hint=f"Set {name} to the shop's scheme and host, e.g. "
                "'https://shop.example.com'.",
                id=_id("E", 10),
            )
        ]
    return []


#: A host name or address, optionally with a port: what a URL's netloc holds
#: without user info.
_HOST = re.compile(r"^(\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9.-]+)(:\d{1,5})?$")


def _check_return_url_hosts(hosts: Any) -> list[CheckMessage]:
    name = f"{SETTING_NAME}['RETURN_URL_HOSTS']"
    if isinstance(hosts, list | tuple) and all(
        isinstance(host, str) and _HOST.match(host) for host in hosts
    ):
        return []
    return [
        Error(
            f"{name} = {hosts!r} is not a list of host names.",
            hint=f"Set {name} to the hosts (with the port, if not the default one) "
            "that invoices' return URLs may point at besides BASE_URL's, e.g. "
            "['app.example.com', 'shop.example.com:8443']: no scheme, no path.",
            id=_id("E", 16),
        )
    ]


def _positive_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and value > 0


def _check_http(value: Mapping[str, Any]) -> list[CheckMessage]:
    messages: list[CheckMessage] = []
    timeout = value.get("HTTP_TIMEOUT", DEFAULTS["HTTP_TIMEOUT"])
    pair_ok = (
        isinstance(timeout, list | tuple)
        and len(timeout) == 2
        and all(_positive_number(t) for t in timeout)
    )
    if not (_positive_number(timeout) or pair_ok):
        messages.append(
            Error(
                f"{SETTING_NAME}['HTTP_TIMEOUT'] = {timeout!r} is not a positive "
                "number of seconds or a (connect, read) pair of them.",
                hint=f"Set {SETTING_NAME}['HTTP_TIMEOUT'] = (5.0, 30.0); a provider "
                "call without a timeout can hang a worker forever.",
                id=_id("E", 11),
            )
        )
    retries = value.get("HTTP_RETRIES", DEFAULTS["HTTP_RETRIES"])
    if not (
        isinstance(retries, int) and not isinstance(retries, bool) and retries >= 0
    ):
        messages.append(
            Error(
                f"{SETTING_NAME}['HTTP_RETRIES'] = {retries!r} is not a "
                "non-negative integer.",
                hint=f"Set {SETTING_NAME}['HTTP_RETRIES'] = 3 (0 disables retries).",
                id=_id("E", 12),
            )
        )
    wait = value.get("HTTP_MAX_RETRY_AFTER", DEFAULTS["HTTP_MAX_RETRY_AFTER"])
    if not (_positive_number(wait) or wait == 0) or isinstance(wait, bool):
        messages.append(
            Error(
                f"{SETTING_NAME}['HTTP_MAX_RETRY_AFTER'] = {wait!r} is not a "
                "non-negative number of seconds.",
                hint=f"Set {SETTING_NAME}['HTTP_MAX_RETRY_AFTER'] = 30.0.",
                id=_id("E", 13),
            )
        )
    return messages


def _check_cache(alias: Any) -> list[CheckMessage]:
    caches = getattr(settings, "CACHES", {}) or {}
    if isinstance(alias, str) and alias in caches:
        return []
    return [
        Error(
            f"{SETTING_NAME}['CACHE'] = {alias!r} names no entry of settings.CACHES.",
            hint=f"Set {SETTING_NAME}['CACHE'] to one of: "
            + (", ".join(repr(c) for c in caches) or "(none: add settings.CACHES)")
            + ". Provider tokens and their refresh lock live there.",
            id=_id("E", 14),
        )
    ]


# --- the emulators --------------------------------------------------------------

_EMULATOR_APP = "django_payments_ru.emulator"
_EMULATOR_URLS = "django_payments_ru.emulator.urls"
#: The application namespace of the emulator URLs (``app_name`` of its urls).
_EMULATOR_NAMESPACE = "payments_ru_emulator"


def _includes_emulator(patterns: Iterable[Any]) -> bool:
    for pattern in patterns:
        if not isinstance(pattern, URLResolver):
            continue
        module = pattern.urlconf_name
        name = module if isinstance(module, str) else getattr(module, "__name__", "")
        if name == _EMULATOR_URLS or pattern.app_name == _EMULATOR_NAMESPACE:
            return True
        if _includes_emulator(pattern.url_patterns):
            return True
    return False


def _emulator_urls_included() -> bool:
    """Whether the root URLconf includes the emulator URLs, at any depth and
    under any prefix or instance namespace."""
    if not getattr(settings, "ROOT_URLCONF", None):
        return False
    try:
        patterns = get_resolver().url_patterns
        return _includes_emulator(patterns)
    except Exception:
        # A URLconf that cannot load is for Django's own URL check to report,
        # with its error; these checks must not hide it behind another one.
        return False


@register(Tags.security)
def check_emulator_not_in_production(
    app_configs: Any = None, **kwargs: Any
) -> list[CheckMessage]:
    """The emulators with ``DEBUG`` off: on an emulator's pay page anyone pays
    an invoice without money, and the emulator signs the webhook that marks it
    paid with the secret in ``PAYMENTS_RU_EMULATOR``."""
    if settings.DEBUG:
        return []
    found = []
    if apps.is_installed(_EMULATOR_APP):
        found.append(f"{_EMULATOR_APP!r} is in INSTALLED_APPS")
    if _emulator_urls_included():
        found.append(f"the URLconf includes {_EMULATOR_URLS}")
    if not found:
        return []
    return [
        Warning(
            "The payment provider emulators are enabled while DEBUG is off: "
            + " and ".join(found)
            + ".",
            hint="An emulator pays invoices without money: remove "
            f"{_EMULATOR_APP!r} from INSTALLED_APPS and "
            f"include({_EMULATOR_URLS!r}) from the URLconf in production. On a "
            "staging site that needs them, silence this warning with "
            "SILENCED_SYSTEM_CHECKS = ['payments_ru.W003'].",
            id=_id("W", 3),
        )
    ]


@register(Tags.urls)
def check_emulator_urls_have_the_app(
    app_configs: Any = None, **kwargs: Any
) -> list[CheckMessage]:
    """The emulator URLs without the emulator app: its models (the emulated
    payments) cannot load, so the included URLs serve nothing."""
    if apps.is_installed(_EMULATOR_APP) or not _emulator_urls_included():
        return []
    return [
        Error(
            f"The URLconf includes {_EMULATOR_URLS}, but {_EMULATOR_APP!r} is not "
            "in INSTALLED_APPS: the emulators serve nothing.",
            hint=f"For development, add {_EMULATOR_APP!r} to INSTALLED_APPS (its "
            "tables hold the emulated payments); otherwise remove "
            f"path('emulator/', include({_EMULATOR_URLS!r})) from the URLconf.",
            id=_id("E", 18),
        )
    ]


@register()
def check_provider_health(app_configs: Any = None, **kwargs: Any) -> list[CheckMessage]:
    """What each configured provider says the merchant must act on now
    (:meth:`~django_payments_ru.providers.base.BaseProvider.health`: a blocked
    API key), one warning per problem naming the alias. A provider that cannot
    be built is reported by the other checks."""
    from . import registry

    value = getattr(settings, SETTING_NAME, None)
    providers = value.get("PROVIDERS") if isinstance(value, Mapping) else None
    if not isinstance(providers, Mapping):
        return []
    messages: list[CheckMessage] = []
    for alias in providers:
        try:
            provider = registry.get_provider(alias)
        except Exception:  # noqa: S112 - a broken alias has its own errors above
            continue
        try:
            problems = provider.health()
        except Exception as exc:  # a check must report, not crash
            problems = [f"its health cannot be read ({type(exc).__name__})."]
        messages += [
            Warning(
                f"{_PROVIDERS}[{alias!r}]: {problem}",
                obj=alias,
                id=_id("W", 4),
            )
            for problem in problems
        ]
    return messages
