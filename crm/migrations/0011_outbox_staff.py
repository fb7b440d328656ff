"""Outbox messages keep the member of staff they are for (empty for customers), so that each delivery addresses
them as they are then and sends nothing to someone who has left. A nullable column (no table rebuild on SQLite)
and a partial index on the rows that have one."""

import django.db.models.deletion
from django.conf import settings
from django.db import migrations, models


class Migration(migrations.Migration):

    dependencies = [
        ('crm', '0010_staff_phone_normalised'),
        migrations.swappable_dependency(settings.AUTH_USER_MODEL),
    ]

    operations = [
        migrations.AddField(
            model_name='outboxmessage',
            name='staff',
            field=models.ForeignKey(blank=True, db_index=False, null=True, on_delete=django.db.models.deletion.PROTECT, related_name='+', to=settings.AUTH_USER_MODEL, verbose_name='member of staff'),
        ),
        migrations.AddIndex(
            model_name='outboxmessage',
            index=models.Index(condition=models.Q(('staff__isnull', False)), fields=['staff'], name='crm_outbox_staff_idx'),
        ),
    ]
