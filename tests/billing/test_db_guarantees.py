"""What the database itself guarantees in billing (migration 0010): the VAT rates and price tables issued
bills used stay as they were, whole tables are not emptied, ``paid_at`` only on paid bills, the lines of a bill
being issued wait for the issue, the set-based reference checks hold or refuse, and the indexes they read."""

from __future__ import annotations

import datetime as dt

import pytest
from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import DatabaseError, IntegrityError, connection, transaction
from django.urls import reverse
from django.utils import timezone

from billing import services as billing
from billing.models import AuditRecord, Invoice, InvoiceLine, MeterReading, PriceStep, PriceTable, VatRate
from crm.models import Role
from tests.billing.conftest import OCT
from tests.concurrency import in_thread

on_postgres = pytest.mark.skipif(
    "postgresql" not in settings.DATABASES["default"]["ENGINE"],
    reason="PostgreSQL's triggers, locks and plans",
)


def _refused(sql: str, params=None) -> str:
    with pytest.raises(DatabaseError) as caught, transaction.atomic(), connection.cursor() as cursor:
        cursor.execute(sql, params)
    return str(caught.value)


@pytest.fixture
def issued_october(make_customer, read):
    """A residential customer's October 2025 bill, issued: it used the 8 % VAT rate from 1 July 2023 and the
    residential price table from 10 May 2025."""
    customer = make_customer()
    read(customer, OCT, 350)
    billing.billing_run(actor=None, period=OCT)
    billing.invoices_issue(actor=None, period=OCT)
    return Invoice.objects.get(customer=customer)


def _rows():
    return (
        list(VatRate.objects.order_by("pk").values()),
        list(PriceTable.objects.order_by("pk").values()),
        list(PriceStep.objects.order_by("pk").values()),
    )


# 8. Dated reference data that issued bills used -----------------------------------------------------------


def test_a_vat_rate_an_issued_bill_used_cannot_be_changed_or_deleted_behind_the_services(issued_october):
    used = VatRate.objects.get(valid_from=dt.date(2023, 7, 1))
    later = VatRate.objects.get(valid_from=dt.date(2027, 1, 1))  # no bill covers 2027 yet
    assert billing.vat_rate_in_use(used) and not billing.vat_rate_in_use(later)
    before = _rows()
    assert "VAT rate" in _refused("UPDATE billing_vatrate SET percent = 10 WHERE id = %s", [used.pk])
    assert "VAT rate" in _refused(
        "UPDATE billing_vatrate SET valid_from = '2023-08-01' WHERE id = %s", [used.pk]
    )
    assert "VAT rate" in _refused("DELETE FROM billing_vatrate WHERE id = %s", [used.pk])
    assert _rows() == before
    # A rate no issued bill covers is still a row like any other.
    with connection.cursor() as cursor:
        cursor.execute(
            "UPDATE billing_vatrate SET legal_basis = 'Luật 48/2024/QH15' WHERE id = %s", [later.pk]
        )
    later.refresh_from_db()
    assert later.legal_basis == "Luật 48/2024/QH15"


def test_a_price_table_an_issued_bill_used_and_its_prices_cannot_be_changed(issued_october):
    used = PriceTable.objects.get(tariff_category="residential", valid_from=dt.date(2025, 5, 10))
    older = PriceTable.objects.get(tariff_category="residential", valid_from=dt.date(2024, 10, 11))
    other_category = PriceTable.objects.get(tariff_category="business", valid_from=dt.date(2025, 5, 10))
    assert billing.price_table_in_use(used)
    assert not billing.price_table_in_use(older)  # ended before October 2025
    assert not billing.price_table_in_use(other_category)  # no business contract was billed
    step = used.steps.order_by("position").first()
    before = _rows()
    for sql, params in [
        ("UPDATE billing_pricetable SET legal_basis = 'x' WHERE id = %s", [used.pk]),
        ("DELETE FROM billing_pricetable WHERE id = %s", [used.pk]),
        ("UPDATE billing_pricestep SET price = price + 1 WHERE id = %s", [step.pk]),
        ("DELETE FROM billing_pricestep WHERE id = %s", [step.pk]),
        (
            "INSERT INTO billing_pricestep (table_id, position, upper_kwh, register, price) "
            "VALUES (%s, 99, NULL, 'peak', 5000)",
            [used.pk],
        ),
    ]:
        assert "price table" in _refused(sql, params)
    assert _rows() == before
    with connection.cursor() as cursor:  # the business table nobody's bill used can still be corrected
        cursor.execute("UPDATE billing_pricestep SET price = 3153 WHERE table_id = %s", [other_category.pk])
    assert list(other_category.steps.values_list("price", flat=True)) == [3153]


