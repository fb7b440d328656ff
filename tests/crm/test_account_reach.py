"""No account reaches beyond what its administrator sees and holds: deleting a staff profile and revoking an API
token are held to the rule of changing the account; a role is granted only if what it shows over its units is
within what the granter sees; whoever holds the rights to manage accounts signs in with a second factor; a
username is unique whatever its case when renamed too; a local administrator lists only the accounts (and the
tokens) of their reach."""

from __future__ import annotations

import pytest
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group, Permission
from django.contrib.messages import get_messages
from django.urls import reverse

from crm import staff_access, two_factor
from crm.models import ApiToken, Role, StaffProfile
from crm.permissions import NotAllowed
from crm.roles import group_name
from crm.scoping import scope_for
from crm.services import staff_create, staff_update
from crm.tokens import api_token_create, api_token_revoke
from tests.crm.test_account_admin import user_form
from tests.crm.test_account_rules import GOOD_PASSWORD, PASSWORD, _account, _local_admin

User = get_user_model()
API = "/api/v1/units/"


def _api(client, secret):
    return client.get(API, HTTP_AUTHORIZATION=f"Token {secret}").status_code


def _messages(response) -> list[str]:
    return [str(m) for m in get_messages(response.wsgi_request)]


# Deleting a staff profile ----------------------------------------------------------------------------------


def test_a_local_administrator_cannot_delete_the_profile_of_staff_serving_units_beyond_theirs(
    client, org, make_staff
):
    # given a local administrator of the home company who may change and delete staff profiles, and an agent
    # serving a home unit and a unit of another corporation (whose account the local administrator may not change)
    local_admin = _local_admin(
        make_staff, org, "view_staffprofile", "change_staffprofile", "delete_staffprofile"
    )
    agent = make_staff(Role.AGENT, [org["home"], org["other_corporation"]])
    profile = StaffProfile.objects.get(user=agent)
    before = _account(agent)
    client.force_login(local_admin)
    url = reverse("admin:crm_staffprofile_delete", args=[profile.pk])
    # when they open the delete page, confirm it, and try the list's bulk action
    page = client.get(url)
    confirmed = client.post(url, {"post": "yes"})
    bulk = client.post(reverse("admin:crm_staffprofile_changelist"),
                       {"action": "delete_selected", "_selected_action": [profile.pk], "post": "yes"})  # fmt: skip
    # then each is refused as changing the account is, and the profile is still there, unchanged
    assert (page.status_code, confirmed.status_code, bulk.status_code) == (403, 403, 403)
    assert _account(agent) == before


def test_an_administrator_cannot_delete_the_profile_of_an_account_that_holds_more(client, staff):
    # given an agent who was given a permission administrators do not hold (so only a superuser changes them)
    agent = staff[Role.AGENT]
    agent.user_permissions.add(Permission.objects.get(codename="delete_user"))
    profile = StaffProfile.objects.get(user=agent)
    before = _account(agent)
    client.force_login(staff[Role.ADMINISTRATOR])
    # when an administrator deletes the agent's profile through the list's bulk action
    response = client.post(
        reverse("admin:crm_staffprofile_changelist"),
        {"action": "delete_selected", "_selected_action": [profile.pk], "post": "yes"},
    )
    # then it is refused, as changing that account is, and nothing changed
    assert response.status_code == 403
    assert _account(agent) == before


def test_an_administrator_deletes_the_profile_of_an_account_they_may_change(client, staff):
    # given a dispatcher, who holds nothing beyond the administrator's permissions
    dispatcher = staff[Role.DISPATCHER]
    profile = StaffProfile.objects.get(user=dispatcher)
    client.force_login(staff[Role.ADMINISTRATOR])
    # when an administrator deletes their profile
    response = client.post(reverse("admin:crm_staffprofile_delete", args=[profile.pk]), {"post": "yes"})
    # then it is gone, the account kept
    assert response.status_code == 302
    assert not StaffProfile.objects.filter(pk=profile.pk).exists()
    assert User.objects.filter(pk=dispatcher.pk).exists()


# Granting a role: what it shows must be within what the granter sees ---------------------------------------


