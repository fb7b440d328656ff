"""The references of invoices, their lines, rebate applications and readings, kept by the database's
set-based triggers (``core.integrity``) instead of per-row foreign keys."""

import pytest
from django.db import DatabaseError, connection, transaction

from billing import services as billing
from billing.models import Invoice, InvoiceLine, MeterReading
from customers.models import Customer
from tests.billing.conftest import OCT

MISSING = 2_000_000_000


def _draft(make_customer, read):
    customer = make_customer()
    read(customer, OCT, 120)
    billing.billing_run(actor=None, period=OCT)
    return Invoice.objects.get(customer=customer)


def _refused(sql: str, params) -> str:
    with pytest.raises(DatabaseError) as caught, transaction.atomic(), connection.cursor() as cursor:
        cursor.execute(sql, params)
    return str(caught.value)


@pytest.mark.parametrize("column", ["contract_id", "customer_id", "unit_id", "reading_id", "run_id"])
def test_an_invoice_pointing_at_a_missing_row_is_refused(make_customer, read, column):
    invoice = _draft(make_customer, read)
    columns = [f.column for f in Invoice._meta.concrete_fields if f.column != "id"]
    values = ["'X-1'" if c == "number" else "'2030-01-01'" if c == "period" else str(MISSING) if c == column else c
              for c in columns]  # fmt: skip
    message = _refused(
        f"INSERT INTO billing_invoice ({', '.join(columns)}) SELECT {', '.join(values)} FROM billing_invoice "
        "WHERE id = %s",
        [invoice.pk],
    )
    assert f"billing_invoice.{column}" in message
    assert list(Invoice.objects.values_list("pk", flat=True)) == [invoice.pk]
    # Changing the reference of an existing row to a missing one is refused as well.
    message = _refused(f"UPDATE billing_invoice SET {column} = %s WHERE id = %s", [MISSING, invoice.pk])
    assert f"billing_invoice.{column}" in message
    assert getattr(Invoice.objects.get(), column) == getattr(invoice, column)


def test_a_line_of_a_missing_invoice_is_refused_in_a_set_based_insert(make_customer, read):
    invoice = _draft(make_customer, read)
    lines = InvoiceLine.objects.filter(invoice=invoice).count()
    message = _refused(
        "INSERT INTO billing_invoiceline (invoice_id, position, label, segment_start, tier, kwh, price, amount, "
        "vat_percent) SELECT CASE WHEN position = 1 THEN %s ELSE invoice_id END, position + 10, label, "
        "segment_start, tier, kwh, price, amount, vat_percent FROM billing_invoiceline WHERE invoice_id = %s",
        [MISSING, invoice.pk],
    )
    assert "billing_invoiceline.invoice_id" in message
    assert InvoiceLine.objects.count() == lines  # the whole statement is undone, the good rows too


def test_a_reading_of_a_missing_meter_is_refused(make_customer, read):
    reading = read(make_customer(), OCT, 120)
    message = _refused("UPDATE billing_meterreading SET meter_id = %s WHERE id = %s", [MISSING, reading.pk])
    assert "billing_meterreading.meter_id" in message
    assert MeterReading.objects.get().meter_id == reading.meter_id


@pytest.mark.skipif(connection.vendor != "postgresql", reason="SQLite relies on Django's on_delete=PROTECT")
def test_a_referenced_row_cannot_be_deleted_behind_the_orm(make_customer, read):
    invoice = _draft(make_customer, read)
    other = make_customer()
    for sql, params, what in [
        ("DELETE FROM customers_customer WHERE id IN (%s, %s)", [invoice.customer_id, other.pk], "customers_customer"),
        ("DELETE FROM billing_meterreading WHERE id = %s", [invoice.reading_id], "billing_meterreading"),
        ("DELETE FROM billing_invoice WHERE id = %s", [invoice.pk], "billing_invoice"),
    ]:  # fmt: skip
        assert what in _refused(sql, params)
    assert Invoice.objects.filter(pk=invoice.pk).exists()
    assert Customer.objects.filter(pk__in=[invoice.customer_id, other.pk]).count() == 2
    # A row nobody points at still goes.
    with connection.cursor() as cursor:
        cursor.execute("DELETE FROM billing_invoiceline WHERE invoice_id = %s", [invoice.pk])
        cursor.execute("DELETE FROM billing_invoice WHERE id = %s", [invoice.pk])
    assert not Invoice.objects.filter(pk=invoice.pk).exists()


def test_no_foreign_key_is_left_on_the_big_tables_and_every_reference_has_its_trigger(db):
    """The references are the triggers' job: a foreign key left behind would cost the per-row checks again."""
    from billing.migrations import __path__ as migrations_path  # noqa: F401

    if connection.vendor != "postgresql":
        pytest.skip("the catalogue query is PostgreSQL's")
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT conrelid::regclass::text, conname FROM pg_constraint WHERE contype = 'f' AND conrelid::regclass::text "
            "IN ('billing_invoice', 'billing_invoiceline', 'billing_meterreading', 'billing_rebateapplication', "
            "'billing_reinspection')"
        )
        left = sorted(cursor.fetchall())
        cursor.execute(
            "SELECT tgname FROM pg_trigger WHERE tgname LIKE '%%_refs_insert' OR tgname LIKE '%%_kept'"
        )
        triggers = {name for (name,) in cursor.fetchall()}
    # What stays a foreign key: the few references that are not written in bulk and point at neither of the two
    # tables that may be partitioned (a reading's reader, a re-inspection's people).
    assert [table for table, _name in left] == ["billing_meterreading", "billing_reinspection", "billing_reinspection"]
    assert {
        "billing_invoice_refs_insert", "billing_invoiceline_refs_insert", "billing_meterreading_refs_insert",
        "billing_rebateapplication_refs_insert", "billing_reinspection_refs_insert", "billing_invoice_customer_id_kept",
        "billing_invoiceline_invoice_id_kept",
    } <= triggers  # fmt: skip
