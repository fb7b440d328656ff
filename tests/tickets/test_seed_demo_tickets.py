import datetime as dt
import io
import re
import types

import pytest
from django.core.management import call_command
from django.db import transaction
from django.utils import timezone

from crm.models import OutboxMessage, Role
from crm.reference_data import wards
from tickets.models import (
    OPEN_STATUSES,
    Callback,
    CallbackOutcome,
    Channel,
    Incident,
    Interaction,
    Status,
    Ticket,
    TicketEvent,
    WorkOrder,
)
from tickets.services import suspension_create

WARDS = ["Phường Bến Nghé", "Phường Đa Kao", "Phường Tân Định"]


@pytest.fixture(autouse=True)
def two_pm(monkeypatch):
    """The command spreads tickets by the hour of day: run it at a fixed afternoon hour (14:00 local, the last
    one already past) so a seed always gives the same mix, whatever the hour the suite runs."""
    real = timezone.now()
    fixed = real.replace(hour=7, minute=0, second=0, microsecond=0)  # 14:00 in Asia/Ho_Chi_Minh
    if fixed > real:
        fixed -= dt.timedelta(days=1)
    shim = types.SimpleNamespace(
        **{name: getattr(timezone, name) for name in dir(timezone) if not name.startswith("__")}
    )
    shim.now = lambda: fixed
    monkeypatch.setattr("tickets.management.commands.seed_demo_tickets.timezone", shim)
    return fixed


def _seed(**options) -> str:
    out = io.StringIO()
    call_command("seed_demo_tickets", stdout=out, **options)
    return out.getvalue()


def _customers(org, make_customer, n=30):
    for k in range(n):
        unit = org["sibling"] if k % 3 == 2 else org["home"]
        make_customer(
            unit,
            name=f"Khách hàng {k}",
            street=f"{k + 1} Lê Lợi",
            ward=WARDS[k % len(WARDS)] if unit == org["home"] else wards()[unit.code][k % 2],
            phones=[f"0903 {k:03d} 456"],
        )


def test_seed_fills_queues_incidents_callbacks_and_is_idempotent(org, make_customer, catalogue, staff):
    _customers(org, make_customer)
    now = timezone.now()
    # Billing is suspended in the home unit: its billing tickets are refused, reported as skipped.
    suspension_create(
        actor=None, category=catalogue["billing"], units=[org["home"]], starts_at=now - dt.timedelta(days=11),
        ends_at=now + dt.timedelta(days=1), reason="Nâng cấp hệ thống",
    )  # fmt: skip

    output = _seed(tickets=60, seed=3)

    skipped = int(re.search(r"; (\d+) skipped\.", output).group(1))
    assert skipped > 0
    assert "suspended" in output
    tickets = Ticket.objects.all()
    assert tickets.count() == 60 - skipped
    assert f"Created {tickets.count()} demo tickets" in output
    assert not tickets.filter(category__code="billing", unit=org["home"]).exists()
    assert tickets.filter(intake_key__key__startswith="demo-").count() == tickets.count()

    statuses = set(tickets.values_list("status", flat=True))
    assert len(statuses) >= 5
    assert statuses & set(OPEN_STATUSES) and {Status.RESOLVED, Status.CLOSED} & statuses
    # spread over the last days, not all "now"
    first, last = min(t.created_at for t in tickets), max(t.created_at for t in tickets)
    assert last - first > dt.timedelta(days=2)
    assert last <= timezone.now()
    channels = set(tickets.values_list("channel", flat=True))
    assert Channel.PHONE in channels and len(channels) >= 3
    unknown = tickets.filter(customer__isnull=True)
    assert unknown.exists()
    assert all(t.caller_name and t.caller_phone.startswith("+84") and t.caller_address for t in unknown)

    restored = Incident.objects.get(restored_at__isnull=False)
    linked = list(restored.tickets.all())
    assert linked
    assert {t.status for t in linked} <= {Status.RESOLVED, Status.CLOSED}
    assert {t.resolved_at for t in linked} == {restored.restored_at}
    assert all(t.category.is_outage and t.created_at < restored.restored_at for t in linked)
    still_out = Incident.objects.get(restored_at__isnull=True)
    assert still_out.unit == restored.unit
    assert still_out.tickets.filter(status__in=OPEN_STATUSES).exists()

    done = Callback.objects.exclude(outcome="")
    assert done.exists()
    assert all(c.ticket.status == Status.CLOSED for c in done)
    surveyed = done.filter(outcome=CallbackOutcome.SURVEYED)
    assert all(1 <= c.fix_score <= 5 and 1 <= c.attitude_score <= 5 for c in surveyed)

    phone_tickets = tickets.filter(channel=Channel.PHONE)
    interactions = Interaction.objects.all()
    assert interactions.count() == phone_tickets.count()
    assert set(interactions.values_list("ticket", flat=True)) == set(
        phone_tickets.values_list("pk", flat=True)
    )
    assert all(
        dt.timedelta(minutes=1) <= i.ended_at - i.started_at <= dt.timedelta(minutes=8) for i in interactions
    )
    assert set(interactions.values_list("agent", flat=True)) == {staff[Role.AGENT].pk}
    assert WorkOrder.objects.exists()

    counts = (Ticket.objects.count(), TicketEvent.objects.count(), OutboxMessage.objects.count())
    incidents = Incident.objects.count()
    again = _seed(tickets=60, seed=3)
    assert "already loaded" in again
    assert (Ticket.objects.count(), TicketEvent.objects.count(), OutboxMessage.objects.count()) == counts
    assert Incident.objects.count() == incidents


def test_seed_without_staff_still_loads_tickets(org, make_customer, catalogue):
    _customers(org, make_customer, n=12)
    output = _seed(tickets=40, seed=5)
    skipped = int(re.search(r"; (\d+) skipped\.", output).group(1))
    assert Ticket.objects.count() == 40 - skipped > 0
    assert not Interaction.objects.exists()  # an interaction needs an agent
    assert "no staff" in output
    assert Incident.objects.filter(restored_at__isnull=False).count() == 1


class _Undo(Exception):
    pass


def _run_and_undo(**options) -> list[tuple]:
    """What one run creates (keys, categories, channels, statuses, customers), then rolled back."""
    try:
        with transaction.atomic():
            _seed(**options)
            rows = sorted(
                Ticket.objects.values_list(
                    "intake_key__key", "category__code", "channel", "status", "customer_id"
                )
            )
            raise _Undo
    except _Undo:
        return rows


def test_seed_is_deterministic(org, make_customer, catalogue):
    _customers(org, make_customer, n=12)
    first = _run_and_undo(tickets=30, seed=9)
    assert not Ticket.objects.exists()
    assert len(first) > 20 and len({row[2] for row in first}) >= 3
    assert _run_and_undo(tickets=30, seed=9) == first
    assert _run_and_undo(tickets=30, seed=10) != first


def test_seed_without_customers_creates_nothing(org, catalogue):
    output = _seed(tickets=20, seed=1)
    assert "No customers" in output
    assert not Ticket.objects.exists()
    assert not Incident.objects.exists()
    assert not OutboxMessage.objects.exists()
