"""The webhook path against a floor, side by side (issue 9).

Each test is one part on one database, run by :mod:`benchmarks.scenarios` in a
process of its own (Django has one default database per process); the
pytest-benchmark row of each is the time that part took, the figures are in
the tables printed at the end (:mod:`benchmarks.report`). Parts: first and
duplicate deliveries in-process and under gunicorn, ``start_payment`` against
a bare ``requests`` call, and (``BENCH_LARGE=1``) the deliveries again with
1,000,000 invoices in the table. SQLite always; PostgreSQL when
``DATABASE_URL`` points at it.
"""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parent.parent
DATABASES = ("sqlite", "postgresql")
PARTS = ("webhooks-in-process", "webhooks-gunicorn", "start-payment", "webhooks-large")
SERVED = frozenset({"webhooks-gunicorn", "start-payment", "webhooks-large"})


def postgres_url() -> str:
    url = os.environ.get("DATABASE_URL", "")
    return url if url.split(":", 1)[0] in ("postgres", "postgresql", "pgsql") else ""


def run_part(database: str, part: str) -> dict[str, Any]:
    """``python -m benchmarks.scenarios PART`` on ``database``; its output goes
    to this test's (shown on failure, or live with ``-s``)."""
    env = {**os.environ, "DJANGO_SETTINGS_MODULE": "benchmarks.settings"}
    if database == "sqlite":
        env.pop("DATABASE_URL", None)  # a temporary SQLite file
    with tempfile.TemporaryDirectory(prefix="payments-ru-bench-") as tmp:
        out = Path(tmp) / "result.json"
        done = subprocess.run(  # noqa: S603 (this interpreter, fixed arguments)
            [sys.executable, "-m", "benchmarks.scenarios", part, "--out", str(out)],
            cwd=ROOT,
            env=env,
            check=False,
        )
        if done.returncode:
            pytest.fail(f"{part} on {database} exited with {done.returncode}")
        return json.loads(out.read_text(encoding="utf-8"))


@pytest.mark.benchmark(group="webhook benchmarks: seconds per part")
@pytest.mark.parametrize(
    ("database", "part"),
    [pytest.param(d, p, id=f"{d}-{p}") for d in DATABASES for p in PARTS],
)
def test_part(
    benchmark: Any, bench_results: list[dict[str, Any]], database: str, part: str
) -> None:
    if database == "postgresql" and not postgres_url():
        pytest.skip("DATABASE_URL does not point at PostgreSQL")
    if part == "webhooks-large" and os.environ.get("BENCH_LARGE", "") in ("", "0"):
        pytest.skip("BENCH_LARGE=1 runs it (about a minute per database)")
    if part in SERVED and importlib.util.find_spec("gunicorn") is None:
        pytest.skip(
            "gunicorn is not installed: make bench installs it (the extra bench)"
        )
    result = benchmark.pedantic(run_part, args=(database, part), rounds=1, iterations=1)
    bench_results.append(result)
