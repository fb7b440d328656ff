"""The meter readings and the invoices can be partitioned (migration 0011): no foreign-key constraint points at
either table, and every reference to them is kept by the reference triggers instead: a row whose reference is
missing is refused and nothing is written; a referenced reading or invoice is not deleted (PostgreSQL)."""

from __future__ import annotations

import pytest
from django.conf import settings
from django.db import IntegrityError, connection, transaction
from django.utils import timezone

from billing import services as billing
from billing.models import Adjustment, Dispute, Invoice, InvoiceLine, Refund
from crm.models import Role
from tests.billing.conftest import DEC, NOV, OCT
from tickets.services import ticket_open

on_postgres = pytest.mark.skipif(
    "postgresql" not in settings.DATABASES["default"]["ENGINE"],
    reason="PostgreSQL's catalog and statement triggers",
)

# (table, column, referenced table): the eight references that were foreign keys until migration 0011.
REFERENCES = [
    ("billing_meterreading", "corrects_id", "billing_meterreading"),
    ("billing_invoice", "adjusts_id", "billing_invoice"),
    ("billing_dispute", "invoice_id", "billing_invoice"),
    ("billing_dispute", "reading_id", "billing_meterreading"),
    ("billing_adjustment", "original_id", "billing_invoice"),
    ("billing_adjustment", "corrected_reading_id", "billing_meterreading"),
    ("billing_adjustment", "invoice_id", "billing_invoice"),
    ("billing_refund", "offset_invoice_id", "billing_invoice"),
]


def _execute(sql: str, params=None) -> None:
    with connection.cursor() as cursor:
        cursor.execute(sql, params)


def _value(table: str, column: str, pk: int):
    with connection.cursor() as cursor:
        cursor.execute(f"SELECT {column} FROM {table} WHERE id = %s", [pk])
        return cursor.fetchone()[0]


def _missing(table: str) -> int:
    with connection.cursor() as cursor:
        cursor.execute(f"SELECT COALESCE(MAX(id), 0) + 1000 FROM {table}")
        return cursor.fetchone()[0]


def _refused(sql: str, params=None) -> str:
    with pytest.raises(IntegrityError) as caught, transaction.atomic():
        _execute(sql, params)
    return str(caught.value)


@pytest.fixture
def corrections(org, make_customer, make_staff, read, catalogue):
    """An issued October bill with a dispute, an approved adjustment (its credit invoice and its refund, taken
    as an offset on the November bill, a draft), and a December reading corrected by another one."""
    proposer = make_staff(Role.BILLING_CLERK, [org["home"]])
    approver = make_staff(Role.BILLING_CLERK, [org["home"]])
    customer = make_customer()
    october = read(customer, OCT, 350)
    billing.billing_run(actor=None, period=OCT)
    billing.invoices_issue(actor=None, period=OCT)
    original = Invoice.objects.get(customer=customer, period=OCT)
    ticket = ticket_open(actor=None, category=catalogue["billing"], channel="phone", description="Hóa đơn cao",
                         customer=customer).ticket  # fmt: skip
    dispute = billing.dispute_open(actor=proposer, ticket=ticket, invoice=original, claim="Sai chỉ số")
    Dispute.objects.filter(pk=dispute.pk).update(reading=october)
    adjustment = billing.adjustment_propose(actor=proposer, invoice=original, kwh=300, record="Biên bản")
    billing.adjustment_decide(actor=approver, adjustment=adjustment, approve=True)
    adjustment.refresh_from_db()
    read(customer, NOV, 350 + 200)
    billing.billing_run(actor=None, period=NOV)
    november = Invoice.objects.get(customer=customer, period=NOV)
    refund = Refund.objects.get(adjustment=adjustment)
    billing.refund_settle(actor=approver, refund=refund, method="offset", offset_invoice=november)
    december = read(customer, DEC, 700)
    corrected = billing.reading_correct(actor=None, reading=december, value=650, reason="Đọc sai")
    spare = read(make_customer(), DEC, 100)
    Adjustment.objects.filter(pk=adjustment.pk).update(corrected_reading=spare)
    return {
        "original": original, "credit": adjustment.invoice, "november": november, "dispute": dispute,
        "adjustment": adjustment, "refund": refund, "december": december, "corrected": corrected, "spare": spare,
    }  # fmt: skip


# Which row of the fixture each reference is written on.
ROW = {
    "billing_meterreading": "corrected",
    "billing_invoice": "november",
    "billing_dispute": "dispute",
    "billing_adjustment": "adjustment",
    "billing_refund": "refund",
}


