from django.db import migrations, models
from django.db.models import OuterRef, Subquery


def follow_the_tickets_cycle(apps, schema_editor):
    """A callback kept before cycles were counted on it is the one of its ticket's current cycle: a reopen
    deleted the earlier one."""
    Callback = apps.get_model("tickets", "Callback")
    Ticket = apps.get_model("tickets", "Ticket")
    Callback.objects.filter(ticket__cycle__gt=0).update(
        cycle=Subquery(Ticket.objects.filter(pk=OuterRef("ticket_id")).values("cycle")[:1])
    )


class Migration(migrations.Migration):
    dependencies = [
        ("tickets", "0011_free_text_limits"),
    ]

    operations = [
        migrations.AddField(
            model_name="callback",
            name="cycle",
            field=models.PositiveSmallIntegerField(db_default=0, default=0, verbose_name="times reopened"),
        ),
        migrations.AlterField(
            model_name="callback",
            name="ticket",
            field=models.ForeignKey(
                db_index=False,
                on_delete=models.deletion.CASCADE,
                related_name="callbacks",
                to="tickets.ticket",
                verbose_name="ticket",
            ),
        ),
        migrations.AddConstraint(
            model_name="callback",
            constraint=models.UniqueConstraint(
                fields=("ticket", "cycle"), name="tickets_callback_one_per_cycle"
            ),
        ),
        migrations.RunPython(follow_the_tickets_cycle, migrations.RunPython.noop),
    ]
