"""The national catalogue (categories, SLA policies, holidays) and the billing reference data (price tables, VAT
rates) are changed only by staff who see everything: a company's local administrator, who holds the
administrators' permissions over one company, reads them and changes nothing."""

from __future__ import annotations

import pytest
from django.urls import reverse

from crm.models import Role
from tickets.models import Category, Holiday


@pytest.fixture
def local_administrator(org, make_staff):
    from django.contrib.auth.models import Group

    from crm.roles import group_name

    user = make_staff(Role.SUPERVISOR, [org["home"]], username="local.admin")
    user.groups.add(Group.objects.get(name=group_name(Role.ADMINISTRATOR)))
    return user


@pytest.mark.parametrize(
    "model",
    ["tickets_holiday", "tickets_category", "tickets_slapolicy", "billing_pricetable", "billing_vatrate"],
)
def test_a_local_administrator_reads_the_national_reference_data_and_may_not_add_to_it(
    client, catalogue, local_administrator, staff, model
):
    client.force_login(local_administrator)
    listed = client.get(reverse(f"admin:{model}_changelist"))
    add = client.get(reverse(f"admin:{model}_add"))
    assert (listed.status_code, add.status_code) == (200, 403)
    client.force_login(staff[Role.ADMINISTRATOR])
    assert client.get(reverse(f"admin:{model}_add")).status_code == 200


def test_a_local_administrator_changes_no_holiday_nor_category_and_nothing_is_written(
    client, catalogue, local_administrator
):
    holiday = Holiday.objects.create(day="2030-01-01", name="Tết Dương lịch")
    category = catalogue["billing"]
    holidays = sorted(Holiday.objects.values_list("pk", "name"))
    client.force_login(local_administrator)
    added = client.post(reverse("admin:tickets_holiday_add"), {"day": "2030-01-02", "name": "Nghỉ bù"})
    changed = client.post(
        reverse("admin:tickets_category_change", args=[category.pk]),
        {"code": category.code, "name": "Đổi tên", "is_active": ""},
    )
    deleted = client.post(reverse("admin:tickets_holiday_delete", args=[holiday.pk]), {"post": "yes"})
    assert (added.status_code, changed.status_code, deleted.status_code) == (403, 403, 403)
    assert sorted(Holiday.objects.values_list("pk", "name")) == holidays
    assert Category.objects.get(pk=category.pk).name == category.name
