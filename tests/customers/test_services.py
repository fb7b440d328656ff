import datetime as dt

import pytest
from django.core.exceptions import ValidationError
from django.db import IntegrityError, transaction
from django.utils import timezone

from crm.reference_data import wards
from customers import services
from customers.models import (
    Contract,
    ContractStatus,
    Customer,
    CustomerEvent,
    CustomerEventKind,
    CustomerPhone,
    MeterAssignment,
    MeterKind,
    MeterStatus,
)
from customers.normalise import fold


def test_create_takes_the_units_next_code_and_normalises_phones(org, staff):
    # given
    unit = org["home"]
    agent = staff["billing_clerk"]
    # when
    first = services.customer_create(
        actor=agent,
        unit=unit,
        full_name="Nguyễn Văn An",
        street="12 Lê Lợi",
        ward="Phường Bến Nghé",
        phones=["0903 123 456", "84-903-123-456", "028 3822 1234"],
    )
    second = services.customer_create(
        actor=agent, unit=unit, full_name="Lê Thị Bé", street="1 Pasteur", ward="Phường Bến Thành"
    )
    # then
    assert first.code == "PE01000000001"
    assert second.code == "PE01000000002"
    assert list(first.phones.order_by("id").values_list("number", "is_primary")) == [
        ("+84903123456", True),
        ("+842838221234", False),
    ]
    assert first.district == unit.district
    assert first.province == unit.company.province
    assert first.search_text == f" nguyen van an 12 le loi phuong ben nghe {fold(unit.district)} nguyenvanan "
    event = CustomerEvent.objects.get(customer=first)
    assert event.kind == CustomerEventKind.CREATED
    assert event.actor == agent
    assert event.after["phones"] == ["+84903123456", "+842838221234"]


def test_code_of_another_unit_is_refused_and_nothing_is_written(org):
    with pytest.raises(ValidationError) as exc:
        services.customer_create(
            actor=None, unit=org["home"], code="PE02010000001", full_name="A", street="1 B", ward="C"
        )
    assert "code" in exc.value.message_dict
    assert Customer.objects.count() == 0
    assert CustomerEvent.objects.count() == 0


def test_a_bad_phone_refuses_the_whole_customer(org):
    with pytest.raises(ValidationError) as exc:
        services.customer_create(
            actor=None,
            unit=org["home"],
            full_name="A",
            street="1 B",
            ward="C",
            phones=["0903 123 456", "12ab"],
        )
    assert "12ab" in exc.value.message_dict["phones"][0]
    assert Customer.objects.count() == 0
    assert CustomerPhone.objects.count() == 0


def test_a_merged_units_successor_may_keep_codes_of_its_predecessor(org):
    successor = org["other_corporation"]
    predecessor = successor.predecessors.order_by("code").first()
    customer = services.customer_create(
        actor=None,
        unit=successor,
        code=f"{predecessor.code}0000042",
        full_name="Hồ Văn Tư",
        street="1",
        ward=wards()[successor.code][0],
    )
    assert customer.code.startswith(predecessor.code)


def test_a_successor_keeps_the_codes_of_a_chain_of_merges_and_not_of_one_dated_ahead(org):
    import datetime as dt

    from django.core.exceptions import ValidationError
    from django.utils import timezone

    from crm.models import Unit
    from tests.organisation import merge

    # given A merged into B last year, B into C yesterday, D into C tomorrow
    active = Unit.objects.filter(company__corporation__code="EVNHCMC", valid_to__isnull=True, predecessors=None)
    a, b, c, d = active.order_by("code")[:4]
    today = timezone.localdate()
    merge(a, b, today - dt.timedelta(days=365))
    merge(b, c, today - dt.timedelta(days=1))
    merge(d, c, today + dt.timedelta(days=1))

    def create(prefix):
        return services.customer_create(
            actor=None, unit=c, code=f"{prefix}0000042", full_name="Hồ Văn Tư", street="1",
            ward=wards()[c.code][0],
        )  # fmt: skip

    # then C takes a code of A (through B), not yet one of D
    assert create(a.code).unit_id == c.pk
    with pytest.raises(ValidationError) as refused:
        create(d.code)
    assert f"starts with {c.code}" in refused.value.message_dict["code"][0]
    assert not Customer.objects.filter(code=f"{d.code}0000042").exists()


def test_update_records_only_what_changed(org, make_customer, staff):
    customer = make_customer()
    services.customer_update(
        actor=staff["supervisor"],
        customer=customer,
        changes={"full_name": "Nguyễn Văn Ân", "ward": customer.ward},
    )
    customer.refresh_from_db()
    event = CustomerEvent.objects.filter(customer=customer, kind=CustomerEventKind.UPDATED).get()
    assert event.before == {"full_name": "Nguyễn Văn An"}
    assert event.after == {"full_name": "Nguyễn Văn Ân"}
    assert customer.search_text.startswith(" nguyen van an ")


def test_update_refuses_fields_that_services_own(org, make_customer):
    customer = make_customer()
    with pytest.raises(ValidationError):
        services.customer_update(actor=None, customer=customer, changes={"is_nuisance": True})
    customer.refresh_from_db()
    assert customer.is_nuisance is False


