"""The service catalogue's rules, in words: a resolve target is at least 1 (minute or working day), and the SLA
policy's and the suspension's CHECK constraints refuse with a reason instead of their names; a ticket event says
when a public holiday moved a deadline. Validators, choices and constraint messages only: nothing changes in the
schema (no table rebuild on SQLite)."""

import django.core.validators
from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [
        ("tickets", "0015_incident_called_off"),
    ]

    operations = [
        migrations.AlterField(
            model_name="slapolicy",
            name="resolve_minutes",
            field=models.PositiveIntegerField(
                blank=True,
                null=True,
                validators=[django.core.validators.MinValueValidator(1)],
                verbose_name="resolve within (minutes)",
            ),
        ),
        migrations.AlterField(
            model_name="slapolicy",
            name="resolve_working_days",
            field=models.PositiveSmallIntegerField(
                blank=True,
                null=True,
                validators=[django.core.validators.MinValueValidator(1)],
                verbose_name="resolve within (working days)",
            ),
        ),
        migrations.AlterField(
            model_name="ticketevent",
            name="kind",
            field=models.CharField(
                choices=[
                    ("created", "Created"),
                    ("status", "Status changed"),
                    ("routed", "Re-routed"),
                    ("assigned", "Assigned"),
                    ("contacted", "Customer contacted"),
                    ("breach", "Deadline breached"),
                    ("escalated", "Escalated"),
                    ("note", "Note"),
                    ("linked", "Linked to an outage incident"),
                    ("callback", "Callback"),
                    ("cb_overdue", "Callback overdue"),
                    ("message", "Message to the customer"),
                    ("attachment", "Attachment"),
                    ("deadline", "Deadline moved"),
                ],
                max_length=12,
                verbose_name="kind",
            ),
        ),
        migrations.AlterConstraint(
            model_name="slapolicy",
            name="tickets_policy_one_resolve_target",
            constraint=models.CheckConstraint(
                condition=models.Q(
                    models.Q(("resolve_minutes__isnull", False), ("resolve_working_days__isnull", True)),
                    models.Q(("resolve_minutes__isnull", True), ("resolve_working_days__isnull", False)),
                    _connector="OR",
                ),
                name="tickets_policy_one_resolve_target",
                violation_error_code="one_resolve_target",
                violation_error_message="Choose exactly one resolve target: in minutes or in working days.",
            ),
        ),
        migrations.AlterConstraint(
            model_name="slapolicy",
            name="tickets_policy_levels_in_order",
            constraint=models.CheckConstraint(
                condition=models.Q(("escalate_level3_minutes__gte", models.F("escalate_level2_minutes"))),
                name="tickets_policy_levels_in_order",
                violation_error_code="levels_in_order",
                violation_error_message="Level 3 comes after level 2.",
            ),
        ),
        migrations.AlterConstraint(
            model_name="suspension",
            name="tickets_suspension_period",
            constraint=models.CheckConstraint(
                condition=models.Q(("ends_at__gt", models.F("starts_at"))),
                name="tickets_suspension_period",
                violation_error_code="suspension_period",
                violation_error_message="A suspension ends after it starts.",
            ),
        ),
    ]
