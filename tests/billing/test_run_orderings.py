"""The billing run, holds, issue and payments in unusual orders: a contract ending after its last reading, a
late reading re-basing a draft, a scan run twice, a clerk's own hold, payment times, an exact threshold."""

from __future__ import annotations

import contextlib
import datetime as dt
from decimal import Decimal

import pytest
from django.core.exceptions import ValidationError
from django.utils import timezone

from billing import rules
from billing import services as billing
from billing.models import AuditRecord, Invoice, MeterReading, Reinspection
from crm.models import Role
from customers import services as customer_services
from customers.models import Contract, ContractStatus, MeterAssignment, MeterKind
from tests.billing.conftest import OCT

JUN, JUL, AUG, SEP, NOV = (dt.date(2025, m, 1) for m in (6, 7, 8, 9, 11))


def aware(*args):
    return timezone.make_aware(dt.datetime(*args))


@pytest.fixture
def clerk(org, make_staff):
    return make_staff(Role.BILLING_CLERK, [org["home"]])


def bill(customer, period=OCT) -> Invoice:
    return Invoice.objects.get(customer=customer, period=period, kind="regular")


def move_out(contract, *, at: dt.datetime, register: int, actor=None) -> None:
    """The customer leaves: the meter comes off with its final register, then the contract ends that day."""
    meter = MeterAssignment.objects.get(contract=contract, removed_at__isnull=True).meter
    customer_services.meter_remove(
        actor=actor, meter=meter, at=at, reading=register, reason="Khách chuyển đi"
    )
    customer_services.contract_set_status(
        actor=actor, contract=contract, status=ContractStatus.TERMINATED, on=timezone.localdate(at)
    )


# A contract that ended after its month's reading gets its final bill -------------------------------------


def test_a_contract_terminated_after_its_last_reading_is_billed_for_that_month(make_customer, read):
    # given: October read on 31/10, the customer gone on 03/11
    customer = make_customer()
    read(customer, OCT, 300, taken_at=aware(2025, 10, 31, 9))
    contract = Contract.objects.get(customer=customer)
    move_out(contract, at=aware(2025, 11, 3, 9), register=305)
    # when
    result = billing.billing_run(actor=None, period=OCT)
    # then: October is billed, and November (in force for two days, not read) is left out, counted
    invoice = bill(customer)
    assert (invoice.kwh, invoice.status) == (300, "draft")
    assert (result.invoices, result.without_reading) == (1, 0)
    assert billing.billing_run(actor=None, period=NOV).without_reading == 1


def test_a_contract_terminated_after_its_final_reading_still_gets_its_final_bill(org, make_customer, clerk):
    billing.tariffs_load_reference()
    customer = make_customer()
    contract = customer.contracts.get()
    billing.reading_record(actor=clerk, contract=contract, period=SEP, value=100, source="handheld",
                           taken_at=aware(2025, 9, 30, 9))  # fmt: skip
    billing.reading_record(actor=clerk, contract=contract, period=OCT, value=250, source="handheld",
                           taken_at=aware(2025, 10, 20, 9))  # fmt: skip
    move_out(contract, at=aware(2025, 10, 20, 10), register=250, actor=clerk)
    billing.billing_run(actor=clerk, period=OCT, unit=org["home"])
    assert bill(customer).kwh == 150


def test_a_contract_ended_before_the_month_is_not_billed_nor_counted_for_it(make_customer, read):
    customer = make_customer()
    read(customer, SEP, 100, taken_at=aware(2025, 9, 30, 9))
    move_out(Contract.objects.get(customer=customer), at=aware(2025, 9, 30, 12), register=100)
    result = billing.billing_run(actor=None, period=OCT)
    assert (result.invoices, result.without_reading) == (0, 0)


# The reading rules: a contract is read while it is in force ----------------------------------------------


def test_a_reading_after_the_contract_ended_is_refused(make_customer, read):
    customer = make_customer()
    contract = Contract.objects.get(customer=customer)
    read(customer, JUN, 100, taken_at=aware(2025, 6, 30, 9))
    move_out(contract, at=aware(2025, 6, 30, 12), register=100)
    with pytest.raises(ValidationError, match="The contract ended on 30/06/2025"):
        read(customer, OCT, 500)
    with pytest.raises(ValidationError, match="The contract ended on 30/06/2025"):
        billing.reading_estimate(actor=None, contract=contract, period=OCT)
    assert list(MeterReading.objects.filter(contract=contract).values_list("period", flat=True)) == [JUN]


