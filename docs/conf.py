"""Sphinx configuration of the django-payments-ru documentation.

Build with ``make docs`` (``sphinx-build -W --keep-going -b html docs
docs/_build/html``); Read the Docs builds it from ``.readthedocs.yaml`` with the
package installed with its ``[docs]`` extra, and nothing else. The API
reference uses autodoc, which imports the models, so Django is set up here
with the few settings importing them needs (not the test suite's, which need
the test extras and the example shop); ``DJANGO_SETTINGS_MODULE``, when set,
wins.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

DOCS = Path(__file__).resolve().parent
ROOT = DOCS.parent
# The package of this checkout, before any installed copy of it.
sys.path.insert(0, str(ROOT))
# The local extensions (the providers' feature matrix).
sys.path.insert(1, str(DOCS / "_ext"))

import django  # noqa: E402
from django.conf import settings  # noqa: E402

if not os.environ.get("DJANGO_SETTINGS_MODULE") and not settings.configured:
    settings.configure(
        INSTALLED_APPS=[
            "django.contrib.auth",
            "django.contrib.contenttypes",
            "django_payments_ru",
            "django_payments_ru.emulator",
        ],
        DATABASES={"default": {"ENGINE": "django.db.backends.sqlite3"}},
        SECRET_KEY="docs-build-only",
        USE_TZ=True,
        DEFAULT_AUTO_FIELD="django.db.models.BigAutoField",
    )
django.setup()

from django_payments_ru import __version__  # noqa: E402

# -- Project -------------------------------------------------------------------

project = "django-payments-ru"
author = "django-payments-ru contributors"
copyright = "django-payments-ru contributors"
release = __version__
version = ".".join(__version__.split(".")[:2])

# -- General -------------------------------------------------------------------

extensions = [
    "sphinx.ext.autodoc",
    "sphinx.ext.viewcode",
    "provider_matrix",  # docs/_ext/provider_matrix.py: .. provider-matrix::
]
exclude_patterns = ["_build", "_ext"]
templates_path: list[str] = []
nitpicky = False
default_role = "literal"
primary_domain = "py"
highlight_language = "python3"

# -- autodoc -------------------------------------------------------------------

autodoc_member_order = "bysource"
autodoc_typehints = "signature"
autodoc_preserve_defaults = True
autoclass_content = "class"

# -- HTML ----------------------------------------------------------------------

html_theme = "alabaster"
html_title = f"django-payments-ru {release}"
html_static_path: list[str] = []
html_theme_options = {
    "description": "Russian payment providers for Django",
    "fixed_sidebar": True,
    "page_width": "1100px",
    "sidebar_width": "240px",
}
html_sidebars = {
    "**": ["about.html", "navigation.html", "relations.html", "searchbox.html"]
}
