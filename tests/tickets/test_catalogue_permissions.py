"""The catalogue's writes (SLA policies, public holidays) are national reference data: only staff who hold the
permission and see every unit make them; anyone else is refused and nothing changes. Until
``tests/test_permissions_everywhere.py`` walks them, this walks them as every role."""

from __future__ import annotations

import datetime as dt

import pytest
from django.core.exceptions import PermissionDenied
from django.db import transaction
from django.utils import timezone

from crm.models import Role
from crm.permissions import sees_everything
from tickets.models import Holiday, SlaPolicy
from tickets.services import holiday_delete, holiday_save, sla_policy_create

DAY = dt.date(2031, 3, 3)


def calls(catalogue):
    return {
        "tickets.add_slapolicy": lambda actor: sla_policy_create(
            actor=actor, category=catalogue["billing"], valid_from=timezone.now() + dt.timedelta(days=1),
            resolve_minutes=60,
        ),
        "tickets.add_holiday": lambda actor: holiday_save(actor=actor, day=DAY, name="Nghỉ bù"),
        "tickets.change_holiday": lambda actor: holiday_save(
            actor=actor, day=DAY + dt.timedelta(days=1), name="Nghỉ bù", holiday=Holiday.objects.order_by("day").first()
        ),
        "tickets.delete_holiday": lambda actor: holiday_delete(
            actor=actor, holiday=Holiday.objects.order_by("day").first()
        ),
    }  # fmt: skip


@pytest.mark.django_db
def test_each_role_may_write_the_catalogue_or_is_refused_and_nothing_changes(staff, catalogue):
    allowed_to = set()
    for who, user in staff.items():
        for perm, call in calls(catalogue).items():
            allowed = user.has_perm(perm) and sees_everything(user)
            before = (list(SlaPolicy.objects.values_list()), list(Holiday.objects.values_list()))
            if allowed:
                with transaction.atomic():
                    call(user)
                    transaction.set_rollback(True)  # each call starts from the same catalogue
                allowed_to.add(who)
                continue
            with pytest.raises(PermissionDenied):
                call(user)
            after = (list(SlaPolicy.objects.values_list()), list(Holiday.objects.values_list()))
            assert after == before, f"{who} was refused {perm} but rows changed"
    # the walk did both: the administrator writes, the supervisor and the agent may not
    assert Role.ADMINISTRATOR in allowed_to
    assert not allowed_to & {Role.AGENT, Role.SUPERVISOR}
