"""A member of staff whose profile is removed has left: their API tokens are revoked, as a deactivation's are."""

from __future__ import annotations

import pytest
from django.contrib.auth.models import Permission, User

from crm.models import ApiToken, Role, StaffProfile
from crm.permissions import NotAllowed
from crm.services import staff_delete
from crm.tokens import api_token_create

URL = "/api/v1/units/"


def _api(client, secret):
    return client.get(URL, HTTP_AUTHORIZATION=f"Token {secret}", REMOTE_ADDR="10.0.0.9").status_code


def test_removing_a_profile_revokes_the_accounts_tokens_and_only_theirs(client, org, make_staff, caplog):
    # given an agent with an API token that works, and a colleague's token
    agent = make_staff(Role.AGENT, [org["home"]])
    colleague = make_staff(Role.AGENT, [org["home"]])
    token, secret = api_token_create(actor=None, user=agent, name="softphone")
    assert ApiToken.objects.filter(pk=token.pk).exists()
    other, other_secret = api_token_create(actor=None, user=colleague, name="softphone")
    # the account keeps a permission granted directly: without a profile it would still hold it
    agent.user_permissions.add(Permission.objects.get(codename="view_unit"))
    assert _api(client, secret) == 200
    # when the agent's profile is removed (they have left)
    with caplog.at_level("INFO", logger="tongdai.security"):
        staff_delete(actor=None, profile=agent.staff_profile)
    assert f"1 API token(s) of {agent.username} revoked: the staff profile was removed" in caplog.messages
    # then their token is gone and refused at once; the account stays active, the colleague's token works
    assert not ApiToken.objects.filter(pk=token.pk).exists()
    assert not StaffProfile.objects.filter(user=agent).exists()
    assert User.objects.get(pk=agent.pk).is_active
    assert _api(client, secret) == 401
    assert ApiToken.objects.filter(pk=other.pk).exists()
    assert _api(client, other_secret) == 200


def test_a_refused_removal_revokes_no_token(org, make_staff):
    # given a supervisor allowed to delete profiles, and an agent of another corporation with a token
    supervisor = make_staff(Role.SUPERVISOR, [org["home"]])
    supervisor.user_permissions.add(Permission.objects.get(codename="delete_staffprofile"))
    supervisor = User.objects.get(pk=supervisor.pk)
    far_agent = make_staff(Role.AGENT, [org["other_corporation"]])
    token, _secret = api_token_create(actor=None, user=far_agent, name="Zalo gateway")
    # when the supervisor tries to remove the agent's profile
    with pytest.raises(NotAllowed):
        staff_delete(actor=supervisor, profile=far_agent.staff_profile)
    # then nothing changed: the profile and the token stay
    assert StaffProfile.objects.filter(user=far_agent).exists()
    assert ApiToken.objects.filter(pk=token.pk).exists()


def test_removing_the_profile_of_an_account_without_tokens_works(org, make_staff):
    agent = make_staff(Role.AGENT, [org["home"]])
    staff_delete(actor=None, profile=agent.staff_profile)
    assert not StaffProfile.objects.filter(user=agent).exists()
    assert not ApiToken.objects.filter(user=agent).exists()
