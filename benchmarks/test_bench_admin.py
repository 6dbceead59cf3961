"""The admin at scale (``BENCH_ADMIN=1 make bench`` with ``DATABASE_URL`` on
PostgreSQL): :mod:`benchmarks.admin_scale` in a process of its own, its table
printed at the end of the run (docs/performance.rst)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

import pytest

from .test_bench_webhooks import ROOT, postgres_url


@pytest.mark.benchmark(group="admin at scale: seconds")
def test_admin_pages(benchmark: Any, admin_tables: list[str]) -> None:
    if os.environ.get("BENCH_ADMIN", "") in ("", "0"):
        pytest.skip("BENCH_ADMIN=1 runs it (about five minutes)")
    if not postgres_url():
        pytest.skip("DATABASE_URL does not point at PostgreSQL")

    def run() -> dict[str, Any]:
        env = {**os.environ, "DJANGO_SETTINGS_MODULE": "benchmarks.admin_settings"}
        with tempfile.TemporaryDirectory(prefix="payments-ru-bench-") as tmp:
            out = Path(tmp) / "admin.json"
            done = subprocess.run(  # noqa: S603 (this interpreter, fixed arguments)
                [sys.executable, "-m", "benchmarks.admin_scale", "--out", str(out)],
                cwd=ROOT,
                env=env,
                check=False,
            )
            if done.returncode:
                pytest.fail(f"benchmarks.admin_scale exited with {done.returncode}")
            return json.loads(out.read_text(encoding="utf-8"))

    result = benchmark.pedantic(run, rounds=1, iterations=1)
    admin_tables.append(result["text"])
