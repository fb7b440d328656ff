"""Who sees customers' phones and national IDs in full (two permissions, see ``customers.privacy``), and
national IDs of digits only in the database, so that a masked value can never be stored.

On SQLite a new CHECK means rebuilding the customers table, which SQLite refuses while other tables' triggers
name it (``core/integrity.py``): there the same rule is a pair of triggers.
"""

from django.db import migrations, models

NATIONAL_ID_FORM = models.CheckConstraint(
    condition=models.Q(("national_id", ""), ("national_id__regex", "^([0-9]{9}|[0-9]{12})$"), _connector="OR"),
    name="customers_customer_national_id_form",
)

SQLITE_TRIGGERS = {
    "customers_customer_national_id_insert": "INSERT",
    "customers_customer_national_id_update": "UPDATE OF national_id",
}


def forward(apps, schema_editor):
    if schema_editor.connection.vendor != "sqlite":
        schema_editor.add_constraint(apps.get_model("customers", "Customer"), NATIONAL_ID_FORM)
        return
    for name, event in SQLITE_TRIGGERS.items():
        schema_editor.execute(
            f"CREATE TRIGGER {name} BEFORE {event} ON customers_customer "
            "WHEN NEW.national_id != '' AND NOT (NEW.national_id REGEXP '^([0-9]{9}|[0-9]{12})$') "
            "BEGIN SELECT RAISE(ABORT, 'CHECK constraint failed: customers_customer_national_id_form'); END"
        )


def backward(apps, schema_editor):
    if schema_editor.connection.vendor != "sqlite":
        schema_editor.remove_constraint(apps.get_model("customers", "Customer"), NATIONAL_ID_FORM)
        return
    for name in SQLITE_TRIGGERS:
        schema_editor.execute(f"DROP TRIGGER IF EXISTS {name}")


class Migration(migrations.Migration):

    dependencies = [
        ('customers', '0003_search_trigram_statistics'),
    ]

    operations = [
        migrations.AlterModelOptions(
            name='customer',
            options={'permissions': [('flag_nuisance', 'Can flag or clear a nuisance caller'), ('view_full_phone', "Can see customers' phone numbers in full"), ('view_national_id', "Can see and change customers' national ID numbers in full")], 'verbose_name': 'customer', 'verbose_name_plural': 'customers'},
        ),
        migrations.SeparateDatabaseAndState(
            state_operations=[migrations.AddConstraint(model_name='customer', constraint=NATIONAL_ID_FORM)],
            database_operations=[migrations.RunPython(forward, backward)],
        ),
    ]
