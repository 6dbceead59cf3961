"""QuantaPay: ``django_payments_ru.providers.quantapay.Provider``."""

from .provider import Provider

__all__ = ["Provider"]
