"""Life-Pay: ``django_payments_ru.providers.lifepay.Provider``."""

from .provider import Provider

__all__ = ["Provider"]
