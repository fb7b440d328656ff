"""The managers' dashboard: every widget's numbers, the scope, the permission, the query count, the charts."""

import csv
import dataclasses
import datetime as dt
import io

import pytest
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group, Permission
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils import timezone
from openpyxl import load_workbook

from billing import dashboard as billing_widgets
from billing.models import Invoice, RebateApplication, Refund
from core.exports import XLSX_CONTENT_TYPE
from crm import dashboard_widgets
from crm.models import Role
from crm.roles import group_name
from reports import dashboard
from reports.monthly import monthly_report_workbook
from tickets import dashboard as ticket_widgets
from tickets import services
from tickets.models import Interaction
from tickets.sla import sla_sweep

NOW = timezone.now().replace(microsecond=0)
T = NOW - dt.timedelta(hours=4)  # when the period's tickets came in
T0 = NOW - dt.timedelta(hours=5)  # when the outages started
START = timezone.localdate(NOW) - dt.timedelta(days=2)
END = timezone.localdate(NOW)


def minutes(n: int) -> dt.datetime:
    return T + dt.timedelta(minutes=n)


@pytest.fixture
def dashboard_permission(db):
    """What crm.roles will grant: the dashboard to supervisors and managers (administrators hold crm.*)."""
    permission = Permission.objects.get(content_type__app_label="crm", codename="view_dashboard")
    for role in (Role.SUPERVISOR, Role.MANAGER):
        Group.objects.get(name=group_name(role)).permissions.add(permission)


def _open(catalogue, customer, category, channel, at):
    return services.ticket_open(
        actor=None, category=catalogue[category], channel=channel, description="x", customer=customer, at=at
    ).ticket


@pytest.fixture
def activity(org, make_customer, catalogue, staff):
    """Tickets, interactions, callbacks and outages in the home unit and its sibling (one company), and some in
    another corporation that the home unit's staff never see."""
    home = make_customer(org["home"], name="Một", phones=["0912 000 301"])
    sibling = make_customer(org["sibling"], name="Hai", phones=["0912 000 302"])
    far = make_customer(org["other_corporation"], name="Ba", phones=["0912 000 303"])
    agent = staff[Role.AGENT]

    t1 = _open(catalogue, home, "outage", "phone", T)  # every limit met; satisfied
    services.ticket_change_status(actor=None, ticket=t1, to="acknowledged", at=minutes(1))
    services.ticket_record_contact(actor=None, ticket=t1, at=minutes(2))
    services.ticket_change_status(actor=None, ticket=t1, to="resolved", at=minutes(60))
    services.callback_record(
        actor=agent, ticket=t1, reached=True, fix_score=4, attitude_score=5, at=minutes(90)
    )

    t2 = _open(catalogue, home, "billing", "app", T)  # acknowledged late, never contacted (its contact missed), resolved in time
    services.ticket_change_status(actor=None, ticket=t2, to="acknowledged", at=minutes(10))
    services.ticket_change_status(actor=None, ticket=t2, to="resolved", at=minutes(30))
    for _ in range(3):
        services.callback_record(actor=agent, ticket=t2, reached=False, at=minutes(40))

    _open(catalogue, sibling, "outage", "zalo", T)  # left open: the sweep breaches all three, level 3
    _open(catalogue, home, "information", "email", NOW)  # just in: nothing due yet

    t6 = _open(catalogue, home, "outage", "phone", T)  # resolved after the 2-hour limit
    services.ticket_change_status(actor=None, ticket=t6, to="acknowledged", at=minutes(2))
    services.ticket_record_contact(actor=None, ticket=t6, at=minutes(3))
    services.ticket_change_status(actor=None, ticket=t6, to="resolved", at=minutes(200))
    services.callback_record(
        actor=agent, ticket=t6, reached=True, fix_score=2, attitude_score=3, at=minutes(210)
    )

    t5 = _open(catalogue, far, "outage", "phone", T)  # another corporation
    services.ticket_change_status(actor=None, ticket=t5, to="acknowledged", at=minutes(1))
    services.ticket_change_status(actor=None, ticket=t5, to="resolved", at=minutes(20))
    services.callback_record(  # by the far unit's own staff: the system here
        actor=None, ticket=t5, reached=True, fix_score=1, attitude_score=1, at=minutes(30)
    )
    sla_sweep(now=NOW)

    for unit, channel, seconds in [
        (org["home"], "phone", 120),
        (org["sibling"], "phone", 300),
        (org["home"], "chat", 60),
        (org["other_corporation"], "phone", 1000),
    ]:
        services.interaction_log(
            actor=agent, channel=channel, started_at=T, ended_at=T + dt.timedelta(seconds=seconds),
            disposition="ticket", unit=unit,
        )  # fmt: skip

    for unit, started, restored_after in [
        (org["home"], T0, 90),
        (org["sibling"], T0, 150),
        (org["home"], T0 + dt.timedelta(hours=4), None),
        (org["other_corporation"], T0, 30),
    ]:
        incident = services.incident_open(actor=None, unit=unit, cause="Sự cố", started_at=started)
        if restored_after is not None:
            services.incident_restore(
                actor=None, incident=incident, at=started + dt.timedelta(minutes=restored_after)
            )
    return org


