from pathlib import Path

from django.core.management.base import BaseCommand, CommandError

from core.backup import BackupError, database_of, restore


class Command(BaseCommand):
    help = (
        "Restore a backup made by 'manage.py backup' into the database named by --database-url (a new, empty "
        "one: createdb it first; --force replaces what a database holds). The running product's database is "
        "never the default target: name it explicitly."
    )

    def add_arguments(self, parser):
        parser.add_argument("file", type=Path)
        parser.add_argument(
            "--database-url", required=True, help="postgres://user@host:5432/name, or sqlite:////path/to/file"
        )
        parser.add_argument("--force", action="store_true", help="replace what the target database holds")

    def handle(self, *args, file: Path, database_url: str, force: bool, **options):
        try:
            settings = database_of(database_url)
            restore(file, settings=settings, force=force)
        except BackupError as exc:
            raise CommandError(str(exc)) from None
        self.stdout.write(f"{file} restored into {settings['NAME']}")
