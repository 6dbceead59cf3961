"""Settings of the processes that the fault tests start (Celery workers,
gunicorn): the test suite's settings, on the test database the pytest run
created, with a real broker and ``WEBHOOK_PROCESSING = "celery"``.

Every value comes from the environment the test sets (``tests/celery_procs.py``):
``FAULTS_DB_NAME``, ``FAULTS_BROKER_URL``, ``FAULTS_QUEUE`` (a queue of the test's
own, so that no other run's worker takes its tasks) and
``FAULTS_TRANSPORT_OPTIONS`` (JSON).
"""

import json
import os

from tests.settings import *  # noqa: F403
from tests.settings import DATABASES, PAYMENTS_RU

DATABASES["default"]["NAME"] = os.environ["FAULTS_DB_NAME"]

CELERY_BROKER_URL = os.environ["FAULTS_BROKER_URL"]
CELERY_TASK_ALWAYS_EAGER = False
CELERY_TASK_DEFAULT_QUEUE = os.environ["FAULTS_QUEUE"]
CELERY_BROKER_TRANSPORT_OPTIONS = json.loads(
    os.environ.get("FAULTS_TRANSPORT_OPTIONS") or "{}"
)
# One message at a time per worker process: a killed worker holds only the task
# it was running.
CELERY_WORKER_PREFETCH_MULTIPLIER = 1

PAYMENTS_RU = {**PAYMENTS_RU, "WEBHOOK_PROCESSING": "celery"}
