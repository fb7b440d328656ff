from django.core.management.base import BaseCommand
from django.db import transaction
from django_q.models import Schedule

from core.task_registry import schedule_modules


class Command(BaseCommand):
    help = "Create or update the django-q2 schedules the product needs (idempotent; matched by name)."

    @transaction.atomic
    def handle(self, *args, **options):
        for module in schedule_modules():
            for name, func, schedule_type, minutes, args in module.SCHEDULES:
                _schedule, created = Schedule.objects.update_or_create(
                    name=name,
                    defaults={
                        "func": func,
                        "args": repr(tuple(args)) if args else None,
                        "schedule_type": schedule_type,
                        "minutes": minutes,
                        "repeats": -1,
                    },
                )
                self.stdout.write(f"{'created' if created else 'kept'}: {name}")
