"""A new price of one tariff category and the bills of another (money audit #2): ``refuse_if_billed`` looks at
the bills of the table's category only, as ``price_table_in_use`` does; a VAT rate applies to every category."""

import datetime as dt

import pytest
from django.core.exceptions import ValidationError

from billing import services as billing
from billing.models import Invoice, PriceTable, VatRate
from crm.models import Role
from customers.models import Contract
from tests.billing.conftest import OCT

DAY = dt.date(2025, 10, 20)


def _residential_october_issued(make_customer, read):
    read(make_customer(), OCT, 350)
    billing.billing_run(actor=None, period=OCT)
    billing.invoices_issue(actor=None, period=OCT)


def test_a_business_price_from_a_day_only_residential_bills_cover_is_taken(make_customer, read, staff):
    # Only a residential customer is billed for October (issued): no business bill covers any day of it.
    admin = staff[Role.ADMINISTRATOR]
    _residential_october_issued(make_customer, read)
    assert not Invoice.objects.exclude(contract__tariff_category="residential").exists()
    # A new business price from 20 October changes no bill (price_table_in_use looks at the table's category
    # only): it is taken.
    row = billing.price_table_create(
        actor=admin, tariff_category="business", kind="flat", valid_from=DAY, tiers=[(None, 3300)],
    )  # fmt: skip
    assert PriceTable.objects.filter(tariff_category="business", valid_from=DAY).get() == row
    assert list(row.steps.values_list("upper_kwh", "price")) == [(None, 3300)]
    assert not billing.price_table_in_use(row)


def test_a_residential_price_from_a_day_its_bills_cover_is_still_refused(make_customer, read, staff):
    _residential_october_issued(make_customer, read)
    tables = PriceTable.objects.count()
    with pytest.raises(ValidationError) as refused:
        billing.price_table_create(
            actor=staff[Role.ADMINISTRATOR], tariff_category="residential", kind="flat", valid_from=DAY,
            tiers=[(None, 3300)],
        )  # fmt: skip
    assert "Issued bills already cover that day" in " ".join(refused.value.messages)
    assert PriceTable.objects.count() == tables


def test_a_business_price_from_a_day_a_business_draft_covers_is_refused(make_customer, read, staff):
    # A business customer's October bill is made (a draft), and nobody else is billed.
    customer = make_customer()
    Contract.objects.filter(customer=customer).update(tariff_category="business")
    read(customer, OCT, 350)
    billing.billing_run(actor=None, period=OCT)
    assert Invoice.objects.get(customer=customer).status == "draft"
    tables = PriceTable.objects.count()
    with pytest.raises(ValidationError) as refused:
        billing.price_table_create(
            actor=staff[Role.ADMINISTRATOR], tariff_category="business", kind="flat", valid_from=DAY,
            tiers=[(None, 3300)],
        )  # fmt: skip
    assert "The bills of 10/2025 are made and not yet issued" in " ".join(refused.value.messages)
    assert PriceTable.objects.count() == tables
    # The residential price of the same day is taken: no residential bill covers it.
    billing.price_table_create(
        actor=staff[Role.ADMINISTRATOR], tariff_category="residential", kind="flat", valid_from=DAY,
        tiers=[(None, 2100)],
    )  # fmt: skip
    assert PriceTable.objects.filter(tariff_category="residential", valid_from=DAY).exists()


def test_a_vat_rate_from_a_day_bills_of_any_category_cover_is_refused(make_customer, read, staff):
    # VAT applies to every category: the residential bills alone refuse it.
    _residential_october_issued(make_customer, read)
    rates = VatRate.objects.count()
    with pytest.raises(ValidationError) as refused:
        billing.vat_rate_create(actor=staff[Role.ADMINISTRATOR], valid_from=DAY, percent=10)
    assert "Issued bills already cover that day" in " ".join(refused.value.messages)
    assert VatRate.objects.count() == rates
