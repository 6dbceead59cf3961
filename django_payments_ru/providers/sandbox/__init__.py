"""The built-in sandbox provider: ``django_payments_ru.providers.sandbox.Provider``."""

from .provider import Provider

__all__ = ["Provider"]
