"""Rebate rounds in unusual orderings, beyond the audit's cases: the billing run gives the bills it makes the
applied rounds of their month by the round's own rule (order, bands, units, months), a round of a successor
unit reaches the merged unit's bills on a correction too, a month typed as a day names the month, and a job
whose programme changed or went while it waited refuses in the clerk's words, changing nothing."""

import datetime as dt
from decimal import Decimal

import pytest
from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import transaction
from django.utils import translation

from billing import jobs
from billing import services as billing
from billing.admin import RebateProgrammeForm
from billing.models import (
    AuditRecord,
    BillingJob,
    Invoice,
    InvoiceLine,
    MeterReading,
    RebateApplication,
    RebateBand,
    RebateProgramme,
)
from crm.models import Role
from tests.billing.conftest import NOV, OCT
from tests.concurrency import in_thread


def _round(percent="10", *, name="Đợt 4", period_from=OCT, period_to=OCT, units=(), **kw):
    programme = RebateProgramme.objects.create(
        name=name, legal_basis="NQ", period_from=period_from, period_to=period_to, **kw
    )
    RebateBand.objects.create(programme=programme, from_kwh=0, percent=Decimal(percent))
    programme.units.set(units)
    return programme


def _bill(customer, period=OCT) -> Invoice:
    return Invoice.objects.get(customer=customer, period=period, kind="regular")


def _programmes_on(invoice: Invoice) -> list[int]:
    return list(RebateApplication.objects.filter(invoice=invoice).order_by("pk").values_list("programme_id", flat=True))


def test_two_rounds_reach_a_late_bill_in_the_order_they_were_created(make_customer, read):
    early, late = make_customer(), make_customer()
    read(early, OCT, 150)
    billing.billing_run(actor=None, period=OCT)
    first, second = _round("10"), _round("5", name="Đợt 5")
    billing.rebate_apply(actor=None, programme=first)
    billing.rebate_apply(actor=None, programme=second)
    read(late, OCT, 150)
    billing.billing_run(actor=None, period=OCT)
    made, billed = _bill(late), _bill(early)
    assert (made.subtotal, made.vat, made.total) == (billed.subtotal, billed.vat, billed.total)
    assert _programmes_on(made) == [first.pk, second.pk]
    amounts = lambda i: sorted(InvoiceLine.objects.filter(invoice=i, kwh=0).values_list("amount", flat=True))  # noqa: E731
    assert amounts(made) == amounts(billed)
    run_audit = AuditRecord.objects.filter(action="billing.run").order_by("-pk").first()
    assert run_audit.after["rebates"] == {str(first.pk): 1, str(second.pk): 1}


def test_a_run_after_the_round_was_reversed_bills_in_full(make_customer, read):
    early, late = make_customer(), make_customer()
    read(early, OCT, 150)
    billing.billing_run(actor=None, period=OCT)
    programme = _round()
    billing.rebate_apply(actor=None, programme=programme)
    billing.rebate_reverse(actor=None, programme=programme)
    read(late, OCT, 150)
    billing.billing_run(actor=None, period=OCT)
    assert _programmes_on(_bill(late)) == []
    assert _bill(late).total == _bill(early).total  # both in full: the early one had it taken back


def test_a_late_bill_outside_the_band_gets_nothing_until_corrected_into_it(make_customer, read):
    early, late = make_customer(), make_customer()
    read(early, OCT, 150)
    billing.billing_run(actor=None, period=OCT)
    programme = _round(max_kwh=200)
    billing.rebate_apply(actor=None, programme=programme)
    reading = read(late, OCT, 300)
    billing.billing_run(actor=None, period=OCT)
    assert _programmes_on(_bill(late)) == []
    billing.reading_correct(actor=None, reading=reading, value=150, reason="Đọc lại")
    assert _programmes_on(_bill(late)) == [programme.pk]
    assert _bill(late).total == _bill(early).total


def test_a_run_gives_only_the_rounds_that_reach_its_bills_unit(org, make_customer, read):
    own = make_customer(org["home"], phones=["0903 222 341"])
    read(own, OCT, 150)
    billing.rebate_apply(actor=None, programme=_round(units=[org["sibling"]]))
    billing.billing_run(actor=None, period=OCT)
    assert _programmes_on(_bill(own)) == []
    assert AuditRecord.objects.filter(action="billing.run").order_by("-pk").first().after.get("rebates") is None


