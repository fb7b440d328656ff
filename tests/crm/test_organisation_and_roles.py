import datetime as dt

from django.contrib.auth.models import Group

from crm import reference_data
from crm.models import Company, Corporation, Role, Unit
from crm.roles import ROLE_PERMISSIONS, group_name, sync_role_groups
from crm.services import organisation_load_reference


def test_reference_organisation_has_the_five_corporations_and_real_units(org):
    assert set(Corporation.objects.values_list("code", flat=True)) == {
        "EVNNPC", "EVNCPC", "EVNSPC", "EVNHANOI", "EVNHCMC",
    }  # fmt: skip
    phu_yen = Company.objects.get(name="Công ty Điện lực Phú Yên")
    assert phu_yen.corporation.code == "EVNCPC"
    names = set(phu_yen.units.values_list("name", flat=True))
    assert {"Điện lực Sông Hinh", "Điện lực Sơn Hòa"} <= names
    assert Company.objects.filter(corporation__code="EVNHCMC").count() >= 10
    assert Unit.objects.get(code="PE0100").company.code == "PE01"


def test_merged_units_end_and_point_at_their_successor(org):
    son_hoa = Unit.objects.get(name="Điện lực Sơn Hòa")
    assert son_hoa.valid_to is not None
    assert son_hoa.successor.valid_from > son_hoa.valid_to
    assert not son_hoa.is_active_on(dt.date(2026, 1, 1))
    assert son_hoa.is_active_on(dt.date(2024, 1, 1))
    assert son_hoa not in Unit.objects.active_on(dt.date(2026, 1, 1))
    assert son_hoa.successor in Unit.objects.active_on(dt.date(2026, 1, 1))


def test_loading_the_organisation_twice_changes_nothing(org):
    before = list(Unit.objects.order_by("id").values_list("id", "code", "name", "successor_id", "valid_to"))
    created = organisation_load_reference()
    assert created == {"corporations": 0, "companies": 0, "units": 0}
    assert (
        list(Unit.objects.order_by("id").values_list("id", "code", "name", "successor_id", "valid_to"))
        == before
    )


def test_every_role_has_a_group_with_its_permissions_and_syncing_is_idempotent(db):
    sync_role_groups()
    first = {g.name: set(g.permissions.values_list("codename", flat=True)) for g in Group.objects.all()}
    sync_role_groups()
    second = {g.name: set(g.permissions.values_list("codename", flat=True)) for g in Group.objects.all()}
    assert first == second
    assert set(first) == {group_name(role) for role in Role.values}
    assert "flag_nuisance" in first[group_name(Role.AGENT)]
    assert "change_customer" not in first[group_name(Role.AGENT)]
    assert "change_customer" in first[group_name(Role.BILLING_CLERK)]
    assert len(ROLE_PERMISSIONS) == len(Role.values)


def test_staff_get_the_group_of_their_role(staff):
    for role, user in staff.items():
        assert list(user.groups.values_list("name", flat=True)) == [group_name(role)]
        assert user.is_staff
        assert user.staff_profile.role == role


def test_loading_the_organisation_again_restores_what_differs_from_the_reference(org):
    unit = Unit.objects.get(code="PE0100")
    successor_before = Unit.objects.get(name="Điện lực Sơn Hòa").successor_id
    Unit.objects.filter(pk=unit.pk).update(name="Điện lực đổi tên", district="Quận khác")
    Unit.objects.filter(name="Điện lực Sơn Hòa").update(successor=None)

    created = organisation_load_reference()

    assert created == {"corporations": 0, "companies": 0, "units": 0}
    unit.refresh_from_db()
    reference = next(row for row in reference_data.UNITS if row[1] == "PE0100")
    assert (unit.name, unit.district) == (reference[2], reference[3])
    assert Unit.objects.get(name="Điện lực Sơn Hòa").successor_id == successor_before