@on_postgres
def test_no_foreign_key_points_at_the_readings_or_the_invoices(db):
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT conrelid::regclass::text, conname FROM pg_constraint WHERE contype = 'f' "
            "AND confrelid IN ('billing_meterreading'::regclass, 'billing_invoice'::regclass)"
        )
        assert cursor.fetchall() == []


@on_postgres
def test_every_former_foreign_key_keeps_an_index_leading_with_it(db):
    """The checks of a deleted invoice or reading read the referencing column through an index."""
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT t.relname, a.attname FROM pg_index x JOIN pg_class t ON t.oid = x.indrelid "
            "JOIN pg_attribute a ON a.attrelid = t.oid AND a.attnum = x.indkey[0] "
            "WHERE x.indpred IS NULL AND t.relname LIKE 'billing_%%'"
        )
        leading = set(cursor.fetchall())
    assert [(t, c) for t, c, _p in REFERENCES if (t, c) not in leading] == []


@pytest.mark.parametrize(("table", "column", "parent"), REFERENCES)
def test_a_reference_changed_to_a_missing_row_is_refused_and_nothing_is_written(corrections, table, column,
                                                                                  parent):  # fmt: skip
    pk = corrections[ROW[table]].pk
    before = _value(table, column, pk)
    message = _refused(f"UPDATE {table} SET {column} = %s WHERE id = %s", [_missing(parent), pk])
    assert f"{table}.{column} refers to a row missing from {parent}" in message
    assert _value(table, column, pk) == before


@pytest.mark.parametrize("column", ["invoice_id", "reading_id"])
def test_a_dispute_inserted_with_a_missing_invoice_or_reading_is_refused(corrections, column):
    """SQLite and PostgreSQL alike: the insert checks are row triggers on one, a statement trigger on the other."""
    parent = "billing_invoice" if column == "invoice_id" else "billing_meterreading"
    dispute = corrections["dispute"]
    count = Dispute.objects.count()
    refused = f"billing_dispute.{column} refers to a row missing from {parent}"
    with pytest.raises(IntegrityError, match=refused), transaction.atomic():
        Dispute.objects.create(customer_id=dispute.customer_id, unit_id=dispute.unit_id, claim="Sai",
                               opened_at=timezone.now(), **{column: _missing(parent)})  # fmt: skip
    assert Dispute.objects.count() == count


@pytest.mark.skipif(connection.vendor != "sqlite", reason="SQLite's table rebuilds")
def test_the_sqlite_triggers_on_the_rebuilt_tables_are_all_there_after_migration_0011(db):
    """Altering the fields rebuilt five tables: each trigger naming them is there again, with the new ones."""
    import importlib

    migration = importlib.import_module("billing.migrations.0011_references_into_partitionable_tables")
    with connection.cursor() as cursor:
        cursor.execute("SELECT name, sql FROM sqlite_master WHERE type = 'trigger'")
        present = dict(cursor.fetchall())
    expected = dict(zip(migration.LIFTED_SQLITE_NAMES, migration.LIFTED_SQLITE, strict=True))
    expected |= dict(zip(migration.SQLITE_NAMES, migration.SQLITE_FORWARD, strict=True))
    assert {name: present.get(name) for name in expected} == expected


def _delete_refused(table: str, pk: int) -> str:
    if table == "billing_invoice":
        InvoiceLine.objects.filter(invoice_id=pk).delete()  # a draft's lines: only the reference under test
    message = _refused(f"DELETE FROM {table} WHERE id = %s", [pk])
    assert _value(table, "id", pk) == pk
    return message


@on_postgres
def test_a_reading_still_corrected_by_another_is_not_deleted(corrections):
    message = _delete_refused("billing_meterreading", corrections["december"].pk)
    assert "still referenced by billing_meterreading.corrects_id" in message


@on_postgres
def test_a_reading_an_adjustment_was_computed_from_is_not_deleted(corrections):
    message = _delete_refused("billing_meterreading", corrections["spare"].pk)
    assert "still referenced by billing_adjustment.corrected_reading_id" in message


@on_postgres
def test_an_invoice_a_refund_is_offset_on_is_not_deleted(corrections):
    message = _delete_refused("billing_invoice", corrections["november"].pk)
    assert "still referenced by billing_refund.offset_invoice_id" in message


