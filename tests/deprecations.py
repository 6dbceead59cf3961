"""Ready for Django 6: the deprecation warnings of Django's next versions are
errors in the whole suite (docs/compatibility.rst).

Two places install them, because pytest-django sets Django up before any
conftest is imported: ``tests/settings.py`` calls :func:`fail_on_them` while
Django imports the settings (so a deprecated call in a model, an app config or
a migration module imported at set-up fails the run), and ``tests/conftest.py``
adds them to pytest's ``filterwarnings`` for every test. A class that the
installed Django lacks (Django 4.2 has neither) is left out, so the same suite
runs there.
"""

from __future__ import annotations

import warnings

from django.utils import deprecation

#: The warnings of what Django 6.0 and 6.1 remove.
NAMES = ("RemovedInDjango60Warning", "RemovedInDjango61Warning")
#: Those of them that the installed Django defines.
CATEGORIES: tuple[type[Warning], ...] = tuple(
    getattr(deprecation, name) for name in NAMES if hasattr(deprecation, name)
)


def fail_on_them() -> None:
    """Turn each of :data:`CATEGORIES` into an error, in front of every other
    warnings filter."""
    for category in CATEGORIES:
        warnings.filterwarnings("error", category=category)


def ini_lines() -> list[str]:
    """The same as pytest ``filterwarnings`` lines."""
    return [f"error::{c.__module__}.{c.__qualname__}" for c in CATEGORIES]