def test_ticket_widgets_count_the_users_scope(activity, staff):
    # given the manager of the home unit's corporation (the other corporation's rows are not theirs)
    manager = staff[Role.MANAGER]
    home, sibling = activity["home"].code, activity["sibling"].code

    # when / then
    assert [(r["channel"], r["count"]) for r in dashboard.requests_by_channel(manager, START, END)] == [
        ("phone", 2), ("app", 1), ("email", 1), ("zalo", 1),
    ]  # fmt: skip
    assert dashboard.electronic_share(manager, START, END) == {
        "total": 5, "electronic": 3, "phone": 2, "share": 60.0,
    }  # fmt: skip
    assert [(r["category"], r["count"]) for r in dashboard.requests_by_category(manager, START, END)] == [
        ("outage", 3), ("billing", 1), ("information", 1),
    ]  # fmt: skip
    assert [(r["unit"], r["count"]) for r in dashboard.requests_by_unit(manager, START, END)] == [
        (home, 4), (sibling, 1),
    ]  # fmt: skip
    assert [(r["target"], r["reached"], r["met"], r["share"]) for r in dashboard.sla_compliance(manager, START, END)] == [
        ("acknowledge", 4, 2, 50.0), ("contact", 4, 2, 50.0), ("resolve", 4, 2, 50.0),
    ]  # fmt: skip
    assert [
        (r["unit"], r["acknowledge"], r["contact"], r["resolve"], r["resolve_reached"], r["resolve_met"])
        for r in dashboard.sla_by_unit(manager, START, END)
    ] == [(home, 66.7, 66.7, 66.7, 3, 2), (sibling, 0.0, 0.0, 0.0, 1, 0)]
    assert dashboard.open_breaches(manager, START, END) == [
        {"unit": sibling, "label": f"{sibling} – {activity['sibling'].name}", "open": 1, "breached": 1,
         "acknowledge": 1, "contact": 1, "resolve": 1, "level2": 0, "level3": 1},
        {"unit": home, "label": f"{home} – {activity['home'].name}", "open": 1, "breached": 0,
         "acknowledge": 0, "contact": 0, "resolve": 0, "level2": 0, "level3": 0},
    ]  # fmt: skip


def test_interaction_callback_and_outage_widgets(activity, staff):
    manager = staff[Role.MANAGER]
    home, sibling = activity["home"].code, activity["sibling"].code

    handling = dashboard.handling_time(manager, START, END)
    assert (handling["count"], handling["avg_seconds"]) == (3, 160.0)
    assert [(r["channel"], r["count"], r["avg_seconds"]) for r in handling["by_channel"]] == [
        ("phone", 2, 210.0), ("chat", 1, 60.0),
    ]  # fmt: skip
    assert dashboard.satisfaction(manager, START, END) == {
        "responses": 2, "unreachable": 1, "avg_fix": 3.0, "avg_attitude": 4.0,
    }  # fmt: skip
    outages = dashboard.outages(manager, START, END)
    assert {k: outages[k] for k in ("count", "restored", "within_2h", "avg_restore_minutes")} == {
        "count": 3, "restored": 2, "within_2h": 1, "avg_restore_minutes": 120.0,
    }  # fmt: skip
    assert [(r["unit"], r["count"], r["restored"], r["within_2h"], r["avg_restore_minutes"])
            for r in outages["by_unit"]] == [(home, 2, 1, 1, 90.0), (sibling, 1, 1, 0, 150.0)]  # fmt: skip