def test_a_local_administrator_cannot_make_themselves_a_manager_seeing_the_whole_corporation(org, make_staff):
    # given a supervisor of the home company (sees that company only) who may change staff profiles and read the
    # export log: they hold every permission of the manager's role, but a manager sees the whole corporation
    local_admin = _local_admin(make_staff, org, "change_staffprofile", "view_exportlog")
    before, seen_before = _account(local_admin), scope_for(local_admin)
    assert org["other_company"].pk not in seen_before.unit_ids
    # when they change their own role to manager (keeping their unit)
    with pytest.raises(NotAllowed) as refused:
        staff_update(actor=local_admin, user=local_admin, role=Role.MANAGER)
    # then it is refused with the reason, and they see what they saw
    assert (
        str(refused.value)
        == "You may not give the role “Manager” for these units: it would see units you do not see."
    )
    assert _account(local_admin) == before
    assert scope_for(User.objects.get(pk=local_admin.pk)) == seen_before


def test_a_local_administrator_cannot_create_a_manager_whose_password_they_know(org, make_staff):
    # given the same local administrator, who may add staff
    local_admin = _local_admin(make_staff, org, "add_staffprofile", "view_exportlog")
    staff_before = (User.objects.count(), StaffProfile.objects.count())
    # when they create a manager of their own unit (they choose the password: they can sign in as them)
    with pytest.raises(NotAllowed, match="it would see units you do not see"):
        staff_create(actor=local_admin, username="puppet", password=GOOD_PASSWORD, role=Role.MANAGER,
                     badge_number="P-1", units=[org["home"]])  # fmt: skip
    # then nobody is made
    assert (User.objects.count(), StaffProfile.objects.count()) == staff_before


def test_a_local_administrator_grants_a_role_within_what_they_see(org, make_staff):
    # given a local administrator of the home company who may add and change staff profiles
    local_admin = _local_admin(make_staff, org, "add_staffprofile", "change_staffprofile")
    # when they make a supervisor of a sibling unit (the same company), and an agent of their unit a supervisor
    made = staff_create(actor=local_admin, username="nv.thu", password=GOOD_PASSWORD, role=Role.SUPERVISOR,
                        badge_number="P-2", units=[org["sibling"]])  # fmt: skip
    agent = make_staff(Role.AGENT, [org["home"]])
    staff_update(actor=local_admin, user=agent, role=Role.SUPERVISOR)
    # then both are taken, and each sees what the local administrator sees
    assert _account(made)[:3] == (Role.SUPERVISOR, [group_name(Role.SUPERVISOR)], [org["sibling"].code])
    assert _account(agent)[:3] == (Role.SUPERVISOR, [group_name(Role.SUPERVISOR)], [org["home"].code])
    assert scope_for(User.objects.get(pk=made.pk)) == scope_for(local_admin)
    assert scope_for(User.objects.get(pk=agent.pk)) == scope_for(local_admin)


def test_the_staff_forms_refuse_a_role_beyond_what_the_actor_sees_on_the_role(client, org, make_staff):
    # given a local administrator holding the manager's permissions, on the staff forms
    local_admin = _local_admin(make_staff, org, "view_staffprofile", "add_staffprofile", "change_staffprofile",
                               "view_exportlog")  # fmt: skip
    agent = make_staff(Role.AGENT, [org["home"]])
    before, staff_before = _account(agent), (User.objects.count(), StaffProfile.objects.count())
    client.force_login(local_admin)
    # when they add a manager of their unit, and make an agent of their unit a manager
    added = client.post(reverse("admin:crm_staffprofile_add"), {
        "username": "nv.moi", "password1": GOOD_PASSWORD, "password2": GOOD_PASSWORD, "badge_number": "P-3",
        "role": Role.MANAGER, "units": [str(org["home"].pk)]})  # fmt: skip
    changed = client.post(reverse("admin:crm_staffprofile_change", args=[agent.staff_profile.pk]),
                          {"role": Role.MANAGER, "units": [str(org["home"].pk)], "phone": ""})  # fmt: skip
    # then both forms say why on the role, and nothing changed
    refusal = ["You may not give the role “Manager” for these units: it would see units you do not see."]
    assert added.status_code == changed.status_code == 200
    assert added.context["adminform"].form.errors == {"role": refusal}
    assert changed.context["adminform"].form.errors == {"role": refusal}
    assert (User.objects.count(), StaffProfile.objects.count()) == staff_before
    assert _account(agent) == before


