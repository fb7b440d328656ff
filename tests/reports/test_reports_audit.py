"""The reports audit: SLA compliance leaves out the breach flags of tickets cancelled or marked a duplicate (one
rule for the overall and per-unit figures and the monthly workbook), the outage restore times count an outage
only once it has started, and the monthly e-mail counts the units in service, not those merged away."""

from __future__ import annotations

import datetime as dt
import io

import pytest
from django.utils import timezone
from openpyxl import load_workbook

from crm.models import OutboxMessage, Role, Unit
from reports import dashboard, monthly
from reports.monthly import monthly_report_workbook
from tickets import services
from tickets.models import Incident, Ticket
from tickets.sla import sla_sweep

T0 = timezone.make_aware(dt.datetime(2026, 3, 10, 9, 0))
MARCH = (dt.date(2026, 3, 1), dt.date(2026, 3, 31))


def _minutes(n: int) -> dt.datetime:
    return T0 + dt.timedelta(minutes=n)


def _open(catalogue, customer, at):
    return services.ticket_open(
        actor=None, category=catalogue["outage"], channel="phone", description="Mất điện", customer=customer, at=at
    ).ticket  # fmt: skip


def _figures(manager) -> dict[str, tuple]:
    return {
        r["target"]: (r["reached"], r["met"], r["share"]) for r in dashboard.sla_compliance(manager, *MARCH)
    }


def _workbook_sla_rows(manager) -> list[tuple]:
    """The SLA sheet of March's workbook: (reached, met, share) per target, in the table's order."""
    workbook = load_workbook(io.BytesIO(monthly_report_workbook(manager, MARCH[0])[0]))
    sheet = workbook.worksheets[[w.key for w in dashboard.WIDGETS].index("sla")]
    return [tuple(row[1:4]) for row in sheet.iter_rows(min_row=3, values_only=True)]


def _close(ticket, closed_as: str, request, at):
    if closed_as == "duplicate":
        services.ticket_change_status(actor=None, ticket=ticket, to="duplicate", duplicate_of=request, at=at)
    else:
        services.ticket_change_status(actor=None, ticket=ticket, to="cancelled", note="Khách gọi nhầm", at=at)


# 1. Cancelled and duplicate tickets ---------------------------------------------------------------------------


@pytest.mark.parametrize("closed_as", ["duplicate", "cancelled"])
def test_a_ticket_closed_as_duplicate_or_cancelled_is_not_a_missed_deadline(
    org, make_customer, catalogue, staff, closed_as
):
    # given one request acknowledged in 1 minute and called back in 2, and the customer's repeat call, which
    # the sweep flags as neither acknowledged nor called back before the agent closes it
    customer = make_customer(org["home"])
    request = _open(catalogue, customer, T0)
    services.ticket_change_status(actor=None, ticket=request, to="acknowledged", at=_minutes(1))
    services.ticket_record_contact(actor=None, ticket=request, at=_minutes(2))
    repeat = _open(catalogue, customer, _minutes(1))
    sla_sweep(now=_minutes(10))
    flagged = Ticket.objects.get(pk=repeat.pk)
    assert flagged.acknowledge_breached and flagged.contact_breached

    # when the repeat call is marked a duplicate of the request, or cancelled
    _close(repeat, closed_as, request, _minutes(11))

    # then every limit the one request reached was met, on the dashboard, per unit and in the workbook
    manager = staff[Role.MANAGER]
    figures = _figures(manager)
    assert figures["acknowledge"] == (1, 1, 100.0)
    assert figures["contact"] == (1, 1, 100.0)
    assert figures["resolve"] == (0, 0, None)
    (unit_row,) = dashboard.sla_by_unit(manager, *MARCH)
    for target in ("acknowledge", "contact"):
        assert (unit_row[f"{target}_reached"], unit_row[f"{target}_met"], unit_row[target]) == (1, 1, 100.0)
    acknowledge, contact, _resolve = _workbook_sla_rows(manager)
    assert acknowledge == (1, 1, 100.0) and contact == (1, 1, 100.0)


