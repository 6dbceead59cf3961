"""What the hot paths cost the database: a webhook's first delivery for an
invoice alone in its order is stored and applied in one transaction of at most
five data statements; a redelivery is one statement that never locks or
writes the invoice; a failure still keeps the event with its traceback. A
start reads the invoice once (locked) before the provider call and once after,
and writes it once.

Counted with Django's ``CaptureQueriesContext``: data statements are SELECT,
INSERT, UPDATE and DELETE (savepoints and transaction control are not data);
commits are counted on the connection."""

from __future__ import annotations

import re
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from decimal import Decimal

import pytest
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext

from django_payments_ru import services
from django_payments_ru.models import Invoice, Payment, WebhookEvent
from django_payments_ru.status import InvoiceStatus

from .helpers import make_invoice, payment_object, post_webhook, webhook_body

pytestmark = pytest.mark.django_db(transaction=True)

DATA = re.compile(r"^\s*(SELECT|INSERT|UPDATE|DELETE|WITH)\b", re.IGNORECASE)


@dataclass
class Cost:
    statements: list[str] = field(default_factory=list)
    commits: int = 0

    @property
    def data(self) -> list[str]:
        return [s for s in self.statements if DATA.match(s)]

    @property
    def ours(self) -> list[str]:
        """The app's own statements (the example shop's receivers add theirs)."""
        return [s for s in self.data if "django_payments_ru_" in s]

    def touching(self, table: str) -> list[str]:
        return [s for s in self.ours if f"django_payments_ru_{table}" in s]


@contextmanager
def cost() -> Iterator[Cost]:
    result = Cost()
    commit = connection.commit

    def counted() -> None:
        result.commits += 1
        commit()

    connection.commit = counted  # type: ignore[method-assign]
    try:
        with CaptureQueriesContext(connection) as queries:
            yield result
    finally:
        connection.commit = commit  # type: ignore[method-assign]
    result.statements = [q["sql"] for q in queries.captured_queries]


def pending() -> Invoice:
    invoice = make_invoice("990.00", order_id="")
    Invoice.objects.filter(pk=invoice.pk).update(
        status=InvoiceStatus.PENDING, provider_payment_id=f"pay_{invoice.pk}"
    )
    return Invoice.objects.get(pk=invoice.pk)


def test_a_first_delivery_is_five_statements_in_one_transaction():
    invoice = pending()
    body = webhook_body(payment_object(invoice, "succeeded"))
    client = Client()
    with cost() as spent:
        assert post_webhook(client, body).status_code == 200
    invoice.refresh_from_db()
    assert invoice.status == InvoiceStatus.PAID
    assert len(spent.ours) <= 5, "\n".join(spent.ours)
    assert spent.commits == 1
    # Nothing just written is read back; the invoice is read once, locked.
    reads = [s for s in spent.ours if s.lstrip().upper().startswith("SELECT")]
    assert len(reads) == 1 and "django_payments_ru_invoice" in reads[0], reads
    # Only what changed is written to the invoice: SQLite rewrites the index
    # of every column written, even with the value it had.
    (update,) = [s for s in spent.ours if 'UPDATE "django_payments_ru_invoice"' in s]
    written = update.split(" SET ", 1)[1].split(" WHERE ")[0]
    for unchanged in ("needs_attention", "provider_payment_id", "paid_twice"):
        assert f'"{unchanged}"' not in written, written
    for changed in ("status", "paid_amount", "paid_at", "updated_at"):
        assert f'"{changed}" =' in written, written
    # The inbox row is written once, by its upsert, with its outcome.
    assert len(spent.touching("webhookevent")) == 1, spent.touching("webhookevent")
    row = WebhookEvent.objects.get()
    assert (row.status, row.invoice_id, row.attempts, row.deliveries) == (
        WebhookEvent.Status.PROCESSED,
        invoice.pk,
        1,
        1,
    )
    assert row.processed_at is not None and row.last_attempt_at is not None
    if connection.vendor == "postgresql":
        # The payment and the invoice in one statement.
        assert len(spent.ours) == 3, "\n".join(spent.ours)
        written = spent.ours[-1]
        assert written.lstrip().upper().startswith("WITH"), written
        for table in ("payment", "invoice"):
            assert f"django_payments_ru_{table}" in written, table