def test_one_unit_and_another_period_narrow_every_widget(activity, staff):
    manager, sibling = staff[Role.MANAGER], activity["sibling"]

    assert [(r["unit"], r["count"]) for r in dashboard.requests_by_unit(manager, START, END, sibling)] == [
        (sibling.code, 1)
    ]
    assert dashboard.handling_time(manager, START, END, sibling.pk)["avg_seconds"] == 300.0
    assert dashboard.outages(manager, START, END, sibling)["avg_restore_minutes"] == 150.0
    last_year = (START - dt.timedelta(days=400), START - dt.timedelta(days=370))
    assert dashboard.requests_by_channel(manager, *last_year) == []
    assert dashboard.satisfaction(manager, *last_year) == {
        "responses": 0, "unreachable": 0, "avg_fix": None, "avg_attitude": None,
    }  # fmt: skip
    assert dashboard.outages(manager, *last_year)["avg_restore_minutes"] is None


def test_another_companys_supervisor_sees_none_of_it_and_the_administrator_all(
    activity, staff, make_staff, org
):
    outsider = make_staff(Role.SUPERVISOR, [org["other_company"]])

    board = dashboard.Dashboard(outsider, START, END)
    assert board.requests_by_channel() == []
    assert board.sla_compliance()[0]["reached"] == 0
    assert board.open_breaches() == []
    assert board.handling_time()["count"] == 0
    assert board.satisfaction()["responses"] == 0
    assert board.outages()["count"] == 0
    # a unit outside the scope gives nothing either, nor does a user without a staff profile
    assert dashboard.requests_by_unit(outsider, START, END, org["home"]) == []
    nobody = get_user_model().objects.create_user(username="nobody", password="x-Pass-12345")
    assert [t.rows for t in dashboard.tables(nobody, START, END)] == [
        [], [[0, 0, 0, None]], [], [], [[label, 0, 0, None] for label in ("Acknowledge (3 min)",
        "Contact the customer (4 min)", "Resolve")], [], [], [], [[0, 0, None, None]], [], [[0, 0, 0, 0, 0, 0, 0, 0]],
        [[0, 0, 0, 0]], [],
    ]  # fmt: skip
    # the administrator sees the other corporation's rows too
    everything = dashboard.Dashboard(staff[Role.ADMINISTRATOR], START, END)
    assert everything.electronic_share()["total"] == 6
    assert everything.satisfaction()["responses"] == 3
    assert everything.outages()["count"] == 4


def test_billing_widgets(two_customers, staff, org):
    # given the billing history of two_customers: bands for 11/2025, a refund and a rebate made now
    manager = staff[Role.MANAGER]
    mine, _theirs = two_customers
    refund = Refund.objects.get(customer=mine)
    rebate = RebateApplication.objects.get(invoice__customer=mine)

    bands = dashboard.anomaly_bands(manager, dt.date(2025, 11, 1), dt.date(2025, 11, 30))
    assert bands == {
        "periods": 1, "compared": 1, "below_30": 0, "from_30": 0, "from_50": 0, "from_100": 0, "from_300": 1,
        "held": 1,
    }  # fmt: skip
    assert dashboard.anomaly_bands(manager, dt.date(2025, 10, 1), dt.date(2025, 10, 31))["compared"] == 0
    today = timezone.localdate()
    assert dashboard.refunds(manager, today, today) == {
        "count": 1, "amount": refund.amount, "settled": 0, "settled_amount": 0,
    }  # fmt: skip
    assert dashboard.rebates(manager, today, today) == {
        "count": 1, "amount": rebate.amount, "vat": rebate.vat,
        "by_programme": [{"programme": "Giảm giá điện", "count": 1, "amount": rebate.amount, "vat": rebate.vat}],
    }  # fmt: skip
    assert rebate.amount > 0 and refund.amount > 0
    everything = dashboard.Dashboard(staff[Role.ADMINISTRATOR], today, today)
    assert everything.refunds()["count"] == 2
    assert everything.rebates()["count"] == Invoice.objects.filter(rebates__isnull=False).count() == 2


def _page(client, user, **params):
    client.force_login(user)
    return client.get(reverse("dashboard"), {"start": START.isoformat(), "end": END.isoformat(), **params})


def _export(client, user, **params):
    """A widget's export as its form on the page sends it: a POST of the period, the widget and the format."""
    client.force_login(user)
    return client.post(reverse("dashboard"), {"start": START.isoformat(), "end": END.isoformat(), **params})


