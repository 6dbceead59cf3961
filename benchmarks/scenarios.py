"""One part of the webhook benchmarks on one database server, in a process of
its own.

    DATABASE_URL=... python -m benchmarks.scenarios PART --out RESULT.json

The benchmarks (``benchmarks/test_bench_webhooks.py``) run each part this way,
once per database server: Django knows one default database per process, and
every part starts from databases of its own (created on ``DATABASE_URL``'s
server, migrated, dropped at the end). The parts:

``webhooks-in-process``
    First and duplicate deliveries through ``django.test.Client``, this app's
    view and the floor round-robin, then the statements of one of each.
``webhooks-gunicorn``
    The same under gunicorn with 2 sync workers and 4 client threads.
``start-payment``
    ``services.start_payment`` against the PayConnect emulator (served by
    gunicorn) and a bare ``requests`` call to the same endpoint, alternately.
``webhooks-large``
    Both webhook measurements on two databases side by side, one with an empty
    invoice table and one with ``BENCH_LARGE_ROWS`` invoices (1,000,000),
    alternating between them in blocks.

How many calls (environment): ``BENCH_ROUNDS`` per kind in-process (500),
``BENCH_REQUESTS`` per kind under gunicorn (1200), ``BENCH_START_ROUNDS``
(200). Each kind gets a warm-up that is not counted. Progress goes to stderr.
"""

from __future__ import annotations

import argparse
import copy
import json
import os
import sqlite3
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from typing import Any

import django

os.environ["DJANGO_SETTINGS_MODULE"] = "benchmarks.settings"
django.setup()

import requests  # noqa: E402
from django.conf import settings  # noqa: E402
from django.db import connection  # noqa: E402
from django.test import Client, override_settings  # noqa: E402

from django_payments_ru import services  # noqa: E402
from django_payments_ru.models import Invoice  # noqa: E402
from django_payments_ru.providers.payconnect.provider import (  # noqa: E402
    DEFAULT_SCOPE,
)
from django_payments_ru.registry import get_provider  # noqa: E402
from django_payments_ru.status import InvoiceStatus  # noqa: E402

from . import harness  # noqa: E402

ROUNDS = int(os.environ.get("BENCH_ROUNDS", "500"))
REQUESTS = int(os.environ.get("BENCH_REQUESTS", "1200"))
START_ROUNDS = int(os.environ.get("BENCH_START_ROUNDS", "200"))
LARGE_ROWS = int(os.environ.get("BENCH_LARGE_ROWS", "1000000"))
WARMUP = 20  # rounds in-process and of start_payment
HTTP_WARMUP = 40  # deliveries of each kind under gunicorn: both workers warm
THREADS = 4
WORKERS = 2
BLOCKS = 4  # of the alternating measurements


