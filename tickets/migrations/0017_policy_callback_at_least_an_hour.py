"""An SLA policy calls back within at least 1 hour: with 0, every callback of its tickets would be overdue the
moment the ticket is resolved. The form's and the service's rule (a validator), and on PostgreSQL a CHECK
constraint for every policy added from now on (``NOT VALID``: a policy already kept is history, never changed).
SQLite gets no constraint in its table: adding one would copy the table whole."""

import django.core.validators
from django.db import migrations, models

CONSTRAINT = "tickets_policy_callback_at_least_an_hour"


def add_check(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute(
            f"ALTER TABLE tickets_slapolicy ADD CONSTRAINT {CONSTRAINT} CHECK (callback_hours >= 1) NOT VALID"
        )


def drop_check(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute(f"ALTER TABLE tickets_slapolicy DROP CONSTRAINT IF EXISTS {CONSTRAINT}")


class Migration(migrations.Migration):
    dependencies = [
        ("tickets", "0016_sla_catalogue_rules"),
    ]

    operations = [
        migrations.AlterField(
            model_name="slapolicy",
            name="callback_hours",
            field=models.PositiveSmallIntegerField(
                default=24,
                validators=[django.core.validators.MinValueValidator(1)],
                verbose_name="call back within (hours after resolution)",
            ),
        ),
        migrations.SeparateDatabaseAndState(
            state_operations=[
                migrations.AddConstraint(
                    model_name="slapolicy",
                    constraint=models.CheckConstraint(
                        condition=models.Q(("callback_hours__gte", 1)),
                        name=CONSTRAINT,
                        violation_error_code="callback_at_least_an_hour",
                        violation_error_message="At least 1 hour: with 0, every callback would be overdue the "
                        "moment its ticket is resolved.",
                    ),
                ),
            ],
            database_operations=[migrations.RunPython(add_check, drop_check)],
        ),
    ]
