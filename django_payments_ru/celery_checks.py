"""System checks of the Celery wiring (``manage.py check``), for
``PAYMENTS_RU["WEBHOOK_PROCESSING"] = "celery"``.

========================  ====================================================
``payments_ru.W005``      no Celery app of the project is loaded: the tasks
                          would go to Celery's fallback app and its default
                          broker, where no worker listens
``payments_ru.W006``      tasks run eagerly (``CELERY_TASK_ALWAYS_EAGER``)
                          while ``DEBUG`` is off
``payments_ru.W007``      the Celery app does not read ``CELERY_BROKER_URL``
                          from the Django settings
========================  ====================================================

Registered when the app is ready (``django_payments_ru.apps``). The checks look
at the app that a request thread would use, since that is the one the webhook
view queues its tasks with.
"""

from __future__ import annotations

import threading
from typing import TYPE_CHECKING, Any

from django.conf import settings
from django.core.checks import CheckMessage, Warning, register

from .conf import DEFAULTS, SETTING_NAME

if TYPE_CHECKING:
    from celery import Celery

__all__ = ["check_celery_wiring"]

#: The name Celery gives the app it creates when no other one is current.
_FALLBACK_NAME = "default"


def _is_fallback(app: Celery) -> bool:
    from celery import _state

    return app is _state.default_app and app.main == _FALLBACK_NAME


def _app_of_a_request_thread() -> Celery:
    """The Celery app a task resolves to in a thread other than this one: a
    request of a threaded server (runserver, gunicorn ``--threads``) runs there.
    Celery's current app is per thread; a project app that is not the default
    one (``app.set_default()``) is current only in the thread that made it."""
    from celery import current_app

    found: list[Celery] = []
    thread = threading.Thread(
        target=lambda: found.append(current_app._get_current_object()),
        name="payments-ru-celery-check",
    )
    thread.start()
    thread.join()
    return found[0]


def _project_apps() -> list[Celery]:
    from celery import _state

    return [app for app in _state._get_active_apps() if not _is_fallback(app)]


def _mode() -> Any:
    value = getattr(settings, SETTING_NAME, None)
    if not isinstance(value, dict):
        return None  # payments_ru.E001
    return value.get("WEBHOOK_PROCESSING", DEFAULTS["WEBHOOK_PROCESSING"])


@register()
def check_celery_wiring(app_configs: Any = None, **kwargs: Any) -> list[CheckMessage]:
    """In ``"celery"`` mode: a project Celery app is loaded in every thread, it
    reads the Django settings, and it does not run tasks eagerly in
    production."""
    if _mode() != "celery":
        return []
    app = _app_of_a_request_thread()
    if _is_fallback(app):
        return [_not_loaded()]
    messages: list[CheckMessage] = []
    if app.conf.task_always_eager and not settings.DEBUG:
        messages.append(
            Warning(
                f"{SETTING_NAME}['WEBHOOK_PROCESSING'] is 'celery' but Celery runs "
                "tasks eagerly (CELERY_TASK_ALWAYS_EAGER) while DEBUG is off: "
                "webhooks are processed inside their request and no worker is "
                "used.",
                hint="In production set CELERY_TASK_ALWAYS_EAGER = False (and "
                "CELERY_BROKER_URL), and run a worker: celery -A yourproject "
                "worker. Or set WEBHOOK_PROCESSING to 'sync'.",
                obj=app.main,
                id="payments_ru.W006",
            )
        )
    broker = getattr(settings, "CELERY_BROKER_URL", None)
    if broker and app.conf.broker_url != broker:
        messages.append(
            Warning(
                f"The Celery app {app.main!r} does not use settings."
                "CELERY_BROKER_URL: its tasks go to another broker than the "
                "one the settings name.",
                hint="Configure the app from the Django settings in "
                "yourproject/celery.py: app.config_from_object("
                "'django.conf:settings', namespace='CELERY').",
                obj=app.main,
                id="payments_ru.W007",
            )
        )
    return messages


def _not_loaded() -> CheckMessage:
    if _project_apps():
        hint = (
            "A Celery app exists but is current only in the thread that created "
            "it: call app.set_default() after creating it in yourproject/celery.py, "
            "so that every thread of the web server queues to it."
        )
    else:
        hint = (
            "Create the app in yourproject/celery.py and load it with Django: add "
            "'from .celery import app as celery_app' to yourproject/__init__.py "
            "(see the Celery section of the configuration docs)."
        )
    return Warning(
        f"{SETTING_NAME}['WEBHOOK_PROCESSING'] is 'celery' but no Celery app of the "
        "project is loaded: webhook events would be queued to Celery's fallback "
        "app and its default broker, where no worker takes them, and stay "
        "received.",
        hint=hint,
        id="payments_ru.W005",
    )
