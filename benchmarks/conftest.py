"""``make bench``: the benchmarks, never part of ``make test``.

They run only when ``benchmarks`` is named on the command line (``pytest
benchmarks --benchmark-only``, which ``make bench`` runs); ``pytest`` in the
repository root collects ``tests`` only (``testpaths``), and a ``pytest .``
skips them. They report figures and assert no threshold.

The webhook benchmarks (``test_bench_webhooks.py``) print their tables at the
end of the run. Environment:

``DATABASE_URL``
    ``postgres://...`` adds the PostgreSQL runs to the SQLite ones.
``BENCH_LARGE=1``
    Also the runs with 1,000,000 invoices in the table (``BENCH_LARGE_ROWS``),
    beside an empty one: about a minute per database.
``BENCH_ADMIN=1``
    Also the admin's list pages, filters and searches with 1,000,000 invoices
    and 200,000 webhook events (PostgreSQL only; ``benchmarks/admin_scale.py``).
``BENCH_REPORT=path``
    Also write the tables there (the results as JSON when ``path`` ends in
    ``.json``); nothing is written otherwise.
``BENCH_ROUNDS``, ``BENCH_REQUESTS``, ``BENCH_START_ROUNDS``
    Calls per kind in-process (500), under gunicorn (1200), of
    ``start_payment`` (200): see ``benchmarks/scenarios.py``.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest

from . import report

HERE = Path(__file__).resolve().parent
RESULTS = pytest.StashKey[list]()
ADMIN = pytest.StashKey[list]()


@pytest.fixture
def admin_tables(request: pytest.FixtureRequest) -> list[str]:
    """Where the admin benchmark leaves its table."""
    return request.config.stash.setdefault(ADMIN, [])


@pytest.fixture
def bench_results(request: pytest.FixtureRequest) -> list[dict[str, Any]]:
    """Where each webhook benchmark leaves its result for the tables."""
    return request.config.stash.setdefault(RESULTS, [])


def _named(config: pytest.Config) -> bool:
    base = config.invocation_params.dir
    for arg in config.args:
        path = (base / arg.split("::", 1)[0]).resolve()
        if path == HERE or HERE in path.parents:
            return True
    return False


def pytest_collection_modifyitems(config: pytest.Config, items: list) -> None:
    if _named(config):
        return
    skip = pytest.mark.skip(reason="benchmarks run with make bench (pytest benchmarks)")
    for item in items:
        if HERE in Path(str(item.fspath)).resolve().parents:
            item.add_marker(skip)


@pytest.hookimpl(trylast=True)
def pytest_terminal_summary(terminalreporter: Any, config: pytest.Config) -> None:
    for table in config.stash.get(ADMIN, []):
        terminalreporter.write_sep("=", "admin at scale")
        terminalreporter.write_line(table)
    results = config.stash.get(RESULTS, [])
    if not results:
        return
    about = report.machine()
    text = report.render(results, about, report.command(config.invocation_params.args))
    terminalreporter.write_sep("=", "webhook benchmarks")
    terminalreporter.write_line(text)
    path = os.environ.get("BENCH_REPORT")
    if path:
        report.write(path, results, text, about)
        terminalreporter.write_line(f"(written to {path})")
