"""The meter readings and the invoices partitioned by billing month (PostgreSQL declarative partitioning).

At the nation's size the two tables grow by tens of millions of rows a month (``docs/scale.md``). Partitioned
by ``period`` (the first day of the billed month), each month is a table of its own: the billing run, the
anomaly scan and the rebates select one period and so read one partition, each index is a month's size, and an
old month can be detached to an archive after the legal retention period.

``partition_tables`` turns each table into a ``PARTITION BY RANGE (period)`` table in one transaction, under an
exclusive lock (a maintenance window: it copies the rows):

* the table is renamed, a partitioned table of the same columns (identity and defaults included) takes its
  name, with one partition a month from the first month held to ``ahead`` months after this one and a default
  partition for any other month, and the rows are copied;
* the primary key becomes ``(id, period)`` and each unique constraint gains ``period`` (PostgreSQL requires the
  partition key in every unique constraint). For the invoices' number and a reading's correction this keeps
  the rule: a number is unique within its month and the yearly counter never gives one twice; a correction
  has its reading's month;
* every other index, check and foreign key of the table and every trigger on it (the immutability of issued
  bills, the statement-level reference checks of ``core.integrity``, the refusal of TRUNCATE) is made again on
  the partitioned table, which PostgreSQL applies to every partition;
* the identity continues after the highest id copied.

It refuses to start while a foreign key of any table points at the table (PostgreSQL cannot keep one pointing at
a partitioned table's ``id`` alone): the product keeps those references with triggers instead
(``billing/migrations/0011``). Run again, or daily (``ensure_months_ahead``), it only adds the coming months'
partitions, so a month's rows never land in the default partition. On SQLite (the embedded default) nothing is
partitioned.
"""

from __future__ import annotations

import datetime as dt
import logging
from dataclasses import dataclass, field

from django.db import connection, transaction
from django.utils import timezone

log = logging.getLogger(__name__)

TABLES = ("billing_meterreading", "billing_invoice")
KEY = "period"
AHEAD = 3  # months of partitions made ahead of this one


class NotPartitionable(Exception):
    """Something in the database keeps a table from being partitioned; the message says what."""


@dataclass
class Shape:
    """What a table holds besides its columns, as the catalog describes it (read before the table is renamed)."""

    table: str
    constraints: list[tuple[str, str, str, list[str]]] = field(default_factory=list)  # name, type, def, columns
    indexes: list[tuple[str, str, bool, list[str]]] = field(default_factory=list)  # name, def, unique, columns
    triggers: list[str] = field(default_factory=list)


def _month(day: dt.date) -> dt.date:
    return day.replace(day=1)


def _next_month(month: dt.date) -> dt.date:
    return (month.replace(day=28) + dt.timedelta(days=4)).replace(day=1)


def partition_name(table: str, month: dt.date) -> str:
    return f"{table}_{month:%Y_%m}"


def is_partitioned(table: str) -> bool:
    with connection.cursor() as cursor:
        cursor.execute("SELECT relkind = 'p' FROM pg_class WHERE oid = to_regclass(%s)", [table])
        row = cursor.fetchone()
    return bool(row and row[0])


def _refusals(cursor, table: str) -> list[str]:
    cursor.execute(
        "SELECT conrelid::regclass::text, conname FROM pg_constraint WHERE contype = 'f' AND confrelid = %s::regclass",
        [table],
    )
    return [f"the foreign key {name} of {source} points at {table}" for source, name in cursor.fetchall()]


def _shape(cursor, table: str) -> Shape:
    shape = Shape(table)
    cursor.execute(
        """SELECT c.conname, c.contype, pg_get_constraintdef(c.oid),
                  ARRAY(SELECT a.attname::text FROM unnest(c.conkey) k JOIN pg_attribute a
                        ON a.attrelid = c.conrelid AND a.attnum = k)
           FROM pg_constraint c WHERE c.conrelid = %s::regclass ORDER BY c.contype, c.conname""",
        [table],
    )
    shape.constraints = [(name, kind, definition, list(columns)) for name, kind, definition, columns in cursor]
    cursor.execute(
        """SELECT i.relname, pg_get_indexdef(x.indexrelid), x.indisunique,
                  ARRAY(SELECT a.attname::text FROM unnest(x.indkey) k JOIN pg_attribute a
                        ON a.attrelid = x.indrelid AND a.attnum = k)
           FROM pg_index x JOIN pg_class i ON i.oid = x.indexrelid
           WHERE x.indrelid = %s::regclass
             AND NOT EXISTS (SELECT 1 FROM pg_constraint c WHERE c.conindid = x.indexrelid AND c.conrelid = x.indrelid)
           ORDER BY i.relname""",
        [table],
    )
    shape.indexes = [(name, definition, unique, list(columns)) for name, definition, unique, columns in cursor]
    cursor.execute(
        "SELECT pg_get_triggerdef(oid) FROM pg_trigger WHERE tgrelid = %s::regclass AND NOT tgisinternal ORDER BY tgname",
        [table],
    )
    shape.triggers = [definition for (definition,) in cursor]
    for name, _definition, unique, columns in shape.indexes:
        if unique and KEY not in columns:
            raise NotPartitionable(f"the unique index {name} of {table} does not include {KEY}")
    return shape