def test_a_correction_is_a_new_dated_vat_rate_with_its_audit_record(issued_october, staff):
    admin = staff[Role.ADMINISTRATOR]
    with pytest.raises(ValidationError, match="Issued bills already cover that day"):
        billing.vat_rate_create(actor=admin, valid_from=dt.date(2025, 10, 15), percent=10)
    rate = billing.vat_rate_create(actor=admin, valid_from=dt.date(2026, 7, 1), percent=9, legal_basis="NĐ")
    record = AuditRecord.objects.get(action="vat_rate.create")
    assert (record.object_id, record.actor, record.after) == (
        rate.pk, admin, {"valid_from": "2026-07-01", "percent": 9, "legal_basis": "NĐ"}
    )  # fmt: skip
    with pytest.raises(ValidationError, match="Issued bills used this VAT rate"):
        billing.vat_rate_change(
            actor=admin, rate=VatRate.objects.get(valid_from=dt.date(2023, 7, 1)), percent=10
        )


def test_a_rate_or_price_from_a_day_that_bills_made_and_not_yet_issued_cover_is_refused(
    make_customer, read, staff
):
    """The draft was computed with the rates in force: a change under it would issue what the tables no
    longer say. Refused with the month, changing nothing; from a day after the bills it is taken."""
    admin = staff[Role.ADMINISTRATOR]
    read(make_customer(), OCT, 350)
    billing.billing_run(actor=None, period=OCT)
    draft = Invoice.objects.get()
    before = _rows()
    with pytest.raises(ValidationError, match="The bills of 10/2025 are made and not yet issued"):
        billing.vat_rate_create(actor=admin, valid_from=dt.date(2025, 10, 15), percent=10)
    with pytest.raises(ValidationError, match="The bills of 10/2025 are made and not yet issued"):
        billing.price_table_create(
            actor=admin, tariff_category="residential", kind="tiered", valid_from=dt.date(2025, 10, 20),
            tiers=[(None, 3000)],
        )  # fmt: skip
    september = VatRate.objects.create(valid_from=dt.date(2025, 9, 1), percent=8)  # a rate October falls in
    with pytest.raises(ValidationError, match="The bills of 10/2025 are made and not yet issued"):
        billing.vat_rate_change(actor=admin, rate=september, percent=10)
    september.delete()
    assert _rows() == before and not AuditRecord.objects.filter(action__startswith="vat_rate").exists()
    assert Invoice.objects.get().total == draft.total
    billing.vat_rate_create(actor=admin, valid_from=dt.date(2025, 11, 1), percent=10)  # after the bills: taken
    assert VatRate.objects.filter(valid_from=dt.date(2025, 11, 1), percent=10).exists()


@on_postgres
def test_a_rate_made_while_a_billing_run_is_open_waits_for_it_and_is_refused(transactional_db, make_customer,
                                                                             read, staff):  # fmt: skip
    """The run read the rates in force; a new rate from a day it bills, made meanwhile by another clerk,
    waits for the run to commit and then finds its drafts: refused, and the drafts stay what they bill."""
    admin = staff[Role.ADMINISTRATOR]
    read(make_customer(), OCT, 350)
    rates = list(VatRate.objects.order_by("pk").values())
    with transaction.atomic():
        billing.billing_run(actor=None, period=OCT)
        thread, outcome = in_thread(
            lambda: billing.vat_rate_create(actor=admin, valid_from=dt.date(2025, 10, 15), percent=10)
        )
        thread.join(1.5)
        assert thread.is_alive()  # the new rate waits for the run
    thread.join(30)
    assert "The bills of 10/2025 are made and not yet issued" in str(outcome.get("error"))
    assert list(VatRate.objects.order_by("pk").values()) == rates
    invoice = Invoice.objects.get()
    assert invoice.total == billing.charge_for(category="residential", period=OCT, kwh=350).total


@on_postgres
def test_a_billing_run_started_while_a_rate_is_being_made_bills_with_the_new_rate(transactional_db,
                                                                                  make_customer, read, staff):  # fmt: skip
    admin = staff[Role.ADMINISTRATOR]
    read(make_customer(), OCT, 350)
    with transaction.atomic():
        billing.vat_rate_create(actor=admin, valid_from=dt.date(2025, 10, 1), percent=10)
        thread, outcome = in_thread(lambda: billing.billing_run(actor=None, period=OCT))
        thread.join(1.5)
        assert thread.is_alive()  # the run waits for the rate
    thread.join(30)
    assert "error" not in outcome and outcome["result"].invoices == 1
    invoice = Invoice.objects.get()
    assert invoice.vat == round(invoice.subtotal * 10 / 100)
    assert set(InvoiceLine.objects.filter(invoice=invoice).values_list("vat_percent", flat=True)) == {10}


