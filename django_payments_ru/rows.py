"""Single-row writes of the hot paths, their SQL compiled once per model,
columns and database.

The webhook path writes three rows per first delivery (the inbox row, the
payment, the invoice); the ORM builds each statement anew (expressions,
compilers, converters), which costs more than the statement itself on a fast
database. These helpers write the same columns with the same values, prepared
by each field (``get_db_prep_save``, ``pre_save`` for ``auto_now``), through
SQL built once and, on PostgreSQL, prepared once per connection
(:func:`cursor`). Model signals are honoured: while a ``pre_save`` or
``post_save`` receiver is connected for the model (an audit log, a history
app), the helpers go through ``Model.save`` as before.

Inside :func:`batch` the writes wait and go out together: on PostgreSQL as
one statement (``WITH w1 AS (INSERT ...), w2 AS (UPDATE ...) UPDATE ...``),
one round trip instead of three; elsewhere one after the other. Any other
statement on the connection in between (a read, an ORM write) sends the
waiting writes first, so nothing ever reads around them.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from typing import Any

from django.db import connections, router
from django.db.models import Field, Model
from django.db.models.signals import post_save, pre_save

from .conf import payments_settings

_SQL: dict[tuple[Any, ...], str] = {}


def prepares(connection: Any) -> bool:
    """Whether :func:`cursor` prepares its statements on ``connection``:
    PostgreSQL through psycopg 3, unless ``PAYMENTS_RU["PREPARED_STATEMENTS"]``
    is False or the database's ``OPTIONS`` say ``"prepare_threshold": None``
    (a connection pooler that cannot keep them, docs/deployment.rst)."""
    if connection.vendor != "postgresql":
        return False
    if not payments_settings.PREPARED_STATEMENTS:
        return False
    options = connection.settings_dict.get("OPTIONS") or {}
    if "prepare_threshold" in options and options["prepare_threshold"] is None:
        return False
    from django.db.backends.postgresql.psycopg_any import is_psycopg3

    return bool(is_psycopg3)


_PREPARING: type | None = None
_LOGGED: type | None = None

#: The connection's ``prepare_threshold`` where Django left it None (no
#: statement prepared): psycopg then prepares only what is asked for
#: (``prepare=True``), never by count, and keeps its bookkeeping (a rollback,
#: ``DROP`` or ``ALTER`` forgets what was prepared).
_ONLY_WHEN_ASKED = 2**62


def _preparing_cursor_class() -> type:
    global _PREPARING
    if _PREPARING is None:
        from django.db.backends.postgresql.base import ServerBindingCursor

        class Preparing(ServerBindingCursor):  # type: ignore[misc, valid-type]
            """Django's server-binding cursor, each statement prepared the first
            time the connection runs it (psycopg's ``prepare=True``)."""

            def execute(self, query: Any, params: Any = None, **kwargs: Any) -> Any:
                kwargs["prepare"] = True
                return super().execute(query, params, **kwargs)  # type: ignore[misc]

        _PREPARING = Preparing
    return _PREPARING


def _logged_cursor_class(connection: Any) -> type:
    """The debug wrapper of ``connection``'s backend, logging each statement
    with its values as Django logs a client-side one (``connection.queries``,
    ``CaptureQueriesContext``): psycopg does not keep the text of a prepared
    statement's execution."""
    global _LOGGED
    if _LOGGED is None:
        base = type(connection.make_debug_cursor(None))

        class Logged(base):  # type: ignore[misc, valid-type]
            def execute(self, sql: Any, params: Any = None) -> Any:
                with self.debug_sql(self.db.ops.compose_sql(sql, params), params):
                    return self._execute_with_wrappers(
                        sql, params, many=False, executor=self._execute
                    )

        _LOGGED = Logged
    return _LOGGED


def cursor(connection: Any) -> Any:
    """A cursor of ``connection`` for the hot paths' statements, whose text
    never changes (compiled once, every value a parameter).

    On PostgreSQL with psycopg 3 (see :func:`prepares`) it binds the values on
    the server and prepares each statement the first time the connection runs
    it: PostgreSQL parses and plans it once per connection instead of on every
    webhook (measured: the invoice's locking lookup 0.39 -> 0.19 ms). It is
    Django's own cursor wrapper (execute wrappers, ``connection.queries``,
    error translation) around psycopg's cursor; elsewhere it is
    ``connection.cursor()`` (SQLite's driver keeps its own statement cache)."""
    if not prepares(connection):
        return connection.cursor()
    # As connection.cursor() does: the health check (CONN_HEALTH_CHECKS), a
    # connection, database errors as Django's, one thread.
    connection.close_if_health_check_failed()
    connection.ensure_connection()
    with connection.wrap_database_errors:
        if connection.connection.prepare_threshold is None:
            connection.connection.prepare_threshold = _ONLY_WHEN_ASKED
        raw = _preparing_cursor_class()(connection.connection)
    connection.validate_thread_sharing()
    if connection.queries_logged:
        return _logged_cursor_class(connection)(raw, connection)
    return connection.make_cursor(raw)


def field(model: type[Model], name: str) -> Field[Any, Any]:
    """The concrete field ``name`` of ``model`` (not a reverse relation)."""
    found = model._meta.get_field(name)
    if not isinstance(found, Field) or found.column is None:
        raise TypeError(f"{model.__name__}.{name} is not a column")
    return found


def _update_sql(
    connection: Any, model: type[Model], concrete: Sequence[Field[Any, Any]]
) -> str:
    qn = connection.ops.quote_name
    meta = model._meta
    sets = ", ".join(f"{qn(str(f.column))} = %s" for f in concrete)
    # Identifiers from the model's meta, quoted; every value is a parameter.
    return (
        f"UPDATE {qn(meta.db_table)} SET {sets} "  # noqa: S608
        f"WHERE {qn(str(meta.pk.column if meta.pk else 'id'))} = %s"
    )


def _watched(model: type[Model]) -> bool:
    """Whether a receiver listens for the model's saves."""
    return pre_save.has_listeners(model) or post_save.has_listeners(model)


def _compiled(key: tuple[Any, ...], build: Any) -> str:
    sql = _SQL.get(key)
    if sql is None:
        sql = _SQL[key] = build()
    return sql


#: The attribute of a connection that holds its open batch.
_BATCH = "_payments_ru_rows_batch"


class _Batch:
    """The writes waiting on one connection: ``(sql, params, row)`` where ``row``
    is ``(table, pk)`` for an UPDATE (one statement may change a row once)."""

    def __init__(self, connection: Any) -> None:
        self.connection = connection
        self.waiting: list[tuple[str, list[Any]]] = []
        self.rows: set[tuple[str, Any]] = set()
        # PostgreSQL runs data-modifying statements in WITH, each once and to
        # completion, on one snapshot: independent rows only (``rows``).
        self.together = connection.vendor == "postgresql"

    def add(self, sql: str, params: list[Any], row: tuple[str, Any] | None) -> None:
        if row is not None:
            if row in self.rows:
                self.flush()
            self.rows.add(row)
        self.waiting.append((sql, params))

    def flush(self) -> None:
        waiting, self.waiting = self.waiting, []
        self.rows = set()
        if not waiting:
            return
        with cursor(self.connection) as sending:
            if self.together and len(waiting) > 1:
                *first, (last_sql, last_params) = waiting
                parts = [f"w{i} AS ({sql})" for i, (sql, _p) in enumerate(first)]
                params = [p for _sql, ps in first for p in ps]
                sending.execute(
                    f"WITH {', '.join(parts)} {last_sql}", [*params, *last_params]
                )
            else:
                for sql, params in waiting:
                    sending.execute(sql, params)

    def before(
        self,
        execute: Callable[..., Any],
        sql: str,
        params: Any,
        many: bool,
        context: Mapping[str, Any],
    ) -> Any:
        """The connection's execute wrapper: the waiting writes go first."""
        if self.waiting:
            self.flush()
        return execute(sql, params, many, context)


@contextmanager
def batch(using: str) -> Iterator[None]:
    """Hold the single-row writes on ``using`` and send them together when the
    block ends (or before any other statement); on an error, they are
    dropped with the transaction the caller rolls back."""
    connection = connections[using]
    if getattr(connection, _BATCH, None) is not None:
        yield  # already batching: the outer block sends them
        return
    pending = _Batch(connection)
    setattr(connection, _BATCH, pending)
    try:
        with connection.execute_wrapper(pending.before):
            yield
            pending.flush()
    finally:
        setattr(connection, _BATCH, None)


def _execute(
    connection: Any, sql: str, params: list[Any], row: tuple[str, Any] | None = None
) -> None:
    pending = getattr(connection, _BATCH, None)
    if pending is not None:
        pending.add(sql, params, row)
        return
    with cursor(connection) as sending:
        sending.execute(sql, params)


def update(instance: Model, fields: Sequence[str]) -> None:
    """``instance.save(update_fields=fields)``, by primary key.

    The row must exist (the caller holds its lock): an update of nothing is
    not reported, as ``save`` would by raising ``DatabaseError``."""
    model = type(instance)
    fields = tuple(dict.fromkeys(fields))  # a set, as save() takes it, in order
    if _watched(model):
        instance.save(update_fields=fields)
        return
    using = instance._state.db or router.db_for_write(model)
    connection = connections[using]
    concrete = [field(model, name) for name in fields]
    sql = _compiled(
        ("update", model, fields, connection.alias),
        lambda: _update_sql(connection, model, concrete),
    )
    params = [
        f.get_db_prep_save(f.pre_save(instance, False), connection) for f in concrete
    ]
    params.append(instance.pk)
    _execute(connection, sql, params, (model._meta.db_table, instance.pk))


def insert(instance: Model, *, returning: bool = False) -> None:
    """``instance.save(force_insert=True)`` for a model whose primary key is
    made by the database. Defaults and ``auto_now_add`` are applied as
    ``save`` applies them. The new key is read back only with ``returning``
    (``RETURNING`` where the database has it, else the cursor's last row id);
    such an insert is sent at once, before any write a batch holds."""
    model = type(instance)
    if _watched(model):
        instance.save(force_insert=True)
        return
    using = router.db_for_write(model)
    connection = connections[using]
    meta = model._meta
    fields = [
        f
        for f in meta.local_concrete_fields
        if f is not meta.auto_field and not getattr(f, "generated", False)
    ]
    back = returning and connection.features.can_return_columns_from_insert

    def build() -> str:
        qn = connection.ops.quote_name
        columns = ", ".join(qn(str(f.column)) for f in fields)
        holders = ", ".join(["%s"] * len(fields))
        sql = f"INSERT INTO {qn(meta.db_table)} ({columns}) VALUES ({holders})"  # noqa: S608
        if back and meta.pk is not None:
            sql += f" RETURNING {qn(str(meta.pk.column))}"
        return sql

    sql = _compiled(("insert", model, back, connection.alias), build)
    params = [
        f.get_db_prep_save(f.pre_save(instance, True), connection) for f in fields
    ]
    if not returning:
        _execute(connection, sql, params)
    else:
        pending = getattr(connection, _BATCH, None)
        if pending is not None:
            pending.flush()
        with cursor(connection) as sending:
            sending.execute(sql, params)
            if back:
                (pk,) = sending.fetchone()
            else:
                column = meta.pk.column if meta.pk is not None else None
                pk = connection.ops.last_insert_id(
                    sending, meta.db_table, str(column or "id")
                )
        instance.pk = pk
    instance._state.adding = False
    instance._state.db = using


def update_by_pk(
    model: type[Model], pk: Any, values: Mapping[str, Any], using: str | None = None
) -> None:
    """``model.objects.filter(pk=pk).update(**values)`` where every value is
    plain (no expression): no signals, as with ``QuerySet.update``."""
    using = using or router.db_for_write(model)
    connection = connections[using]
    names = tuple(values)
    concrete = [field(model, name) for name in names]
    sql = _compiled(
        ("update", model, names, connection.alias),
        lambda: _update_sql(connection, model, concrete),
    )
    params: list[Any] = [
        f.get_db_prep_save(values[name], connection)
        for f, name in zip(concrete, names, strict=True)
    ]
    params.append(pk)
    _execute(connection, sql, params, (model._meta.db_table, pk))