def _months(cursor, table: str, *, ahead: int, today: dt.date) -> list[dt.date]:
    cursor.execute(f"SELECT min({KEY}) FROM {table}")
    (first,) = cursor.fetchone()
    month = _month(min(first or today, today))
    last = _month(today)
    for _ in range(ahead):
        last = _next_month(last)
    months = []
    while month <= last:
        months.append(month)
        month = _next_month(month)
    return months


def _partition_sql(table: str, month: dt.date) -> str:
    return (
        f"CREATE TABLE IF NOT EXISTS {partition_name(table, month)} PARTITION OF {table} "
        f"FOR VALUES FROM ('{month.isoformat()}') TO ('{_next_month(month).isoformat()}')"
    )


def _conversion(cursor, table: str, *, ahead: int, today: dt.date) -> list[str]:
    """The statements that partition ``table`` (read from the catalog now, run in this order)."""
    refused = _refusals(cursor, table)
    if refused:
        raise NotPartitionable("; ".join(refused))
    shape = _shape(cursor, table)
    before = f"{table}_unpartitioned"
    statements = [
        # Checks this transaction deferred fire now: a table with pending trigger events cannot be dropped.
        "SET CONSTRAINTS ALL IMMEDIATE",
        f"LOCK TABLE {table} IN ACCESS EXCLUSIVE MODE",
        f"ALTER TABLE {table} RENAME TO {before}",
        f"CREATE TABLE {table} (LIKE {before} INCLUDING DEFAULTS INCLUDING IDENTITY INCLUDING GENERATED "
        f"INCLUDING STORAGE) PARTITION BY RANGE ({KEY})",
        *(_partition_sql(table, month) for month in _months(cursor, table, ahead=ahead, today=today)),
        f"CREATE TABLE {table}_default PARTITION OF {table} DEFAULT",
        f"INSERT INTO {table} SELECT * FROM {before}",
        f"DROP TABLE {before}",
        f"SELECT setval(pg_get_serial_sequence('{table}', 'id'), COALESCE((SELECT max(id) FROM {table}), 0) + 1, "
        "false)",
    ]
    for name, kind, definition, columns in shape.constraints:
        if kind in ("p", "u") and KEY not in columns:
            word = "PRIMARY KEY" if kind == "p" else "UNIQUE"
            definition = f"{word} ({', '.join([*columns, KEY])})"
        statements.append(f"ALTER TABLE {table} ADD CONSTRAINT {name} {definition}")
    statements += [definition for _name, definition, _unique, _columns in shape.indexes]
    statements += shape.triggers
    statements.append(f"ANALYZE {table}")
    return statements


def partition_tables(*, ahead: int = AHEAD, dry_run: bool = False, today: dt.date | None = None) -> list[str]:
    """Partition the readings and the invoices by month (PostgreSQL), or add the coming months' partitions to
    those already partitioned. Returns the statements run (with ``dry_run``, those that would run)."""
    if connection.vendor != "postgresql":
        raise NotPartitionable("Only a PostgreSQL database is partitioned.")
    today = today or timezone.localdate()
    done: list[str] = []
    with transaction.atomic(), connection.cursor() as cursor:
        for table in TABLES:
            if is_partitioned(table):
                statements = [_partition_sql(table, month) for month in _coming(today, ahead)]
            else:
                statements = _conversion(cursor, table, ahead=ahead, today=today)
            if not dry_run:
                for statement in statements:
                    cursor.execute(statement)
            done += statements
    if not dry_run:
        log.info("billing tables partitioned by month (%d statements)", len(done))
    return done


def _coming(today: dt.date, ahead: int) -> list[dt.date]:
    month, months = _month(today), []
    for _ in range(ahead + 1):
        months.append(month)
        month = _next_month(month)
    return months


def ensure_months_ahead(*, ahead: int = AHEAD, today: dt.date | None = None) -> int:
    """The partitions of this month and the ``ahead`` next ones, for each table already partitioned (a daily job;
    nothing to do elsewhere). Returns how many tables it looked at."""
    if connection.vendor != "postgresql":
        return 0
    today = today or timezone.localdate()
    tables = [table for table in TABLES if is_partitioned(table)]
    with transaction.atomic(), connection.cursor() as cursor:
        for table in tables:
            for month in _coming(today, ahead):
                cursor.execute(_partition_sql(table, month))
    return len(tables)
