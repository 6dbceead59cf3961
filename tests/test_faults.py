"""The faults a production deployment must survive, with real processes:
PostgreSQL, a Redis broker, Celery workers (and gunicorn for the load test)
started as subprocesses (:mod:`tests.celery_procs`).

Skipped, saying why, unless ``DATABASE_URL`` points at PostgreSQL and
``REDIS_URL`` at Redis (the CI sets both). ``PAYMENTS_RU_LOAD_ROUNDS`` lowers
the load test's 100 rounds for a quick local run.
"""

from __future__ import annotations

import logging
import os
import signal
from concurrent.futures import ThreadPoolExecutor
from decimal import Decimal
from typing import Any

import pytest
import requests
from django.db import connection
from django.test import Client

from django_payments_ru.models import Invoice, Payment, WebhookEvent
from django_payments_ru.status import InvoiceStatus, Outcome, refund_target, rule_for
from tests.celery_procs import closed_port, fault_env, require_postgres
from tests.celery_procs import wait_for as wait
from tests.helpers import (
    WEBHOOK_URL,
    make_invoice,
    payment_object,
    post_webhook,
    webhook_body,
    webhook_headers,
)
from tests.signals import SignalRecorder
from tests.testapp import celery_app

# Installed with the extra "postgres"; pip install '.[test]' alone (the sdist's
# tests) skips the module instead of failing to collect it.
psycopg = pytest.importorskip("psycopg", reason="needs psycopg (extra: postgres)")

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def faults():
    require_postgres()
    with fault_env() as env:
        yield env


@pytest.fixture
def celery_mode(settings, faults):
    """This process queues like the workers' web servers: celery mode, on the
    test's queue of the real broker."""
    settings.PAYMENTS_RU = {**settings.PAYMENTS_RU, "WEBHOOK_PROCESSING": "celery"}
    saved = {
        key: celery_app.conf[key]
        for key in ("broker_url", "task_always_eager", "task_default_queue")
    }
    celery_app.conf.update(
        broker_url=faults.redis_url,
        task_always_eager=False,
        task_default_queue=faults.queue,
    )
    _forget_connections()
    yield celery_app
    celery_app.conf.update(saved)
    _forget_connections()


def _forget_connections() -> None:
    """Celery keeps pooled broker connections and a router built for the old
    default queue: drop them when the test changes the broker."""
    celery_app.close()
    celery_app.__dict__.pop("amqp", None)
    celery_app.__dict__.pop("pool", None)
    celery_app._pool = None


def _point_broker_at(url: str) -> None:
    celery_app.conf.broker_url = url
    _forget_connections()


def _row(invoice: Invoice) -> WebhookEvent:
    return WebhookEvent.objects.get(invoice=invoice)


def _processed(invoice: Invoice) -> bool:
    invoice.refresh_from_db()
    return WebhookEvent.objects.filter(
        invoice=invoice, status=WebhookEvent.Status.PROCESSED
    ).exists()


# --- the broker stopped while webhooks arrive -------------------------------------


def test_broker_down_every_webhook_answered_and_stored_then_processed_once(
    faults, celery_mode, caplog
):
    faults.worker()
    invoices = [make_invoice("100.00") for _ in range(5)]
    bodies = [webhook_body(payment_object(invoice)) for invoice in invoices]
    client = Client()

    _point_broker_at(f"redis://127.0.0.1:{closed_port()}/0")
    caplog.set_level(logging.DEBUG)
    caplog.clear()
    answers = [post_webhook(client, body).status_code for body in bodies]

    assert answers == [200] * 5
    rows = WebhookEvent.objects.order_by("pk")
    assert [(row.status, row.attempts) for row in rows] == [("received", 0)] * 5
    problems = [r for r in caplog.records if r.levelno >= logging.WARNING]
    # One record per webhook, naming what to run, without a traceback.
    assert len(problems) == 5, [r.getMessage() for r in problems]
    for record in problems:
        assert record.name == "django_payments_ru.webhooks"
        assert "payments_process_events" in record.getMessage()
        assert record.exc_info is None
    for invoice in invoices:
        invoice.refresh_from_db()
        assert invoice.status == InvoiceStatus.CREATED

    # The broker is back: the provider's next deliveries queue the events.
    _point_broker_at(faults.redis_url)
    for body in bodies + bodies[:2]:  # two of them delivered twice more
        assert post_webhook(client, body).status_code == 200
    for invoice in invoices:
        wait(lambda invoice=invoice: _processed(invoice), "the worker")
    wait(faults.queue_drained, "the queue to drain")
    for invoice in invoices:
        invoice.refresh_from_db()
        assert invoice.status == InvoiceStatus.PAID
        assert faults.signals(invoice) == ["created->paid"]
        assert Payment.objects.filter(invoice=invoice).count() == 1
        row = _row(invoice)
        assert row.attempts == 1


