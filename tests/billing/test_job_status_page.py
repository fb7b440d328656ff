"""A billing job's status page: opened by whom may read the billing jobs (as the jobs' list), and showing each
kind of job its own result: a billing run's and an anomaly scan's per-unit table, an export's count of rows."""

from __future__ import annotations

import re

import pytest
from django.urls import reverse

from billing import jobs
from billing import services as billing
from billing.models import BillingJob
from crm.models import Role
from crm.services import staff_update
from tests.billing.conftest import NOV, OCT

VI = {"HTTP_ACCEPT_LANGUAGE": "vi"}


def status_url(job: BillingJob) -> str:
    return reverse("admin:billing_billingjob_status", args=[job.pk])


def cells(html: str, element_id: str) -> list[str]:
    """The texts of the header and data cells of the element with that id, in order."""
    found = re.search(rf'id="{element_id}".*?</table>', html, re.S)
    assert found, element_id
    return [re.sub(r"<[^>]+>", "", c).strip() for c in re.findall(r"<t[hd][^>]*>(.*?)</t[hd]>", found.group(0), re.S)]


# Who opens it ------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("role", [Role.AGENT, Role.DISPATCHER, Role.FIELD_CREW])
def test_a_role_without_billing_rights_does_not_open_a_billing_jobs_status_page(client, staff, two_customers, role):
    # given: the billing run of the home unit's October (the shared fixture runs one per unit), and a member of
    # staff of that unit whose role reads nothing of billing (no billing.view_billingjob, no invoice either)
    mine, _theirs = two_customers
    job = BillingJob.objects.get(unit=mine.unit, kind="billing_run")
    user = staff[role]
    assert not user.has_perm("billing.view_billingjob") and not user.has_perm("billing.view_invoice")
    client.force_login(user)
    # when: they type the job's status address
    listing = client.get(reverse("admin:billing_billingjob_changelist"))
    page = client.get(status_url(job))
    # then: refused as the jobs' list is (403), and the run's result (invoices made, held, per unit) not shown
    assert listing.status_code == 403
    assert page.status_code == 403
    assert 'id="job-result"' not in page.content.decode()


@pytest.mark.parametrize("role", [Role.SUPERVISOR, Role.BILLING_CLERK, Role.MANAGER, Role.ADMINISTRATOR])
def test_the_billing_roles_open_a_billing_runs_status_page(client, staff, two_customers, role):
    mine, _theirs = two_customers
    job = BillingJob.objects.get(unit=mine.unit, kind="billing_run")
    client.force_login(staff[role])
    page = client.get(status_url(job))
    assert page.status_code == 200
    assert 'id="job-result"' in page.content.decode()


def test_a_clerk_made_agent_after_starting_a_run_no_longer_opens_its_page(
    client, org, make_staff, make_customer, read, django_capture_on_commit_callbacks
):
    # given: a clerk runs the home unit's October and follows the job
    clerk = make_staff(Role.BILLING_CLERK, [org["home"]])
    read(make_customer(phones=["0903 650 001"]), OCT, 120)
    client.force_login(clerk)
    with django_capture_on_commit_callbacks(execute=True):
        response = client.post(reverse("admin:billing_invoice_run"), {"period": "2025-10", "unit": ""})
    job = BillingJob.objects.get(kind="billing_run")
    assert response["Location"] == status_url(job)
    assert client.get(status_url(job)).status_code == 200
    # when: the clerk becomes an agent of the same unit; the job is still theirs (they started it)
    staff_update(actor=None, user=clerk, role=Role.AGENT, units=[org["home"]])
    assert jobs.visible_jobs(clerk).filter(pk=job.pk).exists()
    page = client.get(status_url(job))
    # then: the page is refused with the role, as the jobs' list is
    assert page.status_code == 403
    assert client.get(reverse("admin:billing_billingjob_changelist")).status_code == 403


# What it shows -----------------------------------------------------------------------------------------------


def test_a_billing_runs_status_page_shows_no_raw_rows_as_rows_exported(client, staff, two_customers):
    # given: the home unit's billing run, done, and a billing clerk of that unit (who may follow it)
    mine, _theirs = two_customers
    job = BillingJob.objects.get(unit=mine.unit, kind="billing_run")
    assert isinstance(job.result["rows"], list)  # a run's rows: one dict per unit
    client.force_login(staff[Role.BILLING_CLERK])
    # when: they open its status page, in Vietnamese
    page = client.get(status_url(job), **VI)
    html = page.content.decode()
    # then: the result table, and no "rows exported" line carrying the Python repr of the result's rows
    assert page.status_code == 200
    assert 'id="job-result"' in html
    assert 'id="job-rows"' not in html
    assert "{&#x27;unit&#x27;" not in html
    assert "số dòng đã xuất" not in html