def test_a_pending_contract_is_not_read(org, make_customer, tariffs):
    customer = make_customer()
    contract = customer_services.contract_create(
        actor=None, customer=customer, purpose="Kinh doanh", start_date=dt.date(2025, 1, 1), status="pending"
    )
    meter = customer_services.meter_register(actor=None, unit=org["home"], serial="PEND000001",
                                             kind=MeterKind.MECHANICAL)  # fmt: skip
    with contextlib.suppress(ValidationError):  # a meter may be refused on a contract not yet in force, too
        customer_services.meter_install(
            actor=None, meter=meter, contract=contract, at=aware(2025, 1, 1), reading=0
        )
    with pytest.raises(ValidationError):
        billing.reading_record(actor=None, contract=contract, period=OCT, value=50, source="handheld")
    assert not MeterReading.objects.filter(contract=contract).exists()


def test_the_contract_rule_reads_a_terminated_contract_up_to_its_final_month():
    ended = dt.date(2025, 10, 20)
    assert rules.contract_refusal(ContractStatus.TERMINATED, end_date=ended, period=OCT) == ""
    assert "ended on 20/10/2025" in rules.contract_refusal(
        ContractStatus.TERMINATED, end_date=ended, period=NOV
    )
    assert rules.contract_refusal(ContractStatus.PENDING, period=OCT).startswith(
        "The contract is not in force"
    )
    assert rules.contract_refusal(ContractStatus.ACTIVE, period=OCT) == ""


# A flagged reading holds its bill, whichever way the bill comes to it ------------------------------------


def test_a_draft_rebased_onto_a_flagged_reading_by_a_late_reading_is_held_as_the_run_would(
    make_customer, read
):
    # given: June–August 100 kWh a month, September not read, October 250 kWh drafted
    customer = make_customer()
    for period, value in ((JUN, 100), (JUL, 200), (AUG, 300)):
        read(customer, period, value)
    october = read(customer, OCT, 550)
    assert (october.status, october.kwh) == ("valid", 250)
    billing.billing_run(actor=None, period=OCT)
    assert bill(customer).status == "draft"
    # when: September arrives late (10 kWh): October is re-based to 240 kWh, a jump against the new history
    read(customer, SEP, 310)
    # then
    rebased = MeterReading.objects.current().get(contract__customer=customer, period=OCT)
    assert (rebased.kwh, rebased.status) == (240, "flagged")
    invoice = bill(customer)
    assert (invoice.reading_id, invoice.kwh, invoice.status, invoice.hold_kind) == (
        rebased.pk,
        240,
        "held",
        "flagged",
    )
    assert invoice.hold_reason.startswith("Reading flagged")
    assert billing.invoices_issue(actor=None, period=OCT) == 0


def test_a_draft_on_a_flagged_reading_is_never_issued_until_a_clerk_reviews_it(make_customer, read, clerk):
    customer = make_customer()
    read(customer, AUG, 100)
    read(customer, SEP, 200)
    flagged = read(customer, OCT, 1200)  # 1,000 kWh against ~103 expected
    assert flagged.status == "flagged"
    billing.billing_run(actor=None, period=OCT)
    invoice = bill(customer)
    Invoice.objects.filter(pk=invoice.pk).update(
        status="draft", hold_reason="", hold_kind=""
    )  # as before holds
    with pytest.raises(ValidationError, match="flagged"):
        billing.invoice_issue(actor=clerk, invoice=invoice)
    invoice.refresh_from_db()
    assert (invoice.status, invoice.issued_at) == ("draft", None)
    assert billing.invoices_issue(actor=None, period=OCT) == 0
    invoice.refresh_from_db()
    assert (invoice.status, invoice.hold_kind) == ("held", "flagged")
    assert invoice.hold_reason == f"Reading flagged: {flagged.flag_reason}"
    # the clerk reviews the reading and releases the bill: the reading is accepted, the bill issued
    billing.invoice_release(actor=clerk, invoice=invoice, reason="Khách mở xưởng may")
    flagged.refresh_from_db()
    assert (flagged.status, flagged.flag_reason != "") == ("valid", True)
    assert AuditRecord.objects.filter(action="reading.accept", object_id=str(flagged.pk)).count() == 1
    assert billing.invoices_issue(actor=None, period=OCT) == 1


# Anomaly scans and holds ----------------------------------------------------------------------------------