def test_the_page_shows_charts_and_tables(client, activity, staff, dashboard_permission):
    page = _page(client, staff[Role.SUPERVISOR])

    assert page.status_code == 200
    assert page.context["title"] == "Dashboard"
    widgets = {w["key"]: w for w in page.context["widgets"]}
    assert list(widgets) == [w.key for w in dashboard.WIDGETS]
    assert widgets["electronic"]["data"]["share"] == 60.0
    assert [[c["value"] for c in row] for row in widgets["channels"]["rows"]] == [
        ["Phone", "2"], ["Mobile app", "1"], ["Email", "1"], ["Zalo", "1"],
    ]  # fmt: skip
    assert [c["value"] for c in widgets["satisfaction"]["rows"][0]] == ["2", "1", "3.0", "4.0"]
    html = page.content.decode()
    assert html.count('<svg class="dash-chart') >= 8
    assert 'class="dash-line"' in html  # the SLA target and the 2-hour line
    assert "reports/dashboard.css" in html
    # each widget's CSV and XLSX: a POST form with the CSRF token and the period, widget and format
    assert html.count('<form method="post" action="/admin/dashboard/">') == 2 * len(dashboard.WIDGETS)
    buttons = [part.split("</div>")[0] for part in html.split('<div class="dash-export">')[1:]]
    assert len(buttons) == len(dashboard.WIDGETS)
    assert all(part.count('name="csrfmiddlewaretoken"') == 2 for part in buttons)
    assert html.count('<input type="hidden" name="export" value="channels">') == 2
    start_field = f'<input type="hidden" name="start" value="{START.isoformat()}">'
    assert html.count(start_field) == 2 * len(dashboard.WIDGETS)
    assert "export=" not in html  # no export link left


def test_the_period_defaults_to_this_month_and_units_are_the_scopes(
    client, activity, staff, dashboard_permission
):
    client.force_login(staff[Role.SUPERVISOR])

    page = client.get(reverse("dashboard"))

    first, last = dashboard.month_bounds(timezone.localdate())
    assert (page.context["form"].cleaned_data["start"], page.context["form"].cleaned_data["end"]) == (
        first,
        last,
    )
    units = {u.code for u in page.context["form"].fields["unit"].queryset}
    assert activity["home"].code in units and activity["sibling"].code in units
    assert activity["other_corporation"].code not in units
    bad = client.get(reverse("dashboard"), {"start": END.isoformat(), "end": START.isoformat()})
    assert bad.status_code == 200 and bad.context["widgets"] == []
    outside = client.get(reverse("dashboard"), {"unit": activity["other_corporation"].pk})
    assert "unit" in outside.context["form"].errors


def test_a_role_without_the_permission_gets_403_and_the_index_links_only_with_it(
    client, activity, staff, dashboard_permission
):
    assert _page(client, staff[Role.AGENT]).status_code == 403
    assert _export(client, staff[Role.BILLING_CLERK], export="channels").status_code == 403
    client.force_login(staff[Role.AGENT])
    assert reverse("dashboard") not in client.get(reverse("admin:index")).content.decode()
    client.force_login(staff[Role.MANAGER])
    assert reverse("dashboard") in client.get(reverse("admin:index")).content.decode()
    client.logout()
    assert client.get(reverse("dashboard")).status_code == 302  # to the login page


def test_export_streams_the_widgets_table_as_csv(client, activity, staff, dashboard_permission):
    response = _export(client, staff[Role.MANAGER], export="sla", format="csv")

    assert response.status_code == 200
    assert response["Content-Type"].startswith("text/csv")
    text = b"".join(response.streaming_content).decode("utf-8").lstrip("\ufeff")
    rows = list(csv.reader(io.StringIO(text)))
    assert rows == [
        ["time limit", "reached", "met", "compliance (%)"],
        ["Acknowledge (3 min)", "4", "2", "50.0"],
        ["Contact the customer (4 min)", "4", "2", "50.0"],
        ["Resolve", "4", "2", "50.0"],
    ]
    workbook = _export(client, staff[Role.MANAGER], export="sla", format="xlsx")
    assert workbook["Content-Type"] == XLSX_CONTENT_TYPE
    assert workbook["Content-Disposition"].endswith('.xlsx"')
    sheet = load_workbook(io.BytesIO(b"".join(workbook.streaming_content)), read_only=True).worksheets[0]
    assert [["" if v is None else str(v) for v in row] for row in sheet.iter_rows(values_only=True)] == rows
    assert _export(client, staff[Role.MANAGER], export="nope").status_code == 404
    assert _export(client, staff[Role.MANAGER]).status_code == 404  # no widget named
    backwards = client.post(
        reverse("dashboard"), {"start": END.isoformat(), "end": START.isoformat(), "export": "sla"}
    )
    assert backwards.status_code == 400


