"""The tables ``make bench`` prints after the webhook benchmarks: ratios to the
floor, ``start_payment`` against a bare ``requests`` call, statements per
delivery, the absolute figures, the machine and the time each part took.

Plain Python (no Django): it reads the JSON results of
:mod:`benchmarks.scenarios`.
"""

from __future__ import annotations

import json
import os
import platform
import sqlite3
import sys
from collections.abc import Iterable, Sequence
from importlib import metadata
from typing import Any
from urllib.parse import urlsplit

LABELS = {"sqlite": "SQLite", "postgresql": "PostgreSQL"}
MODES = ("in-process", "gunicorn")
KINDS = ("first", "duplicate")


def machine() -> dict[str, Any]:
    """Where the figures come from."""

    def version(package: str) -> str:
        try:
            return metadata.version(package)
        except metadata.PackageNotFoundError:
            return "not installed"

    return {
        "cpus": len(os.sched_getaffinity(0))
        if hasattr(os, "sched_getaffinity")
        else os.cpu_count(),
        "platform": platform.platform(),
        "python": platform.python_version(),
        "django": version("Django"),
        "gunicorn": version("gunicorn"),
        "psycopg": version("psycopg"),
        "sqlite": sqlite3.sqlite_version,
    }


def command(args: Sequence[str]) -> str:
    """The command line with the environment that shaped the run (a
    ``DATABASE_URL`` without its password)."""
    shown = []
    url = os.environ.get("DATABASE_URL", "")
    if url:
        parts = urlsplit(url)
        if parts.password:
            netloc = parts.netloc.replace(f":{parts.password}@", ":***@")
            url = parts._replace(netloc=netloc).geturl()
        shown.append(f"DATABASE_URL={url}")
    shown += [
        f"{k}={v}" for k, v in sorted(os.environ.items()) if k.startswith("BENCH_")
    ]
    return " ".join([*shown, "pytest", *args])


def _table(header: Sequence[str], rows: Iterable[Sequence[str]]) -> list[str]:
    rows = [list(header), *[list(r) for r in rows]]
    widths = [max(len(r[i]) for r in rows) for i in range(len(header))]
    lines = [
        "  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)) for r in rows
    ]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return [line.rstrip() for line in lines]


def _ratio(ours: float | None, theirs: float | None) -> str:
    if not ours or not theirs:
        return ""
    return f"{ours / theirs:.2f}x"


def _statements(s: dict[str, Any]) -> str:
    verbs = ", ".join(f"{n} {verb}" for verb, n in s["by_verb"].items())
    cell = f"{s['data']} ({verbs}), {s['commits']} commit(s)"
    if s["savepoints"]:
        cell += f", {s['savepoints']} savepoint statement(s)"
    if s["rollbacks"]:
        cell += f", {s['rollbacks']} rollback(s)"
    return cell


def _deliveries(results: list[dict]) -> dict[tuple, dict]:
    """(database, mode, filled, view, kind) -> figures."""
    found = {}
    for result in results:
        vendor = result["database"]["vendor"]
        for row in result.get("deliveries", []):
            key = (vendor, row["mode"], row["filled"], row["view"], row["kind"])
            found[key] = row
    return found


def _vendors(results: list[dict]) -> list[str]:
    seen = {r["database"]["vendor"] for r in results}
    return [v for v in LABELS if v in seen]


def _filled(label: int) -> str:
    return "empty table" if not label else f"{label:,} invoices"


