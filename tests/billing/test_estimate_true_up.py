"""A stopped meter's month is estimated; when the meter is read again below the estimate, the estimate is trued
up: the estimated month is corrected down to the real register, its bill recomputed (before issue) or an
adjustment proposed (after), and the month read advances from it. Every other order is refused as before."""

from __future__ import annotations

import datetime as dt

import pytest
from django.core.exceptions import ValidationError
from django.urls import reverse

from billing import services as billing
from billing.models import Adjustment, AuditRecord, Invoice, MeterReading
from crm.models import Role
from customers.models import Contract
from tests.billing.conftest import DEC, NOV, OCT

AUG, SEP = dt.date(2025, 8, 1), dt.date(2025, 9, 1)


@pytest.fixture
def clerk(org, make_staff):
    return make_staff(Role.BILLING_CLERK, [org["home"]])


@pytest.fixture
def read_three(make_customer, read):
    """A customer's three months read at 10 kWh a day: registers 310, 610, 920."""
    customer = make_customer()
    read(customer, AUG, 310)
    read(customer, SEP, 610)
    read(customer, OCT, 920)
    return customer, Contract.objects.get(customer=customer)


@pytest.fixture
def estimated(read_three):
    """Then November estimated: 300 kWh, register 1220."""
    customer, contract = read_three
    estimate = billing.reading_estimate(actor=None, contract=contract, period=NOV)
    assert (estimate.value, estimate.kwh) == (1220, 300)
    return customer, contract


def current(contract, period):
    return MeterReading.objects.current().get(contract=contract, period=period)


def state(contract):
    return (
        sorted(MeterReading.objects.filter(contract=contract).values_list("id", "period", "value", "kwh", "status")),
        sorted(Invoice.objects.filter(contract=contract).values_list("id", "kwh", "total", "status")),
        Adjustment.objects.count(),
    )


def test_a_real_register_below_an_issued_estimate_corrects_it_and_proposes_the_refund(estimated, clerk):
    customer, contract = estimated
    billing.billing_run(actor=None, period=NOV, unit=customer.unit)
    billing.invoices_issue(actor=None, period=NOV, unit=customer.unit)
    issued = Invoice.objects.get(contract=contract, period=NOV, kind="regular")
    assert issued.kwh == 300

    december = billing.reading_record(actor=clerk, contract=contract, period=DEC, value=1100, source="handheld")

    assert (december.previous_value, december.kwh) == (1100, 0)
    november = current(contract, NOV)
    assert (november.value, november.previous_value, november.kwh, november.source) == (1100, 920, 180, "estimated")
    adjustment = Adjustment.objects.get(original=issued)
    assert (adjustment.kwh, adjustment.status, adjustment.proposed_by) == (180, "proposed", clerk)
    assert adjustment.delta_total < 0  # the customer was billed 120 kWh too many
    assert "True-up: 12/2025 read 1100, below the estimate for 11/2025 (1220)" in adjustment.record
    issued.refresh_from_db()
    assert (issued.kwh, issued.status) == (300, "issued")  # the issued bill itself is never edited
    correction = AuditRecord.objects.get(action="reading.correct", object_id=str(november.pk))
    assert correction.reason.startswith("True-up")


def test_the_true_up_of_an_issued_estimate_already_rebased_and_adjusted_proposes_its_adjustment(
    estimated, clerk, org, make_staff
):
    # given: November's estimate issued at 300 kWh; October corrected 920 → 900, which re-bases November to
    # 1220 − 900 = 320 kWh, and that adjustment approved
    customer, contract = estimated
    approver = make_staff(Role.BILLING_CLERK, [org["home"]])
    billing.billing_run(actor=None, period=NOV, unit=customer.unit)
    billing.invoices_issue(actor=None, period=NOV, unit=customer.unit)
    issued = Invoice.objects.get(contract=contract, period=NOV, kind="regular")
    billing.reading_correct(actor=clerk, reading=current(contract, OCT), value=900, reason="Đọc sai")
    first = Adjustment.objects.get(original=issued)
    assert first.kwh == 320
    billing.adjustment_decide(actor=approver, adjustment=first, approve=True)
    # when: December reads 1100, below the estimate: November is trued up to 1100 − 900 = 200 kWh
    billing.reading_record(actor=clerk, contract=contract, period=DEC, value=1100, source="handheld")
    # then: the issued bill (still on the first estimate) gets the true-up's adjustment, from 320 kWh to 200
    november = current(contract, NOV)
    assert (november.value, november.kwh) == (1100, 200)
    pending = Adjustment.objects.get(original=issued, status="proposed")
    expected = billing.charge_for(category="residential", period=NOV, kwh=200).total - billing.charge_for(
        category="residential", period=NOV, kwh=320
    ).total
    assert (pending.kwh, pending.corrected_reading, pending.delta_total) == (200, november, expected)


