"""Life-Pay: ``django_payments_ru.providers.lifepay.Provider``.

The ``BACKEND`` class :class:`Provider` builds, per alias, the class of the
surface its ``surface`` option names: :class:`A1LiteProvider` (``"a1lite"``,
:mod:`.a1lite`) or :class:`EcomProvider` (``"ecom"``, :mod:`.ecom`).
"""

from .a1lite import A1LiteProvider
from .ecom import EcomProvider
from .provider import Provider

# An alias is always one of the surfaces, each with its own exact attributes
# (capabilities, currencies, checkout); the docs' matrix has a row for each.
Provider.surfaces = (A1LiteProvider, EcomProvider)

__all__ = ["A1LiteProvider", "EcomProvider", "Provider"]