def test_the_result_does_not_depend_on_whether_the_sweep_ran_before_the_ticket_was_cancelled(
    org, make_customer, catalogue, staff
):
    customer = make_customer(org["home"])
    swept_first = _open(catalogue, customer, T0)
    sla_sweep(now=_minutes(10))
    _close(swept_first, "cancelled", None, _minutes(11))
    cancelled_first = _open(catalogue, customer, _minutes(20))
    _close(cancelled_first, "cancelled", None, _minutes(21))
    sla_sweep(now=_minutes(30))

    assert Ticket.objects.get(pk=swept_first.pk).acknowledge_breached
    assert _figures(staff[Role.MANAGER])["acknowledge"] == (0, 0, None)
    assert _figures(staff[Role.MANAGER])["contact"] == (0, 0, None)


def test_a_cancelled_ticket_still_counts_a_step_done_late_or_in_time(org, make_customer, catalogue, staff):
    # given a ticket acknowledged in time but called back after 9 minutes (the limit is 4), then cancelled
    customer = make_customer(org["home"])
    ticket = _open(catalogue, customer, T0)
    services.ticket_change_status(actor=None, ticket=ticket, to="acknowledged", at=_minutes(2))
    sla_sweep(now=_minutes(6))
    services.ticket_record_contact(actor=None, ticket=ticket, at=_minutes(9))
    services.ticket_change_status(
        actor=None, ticket=ticket, to="cancelled", note="Khách tự xử lý", at=_minutes(10)
    )

    # then both steps were done: the acknowledgement met, the late call missed
    figures = _figures(staff[Role.MANAGER])
    assert figures["acknowledge"] == (1, 1, 100.0)
    assert figures["contact"] == (1, 0, 0.0)
    assert _workbook_sla_rows(staff[Role.MANAGER])[:2] == [(1, 1, 100.0), (1, 0, 0.0)]


def test_a_deadline_missed_in_an_earlier_cycle_still_counts_when_the_reopened_ticket_is_cancelled(
    org, make_customer, catalogue, staff
):
    # given an outage ticket resolved after 200 minutes (the limit is 2 hours), reopened, then cancelled
    customer = make_customer(org["home"])
    ticket = _open(catalogue, customer, T0)
    services.ticket_change_status(actor=None, ticket=ticket, to="acknowledged", at=_minutes(1))
    services.ticket_record_contact(actor=None, ticket=ticket, at=_minutes(2))
    sla_sweep(now=_minutes(130))
    services.ticket_change_status(actor=None, ticket=ticket, to="resolved", at=_minutes(200))
    services.ticket_change_status(
        actor=None, ticket=ticket, to="reopened", note="Lại mất điện", at=_minutes(210)
    )
    services.ticket_change_status(
        actor=None, ticket=ticket, to="cancelled", note="Gọi nhầm", at=_minutes(215)
    )
    assert Ticket.objects.get(pk=ticket.pk).resolve_missed_before is not None

    # then the first cycle's late resolution still counts as a missed deadline
    assert _figures(staff[Role.MANAGER])["resolve"] == (1, 0, 0.0)
    (unit_row,) = dashboard.sla_by_unit(staff[Role.MANAGER], *MARCH)
    assert (unit_row["resolve_reached"], unit_row["resolve_met"]) == (1, 0)


def test_an_open_ticket_past_its_deadline_still_counts_as_missed(org, make_customer, catalogue, staff):
    customer = make_customer(org["home"])
    _open(catalogue, customer, T0)
    sla_sweep(now=_minutes(10))
    figures = _figures(staff[Role.MANAGER])
    assert figures["acknowledge"] == (1, 0, 0.0) and figures["contact"] == (1, 0, 0.0)


# 2. Outages not started yet -----------------------------------------------------------------------------------