def test_a_round_of_two_months_reaches_the_second_months_run_once(make_customer, read):
    customer = make_customer()
    read(customer, OCT, 150)
    billing.billing_run(actor=None, period=OCT)
    programme = _round(period_to=NOV)
    billing.rebate_apply(actor=None, programme=programme)
    october = _bill(customer)
    read(customer, NOV, 300)
    billing.billing_run(actor=None, period=NOV)
    billing.billing_run(actor=None, period=NOV)  # again: nothing more
    assert _programmes_on(_bill(customer, NOV)) == [programme.pk]
    assert RebateApplication.objects.filter(programme=programme).count() == 2
    october_now = _bill(customer)
    assert (october_now.total, _programmes_on(october_now)) == (october.total, [programme.pk])


def test_a_correction_of_a_merged_units_bill_brings_the_successors_round(org, make_customer, make_staff, read):
    from tests.organisation import merge

    home, sibling = org["home"], org["sibling"]
    merged, own = make_customer(sibling, phones=["0903 222 351"]), make_customer(home, phones=["0903 222 352"])
    reading = read(merged, OCT, 300)
    read(own, OCT, 150)
    merge(sibling, home, dt.date(2025, 10, 15))
    clerk = make_staff(Role.BILLING_CLERK, [home])
    billing.billing_run(actor=clerk, period=OCT, unit=home)
    programme = _round(max_kwh=200, units=[home])
    assert billing.rebate_apply(actor=clerk, programme=programme)["invoices"] == 1  # 300 kWh: outside the band
    billing.reading_correct(actor=None, reading=reading, value=150, reason="Đọc lại")
    assert _programmes_on(_bill(merged)) == [programme.pk]
    assert _bill(merged).total == _bill(own).total


def test_a_first_month_typed_as_a_day_reaches_a_late_bill_and_a_correction(make_customer, read):
    early, late = make_customer(), make_customer()
    read(early, OCT, 150)
    billing.billing_run(actor=None, period=OCT)
    programme = _round(max_kwh=200, period_from=dt.date(2025, 10, 15), period_to=dt.date(2025, 10, 20))
    assert billing.rebate_apply(actor=None, programme=programme)["invoices"] == 1
    assert billing.rebate_dry_run(programme=programme)["invoices"] == 0  # applied already: none left
    reading = read(late, OCT, 300)
    billing.billing_run(actor=None, period=OCT)
    billing.reading_correct(actor=None, reading=reading, value=150, reason="Đọc lại")
    assert _programmes_on(_bill(late)) == [programme.pk]


@pytest.mark.parametrize("typed", ["2025-10-15", "15/10/2025", "2025-10", "10/2025"])
def test_the_admin_form_stores_a_month_as_its_first_day(db, typed):
    last = "31/10/2025" if "/" in typed else "2025-10-31"
    form = RebateProgrammeForm(data={"name": "Đợt 6", "legal_basis": "NQ", "customer_types": "[]",
                                     "period_from": typed, "period_to": last, "min_kwh": 0})  # fmt: skip
    form.is_valid()
    assert form.cleaned_data["period_from"] == OCT
    assert form.cleaned_data["period_to"] == OCT


def test_apply_without_bands_is_refused_by_the_service_and_changes_nothing(make_customer, read):
    read(make_customer(), OCT, 150)
    billing.billing_run(actor=None, period=OCT)
    programme = _round()
    programme.bands.all().delete()
    before = (list(Invoice.objects.values_list("pk", "total")), AuditRecord.objects.count())
    with pytest.raises(ValidationError, match="no benefit bands"):
        billing.rebate_apply(actor=None, programme=programme)
    programme.refresh_from_db()
    assert programme.status == "draft"
    assert (list(Invoice.objects.values_list("pk", "total")), AuditRecord.objects.count()) == before


