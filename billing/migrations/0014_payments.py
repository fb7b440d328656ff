"""Payments: money received against an issued invoice, recorded once per channel's transaction reference.

* The database refuses a payment of nothing or less (``amount > 0``), a reference recorded twice for the same
  channel (unique ``source, reference``: an integration's retry finds the first payment), an empty reference.
* A recorded payment is never changed or deleted: a trigger refuses any UPDATE or DELETE (PostgreSQL and
  SQLite alike), and TRUNCATE is refused on PostgreSQL as it is for the invoices (``billing_no_truncate`` of
  migration 0010, lifted only by a session that says so).
* The invoice a payment names is kept by the reference triggers of ``core.integrity`` (no foreign key points
  at ``billing_invoice``: it may be partitioned, see migration 0011): a payment of a missing invoice is
  refused, and an invoice that has payments is not deleted (PostgreSQL; on SQLite, ``on_delete=PROTECT``).
  The SQLite insert check names ``billing_invoice``: a later migration that rebuilds that table on SQLite
  drops and makes it again, as migration 0011 does for its triggers.
"""

import django.db.models.deletion
from django.conf import settings
from django.db import migrations, models

PG_FORWARD = """
CREATE OR REPLACE FUNCTION billing_payment_refs_check() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF NOT EXISTS (SELECT 1 FROM new_rows) THEN
        RETURN NULL;
    END IF;
    IF current_setting('transaction_isolation') <> 'read committed' THEN
        RAISE EXCEPTION USING ERRCODE = 'feature_not_supported',
            MESSAGE = 'the references of billing_payment are checked in READ COMMITTED transactions only';
    END IF;
    IF EXISTS (SELECT 1 FROM new_rows n WHERE n.invoice_id IS NOT NULL
                 AND NOT EXISTS (SELECT 1 FROM billing_invoice p WHERE p.id = n.invoice_id)) THEN
        RAISE EXCEPTION USING ERRCODE = 'foreign_key_violation',
            MESSAGE = 'billing_payment.invoice_id refers to a row missing from billing_invoice';
    END IF;
    RETURN NULL;
END $$;
CREATE TRIGGER billing_payment_refs_insert AFTER INSERT ON billing_payment
    REFERENCING NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION billing_payment_refs_check();
CREATE OR REPLACE FUNCTION billing_payment_refs_check_row() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF current_setting('transaction_isolation') <> 'read committed' THEN
        RAISE EXCEPTION USING ERRCODE = 'feature_not_supported',
            MESSAGE = 'the references of billing_payment are checked in READ COMMITTED transactions only';
    END IF;
    IF NEW.invoice_id IS DISTINCT FROM OLD.invoice_id AND NEW.invoice_id IS NOT NULL
       AND NOT EXISTS (SELECT 1 FROM billing_invoice p WHERE p.id = NEW.invoice_id) THEN
        RAISE EXCEPTION USING ERRCODE = 'foreign_key_violation',
            MESSAGE = 'billing_payment.invoice_id refers to a row missing from billing_invoice';
    END IF;
    RETURN NEW;
END $$;
CREATE TRIGGER billing_payment_refs_update BEFORE UPDATE OF invoice_id ON billing_payment
    FOR EACH ROW WHEN (OLD.invoice_id IS DISTINCT FROM NEW.invoice_id)
    EXECUTE FUNCTION billing_payment_refs_check_row();

CREATE OR REPLACE FUNCTION billing_payment_invoice_id_kept() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF NOT EXISTS (SELECT 1 FROM old_rows) THEN
        RETURN NULL;
    END IF;
    IF current_setting('transaction_isolation') <> 'read committed' THEN
        RAISE EXCEPTION USING ERRCODE = 'feature_not_supported',
            MESSAGE = 'the references of billing_payment are checked in READ COMMITTED transactions only';
    END IF;
    LOCK TABLE billing_payment IN SHARE MODE;
    IF EXISTS (SELECT 1 FROM old_rows o JOIN billing_payment c ON c.invoice_id = o.id) THEN
        RAISE EXCEPTION USING ERRCODE = 'foreign_key_violation',
            MESSAGE = 'a deleted row of billing_invoice is still referenced by billing_payment.invoice_id';
    END IF;
    RETURN NULL;
END $$;
CREATE TRIGGER billing_payment_invoice_id_kept AFTER DELETE ON billing_invoice
    REFERENCING OLD TABLE AS old_rows FOR EACH STATEMENT EXECUTE FUNCTION billing_payment_invoice_id_kept();

CREATE OR REPLACE FUNCTION billing_payment_immutable() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'payment % is recorded and cannot be changed or deleted', OLD.id USING ERRCODE = 'check_violation';
END $$;
CREATE TRIGGER billing_payment_immutable BEFORE UPDATE OR DELETE ON billing_payment
    FOR EACH ROW EXECUTE FUNCTION billing_payment_immutable();
CREATE TRIGGER billing_payment_no_truncate BEFORE TRUNCATE ON billing_payment
    FOR EACH STATEMENT EXECUTE FUNCTION billing_no_truncate();
"""

