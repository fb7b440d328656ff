"""Refusals in words instead of the constraint's name where a form can reach a billing constraint (a state-only
change on both databases: the constraints' conditions are unchanged)."""

from django.conf import settings
from django.db import migrations, models


class Migration(migrations.Migration):

    dependencies = [
        ('billing', '0017_adjustment_record_limit'),
        ('crm', '0012_export_log_units'),
        ('customers', '0006_assignment_one_open_per_contract'),
        ('tickets', '0016_sla_catalogue_rules'),
        migrations.swappable_dependency(settings.AUTH_USER_MODEL),
    ]

    operations = [
        migrations.AlterConstraint(
            model_name='dispute',
            name='billing_dispute_has_subject',
            constraint=models.CheckConstraint(condition=models.Q(('invoice__isnull', False), ('reading__isnull', False), _connector='OR'), name='billing_dispute_has_subject', violation_error_code='no_subject', violation_error_message='A dispute is about a bill or a reading: name one of them.'),
        ),
        migrations.AlterConstraint(
            model_name='rebateband',
            name='billing_rebateband_percent',
            constraint=models.CheckConstraint(condition=models.Q(('percent__gt', 0), ('percent__lte', 100)), name='billing_rebateband_percent', violation_error_code='percent', violation_error_message='A reduction is more than 0 %% and at most 100 %%.'),
        ),
        migrations.AlterConstraint(
            model_name='rebateband',
            name='billing_rebateband_range',
            constraint=models.CheckConstraint(condition=models.Q(('to_kwh__isnull', True), ('to_kwh__gt', models.F('from_kwh')), _connector='OR'), name='billing_rebateband_range', violation_error_code='range', violation_error_message='A band ends above the kWh it starts from.'),
        ),
        migrations.AlterConstraint(
            model_name='rebateprogramme',
            name='billing_rebate_periods',
            constraint=models.CheckConstraint(condition=models.Q(('period_to__gte', models.F('period_from'))), name='billing_rebate_periods', violation_error_code='periods', violation_error_message='The last month comes after the first.'),
        ),
        migrations.AlterConstraint(
            model_name='vatrate',
            name='billing_vat_percent',
            constraint=models.CheckConstraint(condition=models.Q(('percent__lte', 100)), name='billing_vat_percent', violation_error_code='percent', violation_error_message='A VAT rate is at most 100 %%.'),
        ),
    ]
