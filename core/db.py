"""The seam between PostgreSQL-only speed-ups and the portable code.

Everything that differs between PostgreSQL (production, CI first) and SQLite (the embedded default) is
decided here, so callers never test the vendor themselves.
"""

from __future__ import annotations

import json

from django.core.exceptions import EmptyResultSet
from django.db import connection as default_connection
from django.db.backends.signals import connection_created
from django.db.models import BooleanField, Func


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


class InValues(Func):
    """``expression IN values`` with the values sent as one parameter (PostgreSQL: ``= ANY(array)``;
    SQLite: a JSON array read by ``json_each``): a chunk of thousands of ids makes a short statement,
    without the per-value preparation and placeholders of ``__in``. Use it in ``filter()``."""

    output_field = BooleanField()

    def __init__(self, expression, values) -> None:
        super().__init__(expression)
        self.values = list(values)

    def as_sql(self, compiler, connection, **extra_context):
        (expression,) = self.get_source_expressions()
        sql, params = compiler.compile(expression)
        if connection.vendor == "postgresql":
            if all(type(value) is int for value in self.values):  # ids: one text, not a value at a time
                return f"{sql} = ANY(%s::bigint[])", (*params, "{" + ",".join(map(str, self.values)) + "}")
            return f"{sql} = ANY(%s)", (*params, self.values)
        if connection.vendor == "sqlite":
            return f"{sql} IN (SELECT value FROM json_each(%s))", (*params, json.dumps(self.values))
        if not self.values:
            raise EmptyResultSet
        return f"{sql} IN ({', '.join(['%s'] * len(self.values))})", (*params, *self.values)
