"""Pay links: one signed URL per invoice, ``<prefix>/pay/<token>/``.

The token is the invoice's reference signed with the project's ``SECRET_KEY``
(:class:`django.core.signing.Signer`, salted; no timestamp, so an invoice has
one link, the same in the admin and in every e-mail): it cannot be guessed or
altered, and it does not expire (the invoice does: once it cannot be paid, the
link shows its state). Rotating ``SECRET_KEY`` (without ``SECRET_KEY_FALLBACKS``)
invalidates the links already sent.
"""

from __future__ import annotations

import uuid

from django.core import signing
from django.http import HttpRequest
from django.urls import reverse

from .conf import payments_settings
from .exceptions import ConfigurationError
from .models import Invoice

#: Separates these signatures from any other the project makes with its key.
SALT = "django_payments_ru.pay_link"


def _signer() -> signing.Signer:
    # Built per call: SECRET_KEY (and its fallbacks) may change in tests.
    return signing.Signer(salt=SALT)


def make_token(invoice: Invoice) -> str:
    """The signed token of ``invoice``'s pay link: ``<hex reference>:<signature>``."""
    return _signer().sign(invoice.uuid.hex)


def read_token(token: str) -> uuid.UUID | None:
    """The invoice reference ``token`` was made for; ``None`` when it was not
    made by :func:`make_token` with this project's key (tampered, truncated)."""
    try:
        return uuid.UUID(hex=_signer().unsign(token))
    except (signing.BadSignature, ValueError):
        return None


def pay_path(invoice: Invoice) -> str:
    """The pay link's path (``/payments/pay/<token>/``)."""
    return reverse("django_payments_ru:pay", kwargs={"token": make_token(invoice)})


def pay_link(invoice: Invoice, request: HttpRequest | None = None) -> str:
    """The absolute pay link of ``invoice``, on ``BASE_URL``'s host when it is
    set, else on the request's; for an e-mail, a message or the admin."""
    path = pay_path(invoice)
    base = payments_settings.BASE_URL
    if base:
        return base.rstrip("/") + path
    if request is not None:
        return request.build_absolute_uri(path)
    raise ConfigurationError(
        "Set PAYMENTS_RU['BASE_URL'] (e.g. 'https://shop.example.com'): an "
        "absolute pay link cannot be built outside a request without it."
    )
