"""The export log keeps the units its author served when the export started, and its readers are scoped by
them: an export stays with the managers of those units when its author leaves (the staff profile removed) or
moves to another unit.

A new table (``crm_exportlog_units``, no rebuild of the log's table on SQLite). Existing rows get the units
their author serves now (the best that is known of them), then the new table is made append-only like the log
(``0007_export_log.py``): a unit is recorded with an export only while it is being sent (inserted with the
export by ``crm.services.export_log_start``), and never changed nor removed.
"""

from django.db import migrations, models

PG_FORWARD = """
CREATE OR REPLACE FUNCTION crm_exportlog_units_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'INSERT' AND EXISTS (
        SELECT 1 FROM crm_exportlog WHERE id = NEW.exportlog_id AND status = 'started'
    ) THEN
        RETURN NEW;
    END IF;
    RAISE EXCEPTION 'the export log is append-only: the units of an export are recorded when it starts'
        USING ERRCODE = 'check_violation';
END $$;
CREATE TRIGGER crm_exportlog_units_append_only BEFORE INSERT OR UPDATE OR DELETE ON crm_exportlog_units
    FOR EACH ROW EXECUTE FUNCTION crm_exportlog_units_append_only();

-- Emptying an empty table destroys nothing (Django's flush of a test database does it): allowed.
CREATE OR REPLACE FUNCTION crm_exportlog_units_no_truncate() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF EXISTS (SELECT 1 FROM crm_exportlog_units) THEN
        RAISE EXCEPTION 'the export log cannot be truncated' USING ERRCODE = 'check_violation';
    END IF;
    RETURN NULL;
END $$;
CREATE TRIGGER crm_exportlog_units_no_truncate BEFORE TRUNCATE ON crm_exportlog_units
    FOR EACH STATEMENT EXECUTE FUNCTION crm_exportlog_units_no_truncate();
"""

PG_BACKWARD = """
DROP TRIGGER IF EXISTS crm_exportlog_units_append_only ON crm_exportlog_units;
DROP TRIGGER IF EXISTS crm_exportlog_units_no_truncate ON crm_exportlog_units;
DROP FUNCTION IF EXISTS crm_exportlog_units_append_only();
DROP FUNCTION IF EXISTS crm_exportlog_units_no_truncate();
"""

SQLITE_FORWARD = [
    """CREATE TRIGGER crm_exportlog_units_insert_started BEFORE INSERT ON crm_exportlog_units
        WHEN NOT EXISTS (SELECT 1 FROM crm_exportlog WHERE id = NEW.exportlog_id AND status = 'started')
        BEGIN SELECT RAISE(ABORT, 'the export log is append-only: the units of an export are recorded when it starts'); END""",
    """CREATE TRIGGER crm_exportlog_units_no_update BEFORE UPDATE ON crm_exportlog_units
        BEGIN SELECT RAISE(ABORT, 'the export log is append-only: the units of an export never change'); END""",
    """CREATE TRIGGER crm_exportlog_units_no_delete BEFORE DELETE ON crm_exportlog_units
        BEGIN SELECT RAISE(ABORT, 'export log records cannot be deleted'); END""",
]

SQLITE_TRIGGERS = [
    "crm_exportlog_units_insert_started",
    "crm_exportlog_units_no_update",
    "crm_exportlog_units_no_delete",
]

BATCH = 1000


def backfill(apps, schema_editor):
    """Each existing export gets the units its author serves now."""
    alias = schema_editor.connection.alias
    ExportLog = apps.get_model("crm", "ExportLog")
    StaffProfile = apps.get_model("crm", "StaffProfile")
    Link = ExportLog.units.through
    served: dict[int, list[int]] = {}
    for user_id, unit_id in StaffProfile.units.through.objects.using(alias).values_list(
        "staffprofile__user_id", "unit_id"
    ):
        served.setdefault(user_id, []).append(unit_id)
    batch = []
    logs = ExportLog.objects.using(alias).filter(user__isnull=False).values_list("pk", "user_id")
    for log_id, user_id in logs.iterator(chunk_size=BATCH):
        batch.extend(Link(exportlog_id=log_id, unit_id=unit_id) for unit_id in served.get(user_id, ()))
        if len(batch) >= BATCH:
            Link.objects.using(alias).bulk_create(batch)
            batch = []
    Link.objects.using(alias).bulk_create(batch)


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
        for name in SQLITE_TRIGGERS:
            schema_editor.execute(f"DROP TRIGGER IF EXISTS {name}")


class Migration(migrations.Migration):

    dependencies = [
        ('crm', '0011_outbox_staff'),
    ]

    operations = [
        migrations.AddField(
            model_name='exportlog',
            name='units',
            field=models.ManyToManyField(blank=True, help_text='The units its author served when the export started: their managers read it.', related_name='+', to='crm.unit', verbose_name='units served'),
        ),
        migrations.RunPython(backfill, migrations.RunPython.noop),
        migrations.RunPython(forward, backward),
    ]
