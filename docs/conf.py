"""Sphinx configuration of the django-payments-ru documentation.

Build with ``make docs`` (``sphinx-build -W --keep-going -b html docs
docs/_build/html``). The API reference uses autodoc, so Django is set up here
with the test suite's settings; nothing beyond the package and its ``[docs]``
extra is needed.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
# tests.settings installs the example shop's app "shop" (as pytest's pythonpath
# does in pyproject.toml).
sys.path.insert(1, str(ROOT / "example_project"))
# The local extensions (the providers' feature matrix).
sys.path.insert(2, str(Path(__file__).resolve().parent / "_ext"))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "tests.settings")

import django  # noqa: E402

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
