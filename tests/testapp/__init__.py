"""The test suite's Celery app: reads CELERY_* from Django settings (eager unless
CELERY_BROKER_URL is set)."""

from celery import Celery

celery_app = Celery("tests")
celery_app.config_from_object("django.conf:settings", namespace="CELERY")
celery_app.set_default()
