"""PayConnect: ``django_payments_ru.providers.payconnect.Provider``."""

from .provider import Provider

__all__ = ["Provider"]
