"""The measuring pieces of the webhook benchmarks (used by
:mod:`benchmarks.scenarios` in a process set up with :mod:`benchmarks.settings`).

* :class:`Figures`: latencies of one kind of call, with deliveries per second,
  p50 and p99.
* Pending PayConnect invoices in bulk, and their signed ``payment.succeeded``
  webhooks (:func:`pending_invoices`, :func:`signed_webhook`).
* :func:`in_process`: calls through ``django.test.Client`` in one thread,
  round-robin over the kinds, so that whatever the machine does meanwhile
  falls on every kind alike.
* :func:`statements`: what one call sends to the database
  (``CaptureQueriesContext``), with the commits counted.
* :func:`gunicorn` and :func:`over_http`: a gunicorn server with sync workers on
  the run's database, loaded by client threads, kind after kind in blocks.
* :func:`fill_invoices`: many invoices in one ``INSERT ... SELECT``
  (``generate_series`` on PostgreSQL, a recursive CTE on SQLite), and
  :func:`analyze`, run before every measurement.
"""

from __future__ import annotations

import http.client
import json
import math
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections import Counter
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

from django.conf import settings
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from django_payments_ru.models import Invoice
from django_payments_ru.money import to_minor
from django_payments_ru.providers.payconnect.provider import (
    EVENT_ID_HEADER,
    SIGNATURE_HEADER,
    sign,
)
from django_payments_ru.status import InvoiceStatus

ROOT = Path(__file__).resolve().parent.parent
APP_URL = "/payments/webhooks/payconnect/"
FLOOR_URL = "/floor/payconnect/"
AMOUNT = Decimal("990.00")


# --- figures ----------------------------------------------------------------------


@dataclass
class Figures:
    """The latencies (seconds) of ``count`` calls of one kind, and the wall time
    they took: their sum when one caller makes them one after the other, the
    time from the first start to the last answer under concurrent load."""

    latencies: list[float] = field(default_factory=list)
    wall: float = 0.0

    def add(self, other: Figures) -> None:
        self.latencies.extend(other.latencies)
        self.wall += other.wall

    def as_json(self) -> dict[str, Any]:
        ordered = sorted(self.latencies)
        count = len(ordered)
        return {
            "count": count,
            "seconds": round(self.wall, 4),
            "rate": round(count / self.wall, 2) if self.wall else 0.0,
            "mean_ms": round(statistics.fmean(ordered) * 1000, 3),
            "p50_ms": round(statistics.median(ordered) * 1000, 3),
            "p99_ms": round(percentile(ordered, 99) * 1000, 3),
        }


def percentile(ordered: Sequence[float], pct: float) -> float:
    """The nearest-rank percentile of sorted values."""
    rank = max(1, math.ceil(pct / 100 * len(ordered)))
    return ordered[rank - 1]


# --- invoices and webhooks --------------------------------------------------------


def pending_invoices(count: int, tag: str) -> list[Invoice]:
    """``count`` PayConnect invoices waiting for their payment (``pending``, with
    the provider's payment id), each alone in its order."""
    invoices = [
        Invoice(
            provider="payconnect",
            amount=AMOUNT,
            currency="RUB",
            order_id=f"bench-{tag}-{i}",
            description=f"Order bench-{tag}-{i}",
            customer_email="customer@example.com",
            status=InvoiceStatus.PENDING,
            provider_payment_id=f"pay_{uuid.uuid4().hex[:16]}",
        )
        for i in range(count)
    ]
    Invoice.objects.bulk_create(invoices, batch_size=500)
    return invoices


@dataclass(frozen=True)
class Delivery:
    """One signed webhook, ready to post."""

    body: bytes
    headers: dict[str, str]


