"""API tokens stored hashed (django-rest-knox), each with a name and an expiry.

The plain tokens of DRF's authtoken table (no longer installed) become hashed tokens, so the integrations that
send them keep working: each is named "token from before hashing" and expires 90 days after this migration.
Then the plain table, which held usable secrets, is dropped.
"""

import datetime as dt

import django.db.models.deletion
from django.conf import settings
from django.db import migrations, models
from django.db.migrations.recorder import MigrationRecorder
from django.utils import timezone
from knox.crypto import hash_token
from knox.settings import CONSTANTS

PLAIN_TABLE = "authtoken_token"


def hash_the_plain_tokens(apps, schema_editor):
    connection = schema_editor.connection
    if PLAIN_TABLE not in connection.introspection.table_names():
        return
    ApiToken = apps.get_model("crm", "ApiToken")
    with connection.cursor() as cursor:
        cursor.execute(f"SELECT key, user_id FROM {PLAIN_TABLE}")
        rows = cursor.fetchall()
    expiry = timezone.now() + dt.timedelta(days=90)
    ApiToken.objects.using(connection.alias).bulk_create(
        ApiToken(
            digest=hash_token(key),
            token_key=key[: CONSTANTS.TOKEN_KEY_LENGTH],
            user_id=user_id,
            name="token from before hashing",
            expiry=expiry,
        )
        for key, user_id in rows
    )
    schema_editor.execute(f"DROP TABLE {PLAIN_TABLE}")
    MigrationRecorder(connection).migration_qs.filter(app="authtoken").delete()


class Migration(migrations.Migration):

    dependencies = [
        ('crm', '0005_outbox_retry'),
        migrations.swappable_dependency(settings.AUTH_USER_MODEL),
    ]

    operations = [
        migrations.CreateModel(
            name='ApiToken',
            fields=[
                ('digest', models.CharField(max_length=128, primary_key=True, serialize=False)),
                ('token_key', models.CharField(db_index=True, max_length=25, verbose_name='token starts with')),
                ('name', models.CharField(help_text='What uses the token, e.g. “Zalo gateway” or “website”.', max_length=100, verbose_name='name')),
                ('created', models.DateTimeField(auto_now_add=True, verbose_name='created at')),
                ('expiry', models.DateTimeField(verbose_name='expires at')),
                ('created_by', models.ForeignKey(blank=True, null=True, on_delete=django.db.models.deletion.SET_NULL, related_name='+', to=settings.AUTH_USER_MODEL, verbose_name='created by')),
                ('user', models.ForeignKey(on_delete=django.db.models.deletion.CASCADE, related_name='auth_token_set', to=settings.AUTH_USER_MODEL, verbose_name='user')),
            ],
            options={
                'verbose_name': 'API token',
                'verbose_name_plural': 'API tokens',
                'constraints': [models.CheckConstraint(condition=models.Q(('name', ''), _negated=True), name='crm_apitoken_name_present')],
            },
        ),
        migrations.RunPython(hash_the_plain_tokens, migrations.RunPython.noop),
    ]