def test_broker_down_then_the_sweeper_processes_each_once(
    faults, celery_mode, settings
):
    from django.core.management import call_command, get_commands

    if "payments_process_events" not in get_commands():
        pytest.skip("needs the sweeper: manage.py payments_process_events")
    # Due at once (the sweeper otherwise waits SWEEP_DELAY for the worker).
    settings.PAYMENTS_RU = {**settings.PAYMENTS_RU, "SWEEP_DELAY": 0}
    faults.worker()
    invoices = [make_invoice("100.00") for _ in range(3)]
    _point_broker_at(f"redis://127.0.0.1:{closed_port()}/0")
    client = Client()
    for invoice in invoices:
        response = post_webhook(client, webhook_body(payment_object(invoice)))
        assert response.status_code == 200
    assert not WebhookEvent.objects.exclude(status="received").exists()
    _point_broker_at(faults.redis_url)
    with SignalRecorder() as log, open(os.devnull, "w") as out:
        for _run in range(2):  # the second run finds nothing left to do
            try:
                call_command("payments_process_events", stdout=out)
            except SystemExit as exc:  # non-zero only when something is wrong
                pytest.fail(f"the sweeper exited with {exc.code}")
    for invoice in invoices:
        wait(lambda invoice=invoice: _processed(invoice), "the sweeper")
    wait(faults.queue_drained, "the queue to drain")
    for invoice in invoices:
        invoice.refresh_from_db()
        assert invoice.status == InvoiceStatus.PAID
        assert Payment.objects.filter(invoice=invoice).count() == 1
        assert _row(invoice).attempts == 1
        # The sweeper processes in its own process (or queues to the worker):
        # one signal in all.
        here = [
            s for s in log.named("invoice_status_changed") if s.invoice_id == invoice.pk
        ]
        assert len(here) + len(faults.signals(invoice)) == 1


# --- a worker killed in the middle of processing ----------------------------------


def _pg_connect() -> psycopg.Connection[Any]:
    params = connection.get_connection_params()
    params.pop("cursor_factory", None)
    params.pop("context", None)
    return psycopg.connect(**params, autocommit=False)


def _lock_invoice(conn: psycopg.Connection[Any], invoice: Invoice) -> None:
    """Hold the invoice's row lock: processing blocks on it mid-transaction."""
    conn.execute(
        f"SELECT id FROM {Invoice._meta.db_table} WHERE id = %s FOR UPDATE",
        [invoice.pk],
    )


def _someone_waits_for_a_lock(conn: psycopg.Connection[Any]) -> bool:
    with _pg_connect() as other:
        (count,) = other.execute(
            "SELECT count(*) FROM pg_locks l JOIN pg_stat_activity a "
            "ON a.pid = l.pid WHERE NOT l.granted AND a.datname = %s",
            [connection.settings_dict["NAME"]],
        ).fetchone()
    return bool(count)