def test_a_job_whose_bands_went_while_it_waited_fails_with_the_reason_and_changes_nothing(
    org, make_staff, make_customer, read, django_capture_on_commit_callbacks
):
    clerk = make_staff(Role.BILLING_CLERK, [org["home"]])
    read(make_customer(), OCT, 150)
    billing.billing_run(actor=None, period=OCT)
    programme = _round(units=[org["home"]])
    with django_capture_on_commit_callbacks(execute=False):
        job = jobs.job_start_rebate(actor=clerk, programme=programme)
    programme.bands.all().delete()
    totals = list(Invoice.objects.values_list("pk", "total"))
    with translation.override("en"):
        jobs.job_run(job_id=job.pk)
    job.refresh_from_db()
    assert (job.status, job.error) == ("failed", "The programme has no benefit bands.")
    assert list(Invoice.objects.values_list("pk", "total")) == totals
    assert not RebateApplication.objects.exists()


def test_a_deleted_programmes_job_names_it(org, make_staff, django_capture_on_commit_callbacks, tariffs):
    clerk = make_staff(Role.BILLING_CLERK, [org["home"]])
    programme = _round(units=[org["home"]])
    with django_capture_on_commit_callbacks(execute=False):
        job = jobs.job_start_rebate(actor=clerk, programme=programme)
    programme.delete()
    with translation.override("en"):
        jobs.job_run(job_id=job.pk)
    job.refresh_from_db()
    assert job.status == "failed"
    assert job.error == "The programme Đợt 4 was deleted before this job ran: nothing was applied or reversed."
    assert BillingJob.objects.filter(pk=job.pk, status="failed").exists()
    assert MeterReading.objects.count() == 0


def test_an_apply_is_refused_while_the_reverse_of_the_applied_round_waits(db, staff, tariffs):
    # (replaces test_jobs.py's reverse queued on a draft, which is now refused at once: nothing to reverse)
    programme = _round()
    billing.rebate_apply(actor=None, programme=programme)
    programme.refresh_from_db()
    admin = staff[Role.ADMINISTRATOR]
    jobs.job_start_rebate(actor=admin, programme=programme, reverse=True)
    with pytest.raises(ValidationError) as refused:
        jobs.job_start_rebate(actor=admin, programme=programme)
    assert refused.value.code == "already_running"
    assert BillingJob.objects.count() == 1


def test_a_reverse_of_a_draft_is_refused_before_any_job(db, staff, tariffs):
    programme = _round()
    with pytest.raises(ValidationError, match="Only an applied programme can be reversed"):
        jobs.job_start_rebate(actor=staff[Role.ADMINISTRATOR], programme=programme, reverse=True)
    assert (BillingJob.objects.count(), AuditRecord.objects.count()) == (0, 0)


on_postgres = pytest.mark.skipif(
    "postgresql" not in settings.DATABASES["default"]["ENGINE"], reason="two connections at once: PostgreSQL"
)


@on_postgres
def test_a_reverse_started_while_the_run_gives_a_late_bill_the_round_takes_it_off_that_bill_too(
    transactional_db, make_customer, read
):
    early, late = make_customer(), make_customer()
    read(early, OCT, 150)
    billing.billing_run(actor=None, period=OCT)
    in_full = _bill(early).total
    programme = _round()
    billing.rebate_apply(actor=None, programme=programme)
    read(late, OCT, 150)
    with transaction.atomic():
        billing.billing_run(actor=None, period=OCT)  # holds October's lock; the late bill gets the round
        second, outcome = in_thread(lambda: billing.rebate_reverse(actor=None, programme=programme))
        second.join(1.5)
        assert second.is_alive()  # the reverse waits for the run
    second.join(30)
    assert "error" not in outcome, outcome.get("error")
    assert outcome["result"] == {"reversed": 2, "kept_on_issued": 0}
    assert not RebateApplication.objects.exists()
    assert _bill(late).total == _bill(early).total == in_full


@on_postgres
def test_an_apply_started_while_the_run_is_open_reaches_the_bill_it_makes(transactional_db, make_customer, read):
    customer = make_customer()
    read(customer, OCT, 150)
    programme = _round()
    with transaction.atomic():
        billing.billing_run(actor=None, period=OCT)  # the round is a draft: the run gives nothing
        second, outcome = in_thread(lambda: billing.rebate_apply(actor=None, programme=programme))
        second.join(1.5)
        assert second.is_alive()
    second.join(30)
    assert "error" not in outcome, outcome.get("error")
    assert outcome["result"]["invoices"] == 1
    assert _programmes_on(_bill(customer)) == [programme.pk]
