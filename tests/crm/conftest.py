"""Fixtures of the organisation's and accounts' tests."""

from __future__ import annotations

import pytest

from crm.models import Role


@pytest.fixture
def local_administrator(org, make_staff):
    """A supervisor of the home unit's company put in the administrators' group (the README's "local
    administrator"): the administrators' permissions, over what a supervisor sees (one company)."""
    from django.contrib.auth.models import Group

    from crm.roles import group_name

    user = make_staff(Role.SUPERVISOR, [org["home"]], username="local.admin")
    user.groups.add(Group.objects.get(name=group_name(Role.ADMINISTRATOR)))
    return user