def test_a_local_administrator_cannot_change_the_account_of_a_manager_of_their_unit(client, org, make_staff):
    # given a local administrator holding the manager's permissions and the user rights, and a manager serving
    # their unit (who sees the whole corporation)
    local_admin = _local_admin(make_staff, org, "view_user", "change_user", "change_staffprofile",
                               "view_exportlog")  # fmt: skip
    manager = make_staff(Role.MANAGER, [org["home"]])
    before = _account(manager)
    client.force_login(local_admin)
    # when they reset the manager's password (to sign in as them), and make them an agent
    reset = client.post(
        reverse("admin:auth_user_password_change", args=[manager.pk]),
        {"usable_password": "true", "password1": "n3w-pass-word-x", "password2": "n3w-pass-word-x"},
    )
    with pytest.raises(NotAllowed) as refused:
        staff_update(actor=local_admin, user=manager, role=Role.AGENT)
    # then both are refused, and nothing changed
    assert reset.status_code == 403
    assert (
        str(refused.value)
        == f"{manager.username} sees units you do not see; you may not change this account."
    )
    assert _account(manager) == before


# API tokens -------------------------------------------------------------------------------------------------


def test_a_local_administrator_cannot_revoke_the_tokens_of_staff_outside_their_units(client, org, make_staff):
    # given a local administrator who makes and revokes API tokens, and the integration token of an agent of
    # another corporation (for whom they may not make one)
    local_admin = _local_admin(make_staff, org, "view_apitoken", "add_apitoken", "delete_apitoken")
    far_agent = make_staff(Role.AGENT, [org["other_corporation"]])
    token, secret = api_token_create(actor=None, user=far_agent, name="Zalo gateway")
    client.force_login(local_admin)
    # when they list the tokens, revoke it with the list's action, on its delete page, and through the service
    listed = client.get(reverse("admin:crm_apitoken_changelist"))
    client.post(
        reverse("admin:crm_apitoken_changelist"), {"action": "revoke", "_selected_action": [token.pk]}
    )
    deleted = client.post(reverse("admin:crm_apitoken_delete", args=[token.pk]), {"post": "yes"})
    with pytest.raises(NotAllowed, match="serves units you do not serve"):
        api_token_revoke(actor=local_admin, token=token)
    # then they neither see nor revoke it: the token still works
    assert [t.pk for t in listed.context["cl"].result_list] == []
    assert deleted.status_code == 302 and deleted["Location"] == reverse(
        "admin:index"
    )  # no such token for them
    assert ApiToken.objects.filter(pk=token.pk).exists()
    client.logout()
    assert _api(client, secret) == 200


def test_a_local_administrator_revokes_the_tokens_of_staff_of_their_units(client, org, make_staff):
    # given the tokens of an agent of the local administrator's unit and of one of another corporation
    local_admin = _local_admin(make_staff, org, "view_apitoken", "add_apitoken", "delete_apitoken")
    near, _near_secret = api_token_create(
        actor=None, user=make_staff(Role.AGENT, [org["home"]]), name="softphone"
    )
    far, _far_secret = api_token_create(actor=None, user=make_staff(Role.AGENT, [org["other_corporation"]]),
                                        name="Zalo gateway")  # fmt: skip
    client.force_login(local_admin)
    # when
    listed = client.get(reverse("admin:crm_apitoken_changelist"))
    revoked = client.post(
        reverse("admin:crm_apitoken_changelist"), {"action": "revoke", "_selected_action": [near.pk]}
    )
    # then they see and revoke the token of their unit's agent only
    assert [t.pk for t in listed.context["cl"].result_list] == [near.pk]
    assert revoked.status_code == 302
    assert list(ApiToken.objects.values_list("pk", flat=True)) == [far.pk]


def test_an_administrator_cannot_revoke_a_superusers_token(client, staff):
    # given a superuser's integration token, and an agent's
    root = User.objects.create_superuser("root", "root@example.org", "s3cret-root-pass")
    token, secret = api_token_create(actor=None, user=root, name="billing bank feed")
    agents, _agents_secret = api_token_create(actor=None, user=staff[Role.AGENT], name="softphone")
    administrator = staff[Role.ADMINISTRATOR]
    client.force_login(administrator)
    # when an administrator revokes both with the list's action, then the superuser's on its delete page
    response = client.post(reverse("admin:crm_apitoken_changelist"),
                           {"action": "revoke", "_selected_action": [token.pk, agents.pk]})  # fmt: skip
    deleted = client.post(reverse("admin:crm_apitoken_delete", args=[token.pk]), {"post": "yes"})
    # then only the agent's is revoked, the page says why the other was left, and the superuser's still works
    assert _messages(response) == [
        "1 token revoked.",
        "1 token was left: it belongs to an account you may not change.",
    ]
    assert deleted.status_code == 403
    assert list(ApiToken.objects.values_list("pk", flat=True)) == [token.pk]
    with pytest.raises(NotAllowed, match=r"Only a superuser may change a superuser.s account\."):
        api_token_revoke(actor=administrator, token=token)
    client.logout()
    assert _api(client, secret) == 200


