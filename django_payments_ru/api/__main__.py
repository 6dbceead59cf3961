"""``python -m django_payments_ru.api [--write FILE | --check FILE]``: the
API's OpenAPI schema as checked into the docs (:func:`.schema.canonical_schema`).

Runs with ``DJANGO_SETTINGS_MODULE`` when it is set, else with minimal settings
of its own: the checked-in schema does not depend on a project."""

from __future__ import annotations

import os
import sys


def _setup_django() -> None:
    import django
    from django.conf import settings as django_settings

    if not django_settings.configured and not os.environ.get("DJANGO_SETTINGS_MODULE"):
        # The schema needs no project: the app, DRF and what the models use.
        django_settings.configure(
            SECRET_KEY="schema-generation-only",
            USE_TZ=True,
            USE_I18N=True,
            LANGUAGE_CODE="en",
            INSTALLED_APPS=[
                "django.contrib.auth",
                "django.contrib.contenttypes",
                "django.contrib.sessions",
                "rest_framework",
                "django_payments_ru",
            ],
            DATABASES={
                "default": {"ENGINE": "django.db.backends.sqlite3", "NAME": ":memory:"}
            },
            DEFAULT_AUTO_FIELD="django.db.models.BigAutoField",
        )
    django.setup()


if __name__ == "__main__":
    _setup_django()
    from .schema import main

    sys.exit(main())
