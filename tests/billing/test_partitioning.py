"""The meter readings and the invoices partitioned by billing month (``manage.py partition_billing``): every row
kept, each in its month's partition, and every rule of the database still enforced on the partitioned tables:
issued bills immutable, references checked, TRUNCATE refused; the months to come added by the daily job."""

from __future__ import annotations

import datetime as dt
import io

import pytest
from django.conf import settings
from django.core.management import call_command
from django.core.management.base import CommandError
from django.db import DatabaseError, connection, transaction

from billing import partitioning
from billing import services as billing
from billing.models import Invoice, MeterReading
from billing.tasks import ensure_billing_partitions
from tests.billing.conftest import NOV, OCT

on_postgres = pytest.mark.skipif(
    "postgresql" not in settings.DATABASES["default"]["ENGINE"], reason="PostgreSQL's declarative partitioning"
)


def _scalar(sql: str, params=None):
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        return cursor.fetchone()[0]


def _refused(sql: str, params=None) -> str:
    with pytest.raises(DatabaseError) as caught, transaction.atomic(), connection.cursor() as cursor:
        cursor.execute(sql, params)
    return str(caught.value)


def _kind(table: str) -> str:
    return _scalar("SELECT relkind::text FROM pg_class WHERE oid = to_regclass(%s)", [table])


def _partitions(table: str) -> list[str]:
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT c.relname FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid "
            "WHERE i.inhparent = %s::regclass ORDER BY 1",
            [table],
        )
        return [name for (name,) in cursor.fetchall()]


@pytest.fixture
def october_issued(make_customer, read):
    customer = make_customer()
    read(customer, OCT, 350)
    billing.billing_run(actor=None, period=OCT)
    billing.invoices_issue(actor=None, period=OCT)
    return customer


@on_postgres
def test_readings_and_invoices_are_partitioned_by_month_with_every_row_and_rule_kept(october_issued, read):
    # given: an issued October bill and its reading, in plain tables
    invoices = list(Invoice.objects.order_by("pk").values())
    readings = list(MeterReading.objects.order_by("pk").values())
    assert (_kind("billing_invoice"), _kind("billing_meterreading")) == ("r", "r")
    # when
    call_command("partition_billing", stdout=io.StringIO())
    # then: both are partitioned by month, hold the same rows, each in its month's partition
    assert (_kind("billing_invoice"), _kind("billing_meterreading")) == ("p", "p")
    assert list(Invoice.objects.order_by("pk").values()) == invoices
    assert list(MeterReading.objects.order_by("pk").values()) == readings
    invoice = Invoice.objects.get()
    assert _scalar("SELECT tableoid::regclass::text FROM billing_invoice WHERE id = %s", [invoice.pk]) == (
        "billing_invoice_2025_10"
    )
    assert {"billing_invoice_2025_10", "billing_invoice_2025_11", "billing_invoice_default"} <= set(
        _partitions("billing_invoice")
    )
    # and: the issued bill is still immutable, references are still checked, TRUNCATE still refused
    assert "is issued and cannot be changed" in _refused(
        "UPDATE billing_invoice SET total = total + 1, subtotal = subtotal + 1 WHERE id = %s", [invoice.pk]
    )
    assert "refers to a row missing" in _refused(
        "UPDATE billing_meterreading SET contract_id = -1 WHERE id = %s", [invoice.reading_id]
    )
    assert "still referenced" in _refused("DELETE FROM billing_meterreading WHERE id = %s", [invoice.reading_id])
    with transaction.atomic(), connection.cursor() as cursor:
        cursor.execute("SET LOCAL tongdai.allow_truncate = 'off'")  # as any session but the tests'
        with pytest.raises(DatabaseError, match="cannot be truncated"), transaction.atomic():
            cursor.execute("TRUNCATE billing_invoice CASCADE")
    assert list(Invoice.objects.order_by("pk").values()) == invoices
    # when: November is read, billed and issued through the services
    read(october_issued, NOV, 500)
    billing.billing_run(actor=None, period=NOV)
    billing.invoices_issue(actor=None, period=NOV)
    # then: its rows land in November's partitions, numbered after the rows copied
    november = Invoice.objects.get(period=NOV)
    assert november.pk > invoice.pk
    assert _scalar("SELECT tableoid::regclass::text FROM billing_invoice WHERE id = %s", [november.pk]) == (
        "billing_invoice_2025_11"
    )
    assert _scalar("SELECT tableoid::regclass::text FROM billing_meterreading WHERE id = %s", [november.reading_id]) == (
        "billing_meterreading_2025_11"
    )
    # when: it runs again
    partitions = _partitions("billing_invoice")
    call_command("partition_billing", stdout=io.StringIO())
    # then: nothing changes
    assert _partitions("billing_invoice") == partitions
    assert Invoice.objects.count() == 2


@on_postgres
def test_partitioning_is_refused_while_a_foreign_key_points_at_a_table(october_issued):
    # given: a table of someone else's with a foreign key to the invoices
    with connection.cursor() as cursor:
        cursor.execute("CREATE TABLE reports_invoice_note (invoice_id bigint REFERENCES billing_invoice (id))")
    # when / then
    with pytest.raises(CommandError, match="reports_invoice_note") as refused:
        call_command("partition_billing", stdout=io.StringIO())
    assert "Nothing was changed" in str(refused.value)
    assert (_kind("billing_invoice"), _kind("billing_meterreading")) == ("r", "r")


@on_postgres
def test_the_daily_job_adds_the_coming_months_once_the_tables_are_partitioned(october_issued):
    # given: plain tables: the job has nothing to do
    assert ensure_billing_partitions() == 0
    assert _kind("billing_invoice") == "r"
    # when: they are partitioned, and later the job runs in June 2027
    partitioning.partition_tables(today=dt.date(2026, 12, 5))
    assert "billing_invoice_2027_06" not in _partitions("billing_invoice")
    assert partitioning.ensure_months_ahead(today=dt.date(2027, 6, 15)) == 2
    # then: June and the three months after it have their partitions, in both tables
    for table in partitioning.TABLES:
        assert {f"{table}_2027_{m:02d}" for m in (6, 7, 8, 9)} <= set(_partitions(table))


def test_the_command_prints_what_it_would_do_and_refuses_clearly_where_it_cannot(db):
    if connection.vendor != "postgresql":
        with pytest.raises(CommandError, match="Only a PostgreSQL database"):
            call_command("partition_billing", stdout=io.StringIO())
        assert ensure_billing_partitions() == 0
        return
    out = io.StringIO()
    call_command("partition_billing", "--dry-run", stdout=out)
    assert "PARTITION BY RANGE (period)" in out.getvalue()
    assert (_kind("billing_invoice"), _kind("billing_meterreading")) == ("r", "r")
    with pytest.raises(CommandError, match="--ahead"):
        call_command("partition_billing", "--ahead", "-1", stdout=io.StringIO())
