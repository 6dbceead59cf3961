"""The shop's Celery app.

Start a worker with ``celery -A example_project worker -l info`` (from
``example_project/``) once ``CELERY_BROKER_URL`` is set; without a broker the
settings run every task eagerly, in the web process.
"""

import os

from celery import Celery

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "example_project.settings")

app = Celery("example_project")
app.config_from_object("django.conf:settings", namespace="CELERY")
# Finds django_payments_ru.tasks and the tasks of any other installed app.
app.autodiscover_tasks()
# Celery's current app is per thread: every thread of the web server (runserver
# serves each request in one) queues to this app, not to Celery's fallback.
app.set_default()
# The beat schedule (sweeper, reconciliation, expiry) is CELERY_BEAT_SCHEDULE in
# settings.py: run it with ``celery -A example_project beat``.