def signed_webhook(invoice: Invoice) -> Delivery:
    """``payment.succeeded`` for ``invoice`` as the PayConnect emulator sends it
    (payconnect.md §3.7): the payment object under ``data.object``, signed with
    the account's secret key in ``x-payconnect-signature``."""
    now = timezone.now()
    stamp = now.strftime("%Y-%m-%dT%H:%M:%SZ")
    event_id = f"evt_{uuid.uuid4().hex[:16]}"
    payment = {
        "id": invoice.provider_payment_id,
        "object": "payment",
        "status": "succeeded",
        "amount": to_minor(invoice.amount, invoice.currency),
        "currency": invoice.currency,
        "description": invoice.description,
        "customer": {"email": invoice.customer_email},
        "payment_url": f"http://127.0.0.1/pay/s/{invoice.provider_payment_id}/",
        "return_url": None,
        "metadata": {"invoice_id": str(invoice.uuid), "order_id": invoice.order_id},
        "refunded_amount": 0,
        "failure_code": None,
        "failure_message": None,
        "livemode": False,
        "created_at": (now - timedelta(minutes=1)).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "expires_at": (now + timedelta(minutes=29)).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "paid_at": stamp,
    }
    body = json.dumps(
        {
            "id": event_id,
            "type": "payment.succeeded",
            "created_at": stamp,
            "data": {"object": payment},
        },
        separators=(",", ":"),
    ).encode()
    return Delivery(
        body,
        {
            "Content-Type": "application/json",
            SIGNATURE_HEADER: sign(settings.PAYCONNECT_SECRET, body),
            EVENT_ID_HEADER: event_id,
        },
    )


def invoice_ref(delivery: Delivery) -> str:
    """The invoice reference a delivery names."""
    return json.loads(delivery.body)["data"]["object"]["metadata"]["invoice_id"]


@dataclass
class Target:
    """A kind of call: deliveries to post to ``path``, one per round."""

    path: str
    deliveries: Sequence[Delivery]


def webhook_targets(rounds: int, tag: str) -> dict[str, Target]:
    """The four kinds side by side: a first delivery (a distinct pending invoice
    each round) and a duplicate (one webhook, already delivered once, again
    every round), to this app's view and to the floor."""
    targets: dict[str, Target] = {}
    for view, path in (("app", APP_URL), ("floor", FLOOR_URL)):
        invoices = pending_invoices(rounds + 1, f"{tag}-{view}")
        firsts = [signed_webhook(invoice) for invoice in invoices]
        targets[f"{view}/first"] = Target(path, firsts[1:])
        # Delivered once by the caller (:func:`deliver_once`) before timing.
        targets[f"{view}/duplicate"] = Target(path, [firsts[0]] * rounds)
    return targets


def deliver_once(client: Client, targets: dict[str, Target]) -> None:
    """The first delivery of each duplicate, untimed."""
    for name, target in targets.items():
        if name.endswith("/duplicate"):
            post(client, target.path, target.deliveries[0])


# --- in-process -------------------------------------------------------------------


def post(client: Client, path: str, delivery: Delivery) -> None:
    response = client.post(
        path,
        data=delivery.body,
        content_type="application/json",
        headers={k: v for k, v in delivery.headers.items() if k != "Content-Type"},
    )
    if response.status_code != 200:
        raise AssertionError(
            f"POST {path} answered {response.status_code}: {response.content[:300]!r}"
        )


def in_process(
    targets: dict[str, Target], *, warmup: int = 0, client: Client | None = None
) -> dict[str, Figures]:
    """Every target's deliveries through one ``django.test.Client``, round-robin
    (round ``i`` posts delivery ``i`` of each target in turn); the first
    ``warmup`` rounds are not counted."""
    client = client or Client()
    figures = {name: Figures() for name in targets}
    rounds = min(len(t.deliveries) for t in targets.values())
    clock = time.perf_counter
    for i in range(rounds):
        for name, target in targets.items():
            start = clock()
            post(client, target.path, target.deliveries[i])
            elapsed = clock() - start
            if i >= warmup:
                figures[name].latencies.append(elapsed)
                figures[name].wall += elapsed
    return figures


# --- statements -------------------------------------------------------------------

_WRITES = frozenset({"INSERT", "UPDATE", "DELETE"})
_DATA = ("SELECT", "INSERT", "UPDATE", "DELETE", "WITH")


def count_statements(sql: Sequence[str]) -> dict[str, Any]:
    """What a list of captured SQL did: ``data`` statements (SELECT, INSERT,
    UPDATE, DELETE, WITH) and ``by_verb``; ``savepoints`` (SAVEPOINT, RELEASE,
    ROLLBACK TO); ``commits``, a COMMIT or a write outside BEGIN ... COMMIT
    (autocommit: its own transaction, its own durable commit); ``rollbacks``.
    Django logs BEGIN, COMMIT and ROLLBACK with the statements."""
    verbs = Counter[str]()
    commits = rollbacks = savepoints = 0
    in_transaction = False
    for statement in sql:
        words = statement.split(None, 2)
        verb = words[0].upper() if words else ""
        to = len(words) > 1 and words[1].upper() == "TO"
        if verb == "BEGIN":
            in_transaction = True
        elif verb == "COMMIT":
            commits += 1
            in_transaction = False
        elif verb == "ROLLBACK" and not to:
            rollbacks += 1
            in_transaction = False
        elif verb in ("SAVEPOINT", "RELEASE", "ROLLBACK"):
            savepoints += 1
        elif verb in _DATA:
            verbs[verb] += 1
            if verb in _WRITES and not in_transaction:
                commits += 1
    return {
        "data": sum(verbs.values()),
        "by_verb": {v: verbs[v] for v in _DATA if verbs[v]},
        "savepoints": savepoints,
        "commits": commits,
        "rollbacks": rollbacks,
    }


