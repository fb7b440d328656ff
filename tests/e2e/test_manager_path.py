"""The manager's path in a real browser (Playwright driving the system's Chromium, headless): open the
dashboard from the admin's home page, choose a month, read the requests by channel, download that widget's
CSV, then download the tickets of one channel from the tickets list as XLSX, and check both files against
the database: the manager's corporation only, another corporation's tickets absent."""

from __future__ import annotations

import collections
import csv
import datetime as dt

import openpyxl
import pytest
from django.utils import timezone

from crm.models import Role, Unit
from reports import dashboard
from tests.e2e.conftest import log_in, needs_chromium, with_password
from tests.exported import by_column
from tickets.models import Channel, Ticket
from tickets.resources import TicketResource
from tickets.services import ticket_open

pytestmark = [needs_chromium, pytest.mark.django_db(transaction=True)]

START, END = dt.date(2025, 10, 1), dt.date(2025, 10, 31)


def at(day: dt.date, hour: int = 9) -> dt.datetime:
    return dt.datetime.combine(day, dt.time(hour), tzinfo=timezone.get_current_timezone())


def table(page, selector: str) -> list[list[str]]:
    return [
        [cell.inner_text().strip() for cell in row.locator("th, td").all()]
        for row in page.locator(f"{selector} tbody tr").all()
    ]


def test_a_manager_reads_the_dashboard_and_downloads_the_widget_and_the_ticket_exports(
    live_server, page, org, make_staff, make_customer, catalogue, tmp_path
):
    manager = with_password(make_staff(Role.MANAGER, [org["home"]], username="manager-q"), "a-good-pass-m")
    assert manager.has_perm("crm.view_dashboard")  # granted to the role by crm.roles
    people = {
        key: make_customer(org[key], name=f"Khách {n}", phones=[f"0903 640 00{n}"])
        for n, key in enumerate(["home", "sibling", "other_company", "other_corporation"])
    }
    plan = [  # (customer, channel, when): the tickets received
        ("home", "phone", at(dt.date(2025, 10, 3))),
        ("home", "app", at(dt.date(2025, 10, 10))),
        ("home", "phone", at(dt.date(2025, 10, 20))),
        ("sibling", "zalo", at(dt.date(2025, 10, 12))),
        ("other_company", "email", at(dt.date(2025, 10, 15))),
        ("other_company", "phone", at(dt.date(2025, 10, 31), hour=23)),
        ("other_corporation", "phone", at(dt.date(2025, 10, 5))),
        ("other_corporation", "sms", at(dt.date(2025, 10, 6))),
        ("home", "phone", at(dt.date(2025, 9, 30), hour=23)),  # the month before
        ("sibling", "phone", at(dt.date(2025, 11, 1), hour=0)),  # the month after
    ]
    made = [
        ticket_open(
            actor=None, category=catalogue["outage"], channel=channel, description="Mất điện",
            customer=people[key], at=when,
        ).ticket
        for key, channel, when in plan
    ]  # fmt: skip
    scope = set(Unit.objects.for_user(manager).values_list("pk", flat=True))
    assert org["other_company"].pk in scope and org["other_corporation"].pk not in scope
    in_period = [t for t in made if t.unit_id in scope and START <= timezone.localdate(t.created_at) <= END]
    expected = collections.Counter(t.channel for t in in_period)
    expected_rows = [
        [str(Channel(channel).label), count]
        for channel, count in sorted(expected.items(), key=lambda item: (-item[1], item[0]))
    ]
    assert expected_rows == [
        [r["label"], r["count"]] for r in dashboard.requests_by_channel(manager, START, END)
    ]

    # The dashboard, from the admin's home page, for October.
    log_in(page, live_server, "manager-q", "a-good-pass-m")
    page.click("#dashboard-module a")
    page.wait_for_selector("#widget-channels")
    page.fill("#id_start", START.isoformat())
    page.fill("#id_end", END.isoformat())
    page.select_option("#id_unit", "")  # all my units
    page.click(".dash-period input[type=submit]")
    page.wait_for_url(f"**start={START.isoformat()}**")
    shown = table(page, "#widget-channels")
    assert shown == [[label, dashboard.display(count)] for label, count in expected_rows]
    assert str(Channel.SMS.label) not in page.inner_text("#widget-channels table")  # the other corporation's

    # The widget's CSV.
    with page.expect_download() as download:
        page.click("#widget-channels .dash-export button:text-is('CSV')")  # its POST form
    saved = tmp_path / download.value.suggested_filename
    download.value.save_as(saved)
    assert saved.name == f"dashboard-channels-{START:%Y%m%d}-{END:%Y%m%d}.csv"
    with saved.open(encoding="utf-8-sig", newline="") as handle:
        header, *rows = list(csv.reader(handle))
    columns, _rows = dashboard.WIDGETS_BY_KEY["channels"].table(
        dashboard.requests_by_channel(manager, START, END)
    )
    assert header == columns
    assert rows == [[label, str(count)] for label, count in expected_rows]

    # The tickets list filtered to the phone, exported as XLSX.
    page.goto(f"{live_server.url}/admin/tickets/ticket/")
    page.click("#changelist-filter a[href*='channel__exact=phone']")
    page.wait_for_url("**channel__exact=phone**")
    page.click("a.export_link")
    page.wait_for_selector("#id_file_format")
    assert "channel__exact=phone" in page.inner_text("#content")  # the filter carried over
    page.select_option("#id_file_format", "xlsx")
    with page.expect_download() as download:
        page.click("#content form input[type=submit]")
    saved = tmp_path / download.value.suggested_filename
    download.value.save_as(saved)
    assert saved.suffix == ".xlsx"
    header, *rows = list(openpyxl.load_workbook(saved).worksheets[0].values)
    assert header == tuple(TicketResource().get_export_headers())
    got = by_column(dict(zip(header, row, strict=True)) for row in rows)
    phone = Ticket.objects.for_user(manager).filter(channel="phone")
    assert [r["number"] for r in got] == list(phone.order_by("-id").values_list("number", flat=True))
    assert {r["number"] for r in got} == {
        t.number for t in made if t.unit_id in scope and t.channel == "phone"
    }
    assert {r["channel"] for r in got} == {"phone"}
    assert {r["unit"] for r in got} <= set(Unit.objects.filter(pk__in=scope).values_list("code", flat=True))
    foreign = {t.number for t in made if t.unit_id not in scope}
    assert foreign and foreign.isdisjoint(r["number"] for r in got)