def test_the_token_forms_user_autocomplete_offers_only_accounts_the_maker_may_change(client, org, make_staff):
    # given a local administrator who makes tokens and sees the users, an agent of their unit, a manager of
    # their unit (who holds more) and an agent of another corporation
    local_admin = _local_admin(make_staff, org, "view_user", "view_apitoken", "add_apitoken")
    near = make_staff(Role.AGENT, [org["home"]], username="near-agent")
    make_staff(Role.MANAGER, [org["home"]], username="near-manager")
    make_staff(Role.AGENT, [org["other_corporation"]], username="far-agent")
    client.force_login(local_admin)
    # when they look for a user on the token form
    found = client.get(reverse("admin:autocomplete"),
                       {"app_label": "crm", "model_name": "apitoken", "field_name": "user", "term": "near"})  # fmt: skip
    # then they are offered the agent of their unit only
    assert [r["id"] for r in found.json()["results"]] == [str(near.pk)]


# The second factor ------------------------------------------------------------------------------------------


def test_holding_the_administrators_group_needs_the_second_factor_whatever_the_profiles_role(
    client, staff, settings
):
    # given an agent whom an administrator put in the administrators' group in the user admin (a group the
    # administrator holds, so it is offered and taken), their staff profile still saying "agent"
    settings.TONGDAI_ADMIN_2FA = True
    agent = staff[Role.AGENT]
    agent.groups.add(Group.objects.get(name=group_name(Role.ADMINISTRATOR)))
    # when they sign in with their password alone
    signed_in = client.post("/admin/login/", {"username": agent.username, "password": PASSWORD})
    outbox = client.get(reverse("admin:crm_outboxmessage_changelist"))
    # then they are asked for a code (none is enrolled: they are told who enrols one) and are not signed in
    assert signed_in.status_code == 200
    assert (
        signed_in.context["form"].errors["__all__"][0].startswith("Your account needs an authenticator app")
    )
    assert "_auth_user_id" not in client.session
    assert outbox.status_code == 302 and outbox["Location"].startswith(reverse("admin:login"))


@pytest.mark.parametrize("codename", ["change_user", "add_user", "add_apitoken", "change_staffprofile"])
def test_a_permission_of_its_own_that_manages_accounts_needs_the_second_factor(staff, settings, codename):
    # given an agent, who signs in with a password alone
    settings.TONGDAI_ADMIN_2FA = True
    agent = staff[Role.AGENT]
    assert two_factor.needs_second_factor(agent) is False
    # when they are given a permission that manages accounts
    agent.user_permissions.add(Permission.objects.get(codename=codename))
    # then they need the second factor
    assert two_factor.needs_second_factor(User.objects.get(pk=agent.pk)) is True


def test_joining_and_leaving_the_administrators_group_is_seen_at_once_with_the_cache_on(staff, settings):
    # given the shared cache on, and an agent known not to need the second factor
    settings.TONGDAI_ADMIN_2FA = True
    settings.TONGDAI_AUTH_CACHE_SECONDS = 300
    agent = staff[Role.AGENT]
    administrators = Group.objects.get(name=group_name(Role.ADMINISTRATOR))
    assert two_factor.needs_second_factor(User.objects.get(pk=agent.pk)) is False
    # when they join the administrators' group, then leave it
    agent.groups.add(administrators)
    joined = two_factor.needs_second_factor(User.objects.get(pk=agent.pk))
    administrators.user_set.remove(agent)
    left = two_factor.needs_second_factor(User.objects.get(pk=agent.pk))
    # then each change is seen at once
    assert (joined, left) == (True, False)


def test_the_other_roles_still_sign_in_without_the_second_factor(staff, settings):
    settings.TONGDAI_ADMIN_2FA = True
    needing = {role for role, user in staff.items() if two_factor.needs_second_factor(user)}
    assert needing == {Role.ADMINISTRATOR}


# Usernames --------------------------------------------------------------------------------------------------