@pytest.mark.parametrize("killed", ["pool child", "whole worker"])
def test_worker_killed_mid_task_the_event_is_processed_once(
    faults, celery_mode, killed
):
    # The pool's child dies: the worker puts the message back at once
    # (reject_on_worker_lost). The whole worker dies: the message, never
    # acknowledged (acks_late), goes to the next worker once Redis's visibility
    # timeout is over (shortened here from its hour).
    redelivery = {
        "visibility_timeout": 2,
        "unacked_restore_interval": 1,
        "unacked_restore_throttle": 1,
    }
    # Prefork both times: the solo pool cannot acknowledge early while its
    # one thread runs the task, so it would not show what acks_late does.
    worker = faults.worker(pool="prefork", concurrency=1)
    invoice = make_invoice("100.00")
    body = webhook_body(payment_object(invoice))
    with _pg_connect() as lock:
        _lock_invoice(lock, invoice)
        assert post_webhook(Client(), body).status_code == 200
        wait(lambda: _someone_waits_for_a_lock(lock), "the task to block")
        child = int(faults.redis.get(f"{faults.prefix}:running") or 0)
        assert child and child != worker.pid
        if killed == "whole worker":
            os.kill(worker.pid, signal.SIGKILL)
            worker.wait(10)
        os.kill(child, signal.SIGKILL)
        lock.rollback()
    row = WebhookEvent.objects.get()
    if killed == "whole worker":
        assert row.status == WebhookEvent.Status.RECEIVED  # nothing committed
        faults.worker(pool="prefork", concurrency=1, transport=redelivery)
    wait(lambda: _processed(invoice), "the event to be processed again")
    wait(faults.queue_drained, "the queue to drain")
    invoice.refresh_from_db()
    assert invoice.status == InvoiceStatus.PAID
    assert faults.signals(invoice) == ["created->paid"]
    assert Payment.objects.filter(invoice=invoice).count() == 1
    row.refresh_from_db()
    assert (row.status, row.attempts) == (WebhookEvent.Status.PROCESSED, 1)


# --- the database connection cut during a webhook ---------------------------------


class _DatabaseDown:
    """A database execute wrapper for a database that goes down in the middle
    of a request: from the first statement matching ``needle``, each statement
    finds its connection's server process terminated (``pg_terminate_backend``,
    as a restart does), including on the connections Django opens again."""

    def __init__(self, needle: str) -> None:
        self.needle = needle
        self.cut = 0

    def __call__(self, execute, sql, params, many, context):  # type: ignore[no-untyped-def]
        if self.cut or self.needle in sql:
            self.cut += 1
            pid = context["connection"].connection.info.backend_pid
            with _pg_connect() as other:
                other.execute("SELECT pg_terminate_backend(%s)", [pid])
                other.commit()
        return execute(sql, params, many, context)


@pytest.mark.parametrize(
    ("mode", "needle"),
    [
        # sync: the invoice is locked and the event stored, not yet committed
        ("sync", 'UPDATE "django_payments_ru_invoice"'),
        # celery: storing the event
        ("celery", 'INSERT INTO "django_payments_ru_webhookevent"'),
    ],
)
def test_database_cut_during_a_webhook_5xx_nothing_half_written_redelivery_ok(
    faults, celery_mode, settings, mode, needle
):
    settings.PAYMENTS_RU = {**settings.PAYMENTS_RU, "WEBHOOK_PROCESSING": mode}
    if mode == "celery":
        faults.worker()
    invoice = make_invoice("100.00")
    body = webhook_body(payment_object(invoice))
    client = Client(raise_request_exception=False)
    cut = _DatabaseDown(needle)
    with SignalRecorder() as log:
        with connection.execute_wrapper(cut):
            response = post_webhook(client, body)
        assert cut.cut, f"no statement matched {needle!r}"
        assert response.status_code >= 500
        connection.close()  # this test's connection was the one cut
        invoice.refresh_from_db()
        assert invoice.status == InvoiceStatus.CREATED
        assert not Payment.objects.exists()
        assert not WebhookEvent.objects.exclude(
            status__in=[WebhookEvent.Status.RECEIVED, WebhookEvent.Status.FAILED]
        ).exists()
        assert log.sent == []

        # The provider delivers the same webhook again.
        assert post_webhook(client, body).status_code == 200
        wait(lambda: _processed(invoice), "the redelivery to be processed")
    wait(faults.queue_drained, "the queue to drain")
    invoice.refresh_from_db()
    assert invoice.status == InvoiceStatus.PAID
    assert Payment.objects.filter(invoice=invoice).count() == 1
    changes = [s for s in log.named("invoice_status_changed")]
    assert len(changes) + len(faults.signals(invoice)) == 1


# --- load: gunicorn and two workers -----------------------------------------------