def test_the_admin_shows_a_used_vat_rate_read_only_and_takes_a_new_dated_one(client, staff, issued_october):
    used = VatRate.objects.get(valid_from=dt.date(2023, 7, 1))
    page = reverse("admin:billing_vatrate_change", args=[used.pk])
    before = _rows()
    client.force_login(staff[Role.BILLING_CLERK])
    assert client.get(reverse("admin:billing_vatrate_changelist")).status_code == 200
    assert (
        client.post(page, {"valid_from": "2023-07-01", "percent": "10", "legal_basis": ""}).status_code == 403
    )
    assert client.get(reverse("admin:billing_vatrate_add")).status_code == 403
    client.force_login(staff[Role.ADMINISTRATOR])
    shown = client.get(page)
    assert shown.status_code == 200
    assert "Issued bills used this VAT rate" in shown.content.decode()
    assert 'name="percent"' not in shown.content.decode()  # shown, not editable
    assert (
        client.post(page, {"valid_from": "2023-07-01", "percent": "10", "legal_basis": ""}).status_code == 403
    )
    assert _rows() == before
    created = client.post(
        reverse("admin:billing_vatrate_add"),
        {"valid_from": "2026-07-01", "percent": "9", "legal_basis": "NĐ mới"},
    )
    assert created.status_code == 302, created.content.decode()[:2000]
    new = VatRate.objects.get(valid_from=dt.date(2026, 7, 1))
    assert (new.percent, new.legal_basis) == (9, "NĐ mới")
    assert AuditRecord.objects.filter(
        action="vat_rate.create", object_id=new.pk, actor=staff[Role.ADMINISTRATOR]
    )
    # The rate from 2027 no bill used yet is corrected in place, audited.
    later = VatRate.objects.get(valid_from=dt.date(2027, 1, 1))
    changed = client.post(
        reverse("admin:billing_vatrate_change", args=[later.pk]),
        {"valid_from": "2027-01-01", "percent": "10", "legal_basis": "Luật 48/2024/QH15"},
    )
    assert changed.status_code == 302
    later.refresh_from_db()
    assert later.legal_basis == "Luật 48/2024/QH15"
    assert AuditRecord.objects.get(action="vat_rate.change").object_id == later.pk


def test_the_admin_says_why_a_used_price_table_is_read_only(client, staff, issued_october):
    used = PriceTable.objects.get(tariff_category="residential", valid_from=dt.date(2025, 5, 10))
    client.force_login(staff[Role.ADMINISTRATOR])
    page = client.get(reverse("admin:billing_pricetable_change", args=[used.pk]))
    assert page.status_code == 200
    assert "Issued bills used this price table" in page.content.decode()
    response = client.post(reverse("admin:billing_pricetable_change", args=[used.pk]), {"legal_basis": "x"})
    assert response.status_code == 403
    assert PriceTable.objects.get(pk=used.pk).legal_basis == used.legal_basis


# 10. Whole tables and paid_at -----------------------------------------------------------------------------


@on_postgres
@pytest.mark.parametrize(
    "table", ["billing_auditrecord", "billing_invoiceline", "billing_invoice, billing_invoiceline"]
)
def test_truncating_the_audit_the_invoices_or_their_lines_is_refused(transactional_db, issued_october, table):
    before = (AuditRecord.objects.count(), Invoice.objects.count(), InvoiceLine.objects.count())
    with (
        pytest.raises(DatabaseError, match="cannot be truncated"),
        transaction.atomic(),
        connection.cursor() as cursor,
    ):
        cursor.execute("SET LOCAL tongdai.allow_truncate = 'off'")  # as any session but the tests'
        cursor.execute(f"TRUNCATE {table} CASCADE")
    assert (AuditRecord.objects.count(), Invoice.objects.count(), InvoiceLine.objects.count()) == before
    assert all(before)