def test_the_page_runs_a_bounded_number_of_queries_whatever_the_rows(
    client, org, make_customer, catalogue, staff, dashboard_permission
):
    manager = staff[Role.MANAGER]
    customer = make_customer(org["home"], name="Bốn", phones=["0912 000 304"])
    _open(catalogue, customer, "outage", "phone", T)
    client.force_login(manager)
    url, period = reverse("dashboard"), {"start": START.isoformat(), "end": END.isoformat()}
    with CaptureQueriesContext(connection) as few:
        assert client.get(url, period).status_code == 200
    for channel in ("app", "zalo", "email", "sms", "chat", "portal"):
        ticket = _open(catalogue, customer, "billing", channel, T)
        services.ticket_change_status(actor=None, ticket=ticket, to="acknowledged", at=minutes(1))
        services.ticket_change_status(actor=None, ticket=ticket, to="resolved", at=minutes(5))
        services.callback_record(
            actor=None, ticket=ticket, reached=True, fix_score=5, attitude_score=5, at=minutes(10)
        )
        services.incident_open(actor=None, unit=org["sibling"], cause="x", started_at=T)
        services.interaction_log(actor=staff[Role.AGENT], channel=channel, started_at=T, ended_at=minutes(3),
                                 disposition="ticket", unit=org["other_company"])  # fmt: skip
    with CaptureQueriesContext(connection) as many:
        assert client.get(url, period).status_code == 200
    # the session, the user, their permissions and scope, the unit list, and one query per widget's grouping
    assert len(few) == len(many) <= 18, [q["sql"] for q in many.captured_queries]


def test_charts_escape_labels_and_draw_the_reference_line():
    svg = dashboard.bar_chart(
        [("<b>PE0100</b>", 150.0), ("PE0101", 60.0)], title="Restore", line=120, line_label="2 h",
        bad=lambda v: v > 120, suffix=" min",
    )  # fmt: skip

    assert "<b>" not in svg and "&lt;b&gt;PE0100&lt;/b&gt;" in svg
    assert svg.count('class="dash-bar bad"') == 1 and svg.count('class="dash-bar"') == 1
    assert 'class="dash-line"' in svg and "2 h" in svg
    assert dashboard.bar_chart([], title="x") == ""
    donut = dashboard.donut_chart([("A", 3, "dash-part-a"), ("B", 1, "dash-part-b")], title="t", centre="75%")
    assert "75%" in donut and "stroke-dasharray" in donut
    # the charts are drawn by templates: a quote in a title cannot leave its attribute
    quoted = dashboard.bar_chart([("x", 1.0)], title='a" onload="alert(1)')
    assert 'aria-label="a&quot; onload=&quot;alert(1)"' in quoted and 'onload="' not in quoted
    assert 'stroke-dasharray="226.19 150.8" stroke-dashoffset="0"' in dashboard.donut_chart(
        [("A", 3, "dash-part-a"), ("B", 2, "dash-part-b")], title="t", centre=""
    )


def test_the_apps_register_their_widgets_in_the_pages_order():
    assert [w.key for w in dashboard.WIDGETS] == [
        "channels", "electronic", "categories", "units", "sla", "sla_units", "breaches", "handling",
        "satisfaction", "outages", "anomalies", "refunds", "rebates",
    ]  # fmt: skip
    assert [*ticket_widgets.WIDGETS, *billing_widgets.WIDGETS] == dashboard.WIDGETS
    assert dashboard.WIDGETS is dashboard_widgets.WIDGETS
    assert {w.key: w for w in dashboard.WIDGETS} == dashboard.WIDGETS_BY_KEY
    # registering a widget again changes nothing; another widget under a taken key is refused
    dashboard_widgets.register(ticket_widgets.WIDGETS[0])
    assert [w.key for w in dashboard.WIDGETS].count("channels") == 1
    with pytest.raises(ValueError):
        dashboard_widgets.register(dataclasses.replace(ticket_widgets.WIDGETS[0], position=1))
    assert dashboard.WIDGETS_BY_KEY["channels"] is ticket_widgets.WIDGETS[0]