#: Rounds of the load test; the CI runs the full count.
ROUNDS = int(os.environ.get("PAYMENTS_RU_LOAD_ROUNDS", "100"))
#: Concurrent deliveries per round.
STORM = 32


@pytest.fixture
def shop(faults):
    """gunicorn with 4 workers in celery mode, and 2 Celery workers."""
    url = faults.gunicorn(workers=4)
    faults.worker()
    faults.worker()
    return url


def _storm(url: str, bodies: list[bytes]) -> list[int]:
    def deliver(body: bytes) -> int:
        response = requests.post(
            url + WEBHOOK_URL,
            data=body,
            headers={"Content-Type": "application/json", **webhook_headers(body)},
            timeout=30,
        )
        return response.status_code

    with ThreadPoolExecutor(len(bodies)) as pool:
        return list(pool.map(deliver, bodies))


def test_load_identical_webhooks_one_transition_one_signal_per_round(faults, shop):
    invoices = []
    for _round in range(ROUNDS):
        invoice = make_invoice("100.00")
        body = webhook_body(payment_object(invoice))
        assert _storm(shop, [body] * STORM) == [200] * STORM
        invoices.append(invoice)
    for invoice in invoices:
        wait(lambda invoice=invoice: _processed(invoice), "the workers")
    wait(faults.queue_drained, "the queue to drain")
    for invoice in invoices:
        invoice.refresh_from_db()
        assert invoice.status == InvoiceStatus.PAID
        assert faults.signals(invoice) == ["created->paid"]
        assert Payment.objects.filter(invoice=invoice).count() == 1
        row = _row(invoice)
        assert (row.deliveries, row.attempts) == (STORM, 1)


def _replay(status: str, rows: list[WebhookEvent], invoice: Invoice) -> list[str]:
    """The transitions the table gives for the events in the order they were
    applied (each under the invoice's lock): ``["old->new", ...]``."""
    changes = []
    for row in rows:
        rule = rule_for(status, row.event_type)
        if rule.outcome is not Outcome.APPLY:
            continue
        target = rule.target or refund_target(invoice.amount, invoice.amount)
        changes.append(f"{status}->{target}")
        status = str(target)
    return changes


def test_load_mixed_storms_end_where_the_transition_table_says(faults, shop):
    rounds = max(1, ROUNDS // 5)
    invoices = []
    for _round in range(rounds):
        invoice = make_invoice("100.00")
        full = str(invoice.amount)
        kinds = [
            payment_object(invoice),
            payment_object(invoice, status="failed", failure_reason="declined"),
            payment_object(invoice, status="refunded", refunded_amount=full),
        ]
        bodies = [webhook_body(kind) for kind in kinds]
        assert _storm(shop, [bodies[n % 3] for n in range(STORM)]) == [200] * STORM
        invoices.append(invoice)
    for invoice in invoices:
        wait(
            lambda invoice=invoice: (
                not WebhookEvent.objects.filter(invoice=invoice)
                .exclude(status__in=WebhookEvent.DONE)
                .exists()
                and WebhookEvent.objects.filter(invoice=invoice).count() == 3
            ),
            "the workers",
        )
    wait(faults.queue_drained, "the queue to drain")
    seen = set()
    for invoice in invoices:
        invoice.refresh_from_db()
        rows = list(
            WebhookEvent.objects.filter(invoice=invoice).order_by("processed_at", "pk")
        )
        expected = _replay(InvoiceStatus.CREATED, rows, invoice)
        assert faults.signals(invoice) == expected
        final = expected[-1].split("->")[1] if expected else InvoiceStatus.CREATED
        assert invoice.status == final
        assert all(row.attempts == 1 for row in rows)
        paid = Payment.objects.filter(invoice=invoice, kind=Payment.Kind.CHARGE)
        assert paid.count() == 1  # the PAID event is always applied, once
        if invoice.status == InvoiceStatus.REFUNDED:
            assert invoice.refunded_amount == Decimal(full)
        seen.add(invoice.status)
    # Whatever the order, money facts win: never failed, never unpaid.
    assert seen <= {InvoiceStatus.PAID, InvoiceStatus.REFUNDED}