def test_paid_at_is_set_on_paid_bills_only(issued_october, make_customer, read):
    invoice = issued_october
    with pytest.raises(IntegrityError), transaction.atomic():
        Invoice.objects.filter(pk=invoice.pk).update(paid_at=timezone.now())  # still issued, not paid
    read(make_customer(), dt.date(2025, 11, 1), 120)
    billing.billing_run(actor=None, period=dt.date(2025, 11, 1))
    draft = Invoice.objects.get(status="draft")
    assert "paid_at" in _refused(
        "UPDATE billing_invoice SET paid_at = %s WHERE id = %s", [timezone.now(), draft.pk]
    )
    assert list(Invoice.objects.exclude(paid_at=None)) == []
    paid = billing.payment_record(
        actor=None, invoice=invoice, amount=invoice.amount_due, paid_at=timezone.now(), source="counter",
        reference="DB-1",
    ).payment
    assert Invoice.objects.get(pk=invoice.pk).paid_at == paid.paid_at is not None


# 11. The lines of a bill being issued --------------------------------------------------------------------


@on_postgres
@pytest.mark.parametrize("write", ["insert", "update", "delete"])
def test_a_line_written_while_its_invoice_is_being_issued_waits_and_is_refused(
    transactional_db, make_customer, read, write
):
    read(make_customer(), OCT, 350)
    billing.billing_run(actor=None, period=OCT)
    invoice = Invoice.objects.get()
    lines = list(InvoiceLine.objects.filter(invoice=invoice).order_by("position").values())
    sql = {
        "insert": "INSERT INTO billing_invoiceline (invoice_id, position, label, segment_start, tier, kwh, price, "
        "amount, vat_percent) SELECT invoice_id, 99, label, segment_start, tier, kwh, price, amount, vat_percent "
        "FROM billing_invoiceline WHERE invoice_id = %s AND position = 1",
        "update": "UPDATE billing_invoiceline SET amount = amount + 1000 WHERE invoice_id = %s AND position = 1",
        "delete": "DELETE FROM billing_invoiceline WHERE invoice_id = %s AND position = 1",
    }[write]

    def raw_writer():
        with transaction.atomic(), connection.cursor() as cursor:
            cursor.execute(sql, [invoice.pk])

    with transaction.atomic():
        assert billing.invoices_issue(actor=None, period=OCT) == 1
        writer, outcome = in_thread(raw_writer)
        writer.join(1.5)
        assert writer.is_alive()  # waits for the invoice being issued
    writer.join(30)
    assert isinstance(outcome.get("error"), DatabaseError), outcome
    assert "issued invoice" in str(outcome["error"])
    assert list(InvoiceLine.objects.filter(invoice=invoice).order_by("position").values()) == lines
    assert Invoice.objects.get().status == "issued"


# 12. The set-based reference checks ------------------------------------------------------------------------


@on_postgres
def test_the_reference_checks_refuse_to_run_outside_read_committed(transactional_db, make_customer, read):
    read(make_customer(), OCT, 350)
    billing.billing_run(actor=None, period=OCT)
    invoice = Invoice.objects.get()
    lines = InvoiceLine.objects.count()
    for level in ("REPEATABLE READ", "SERIALIZABLE"):
        with (
            pytest.raises(DatabaseError, match="READ COMMITTED"),
            transaction.atomic(),
            connection.cursor() as cursor,
        ):
            cursor.execute(f"SET TRANSACTION ISOLATION LEVEL {level}")
            cursor.execute(
                "INSERT INTO billing_invoiceline (invoice_id, position, label, segment_start, tier, kwh, "
                "price, amount, vat_percent) SELECT invoice_id, 99, label, segment_start, tier, kwh, price, "
                "amount, vat_percent FROM billing_invoiceline WHERE invoice_id = %s AND position = 1",
                [invoice.pk],
            )
        # Deleting a row others point at (an invoice, the parent of its lines) is not checked there either.
        with (
            pytest.raises(DatabaseError, match="READ COMMITTED"),
            transaction.atomic(),
            connection.cursor() as cursor,
        ):
            cursor.execute(f"SET TRANSACTION ISOLATION LEVEL {level}")
            cursor.execute("DELETE FROM billing_invoiceline WHERE invoice_id = %s", [invoice.pk])
            cursor.execute("DELETE FROM billing_invoice WHERE id = %s", [invoice.pk])
    assert InvoiceLine.objects.count() == lines
    assert Invoice.objects.filter(pk=invoice.pk).exists()


@on_postgres
def test_a_delete_of_no_rows_locks_no_child_table(transactional_db, make_customer, read):
    reading = read(make_customer(), OCT, 350)

    def change_the_reading():
        with transaction.atomic(), connection.cursor() as cursor:
            cursor.execute("SET LOCAL lock_timeout = '2s'")
            cursor.execute(
                "UPDATE billing_meterreading SET flag_reason = 'kiểm tra' WHERE id = %s", [reading.pk]
            )

    with transaction.atomic():
        with connection.cursor() as cursor:
            cursor.execute("DELETE FROM customers_contract WHERE false")
            cursor.execute("DELETE FROM customers_meter WHERE false")
        other, outcome = in_thread(change_the_reading)
        other.join(30)
        assert not other.is_alive()
    assert "error" not in outcome, outcome["error"]
    assert MeterReading.objects.get().flag_reason == "kiểm tra"


