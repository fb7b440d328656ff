import time

from django.core.management.base import BaseCommand, CommandError

from crm.models import Unit
from crm.services import organisation_load_reference
from customers import demo


class Command(BaseCommand):
    help = (
        "Load deterministic demo customers with phones, contracts, meters and meter history. "
        "Safe to run twice: a rerun loads only what is missing for the seed."
    )

    def add_arguments(self, parser):
        parser.add_argument("--customers", type=int, default=3000)
        parser.add_argument("--seed", type=int, default=1)
        parser.add_argument(
            "--units",
            default="",
            help="Comma-separated unit or company code prefixes (e.g. PE,PC08); default: every active unit.",
        )

    def handle(self, *args, customers, seed, units, **options):
        if customers < 0:
            raise CommandError("--customers must not be negative")
        if not Unit.objects.exists():
            organisation_load_reference()
        queryset = Unit.objects.active()
        prefixes = [p.strip().upper() for p in units.split(",") if p.strip()]
        if prefixes:
            from django.db.models import Q

            condition = Q()
            for prefix in prefixes:
                condition |= Q(code__startswith=prefix)
            queryset = queryset.filter(condition)
            if not queryset.exists():
                raise CommandError(f"No active unit matches {units}")
        started = time.monotonic()
        last = [0.0]

        def progress(done, total):
            now = time.monotonic()
            if now - last[0] > 5:
                last[0] = now
                self.stdout.write(f"  {done:,}/{total:,} customers ({now - started:.0f}s)")

        result = demo.seed(customers=customers, seed=seed, units=queryset, progress=progress)
        elapsed = time.monotonic() - started
        if result["loaded"] == 0:
            self.stdout.write(
                f"Demo data for seed {seed} already has {result['total']:,} customers: nothing to do."
            )
        else:
            self.stdout.write(
                f"Loaded {result['loaded']:,} customers, {result['phones']:,} phones, {result['contracts']:,} "
                f"contracts, {result['meters']:,} meters, {result['assignments']:,} meter assignments "
                f"in {elapsed:.1f}s (seed {seed}, {result['total']:,} in all)."
            )
