"""Partition the meter readings and the invoices by billing month (PostgreSQL), or add the coming months.

    manage.py partition_billing [--ahead 3] [--dry-run]

Run it in a maintenance window: it holds both tables exclusively while it copies their rows (see
``billing.partitioning``). Once they are partitioned, running it again (or the daily job) only adds the
partitions of this month and the next ones.
"""

from django.core.management.base import BaseCommand, CommandError

from billing.partitioning import AHEAD, NotPartitionable, partition_tables


class Command(BaseCommand):
    help = "Partition the meter readings and the invoices by billing month (PostgreSQL), or add the coming months."

    def add_arguments(self, parser):
        parser.add_argument("--ahead", type=int, default=AHEAD, help="months of partitions made ahead of this one")
        parser.add_argument("--dry-run", action="store_true", help="print the statements; change nothing")

    def handle(self, *args, ahead, dry_run, **options):
        if ahead < 0:
            raise CommandError("--ahead is a number of months, 0 or more.")
        try:
            statements = partition_tables(ahead=ahead, dry_run=dry_run)
        except NotPartitionable as exc:
            raise CommandError(f"Nothing was changed: {exc}") from exc
        if dry_run:
            for statement in statements:
                self.stdout.write(statement.rstrip(";") + ";")
            return
        self.stdout.write(f"Done: {len(statements)} statements (tables partitioned, or the coming months added).")
