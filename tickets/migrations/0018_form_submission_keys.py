"""A note (a message to the customer) and a logged call keep the one-time token of the form that posted them:
a form posted twice (a double click, a resubmit) writes and sends once. The unique indexes are partial (rows
without a token, the API's and older ones, are not constrained), so SQLite adds them without copying a table."""


from django.conf import settings
from django.db import migrations, models


class Migration(migrations.Migration):

    dependencies = [
        ('crm', '0012_export_log_units'),
        ('customers', '0007_contract_numbers_in_capitals'),
        ('tickets', '0017_policy_callback_at_least_an_hour'),
        migrations.swappable_dependency(settings.AUTH_USER_MODEL),
    ]

    operations = [
        migrations.AddField(
            model_name='interaction',
            name='submission_key',
            field=models.CharField(blank=True, editable=False, max_length=64, null=True),
        ),
        migrations.AddField(
            model_name='ticketnote',
            name='submission_key',
            field=models.CharField(blank=True, editable=False, max_length=64, null=True),
        ),
        migrations.AddConstraint(
            model_name='interaction',
            constraint=models.UniqueConstraint(condition=models.Q(('submission_key__isnull', False)), fields=('agent', 'submission_key'), name='tickets_interaction_submitted_once'),
        ),
        migrations.AddConstraint(
            model_name='ticketnote',
            constraint=models.UniqueConstraint(condition=models.Q(('submission_key__isnull', False)), fields=('ticket', 'submission_key'), name='tickets_note_submitted_once'),
        ),
    ]