def test_the_user_admin_refuses_renaming_an_account_to_another_username_differing_only_in_case(client, staff):
    # given two agents, and the user admin's change form
    first, second = staff[Role.AGENT], staff[Role.DISPATCHER]
    client.force_login(staff[Role.ADMINISTRATOR])
    # when an administrator renames the dispatcher to the agent's username in capitals
    response = client.post(reverse("admin:auth_user_change", args=[second.pk]),
                           user_form(second, username=first.username.upper()))  # fmt: skip
    # then it is refused on the username, as the staff form refuses it ("nv.lan" and "NV.Lan" are one person)
    assert response.status_code == 200
    assert response.context["adminform"].form.errors["username"] == [
        "A user with this username already exists."
    ]
    assert User.objects.get(pk=second.pk).username == second.username


def test_the_user_admin_renames_an_account_to_its_own_username_in_other_case(client, staff):
    # given
    agent = staff[Role.AGENT]
    client.force_login(staff[Role.ADMINISTRATOR])
    # when
    response = client.post(reverse("admin:auth_user_change", args=[agent.pk]),
                           user_form(agent, username=agent.username.capitalize()))  # fmt: skip
    # then
    assert response.status_code == 302
    assert User.objects.get(pk=agent.pk).username == agent.username.capitalize()


# The lists of accounts ------------------------------------------------------------------------------------


def test_a_local_administrator_lists_the_accounts_of_their_reach_only(client, org, make_staff, staff):
    # given a local administrator who sees the users, staff of their company, of another company of the
    # corporation and of another corporation, and an integration account without a profile holding nothing
    local_admin = _local_admin(make_staff, org, "view_user")
    sibling = make_staff(Role.AGENT, [org["sibling"]])
    other_company = make_staff(Role.AGENT, [org["other_company"]])
    far = make_staff(Role.AGENT, [org["other_corporation"]])
    integration = User.objects.create_user("zalo-gateway", password=GOOD_PASSWORD)
    client.force_login(local_admin)
    # when
    listed = client.get(reverse("admin:auth_user_changelist"))
    far_page = client.get(reverse("admin:auth_user_change", args=[far.pk]))
    # then they list the staff of the units they see (the home unit's, whatever their role) and the accounts they
    # may change; not the others, whose pages they cannot open
    shown = {user.pk for user in listed.context["cl"].result_list}
    assert shown == {local_admin.pk, sibling.pk, integration.pk, *(user.pk for user in staff.values()
                                                                    if user.staff_profile.units.exists())}  # fmt: skip
    assert other_company.pk not in shown and far.pk not in shown
    assert far_page.status_code == 302 and far_page["Location"] == reverse("admin:index")
    # and an administrator, who sees everything, lists every account
    client.force_login(staff[Role.ADMINISTRATOR])
    everyone = client.get(reverse("admin:auth_user_changelist")).context["cl"].result_list
    assert {user.pk for user in everyone} == set(User.objects.values_list("pk", flat=True))


def test_the_accounts_a_list_offers_to_change_are_those_the_rule_lets_change(org, make_staff, staff):
    # given actors of each reach, and accounts of every kind: staff of every role in the home unit, a manager
    # and an agent elsewhere, an agent holding a permission of their own, a superuser, an integration account
    local_admin = _local_admin(make_staff, org, "view_user", "change_user", "view_exportlog")
    manager_admin = make_staff(Role.MANAGER, [org["home"]])
    manager_admin.user_permissions.add(*Permission.objects.filter(codename__in=["change_user", "view_user"]))
    manager_admin = User.objects.get(pk=manager_admin.pk)
    fellow_manager = make_staff(Role.MANAGER, [org["other_company"]])
    make_staff(Role.SUPERVISOR, [org["other_company"]])
    make_staff(Role.AGENT, [org["other_corporation"]])
    make_staff(Role.AGENT, [org["home"], org["other_corporation"]])
    holder = make_staff(Role.AGENT, [org["home"]])
    holder.user_permissions.add(Permission.objects.get(codename="delete_user"))
    User.objects.create_superuser("root", "root@example.org", "s3cret-root-pass")
    User.objects.create_user("zalo-gateway", password=GOOD_PASSWORD)
    accounts = list(User.objects.all())
    for actor in (local_admin, manager_admin, staff[Role.ADMINISTRATOR], staff[Role.AGENT]):
        # when the list's rule and the one-account rule are asked
        listed = set(staff_access.manageable_users(actor).values_list("username", flat=True))
        ruled = {user.username for user in accounts if staff_access.may_manage_user(actor, user)}
        # then they agree
        assert listed == ruled, actor.username
    # and they keep each actor to their reach: the local administrator holds the manager's permissions but not
    # their sight; the manager changes another manager of the corporation
    assert not staff_access.may_manage_user(local_admin, manager_admin)
    assert staff_access.may_manage_user(manager_admin, fellow_manager)
