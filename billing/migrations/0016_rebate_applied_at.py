"""A rebate programme keeps when its round first ran: a bill issued before then was never within its reach.
Programmes applied before this column are given the moment of their first application."""

from django.db import migrations, models
from django.db.models import Min


def first_application(apps, schema_editor):
    RebateProgramme = apps.get_model("billing", "RebateProgramme")
    RebateApplication = apps.get_model("billing", "RebateApplication")
    firsts = (
        RebateApplication.objects.values("programme_id").annotate(first=Min("applied_at")).order_by()
    )
    for row in firsts:
        RebateProgramme.objects.filter(pk=row["programme_id"], applied_at__isnull=True).update(
            applied_at=row["first"]
        )


class Migration(migrations.Migration):

    dependencies = [
        ("billing", "0015_reading_estimated_index"),
    ]

    operations = [
        migrations.AddField(
            model_name="rebateprogramme",
            name="applied_at",
            field=models.DateTimeField(blank=True, null=True, verbose_name="first applied at"),
        ),
        migrations.RunPython(first_application, migrations.RunPython.noop),
    ]
