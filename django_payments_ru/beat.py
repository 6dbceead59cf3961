"""The Celery beat schedule of the app's jobs (:mod:`django_payments_ru.jobs`).

Importable from the settings (it loads no model)::

    from django_payments_ru.beat import BEAT_SCHEDULE

    CELERY_BEAT_SCHEDULE = {**BEAT_SCHEDULE}

The sweeper runs every minute, reconciliation every 10 minutes, expiry every
15 minutes (docs/operations.rst).
"""

from __future__ import annotations

from typing import Any

from celery.schedules import crontab

#: ``{name: {"task", "schedule"}}``, in the shape of ``CELERY_BEAT_SCHEDULE``.
BEAT_SCHEDULE: dict[str, dict[str, Any]] = {
    "payments-ru-sweep-events": {
        "task": "django_payments_ru.sweep_events",
        "schedule": crontab(),  # every minute
    },
    "payments-ru-reconcile": {
        "task": "django_payments_ru.reconcile",
        "schedule": crontab(minute="*/10"),
    },
    "payments-ru-expire": {
        "task": "django_payments_ru.expire",
        "schedule": crontab(minute="*/15"),
    },
}
