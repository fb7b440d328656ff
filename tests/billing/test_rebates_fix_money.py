"""Rebate rounds in unusual orderings (audit 'rebates'): a bill the run makes after a round gets it, a
round of a successor unit reaches the merged unit's bills, a first month typed as a day of it names the month."""

from decimal import Decimal

import pytest

from billing import services as billing
from billing.models import Invoice, RebateApplication, RebateBand, RebateProgramme
from crm.models import Role
from tests.billing.conftest import OCT


@pytest.fixture
def clerks(org, make_staff):
    return make_staff(Role.BILLING_CLERK, [org["home"]]), make_staff(Role.BILLING_CLERK, [org["home"]])


def _round(percent="10", **kw):
    programme = RebateProgramme.objects.create(name="Đợt 4", legal_basis="NQ", period_from=OCT, period_to=OCT, **kw)
    RebateBand.objects.create(programme=programme, from_kwh=0, percent=Decimal(percent))
    return programme


def test_a_bill_the_run_makes_after_a_round_was_applied_gets_the_round(make_customer, read, clerks):
    # given: a round of 10 % on October is applied while one customer's bill is a draft
    early, late = make_customer(), make_customer()
    read(early, OCT, 150)
    billing.billing_run(actor=None, period=OCT)
    programme = _round()
    assert billing.rebate_apply(actor=None, programme=programme)["invoices"] == 1
    # when: the other customer's October reading arrives late and the run bills it
    read(late, OCT, 150)
    billing.billing_run(actor=None, period=OCT)
    # then: the late bill is within the round like the early one (a correction of it would give it the round:
    # "gets every applied programme whose months ... cover the bill")
    made = Invoice.objects.get(customer=late, period=OCT)
    assert made.total == Invoice.objects.get(customer=early, period=OCT).total
    assert RebateApplication.objects.filter(invoice=made, programme=programme).exists()


def test_a_bill_made_after_a_round_and_issued_is_not_credited_the_whole_round_by_a_one_kwh_adjustment(
    make_customer, read, clerks
):
    # given: a round of 10 % on October applied; a late October reading billed after it, then issued
    early, late = make_customer(), make_customer()
    read(early, OCT, 150)
    billing.billing_run(actor=None, period=OCT)
    billing.rebate_apply(actor=None, programme=_round())
    read(late, OCT, 150)
    billing.billing_run(actor=None, period=OCT)
    billing.invoices_issue(actor=None, period=OCT)
    original = Invoice.objects.get(customer=late, period=OCT)
    # when: the bill is corrected by one kWh (151: + 2,380 before the round)
    adjustment = billing.adjustment_propose(actor=clerks[0], invoice=original, kwh=151, record="Biên bản")
    # then: the adjustment is the one kWh's charge (with the round: 2,142 + VAT), not a credit of the round the
    # bill never had (−32,070 − VAT on 150 kWh plus the kWh)
    assert adjustment.delta_subtotal > 0


def test_a_round_of_the_successor_unit_reaches_the_bills_of_the_unit_merged_into_it(org, make_customer, make_staff, read):
    import datetime

    from tests.organisation import merge

    # given: a customer of the sibling unit billed for October, the sibling merged into home mid-month
    home, sibling = org["home"], org["sibling"]
    merged, own = make_customer(sibling, phones=["0903 222 331"]), make_customer(home, phones=["0903 222 332"])
    read(merged, OCT, 150)
    read(own, OCT, 150)
    merge(sibling, home, datetime.date(2025, 10, 15))
    clerk = make_staff(Role.BILLING_CLERK, [home])
    billing.billing_run(actor=clerk, period=OCT, unit=home)
    assert Invoice.objects.filter(period=OCT).count() == 2  # home's run billed the merged unit's customer
    # when: home's clerk applies a round of home (the unit that serves the sibling's records now)
    programme = _round()
    programme.units.set([home])
    outcome = billing.rebate_apply(actor=clerk, programme=programme)
    # then: it reaches every bill home's run made and home issues, the merged unit's too
    assert outcome["invoices"] == 2
    assert RebateApplication.objects.filter(invoice__customer=merged).exists()


def test_a_round_whose_first_month_is_typed_as_a_day_of_that_month_reaches_the_months_bills(make_customer, read):
    import datetime

    from django.core.exceptions import ValidationError

    # given: October's bill, and a round whose "first billed month" was typed as 15/10/2025 (the admin's date
    # field takes any day), "last billed month" 31/10/2025
    read(make_customer(), OCT, 150)
    billing.billing_run(actor=None, period=OCT)
    programme = RebateProgramme.objects.create(
        name="Đợt 4", legal_basis="NQ", customer_types=["residential"], period_from=datetime.date(2025, 10, 15),
        period_to=datetime.date(2025, 10, 31),
    )
    RebateBand.objects.create(programme=programme, from_kwh=0, percent=Decimal("10"))
    try:
        programme.full_clean()
    except ValidationError:
        return  # refused on the form, with the reason: the admin types the month again
    # when: it is applied (its round locks October: ``lock_periods`` takes the first month from its first day)
    outcome = billing.rebate_apply(actor=None, programme=programme)
    # then: October's bill is within it, not silently left out
    assert outcome["invoices"] == 1
