"""The hot paths' compiled single-row writes (``django_payments_ru.rows``):
the same columns and values as ``Model.save``, and model signals still sent
while someone listens."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import pytest
from django.db import connection, transaction
from django.db.models.signals import post_save, pre_save
from django.test import Client
from django.test.utils import CaptureQueriesContext

from django_payments_ru import rows
from django_payments_ru.models import Invoice, Operation, Payment
from django_payments_ru.status import InvoiceStatus
from tests.helpers import make_invoice, payment_object, post_webhook, webhook_body

pytestmark = pytest.mark.django_db(transaction=True)


def test_update_writes_the_named_columns_once_each() -> None:
    invoice = make_invoice("10.00")
    before = Invoice.objects.get(pk=invoice.pk).updated_at
    invoice.description = "changed"
    invoice.customer_email = "not-written@example.com"
    with CaptureQueriesContext(connection) as queries:
        rows.update(invoice, ["description", "updated_at", "description"])
    (sql,) = [q["sql"] for q in queries.captured_queries if "UPDATE" in q["sql"]]
    assert sql.count("description") == 1  # a set, as save() takes it
    stored = Invoice.objects.get(pk=invoice.pk)
    assert stored.description == "changed"
    assert stored.customer_email == ""  # not named: not written
    assert stored.updated_at > before  # auto_now, as save() sets it


def test_insert_applies_defaults_and_auto_now_add() -> None:
    invoice = make_invoice("10.00")
    payment = Payment(
        invoice=invoice,
        kind=Payment.Kind.CHARGE,
        amount=Decimal("10.00"),
        currency="RUB",
        source="test:1",
    )
    rows.insert(payment)
    stored = Payment.objects.get()
    assert (stored.invoice_id, stored.amount, stored.source) == (
        invoice.pk,
        Decimal("10.00"),
        "test:1",
    )
    assert stored.created_at is not None and stored.event_id is None


class Listener:
    def __init__(self) -> None:
        self.seen: list[tuple[str, str, Any]] = []

    def __call__(self, sender: Any, instance: Any, **kwargs: Any) -> None:
        self.seen.append(
            (
                "post" if kwargs.get("signal") is post_save else "pre",
                sender.__name__,
                kwargs.get("update_fields"),
            )
        )


@pytest.mark.parametrize("signal", [pre_save, post_save])
def test_a_webhook_still_sends_model_signals_to_a_listener(
    client: Any, signal: Any
) -> None:
    # An audit log or a history app listens for saves: they must see the
    # payment and the invoice's change, as with Model.save.
    invoice = make_invoice("100.00")
    listener = Listener()
    signal.connect(listener, sender=Invoice, weak=False)
    signal.connect(listener, sender=Payment, weak=False)
    try:
        body = webhook_body(payment_object(invoice), event_id="evt_signals")
        assert post_webhook(client, body).status_code == 200
    finally:
        signal.disconnect(listener, sender=Invoice)
        signal.disconnect(listener, sender=Payment)
    invoice.refresh_from_db()
    assert invoice.status == InvoiceStatus.PAID
    senders = [sender for _, sender, _ in listener.seen]
    assert "Payment" in senders and "Invoice" in senders
    (fields,) = [f for _, sender, f in listener.seen if sender == "Invoice"]
    assert "status" in fields and "paid_amount" in fields


# --- batch: the writes of a change sent together ----------------------------------


def _writes(queries: CaptureQueriesContext) -> list[str]:
    return [
        q["sql"]
        for q in queries.captured_queries
        if q["sql"].lstrip().upper().startswith(("INSERT", "UPDATE", "WITH"))
    ]


def _charge(invoice: Invoice, source: str) -> Payment:
    return Payment(
        invoice=invoice,
        kind=Payment.Kind.CHARGE,
        amount=invoice.amount,
        currency="RUB",
        source=source,
    )


def test_a_batch_sends_its_writes_when_it_ends() -> None:
    invoice = make_invoice("10.00")
    with (
        CaptureQueriesContext(connection) as queries,
        transaction.atomic(),
        rows.batch("default"),
    ):
        rows.insert(_charge(invoice, "batch:1"))
        invoice.description = "batched"
        rows.update(invoice, ["description"])
        assert _writes(queries) == []  # held until the block ends
        rows.update_by_pk(Invoice, invoice.pk, {"order_key": "k-1"})
    sent = _writes(queries)
    if connection.vendor == "postgresql":
        # One statement; the same invoice row twice is two (PostgreSQL changes
        # a row once per statement).
        assert len(sent) == 2, sent
        assert sent[0].lstrip().upper().startswith("WITH")
    else:
        assert len(sent) == 3, sent
    stored = Invoice.objects.get(pk=invoice.pk)
    assert (stored.description, stored.order_key) == ("batched", "k-1")
    assert Payment.objects.get().source == "batch:1"


def test_a_statement_inside_a_batch_sees_the_writes_before_it() -> None:
    invoice = make_invoice("10.00")
    with transaction.atomic(), rows.batch("default"):
        rows.update_by_pk(Invoice, invoice.pk, {"description": "first"})
        rows.insert(_charge(invoice, "batch:2"))
        # A read in the middle sends the waiting writes first.
        assert Invoice.objects.get(pk=invoice.pk).description == "first"
        assert Payment.objects.filter(source="batch:2").exists()
        rows.update_by_pk(Invoice, invoice.pk, {"description": "second"})
    assert Invoice.objects.get(pk=invoice.pk).description == "second"


def test_a_batch_that_fails_writes_nothing() -> None:
    invoice = make_invoice("10.00")
    with pytest.raises(RuntimeError), transaction.atomic(), rows.batch("default"):
        rows.update_by_pk(Invoice, invoice.pk, {"description": "lost"})
        rows.insert(_charge(invoice, "batch:3"))
        raise RuntimeError("the change failed")
    assert Invoice.objects.get(pk=invoice.pk).description != "lost"
    assert not Payment.objects.exists()
    # The connection is left as it was: a write after the block goes out at once.
    with CaptureQueriesContext(connection) as queries:
        rows.update_by_pk(Invoice, invoice.pk, {"description": "now"})
    assert len(_writes(queries)) == 1


# --- prepared statements (PostgreSQL) ----------------------------------------------


def _prepared() -> list[str]:
    with connection.cursor() as cursor:
        cursor.execute("SELECT statement FROM pg_prepared_statements")
        return [row[0] for row in cursor.fetchall()]


def _needs_postgres() -> None:
    if connection.vendor != "postgresql":
        pytest.skip("needs PostgreSQL: set DATABASE_URL=postgres://... to run")


def _deliver_one() -> Invoice:
    invoice = make_invoice("10.00", order_id="")
    client = Client()
    body = webhook_body(payment_object(invoice, "succeeded"))
    assert post_webhook(client, body).status_code == 200
    invoice.refresh_from_db()
    assert invoice.status == InvoiceStatus.PAID
    return invoice


def test_the_webhook_paths_statements_are_prepared_once_per_connection() -> None:
    _needs_postgres()
    connection.ensure_connection()
    _deliver_one()
    prepared = _prepared()
    assert any("ON CONFLICT" in sql for sql in prepared), prepared
    assert any("FOR UPDATE" in sql for sql in prepared), prepared
    # Used again, not prepared again.
    _deliver_one()
    assert sorted(_prepared()) == sorted(prepared)


def test_a_rollback_forgets_them_and_the_next_call_prepares_again() -> None:
    _needs_postgres()
    _deliver_one()
    assert _prepared()
    with pytest.raises(RuntimeError), transaction.atomic():
        _deliver_one()
        raise RuntimeError("rolled back")
    _deliver_one()
    assert any("ON CONFLICT" in sql for sql in _prepared())


@pytest.mark.parametrize(
    "override",
    [
        {"PAYMENTS_RU": "off"},
        {"OPTIONS": {"prepare_threshold": None}},
    ],
    ids=["PREPARED_STATEMENTS=False", "prepare_threshold=None"],
)
def test_nothing_is_prepared_when_the_project_says_so(
    override: dict[str, Any], settings: Any
) -> None:
    _needs_postgres()
    if "PAYMENTS_RU" in override:
        settings.PAYMENTS_RU = {**settings.PAYMENTS_RU, "PREPARED_STATEMENTS": False}
    options = connection.settings_dict.setdefault("OPTIONS", {})
    kept = dict(options)
    options.update(override.get("OPTIONS", {}))
    try:
        connection.close()  # a new connection: nothing prepared on it yet
        assert not rows.prepares(connection)
        _deliver_one()
        assert _prepared() == []
    finally:
        options.clear()
        options.update(kept)
        connection.close()


def test_a_prepared_statement_is_logged_with_its_values() -> None:
    _needs_postgres()
    invoice = make_invoice("10.00", order_id="")
    with CaptureQueriesContext(connection) as queries:
        rows.update_by_pk(Invoice, invoice.pk, {"description": "logged-value"})
    (sql,) = [q["sql"] for q in queries.captured_queries if "UPDATE" in q["sql"]]
    assert "'logged-value'" in sql and str(invoice.pk) in sql, sql
    assert any("UPDATE" in s for s in _prepared())


def test_sqlite_keeps_its_own_statement_cache() -> None:
    if connection.vendor != "sqlite":
        pytest.skip("the SQLite side of rows.cursor")
    assert not rows.prepares(connection)
    with rows.cursor(connection) as cursor:
        cursor.execute("SELECT 1")
        assert cursor.fetchone() == (1,)


@pytest.mark.parametrize("has_returning", [True, False])
def test_insert_reads_the_new_key_back_when_asked(
    has_returning: bool, monkeypatch: pytest.MonkeyPatch
) -> None:
    # RETURNING where the database has it, else the cursor's last row id (MySQL).
    if not has_returning and connection.vendor == "postgresql":
        pytest.skip("PostgreSQL always has RETURNING (its cursors keep no row id)")
    monkeypatch.setattr(
        connection.features, "can_return_columns_from_insert", has_returning
    )
    invoice = make_invoice("10.00")
    claims = []
    for key in ("first", "second"):
        claim = Operation(invoice=invoice, kind=Operation.Kind.REFUND, key=key)
        rows.insert(claim, returning=True)
        claims.append(claim)
    stored = {op.key: op.pk for op in Operation.objects.all()}
    assert stored == {"first": claims[0].pk, "second": claims[1].pk}
    assert claims[0].pk != claims[1].pk and not claims[1]._state.adding


def test_a_dead_persistent_connection_is_replaced_as_django_would() -> None:
    # CONN_HEALTH_CHECKS: the first statement of a request on a connection the
    # server closed reconnects instead of failing the webhook.
    _needs_postgres()
    connection.ensure_connection()
    enabled = connection.health_check_enabled
    connection.health_check_enabled = True
    connection.health_check_done = False
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_backend_pid()")
        (pid,) = cursor.fetchone()
    invoice = make_invoice("10.00")
    connection.health_check_done = False
    connection.connection.close()  # as if the server had gone away
    try:
        # The first statement after it is one of this app's, prepared.
        rows.update_by_pk(Invoice, invoice.pk, {"description": "after"})
        with rows.cursor(connection) as cursor:
            cursor.execute("SELECT pg_backend_pid()")
            assert cursor.fetchone()[0] != pid
        assert Invoice.objects.get(pk=invoice.pk).description == "after"
    finally:
        connection.health_check_enabled = enabled
