"""A customer's ward is one of their unit's wards (``crm.reference_data.wards``), as an outage names them: a ward
the unit's list does not hold is refused on the field ``ward`` (create, update, the admin, the import); one
typed in another case, with other spaces or with decomposed accents is stored as the list spells it. A unit
without a list takes any ward; a ward recorded before the rule is kept while it is not changed."""

from __future__ import annotations

import unicodedata

import pytest
from django.core.exceptions import ValidationError
from django.urls import reverse

from crm.models import Role
from crm.reference_data import wards
from customers import rules, services
from customers.models import Customer, CustomerEvent
from tests.customers.test_import_export import confirm, csv_bytes, customer_row, preview, problems


def _create(org, ward, **kw):
    return services.customer_create(
        actor=None, unit=org["home"], full_name="Trần Thị Hoa", street="3 Lê Duẩn", ward=ward, **kw
    )


def test_a_ward_the_unit_does_not_serve_is_refused_on_its_field(make_customer):
    # PE0100 (Quận 1) serves Phường Bến Nghé, Bến Thành…; Phường Võ Thị Sáu is PE0101's (Quận 3). Saved, the
    # customer is never covered by a ward-scoped outage of their unit (tickets.models.Incident.covers).
    customer = make_customer(ward="Phường Bến Nghé")
    events = CustomerEvent.objects.filter(customer=customer).count()
    with pytest.raises(ValidationError) as refused:
        services.customer_update(actor=None, customer=customer, changes={"ward": "Phường Võ Thị Sáu"})
    assert list(refused.value.message_dict) == ["ward"]
    assert refused.value.message_dict["ward"] == [
        "Phường Võ Thị Sáu is not a ward of unit PE0100. Choose one of its wards: "
        + ", ".join(wards()["PE0100"])
        + "."
    ]
    customer.refresh_from_db()
    assert customer.ward == "Phường Bến Nghé"
    assert CustomerEvent.objects.filter(customer=customer).count() == events


def test_a_ward_typed_in_another_spelling_is_stored_as_the_list_spells_it(make_customer):
    customer = make_customer(ward="Phường Bến Nghé")
    decomposed = unicodedata.normalize("NFD", "phường  BẾN THÀNH ")
    updated = services.customer_update(actor=None, customer=customer, changes={"ward": decomposed})
    assert updated.ward == "Phường Bến Thành"
    assert Customer.objects.get(pk=customer.pk).ward == "Phường Bến Thành"
    event = CustomerEvent.objects.filter(customer=customer).latest("pk")
    assert (event.before, event.after) == ({"ward": "Phường Bến Nghé"}, {"ward": "Phường Bến Thành"})


def test_the_same_ward_in_another_case_is_no_change(make_customer):
    customer = make_customer(ward="Phường Bến Nghé")
    events = CustomerEvent.objects.filter(customer=customer).count()
    services.customer_update(actor=None, customer=customer, changes={"ward": "phường bến nghé"})
    assert Customer.objects.get(pk=customer.pk).ward == "Phường Bến Nghé"
    assert CustomerEvent.objects.filter(customer=customer).count() == events


def test_a_ward_without_its_accents_is_refused_not_guessed(org):
    # the name key keeps the accents: "Phuong Ben Nghe" is no ward of the list (nor would an outage cover it)
    with pytest.raises(ValidationError) as refused:
        _create(org, "Phuong Ben Nghe")
    assert list(refused.value.message_dict) == ["ward"]
    assert not Customer.objects.exists()


def test_create_refuses_another_units_ward_and_stores_the_lists_spelling(org):
    with pytest.raises(ValidationError) as refused:
        _create(org, "Phường Võ Thị Sáu", phones=["0903 123 456"])
    assert list(refused.value.message_dict) == ["ward"]
    assert not Customer.objects.exists() and not CustomerEvent.objects.exists()
    customer = _create(org, "phường tân định")
    assert customer.ward == "Phường Tân Định"
    assert CustomerEvent.objects.get(customer=customer).after["ward"] == "Phường Tân Định"


def test_a_blank_ward_is_left_to_the_models_own_check(org):
    with pytest.raises(ValidationError) as refused:
        _create(org, "  ")
    assert "ward" in refused.value.message_dict
    assert "is not a ward of unit" not in " ".join(refused.value.message_dict["ward"])


def test_a_unit_without_a_list_takes_any_ward(org, monkeypatch):
    monkeypatch.setattr(rules, "wards", lambda: {})
    customer = _create(org, "Ấp Chợ")
    assert customer.ward == "Ấp Chợ"
    updated = services.customer_update(actor=None, customer=customer, changes={"ward": "Tổ 5"})
    assert updated.ward == "Tổ 5"


