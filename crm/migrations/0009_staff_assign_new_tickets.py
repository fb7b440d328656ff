"""Agents keep the tickets they take in the admin (an option on their staff profile, on by default)."""

from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [
        ("crm", "0008_cluster_heartbeat"),
    ]

    operations = [
        migrations.AddField(
            model_name="staffprofile",
            name="assign_new_tickets",
            field=models.BooleanField(
                default=True,
                help_text="For agents: a ticket they save in the admin is assigned to them at once.",
                verbose_name="assign the tickets I take to me",
            ),
        ),
    ]