def test_nuisance_flag_keeps_the_record_and_who_set_it(org, make_customer, staff):
    customer = make_customer()
    agent = staff["agent"]
    services.customer_flag_nuisance(actor=agent, customer=customer, reason="Gọi quấy rối 5 lần trong ngày")
    customer.refresh_from_db()
    assert customer.is_nuisance
    assert customer.nuisance_set_by == agent
    assert customer.nuisance_set_at is not None
    services.customer_clear_nuisance(actor=agent, customer=customer, reason="Nhầm")
    customer.refresh_from_db()
    assert not customer.is_nuisance
    kinds = list(
        CustomerEvent.objects.filter(customer=customer).order_by("id").values_list("kind", flat=True)
    )
    assert kinds[-2:] == [CustomerEventKind.NUISANCE_FLAGGED, CustomerEventKind.NUISANCE_CLEARED]
    cleared = CustomerEvent.objects.get(customer=customer, kind=CustomerEventKind.NUISANCE_CLEARED)
    assert cleared.before["nuisance_reason"] == "Gọi quấy rối 5 lần trong ngày"


def test_nuisance_flag_needs_a_reason(org, make_customer, staff):
    customer = make_customer()
    with pytest.raises(ValidationError):
        services.customer_flag_nuisance(actor=staff["agent"], customer=customer, reason="  ")
    customer.refresh_from_db()
    assert not customer.is_nuisance


def test_database_refuses_an_incomplete_nuisance_flag(org, make_customer):
    customer = make_customer()
    with pytest.raises(IntegrityError), transaction.atomic():
        Customer.objects.filter(pk=customer.pk).update(is_nuisance=True)


def test_database_refuses_a_malformed_code(org, make_customer):
    customer = make_customer()
    with pytest.raises(IntegrityError), transaction.atomic():
        Customer.objects.filter(pk=customer.pk).update(code="PE01-123")


def test_database_refuses_an_unnormalised_phone(org, make_customer):
    customer = make_customer()
    with pytest.raises(IntegrityError), transaction.atomic():
        CustomerPhone.objects.create(customer=customer, number="0903123456")


def test_contract_transitions_are_guarded(org, make_customer):
    customer = make_customer()
    contract = customer.contracts.get()
    assert contract.status == ContractStatus.ACTIVE
    services.contract_set_status(actor=None, contract=contract, status=ContractStatus.SUSPENDED)
    meter = MeterAssignment.objects.get(contract=contract).meter
    services.meter_remove(actor=None, meter=meter, at=timezone.now(), reading=0, reason="Thanh lý hợp đồng")
    services.contract_set_status(actor=None, contract=contract, status=ContractStatus.TERMINATED)
    contract.refresh_from_db()
    assert contract.end_date == timezone.localdate()
    with pytest.raises(ValidationError):
        services.contract_set_status(actor=None, contract=contract, status=ContractStatus.ACTIVE)
    contract.refresh_from_db()
    assert contract.status == ContractStatus.TERMINATED


def test_contract_number_follows_the_customer_code(org, make_customer):
    customer = make_customer()
    second = services.contract_create(
        actor=None,
        customer=customer,
        purpose="Kinh doanh",
        start_date=dt.date(2024, 1, 1),
        tariff_category="business",
    )
    assert second.number == f"{customer.code}-02"
    assert second.status == ContractStatus.PENDING


def test_meter_history_keeps_removed_and_current_meters(org, make_customer):
    customer = make_customer()
    contract = customer.contracts.get()
    old = MeterAssignment.objects.get(contract=contract)
    removed_at = timezone.now()
    services.meter_remove(
        actor=None, meter=old.meter, at=removed_at, reading=1234, reason="Cháy công tơ", faulty=True
    )
    new_meter = services.meter_register(
        actor=None, unit=org["home"], serial="gx0000099", kind=MeterKind.MECHANICAL
    )
    services.meter_install(actor=None, meter=new_meter, contract=contract, at=removed_at, reading=0)
    history = list(MeterAssignment.objects.filter(contract=contract).order_by("installed_at", "id"))
    assert [(a.meter.serial, a.reading_at_removal) for a in history] == [
        (old.meter.serial, 1234),
        ("GX0000099", None),
    ]
    old.meter.refresh_from_db()
    assert old.meter.status == MeterStatus.FAULTY


def test_an_installed_meter_cannot_be_installed_twice(org, make_customer):
    customer = make_customer()
    assignment = MeterAssignment.objects.get(contract__customer=customer)
    other = make_customer(name="Phạm Văn B", phones=["0912 000 111"])
    with pytest.raises(ValidationError):
        services.meter_install(
            actor=None, meter=assignment.meter, contract=other.contracts.get(), at=timezone.now(), reading=0
        )
    assert MeterAssignment.objects.filter(meter=assignment.meter).count() == 1


def test_database_allows_one_open_assignment_per_meter(org, make_customer):
    customer = make_customer()
    assignment = MeterAssignment.objects.get(contract__customer=customer)
    with pytest.raises(IntegrityError), transaction.atomic():
        MeterAssignment.objects.create(
            meter=assignment.meter,
            contract=assignment.contract,
            installed_at=timezone.now(),
            reading_at_install=0,
        )


def test_terminated_contract_needs_an_end_date_in_the_database(org, make_customer):
    customer = make_customer()
    with pytest.raises(IntegrityError), transaction.atomic():
        Contract.objects.filter(customer=customer).update(status=ContractStatus.TERMINATED)


def test_a_contract_number_typed_by_hand_is_skipped_by_the_next_one(org, make_customer):
    customer = make_customer()  # its contract is -01
    typed = services.contract_create(
        actor=None, customer=customer, purpose="Kho", start_date=dt.date(2024, 1, 1), number=f"{customer.code}-02"
    )
    following = services.contract_create(
        actor=None, customer=customer, purpose="Kinh doanh", start_date=dt.date(2024, 1, 1)
    )
    assert (typed.number, following.number) == (f"{customer.code}-02", f"{customer.code}-03")