def test_a_second_anomaly_scan_does_not_hold_again_a_bill_whose_rise_was_confirmed(
    make_customer, read, clerk
):
    customer = make_customer()
    read(customer, SEP, 100)
    read(customer, OCT, 400)
    assert billing.anomaly_scan(actor=None, period=OCT)["reinspections"] == 1
    billing.billing_run(actor=None, period=OCT)
    assert (bill(customer).status, bill(customer).hold_kind) == ("held", "review")
    billing.reinspection_record(actor=clerk, item=Reinspection.objects.get(), outcome="confirmed",
                                reread_value=400, evidence="Đúng chỉ số")  # fmt: skip
    assert bill(customer).status == "draft"
    # when: the month is scanned again
    outcome = billing.anomaly_scan(actor=None, period=OCT)
    # then
    assert (outcome["reinspections"], outcome["held"]) == (0, 0)
    assert Reinspection.objects.open().count() == 0
    assert bill(customer).status == "draft"
    assert billing.invoices_issue(actor=None, period=OCT) == 1


def test_a_rise_of_exactly_the_threshold_opens_a_reinspection_on_every_database(make_customer, read):
    customer = make_customer()
    read(customer, SEP, 50)
    read(customer, OCT, 105)  # 55 kWh: exactly 1.1 × 50
    billing.billing_run(actor=None, period=OCT)
    outcome = billing.anomaly_scan(actor=None, period=OCT, threshold=Decimal("1.1"))
    assert (outcome["reinspections"], outcome["held"], outcome["bands"]["below_30"]) == (1, 1, 1)
    assert Reinspection.objects.get().rise_percent == 10
    assert (bill(customer).status, bill(customer).hold_kind) == ("held", "review")


def test_a_rise_just_below_the_threshold_opens_nothing(make_customer, read):
    customer = make_customer()
    read(customer, SEP, 1000)
    read(customer, OCT, 2099)  # 1,099 kWh: 1.099 × 1,000
    billing.billing_run(actor=None, period=OCT)
    assert billing.anomaly_scan(actor=None, period=OCT, threshold=Decimal("1.1"))["reinspections"] == 0
    assert bill(customer).status == "draft"


def test_a_rise_of_exactly_a_band_edge_counts_in_the_upper_band(make_customer, read):
    customer = make_customer()
    read(customer, SEP, 50)
    read(customer, OCT, 115)  # 65 kWh: exactly +30 %
    outcome = billing.anomaly_scan(actor=None, period=OCT, threshold=Decimal("2"))
    assert outcome["bands"] == {"below_30": 0, "from_30": 1, "from_50": 0, "from_100": 0, "from_300": 0}


@pytest.mark.parametrize("threshold", ["1.333", "100"])
def test_a_threshold_the_counts_cannot_keep_is_refused(make_customer, read, threshold):
    customer = make_customer()
    read(customer, SEP, 50)
    read(customer, OCT, 200)
    with pytest.raises(ValidationError, match="two decimals"):
        billing.anomaly_scan(actor=None, period=OCT, threshold=Decimal(threshold))
    assert not Reinspection.objects.exists()


def test_a_bill_held_by_a_clerk_stays_held_when_an_unrelated_reinspection_closes(make_customer, read, clerk):
    customer = make_customer()
    read(customer, SEP, 100)
    read(customer, OCT, 400)
    billing.billing_run(actor=None, period=OCT)
    billing.invoice_hold(actor=clerk, invoice=bill(customer), reason="Khách chuyển nhà: kiểm tra địa chỉ")
    assert billing.anomaly_scan(actor=None, period=OCT)["reinspections"] == 1
    billing.reinspection_record(actor=clerk, item=Reinspection.objects.get(), outcome="confirmed",
                                reread_value=400, evidence="Đúng chỉ số")  # fmt: skip
    invoice = bill(customer)
    assert (invoice.status, invoice.hold_kind, invoice.hold_reason) == (
        "held",
        "clerk",
        "Khách chuyển nhà: kiểm tra địa chỉ",
    )
    assert billing.invoices_issue(actor=None, period=OCT) == 0
    # only the clerk's release frees it
    billing.invoice_release(actor=clerk, invoice=invoice, reason="Địa chỉ đã kiểm tra")
    invoice.refresh_from_db()
    assert (invoice.status, invoice.hold_kind, invoice.hold_reason) == ("draft", "", "")
    assert billing.invoices_issue(actor=None, period=OCT) == 1