def log(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


# --- the database -----------------------------------------------------------------


@contextmanager
def own_databases(count: int = 1) -> Iterator[list[str]]:
    """``count`` new, migrated databases on the configured server, dropped
    afterwards; yields their names, the connection on the first."""
    old_name = connection.settings_dict["NAME"]
    test = connection.settings_dict.setdefault("TEST", {})
    first = test.get("NAME")
    names: list[str] = []
    try:
        for i in range(count):
            if i:
                root, dot, ext = str(first).rpartition(".")
                test["NAME"] = f"{root}_{i}.{ext}" if dot else f"{first}_{i}"
            names.append(
                connection.creation.create_test_db(
                    verbosity=0, autoclobber=True, serialize=False
                )
            )
        use(names[0])
        yield names
    finally:
        for name in reversed(names):
            use(name)
            connection.creation.destroy_test_db(old_name, verbosity=0)
        test["NAME"] = first


def use(name: str) -> None:
    """Point the default connection at the database ``name`` (connected)."""
    if connection.settings_dict["NAME"] != name:
        connection.close()
        connection.settings_dict["NAME"] = name
        settings.DATABASES["default"]["NAME"] = name
    connection.ensure_connection()


def describe_database() -> dict[str, Any]:
    with connection.cursor() as cursor:
        if connection.vendor == "postgresql":
            found = {}
            for name in (
                "server_version",
                "synchronous_commit",
                "fsync",
                "shared_buffers",
            ):
                cursor.execute(f"SHOW {name}")
                found[name] = cursor.fetchone()[0]
            return {
                "vendor": "postgresql",
                "version": found.pop("server_version").split()[0],
                "settings": found,
            }
        cursor.execute("PRAGMA journal_mode")
        journal = cursor.fetchone()[0]
        cursor.execute("PRAGMA synchronous")
        synchronous = {0: "off", 1: "normal", 2: "full", 3: "extra"}.get(
            cursor.fetchone()[0], "?"
        )
    return {
        "vendor": "sqlite",
        "version": sqlite3.sqlite_version,
        "settings": {"journal_mode": journal, "synchronous": synchronous},
    }


# --- the parts --------------------------------------------------------------------


def _rows(mode: str, filled: int, figures: dict[str, harness.Figures]) -> list[dict]:
    rows = []
    for name, found in figures.items():
        view, kind = name.split("/")
        rows.append(
            {"mode": mode, "filled": filled, "view": view, "kind": kind}
            | found.as_json()
        )
    return rows


def _check_paid(targets: dict[str, harness.Target]) -> None:
    """Every invoice of the first deliveries (and of the duplicate) is paid: the
    figures are of webhooks that did their work."""
    for view in ("app", "floor"):
        deliveries = targets[f"{view}/first"].deliveries
        refs = [harness.invoice_ref(d) for d in deliveries]
        refs.append(harness.invoice_ref(targets[f"{view}/duplicate"].deliveries[0]))
        paid = Invoice.objects.filter(uuid__in=refs, status=InvoiceStatus.PAID).count()
        if paid != len(refs):
            raise AssertionError(f"{view}: {paid} of {len(refs)} invoices paid")


def webhooks_in_process(databases: list[str]) -> dict:
    log(f"in-process: {ROUNDS} rounds (+{WARMUP} warm-up) of the four kinds")
    targets = harness.webhook_targets(ROUNDS + WARMUP, "ip")
    harness.analyze()
    client = Client()
    harness.deliver_once(client, targets)
    figures = harness.in_process(targets, warmup=WARMUP, client=client)
    _check_paid(targets)
    return {
        "deliveries": _rows("in-process", 0, figures),
        "statements": statements_per_delivery(client),
    }


def statements_per_delivery(client: Client) -> list[dict]:
    """The statements of one delivery of each kind, after the timed ones (the
    connection open, every cache warm)."""
    targets = harness.webhook_targets(1, "statements")
    harness.deliver_once(client, targets)
    found = []
    for name, target in targets.items():
        view, kind = name.split("/")
        with harness.statements() as counted:
            harness.post(client, target.path, target.deliveries[0])
        found.append({"view": view, "kind": kind} | counted)
    return found


def webhooks_gunicorn(databases: list[str]) -> dict:
    log(
        f"gunicorn: {REQUESTS} deliveries (+{HTTP_WARMUP} warm-up) of each kind, "
        f"{WORKERS} sync workers, {THREADS} client threads"
    )
    targets = harness.webhook_targets(REQUESTS + HTTP_WARMUP, "gu")
    harness.analyze()
    harness.deliver_once(Client(), targets)
    with harness.gunicorn(WORKERS) as server:
        figures = harness.over_http(
            server, targets, threads=THREADS, warmup=HTTP_WARMUP
        )
    _check_paid(targets)
    return {"deliveries": _rows("gunicorn", 0, figures)}


def start_payment(databases: list[str]) -> dict:
    """``start_payment`` and a bare ``requests.Session().post`` of the same
    ``POST payments`` (body, bearer token, idempotency key), one caller,
    alternately; the emulator served by gunicorn (2 sync workers)."""
    rounds = START_ROUNDS + WARMUP
    log(f"start_payment: {START_ROUNDS} calls (+{WARMUP} warm-up) of each")
    with harness.gunicorn(WORKERS) as server:
        api = f"{server.url}/emulator/payconnect/v1/"
        config = copy.deepcopy(settings.PAYMENTS_RU)
        config["PROVIDERS"]["payconnect"]["OPTIONS"]["api_url"] = api
        config["BASE_URL"] = server.url
        with override_settings(PAYMENTS_RU=config):
            return _start_payment(api, rounds)


def _new_invoices(count: int, tag: str) -> list[Invoice]:
    return [
        services.create_invoice(
            provider="payconnect",
            amount=harness.AMOUNT,
            order_id=f"bench-{tag}-{i}",
            customer_email="customer@example.com",
        )
        for i in range(count)
    ]


def _start_payment(api: str, rounds: int) -> dict:
    ours = _new_invoices(rounds, "start-app")
    theirs = _new_invoices(rounds, "start-bare")
    harness.analyze()
    provider = get_provider("payconnect")
    bodies = [provider.payment_body(invoice) for invoice in theirs]
    timeout = (5.0, 30.0)
    session = requests.Session()
    answer = session.post(
        f"{api}auth/token",
        json={"scope": DEFAULT_SCOPE},
        headers={"Authorization": f"Bearer {settings.PAYCONNECT_SECRET}"},
        timeout=timeout,
    )
    answer.raise_for_status()
    token = answer.json()["access_token"]

    def bare(body: dict[str, Any]) -> None:
        response = session.post(
            f"{api}payments",
            json=body,
            headers={
                "Authorization": f"Bearer {token}",
                "Idempotency-Key": f"bench-{uuid.uuid4().hex}",
            },
            timeout=timeout,
        )
        if response.status_code != 201 or not response.json().get("payment_url"):
            raise AssertionError(f"{response.status_code}: {response.text[:300]}")

    calls: dict[str, Callable[[int], Any]] = {
        "start_payment": lambda i: services.start_payment(ours[i]),
        "requests": lambda i: bare(bodies[i]),
    }
    figures = {name: harness.Figures() for name in calls}
    clock = time.perf_counter
    for i in range(rounds):
        for name, call in calls.items():
            began = clock()
            call(i)
            elapsed = clock() - began
            if i >= WARMUP:
                figures[name].latencies.append(elapsed)
                figures[name].wall += elapsed
    started = Invoice.objects.filter(
        pk__in=[invoice.pk for invoice in ours], status=InvoiceStatus.PENDING
    ).exclude(provider_payment_id="")
    if started.count() != rounds:
        raise AssertionError(f"{started.count()} of {rounds} invoices started")
    # The shop side of one more start (the provider call is not a statement);
    # the invoice is created before counting.
    invoice = _new_invoices(1, "start-statements")[0]
    with harness.statements() as counted:
        services.start_payment(invoice)
    return {
        "start_payment": [
            {"client": name} | found.as_json() for name, found in figures.items()
        ],
        "start_statements": counted,
    }


def webhooks_large(databases: list[str]) -> dict:
    """The webhook kinds on two databases side by side, one with an empty
    invoice table, one with ``LARGE_ROWS`` invoices: in-process, then under
    gunicorn (a server on each), alternating between the two in blocks, so that
    their ratio, the figure for flatness with size, does not drift with the
    machine."""
    empty, large = databases
    sizes = {empty: 0, large: LARGE_ROWS}
    use(large)
    log(f"filling the invoice table with {LARGE_ROWS:,} rows")
    began = time.perf_counter()
    harness.fill_invoices(LARGE_ROWS)
    fill = time.perf_counter() - began
    log(f"filled in {fill:.0f} s")
    block, http_block = ROUNDS // BLOCKS, REQUESTS // BLOCKS
    client = Client()
    ip, gu = {}, {}
    for name in databases:
        use(name)
        ip[name] = harness.webhook_targets(WARMUP + BLOCKS * (block + 1), "ip")
        gu[name] = harness.webhook_targets(HTTP_WARMUP + BLOCKS * http_block, "gu")
        harness.analyze()
        harness.deliver_once(client, ip[name])
        harness.deliver_once(client, gu[name])

    log(
        f"in-process: {BLOCKS} x {block} rounds of the four kinds, alternating "
        f"between the empty and the {LARGE_ROWS:,}-invoice table"
    )
    figures = {name: _empty_figures(ip[name]) for name in databases}
    for b in range(-1, BLOCKS):
        for name in databases:
            use(name)  # connected before the timing starts
            if b < 0:  # warm-up
                harness.in_process(_slice(ip[name], 0, WARMUP), client=client)
                continue
            start = WARMUP + b * (block + 1)
            found = harness.in_process(
                _slice(ip[name], start, start + block + 1), warmup=1, client=client
            )
            _merge(figures[name], found)
    rows = [r for n in databases for r in _rows("in-process", sizes[n], figures[n])]

    log(f"gunicorn: {BLOCKS} x {http_block} deliveries of each kind, alternating")
    with ExitStack() as servers:
        served = {
            name: servers.enter_context(harness.gunicorn(WORKERS, database=name))
            for name in databases
        }
        figures = {name: _empty_figures(gu[name]) for name in databases}
        for name in databases:
            harness.over_http(served[name], _slice(gu[name], 0, HTTP_WARMUP))
        for b in range(BLOCKS):
            for name in databases:
                start = HTTP_WARMUP + b * http_block
                found = harness.over_http(
                    served[name],
                    _slice(gu[name], start, start + http_block),
                    threads=THREADS,
                    blocks=1,
                )
                _merge(figures[name], found)
    rows += [r for n in databases for r in _rows("gunicorn", sizes[n], figures[n])]
    for name in databases:
        use(name)
        _check_paid(ip[name])
        _check_paid(gu[name])
    return {
        "deliveries": [r for r in rows if r["filled"]],
        "baseline": [r for r in rows if not r["filled"]],
        "filled": LARGE_ROWS,
        "fill_seconds": round(fill, 1),
    }


def _slice(
    targets: dict[str, harness.Target], start: int, stop: int
) -> dict[str, harness.Target]:
    return {
        name: harness.Target(t.path, t.deliveries[start:stop])
        for name, t in targets.items()
    }


def _empty_figures(targets: dict[str, harness.Target]) -> dict[str, harness.Figures]:
    return {name: harness.Figures() for name in targets}


def _merge(into: dict[str, harness.Figures], found: dict[str, harness.Figures]) -> None:
    for name, figures in found.items():
        into[name].add(figures)


PARTS: dict[str, tuple[int, Callable[[list[str]], dict]]] = {
    # part: (databases it needs, what it runs)
    "webhooks-in-process": (1, webhooks_in_process),
    "webhooks-gunicorn": (1, webhooks_gunicorn),
    "start-payment": (1, start_payment),
    "webhooks-large": (2, webhooks_large),
}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.scenarios")
    parser.add_argument("part", choices=sorted(PARTS))
    parser.add_argument("--out", required=True, help="where the JSON result goes")
    args = parser.parse_args(argv)
    began = time.perf_counter()
    load = os.getloadavg()[0]
    count, run = PARTS[args.part]
    with own_databases(count) as names:
        database = describe_database()
        log(f"{args.part} on {database['vendor']} {database['version']}")
        result = run(names)
    result.update(
        part=args.part,
        database=database,
        seconds=round(time.perf_counter() - began, 1),
        # The machine's 1-minute load average before and after: another busy
        # process during the part shows here.
        load=[round(load, 2), round(os.getloadavg()[0], 2)],
    )
    with open(args.out, "w", encoding="utf-8") as out:
        json.dump(result, out, indent=1)


if __name__ == "__main__":
    main()
