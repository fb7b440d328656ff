"""Refund offsets are taken against the amount due, not the charge.

A refund offset on the next bill used to be an invoice line of minus the refund, taken off the subtotal while
the VAT stayed (a refund between the subtotal and the total broke the subtotal's check). From here on a bill's
subtotal, VAT and total stay its charge, and the refunds offset on it are the column ``refund_offset``: the
customer pays the amount due, total − offsets, and the database refuses an offset above the total (or on an
adjustment invoice).

- The column is added in place (``ADD COLUMN … DEFAULT 0 NOT NULL``, the same SQL on both databases): SQLite
  would rebuild the table for a NOT NULL field, dropping its triggers.
- Bills not yet issued that carry offset lines get them back as ``refund_offset``: the lines are deleted
  and their amount added back to the subtotal and total. An issued bill cannot change and keeps its lines.
- PostgreSQL checks the offset with a CHECK constraint; SQLite, which cannot add one to a table in place,
  with triggers that abort the same writes. SQLite's trigger keeping an issued bill immutable lists its
  columns: it is made again with ``refund_offset`` (PostgreSQL's compares the whole row).
"""

from django.db import migrations, models

ADD_COLUMN = "ALTER TABLE billing_invoice ADD COLUMN refund_offset bigint DEFAULT 0 NOT NULL"

# The offset lines of bills not yet issued: no tier, no kWh, no price, no VAT, a negative amount, on a bill
# that a settled refund was offset on.
OFFSET_LINE = (
    "l.tier IS NULL AND l.kwh = 0 AND l.price = 0 AND l.vat_percent = 0 AND l.amount < 0 "
    "AND l.invoice_id IN (SELECT r.offset_invoice_id FROM billing_refund r WHERE r.method = 'offset') "
    "AND l.invoice_id IN (SELECT i.id FROM billing_invoice i WHERE i.status IN ('draft', 'held'))"
)
MOVE_OFFSETS = [
    f"""UPDATE billing_invoice SET
        refund_offset = (SELECT -SUM(l.amount) FROM billing_invoiceline l WHERE l.invoice_id = billing_invoice.id
                         AND {OFFSET_LINE}),
        subtotal = subtotal - (SELECT SUM(l.amount) FROM billing_invoiceline l
                               WHERE l.invoice_id = billing_invoice.id AND {OFFSET_LINE}),
        total = total - (SELECT SUM(l.amount) FROM billing_invoiceline l
                         WHERE l.invoice_id = billing_invoice.id AND {OFFSET_LINE})
    WHERE id IN (SELECT l.invoice_id FROM billing_invoiceline l WHERE {OFFSET_LINE})""",
    f"DELETE FROM billing_invoiceline WHERE id IN (SELECT l.id FROM billing_invoiceline l WHERE {OFFSET_LINE})",
]

CHECK = "refund_offset = 0 OR (kind = 'regular' AND refund_offset > 0 AND refund_offset <= total)"

PG_FORWARD = f"ALTER TABLE billing_invoice ADD CONSTRAINT billing_invoice_offset_within_total CHECK ({CHECK})"
PG_BACKWARD = "ALTER TABLE billing_invoice DROP CONSTRAINT billing_invoice_offset_within_total"

SQLITE_CHECK = "NEW.refund_offset = 0 OR (NEW.kind = 'regular' AND NEW.refund_offset > 0 AND NEW.refund_offset <= NEW.total)"
SQLITE_CHECKS = [
    f"""CREATE TRIGGER billing_invoice_offset_{event.lower()} BEFORE {event} ON billing_invoice
        WHEN NOT ({SQLITE_CHECK})
        BEGIN SELECT RAISE(ABORT, 'CHECK constraint failed: billing_invoice_offset_within_total'); END"""
    for event in ("INSERT", "UPDATE")
]

# Every column of billing_invoice but status and paid_at: none may change once the invoice is issued.
FROZEN_BEFORE = [
    "number", "kind", "contract_id", "customer_id", "unit_id", "period", "period_start", "period_end",
    "reading_id", "kwh", "households", "subtotal", "vat", "total", "hold_reason", "adjusts_id", "run_id",
    "created_at", "issued_at",
]  # fmt: skip
FROZEN = [*FROZEN_BEFORE, "refund_offset"]


def _sqlite_immutable(columns: list[str]) -> str:
    changed = " OR ".join(f"NEW.{c} IS NOT OLD.{c}" for c in columns)
    return f"""CREATE TRIGGER billing_invoice_immutable BEFORE UPDATE ON billing_invoice
        WHEN OLD.status IN ('issued', 'paid') AND ({changed}
             OR NOT (NEW.status = OLD.status OR (OLD.status = 'issued' AND NEW.status = 'paid')))
        BEGIN SELECT RAISE(ABORT, 'an issued invoice cannot be changed'); END"""


def forward(apps, schema_editor):
    vendor = schema_editor.connection.vendor
    schema_editor.execute(ADD_COLUMN)
    for statement in MOVE_OFFSETS:
        schema_editor.execute(statement)
    if vendor == "postgresql":
        schema_editor.execute(PG_FORWARD)
    elif vendor == "sqlite":
        for statement in SQLITE_CHECKS:
            schema_editor.execute(statement)
        schema_editor.execute("DROP TRIGGER IF EXISTS billing_invoice_immutable")
        schema_editor.execute(_sqlite_immutable(FROZEN))


def backward(apps, schema_editor):
    vendor = schema_editor.connection.vendor
    if vendor == "postgresql":
        schema_editor.execute(PG_BACKWARD)
    elif vendor == "sqlite":
        for name in (
            "billing_invoice_offset_insert",
            "billing_invoice_offset_update",
            "billing_invoice_immutable",
        ):
            schema_editor.execute(f"DROP TRIGGER IF EXISTS {name}")
        schema_editor.execute(_sqlite_immutable(FROZEN_BEFORE))
    schema_editor.execute("ALTER TABLE billing_invoice DROP COLUMN refund_offset")


class Migration(migrations.Migration):
    dependencies = [("billing", "0008_billing_jobs")]

    operations = [
        migrations.SeparateDatabaseAndState(
            database_operations=[migrations.RunPython(forward, backward)],
            state_operations=[
                migrations.AddField(
                    model_name="invoice",
                    name="refund_offset",
                    field=models.BigIntegerField(db_default=0, default=0, verbose_name="refund offsets"),
                ),
                migrations.AddConstraint(
                    model_name="invoice",
                    constraint=models.CheckConstraint(
                        condition=models.Q(
                            ("refund_offset", 0),
                            models.Q(
                                ("kind", "regular"),
                                ("refund_offset__gt", 0),
                                ("refund_offset__lte", models.F("total")),
                            ),
                            _connector="OR",
                        ),
                        name="billing_invoice_offset_within_total",
                    ),
                ),
            ],
        ),
    ]