def test_an_outcome_other_than_applied_is_written_over_the_upserts_guess():
    # The upsert stores a new row as "processed" for the invoice its reference
    # names; an event found another way, or that changes nothing, is written
    # again with what really happened.
    invoice = pending()
    payment = payment_object(invoice, "succeeded")
    payment["reference"] = ""  # found by the provider's payment id
    client = Client()
    with cost() as spent:
        assert post_webhook(client, webhook_body(payment)).status_code == 200
    assert len(spent.touching("webhookevent")) == 2, spent.touching("webhookevent")
    first = WebhookEvent.objects.get()
    assert (first.status, first.invoice_id, first.attempts) == (
        WebhookEvent.Status.PROCESSED,
        invoice.pk,
        1,
    )
    # Another event paying the same invoice again changes nothing.
    again = payment_object(invoice, "succeeded")
    assert post_webhook(client, webhook_body(again)).status_code == 200
    second = WebhookEvent.objects.exclude(pk=first.pk).get()
    assert second.status == WebhookEvent.Status.IGNORED
    assert second.result_code and second.invoice_id == invoice.pk


def test_a_redelivery_is_one_statement_and_never_locks_or_writes_the_invoice():
    invoice = pending()
    body = webhook_body(payment_object(invoice, "succeeded"))
    client = Client()
    assert post_webhook(client, body).status_code == 200
    paid = Invoice.objects.values_list("updated_at", flat=True).get(pk=invoice.pk)
    with cost() as spent:
        assert post_webhook(client, body).status_code == 200
    assert len(spent.ours) == 1, "\n".join(spent.ours)
    (upsert,) = spent.touching("webhookevent")
    assert upsert.lstrip().upper().startswith("INSERT INTO"), upsert
    # Only the upsert's read of the reference (the id a new row is stored
    # with) names the invoice table: no lock, no write.
    assert "FOR UPDATE" not in upsert.upper()
    assert not re.search(r"(UPDATE|INSERT INTO) \S*django_payments_ru_invoice", upsert)
    assert (
        Invoice.objects.values_list("updated_at", flat=True).get(pk=invoice.pk) == paid
    )
    row = WebhookEvent.objects.get()
    assert row.deliveries == 2
    assert Payment.objects.count() == 1


def test_a_failed_first_delivery_keeps_the_event_and_its_traceback(monkeypatch):
    invoice = pending()
    body = webhook_body(payment_object(invoice, "succeeded"))

    def broken(*args: object, **kwargs: object) -> None:
        raise RuntimeError("the database went away")

    monkeypatch.setattr(services, "_transition", broken)
    response = post_webhook(Client(), body)
    assert response.status_code == 500
    row = WebhookEvent.objects.get()
    assert row.status == WebhookEvent.Status.FAILED
    assert "RuntimeError: the database went away" in row.traceback
    assert row.attempts == 1
    invoice.refresh_from_db()
    assert invoice.status == InvoiceStatus.PENDING
    assert Payment.objects.count() == 0

    monkeypatch.undo()
    assert post_webhook(Client(), body).status_code == 200
    row.refresh_from_db()
    assert (row.status, row.deliveries, row.attempts) == (
        WebhookEvent.Status.PROCESSED,
        2,
        2,
    )
    invoice.refresh_from_db()
    assert invoice.status == InvoiceStatus.PAID
    assert invoice.paid_amount == Decimal("990.00")


