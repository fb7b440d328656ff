"""A planned outage called off before its start is marked (``Incident.called_off_at``), so that the restore
figures leave it out. A nullable column with its own CHECK (called off implies closed): one ALTER TABLE … ADD
COLUMN on both databases, no table rebuild on SQLite. Outages called off before this migration cannot be told
from one restored at its start minute and stay counted."""

from django.db import migrations

import tickets.models


class Migration(migrations.Migration):
    dependencies = [
        ("tickets", "0014_missed_before"),
    ]

    operations = [
        migrations.AddField(
            model_name="incident",
            name="called_off_at",
            field=tickets.models.CalledOffAtField(
                blank=True, editable=False, null=True, verbose_name="called off at"
            ),
        ),
    ]