def test_a_planned_outage_not_started_yet_is_not_an_unrestored_incident(org, staff, catalogue):
    now = timezone.now()
    planned = services.incident_open(
        actor=None, unit=org["home"], cause="Cắt điện theo kế hoạch để bảo trì lưới",
        started_at=now + dt.timedelta(days=2), estimated_restore_at=now + dt.timedelta(days=2, hours=4),
    )  # fmt: skip
    today = timezone.localdate()
    period = (today - dt.timedelta(days=1), today + dt.timedelta(days=30))
    data = dashboard.outages(staff[Role.MANAGER], *period)
    assert (data["count"], data["restored"], data["by_unit"]) == (0, 0, [])

    # once it has started it counts, still waiting for its restore
    Incident.objects.filter(pk=planned.pk).update(started_at=now - dt.timedelta(minutes=30))
    data = dashboard.outages(staff[Role.MANAGER], *period)
    assert (data["count"], data["restored"]) == (1, 0)
    assert [(r["unit"], r["count"], r["restored"]) for r in data["by_unit"]] == [(org["home"].code, 1, 0)]


def test_an_outage_that_started_counts_beside_a_planned_one_still_ahead(org, staff, catalogue):
    now = timezone.now()
    services.incident_open(
        actor=None, unit=org["home"], cause="Sự cố đường dây trung thế",
        started_at=now - dt.timedelta(minutes=30), estimated_restore_at=now + dt.timedelta(hours=1),
    )  # fmt: skip
    services.incident_open(
        actor=None, unit=org["home"], cause="Cắt điện theo kế hoạch để bảo trì lưới",
        started_at=now + dt.timedelta(hours=3), estimated_restore_at=now + dt.timedelta(hours=5),
    )  # fmt: skip
    today = timezone.localdate()
    data = dashboard.outages(staff[Role.MANAGER], today - dt.timedelta(days=1), today + dt.timedelta(days=1))
    assert (data["count"], data["restored"]) == (1, 0)


# 3. The monthly e-mail's unit count ---------------------------------------------------------------------------


def test_the_mail_counts_the_units_in_service_not_the_ones_merged_away(org, make_staff):
    successor = org["other_corporation"]  # took over Điện lực Sơn Hòa (the reference data's merge)
    manager = make_staff(Role.MANAGER, [successor])
    manager.email = "quanly@example.vn"
    manager.save(update_fields=["email"])
    today = timezone.localdate()
    corporation_units = Unit.objects.filter(company__corporation=successor.company.corporation)
    in_service = corporation_units.exclude(valid_to__lt=today).count()
    merged_away = corporation_units.filter(valid_to__lt=today).count()
    assert merged_away  # the reference data has the merge this test is about

    assert monthly.monthly_reports_send(month=dt.date(2026, 3, 1)) == 1
    body = OutboxMessage.objects.get(recipient="quanly@example.vn").body
    assert f" {in_service} " in body, body
    assert f" {in_service + merged_away} " not in body, body


def test_a_merge_entered_ahead_of_its_day_does_not_change_the_count_yet(org, make_staff):
    # given a unit of the home corporation that will merge into another tomorrow
    home_units = Unit.objects.filter(company__corporation=org["home"].company.corporation)
    today = timezone.localdate()
    before = home_units.exclude(valid_to__lt=today).count()
    leaving = home_units.exclude(pk=org["home"].pk).filter(valid_to__isnull=True).first()
    Unit.objects.filter(pk=leaving.pk).update(successor=org["home"], valid_to=today + dt.timedelta(days=1))
    manager = make_staff(Role.MANAGER, [org["home"]])
    manager.email = "quanly-hcm@example.vn"
    manager.save(update_fields=["email"])

    monthly.monthly_reports_send(month=dt.date(2026, 3, 1))
    body = OutboxMessage.objects.get(recipient="quanly-hcm@example.vn").body
    assert f" {before} " in body, body