def test_a_billing_runs_result_is_a_labelled_table_per_unit(
    client, org, staff, make_customer, read, django_capture_on_commit_callbacks
):
    for i, kwh in enumerate((120, 180)):
        read(make_customer(phones=[f"0903 651 00{i}"]), OCT, kwh)
    make_customer(phones=["0903 651 009"])  # an active contract with no reading for October
    client.force_login(staff[Role.BILLING_CLERK])
    with django_capture_on_commit_callbacks(execute=True):
        client.post(reverse("admin:billing_invoice_run"), {"period": "2025-10", "unit": ""})
    job = BillingJob.objects.get(kind="billing_run")
    html = client.get(status_url(job), **VI).content.decode()
    assert cells(html, "job-result") == [
        "đơn vị", "số hóa đơn đã tạo", "tạm giữ", "số hợp đồng đang hiệu lực chưa có chỉ số",
        org["home"].code, "2", "0", "1",
        "Tổng cộng", "2", "0", "1",
    ]  # fmt: skip
    assert "số dòng đã xuất" not in cells(html, "job-status")


def test_an_anomaly_scans_result_is_a_labelled_table_per_unit(
    client, org, staff, make_customer, read, django_capture_on_commit_callbacks
):
    steady, rising = make_customer(phones=["0903 652 001"]), make_customer(phones=["0903 652 002"])
    for customer, (october, november) in ((steady, (100, 200)), (rising, (100, 500))):
        read(customer, OCT, october)
        read(customer, NOV, november)
    client.force_login(staff[Role.BILLING_CLERK])
    with django_capture_on_commit_callbacks(execute=True):
        client.post(
            reverse("admin:billing_invoice_anomaly_scan"), {"period": "2025-11", "unit": "", "threshold": "1.5"}
        )
    job = BillingJob.objects.get(kind="anomaly_scan")
    html = client.get(status_url(job), **VI).content.decode()
    table = cells(html, "job-result")
    assert table[:9] == [
        "đơn vị", "số khách hàng được so sánh", "&lt; 30%", "30–50%", "50–100%", "100–300%", "≥ 300%",
        "số phúc tra đã mở", "số hóa đơn tạm giữ",
    ]  # fmt: skip
    # the unit's row (the readings are the meters' indexes): 2 compared, the steady one used 100 kWh after 100
    # (no rise), the rising one 400 after 100 (a rise of 300%, re-inspected)
    assert table[9:18] == [org["home"].code, "2", "1", "0", "0", "0", "1", "1", "0"]
    assert table[18:] == ["Tổng cộng", "2", "", "1", "0"]
    assert 'id="job-rows"' not in html and "&#x27;" not in html


def test_a_running_billing_run_shows_the_units_done_so_far(client, org, staff, make_staff):
    # given: a run over two units, queued and then half done (one unit's row written by the worker)
    sibling = org["sibling"]
    clerk = make_staff(Role.BILLING_CLERK, [org["home"], sibling])
    job = jobs.job_start_billing_run(actor=clerk, period=OCT, units=[org["home"], sibling])
    client.force_login(clerk)
    queued = client.get(status_url(job), **VI).content.decode()
    assert 'id="job-result"' not in queued and 'id="job-rows"' not in queued
    row = {"unit": org["home"].code, "invoices": 4, "held": 1, "without_reading": 0}
    BillingJob.objects.filter(pk=job.pk).update(
        status="running", steps_done=1, result={"rows": [row], "totals": {"invoices": 4, "held": 1, "without_reading": 0}}
    )
    html = client.get(status_url(job), **VI).content.decode()
    # then: the table so far, the page still refreshing, and no "rows exported" line
    assert cells(html, "job-result")[4:] == [org["home"].code, "4", "1", "0", "Tổng cộng", "4", "1", "0"]
    assert 'http-equiv="refresh"' in html
    assert 'id="job-rows"' not in html


def test_an_exports_status_page_shows_its_count_of_rows_and_no_result_table(
    client, org, make_staff, make_customer, read, django_capture_on_commit_callbacks
):
    clerk = make_staff(Role.BILLING_CLERK, [org["home"]])
    for i in range(3):
        read(make_customer(phones=[f"0903 653 00{i}"]), OCT, 150)
    billing.billing_run(actor=None, period=OCT)
    client.force_login(clerk)
    with django_capture_on_commit_callbacks(execute=True):
        client.post(reverse("admin:billing_invoice_export_job"), {"file_format": "csv"})
    job = BillingJob.objects.get(kind="export")
    assert job.result == {"rows": 3}
    html = client.get(status_url(job), **VI).content.decode()
    assert re.search(r"<th>số dòng đã xuất</th><td id=\"job-rows\">3</td>", html)
    assert 'id="job-result"' not in html
