from django.core.management.base import BaseCommand
from django.db import transaction
from django_q.models import Schedule

from core.task_registry import (
    PRODUCT_SCHEDULE_PREFIX,
    declared_schedule_names,
    on_demand_functions,
    schedule_modules,
)


class Command(BaseCommand):
    help = (
        "Create or update the django-q2 schedules the product needs (idempotent; matched by name). When several "
        "schedules have a product schedule's name (one added by hand in the admin), the oldest is set up and the "
        "others are left alone and listed. A product schedule (named 'tongdai: …') no longer declared, renamed "
        "or dropped in code, is removed, unless it runs an on-demand task an administrator may schedule by hand."
    )

    @transaction.atomic
    def handle(self, *args, **options):
        for module in schedule_modules():
            for name, func, schedule_type, minutes, args in module.SCHEDULES:
                wanted = {
                    "func": func,
                    "args": repr(tuple(args)) if args else None,
                    "schedule_type": schedule_type,
                    "minutes": minutes,
                    "repeats": -1,
                }
                self.stdout.write(f"{self.set_up(name, wanted)}: {name}")
        for name in self.remove_retired():
            self.stdout.write(f"removed: {name}")

    def remove_retired(self) -> list[str]:
        """Delete the product's schedules that code no longer declares: named with the product's prefix, under a
        name no ``SCHEDULES`` has now (renamed: the job would run twice a tick under two names; dropped: its
        function is refused and fails every run). One running an on-demand task (``TASKS``) was set up by hand
        and stays, as does every schedule under another name. Returns the names removed."""
        candidates = (
            Schedule.objects.filter(name__startswith=PRODUCT_SCHEDULE_PREFIX)
            .exclude(name__in=declared_schedule_names())
            .exclude(func__in=on_demand_functions())
            .order_by("name", "pk")
        )
        # SQLite's LIKE ignores case: "Tongdai: …", named by an administrator, is not the product's.
        retired = [schedule for schedule in candidates if schedule.name.startswith(PRODUCT_SCHEDULE_PREFIX)]
        for schedule in retired:
            schedule.delete()
        return [schedule.name for schedule in retired]

    def set_up(self, name: str, wanted: dict) -> str:
        """Create the schedule ``name`` or bring the oldest of that name to ``wanted``; django-q2's names are not
        unique, so others of the same name (added in the admin) are reported, never changed. Returns what was
        done: created, updated or kept."""
        found = list(Schedule.objects.filter(name=name).order_by("pk"))
        if not found:
            Schedule.objects.create(name=name, **wanted)
            return "created"
        schedule, others = found[0], found[1:]
        if others:
            self.stderr.write(
                f"Several schedules are named {name!r}: set up the oldest (id {schedule.pk}), left alone id(s) "
                f"{', '.join(str(other.pk) for other in others)}; rename or delete those in the admin."
            )
        changed = [field for field, value in wanted.items() if getattr(schedule, field) != value]
        if not changed:
            return "kept"
        for field in changed:
            setattr(schedule, field, wanted[field])
        schedule.save(update_fields=changed)
        return "updated"
