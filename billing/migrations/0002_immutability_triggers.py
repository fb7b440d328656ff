"""The database itself refuses to change an issued invoice or its lines, or any audit record.

PostgreSQL: PL/pgSQL triggers. An issued invoice may only become paid (status and paid_at change, nothing
else); its lines can be neither changed, deleted nor added to. SQLite: the same rules as triggers that abort.
"""

from django.db import migrations

# Every column of billing_invoice but status and paid_at: none may change once the invoice is issued.
FROZEN = [
    "number", "kind", "contract_id", "customer_id", "unit_id", "period", "period_start", "period_end",
    "reading_id", "kwh", "households", "subtotal", "vat", "total", "hold_reason", "adjusts_id", "run_id",
    "created_at", "issued_at",
]  # fmt: skip

PG_FORWARD = """
CREATE OR REPLACE FUNCTION billing_invoice_immutable() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    candidate billing_invoice;
BEGIN
    IF OLD.status IN ('issued', 'paid') THEN
        IF TG_OP = 'DELETE' THEN
            RAISE EXCEPTION 'invoice % is issued and cannot be deleted', OLD.number USING ERRCODE = 'check_violation';
        END IF;
        candidate := NEW;
        candidate.status := OLD.status;
        candidate.paid_at := OLD.paid_at;
        IF candidate IS DISTINCT FROM OLD
           OR NOT (NEW.status = OLD.status OR (OLD.status = 'issued' AND NEW.status = 'paid')) THEN
            RAISE EXCEPTION 'invoice % is issued and cannot be changed', OLD.number USING ERRCODE = 'check_violation';
        END IF;
    END IF;
    IF TG_OP = 'DELETE' THEN RETURN OLD; END IF;
    RETURN NEW;
END $$;
CREATE TRIGGER billing_invoice_immutable BEFORE UPDATE OR DELETE ON billing_invoice
    FOR EACH ROW EXECUTE FUNCTION billing_invoice_immutable();

CREATE OR REPLACE FUNCTION billing_invoiceline_immutable() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF EXISTS (SELECT 1 FROM billing_invoice WHERE id = OLD.invoice_id AND status IN ('issued', 'paid')) THEN
        RAISE EXCEPTION 'the lines of an issued invoice cannot be changed' USING ERRCODE = 'check_violation';
    END IF;
    IF TG_OP = 'DELETE' THEN RETURN OLD; END IF;
    RETURN NEW;
END $$;
CREATE TRIGGER billing_invoiceline_immutable BEFORE UPDATE OR DELETE ON billing_invoiceline
    FOR EACH ROW EXECUTE FUNCTION billing_invoiceline_immutable();

-- Adding lines: checked once per statement over the new rows (a billing run adds millions at once).
CREATE OR REPLACE FUNCTION billing_invoiceline_no_new_on_issued() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF EXISTS (SELECT 1 FROM new_lines n JOIN billing_invoice i ON i.id = n.invoice_id
               WHERE i.status IN ('issued', 'paid')) THEN
        RAISE EXCEPTION 'an issued invoice cannot take new lines' USING ERRCODE = 'check_violation';
    END IF;
    RETURN NULL;
END $$;
CREATE TRIGGER billing_invoiceline_no_new_on_issued AFTER INSERT ON billing_invoiceline
    REFERENCING NEW TABLE AS new_lines FOR EACH STATEMENT EXECUTE FUNCTION billing_invoiceline_no_new_on_issued();

CREATE OR REPLACE FUNCTION billing_audit_immutable() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'audit records cannot be changed or deleted' USING ERRCODE = 'check_violation';
END $$;
CREATE TRIGGER billing_audit_immutable BEFORE UPDATE OR DELETE ON billing_auditrecord
    FOR EACH ROW EXECUTE FUNCTION billing_audit_immutable();
"""

