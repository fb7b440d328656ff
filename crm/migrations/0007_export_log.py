"""The export log, append-only in the database itself.

PostgreSQL: a row trigger lets an UPDATE through only when it completes a started export once (its status,
row count and end time, nothing else); any other UPDATE and every DELETE are refused, and a statement trigger
refuses TRUNCATE of a log that holds any row. SQLite: the same rules as triggers that abort (it has no TRUNCATE).
"""

import django.db.models.deletion
from django.conf import settings
from django.db import migrations, models



# Every column but the three that completing an export fills in: none of them may ever change.
FROZEN = ["id", "user_id", "started_at", "kind", "source", "filters", "file_format"]

PG_FORWARD = """
CREATE OR REPLACE FUNCTION crm_exportlog_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    candidate crm_exportlog;
BEGIN
    IF TG_OP = 'UPDATE' AND OLD.status = 'started' AND NEW.status IN ('complete', 'incomplete') THEN
        candidate := NEW;
        candidate.status := OLD.status;
        candidate.row_count := OLD.row_count;
        candidate.finished_at := OLD.finished_at;
        IF candidate IS NOT DISTINCT FROM OLD THEN
            RETURN NEW;
        END IF;
    END IF;
    RAISE EXCEPTION 'the export log is append-only: an export is completed once and never changed or deleted'
        USING ERRCODE = 'check_violation';
END $$;
CREATE TRIGGER crm_exportlog_append_only BEFORE UPDATE OR DELETE ON crm_exportlog
    FOR EACH ROW EXECUTE FUNCTION crm_exportlog_append_only();

-- Emptying an empty log destroys nothing (Django's flush of a test database does it): allowed.
CREATE OR REPLACE FUNCTION crm_exportlog_no_truncate() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF EXISTS (SELECT 1 FROM crm_exportlog) THEN
        RAISE EXCEPTION 'the export log cannot be truncated' USING ERRCODE = 'check_violation';
    END IF;
    RETURN NULL;
END $$;
CREATE TRIGGER crm_exportlog_no_truncate BEFORE TRUNCATE ON crm_exportlog
    FOR EACH STATEMENT EXECUTE FUNCTION crm_exportlog_no_truncate();
"""

PG_BACKWARD = """
DROP TRIGGER IF EXISTS crm_exportlog_append_only ON crm_exportlog;
DROP TRIGGER IF EXISTS crm_exportlog_no_truncate ON crm_exportlog;
DROP FUNCTION IF EXISTS crm_exportlog_append_only();
DROP FUNCTION IF EXISTS crm_exportlog_no_truncate();
"""


def _sqlite_forward() -> list[str]:
    unchanged = " AND ".join(f"NEW.{c} IS OLD.{c}" for c in FROZEN)
    return [
        f"""CREATE TRIGGER crm_exportlog_no_update BEFORE UPDATE ON crm_exportlog
            WHEN NOT (OLD.status = 'started' AND NEW.status IN ('complete', 'incomplete') AND {unchanged})
            BEGIN SELECT RAISE(ABORT, 'the export log is append-only: an export is completed once'); END""",
        """CREATE TRIGGER crm_exportlog_no_delete BEFORE DELETE ON crm_exportlog
            BEGIN SELECT RAISE(ABORT, 'export log records cannot be deleted'); END""",
    ]


SQLITE_TRIGGERS = ["crm_exportlog_no_update", "crm_exportlog_no_delete"]


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

    dependencies = [
        ('crm', '0006_api_tokens'),
        migrations.swappable_dependency(settings.AUTH_USER_MODEL),
    ]

    operations = [
        migrations.CreateModel(
            name='ExportLog',
            fields=[
                ('id', models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name='ID')),
                ('started_at', models.DateTimeField(verbose_name='started at')),
                ('finished_at', models.DateTimeField(blank=True, null=True, verbose_name='finished at')),
                ('kind', models.CharField(choices=[('list', 'List, all matching rows'), ('selection', 'List, selected rows'), ('dashboard', 'Dashboard table'), ('report', 'Monthly report by e-mail')], max_length=10, verbose_name='kind')),
                ('source', models.CharField(help_text='The list or table exported, e.g. customers.customer.', max_length=100, verbose_name='list')),
                ('filters', models.TextField(blank=True, help_text='The filters and search applied.', verbose_name='filters')),
                ('file_format', models.CharField(max_length=8, verbose_name='format')),
                ('row_count', models.PositiveBigIntegerField(blank=True, null=True, verbose_name='rows')),
                ('status', models.CharField(choices=[('started', 'Being sent'), ('complete', 'Complete'), ('incomplete', 'Interrupted')], default='started', max_length=10, verbose_name='status')),
                ('user', models.ForeignKey(blank=True, null=True, on_delete=django.db.models.deletion.PROTECT, related_name='+', to=settings.AUTH_USER_MODEL, verbose_name='by')),
            ],
            options={
                'verbose_name': 'export',
                'verbose_name_plural': 'export log',
                'constraints': [models.CheckConstraint(condition=models.Q(('kind__in', ['list', 'selection', 'dashboard', 'report'])), name='crm_exportlog_kind_valid'), models.CheckConstraint(condition=models.Q(models.Q(('finished_at__isnull', True), ('row_count__isnull', True), ('status', 'started')), models.Q(('finished_at__isnull', False), ('row_count__isnull', False), ('status__in', ['complete', 'incomplete'])), _connector='OR'), name='crm_exportlog_finished_complete')],
            },
        ),
        migrations.RunPython(forward, backward),
    ]
