"""The dashboard's exports are started only by the page's own forms: a POST with the CSRF token. A link from another
site (a top-level GET navigation carries the SameSite=Lax session cookie) shows the page and neither streams a file
nor writes the export log in the name of whoever follows it, as the lists' exports need a POST with the token."""

from __future__ import annotations

import csv
import io
from html.parser import HTMLParser

import pytest
from django.contrib.auth.models import Group, Permission
from django.test import Client
from django.urls import reverse
from django.utils import timezone

from crm.models import ExportKind, ExportLog, ExportStatus, Role
from crm.roles import group_name
from reports import dashboard
from tickets.services import ticket_open


@pytest.fixture
def dashboard_permission(db):
    permission = Permission.objects.get(content_type__app_label="crm", codename="view_dashboard")
    for role in (Role.SUPERVISOR, Role.MANAGER):
        Group.objects.get(name=group_name(role)).permissions.add(permission)


class _Forms(HTMLParser):
    """The POST forms of a page: each one's action and the fields it sends (name, value)."""

    def __init__(self):
        super().__init__()
        self.forms: list[dict] = []

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        if tag == "form" and attrs.get("method") == "post":
            self.forms.append({"action": attrs.get("action"), "fields": {}})
        elif tag == "input" and self.forms and attrs.get("type") == "hidden":
            self.forms[-1]["fields"][attrs["name"]] = attrs.get("value", "")


def _export_forms(html: str) -> list[dict]:
    parser = _Forms()
    parser.feed(html)
    return [f for f in parser.forms if "export" in f["fields"]]


def test_a_cross_site_get_does_not_write_an_export_in_the_managers_name(staff, dashboard_permission):
    client = Client(enforce_csrf_checks=True)
    client.force_login(staff[Role.MANAGER])
    # a link on another site, followed by the manager's browser
    response = client.get(
        reverse("dashboard"),
        {"export": "sla", "format": "xlsx"},
        headers={"referer": "https://evil.example/"},
    )
    # the page as without the parameters: no file, nothing logged
    assert response.status_code == 200
    assert not hasattr(response, "streaming_content")
    assert response["Content-Type"].startswith("text/html")
    assert [w["key"] for w in response.context["widgets"]] == [w.key for w in dashboard.WIDGETS]
    assert not ExportLog.objects.exists()
    # also for a widget that does not exist, or a period that is not one
    assert client.get(reverse("dashboard"), {"export": "nope"}).status_code == 200
    backwards = client.get(
        reverse("dashboard"), {"start": "2026-02-01", "end": "2026-01-01", "export": "sla"}
    )
    assert backwards.status_code == 200 and backwards.context["widgets"] == []
    assert not ExportLog.objects.exists()


def test_a_post_without_the_pages_csrf_token_exports_nothing(staff, dashboard_permission):
    client = Client(enforce_csrf_checks=True)
    client.force_login(staff[Role.MANAGER])
    start, end = dashboard.month_bounds(timezone.localdate())
    response = client.post(
        reverse("dashboard"),
        {"start": start.isoformat(), "end": end.isoformat(), "export": "sla", "format": "csv"},
        headers={"referer": "https://evil.example/"},
    )
    assert response.status_code == 403
    assert not ExportLog.objects.exists()


def test_the_widgets_form_on_the_page_downloads_its_table_and_logs_it(
    staff, org, catalogue, make_customer, dashboard_permission
):
    # given tickets by phone and by the app in the manager's unit this month
    customer = make_customer(org["home"])
    for channel in ("phone", "phone", "app"):
        ticket_open(
            actor=None, category=catalogue["outage"], channel=channel, description="x", customer=customer
        )
    manager = staff[Role.MANAGER]
    client = Client(enforce_csrf_checks=True)
    client.force_login(manager)
    start, end = dashboard.month_bounds(timezone.localdate())
    unit = org["home"]

    # when the manager shows the month for the home unit and presses the channels widget's CSV button
    page = client.get(
        reverse("dashboard"), {"start": start.isoformat(), "end": end.isoformat(), "unit": unit.pk}
    )
    forms = _export_forms(page.content.decode())
    assert len(forms) == 2 * len(dashboard.WIDGETS)
    (csv_form,) = [f for f in forms if f["fields"]["export"] == "channels" and f["fields"]["format"] == "csv"]
    fields = csv_form["fields"]
    assert {k: v for k, v in fields.items() if k != "csrfmiddlewaretoken"} == {
        "start": start.isoformat(), "end": end.isoformat(), "unit": str(unit.pk), "export": "channels",
        "format": "csv",
    }  # fmt: skip
    assert fields["csrfmiddlewaretoken"]
    response = client.post(csv_form["action"], fields)

    # then the file is the widget's table for that unit and period, and the log says so
    assert response.status_code == 200
    assert response["Content-Type"].startswith("text/csv")
    rows = list(csv.reader(io.StringIO(b"".join(response.streaming_content).decode().removeprefix("\ufeff"))))
    table = dashboard.widget_table(
        dashboard.Dashboard(manager, start, end, unit), dashboard.WIDGETS_BY_KEY["channels"]
    )
    assert rows == [list(table.columns), *[[str(v) for v in row] for row in table.rows]]
    assert len(table.rows) == 2
    log = ExportLog.objects.get()
    assert (log.user, log.kind, log.source, log.file_format, log.row_count, log.status) == (
        manager, ExportKind.DASHBOARD, "dashboard.channels", "csv", 2, ExportStatus.COMPLETE
    )  # fmt: skip
    assert log.filters == (
        f"start={start.isoformat()}&end={end.isoformat()}&unit={unit.pk}&export=channels&format=csv"
    )
