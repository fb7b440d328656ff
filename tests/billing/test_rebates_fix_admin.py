"""Rebate rounds in the admin (audit 'rebates'): a refused Apply or Reverse is refused at once and changes
nothing."""

from decimal import Decimal

import pytest
from django.contrib.messages import get_messages
from django.urls import reverse
from django.utils import translation

from billing import services as billing
from billing.models import AuditRecord, BillingJob, RebateBand, RebateProgramme
from crm.models import Role
from tests.billing.conftest import OCT

CHANGELIST = "admin:billing_rebateprogramme_changelist"


def _programme(unit):
    programme = RebateProgramme.objects.create(name="Đợt 5", legal_basis="NQ", period_from=OCT, period_to=OCT)
    RebateBand.objects.create(programme=programme, from_kwh=0, percent=Decimal("10"))
    programme.units.set([unit])
    return programme


@pytest.mark.parametrize(
    "action,status", [("apply_programme", "reversed"), ("reverse_programme", "draft"), ("apply_programme", "no bands")]
)
def test_apply_of_a_reversed_round_or_reverse_of_a_draft_is_refused_at_once_and_queues_nothing(
    client, org, make_staff, make_customer, read, django_capture_on_commit_callbacks, action, status
):
    # given: a round of the clerk's unit, reversed (or never applied, or without bands)
    clerk = make_staff(Role.BILLING_CLERK, [org["home"]])
    read(make_customer(), OCT, 150)
    billing.billing_run(actor=None, period=OCT)
    programme = _programme(org["home"])
    if status == "no bands":
        programme.bands.all().delete()
    if status == "reversed":
        billing.rebate_apply(actor=None, programme=programme)
        billing.rebate_reverse(actor=None, programme=programme)
    jobs_before, audits_before = BillingJob.objects.count(), AuditRecord.objects.count()
    client.force_login(clerk)
    # when: the clerk presses Apply (Reverse) on it
    with translation.override("vi"), django_capture_on_commit_callbacks(execute=True):
        response = client.post(
            reverse(CHANGELIST), {"action": action, "_selected_action": [programme.pk]}, follow=True,
            HTTP_ACCEPT_LANGUAGE="vi",
        )
    # then: refused on the list with the reason, as a programme of another unit is: no job queued, no record
    shown = [(m.level_tag, str(m)) for m in get_messages(response.wsgi_request)]
    assert BillingJob.objects.count() == jobs_before, shown
    assert AuditRecord.objects.count() == audits_before
    assert shown and all(level == "error" for level, _text in shown)


def test_a_round_deleted_while_its_job_waits_fails_with_a_reason_in_the_clerks_words(
    org, make_staff, make_customer, read, django_capture_on_commit_callbacks
):
    from billing import jobs

    # given: a clerk's Apply of a draft round queued (the worker has not taken it yet)
    clerk = make_staff(Role.BILLING_CLERK, [org["home"]])
    programme = _programme(org["home"])
    with django_capture_on_commit_callbacks(execute=False):
        job = jobs.job_start_rebate(actor=clerk, programme=programme)
    # when: an administrator deletes the draft programme meanwhile, and the worker runs the job
    programme.delete()
    with translation.override("vi"):
        jobs.job_run(job_id=job.pk)
    # then: the job failed with a reason a clerk reads (Vietnamese), not a Python exception's text
    job.refresh_from_db()
    assert job.status == "failed"
    assert "DoesNotExist" not in job.error and "matching query" not in job.error, job.error
