"""Long billing work leaves the request: the billing run, the anomaly scan and a rebate's apply and reverse run
as django-q2 tasks (inline here: ``Q_CLUSTER`` sync in the test settings) followed by a job row and its status
page; a second start of the same work while one is queued or running is refused, by the database too."""

from __future__ import annotations

from decimal import Decimal

import pytest
from django.db import IntegrityError, connection, transaction
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils import timezone

from billing import jobs
from billing import services as billing
from billing.models import (
    AuditRecord,
    BillingJob,
    Invoice,
    RebateApplication,
    RebateBand,
    RebateProgramme,
    Reinspection,
)
from billing.money import money
from crm.models import Role
from tests.billing.conftest import NOV, OCT

VI = {"HTTP_ACCEPT_LANGUAGE": "vi"}


@pytest.fixture
def clerk(staff):
    return staff[Role.BILLING_CLERK]


def test_the_billing_run_is_a_job_with_its_status_page(
    client, clerk, make_customer, read, org, django_capture_on_commit_callbacks
):
    customers = [make_customer(phones=[f"0903 600 00{i}"]) for i in range(2)]
    for customer in customers:
        read(customer, OCT, 180)
    client.force_login(clerk)
    with django_capture_on_commit_callbacks(execute=True) as queued:
        response = client.post(reverse("admin:billing_invoice_run"), {"period": "2025-10", "unit": ""}, **VI)
    assert len(queued) == 1  # the task is queued once the request commits
    job = BillingJob.objects.get()
    assert response.status_code == 302
    assert response["Location"] == reverse("admin:billing_billingjob_status", args=[job.pk])
    assert (job.kind, job.status, job.started_by) == ("billing_run", "done", clerk)
    assert job.lock == f"billing_run:2025-10:{org['home'].pk}"
    assert (job.steps_total, job.steps_done) == (1, 1)
    assert job.result["totals"] == {"invoices": 2, "held": 0, "without_reading": 0}
    assert job.result["rows"] == [{"unit": org["home"].code, "invoices": 2, "held": 0, "without_reading": 0}]
    assert job.started_at and job.finished_at and not job.error
    assert Invoice.objects.filter(period=OCT).count() == 2
    assert AuditRecord.objects.filter(action="job.start", object_id=job.pk).exists()
    page = client.get(response["Location"], **VI)
    html = page.content.decode()
    assert page.status_code == 200
    assert "Tính hóa đơn theo kỳ 10/2025" in html and "Đã xong." in html and 'id="job-invoices">2<' in html
    assert 'http-equiv="refresh"' not in html  # a finished job's page stops refreshing
    listing = client.get(reverse("admin:billing_billingjob_changelist"))
    assert [j.pk for j in listing.context["cl"].result_list] == [job.pk]


def test_a_second_start_while_one_runs_is_refused_with_a_message(
    client, clerk, org, make_customer, read, django_capture_on_commit_callbacks
):
    read(make_customer(), OCT, 180)
    running = BillingJob.objects.create(
        kind="billing_run", lock=f"billing_run:2025-10:{org['home'].pk}", status="running", started_by=clerk,
        params={"label": "10/2025 – PE0100"}, created_at=timezone.now(), progress_at=timezone.now(),
    )  # fmt: skip
    client.force_login(clerk)
    with django_capture_on_commit_callbacks(execute=True) as queued:
        response = client.post(reverse("admin:billing_invoice_run"), {"period": "2025-10", "unit": ""}, **VI)
    assert response.status_code == 200 and queued == []
    (message,) = response.context["form"].non_field_errors()  # above the form, which keeps what was typed
    assert message.startswith("Tính hóa đơn theo kỳ 10/2025 – PE0100 đang chạy")
    assert message in response.content.decode()
    assert BillingJob.objects.get() == running and not Invoice.objects.exists()
    # Another month is another job.
    with django_capture_on_commit_callbacks(execute=True):
        other = client.post(reverse("admin:billing_invoice_run"), {"period": "2025-11", "unit": ""})
    assert other.status_code == 302 and BillingJob.objects.count() == 2


def test_the_database_refuses_two_running_jobs_on_the_same_work(db, clerk):
    def job(status):
        return BillingJob.objects.create(
            kind="rebate_apply", lock="rebate:1", status=status, created_at=timezone.now()
        )

    job("done")
    job("failed")
    job("queued")
    with pytest.raises(IntegrityError), transaction.atomic():
        job("running")
    assert BillingJob.objects.filter(lock="rebate:1").count() == 3