@contextmanager
def statements() -> Iterator[dict[str, Any]]:
    """What the block sends to the default database (``CaptureQueriesContext``):
    :func:`count_statements` of it, and the SQL. Filled in when the block ends."""
    found: dict[str, Any] = {}
    with CaptureQueriesContext(connection) as captured:
        yield found
    sql = [query["sql"] for query in captured.captured_queries]
    found.update(count_statements(sql), sql=sql)


# --- gunicorn ---------------------------------------------------------------------


@dataclass(frozen=True)
class Server:
    host: str
    port: int

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"


@contextmanager
def gunicorn(workers: int = 2, database: str = "") -> Iterator[Server]:
    """gunicorn with ``workers`` sync workers serving :mod:`benchmarks.urls` on
    the database ``database`` (default: this process's), on a free local port
    (the listening socket is made here and handed over, so no other process
    can take the port)."""
    listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    listener.bind(("127.0.0.1", 0))
    listener.listen(2048)
    server = Server(*listener.getsockname())
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "benchmarks.settings",
        "BENCH_DATABASE_NAME": database or str(settings.DATABASES["default"]["NAME"]),
    }
    command = [
        sys.executable,
        "-m",
        "gunicorn",
        "--workers",
        str(workers),
        "--worker-class",
        "sync",
        "--bind",
        f"fd://{listener.fileno()}",
        "--timeout",
        "120",
        "--log-level",
        "warning",
        "benchmarks.wsgi:application",
    ]
    with tempfile.TemporaryFile() as log:
        process = subprocess.Popen(  # noqa: S603 (this interpreter, fixed arguments)
            command,
            cwd=ROOT,
            env=env,
            pass_fds=(listener.fileno(),),
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        listener.close()
        try:
            _wait_until_serving(server, process, log)
            yield server
        finally:
            process.terminate()
            try:
                process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


def _log_tail(log: Any) -> str:
    log.seek(0)
    return log.read().decode(errors="replace")[-3000:]


def _wait_until_serving(server: Server, process: subprocess.Popen, log: Any) -> None:
    """Until every worker answers (each opens its database connection at its
    first request, so the warm-up rounds follow)."""
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"gunicorn exited: {_log_tail(log)}")
        try:
            status, _body = request(server, "GET", FLOOR_URL)
        except OSError:
            time.sleep(0.1)
            continue
        if status == 405:
            return
        raise RuntimeError(f"gunicorn answered {status}: {_log_tail(log)}")
    raise RuntimeError(f"gunicorn did not start: {_log_tail(log)}")


def request(
    server: Server,
    method: str,
    path: str,
    body: bytes | None = None,
    headers: dict[str, str] | None = None,
) -> tuple[int, bytes]:
    """One request on a new connection (a sync worker closes every one)."""
    conn = http.client.HTTPConnection(server.host, server.port, timeout=60)
    try:
        conn.request(method, path, body=body, headers=headers or {})
        response = conn.getresponse()
        return response.status, response.read()
    finally:
        conn.close()


def _load(
    server: Server, target: Target, start: int, stop: int, threads: int
) -> Figures:
    """Deliveries ``start:stop`` of ``target`` by ``threads`` client threads,
    each taking the next one as soon as its last is answered."""
    lock = threading.Lock()
    todo = iter(range(start, stop))
    latencies: list[float] = []
    errors: list[str] = []
    ready = threading.Barrier(threads + 1)
    clock = time.perf_counter

    def client() -> None:
        mine = []
        ready.wait()
        while True:
            with lock:
                i = next(todo, None)
            if i is None:
                break
            delivery = target.deliveries[i]
            began = clock()
            try:
                status, body = request(
                    server, "POST", target.path, delivery.body, delivery.headers
                )
            except OSError as exc:
                status, body = 0, repr(exc).encode()
            mine.append(clock() - began)
            if status != 200:
                errors.append(f"POST {target.path} answered {status}: {body[:300]!r}")
        with lock:
            latencies.extend(mine)

    workers = [threading.Thread(target=client) for _ in range(threads)]
    for worker in workers:
        worker.start()
    ready.wait()
    began = clock()
    for worker in workers:
        worker.join()
    wall = clock() - began
    if errors:
        raise AssertionError(f"{len(errors)} failed deliveries, first: {errors[0]}")
    return Figures(latencies, wall)


