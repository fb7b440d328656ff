# A permission of its own for running rebate rounds (apply, reverse): no table changes.

from django.db import migrations


class Migration(migrations.Migration):
    dependencies = [
        ("billing", "0018_constraint_messages"),
    ]

    operations = [
        migrations.AlterModelOptions(
            name="rebateprogramme",
            options={
                "permissions": [("apply_rebateprogramme", "Can apply and reverse rebate programmes")],
                "verbose_name": "rebate programme",
                "verbose_name_plural": "rebate programmes",
            },
        ),
    ]
