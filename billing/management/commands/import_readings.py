"""``manage.py import_readings FILE``: the fast path for a big file of meter readings (see billing.imports)."""

from __future__ import annotations

import datetime as dt
import resource
import time
from pathlib import Path

from django.contrib.auth import get_user_model
from django.core.exceptions import ValidationError
from django.core.management.base import BaseCommand, CommandError

from billing.imports import SOURCES, csv_stream, import_readings
from crm.models import Unit

SHOWN = 20


def _month(text: str) -> dt.date:
    try:
        return dt.date.fromisoformat(f"{text[:7]}-01")
    except ValueError as exc:
        raise CommandError(f"--period: expected YYYY-MM, got {text!r}") from exc


class Command(BaseCommand):
    help = (
        "Import a CSV of meter readings (meter_serial or contract_number, period, value, [taken_at], [source]) "
        "in one transaction. Refused lines are listed and written to FILE.rejects.csv."
    )

    def add_arguments(self, parser):
        parser.add_argument("file", help="CSV file with a header line")
        parser.add_argument(
            "--period", help="YYYY-MM: the month of lines without one; other months are refused"
        )
        parser.add_argument("--unit", help="unit code: lines of other units' contracts are refused")
        parser.add_argument("--source", choices=[str(s) for s in SOURCES], help="source of lines without one")
        parser.add_argument("--user", help="username of the importer: lines outside their units are refused")
        parser.add_argument("--dry-run", action="store_true", help="check and count, then roll back")
        parser.add_argument(
            "--all-or-nothing", action="store_true", help="a file with any refused line writes nothing"
        )

    def handle(self, *args, **options):
        path = Path(options["file"])
        if not path.is_file():
            raise CommandError(f"No such file: {path}")
        unit = None
        if options["unit"]:
            unit = Unit.objects.filter(code=options["unit"]).first()
            if unit is None:
                raise CommandError(f"Unknown unit: {options['unit']}")
        actor = None
        if options["user"]:
            actor = get_user_model().objects.filter(username=options["user"]).first()
            if actor is None:
                raise CommandError(f"Unknown user: {options['user']}")
        period = _month(options["period"]) if options["period"] else None
        rejects_path = path.with_name(path.name + ".rejects.csv")
        started = time.perf_counter()
        try:
            with path.open("rb") as stream, rejects_path.open("w", newline="", encoding="utf-8") as rejects:
                result = import_readings(
                    stream=csv_stream(stream, path.name), actor=actor, unit=unit, period=period,
                    source=options["source"], dry_run=options["dry_run"],
                    all_or_nothing=options["all_or_nothing"], rejects_to=rejects,
                )  # fmt: skip
        except ValidationError as exc:
            rejects_path.unlink(missing_ok=True)
            raise CommandError("; ".join(exc.messages)) from exc
        if not result.rejected:
            rejects_path.unlink(missing_ok=True)
        elapsed = time.perf_counter() - started
        for reject in result.rejects[:SHOWN]:
            key = reject.meter_serial or reject.contract_number
            self.stdout.write(f"line {reject.line} {key}: {reject.reason}")
        if result.rejected > SHOWN:
            self.stdout.write(f"… and {result.rejected - SHOWN} more")
        if result.rejected:
            self.stdout.write(f"Refused lines: {rejects_path}")
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        self.stdout.write(
            ("Dry run (nothing written): " if result.dry_run else "")
            + ("Refused lines found, nothing written: " if not result.written and not result.dry_run else "")
            + f"{result.total} lines: {result.inserted} inserted ({result.flagged} flagged), "
            f"{result.unchanged} unchanged, {result.rejected} rejected; periods {', '.join(result.periods) or '-'}; "
            f"{elapsed:.1f}s, peak memory {peak:.0f} MB"
        )
        return None
