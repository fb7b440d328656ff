"""`make run`'s demo data, loaded by the Makefile's own `demo` commands (read from the Makefile, so the test
follows it): the demo crew has work on their field page, an outage is open in the demo agent's units and shows
on a customer's card, and last month's bills are issued."""

import io
import re
import shlex
from pathlib import Path

from django.conf import settings as django_settings
from django.core.management import call_command
from django.urls import reverse

from billing.models import Invoice, InvoiceStatus
from crm.models import StaffProfile
from customers.models import Customer
from tickets.models import Incident, WorkOrder

MAKEFILE = Path(django_settings.BASE_DIR) / "Makefile"


def demo_commands(customers: int) -> list[list[str]]:
    """The `manage.py` commands of the Makefile's `demo` target, in order, with DEMO_CUSTOMERS replaced."""
    text = MAKEFILE.read_text()
    body = re.search(r"^demo:.*\n((?:\t.*\n)+)", text, re.M).group(1)
    commands = []
    for line in body.splitlines():
        line = line.strip()
        if "manage.py" not in line:
            continue
        args = shlex.split(line.split("manage.py", 1)[1].replace("$(DEMO_CUSTOMERS)", str(customers)))
        commands.append(args)
    return commands


def test_the_demo_shows_a_crews_work_an_outage_on_a_card_and_issued_bills(db, client, tmp_path, settings):
    settings.BASE_DIR = tmp_path  # the demo passwords file
    commands = demo_commands(customers=150)
    assert [c[0] for c in commands][-3:] == ["create_demo_users", "seed_demo_tickets", "seed_demo_billing"]
    for args in commands:
        call_command(*args, stdout=io.StringIO())

    crew = StaffProfile.objects.get(user__username="crew")
    orders = WorkOrder.objects.open().filter(crew=crew.user)
    assert orders.exists()
    client.force_login(crew.user)
    assert orders.first().ticket.number in client.get("/field/").content.decode()

    agent = StaffProfile.objects.get(user__username="agent")
    outage = Incident.objects.open().filter(unit__in=agent.units.all()).get()
    assert set(crew.units.all()) == {outage.unit}  # where the crew and the dispatcher work
    covered = Customer.objects.filter(unit=outage.unit)
    if outage.wards:
        covered = covered.filter(ward__in=outage.wards)
    customer = covered.order_by("id").first()
    client.force_login(agent.user)
    card = client.get(reverse("admin:customers_customer_card", args=[customer.pk]))
    assert card.status_code == 200 and outage.cause in card.content.decode()

    issued = Invoice.objects.filter(status=InvoiceStatus.ISSUED)
    assert issued.exists()
    assert issued.filter(unit__in=agent.units.all()).exists()
    bills = Invoice.objects.count()
    again = io.StringIO()
    call_command("seed_demo_billing", stdout=again)  # `make run` again: nothing more
    assert "nothing to do" in again.getvalue() and Invoice.objects.count() == bills
