"""A contract suspended after its month was read: the month's run bills what was read while the contract was in
force (a suspension stops the reading, not the bill of what was read)."""

from __future__ import annotations

import datetime as dt

import pytest

from billing import services as billing
from billing.models import BillingRun, Invoice
from customers import services as customer_services
from customers.models import Contract, ContractStatus
from tests.billing.conftest import NOV, OCT


def _suspend(customer) -> Contract:
    contract = Contract.objects.get(customer=customer)
    customer_services.contract_set_status(actor=None, contract=contract, status=ContractStatus.SUSPENDED)
    return contract


def test_a_month_read_before_the_contract_was_suspended_is_billed_by_its_run(make_customer, read, org):
    # given: October read while the contract is active (250 kWh), then a temporary stop asked on 02/11
    customer = make_customer()
    read(customer, OCT, 250)
    contract = _suspend(customer)
    # when: October's run, then back in service, November read (100 kWh more) and billed
    october = billing.billing_run(actor=None, period=OCT, unit=org["home"])
    customer_services.contract_set_status(actor=None, contract=contract, status=ContractStatus.ACTIVE)
    read(customer, NOV, 350)
    november = billing.billing_run(actor=None, period=NOV, unit=org["home"])
    # then: October's 250 kWh are billed by October's run, November's 100 kWh by November's
    assert (october.invoices, october.without_reading, october.held) == (1, 0, 0)
    assert (november.invoices, november.without_reading) == (1, 0)
    bills = dict(Invoice.objects.filter(customer=customer).values_list("period", "kwh"))
    assert bills == {OCT: 250, NOV: 100}
    assert Invoice.objects.get(customer=customer, period=OCT).total == 636_768
    assert BillingRun.objects.get(pk=october.run.pk).invoices == 1


def test_a_suspended_contract_is_billed_once_for_its_month_and_not_counted_without_reading(
    make_customer, read
):
    # given: two suspended contracts, one read for October before its stop, one not read
    read_first = make_customer(phones=["0903 650 001"])
    read(read_first, OCT, 120)
    _suspend(read_first)
    never_read = make_customer(phones=["0903 650 002"])
    _suspend(never_read)
    # when: the run, and the run again
    first = billing.billing_run(actor=None, period=OCT)
    again = billing.billing_run(actor=None, period=OCT)
    # then: the read month is billed once; a suspended contract not read is not read and not billed
    assert (first.invoices, first.without_reading) == (1, 0)
    assert (again.invoices, again.without_reading) == (0, 0)
    assert list(Invoice.objects.values_list("customer_id", "kwh")) == [(read_first.pk, 120)]


def test_a_terminated_contract_is_not_billed_for_a_month_after_its_end(make_customer, read):
    # given: a contract read in October, whose end is recorded as 30/09
    customer = make_customer()
    read(customer, OCT, 120)
    Contract.objects.filter(customer=customer).update(
        status=ContractStatus.TERMINATED, end_date=dt.date(2025, 9, 30)
    )
    # when
    result = billing.billing_run(actor=None, period=OCT)
    # then: nothing is billed for a month after the contract's end
    assert (result.invoices, result.without_reading) == (0, 0)
    assert not Invoice.objects.filter(customer=customer).exists()


@pytest.fixture(autouse=True)
def _tariffs(tariffs):
    """Every test here bills with the reference price tables."""
