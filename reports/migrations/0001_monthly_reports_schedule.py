"""The monthly reports' task functions moved from ``crm.tasks`` to ``reports.tasks``: a stored schedule that
names the old path names the new one (``setup_schedules`` writes the new path from now on)."""

from django.db import migrations

MOVED = {
    "crm.tasks.send_monthly_reports_when_due": "reports.tasks.send_monthly_reports_when_due",
    "crm.tasks.send_monthly_reports": "reports.tasks.send_monthly_reports",
}


def forwards(apps, schema_editor):
    Schedule = apps.get_model("django_q", "Schedule")
    for old, new in MOVED.items():
        Schedule.objects.filter(func=old).update(func=new)


def backwards(apps, schema_editor):
    Schedule = apps.get_model("django_q", "Schedule")
    for old, new in MOVED.items():
        Schedule.objects.filter(func=new).update(func=old)


class Migration(migrations.Migration):
    dependencies = [("django_q", "0018_task_success_index")]

    operations = [migrations.RunPython(forwards, backwards)]