def test_a_real_register_below_an_estimate_not_yet_issued_recomputes_its_bill(estimated, clerk):
    customer, contract = estimated
    billing.billing_run(actor=None, period=NOV, unit=customer.unit)
    draft = Invoice.objects.get(contract=contract, period=NOV, kind="regular")
    assert (draft.kwh, draft.status) == (300, "draft")

    billing.reading_record(actor=clerk, contract=contract, period=DEC, value=1100, source="remote")

    recomputed = Invoice.objects.get(contract=contract, period=NOV, kind="regular", status="draft")
    assert (recomputed.kwh, recomputed.reading_id) == (180, current(contract, NOV).pk)
    assert not Adjustment.objects.exists()


def test_a_register_above_the_estimate_leaves_it_as_it_is(estimated, clerk):
    _customer, contract = estimated
    december = billing.reading_record(actor=clerk, contract=contract, period=DEC, value=1300, source="handheld")
    assert (december.previous_value, december.kwh) == (1220, 80)
    assert current(contract, NOV).value == 1220
    assert not AuditRecord.objects.filter(action="reading.correct").exists()


def test_a_register_below_the_last_real_reading_is_refused_and_changes_nothing(estimated, clerk):
    _customer, contract = estimated
    before = state(contract)
    with pytest.raises(ValidationError, match=r"The register \(900\) is below the previous reading \(1220\)"):
        billing.reading_record(actor=clerk, contract=contract, period=DEC, value=900, source="handheld")
    assert state(contract) == before


def test_a_register_said_to_have_rolled_over_is_no_true_up(estimated, clerk):
    _customer, contract = estimated
    december = billing.reading_record(
        actor=clerk, contract=contract, period=DEC, value=1100, source="handheld", rolled_over=True
    )
    assert december.kwh == 100_000 + 1100 - 1220
    assert current(contract, NOV).value == 1220


def test_a_late_reading_before_a_later_one_is_no_true_up(estimated, clerk, read):
    """With a later month read already (January), a December register below November's estimate is refused:
    the later reading would have to be re-based twice; a clerk corrects November by hand instead."""
    customer, contract = estimated
    read(customer, dt.date(2026, 1, 1), 1400)
    before = state(contract)
    with pytest.raises(ValidationError, match="below the previous reading"):
        billing.reading_record(actor=clerk, contract=contract, period=DEC, value=1100, source="handheld")
    assert state(contract) == before


def test_the_metering_system_posts_the_real_register_and_the_estimate_is_trued_up(estimated, clerk, client):
    _customer, contract = estimated
    client.force_login(clerk)
    response = client.post(
        "/api/v1/readings/",
        {"contract_number": contract.number, "period": "2025-12-01", "value": 1100, "source": "remote"},
        content_type="application/json",
    )
    assert response.status_code == 201, response.content
    assert (response.json()["previous_value"], response.json()["kwh"]) == (1100, 0)
    assert current(contract, NOV).kwh == 180


# A clerk estimates a stopped meter's month from the admin; a metering system through the API -----------------


def test_a_clerk_estimates_a_month_from_the_readings_list(client, clerk, read_three):
    _customer, contract = read_three
    client.force_login(clerk)
    listed = client.get(reverse("admin:billing_meterreading_changelist"))
    url = reverse("admin:billing_meterreading_estimate")
    assert url in listed.content.decode()
    assert client.get(url).status_code == 200
    response = client.post(url, {"contract": contract.number, "period": "2025-11"}, follow=True)
    estimate = current(contract, NOV)
    assert (estimate.kwh, estimate.value, estimate.source) == (300, 1220, "estimated")
    assert response.redirect_chain[-1][0] == reverse("admin:billing_meterreading_change", args=[estimate.pk])
    assert f"11/2025 of contract {contract.number} estimated: 300 kWh, register 1220." in response.content.decode()


def test_bad_estimates_are_refused_on_the_form_and_change_nothing(client, clerk, read_three, org, make_customer):
    _customer, contract = read_three
    theirs = make_customer(org["other_corporation"]).contracts.get()
    client.force_login(clerk)
    url = reverse("admin:billing_meterreading_estimate")
    before = (MeterReading.objects.count(), AuditRecord.objects.count())
    cases = [
        ({"contract": theirs.number, "period": "2025-11"},
         {"contract": [f"No contract numbered “{theirs.number}” in your units."]}),
        ({"contract": contract.number, "period": "2025-10"},
         {"__all__": ["This period is already read for the contract: correct that reading instead."]}),
        ({"contract": contract.number, "period": "2999-01"}, {"period": ["A period in the future cannot be read."]}),
        ({"contract": contract.number, "period": "tháng 11"}, {"period": ["Enter a valid date."]}),
    ]  # fmt: skip
    for data, errors in cases:
        response = client.post(url, data)
        assert response.status_code == 400, data
        assert response.context["form"].errors == errors, data
    assert (MeterReading.objects.count(), AuditRecord.objects.count()) == before