# Each reference kept by the triggers (billing migrations 0004 and 0005): the checks of a deleted row read it.
REFERENCES = [
    ("billing_meterreading", "contract_id"), ("billing_meterreading", "meter_id"),
    ("billing_meterreading", "unit_id"), ("billing_invoice", "contract_id"), ("billing_invoice", "customer_id"),
    ("billing_invoice", "unit_id"), ("billing_invoice", "reading_id"), ("billing_invoice", "run_id"),
    ("billing_invoiceline", "invoice_id"), ("billing_rebateapplication", "invoice_id"),
    ("billing_rebateapplication", "programme_id"), ("billing_reinspection", "reading_id"),
    ("billing_reinspection", "unit_id"),
]  # fmt: skip


@on_postgres
def test_every_reference_the_delete_checks_read_has_an_index_leading_with_it(db):
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT t.relname, a.attname FROM pg_index x JOIN pg_class t ON t.oid = x.indrelid "
            "JOIN pg_attribute a ON a.attrelid = t.oid AND a.attnum = x.indkey[0] "
            "WHERE x.indpred IS NULL AND t.relname LIKE 'billing_%%'"
        )
        leading = set(cursor.fetchall())
    assert [ref for ref in REFERENCES if ref not in leading] == []


def test_no_migration_imports_the_apps_code():
    """A migration holds its own SQL: the code it would import changes after it has run."""
    import ast
    from pathlib import Path

    apps = {"billing", "crm", "customers", "tickets"}
    found = []
    for path in Path(settings.BASE_DIR).glob("*/migrations/*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            names = (
                [node.module or ""] if isinstance(node, ast.ImportFrom) else
                [a.name for a in node.names] if isinstance(node, ast.Import) else []
            )  # fmt: skip
            found += [
                f"{path.parent.parent.name}/{path.name}: {n}" for n in names if n.split(".")[0] in apps
                and not n.endswith(".models")
            ]  # fmt: skip
        if "import_module" in path.read_text():
            found.append(f"{path.parent.parent.name}/{path.name}: import_module")
    assert found == []


# 13. The indexes of billing_invoice's references -----------------------------------------------------------


@on_postgres
@pytest.mark.parametrize(
    ("field", "index"),
    [("reading", "billing_invoice_reading_idx"), ("contract", "billing_invoice_contract_idx"),
     ("run", "billing_invoice_run_idx")],
)  # fmt: skip
def test_an_invoices_reading_contract_and_run_are_found_through_an_index(issued_october, field, index):
    value = getattr(issued_october, f"{field}_id")
    with transaction.atomic(), connection.cursor() as cursor:
        cursor.execute("SET LOCAL enable_seqscan = off")
        plan = Invoice.objects.filter(**{field: value}).explain()
    assert index in plan, plan


def test_the_reference_checks_in_migration_0010_are_what_crm_integrity_writes():
    """``core.integrity.References`` writes the SQL pasted into migrations: the pasted copy is the current one."""
    import importlib

    from core.integrity import References

    migration = importlib.import_module("billing.migrations.0010_db_guarantees")
    pasted = " ".join(migration.PG_FORWARD.split())
    references = [
        References("billing_meterreading", (("contract_id", "customers_contract"), ("meter_id", "customers_meter"),
                                            ("unit_id", "crm_unit"))),
        References("billing_invoice", (("contract_id", "customers_contract"), ("customer_id", "customers_customer"),
                                       ("unit_id", "crm_unit"), ("reading_id", "billing_meterreading"),
                                       ("run_id", "billing_billingrun"))),
        References("billing_invoiceline", (("invoice_id", "billing_invoice"),)),
        References("billing_rebateapplication", (("invoice_id", "billing_invoice"),
                                                 ("programme_id", "billing_rebateprogramme"))),
        References("billing_reinspection", (("reading_id", "billing_meterreading"), ("unit_id", "crm_unit"))),
    ]  # fmt: skip
    functions = [
        " ".join(("CREATE OR REPLACE FUNCTION" + part).split())
        for r in references
        for part in r.postgresql_functions().split("CREATE OR REPLACE FUNCTION")[1:]
    ]
    assert len(functions) == 23
    assert [f.split("(")[0] for f in functions if f not in pasted] == []
