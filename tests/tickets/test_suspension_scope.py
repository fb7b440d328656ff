"""Suspensions are made over the units their maker sees: the service refuses a unit beyond them (nothing is
written), and the admin's form offers, lists and deletes only within them."""

from __future__ import annotations

import datetime as dt

import pytest
from django.urls import reverse
from django.utils import timezone

from core.errors import NotAllowed
from crm.models import Role
from tickets.models import Suspension
from tickets.services import suspension_create


@pytest.fixture
def local_administrator(org, make_staff):
    """A supervisor of the home unit's company put in the administrators' group (the README's "local
    administrator"): the administrators' permissions, over what a supervisor sees (one company)."""
    from django.contrib.auth.models import Group

    from crm.roles import group_name

    user = make_staff(Role.SUPERVISOR, [org["home"]], username="local.admin")
    user.groups.add(Group.objects.get(name=group_name(Role.ADMINISTRATOR)))
    return user


def _suspend(actor, category, units):
    now = timezone.now()
    return suspension_create(
        actor=actor, category=category, units=units, starts_at=now, ends_at=now + dt.timedelta(days=1),
        reason="Bảo trì",
    )  # fmt: skip


def test_a_local_administrator_cannot_suspend_a_service_in_another_corporations_units(
    client, org, catalogue, local_administrator
):
    """A company's local administrator suspends "billing" requests in a unit of another corporation: refused by
    the service, and the admin's form does not offer that unit; nothing is written."""
    other = org["other_corporation"]
    client.force_login(local_administrator)
    page = client.get(reverse("admin:tickets_suspension_add"))
    offered = {unit.pk for unit in page.context["adminform"].form.fields["units"].queryset}
    with pytest.raises(NotAllowed, match="a unit you do not serve"):
        _suspend(local_administrator, catalogue["billing"], [other])
    assert not Suspension.objects.exists()
    assert org["home"].pk in offered and other.pk not in offered


def test_a_suspension_over_one_unit_seen_and_one_not_is_refused_whole(
    client, org, catalogue, local_administrator
):
    """The units are checked each: a unit of their own listed first does not carry one of another corporation
    through, on the form (a forged choice) or in the service."""
    home, other = org["home"], org["other_corporation"]
    with pytest.raises(NotAllowed):
        _suspend(local_administrator, catalogue["billing"], [home, other])
    client.force_login(local_administrator)
    now = timezone.localtime()
    forged = client.post(
        reverse("admin:tickets_suspension_add"),
        {"category": catalogue["billing"].pk, "units": [home.pk, other.pk], "reason": "Bảo trì",
         "starts_at_0": now.strftime("%Y-%m-%d"), "starts_at_1": "00:00:00",
         "ends_at_0": (now + dt.timedelta(days=2)).strftime("%Y-%m-%d"), "ends_at_1": "00:00:00"},
    )  # fmt: skip
    assert forged.status_code == 200 and "units" in forged.context["adminform"].form.errors
    assert not Suspension.objects.exists()


def test_a_suspension_reaching_beyond_the_users_units_is_not_deleted_by_them(
    client, org, catalogue, local_administrator, staff
):
    """A suspension the central administrators made over a unit of the local administrator's company and one of
    another corporation is listed to them (it says why intake is refused) but not deleted by them; one over
    their own unit is."""
    theirs = _suspend(None, catalogue["billing"], [org["home"], org["other_corporation"]])
    ours = _suspend(local_administrator, catalogue["billing"], [org["home"]])
    client.force_login(local_administrator)
    listed = client.get(reverse("admin:tickets_suspension_changelist"))
    refused = client.post(reverse("admin:tickets_suspension_delete", args=[theirs.pk]), {"post": "yes"})
    deleted = client.post(reverse("admin:tickets_suspension_delete", args=[ours.pk]), {"post": "yes"})
    assert sorted(s.pk for s in listed.context["cl"].result_list) == sorted([theirs.pk, ours.pk])
    assert (refused.status_code, deleted.status_code) == (403, 302)
    assert list(Suspension.objects.values_list("pk", flat=True)) == [theirs.pk]
    assert sorted(Suspension.objects.get().units.values_list("pk", flat=True)) == sorted(
        [org["home"].pk, org["other_corporation"].pk]
    )
