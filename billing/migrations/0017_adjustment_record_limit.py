from django.db import migrations, models


class Migration(migrations.Migration):
    # The correction record is typed text (``core.text``): its limit is the forms' and the services' rule, not
    # the column's, so the table stays as it is (SQLite would otherwise copy it whole).

    dependencies = [
        ('billing', '0016_rebate_applied_at'),
    ]

    operations = [
        migrations.SeparateDatabaseAndState(
            state_operations=[
                migrations.AlterField(
                    model_name='adjustment',
                    name='record',
                    field=models.TextField(max_length=4000, verbose_name='correction record'),
                ),
            ],
            database_operations=[],
        ),
    ]