def over_http(
    server: Server,
    targets: dict[str, Target],
    *,
    threads: int = 4,
    warmup: int = 0,
    blocks: int = 4,
) -> dict[str, Figures]:
    """Every target's deliveries posted to ``server`` by ``threads`` client
    threads: the first ``warmup`` of each (not counted), then the rest in
    ``blocks`` slices, target after target in each block, so that a drift of
    the machine falls on every target alike."""
    figures = {name: Figures() for name in targets}
    for target in targets.values():
        _load(server, target, 0, warmup, threads)
    count = min(len(t.deliveries) for t in targets.values()) - warmup
    edges = [warmup + count * b // blocks for b in range(blocks + 1)]
    for b in range(blocks):
        for name, target in targets.items():
            figures[name].add(_load(server, target, edges[b], edges[b + 1], threads))
    return figures


# --- a large table ----------------------------------------------------------------


def fill_invoices(count: int, expressions: dict[str, str] | None = None) -> None:
    """``count`` more invoices in one statement, paid, alone in their orders,
    with random references and distinct order ids, payment ids and creation
    times: what a busy shop's table holds. The indexes are kept (they are what
    a lookup meets). ``expressions``: SQL of the row number ``i`` for some
    fields instead (the admin benchmark spreads statuses and e-mails)."""
    template = Invoice(
        provider="payconnect",
        amount=AMOUNT,
        currency="RUB",
        description="Order",
        customer_email="customer@example.com",
        status=InvoiceStatus.PAID,
        paid_amount=AMOUNT,
    )
    postgres = connection.vendor == "postgresql"
    columns, values, params = [], [], []
    for f in Invoice._meta.concrete_fields:
        if f.primary_key:
            continue
        columns.append(connection.ops.quote_name(f.column))
        if expressions and f.name in expressions:
            values.append(expressions[f.name])
        elif f.name == "uuid":
            # Random, as uuid4 references are: spread over the whole index.
            values.append(
                "gen_random_uuid()" if postgres else "lower(hex(randomblob(16)))"
            )
        elif f.name in ("order_id", "provider_payment_id"):
            values.append("'fill-' || i")
        elif f.name in ("created_at", "updated_at", "status_changed_at", "paid_at"):
            values.append(
                "%s::timestamptz - make_interval(secs => i)"
                if postgres
                else "strftime('%%Y-%%m-%%d %%H:%%M:%%f', %s, '-' || i || ' seconds')"
            )
            params.append(f.get_db_prep_save(timezone.now(), connection))
        else:
            values.append("%s")
            params.append(f.get_db_prep_save(f.pre_save(template, True), connection))
    table = connection.ops.quote_name(Invoice._meta.db_table)
    # Names from the model's metadata, fixed SQL fragments, values as parameters.
    names, selected = ", ".join(columns), ", ".join(values)
    insert = f"INSERT INTO {table} ({names}) SELECT {selected}"
    if postgres:
        sql = f"{insert} FROM generate_series(1, %s) AS series(i)"
        params.append(count)
    else:
        recursive = "SELECT 1 UNION ALL SELECT i + 1 FROM series WHERE i < %s"
        sql = f"WITH RECURSIVE series(i) AS ({recursive}) {insert} FROM series"
        params.insert(0, count)
    with connection.cursor() as cursor:
        cursor.execute(sql, params)


def analyze() -> None:
    """Planner statistics for every table, as a running shop's database has
    them (autovacuum on PostgreSQL, which also sets the visibility map, so that
    it does not start in the middle of a measurement). Without them PostgreSQL
    may look a reference up through the provider index, row by row."""
    with connection.cursor() as cursor:
        cursor.execute(
            "VACUUM ANALYZE" if connection.vendor == "postgresql" else "ANALYZE"
        )
