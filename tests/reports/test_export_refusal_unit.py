"""A dashboard export refused because of its unit says so (the form's own error for the unit), not that the
period is wrong; a period that is wrong is still named as the period. Nothing is exported or logged."""

from __future__ import annotations

import pytest
from django.contrib.auth.models import Group, Permission
from django.test import Client
from django.urls import reverse
from django.utils import timezone
from django.utils.translation import override

from crm.models import ExportLog, Role
from crm.roles import group_name
from crm.services import staff_update
from reports import dashboard


@pytest.fixture
def dashboard_permission(db):
    permission = Permission.objects.get(content_type__app_label="crm", codename="view_dashboard")
    for role in (Role.SUPERVISOR, Role.MANAGER):
        Group.objects.get(name=group_name(role)).permissions.add(permission)


def _period():
    start, end = dashboard.month_bounds(timezone.localdate())
    return {"start": start.isoformat(), "end": end.isoformat()}


def _export(client, **params):
    return client.post(reverse("dashboard"), {**params, "export": "sla", "format": "csv"})


def test_a_widget_export_for_a_unit_no_longer_served_names_the_unit_not_the_period(
    org, make_staff, dashboard_permission
):
    # given a supervisor of the home unit's company who shows this month's dashboard for a sibling unit
    supervisor = make_staff(Role.SUPERVISOR, [org["home"]])
    client = Client()
    client.force_login(supervisor)
    sibling = org["sibling"]
    page = client.get(reverse("dashboard"), {**_period(), "unit": sibling.pk})
    assert page.status_code == 200 and page.context["widgets"]
    # when the supervisor is moved to another corporation's unit, then presses a widget's CSV button on that page
    staff_update(actor=None, user=supervisor, role=Role.SUPERVISOR, units=[org["other_corporation"]])
    response = _export(client, **_period(), unit=sibling.pk)
    # then nothing is exported, and the refusal names what is wrong: the unit (the period is a valid one)
    assert response.status_code == 400
    assert not hasattr(response, "streaming_content")
    assert not ExportLog.objects.exists()
    message = response.content.decode()
    assert response["Content-Type"].startswith("text/plain")
    assert message == (
        "Unit: Select a valid choice. That choice is not one of the available choices. "
        "Reload the dashboard and choose one of your units."
    )


def test_a_unit_posted_from_outside_the_scope_and_a_wrong_period_are_both_named(
    org, make_staff, dashboard_permission
):
    client = Client()
    client.force_login(make_staff(Role.SUPERVISOR, [org["home"]]))
    period = _period()
    backwards = {"start": period["end"], "end": period["start"]}
    response = _export(client, **backwards, unit=org["other_corporation"].pk)
    assert response.status_code == 400
    assert response.content.decode().splitlines() == [
        "Choose a valid period first.",
        "Unit: Select a valid choice. That choice is not one of the available choices. "
        "Reload the dashboard and choose one of your units.",
    ]
    assert not ExportLog.objects.exists()


def test_a_wrong_period_alone_is_still_named_as_the_period(org, make_staff, dashboard_permission):
    client = Client()
    client.force_login(make_staff(Role.SUPERVISOR, [org["home"]]))
    period = _period()
    response = _export(client, start=period["end"], end=period["start"], unit=org["sibling"].pk)
    assert (response.status_code, response.content.decode()) == (400, "Choose a valid period first.")
    assert not ExportLog.objects.exists()


def test_the_unit_that_is_still_served_exports(org, make_staff, dashboard_permission):
    client = Client()
    client.force_login(make_staff(Role.SUPERVISOR, [org["home"]]))
    response = _export(client, **_period(), unit=org["sibling"].pk)
    assert response.status_code == 200 and hasattr(response, "streaming_content")
    b"".join(response.streaming_content)
    assert ExportLog.objects.count() == 1


def test_the_unit_refusal_is_in_vietnamese_for_a_vietnamese_page(org, make_staff, dashboard_permission):
    client = Client()
    client.force_login(make_staff(Role.SUPERVISOR, [org["home"]]))
    with override("vi"):
        response = client.post(
            reverse("dashboard"),
            {**_period(), "unit": org["other_corporation"].pk, "export": "sla", "format": "csv"},
            HTTP_ACCEPT_LANGUAGE="vi",
        )
    assert response.status_code == 400
    assert response.content.decode().startswith("Đơn vị:")