def test_a_job_abandoned_by_its_worker_does_not_block_the_next_start(db, clerk, org):
    long_ago = timezone.now() - jobs.LEASE * 2
    stale = BillingJob.objects.create(
        kind="billing_run", lock=f"billing_run:2025-10:{org['home'].pk}", status="running", created_at=long_ago,
        progress_at=long_ago,
    )  # fmt: skip
    job = jobs.job_start_billing_run(actor=clerk, period=OCT, units=[org["home"]])
    stale.refresh_from_db()
    assert (stale.status, job.status) == ("failed", "queued")
    assert "Abandoned" in stale.error


def test_a_job_task_delivered_twice_runs_once(db, clerk, make_customer, read, org):
    read(make_customer(), OCT, 180)
    job = jobs.job_start_billing_run(actor=clerk, period=OCT, units=[org["home"]])  # queued (not committed)
    first = jobs.job_run(job_id=job.pk)
    assert first["status"] == "done" and first["totals"]["invoices"] == 1
    assert jobs.job_run(job_id=job.pk) is None
    job.refresh_from_db()
    assert job.status == "done" and Invoice.objects.count() == 1


def test_a_refused_service_fails_the_job_with_its_reason(db, clerk, org):
    job = jobs.job_start_billing_run(actor=clerk, period=OCT, units=[org["home"]])
    clerk.staff_profile.units.clear()  # the clerk no longer serves the unit when the task runs
    outcome = jobs.job_run(job_id=job.pk)
    job.refresh_from_db()
    assert outcome["status"] == "failed" and job.status == "failed"
    assert job.error == "This unit is not one of yours." and job.finished_at


def test_a_clerk_cannot_start_a_job_for_another_unit_nor_see_anothers_job(client, clerk, org, make_staff):
    with pytest.raises(Exception) as refused:
        jobs.job_start_billing_run(actor=clerk, period=OCT, units=[org["other_corporation"]])
    assert "unit" in refused.value.message_dict
    assert not BillingJob.objects.exists()
    theirs = make_staff(Role.BILLING_CLERK, [org["other_corporation"]])
    job = jobs.job_start_billing_run(actor=theirs, period=OCT, units=[org["other_corporation"]])
    client.force_login(clerk)
    assert client.get(reverse("admin:billing_billingjob_status", args=[job.pk])).status_code == 404


def test_the_anomaly_scan_is_a_job(client, clerk, make_customer, read, django_capture_on_commit_callbacks):
    steady, rising = make_customer(phones=["0903 610 001"]), make_customer(phones=["0903 610 002"])
    for customer, (october, november) in ((steady, (100, 200)), (rising, (100, 500))):
        read(customer, OCT, october)
        read(customer, NOV, november)
    client.force_login(clerk)
    with django_capture_on_commit_callbacks(execute=True):
        response = client.post(
            reverse("admin:billing_invoice_anomaly_scan"), {"period": "2025-11", "unit": "", "threshold": "1.5"}
        )
    job = BillingJob.objects.get()
    assert response.status_code == 302
    assert (job.kind, job.status, job.params["threshold"]) == ("anomaly_scan", "done", "1.5")
    assert job.result["totals"] == {"compared": 2, "reinspections": 1, "held": 0}
    assert sum(job.result["rows"][0]["bands"].values()) == 2
    assert list(Reinspection.objects.values_list("reading__contract__customer", flat=True)) == [rising.pk]


def test_rebate_apply_and_reverse_are_jobs(client, staff, make_customer, read, django_capture_on_commit_callbacks):
    customers = [make_customer(phones=[f"0903 620 00{i}"]) for i in range(2)]
    for customer, kwh in zip(customers, (80, 150), strict=True):
        read(customer, OCT, kwh)
    billing.billing_run(actor=None, period=OCT)
    programme = RebateProgramme.objects.create(
        name="Hỗ trợ đợt 1", legal_basis="NQ", customer_types=["residential"], period_from=OCT, period_to=OCT
    )
    RebateBand.objects.create(programme=programme, from_kwh=0, to_kwh=300, percent=Decimal("10"))
    preview = billing.rebate_dry_run(programme=programme)
    admin = staff[Role.ADMINISTRATOR]
    client.force_login(admin)
    url = reverse("admin:billing_rebateprogramme_changelist")
    with django_capture_on_commit_callbacks(execute=True):
        response = client.post(url, {"action": "apply_programme", "_selected_action": [programme.pk]})
    applied = BillingJob.objects.get(kind="rebate_apply")
    assert response["Location"] == reverse("admin:billing_billingjob_status", args=[applied.pk])
    assert applied.status == "done" and applied.result["invoices"] == 2
    assert applied.result["amount"] == preview["amount"] == sum(
        RebateApplication.objects.values_list("amount", flat=True)
    )
    page = client.get(response["Location"], **VI).content.decode()
    assert "Áp dụng giảm tiền điện Hỗ trợ đợt 1" in page and money(preview["amount"]) in page
    with django_capture_on_commit_callbacks(execute=True):
        client.post(url, {"action": "reverse_programme", "_selected_action": [programme.pk]})
    reversed_ = BillingJob.objects.get(kind="rebate_reverse")
    assert (reversed_.status, reversed_.result) == ("done", {"reversed": 2, "kept_on_issued": 0})
    assert not RebateApplication.objects.exists()


