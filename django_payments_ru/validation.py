"""Checks of the text the shop hands to the app, shared by the services and the
views: no text field may hold characters a column, a provider or a log cannot
take, and a return URL must lead back to the shop.

Both raise :class:`~django_payments_ru.exceptions.InvalidInput` naming the
field, before anything is written.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any
from urllib.parse import urlsplit

from django.utils.http import url_has_allowed_host_and_scheme
from django.utils.translation import gettext as _

from .conf import payments_settings
from .exceptions import ConfigurationError, InvalidInput

#: C0 and C1 control characters and lone surrogates. NUL is refused by
#: PostgreSQL (a raw DataError), a lone surrogate cannot be encoded as UTF-8 at
#: all, and the other controls break HTTP headers, signature strings and log
#: lines at the providers and here.
_UNSAFE = re.compile("[\x00-\x1f\x7f-\x9f\ud800-\udfff]")


def _describe(char: str) -> str:
    if "\ud800" <= char <= "\udfff":
        return _("an unpaired surrogate (U+%(code)04X)") % {"code": ord(char)}
    return _("a control character (U+%(code)04X)") % {"code": ord(char)}


def check_text(value: str, field: str, where: str = "") -> str:
    """``value`` unchanged, or :class:`InvalidInput` for ``field`` when it holds
    a control character or a lone surrogate (the message names ``where``, by
    default the field)."""
    found = _UNSAFE.search(value)
    if found is not None:
        raise InvalidInput(
            _("%(field)s contains %(char)s; only printable text is accepted.")
            % {"field": where or field, "char": _describe(found.group())},
            field=field,
        )
    return value


def check_texts(value: Any, field: str, where: str = "") -> Any:
    """:func:`check_text` on every string inside ``value`` (mapping keys
    included, at any depth); the message names the path, e.g.
    ``metadata['lines'][2]``."""
    where = where or field
    if isinstance(value, str):
        return check_text(value, field, where)
    if isinstance(value, Mapping):
        for key, item in value.items():
            if isinstance(key, str):
                check_text(key, field, _("a key of %(where)s") % {"where": where})
            check_texts(item, field, f"{where}[{key!r}]")
    elif isinstance(value, list | tuple):
        for index, item in enumerate(value):
            check_texts(item, field, f"{where}[{index}]")
    return value


def return_url_hosts() -> tuple[frozenset[str], bool]:
    """The hosts a return URL may point at (``BASE_URL``'s host plus
    ``RETURN_URL_HOSTS``, lower case, each with its port if it has one) and
    whether it must use https (it must when ``BASE_URL`` does)."""
    extra = payments_settings.RETURN_URL_HOSTS
    if isinstance(extra, str) or not isinstance(extra, list | tuple):
        raise ConfigurationError(
            "PAYMENTS_RU['RETURN_URL_HOSTS'] must be a list of host names, e.g. "
            "['shop.example.com', 'app.example.com']."
        )
    hosts = {str(host).strip().lower() for host in extra if str(host).strip()}
    base = urlsplit(str(payments_settings.BASE_URL or ""))
    if base.netloc:
        hosts.add(base.netloc.lower())
    return frozenset(hosts), base.scheme == "https"


def check_return_url(url: str) -> str:
    """``url`` unchanged when the customer may be sent there after paying: an
    absolute ``http(s)`` URL (``https`` when ``BASE_URL`` is) on a host of
    :func:`return_url_hosts`. Anything else (a relative or scheme-relative URL,
    ``javascript:``, another host, user info before the host, control
    characters) raises :class:`InvalidInput` for ``return_url``; so does any URL
    while neither ``BASE_URL`` nor ``RETURN_URL_HOSTS`` names the shop's host."""
    check_text(url, "return_url")
    hosts, https = return_url_hosts()
    if not hosts:
        raise InvalidInput(
            _(
                "return_url cannot be checked: set PAYMENTS_RU['BASE_URL'] to the "
                "shop's URL, or list the shop's hosts in "
                "PAYMENTS_RU['RETURN_URL_HOSTS']."
            ),
            field="return_url",
        )
    try:
        parts = urlsplit(url)
    except ValueError:  # e.g. an unbalanced "[" in the host
        parts = None
    netloc = parts.netloc.lower() if parts is not None else ""
    allowed = (
        parts is not None
        and parts.scheme.lower() in ("http", "https")
        and netloc in hosts
        # Django's own check on top: backslashes, "///", schemes it distrusts.
        and url_has_allowed_host_and_scheme(
            url, allowed_hosts={parts.netloc}, require_https=https
        )
    )
    if not allowed:
        raise InvalidInput(
            _(
                "return_url must be an absolute %(scheme)s URL on the shop's "
                "host (%(hosts)s); add other hosts to "
                "PAYMENTS_RU['RETURN_URL_HOSTS']."
            )
            % {
                "scheme": "https" if https else "http(s)",
                "hosts": ", ".join(sorted(hosts)),
            },
            field="return_url",
        )
    return url


def safe_redirect_url(url: str) -> bool:
    """Whether a URL a provider answered with may be put in front of a person
    (a pay button, an admin link): absolute http(s) with a host. A provider's
    answer is data from the network: never a ``javascript:`` or ``data:`` URL
    in the shop's page."""
    if not isinstance(url, str) or _UNSAFE.search(url):
        return False
    parts = urlsplit(url)
    return parts.scheme in ("http", "https") and bool(parts.netloc)


#: Raster image types a provider's QR code may come as inline. SVG is left out:
#: an inline SVG can carry script and links, and a QR code needs none of it.
_QR_DATA_URL = re.compile(
    r"^data:image/(png|gif|jpeg|webp);base64,[A-Za-z0-9+/]+={0,2}$"
)


def safe_image_url(url: str) -> bool:
    """Whether an image URL a provider answered with (a QR code) may be put in
    an ``<img>`` of the shop's page: what :func:`safe_redirect_url` accepts, or a
    base64 ``data:`` URL of a PNG, GIF, JPEG or WebP image."""
    if isinstance(url, str) and url.startswith("data:"):
        return bool(_QR_DATA_URL.match(url))
    return safe_redirect_url(url)
