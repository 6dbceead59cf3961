from __future__ import annotations

from typing import Any

from django.apps import AppConfig
from django.core.signals import setting_changed
from django.utils.translation import gettext_lazy as _

SETTING_NAME = "PAYMENTS_RU_EMULATOR"


def _on_setting_changed(*, setting: str, **kwargs: Any) -> None:
    # Counters of settings-driven faults and rate limits belong to one
    # configuration: a new configuration (override_settings) starts from zero.
    if setting == SETTING_NAME:
        from . import faults, limits

        faults.reset()
        limits.reset()
    # The emulators served follow the configured providers and the EMULATORS
    # list (see registry), as the provider registry follows PAYMENTS_RU.
    if setting in ("PAYMENTS_RU", SETTING_NAME):
        from . import registry

        registry.reset()


class EmulatorConfig(AppConfig):
    name = "django_payments_ru.emulator"
    label = "payments_ru_emulator"
    verbose_name = _("Payment provider emulators")
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        setting_changed.connect(
            _on_setting_changed, dispatch_uid="payments_ru_emulator_reset"
        )