def callers(board):
    """The callers of the period: one per interaction."""
    return board.scoped(
        Interaction.objects.filter(started_at__gte=board.begin, started_at__lt=board.stop)
    ).count()


def test_a_widget_registered_by_an_app_shows_on_the_page_and_in_the_monthly_report(
    client, activity, staff, dashboard_permission
):
    # given an app's widget placed between the SLA by unit and the open breaches
    extra = dashboard_widgets.Widget(
        key="callers", title="Callers", position=65, data=callers,
        table=lambda n: (["callers"], [[n]]),
        chart=lambda n, title: dashboard.bar_chart([("callers", n)], title=title),
    )  # fmt: skip
    dashboard_widgets.register(extra)
    try:
        # when the manager opens the page, and the month's workbook is built
        page = _page(client, staff[Role.MANAGER])
        workbook, _rows = monthly_report_workbook(staff[Role.MANAGER], START)
        export = _export(client, staff[Role.MANAGER], export="callers")

        # then it shows where its position puts it, with what its query counted in the manager's scope
        keys = [w["key"] for w in page.context["widgets"]]
        assert keys[keys.index("sla_units") + 1 : keys.index("breaches")] == ["callers"]
        shown = next(w for w in page.context["widgets"] if w["key"] == "callers")
        assert shown["data"] == dashboard.callers(staff[Role.MANAGER], START, END) == 3
        assert dashboard.Dashboard(staff[Role.MANAGER], START, END).callers() == 3
        assert [[c["value"] for c in row] for row in shown["rows"]] == [["3"]]
        assert 'class="dash-bar"' in str(shown["chart"])
        sheets = load_workbook(io.BytesIO(workbook), read_only=True).sheetnames
        assert sheets[sheets.index("SLA compliance by unit") + 1] == "Callers"
        assert export.status_code == 200
        assert b"".join(export.streaming_content).decode("utf-8").lstrip("\ufeff").split() == ["callers", "3"]
    finally:
        dashboard_widgets.unregister("callers")
    # once unregistered it is gone from the page, its export and the module's selectors
    assert "callers" not in [w.key for w in dashboard.WIDGETS]
    assert [w["key"] for w in _page(client, staff[Role.MANAGER]).context["widgets"]] == [
        w.key for w in dashboard.WIDGETS
    ]
    assert _export(client, staff[Role.MANAGER], export="callers").status_code == 404
    with pytest.raises(AttributeError):
        dashboard.callers  # noqa: B018


def test_a_formula_like_label_reads_the_same_in_the_dashboards_workbook_and_the_monthly_reports(client, staff):
    """A table's text that looks like a formula ("=1+2": a category, unit or programme so named) is inline text
    in a workbook, never run: the dashboard's XLSX shows it as the monthly report's workbook does, with no
    quote added (the CSV quotes it, by the list exports' rule)."""
    extra = dashboard_widgets.Widget(
        key="formula_labels", title="Formula labels", position=999, data=lambda board: "=1+2",
        table=lambda label: (["label"], [[label]]),
    )  # fmt: skip
    dashboard_widgets.register(extra)
    try:
        client.force_login(staff[Role.MANAGER])
        params = {"start": "2025-10-01", "end": "2025-10-31", "export": "formula_labels"}
        response = client.post(reverse("dashboard"), {**params, "format": "xlsx"})
        sheet = load_workbook(io.BytesIO(b"".join(response.streaming_content))).active
        as_csv = client.post(reverse("dashboard"), {**params, "format": "csv"})
        monthly, _rows = monthly_report_workbook(staff[Role.MANAGER], dt.date(2025, 10, 1))
        monthly_cell = load_workbook(io.BytesIO(monthly))["Formula labels"].cell(row=3, column=1).value
    finally:
        dashboard_widgets.unregister("formula_labels")
    assert (sheet.cell(row=2, column=1).value, monthly_cell) == ("=1+2", "=1+2")
    assert list(csv.reader(io.StringIO(b"".join(as_csv.streaming_content).decode().removeprefix("\ufeff"))))[1] == [
        "'=1+2"
    ]