PG_BACKWARD = """
DROP TRIGGER IF EXISTS billing_invoice_immutable ON billing_invoice;
DROP TRIGGER IF EXISTS billing_invoiceline_immutable ON billing_invoiceline;
DROP TRIGGER IF EXISTS billing_invoiceline_no_new_on_issued ON billing_invoiceline;
DROP TRIGGER IF EXISTS billing_audit_immutable ON billing_auditrecord;
DROP FUNCTION IF EXISTS billing_invoice_immutable();
DROP FUNCTION IF EXISTS billing_invoiceline_immutable();
DROP FUNCTION IF EXISTS billing_invoiceline_no_new_on_issued();
DROP FUNCTION IF EXISTS billing_audit_immutable();
"""


def _sqlite_forward() -> list[str]:
    changed = " OR ".join(f"NEW.{c} IS NOT OLD.{c}" for c in FROZEN)
    return [
        f"""CREATE TRIGGER billing_invoice_immutable BEFORE UPDATE ON billing_invoice
            WHEN OLD.status IN ('issued', 'paid') AND ({changed}
                 OR NOT (NEW.status = OLD.status OR (OLD.status = 'issued' AND NEW.status = 'paid')))
            BEGIN SELECT RAISE(ABORT, 'an issued invoice cannot be changed'); END""",
        """CREATE TRIGGER billing_invoice_no_delete BEFORE DELETE ON billing_invoice
            WHEN OLD.status IN ('issued', 'paid')
            BEGIN SELECT RAISE(ABORT, 'an issued invoice cannot be deleted'); END""",
        """CREATE TRIGGER billing_invoiceline_no_update BEFORE UPDATE ON billing_invoiceline
            WHEN (SELECT status FROM billing_invoice WHERE id = OLD.invoice_id) IN ('issued', 'paid')
            BEGIN SELECT RAISE(ABORT, 'the lines of an issued invoice cannot be changed'); END""",
        """CREATE TRIGGER billing_invoiceline_no_delete BEFORE DELETE ON billing_invoiceline
            WHEN (SELECT status FROM billing_invoice WHERE id = OLD.invoice_id) IN ('issued', 'paid')
            BEGIN SELECT RAISE(ABORT, 'the lines of an issued invoice cannot be changed'); END""",
        """CREATE TRIGGER billing_invoiceline_no_insert BEFORE INSERT ON billing_invoiceline
            WHEN (SELECT status FROM billing_invoice WHERE id = NEW.invoice_id) IN ('issued', 'paid')
            BEGIN SELECT RAISE(ABORT, 'an issued invoice cannot take new lines'); END""",
        """CREATE TRIGGER billing_audit_no_update BEFORE UPDATE ON billing_auditrecord
            BEGIN SELECT RAISE(ABORT, 'audit records cannot be changed'); END""",
        """CREATE TRIGGER billing_audit_no_delete BEFORE DELETE ON billing_auditrecord
            BEGIN SELECT RAISE(ABORT, 'audit records cannot be deleted'); END""",
    ]


SQLITE_TRIGGERS = [
    "billing_invoice_immutable", "billing_invoice_no_delete", "billing_invoiceline_no_update",
    "billing_invoiceline_no_delete", "billing_invoiceline_no_insert", "billing_audit_no_update",
    "billing_audit_no_delete",
]  # fmt: skip


def forward(apps, schema_editor):
    vendor = schema_editor.connection.vendor
    if vendor == "postgresql":
        schema_editor.execute(PG_FORWARD, params=None)
    elif vendor == "sqlite":
        for statement in _sqlite_forward():
            schema_editor.execute(statement)


def backward(apps, schema_editor):
    vendor = schema_editor.connection.vendor
    if vendor == "postgresql":
        schema_editor.execute(PG_BACKWARD, params=None)
    elif vendor == "sqlite":
        for name in SQLITE_TRIGGERS:
            schema_editor.execute(f"DROP TRIGGER IF EXISTS {name}")


class Migration(migrations.Migration):
    dependencies = [("billing", "0001_initial")]

    operations = [migrations.RunPython(forward, backward)]
