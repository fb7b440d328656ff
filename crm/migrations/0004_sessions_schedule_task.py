"""The session clean-up schedule names tongdai's own task instead of ``call_command``: the task cluster runs
only registered task functions (``core.task_registry``), and ``call_command`` would run any command."""

from django.db import migrations

NAME = "tongdai: clear expired sessions"


def forwards(apps, schema_editor):
    Schedule = apps.get_model("django_q", "Schedule")
    Schedule.objects.filter(name=NAME, func="django.core.management.call_command").update(
        func="crm.tasks.clear_expired_sessions", args=None
    )


def backwards(apps, schema_editor):
    Schedule = apps.get_model("django_q", "Schedule")
    Schedule.objects.filter(name=NAME, func="crm.tasks.clear_expired_sessions").update(
        func="django.core.management.call_command", args="('clearsessions',)"
    )


class Migration(migrations.Migration):
    dependencies = [
        ("crm", "0003_dashboard_permission_outbox_attachment"),
        ("django_q", "0019_alter_task_options_alter_ormq_key_alter_ormq_lock_and_more"),
    ]

    operations = [migrations.RunPython(forwards, backwards)]
