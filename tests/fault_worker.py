"""The Celery app of the workers the fault tests start
(``celery -A tests.fault_worker worker``).

What the workers do is reported to Redis (``FAULTS_REDIS_URL``) under the
test's prefix (``FAULTS_PREFIX``), since the test runs in another process:

``<prefix>:ready``
    A set of the pids of the workers that are ready.
``<prefix>:running``
    The pid of the process that started the latest task (the pool's child).
``<prefix>:signals:<invoice uuid>``
    A list of ``"old->new"``, one per ``invoice_status_changed`` sent.
"""

from __future__ import annotations

import os
from typing import Any

import redis
from celery import Celery
from celery.signals import task_prerun, worker_ready

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "tests.fault_settings")

app = Celery("payments_ru_faults")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.conf.imports = ["django_payments_ru.tasks"]
app.set_default()

PREFIX = os.environ.get("FAULTS_PREFIX", "payments-ru-faults")
_redis = redis.Redis.from_url(os.environ.get("FAULTS_REDIS_URL", "redis://"))


@worker_ready.connect
def _ready(**kwargs: Any) -> None:
    _redis.sadd(f"{PREFIX}:ready", os.getpid())


@task_prerun.connect
def _running(**kwargs: Any) -> None:
    _redis.set(f"{PREFIX}:running", os.getpid())


def _count(*, invoice: Any, old_status: str, new_status: str, **kwargs: Any) -> None:
    _redis.rpush(f"{PREFIX}:signals:{invoice.uuid}", f"{old_status}->{new_status}")


def _connect() -> None:
    from django_payments_ru import signals

    signals.invoice_status_changed.connect(
        _count, weak=False, dispatch_uid="payments_ru_faults"
    )


_connect()