def test_a_ward_recorded_before_the_rule_is_kept_while_other_fields_change(make_customer):
    # given a customer whose ward was saved before wards were checked
    customer = make_customer(ward="Phường Bến Nghé")
    Customer.objects.filter(pk=customer.pk).update(ward="Khu phố 3")
    customer.refresh_from_db()
    # when a form posts the ward unchanged (in another case) with a new street
    services.customer_update(
        actor=None, customer=customer, changes={"ward": "khu phố 3", "street": "9 Lê Lợi"}
    )
    customer.refresh_from_db()
    # then the street is saved and the ward kept as it was
    assert (customer.street, customer.ward) == ("9 Lê Lợi", "Khu phố 3")
    # and a change to another ward of nowhere is refused
    with pytest.raises(ValidationError) as refused:
        services.customer_update(actor=None, customer=customer, changes={"ward": "Khu phố 4"})
    assert list(refused.value.message_dict) == ["ward"]
    assert Customer.objects.get(pk=customer.pk).ward == "Khu phố 3"


def test_every_units_list_passes_its_own_rule(org):
    from crm.models import Unit

    for unit in Unit.objects.filter(code__in=list(wards())):
        for ward in wards()[unit.code]:
            assert rules.unit_ward(unit, ward) == ward


# The import and the admin go through the services --------------------------------------------------------


@pytest.fixture
def clerk_client(client, staff):
    client.force_login(staff[Role.BILLING_CLERK])
    return client


def test_an_import_row_with_another_units_ward_is_refused_on_the_ward_and_others_are_written(
    clerk_client, org
):
    rows = [
        customer_row(full_name="Đúng Một", ward="phường đa kao"),
        customer_row(full_name="Sai Phường", ward="Phường Võ Thị Sáu"),
    ]
    previewed = preview(clerk_client, "customer", csv_bytes(rows))
    [(row, messages)] = problems(previewed)
    assert row == 3 and len(messages) == 1
    assert "Phường Võ Thị Sáu is not a ward of unit PE0100" in messages[0]
    assert not Customer.objects.exists()
    result = confirm(clerk_client, "customer", previewed, skip_bad_rows=True)
    assert result.context["written"] is True
    assert list(Customer.objects.values_list("full_name", "ward")) == [("Đúng Một", "Phường Đa Kao")]


def test_an_import_changing_a_customers_ward_to_another_units_is_refused(clerk_client, org, make_customer):
    customer = make_customer(ward="Phường Bến Nghé")
    rows = [customer_row(code=customer.code, full_name=customer.full_name, ward="Phường 14", phones="")]
    previewed = preview(clerk_client, "customer", csv_bytes(rows))
    [(row, messages)] = problems(previewed)
    assert row == 2 and "Phường 14 is not a ward of unit PE0100" in messages[0]
    confirm(clerk_client, "customer", previewed, skip_bad_rows=True)
    assert Customer.objects.get(pk=customer.pk).ward == "Phường Bến Nghé"


def test_the_admin_form_shows_the_ward_refusal_and_registers_nobody(clerk_client, org):
    response = clerk_client.post(
        reverse("admin:customers_customer_add"),
        {
            "unit": org["home"].pk, "code": "", "full_name": "Võ Thị Sáu", "national_id": "", "email": "",
            "street": "7 Nguyễn Trãi", "ward": "Phường Võ Thị Sáu", "district": "", "province": "",
            "customer_type": "residential", "households": "1", "phones_text": "0903 555 666",
            "phones-TOTAL_FORMS": "0", "phones-INITIAL_FORMS": "0",
        },
    )  # fmt: skip
    # the form shows the services' refusal on the ward field, keeping what was typed (no redirect)
    assert response.status_code == 200
    assert response.context["adminform"].form.errors["ward"] == [
        "Phường Võ Thị Sáu is not a ward of unit PE0100. Choose one of its wards: "
        + ", ".join(wards()["PE0100"]) + "."
    ]
    assert 'value="Võ Thị Sáu"' in response.content.decode()
    assert not Customer.objects.exists()


def test_the_demo_seed_gives_every_customer_a_ward_of_their_units_list(org):
    # the bench seeds through the same command (bench/__main__.py: seed_demo … units="PE")
    import io

    from django.core.management import call_command

    call_command("seed_demo", customers=60, seed=3, units="PE", stdout=io.StringIO())
    seeded = list(Customer.objects.select_related("unit"))
    assert len(seeded) == 60
    for customer in seeded:
        assert rules.unit_ward(customer.unit, customer.ward) == customer.ward