def test_the_jobs_list_takes_the_same_few_queries_for_few_and_many_jobs(client, clerk, org, make_staff):
    def make(n, user):
        for i in range(n):
            BillingJob.objects.create(
                kind="billing_run", lock=f"billing_run:{user.pk}-{BillingJob.objects.count()}-{i}", status="done",
                unit=org["home"], started_by=user, params={"label": "10/2025"}, created_at=timezone.now(),
            )  # fmt: skip

    make(1, clerk)
    client.force_login(clerk)
    url = reverse("admin:billing_billingjob_changelist")
    client.get(url)
    with CaptureQueriesContext(connection) as few:
        assert client.get(url).status_code == 200
    make(5, make_staff(Role.BILLING_CLERK, [org["home"]]))
    with CaptureQueriesContext(connection) as many:
        response = client.get(url)
    assert len(response.context["cl"].result_list) == 6
    assert len(many) == len(few)


def test_a_big_invoice_export_runs_as_a_job_with_the_lists_filters_and_scope(
    client, clerk, org, make_customer, read, django_capture_on_commit_callbacks
):
    import csv
    import io

    from crm.models import ExportLog

    mine = [make_customer(phones=[f"0903 630 00{i}"]) for i in range(3)]
    for customer in mine:
        read(customer, OCT, 150)
    read(make_customer(org["other_corporation"], phones=["0903 630 100"]), OCT, 150)
    billing.billing_run(actor=None, period=OCT)
    billing.invoices_issue(actor=None, period=OCT, unit=org["home"])
    client.force_login(clerk)
    listing = client.get(reverse("admin:billing_invoice_changelist"), {"status": "issued"})
    link = reverse("admin:billing_invoice_export_job") + "?status=issued"
    assert f'href="{link}"' in listing.content.decode()
    with django_capture_on_commit_callbacks(execute=True):
        response = client.post(link, {"file_format": "csv"}, **VI)
    job = BillingJob.objects.get(kind="export")
    assert response["Location"] == reverse("admin:billing_billingjob_status", args=[job.pk])
    assert (job.status, job.result, job.lock) == ("done", {"rows": 3}, f"export:billing.invoice:{clerk.pk}")
    log = ExportLog.objects.get(pk=job.params["log"])
    assert (log.user, log.source, log.status, log.row_count, log.filters) == (
        clerk, "billing.invoice", "complete", 3, "status=issued"
    )
    page = client.get(response["Location"], **VI).content.decode()
    assert "Tải về" in page
    download = client.get(reverse("admin:billing_billingjob_download", args=[job.pk]))
    rows = list(csv.DictReader(io.StringIO(b"".join(download.streaming_content).decode("utf-8-sig"))))
    expected = set(Invoice.objects.filter(customer__in=mine).values_list("number", flat=True))
    assert len(rows) == 3 and {next(iter(r.values())) for r in rows} == expected
    stranger = client.__class__()  # a clerk of another unit neither sees the job nor gets its file
    stranger.force_login(staff_of_other_unit(org))
    assert stranger.get(reverse("admin:billing_billingjob_status", args=[job.pk])).status_code == 404
    assert stranger.get(reverse("admin:billing_billingjob_download", args=[job.pk])).status_code == 404


def staff_of_other_unit(org):
    from crm.services import staff_create

    return staff_create(
        actor=None,
        username="clerk-elsewhere", password="s3cret-pass-word", role=Role.BILLING_CLERK, badge_number="99991",
        units=[org["other_corporation"]], first_name="Test", last_name="Elsewhere",
    )  # fmt: skip


def test_two_units_run_the_same_month_at_once_but_not_the_same_unit_twice(db, org, make_staff):
    home, other = org["home"], org["sibling"]
    jobs.job_start_billing_run(actor=None, period=OCT, units=[home])
    jobs.job_start_billing_run(actor=None, period=OCT, units=[other])
    jobs.job_start_billing_run(actor=None, period=OCT, units=[home, other])  # a clerk serving both
    with pytest.raises(Exception) as refused:
        jobs.job_start_billing_run(actor=None, period=OCT, units=[other])
    assert refused.value.code == "already_running"
    assert BillingJob.objects.filter(status="queued").count() == 3
