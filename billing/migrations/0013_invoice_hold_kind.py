"""A held bill says why it is held (``hold_kind``), so that each release touches only its own kind of hold.

- ``clerk``: held by a clerk for a reason of their own; only a clerk's release frees it.
- ``flagged``: its reading is flagged as an implausible jump; a clerk's review of the reading (or the reading
  confirmed or corrected on site) frees it.
- ``review``: an open dispute or re-inspection; freed when the last of them closes.

The column is added in place (``ADD COLUMN … DEFAULT '' NOT NULL``, the same SQL on both databases): SQLite
would rebuild the table for a NOT NULL field, dropping its triggers. The bills held before this migration get
the kind that holds them now: under review, else a flagged reading, else a clerk's hold (which a clerk
releases). An issued bill's hold kind cannot change: SQLite by a trigger of its own, PostgreSQL by the trigger
that compares the whole row.
"""

from django.db import migrations, models

ADD_COLUMN = "ALTER TABLE billing_invoice ADD COLUMN hold_kind varchar(8) DEFAULT '' NOT NULL"

KINDS_OF_HELD = """
UPDATE billing_invoice SET hold_kind = CASE
    WHEN reading_id IN (SELECT x.reading_id FROM billing_reinspection x WHERE x.done_at IS NULL)
      OR reading_id IN (SELECT d.reading_id FROM billing_dispute d
                        WHERE d.status = 'open' AND d.reading_id IS NOT NULL)
      OR id IN (SELECT d.invoice_id FROM billing_dispute d WHERE d.status = 'open' AND d.invoice_id IS NOT NULL)
      THEN 'review'
    WHEN reading_id IN (SELECT r.id FROM billing_meterreading r WHERE r.status = 'flagged') THEN 'flagged'
    ELSE 'clerk' END
WHERE status = 'held'
"""

# SQLite: an issued bill's hold kind is frozen like its other columns, by a trigger of its own (the trigger
# keeping the others, ``billing_invoice_immutable`` of migration 0011, stays as it is). PostgreSQL's trigger
# compares the whole row, the new column included.
SQLITE_FROZEN = """CREATE TRIGGER billing_invoice_hold_kind_immutable BEFORE UPDATE OF hold_kind ON billing_invoice
    WHEN OLD.status IN ('issued', 'paid') AND NEW.hold_kind IS NOT OLD.hold_kind
    BEGIN SELECT RAISE(ABORT, 'an issued invoice cannot be changed'); END"""


def forward(apps, schema_editor):
    schema_editor.execute(ADD_COLUMN)
    schema_editor.execute(KINDS_OF_HELD)
    if schema_editor.connection.vendor == "sqlite":
        schema_editor.execute(SQLITE_FROZEN)


def backward(apps, schema_editor):
    if schema_editor.connection.vendor == "sqlite":
        schema_editor.execute("DROP TRIGGER IF EXISTS billing_invoice_hold_kind_immutable")
    schema_editor.execute("ALTER TABLE billing_invoice DROP COLUMN hold_kind")


class Migration(migrations.Migration):
    dependencies = [("billing", "0012_free_text_limits")]

    operations = [
        migrations.SeparateDatabaseAndState(
            database_operations=[migrations.RunPython(forward, backward)],
            state_operations=[
                migrations.AddField(
                    model_name="invoice",
                    name="hold_kind",
                    field=models.CharField(
                        blank=True,
                        choices=[
                            ("", "Not held"),
                            ("clerk", "By a clerk"),
                            ("flagged", "Flagged reading"),
                            ("review", "Disputed or under re-inspection"),
                        ],
                        db_default="",
                        default="",
                        max_length=8,
                        verbose_name="held by",
                    ),
                ),
            ],
        ),
    ]