def test_staff_without_the_reading_right_cannot_estimate(client, staff, read_three):
    _customer, contract = read_three
    client.force_login(staff[Role.AGENT])
    url = reverse("admin:billing_meterreading_estimate")
    assert client.post(url, {"contract": contract.number, "period": "2025-11"}).status_code == 403
    api = client.post("/api/v1/readings/estimate/", {"contract_number": contract.number, "period": "2025-11-01"},
                      content_type="application/json")  # fmt: skip
    assert api.status_code == 403
    assert not MeterReading.objects.filter(contract=contract, period=NOV).exists()


def test_the_api_estimates_a_month_and_refuses_with_400(client, clerk, read_three):
    _customer, contract = read_three
    client.force_login(clerk)
    url = "/api/v1/readings/estimate/"
    unknown = client.post(url, {"contract_number": "NOPE-01", "period": "2025-11-01"}, content_type="application/json")
    assert (unknown.status_code, unknown.json()) == (
        400, {"contract_number": ["No contract numbered “NOPE-01” in your units."]}
    )
    made = client.post(url, {"contract_number": contract.number, "period": "2025-11-01"},
                       content_type="application/json")  # fmt: skip
    assert made.status_code == 201, made.content
    assert (made.json()["kwh"], made.json()["value"], made.json()["source"]) == (300, 1220, "estimated")
    again = client.post(url, {"contract_number": contract.number, "period": "2025-11-01"},
                        content_type="application/json")  # fmt: skip
    assert again.status_code == 400
    assert MeterReading.objects.filter(contract=contract, period=NOV).count() == 1


def test_two_months_estimated_in_a_row_are_trued_up_from_the_earliest(estimated, clerk):
    """November and December estimated; January reads below November's estimate: refused with what to do, and
    once November is corrected (as a re-inspection would), January trues December up."""
    _customer, contract = estimated
    december = billing.reading_estimate(actor=None, contract=contract, period=DEC)
    assert (december.previous_value, december.value) == (1220, 1530)  # 31 days at 10 kWh
    january = dt.date(2026, 1, 1)
    before = state(contract)
    with pytest.raises(ValidationError) as refused:
        billing.reading_record(actor=clerk, contract=contract, period=january, value=1100, source="handheld")
    assert refused.value.message_dict == {"value": [
        "The register (1100) is below the estimates of 11/2025 and 12/2025: months estimated in a row are trued up "
        "from the earliest. Correct the estimate of 11/2025 (a re-inspection) first."
    ]}  # fmt: skip
    assert state(contract) == before

    billing.reading_correct(actor=clerk, reading=current(contract, NOV), value=1100, reason="Phúc tra tại chỗ",
                            source="estimated")  # fmt: skip
    read = billing.reading_record(actor=clerk, contract=contract, period=january, value=1100, source="handheld")

    assert (read.previous_value, read.kwh) == (1100, 0)
    assert [(r.value, r.kwh) for r in (current(contract, NOV), current(contract, DEC))] == [(1100, 180), (1100, 0)]


def test_an_estimated_register_below_an_estimate_trues_nothing_up(estimated, clerk):
    """Only a real register shows what the meter read: a metering system's own estimate below ours is refused
    as below the previous reading, and November's estimate stays."""
    _customer, contract = estimated
    before = state(contract)
    with pytest.raises(ValidationError, match=r"The register \(1100\) is below the previous reading \(1220\)"):
        billing.reading_record(actor=clerk, contract=contract, period=DEC, value=1100, source="estimated")
    assert state(contract) == before


def test_a_month_in_the_future_is_neither_read_nor_estimated_on_any_path(client, clerk, read_three):
    _customer, contract = read_three
    client.force_login(clerk)
    before = (MeterReading.objects.count(), AuditRecord.objects.count())
    bodies = {
        "/api/v1/readings/": {"contract_number": contract.number, "period": "2999-01-01", "value": 1000,
                              "source": "remote"},
        "/api/v1/readings/estimate/": {"contract_number": contract.number, "period": "2999-01-01"},
    }  # fmt: skip
    for url, body in bodies.items():
        response = client.post(url, body, content_type="application/json")
        assert (response.status_code, response.json()) == (
            400, {"period": ["A period in the future cannot be read."]}
        ), url
    with pytest.raises(ValidationError, match=r"A period in the future cannot be read\."):
        billing.reading_record(actor=clerk, contract=contract, period=dt.date(2999, 1, 1), value=1000,
                               source="handheld")  # fmt: skip
    assert (MeterReading.objects.count(), AuditRecord.objects.count()) == before
