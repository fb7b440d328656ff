"""Demo bills: last month's meter readings for the demo contracts, billed and issued, through the billing services.

One reading per active contract's installed meter (its reading at install plus a plausible month of use,
deterministic for a seed) goes in as one reading file (``billing.imports.import_readings``, the path the
metering systems' files take); then ``billing_run`` bills the month for every unit and ``invoices_issue``
issues the drafts (a flagged reading's bill is held, as it would be). Safe to run again: a month that has bills
is left alone.
"""

from __future__ import annotations

import csv
import datetime as dt
import io
import random

from django.core.management.base import BaseCommand
from django.utils import timezone

from billing.imports import import_readings
from billing.models import Invoice, InvoiceStatus, PriceTable
from billing.services import billing_run, invoices_issue, tariffs_load_reference
from customers.models import ContractStatus, MeterAssignment


def last_month(today: dt.date) -> dt.date:
    return (today.replace(day=1) - dt.timedelta(days=1)).replace(day=1)


class Command(BaseCommand):
    help = "Bill last month for the demo customers (readings, billing run, issue). Safe to run again."

    def add_arguments(self, parser):
        parser.add_argument("--seed", type=int, default=1)
        parser.add_argument("--period", help="YYYY-MM (default: last month)")

    def handle(self, *args, seed, period=None, **options):
        month = dt.date.fromisoformat(f"{period}-01") if period else last_month(timezone.localdate())
        if Invoice.objects.filter(period=month).exists():
            self.stdout.write(f"Demo bills for {month:%m/%Y} already made: nothing to do.")
            return
        if not PriceTable.objects.exists():
            tariffs_load_reference()
        end = (month + dt.timedelta(days=32)).replace(day=1)
        installed_before = timezone.make_aware(dt.datetime.combine(end, dt.time()))
        assignments = (
            MeterAssignment.objects.filter(
                removed_at__isnull=True, contract__status=ContractStatus.ACTIVE, installed_at__lt=installed_before
            )
            .order_by("contract_id")
            .values_list("contract_id", "contract__number", "meter__serial", "reading_at_install")
        )
        rng = random.Random(seed)
        text = io.StringIO()
        writer = csv.writer(text)
        writer.writerow(["meter_serial", "contract_number", "period", "value"])
        lines = 0
        for _contract_id, number, serial, at_install in assignments.iterator(chunk_size=5000):
            use = int(rng.lognormvariate(5.3, 0.5))  # about 200 kWh a month, a few households far more
            writer.writerow([serial, number, f"{month:%Y-%m}", at_install + max(30, min(use, 3000))])
            lines += 1
        if not lines:
            self.stdout.write("No installed meters: run manage.py seed_demo first. No demo bills.")
            return
        readings = import_readings(stream=io.BytesIO(text.getvalue().encode()), period=month)
        run = billing_run(actor=None, period=month)
        issued = invoices_issue(actor=None, period=month)
        held = Invoice.objects.filter(period=month, status=InvoiceStatus.HELD).count()
        self.stdout.write(
            f"Demo bills for {month:%m/%Y}: {readings.inserted} readings recorded ({readings.unchanged} already "
            f"there, {readings.flagged} flagged, {readings.rejected} refused); {run.invoices} bills made, "
            f"{issued} issued, {held} held."
        )
