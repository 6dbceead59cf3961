"""The admin at scale: every changelist page, filter and search of invoices and
webhook events, timed with a logged-in superuser on PostgreSQL with
1,000,000 invoices and 200,000 webhook events (docs/performance.rst).

    DATABASE_URL=postgres://... python -m benchmarks.admin_scale [--out R.json]

``make bench`` runs it with ``BENCH_ADMIN=1`` (``benchmarks/test_bench_admin.py``).
The run creates its own database on ``DATABASE_URL``'s server, migrated, fills
it in two ``INSERT ... SELECT generate_series`` statements
(:func:`benchmarks.harness.fill_invoices`), runs ``VACUUM ANALYZE`` and drops
it at the end. Each page is asked once to warm up, then ``BENCH_ADMIN_ROUNDS``
times (5): the table gives the median and the slowest in milliseconds, and the
statements of one request. Sizes: ``BENCH_ADMIN_INVOICES``,
``BENCH_ADMIN_EVENTS``. Progress goes to stderr.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from datetime import timedelta
from typing import Any

import django

os.environ["DJANGO_SETTINGS_MODULE"] = "benchmarks.admin_settings"
django.setup()

from django.contrib.auth.models import User  # noqa: E402
from django.core.signals import request_started  # noqa: E402
from django.db import connection, reset_queries  # noqa: E402
from django.test import Client  # noqa: E402
from django.urls import reverse  # noqa: E402
from django.utils import timezone  # noqa: E402

from django_payments_ru.models import Invoice, WebhookEvent  # noqa: E402

from . import harness  # noqa: E402

INVOICES = int(os.environ.get("BENCH_ADMIN_INVOICES", "1000000"))
EVENTS = int(os.environ.get("BENCH_ADMIN_EVENTS", "200000"))
ROUNDS = int(os.environ.get("BENCH_ADMIN_ROUNDS", "5"))

#: Spread over the rows, as a shop's table has them (``i``: the row number;
#: ``%%`` is SQL's modulo, doubled for the parameters).
INVOICE_EXPRESSIONS = {
    "status": "(ARRAY['paid','paid','paid','pending','failed','expired',"
    "'refunded','cancelled'])[1 + i %% 8]",
    "customer_email": "'buyer' || (i %% 100000) || '@example.com'",
    "description": "'Order ' || i || ' ' || (ARRAY['blue chair','red table',"
    "'green lamp','oak shelf','sofa','rug','mirror'])[1 + i %% 7]",
    "provider_transaction_id": "'txn-' || i",
    "needs_attention": "(i %% 5000 = 0)",
}


def log(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


def fill_events(count: int) -> None:
    """``count`` webhook events, one for every fifth invoice, with 67-character
    event ids, mostly processed."""
    table = connection.ops.quote_name(WebhookEvent._meta.db_table)
    invoices = connection.ops.quote_name(Invoice._meta.db_table)
    # Names from the models' metadata, fixed SQL, values as parameters.
    sql = f"""
        INSERT INTO {table} (provider, dedupe_id, event_type, status, invoice_id,
            event, payload, result, traceback, attempts, deliveries, received_at,
            processed_at, last_attempt_at, needs_attention)
        SELECT 'payconnect', 'evt_' || md5(i::text) || '_' || md5((i * 7)::text),
            (ARRAY['paid','paid','pending','refunded','failed'])[1 + i %% 5],
            (ARRAY['processed','processed','processed','ignored','failed'])
                [1 + (i / 5) %% 5],
            (SELECT min(id) FROM {invoices})
                + i * 5 - 5,
            '{{}}'::jsonb, '{{}}'::jsonb, '', '', 1, 1,
            %s::timestamptz - make_interval(secs => i), NULL, NULL, (i %% 2000 = 0)
        FROM generate_series(1, %s) AS series(i)
    """  # noqa: S608
    with connection.cursor() as cursor:
        cursor.execute(sql, [timezone.now(), count])


#: The sortable columns of each list: (the column's position in
#: ``list_display``, 1-based as the admin's ``o`` parameter has it, its name).
INVOICE_SORTS = [
    (2, "amount"),
    (3, "status"),
    (4, "provider"),
    (5, "e-mail"),
    (7, "created"),
    (8, "paid at"),
]
EVENT_SORTS = [(2, "provider"), (3, "type"), (4, "status"), (9, "received")]


def sorted_pages(
    kind: str, columns: list[tuple[int, str]]
) -> list[tuple[str, str, dict[str, str]]]:
    """Each sortable column, both ways (a click on its header, then another)."""
    return [
        (kind, f"sorted by {name}{suffix}", {"o": f"{sign}{position}"})
        for position, name in columns
        for sign, suffix in (("", ""), ("-", ", descending"))
    ]


def last_page(model: Any) -> int:
    """The last page the list offers (50 rows a page, the estimated count)."""
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT reltuples::bigint FROM pg_class WHERE relname = %s",
            [model._meta.db_table],
        )
        estimate = int(cursor.fetchone()[0])
    return max(1, -(-estimate // 50))


def pages() -> list[tuple[str, str, dict[str, str]]]:
    """(list, page, query) for every page measured."""
    invoice = Invoice.objects.filter(order_id="fill-123456").get()
    event = WebhookEvent.objects.order_by("-received_at", "-id")[1000]
    week = (timezone.now() - timedelta(days=7)).isoformat()
    return [
        ("invoices", "list", {}),
        ("invoices", "page 500", {"p": "500"}),
        ("invoices", "page 10 000 (middle)", {"p": "10000"}),
        ("invoices", "last page", {"p": str(last_page(Invoice))}),
        *sorted_pages("invoices", INVOICE_SORTS),
        ("invoices", "status: pending", {"status__exact": "pending"}),
        ("invoices", "provider", {"provider": "payconnect"}),
        ("invoices", "needs attention", {"needs_attention__exact": "1"}),
        ("invoices", "paid twice", {"paid_twice__exact": "1"}),
        ("invoices", "operation in flight", {"in_flight": "yes"}),
        ("invoices", "no operation in flight", {"in_flight": "no"}),
        ("invoices", "created: past 7 days", {"created_at__gte": week}),
        ("invoices", "search: order id, exact", {"q": "fill-123456"}),
        ("invoices", "search: order id, prefix", {"q": "fill-12345"}),
        ("invoices", "search: e-mail, exact", {"q": "buyer4242@example.com"}),
        ("invoices", "search: e-mail, prefix", {"q": "Buyer4242"}),
        ("invoices", "search: transaction id", {"q": "txn-555555"}),
        ("invoices", "search: reference (UUID)", {"q": str(invoice.uuid)}),
        ("invoices", "search: phone", {"q": "+7 999 555-00-00"}),
        ("invoices", "search: description, rare word", {"q": "123456"}),
        ("invoices", "search: description, common word", {"q": "lamp"}),
        ("invoices", "search: nothing found", {"q": "unicorn"}),
        ("events", "list", {}),
        ("events", "page 500", {"p": "500"}),
        ("events", "last page", {"p": str(last_page(WebhookEvent))}),
        *sorted_pages("events", EVENT_SORTS),
        ("events", "status: failed", {"status__exact": "failed"}),
        ("events", "provider", {"provider": "payconnect"}),
        ("events", "needs attention", {"needs_attention__exact": "1"}),
        ("events", "event type: refunded", {"event_type__exact": "refunded"}),
        ("events", "search: event id, exact", {"q": event.dedupe_id}),
        ("events", "search: event id, prefix", {"q": event.dedupe_id[:12]}),
        ("events", "search: order id", {"q": "fill-5000"}),
        ("events", "search: reference (UUID)", {"q": str(invoice.uuid)}),
    ]


def measure(client: Client) -> list[dict[str, Any]]:
    urls = {
        "invoices": reverse("admin:django_payments_ru_invoice_changelist"),
        "events": reverse("admin:django_payments_ru_webhookevent_changelist"),
    }
    rows = []
    for kind, name, query in pages():
        url = urls[kind]
        # The statements of one request (the handler clears the log at each
        # request's start: not while this one is counted).
        request_started.disconnect(reset_queries)
        connection.force_debug_cursor = True
        connection.queries_log.clear()
        try:
            response = client.get(url, query)
            statements = len(connection.queries)
        finally:
            connection.force_debug_cursor = False
            request_started.connect(reset_queries)
        if response.status_code != 200:
            raise AssertionError(f"{url} {query}: {response.status_code}")
        found = response.content.count(b'name="_selected_action"')
        times = []
        for _ in range(ROUNDS):
            began = time.perf_counter()
            client.get(url, query)
            times.append((time.perf_counter() - began) * 1000)
        rows.append(
            {
                "list": kind,
                "page": name,
                "query": query,
                "rows": found,
                "statements": statements,
                "median_ms": round(statistics.median(times), 1),
                "max_ms": round(max(times), 1),
            }
        )
        log(f"{kind} {name}: {rows[-1]['median_ms']} ms")
    return rows


def render(rows: list[dict[str, Any]], about: dict[str, Any]) -> str:
    lines = [
        f"Admin at scale: {about['invoices']:,} invoices, {about['events']:,} "
        f"webhook events, PostgreSQL {about['postgresql']}, median of "
        f"{ROUNDS} requests (after one to warm up)",
        "",
        f"{'list':<9} {'page':<36} {'ms':>7} {'max ms':>7} {'queries':>7} {'rows':>5}",
    ]
    for row in rows:
        lines.append(
            f"{row['list']:<9} {row['page']:<36} {row['median_ms']:>7.1f} "
            f"{row['max_ms']:>7.1f} {row['statements']:>7} {row['rows']:>5}"
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.admin_scale")
    parser.add_argument("--out", help="where the JSON result goes")
    args = parser.parse_args(argv)
    if connection.vendor != "postgresql":
        raise SystemExit("DATABASE_URL must point at PostgreSQL")
    old_name = connection.settings_dict["NAME"]
    connection.creation.create_test_db(verbosity=0, autoclobber=True, serialize=False)
    try:
        began = time.perf_counter()
        harness.fill_invoices(INVOICES, INVOICE_EXPRESSIONS)
        log(f"{INVOICES:,} invoices in {time.perf_counter() - began:.0f} s")
        began = time.perf_counter()
        fill_events(EVENTS)
        log(f"{EVENTS:,} webhook events in {time.perf_counter() - began:.0f} s")
        harness.analyze()
        user = User.objects.create_superuser("bench", "bench@example.com", "bench")
        client = Client()
        client.force_login(user)
        rows = measure(client)
        with connection.cursor() as cursor:
            cursor.execute("SHOW server_version")
            version = cursor.fetchone()[0].split()[0]
    finally:
        connection.creation.destroy_test_db(old_name, verbosity=0)
    about = {"invoices": INVOICES, "events": EVENTS, "postgresql": version}
    text = render(rows, about)
    print(text)
    if args.out:
        with open(args.out, "w", encoding="utf-8") as out:
            json.dump({"about": about, "rows": rows, "text": text}, out, indent=1)


if __name__ == "__main__":
    main()