def test_a_start_reads_the_invoice_twice_and_writes_it_once(monkeypatch):
    from django_payments_ru.providers.base import Checkout
    from django_payments_ru.providers.sandbox import Provider

    def start(self, invoice, request=None, *, key=""):
        return Checkout(method="GET", url="https://pay.example/p", payment_id="p1")

    monkeypatch.setattr(Provider, "start", start)
    invoice = make_invoice("990.00", order_id="")
    with cost() as spent:
        checkout = services.start_payment(invoice)
    assert checkout.payment_id == "p1"
    assert invoice.status == InvoiceStatus.PENDING  # the caller's instance is fresh
    stored = Invoice.objects.get(pk=invoice.pk)
    assert (stored.status, stored.provider_payment_id) == (InvoiceStatus.PENDING, "p1")
    assert stored.get_checkout() == checkout
    invoice_sql = spent.touching("invoice")
    reads = [q for q in invoice_sql if q.lstrip().upper().startswith("SELECT")]
    # (On PostgreSQL the invoice's UPDATE and the claim's go out as one WITH.)
    writes = [q for q in invoice_sql if 'UPDATE "django_payments_ru_invoice"' in q]
    assert len(reads) == 2, "\n".join(reads)
    assert len(writes) == 1 and writes[0].count("django_payments_ru_invoice") == 1
    if connection.vendor == "postgresql":
        assert writes[0].startswith("WITH") and "operation" in writes[0], writes
    # The claim: inserted, then confirmed (the invoice's reads only ask
    # whether one is in flight, in the same statement).
    claims = [q for q in spent.touching("operation") if q not in reads]
    assert len(claims) == 2, "\n".join(claims)


def test_the_locking_lookup_reads_through_indexes_not_the_table():
    # Flat with table size: the reference's unique index and the order key's
    # partial index, combined; a whole-table scan here made a webhook 100x
    # slower at 1,000,000 invoices. SQLite's plan does not depend on the
    # table's statistics, so it is checked there.
    from django.db import transaction

    if connection.vendor != "sqlite":
        pytest.skip("the plan is checked on SQLite, where it needs no statistics")
    invoice = make_invoice("990.00", order_id="")
    with transaction.atomic(), connection.cursor() as cursor:
        for paid in (True, False):
            query = services._by_ref("sandbox", invoice.uuid, paid).query
            sql, params = query.get_compiler("default").as_sql()
            cursor.execute("EXPLAIN QUERY PLAN " + sql, params)
            plan = " | ".join(str(row[-1]) for row in cursor.fetchall())
            assert "SCAN django_payments_ru_invoice" not in plan, plan
            assert "USING INDEX" in plan, plan


def test_on_postgresql_only_the_checkouts_commit_waits_for_the_disk(monkeypatch):
    # The claim is seen by a second caller as soon as it commits; the durable
    # commit after the provider call carries it to the disk with the checkout.
    from django_payments_ru.providers.base import Checkout
    from django_payments_ru.providers.sandbox import Provider

    if connection.vendor != "postgresql":
        pytest.skip("needs PostgreSQL: set DATABASE_URL=postgres://... to run")
    seen: list[str] = []

    def start(self, invoice, request=None, *, key=""):
        with connection.cursor() as cursor:
            cursor.execute("SHOW synchronous_commit")
            seen.append(cursor.fetchone()[0])
        return Checkout(method="GET", url="https://pay.example/p", payment_id="p2")

    monkeypatch.setattr(Provider, "start", start)
    invoice = make_invoice("990.00", order_id="")
    with cost() as spent:
        services.start_payment(invoice)
    sets = [i for i, q in enumerate(spent.statements) if q.startswith("SET LOCAL")]
    claim = next(i for i, q in enumerate(spent.statements) if "INSERT INTO" in q)
    checkout = max(i for i, q in enumerate(spent.statements) if "UPDATE" in q)
    assert len(sets) == 1 and sets[0] < claim < checkout, spent.statements
    # SET LOCAL: the provider call and the checkout's commit are back to on.
    assert seen == ["on"]
    with connection.cursor() as cursor:
        cursor.execute("SHOW synchronous_commit")
        assert cursor.fetchone()[0] == "on"