def test_a_resolved_dispute_leaves_a_bill_on_a_flagged_reading_held_for_the_flag(
    make_customer, read, catalogue, clerk
):
    from tickets.services import ticket_open

    customer = make_customer()
    read(customer, AUG, 100)
    read(customer, SEP, 200)
    flagged = read(customer, OCT, 1200)
    ticket = ticket_open(actor=None, category=catalogue["billing"], channel="phone", description="Chỉ số sai",
                         customer=customer).ticket  # fmt: skip
    dispute = billing.dispute_open(actor=clerk, ticket=ticket, reading=flagged, claim="Chỉ số sai")
    billing.billing_run(actor=None, period=OCT)
    assert bill(customer).hold_kind == "review"
    Reinspection.objects.filter(dispute=dispute).update(done_at=timezone.now(), outcome="confirmed")
    billing.dispute_resolve(actor=clerk, dispute=dispute, outcome="withdrawn")
    invoice = bill(customer)
    assert (invoice.status, invoice.hold_kind) == ("held", "flagged")
    assert invoice.hold_reason.startswith("Reading flagged")


# Payments -------------------------------------------------------------------------------------------------


def test_a_payment_dated_before_the_bill_was_issued_or_in_the_future_is_refused(make_customer, read, clerk):
    customer = make_customer()
    read(customer, OCT, 120)
    billing.billing_run(actor=None, period=OCT)
    billing.invoices_issue(actor=None, period=OCT)
    invoice = bill(customer)
    def pay(at, reference):
        return billing.payment_record(actor=clerk, invoice=invoice, amount=invoice.amount_due, paid_at=at,
                                      source="counter", reference=reference)  # fmt: skip

    for n, at in enumerate((invoice.issued_at - dt.timedelta(days=30), timezone.now() + dt.timedelta(days=30))):
        with pytest.raises(ValidationError) as refused:
            pay(at, f"R-{n}")
        assert "paid_at" in refused.value.message_dict
        invoice.refresh_from_db()
        assert (invoice.status, invoice.paid_at) == ("issued", None)
    paid_at = invoice.issued_at  # paid the moment it was issued: accepted
    pay(paid_at, "R-ok")
    invoice.refresh_from_db()
    assert (invoice.status, invoice.paid_at) == ("paid", paid_at)


# A bill that owes nothing is settled as it is issued -------------------------------------------------------


def test_a_month_of_no_consumption_is_issued_settled_and_takes_no_payment(make_customer, read, clerk):
    customer = make_customer()
    read(customer, OCT, 100)
    read(customer, NOV, 100)  # 0 kWh
    billing.billing_run(actor=None, period=NOV, unit=customer.unit)
    assert (bill(customer, NOV).total, bill(customer, NOV).amount_due) == (0, 0)

    assert billing.invoices_issue(actor=clerk, period=NOV, unit=customer.unit) == 1

    settled = bill(customer, NOV)
    assert settled.status == "paid"
    assert settled.paid_at == settled.issued_at
    record = AuditRecord.objects.get(action="invoice.paid")
    assert (record.rows, record.reason) == (1, str(billing.NOTHING_OWED))
    with pytest.raises(ValidationError):
        billing.payment_record(actor=clerk, invoice=settled, amount=1, paid_at=timezone.now(), source="counter",
                               reference="ZERO-1")  # fmt: skip


def test_a_bill_whose_offset_covers_its_total_is_settled_at_issue_one_that_owes_a_dong_is_not(
    make_customer, read, clerk
):
    covered, owing = make_customer(), make_customer()
    for customer in (covered, owing):
        read(customer, OCT, 100)
    billing.billing_run(actor=None, period=OCT, unit=covered.unit)
    # What refunds offset on a draft would leave: all of the total, and all but one đồng.
    Invoice.objects.filter(pk=bill(covered).pk).update(refund_offset=bill(covered).total)
    Invoice.objects.filter(pk=bill(owing).pk).update(refund_offset=bill(owing).total - 1)

    billing.invoice_issue(actor=clerk, invoice=bill(covered))
    billing.invoice_issue(actor=clerk, invoice=bill(owing))

    assert (bill(covered).status, bill(covered).paid_at == bill(covered).issued_at) == ("paid", True)
    assert (bill(owing).status, bill(owing).paid_at, bill(owing).amount_due) == ("issued", None, 1)
