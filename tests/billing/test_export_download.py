"""An export's file is downloaded only by whom may still read all it lists: the exported list's view
permission and every unit the file covers, checked again at each download."""

from __future__ import annotations

import pytest
from django.urls import reverse

from billing import services as billing
from billing.models import AuditRecord, BillingJob
from crm.models import ExportLog, Role
from crm.scoping import scope_for
from crm.services import staff_update
from tests.billing.conftest import OCT

REFUSED_UNITS = "This file lists records of units you no longer see: it is not downloaded. Export the list again " \
    "for your units."  # fmt: skip


@pytest.fixture
def exported(client, org, make_customer, read, make_staff, django_capture_on_commit_callbacks):
    """A clerk of the home unit exported its 3 bills in the background; the client is logged in as the clerk."""
    clerk = make_staff(Role.BILLING_CLERK, [org["home"]])
    for i in range(3):
        read(make_customer(phones=[f"0903 640 00{i}"]), OCT, 150)
    billing.billing_run(actor=None, period=OCT)
    client.force_login(clerk)
    with django_capture_on_commit_callbacks(execute=True):
        client.post(reverse("admin:billing_invoice_export_job"), {"file_format": "csv"})
    job = BillingJob.objects.get(kind="export")
    assert (job.status, job.result) == ("done", {"rows": 3})
    return clerk, job


def _download(client, job):
    return client.get(reverse("admin:billing_billingjob_download", args=[job.pk]))


def org_units(user) -> list[int]:
    return sorted(scope_for(user).unit_ids)


def _state(job):
    job.refresh_from_db()
    return (job.status, job.params, job.file.name, AuditRecord.objects.count(),
            list(ExportLog.objects.values_list("pk", "status", "row_count")))  # fmt: skip


def test_an_export_records_the_units_it_covers(exported):
    clerk, job = exported
    assert org_units(clerk) == job.params["reach"]
    assert job.params["reach"]  # the home unit (and any unit merged into it)


def test_an_export_is_not_downloaded_by_its_starter_once_they_serve_another_unit(client, exported, org):
    clerk, job = exported
    assert _download(client, job).status_code == 200
    before = _state(job)
    # when: the clerk is moved to a unit of another corporation
    staff_update(actor=None, user=clerk, role=Role.BILLING_CLERK, units=[org["other_corporation"]])
    response = _download(client, job)
    # then: 403 with the reason; the job is still theirs to follow, and nothing changed
    assert response.status_code == 403
    assert response.context["reason"] == REFUSED_UNITS
    assert REFUSED_UNITS in response.content.decode()
    assert client.get(reverse("admin:billing_billingjob_status", args=[job.pk])).status_code == 200
    assert _state(job) == before


def test_an_export_is_still_downloaded_by_its_starter_who_serves_one_more_unit(client, exported, org):
    clerk, job = exported
    staff_update(actor=None, user=clerk, role=Role.BILLING_CLERK, units=[org["home"], org["sibling"]])
    download = _download(client, job)
    assert download.status_code == 200
    assert len(b"".join(download.streaming_content).decode("utf-8-sig").splitlines()) == 1 + 3


def test_an_export_is_not_downloaded_once_its_starter_may_not_see_the_list(client, exported, org):
    clerk, job = exported
    before = _state(job)
    # the clerk becomes an agent of the same unit: bills are no longer theirs to see
    staff_update(actor=None, user=clerk, role=Role.AGENT, units=[org["home"]])
    response = _download(client, job)
    assert response.status_code == 403
    assert response.context["reason"] == (
        "You may no longer see the list this file was exported from: it is not downloaded."
    )
    assert _state(job) == before


def test_an_administrator_downloads_any_export(client, exported, make_staff):
    _clerk, job = exported
    client.force_login(make_staff(Role.ADMINISTRATOR, []))
    assert _download(client, job).status_code == 200


def test_an_export_written_before_its_reach_was_recorded_is_exported_again(client, exported, make_staff):
    _clerk, job = exported
    params = {key: value for key, value in job.params.items() if key != "reach"}
    BillingJob.objects.filter(pk=job.pk).update(params=params)
    response = _download(client, job)
    assert response.status_code == 403
    assert response.context["reason"] == (
        "This file was written before exports recorded the units they cover: export the list again."
    )
    client.force_login(make_staff(Role.ADMINISTRATOR, []))
    assert _download(client, job).status_code == 200
