"""Ready for Django 6: a deprecation warning of Django 6.0 or 6.1 fails the
suite, in a test and while Django sets up (tests/deprecations.py)."""

from __future__ import annotations

import os
import subprocess
import sys
import warnings
from pathlib import Path

import django
import pytest

from tests.deprecations import CATEGORIES, NAMES

ROOT = Path(__file__).resolve().parent.parent


def test_the_installed_django_has_the_warnings_it_should():
    # A filter on a class that was renamed away would check nothing.
    if django.VERSION >= (5, 1):
        expected = list(NAMES)
    elif django.VERSION >= (5, 0):
        expected = ["RemovedInDjango60Warning"]
    else:
        expected = []
    assert [category.__name__ for category in CATEGORIES] == expected


@pytest.mark.parametrize("category", CATEGORIES, ids=lambda c: c.__name__)
def test_a_deprecation_fails_a_test(category):
    with pytest.raises(category, match="probe"):
        warnings.warn("probe", category, stacklevel=1)


@pytest.mark.parametrize("category", CATEGORIES, ids=lambda c: c.__name__)
@pytest.mark.parametrize("with_settings", [True, False], ids=["settings", "alone"])
def test_a_deprecation_fails_djangos_set_up(category, with_settings):
    # What Django imports while it sets up (models, app configs) runs after
    # the test settings are imported: a warning there is an error too. Without
    # the settings, Python shows it or ignores it, and goes on.
    code = "; ".join(
        [
            "import warnings",
            *(["import tests.settings"] if with_settings else []),
            f"from {category.__module__} import {category.__name__}",
            f"warnings.warn('probe', {category.__name__})",
        ]
    )
    env = {k: v for k, v in os.environ.items() if k != "PYTHONWARNINGS"}
    done = subprocess.run(
        [sys.executable, "-c", code],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert (done.returncode != 0) is with_settings, done.stderr
    if with_settings:
        assert f"{category.__name__}: probe" in done.stderr.splitlines()[-1]
