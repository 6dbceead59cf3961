from __future__ import annotations

from typing import Any

from django.apps import AppConfig
from django.core.signals import setting_changed
from django.utils.translation import gettext_lazy as _


def _on_setting_changed(*, setting: str, **kwargs: Any) -> None:
    if setting in ("PAYMENTS_RU", "CACHES"):
        from . import registry

        registry.reset()


class PaymentsRuConfig(AppConfig):
    name = "django_payments_ru"
    label = "django_payments_ru"
    verbose_name = _("Payments")
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        from . import celery_checks, checks  # noqa: F401  (registers the system checks)

        setting_changed.connect(_on_setting_changed, dispatch_uid="payments_ru_reset")
