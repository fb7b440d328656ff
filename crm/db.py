"""The seam between PostgreSQL-only speed-ups and the portable code.

Everything that differs between PostgreSQL (production, CI first) and SQLite (the embedded default) is
decided here, so callers never test the vendor themselves.
"""

from __future__ import annotations

import functools
from contextlib import contextmanager

from django.conf import settings
from django.core.exceptions import EmptyResultSet
from django.db import connection as default_connection
from django.db import connections
from django.db.backends.signals import connection_created


def is_postgres(connection=None) -> bool:
    return (connection or default_connection).vendor == "postgresql"


def _register_sqlite_functions(sender, connection, **kwargs) -> None:
    if connection.vendor != "sqlite":
        return
    # SQLite's LOWER() folds ASCII only; this one folds Vietnamese capitals too, like PostgreSQL's.
    connection.connection.create_function("tongdai_lower", 1, _unicode_lower, deterministic=True)


def _unicode_lower(value):
    return value.lower() if isinstance(value, str) else value


def install_sqlite_functions() -> None:
    connection_created.connect(_register_sqlite_functions, dispatch_uid="tongdai_sqlite_functions")


def estimated_row_count(table: str, connection=None) -> int | None:
    """The planner's row estimate for a whole table (PostgreSQL), or None where there is none."""
    conn = connection or default_connection
    if not is_postgres(conn):
        return None
    with conn.cursor() as cursor:
        cursor.execute("SELECT reltuples::bigint FROM pg_class WHERE oid = %s::regclass", [table])
        row = cursor.fetchone()
    if row is None or row[0] is None or row[0] < 0:
        return None
    return int(row[0])


def estimated_query_count(queryset) -> int | None:
    """The planner's estimate of the rows a queryset returns (PostgreSQL), from EXPLAIN, or None.

    A queryset that can match no row (``none()``, ``pk__in=[]``: a search that found nothing) has no SQL to
    explain; its estimate is 0, so the caller counts it exactly (Django answers 0 without a query)."""
    conn = default_connection
    if not is_postgres(conn):
        return None
    import json

    try:
        sql, params = queryset.query.sql_with_params()
    except EmptyResultSet:
        return 0
    with conn.cursor() as cursor:
        cursor.execute("EXPLAIN (FORMAT JSON) " + sql, params)
        plan = cursor.fetchone()[0]
    if isinstance(plan, str):
        plan = json.loads(plan)
    return int(plan[0]["Plan"]["Plan Rows"])


def _itself(connection=None):
    """The connection object itself (default: this thread's default one), not Django's proxy to it: the hot
    paths below ask it for its backend's operations some 40 times an intake, each through the proxy a
    thread-local lookup."""
    return connections[(connection or default_connection).alias]


@contextmanager
def prepared_cursor(connection=None):
    """A cursor whose statements PostgreSQL keeps prepared for the connection: parsed and planned on their first
    execution, then run by name with only their parameters sent. For the few statements a hot endpoint runs on
    every request (intake); their text must be the same each time, the values passed as parameters.

    Elsewhere (SQLite, or ``TONGDAI_PREPARED_STATEMENTS`` off for a pooler that moves sessions between server
    connections) it is the connection's usual cursor. Either way it is Django's cursor wrapper: errors are
    Django's, and the statements are logged and counted like any other.
    """
    conn = _itself(connection)
    if not is_postgres(conn) or not settings.TONGDAI_PREPARED_STATEMENTS:
        with conn.cursor() as cursor:
            yield cursor
        return
    conn.close_if_health_check_failed()  # what connection.cursor() does before it makes a cursor
    conn.ensure_connection()
    with conn.wrap_database_errors:
        raw = conn.connection
        if raw.prepare_threshold is None:
            # Django turns psycopg's automatic preparing off; its own (client-side binding) cursors never prepare,
            # so this lets only cursors made here prepare, and only the statements they are asked to.
            raw.prepare_threshold = _NEVER_BY_COUNT
        cursor = conn._prepare_cursor(_preparing_cursor_class()(raw))
    with cursor:
        yield cursor


_NEVER_BY_COUNT = 2**31 - 1


@functools.cache
def _preparing_cursor_class():  # built on first use: the PostgreSQL backend imports psycopg
    from django.db.backends.postgresql.base import ServerBindingCursor

    class PreparingCursor(ServerBindingCursor):
        """Server-side binding, and every statement prepared (psycopg keeps up to 100 per connection)."""

        def execute(self, query, params=None, *, prepare=None, binary=None):
            return super().execute(query, params, prepare=True, binary=binary)

        def _send_query_prepared(self, name, pgq, *, binary=None):
            # psycopg leaves the executed query unset for a prepared run; Django's query log reads it from there
            # (the statement as PostgreSQL receives it, with $1, $2… for the parameters).
            self._query = pgq
            return super()._send_query_prepared(name, pgq, binary=binary)

    return PreparingCursor


def insert_parts(instance, *, expressions: dict[str, str] | None = None, connection=None):
    """The pieces of one ``INSERT`` of ``instance`` (its primary key left to the database): the quoted table,
    the quoted columns, the placeholders and the parameters. ``expressions`` maps a field's attname to raw SQL
    used instead of a parameter (e.g. the id returned by an earlier part of the same statement).

    For hot paths that write several rows in one round trip; the values are the model's own (defaults,
    ``auto_now_add`` and field preparation apply as in ``save``).
    """
    conn = _itself(connection)
    expressions = expressions or {}
    placeholders, params = [], []
    table, fields, columns = _insert_columns(type(instance), conn.alias)
    for field in fields:
        if field.attname in expressions:
            expression = expressions[field.attname]
            if isinstance(expression, tuple):  # (SQL with placeholders, their parameters)
                placeholders.append(expression[0])
                params.extend(expression[1])
            else:
                placeholders.append(expression)
        else:
            value = field.get_db_prep_save(field.pre_save(instance, add=True), conn)
            if value is None or value is True or value is False:
                # Written out: fewer parameters keep a long statement within the driver's cache of parsed
                # queries (up to 50 parameters), and the statement's text still varies only with them.
                placeholders.append("NULL" if value is None else "TRUE" if value else "FALSE")
            else:
                placeholders.append("%s")
                params.append(value)
    return table, columns, ", ".join(placeholders), params


@functools.cache
def _insert_columns(model, alias: str):
    """A model's quoted table, the fields an INSERT writes (all but the primary key) and their quoted columns."""
    quote = connections[alias].ops.quote_name
    fields = [field for field in model._meta.concrete_fields if not field.primary_key]
    return quote(model._meta.db_table), fields, ", ".join(quote(field.column) for field in fields)
