"""The task cluster's heartbeat, one row per cluster host, read by the health check."""

from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [("crm", "0007_export_log")]

    operations = [
        migrations.CreateModel(
            name="ClusterHeartbeat",
            fields=[
                ("id", models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name="ID")),
                ("node", models.CharField(max_length=200, unique=True, verbose_name="node")),
                ("beat_at", models.DateTimeField(verbose_name="last beat at")),
            ],
            options={"verbose_name": "task cluster heartbeat", "verbose_name_plural": "task cluster heartbeats"},
        ),
    ]
