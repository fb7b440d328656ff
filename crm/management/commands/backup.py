from pathlib import Path

from django.core.management.base import BaseCommand, CommandError

from core.backup import BackupError, backup, database_of


class Command(BaseCommand):
    help = (
        "Write a consistent backup of the database to FILE while the product runs: PostgreSQL with pg_dump's "
        "custom format (pg_dump on PATH), SQLite with sqlite3's online backup API. Restore it with "
        "'manage.py restore FILE --database-url …'."
    )

    def add_arguments(self, parser):
        parser.add_argument("file", type=Path)

    def handle(self, *args, file: Path, **options):
        settings = database_of()
        try:
            backup(file, settings=settings)
        except BackupError as exc:
            raise CommandError(str(exc)) from None
        self.stdout.write(f"backup of {settings['NAME']} written to {file} ({file.stat().st_size:,} bytes)")