@on_postgres
def test_an_invoice_under_dispute_is_not_deleted(corrections, make_customer, read):
    draft = _draft(make_customer, read)
    Dispute.objects.filter(pk=corrections["dispute"].pk).update(invoice=draft)
    message = _delete_refused("billing_invoice", draft.pk)
    assert "still referenced by billing_dispute.invoice_id" in message


@on_postgres
def test_an_invoice_an_adjustment_invoice_adjusts_is_not_deleted(corrections, make_customer, read):
    draft = _draft(make_customer, read)
    other = _draft(make_customer, read)
    _execute("UPDATE billing_invoice SET kind = 'adjustment', adjusts_id = %s WHERE id = %s", [draft.pk, other.pk])
    message = _delete_refused("billing_invoice", draft.pk)
    assert "still referenced by billing_invoice.adjusts_id" in message


@on_postgres
@pytest.mark.parametrize("column", ["original_id", "invoice_id"])
def test_an_invoice_an_adjustment_names_is_not_deleted(corrections, make_customer, read, column):
    draft = _draft(make_customer, read)
    _execute(f"UPDATE billing_adjustment SET {column} = %s WHERE id = %s", [draft.pk, corrections["adjustment"].pk])
    message = _delete_refused("billing_invoice", draft.pk)
    assert f"still referenced by billing_adjustment.{column}" in message


@on_postgres
def test_a_reading_under_dispute_is_not_deleted(corrections, make_customer, read):
    spare = read(make_customer(), DEC, 50)
    Dispute.objects.filter(pk=corrections["dispute"].pk).update(reading=spare)
    message = _delete_refused("billing_meterreading", spare.pk)
    assert "still referenced by billing_dispute.reading_id" in message


def _draft(make_customer, read) -> Invoice:
    """A December bill not issued, of a customer of its own."""
    customer = make_customer()
    read(customer, DEC, 120)
    billing.billing_run(actor=None, period=DEC)
    return Invoice.objects.get(customer=customer, period=DEC)


def test_the_reference_checks_in_migration_0011_are_what_crm_integrity_writes():
    """``core.integrity.References`` writes the SQL pasted into migration 0011: the pasted copy is the current
    one, for the checks it makes and for those of migration 0010 it restores when reversed."""
    import importlib

    from core.integrity import References

    migration = importlib.import_module("billing.migrations.0011_references_into_partitionable_tables")
    reading = (("contract_id", "customers_contract"), ("meter_id", "customers_meter"), ("unit_id", "crm_unit"))
    invoice = (("contract_id", "customers_contract"), ("customer_id", "customers_customer"),
               ("unit_id", "crm_unit"), ("reading_id", "billing_meterreading"), ("run_id", "billing_billingrun"))
    old = [References("billing_meterreading", reading), References("billing_invoice", invoice)]
    new = [
        References("billing_meterreading", (*reading, ("corrects_id", "billing_meterreading"))),
        References("billing_invoice", (*invoice, ("adjusts_id", "billing_invoice"))),
        References("billing_dispute", (("invoice_id", "billing_invoice"), ("reading_id", "billing_meterreading"))),
        References("billing_adjustment", (("original_id", "billing_invoice"),
                                          ("corrected_reading_id", "billing_meterreading"),
                                          ("invoice_id", "billing_invoice"))),
        References("billing_refund", (("offset_invoice_id", "billing_invoice"),)),
    ]  # fmt: skip
    assert migration.PG_OLD_FORWARD.strip() == "".join(r.postgresql_forward() for r in old).strip()
    assert migration.PG_OLD_BACKWARD.strip() == "\n".join(r.postgresql_backward() for r in old)
    assert migration.PG_FORWARD.strip() == "".join(r.postgresql_forward() for r in new).strip()
    assert migration.PG_BACKWARD.strip() == "\n".join(r.postgresql_backward() for r in new)
    assert "READ COMMITTED transactions only" in migration.PG_FORWARD
    sqlite = [
        References("billing_meterreading", (("corrects_id", "billing_meterreading"),)),
        References("billing_invoice", (("adjusts_id", "billing_invoice"),)),
        *new[2:],
    ]
    assert [s for r in sqlite for s in r.sqlite_forward()] == migration.SQLITE_FORWARD
    assert [n for r in sqlite for n in r.sqlite_names()] == migration.SQLITE_NAMES
    # Every reference check of the new References is in the SQLite triggers after the migration: the columns
    # checked before it are among the triggers it lifts and restores.
    lifted = set(migration.LIFTED_SQLITE_NAMES)
    assert [n for r in new for n in r.sqlite_names() if n not in lifted and n not in migration.SQLITE_NAMES] == []