def render(results: list[dict], about: dict[str, Any], invoked: str = "") -> str:
    vendors = _vendors(results)
    rows = _deliveries(results)
    out: list[str] = []
    out.append(
        f"machine: {about['cpus']} CPUs, {about['platform']}, Python "
        f"{about['python']}, Django {about['django']}, gunicorn {about['gunicorn']}"
    )
    for result in results:
        db = result["database"]
        line = f"{LABELS[db['vendor']]} {db['version']} " + " ".join(
            f"{k}={v}" for k, v in db["settings"].items()
        )
        if line not in out:
            out.append(line)
    if invoked:
        out.append(f"command: {invoked}")

    columns = [
        (v, m)
        for v in vendors
        for m in MODES
        if any(k[0] == v and k[1] == m for k in rows)
    ]
    if columns:
        out += [
            "",
            "This app / the floor, same run (deliveries per second: 1.00x is the "
            "floor's rate, higher is better; p99: 1.00x is the floor's p99, lower "
            "is better)",
        ]
        header = ["", "", *[f"{LABELS[v]} {m}" for v, m in columns]]
        body = []
        for filled in sorted({k[2] for k in rows}):
            for kind in KINDS:
                label = f"{kind} delivery" + (
                    f", {filled:,} invoices" if filled else ""
                )
                for measure, field in (("deliveries/s", "rate"), ("p99", "p99_ms")):
                    cells = []
                    for v, m in columns:
                        ours = rows.get((v, m, filled, "app", kind), {}).get(field)
                        floor = rows.get((v, m, filled, "floor", kind), {}).get(field)
                        cells.append(_ratio(ours, floor))
                    body.append([label, measure, *cells])
                    label = ""
        # (vendor, mode, view, kind) -> (filled, large / empty) of the large part.
        flat: dict[tuple, tuple[int, str]] = {}
        for result in results:
            vendor = result["database"]["vendor"]
            before = {
                (r["mode"], r["view"], r["kind"]): r for r in result.get("baseline", [])
            }
            for r in result["deliveries"] if before else []:
                empty = before.get((r["mode"], r["view"], r["kind"]), {})
                flat[(vendor, r["mode"], r["view"], r["kind"])] = (
                    r["filled"],
                    _ratio(r["rate"], empty.get("rate")),
                )
        for filled in sorted({f for f, _ in flat.values()}):
            for view in ("app", "floor"):
                for kind in KINDS:
                    cells = [
                        ratio if size == filled else ""
                        for size, ratio in (
                            flat.get((v, m, view, kind), (0, "")) for v, m in columns
                        )
                    ]
                    name = "this app" if view == "app" else "the floor"
                    label = f"{name}, {kind}: {filled:,} / empty table"
                    body.append([label, "deliveries/s", *cells])
        out += _table(header, body)

    starts = {
        r["database"]["vendor"]: {s["client"]: s for s in r["start_payment"]}
        for r in results
        if r.get("start_payment")
    }
    if starts:
        out += [
            "",
            "start_payment against the PayConnect emulator / a bare requests call "
            "to the same endpoint (one caller; lower is better)",
        ]
        order = [v for v in vendors if v in starts]
        body = []
        for field, name in (("mean_ms", "mean"), ("p50_ms", "p50"), ("p99_ms", "p99")):
            cells = []
            for v in order:
                ours, bare = (
                    starts[v]["start_payment"][field],
                    starts[v]["requests"][field],
                )
                cells.append(f"{_ratio(ours, bare)} ({ours:.2f} / {bare:.2f} ms)")
            body.append([name, *cells])
        out += _table(["", *[LABELS[v] for v in order]], body)
        cells = [
            _statements(r["start_statements"])
            for v in order
            for r in results
            if r["database"]["vendor"] == v and r.get("start_statements")
        ]
        if len(cells) == len(order):
            out += _table(
                ["", *[LABELS[v] for v in order]], [["shop-side statements", *cells]]
            )

    counted = {
        r["database"]["vendor"]: {(s["view"], s["kind"]): s for s in r["statements"]}
        for r in results
        if r.get("statements")
    }
    if counted:
        out += ["", "Statements per delivery (in-process, CaptureQueriesContext)"]
        order = [v for v in vendors if v in counted]
        body = []
        for view in ("app", "floor"):
            for kind in KINDS:
                cells = []
                for v in order:
                    s = counted[v].get((view, kind))
                    cells.append(_statements(s) if s else "")
                name = "this app" if view == "app" else "the floor"
                body.append([f"{name}, {kind}", *cells])
        out += _table(["", *[LABELS[v] for v in order]], body)

    if rows:
        out += ["", "Absolute figures"]
        listed = []
        for result in results:
            vendor = result["database"]["vendor"]
            for source, rank in (("deliveries", 0), ("baseline", 1)):
                for r in result.get(source, []):
                    table = _filled(r["filled"])
                    if source == "baseline":
                        table += f" (beside {result['filled']:,})"
                    order = (
                        list(LABELS).index(vendor),
                        MODES.index(r["mode"]),
                        r["filled"],
                        rank,
                        r["view"] != "app",
                        KINDS.index(r["kind"]),
                    )
                    listed.append((order, vendor, table, r))
        body = [
            [
                LABELS[vendor],
                r["mode"],
                table,
                "this app" if r["view"] == "app" else "floor",
                r["kind"],
                str(r["count"]),
                f"{r['rate']:.1f}",
                f"{r['mean_ms']:.2f}",
                f"{r['p50_ms']:.2f}",
                f"{r['p99_ms']:.2f}",
            ]
            for _order, vendor, table, r in sorted(listed, key=lambda x: x[0])
        ]
        header = [
            "database",
            "server",
            "table",
            "view",
            "delivery",
            "n",
            "deliveries/s",
        ]
        out += _table([*header, "mean ms", "p50 ms", "p99 ms"], body)

    out += ["", "Time per part"]
    body = []
    for r in results:
        took = f"{r['seconds']:.0f} s"
        if "fill_seconds" in r:
            took += f" (filling {r['filled']:,} invoices: {r['fill_seconds']:.0f} s)"
        load = " -> ".join(f"{x:.2f}" for x in r.get("load", []))
        body.append([LABELS[r["database"]["vendor"]], r["part"], took, load])
    out += _table(["database", "part", "took", "load average"], body)
    return "\n".join(out)


def write(path: str, results: list[dict], text: str, about: dict[str, Any]) -> None:
    """``BENCH_REPORT``: the results as JSON when the name ends in ``.json``,
    else the printed tables."""
    with open(path, "w", encoding="utf-8") as out:
        if path.endswith(".json"):
            json.dump({"machine": about, "results": results}, out, indent=1)
        else:
            out.write(text + "\n")


if __name__ == "__main__":  # python -m benchmarks.report RESULT.json ...
    loaded = []
    for name in sys.argv[1:]:
        with open(name, encoding="utf-8") as f:
            data = json.load(f)
        loaded += data.get("results", [data])
    print(render(loaded, machine()))