PG_BACKWARD = """
DROP TRIGGER IF EXISTS billing_payment_no_truncate ON billing_payment;
DROP TRIGGER IF EXISTS billing_payment_immutable ON billing_payment;
DROP FUNCTION IF EXISTS billing_payment_immutable();
DROP TRIGGER IF EXISTS billing_payment_refs_insert ON billing_payment;
DROP TRIGGER IF EXISTS billing_payment_refs_update ON billing_payment;
DROP FUNCTION IF EXISTS billing_payment_refs_check();
DROP FUNCTION IF EXISTS billing_payment_refs_check_row();
DROP TRIGGER IF EXISTS billing_payment_invoice_id_kept ON billing_invoice;
DROP FUNCTION IF EXISTS billing_payment_invoice_id_kept();
"""

SQLITE_FORWARD = [
    "CREATE TRIGGER billing_payment_invoice_id_insert_ref BEFORE INSERT ON billing_payment WHEN NEW.invoice_id IS NOT NULL AND NOT EXISTS (SELECT 1 FROM billing_invoice WHERE id = NEW.invoice_id) BEGIN SELECT RAISE(ABORT, 'billing_payment.invoice_id refers to a row missing from billing_invoice'); END",
    "CREATE TRIGGER billing_payment_invoice_id_update_ref BEFORE UPDATE OF invoice_id ON billing_payment WHEN NEW.invoice_id IS NOT NULL AND NOT EXISTS (SELECT 1 FROM billing_invoice WHERE id = NEW.invoice_id) BEGIN SELECT RAISE(ABORT, 'billing_payment.invoice_id refers to a row missing from billing_invoice'); END",
    "CREATE TRIGGER billing_payment_no_update BEFORE UPDATE ON billing_payment BEGIN SELECT RAISE(ABORT, 'a recorded payment cannot be changed'); END",
    "CREATE TRIGGER billing_payment_no_delete BEFORE DELETE ON billing_payment BEGIN SELECT RAISE(ABORT, 'a recorded payment cannot be deleted'); END",
]

SQLITE_NAMES = [
    'billing_payment_invoice_id_insert_ref',
    'billing_payment_invoice_id_update_ref',
    'billing_payment_no_update',
    'billing_payment_no_delete',
]


def forward(apps, schema_editor):
    vendor = schema_editor.connection.vendor
    if vendor == "postgresql":
        schema_editor.execute(PG_FORWARD, params=None)
    elif vendor == "sqlite":
        for statement in SQLITE_FORWARD:
            schema_editor.execute(statement)


def backward(apps, schema_editor):
    vendor = schema_editor.connection.vendor
    if vendor == "postgresql":
        schema_editor.execute(PG_BACKWARD, params=None)
    elif vendor == "sqlite":
        for name in SQLITE_NAMES:
            schema_editor.execute(f"DROP TRIGGER IF EXISTS {name}")


class Migration(migrations.Migration):

    dependencies = [
        ('billing', '0013_invoice_hold_kind'),
        ('crm', '0010_staff_phone_normalised'),
        migrations.swappable_dependency(settings.AUTH_USER_MODEL),
    ]

    operations = [
        migrations.CreateModel(
            name='Payment',
            fields=[
                ('id', models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name='ID')),
                ('amount', models.BigIntegerField(verbose_name='amount')),
                ('paid_at', models.DateTimeField(verbose_name='paid at')),
                ('source', models.CharField(choices=[('bank_transfer', 'Bank transfer'), ('auto_debit', 'Automatic bank debit'), ('counter', 'At the counter'), ('app', 'Customer app or website'), ('e_wallet', 'E-wallet'), ('partner', 'Collection partner')], max_length=16, verbose_name='paid through')),
                ('reference', models.CharField(help_text="The bank's or the partner's reference of the transaction, or the counter's receipt number.", max_length=100, verbose_name='transaction reference')),
                ('created_at', models.DateTimeField(verbose_name='recorded at')),
                ('invoice', models.ForeignKey(db_constraint=False, db_index=False, on_delete=django.db.models.deletion.PROTECT, related_name='payments', to='billing.invoice', verbose_name='invoice')),
                ('recorded_by', models.ForeignKey(blank=True, null=True, on_delete=django.db.models.deletion.PROTECT, related_name='+', to=settings.AUTH_USER_MODEL, verbose_name='recorded by')),
                ('unit', models.ForeignKey(db_index=False, on_delete=django.db.models.deletion.PROTECT, related_name='+', to='crm.unit', verbose_name='unit')),
            ],
            options={
                'verbose_name': 'payment',
                'verbose_name_plural': 'payments',
                'indexes': [models.Index(fields=['invoice'], name='billing_payment_invoice_idx'), models.Index(fields=['unit', '-id'], name='billing_payment_unit_idx')],
                'constraints': [models.CheckConstraint(condition=models.Q(('amount__gt', 0)), name='billing_payment_amount_positive'), models.UniqueConstraint(fields=('reference', 'source'), name='billing_payment_reference_once'), models.CheckConstraint(condition=models.Q(('source__in', ['bank_transfer', 'auto_debit', 'counter', 'app', 'e_wallet', 'partner'])), name='billing_payment_source'), models.CheckConstraint(condition=models.Q(('reference', ''), _negated=True), name='billing_payment_has_reference')],
            },
        ),
        migrations.RunPython(forward, backward),
    ]
