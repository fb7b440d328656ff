"""The rules of staff accounts and sign-ins: nobody who does not see everything changes the account of staff
serving units beyond what they see (role, password, API tokens); a username is unique whatever its case; a
work phone is stored in +84 form or refused; a wrong authenticator code is a failed sign-in; a successful
sign-in ends the run of failures."""

from __future__ import annotations

import importlib

import pytest
from axes.models import AccessAttempt, AccessFailureLog
from django.apps import apps as django_apps
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Permission
from django.core.exceptions import ValidationError
from django.core.management import CommandError, call_command
from django.urls import reverse

from crm import two_factor
from crm.models import ApiToken, OutboxMessage, OutboxStatus, Role, StaffProfile
from crm.outbox import outbox_enqueue, staff_address
from crm.permissions import NotAllowed
from crm.roles import group_name
from crm.scoping import scope_for
from crm.services import staff_create, staff_update
from crm.tokens import api_token_create

User = get_user_model()
LOGIN = "/admin/login/"
PASSWORD = "s3cret-pass-word"  # the conftest's staff password
GOOD_PASSWORD = "Dien-luc-9-Ben-Nghe"


def _local_admin(make_staff, org, *codenames):
    """A supervisor of the home unit's company given staff rights: they serve, and see, their company only."""
    user = make_staff(Role.SUPERVISOR, [org["home"]])
    user.user_permissions.add(*Permission.objects.filter(codename__in=codenames))
    return User.objects.get(pk=user.pk)  # permissions read afresh


def _account(user) -> tuple:
    """What an account change could alter: role, groups, units, password hash."""
    user = User.objects.get(pk=user.pk)
    profile = StaffProfile.objects.get(user=user)
    return (profile.role, sorted(user.groups.values_list("name", flat=True)),
            sorted(profile.units.values_list("code", flat=True)), user.password)  # fmt: skip


# Staff beyond the actor's units ----------------------------------------------------------------------------


def test_staff_update_refuses_promoting_staff_of_a_unit_the_actor_does_not_see(org, make_staff):
    # given a local administrator of the home company, and an agent of another corporation
    local_admin = _local_admin(make_staff, org, "change_staffprofile")
    far_agent = make_staff(Role.AGENT, [org["other_corporation"]])
    before, seen_before = _account(far_agent), scope_for(User.objects.get(pk=far_agent.pk))
    # when the local administrator makes that agent a supervisor, keeping their units
    with pytest.raises(NotAllowed, match="serves units you do not serve"):
        staff_update(actor=local_admin, user=far_agent, role=Role.SUPERVISOR)
    # then nothing changed: the agent is an agent of their unit and sees what they saw
    assert _account(far_agent) == before
    assert before[:3] == (Role.AGENT, [group_name(Role.AGENT)], [org["other_corporation"].code])
    assert scope_for(User.objects.get(pk=far_agent.pk)) == seen_before


def test_staff_update_refuses_staff_serving_one_unit_beyond_the_actors_among_theirs(org, make_staff):
    # given an agent serving a unit of the local administrator's company and one of another corporation
    local_admin = _local_admin(make_staff, org, "change_staffprofile")
    agent = make_staff(Role.AGENT, [org["home"], org["other_corporation"]])
    before = _account(agent)
    # when the local administrator moves them to their own unit only
    with pytest.raises(NotAllowed):
        staff_update(actor=local_admin, user=agent, role=Role.AGENT, units=[org["home"]])
    # then nothing changed
    assert _account(agent) == before


def test_staff_update_by_a_local_administrator_within_their_units_is_taken(org, make_staff):
    # given an agent of a unit of the local administrator's company
    local_admin = _local_admin(make_staff, org, "change_staffprofile")
    agent = make_staff(Role.AGENT, [org["home"]])
    # when the local administrator moves them to a sibling unit
    staff_update(actor=local_admin, user=agent, role=Role.AGENT, units=[org["sibling"]])
    # then they serve it
    assert _account(agent)[2] == [org["sibling"].code]


def test_a_local_administrator_cannot_reset_the_password_of_staff_outside_their_units(
    client, org, make_staff
):
    # given a local administrator with the user rights, and an agent of another corporation
    local_admin = _local_admin(make_staff, org, "view_user", "change_user")
    far_agent = make_staff(Role.AGENT, [org["other_corporation"]])
    client.force_login(local_admin)
    # when they set that agent's password (to sign in as them and read the other corporation's customers)
    response = client.post(
        reverse("admin:auth_user_password_change", args=[far_agent.pk]),
        {"usable_password": "true", "password1": "n3w-pass-word-x", "password2": "n3w-pass-word-x"},
    )
    # then it is refused (the account is not among those they list: no such page for them) and the password is
    # unchanged
    assert response.status_code == 404
    far_agent.refresh_from_db()
    assert far_agent.check_password(PASSWORD)


def test_a_local_administrator_cannot_make_a_token_for_staff_outside_their_units(org, make_staff):
    # given a local administrator who may make API tokens, and an agent of another corporation
    local_admin = _local_admin(make_staff, org, "add_apitoken")
    far_agent = make_staff(Role.AGENT, [org["other_corporation"]])
    # when they make a token for that agent / then it is refused on the user, and none is made
    with pytest.raises(ValidationError) as refused:
        api_token_create(actor=local_admin, user=far_agent, name="script")
    assert refused.value.message_dict == {
        "user": [f"You may not make a token for {far_agent.username}: they serve units you do not serve."]
    }
    assert not ApiToken.objects.exists()


# Usernames -------------------------------------------------------------------------------------------------


def test_the_staff_form_refuses_a_username_differing_only_in_case(client, staff, org):
    # given an agent "agent-…" and the admin's staff form
    existing = staff[Role.AGENT].username
    client.force_login(staff[Role.ADMINISTRATOR])
    before = (User.objects.count(), StaffProfile.objects.count())
    # when an administrator adds "AGENT-…"
    response = client.post(reverse("admin:crm_staffprofile_add"), {
        "username": existing.upper(), "password1": GOOD_PASSWORD, "password2": GOOD_PASSWORD,
        "badge_number": "CSKH-0777", "role": Role.AGENT, "units": [str(org["home"].pk)],
    })  # fmt: skip
    # then it is refused on the username, as Django's own user form refuses it, and nobody is made
    assert response.status_code == 200
    assert response.context["adminform"].form.errors["username"] == [
        "A user with this username already exists."
    ]
    assert (User.objects.count(), StaffProfile.objects.count()) == before


def test_staff_create_refuses_a_username_differing_only_in_case(staff, org):
    # given an agent "agent-…"
    existing = staff[Role.AGENT].username
    before = (User.objects.count(), StaffProfile.objects.count())
    # when the command line adds "Agent-…" / then it is refused and nobody is made
    with pytest.raises(ValidationError) as refused:
        staff_create(actor=None, username=existing.capitalize(), password=GOOD_PASSWORD, role=Role.AGENT,
                     badge_number="CSKH-0778", units=[org["home"]])  # fmt: skip
    assert refused.value.message_dict == {"username": ["A user with this username already exists."]}
    assert (User.objects.count(), StaffProfile.objects.count()) == before


# Work phones -----------------------------------------------------------------------------------------------


def test_a_staff_phone_is_stored_as_the_gateway_takes_it_or_refused(org, make_staff):
    # given a dispatcher
    dispatcher = make_staff(Role.DISPATCHER, [org["home"]])
    # when an administrator types their work phone as people write it
    staff_update(actor=None, user=dispatcher, role=Role.DISPATCHER, phone="0903 123 456")
    profile = StaffProfile.objects.get(user=dispatcher)
    # then it is stored (and sent to the SMS gateway) as +84…, as customers' phones are
    assert staff_address(profile) == ("sms", "+84903123456")
    # and a phone that is not one is refused on the phone, the old one kept
    with pytest.raises(ValidationError) as refused:
        staff_update(actor=None, user=dispatcher, role=Role.DISPATCHER, phone="call the office")
    assert list(refused.value.message_dict) == ["phone"]
    assert StaffProfile.objects.get(user=dispatcher).phone == "+84903123456"
    # and an empty phone clears it (messages then go by e-mail or to the log)
    staff_update(actor=None, user=dispatcher, role=Role.DISPATCHER, phone=" ")
    assert StaffProfile.objects.get(user=dispatcher).phone == ""


def test_staff_create_stores_the_phone_in_84_form_and_refuses_one_it_cannot_read(org):
    # given / when a member of staff is made with a phone typed with its old 11-digit mobile prefix
    user = staff_create(actor=None, username="nv.hoa", password=GOOD_PASSWORD, role=Role.DISPATCHER,
                        badge_number="CSKH-0801", units=[org["home"]], phone="0168 123 4567")  # fmt: skip
    # then it is stored renumbered, in +84 form
    assert StaffProfile.objects.get(user=user).phone == "+84381234567"
    # and one with a phone that is not a number is refused, nobody made
    before = (User.objects.count(), StaffProfile.objects.count())
    with pytest.raises(ValidationError) as refused:
        staff_create(actor=None, username="nv.hung", password=GOOD_PASSWORD, role=Role.DISPATCHER,
                     badge_number="CSKH-0802", units=[org["home"]], phone="12")  # fmt: skip
    assert list(refused.value.message_dict) == ["phone"]
    assert (User.objects.count(), StaffProfile.objects.count()) == before


def test_the_staff_forms_store_the_phone_in_84_form_and_say_why_one_is_refused(client, staff, org):
    # given an administrator on the staff forms
    client.force_login(staff[Role.ADMINISTRATOR])
    add = {"username": "nv.mai", "password1": GOOD_PASSWORD, "password2": GOOD_PASSWORD,
           "badge_number": "CSKH-0901", "role": Role.DISPATCHER, "units": [str(org["home"].pk)]}  # fmt: skip
    # when they add a member of staff with a phone that is no number, then with one typed with dots
    refused = client.post(reverse("admin:crm_staffprofile_add"), {**add, "phone": "ext. 12"})
    taken = client.post(reverse("admin:crm_staffprofile_add"), {**add, "phone": "028.3822.1234"})
    # then the first is refused on the phone (nobody made), the second stored as +84…
    assert refused.status_code == 200
    assert refused.context["adminform"].form.errors["phone"] == [
        "A phone number has only digits, spaces, dots, dashes, brackets and a leading +."
    ]
    assert taken.status_code == 302
    profile = StaffProfile.objects.get(user__username="nv.mai")
    assert profile.phone == "+842838221234"
    # and the change form refuses a phone from abroad, keeping the one stored
    change = reverse("admin:crm_staffprofile_change", args=[profile.pk])
    page = client.post(
        change, {"role": Role.DISPATCHER, "units": [str(org["home"].pk)], "phone": "+33 1 23 45 67"}
    )
    assert page.context["adminform"].form.errors["phone"] == ["Only Vietnamese numbers (+84) are accepted."]
    assert StaffProfile.objects.get(pk=profile.pk).phone == "+842838221234"


def test_the_phones_typed_before_are_rewritten_in_84_form_and_an_unreadable_one_is_left(org, make_staff):
    # given work phones stored as typed before the rule, one of them no number
    migration = importlib.import_module("crm.migrations.0010_staff_phone_normalised")
    typed = {"0903 123 456": "+84903123456", "+84 28 3822 1234": "+842838221234", "office": "office", "": ""}
    profiles = {}
    for phone in typed:
        profile = StaffProfile.objects.get(user=make_staff(Role.DISPATCHER, [org["home"]]))
        StaffProfile.objects.filter(pk=profile.pk).update(phone=phone)
        profiles[phone] = profile.pk
    # when the migration runs
    migration.normalise_staff_phones(django_apps, None)
    # then each readable phone is in +84 form, the others as they were
    stored = dict(StaffProfile.objects.filter(pk__in=profiles.values()).values_list("pk", "phone"))
    assert {phone: stored[pk] for phone, pk in profiles.items()} == typed


# Sign-ins ----------------------------------------------------------------------------------------------------


def _sign_in(client, username, password, address="10.0.0.1", **extra):
    return client.post(LOGIN, {"username": username, "password": password, **extra}, REMOTE_ADDR=address)


def test_a_successful_sign_in_ends_the_run_of_failures(client, staff):
    # given an agent who mistyped their password nine times (the limit is ten in a row), then signed in
    agent = staff[Role.AGENT].username
    for n in range(9):
        assert _sign_in(client, agent, f"typo-{n}").status_code == 200
    assert _sign_in(client, agent, PASSWORD).status_code == 302
    client.logout()
    # when, after their shift, they mistype it once more and then type it right
    assert _sign_in(client, agent, "typo-again").status_code == 200
    again = _sign_in(client, agent, PASSWORD)
    # then they are signed in: one failure is not ten in a row
    assert again.status_code == 302
    assert "_auth_user_id" in client.session
    assert not AccessAttempt.objects.filter(username=agent).exists()


def test_a_wrong_authenticator_code_is_a_failed_sign_in_logged_and_counted(client, staff, settings):
    # given an administrator with an authenticator, whose password somebody has
    settings.TONGDAI_ADMIN_2FA = True
    administrator = staff[Role.ADMINISTRATOR]
    two_factor.totp_enroll(actor=None, user=administrator)
    # when they try to sign in with the password and codes they guess
    for guess in ("123456", "654321", "111111"):
        page = _sign_in(client, administrator.username, PASSWORD, address="203.0.113.9", otp_token=guess)
        assert page.status_code == 200 and "_auth_user_id" not in client.session
    # then each refused sign-in is a failure the administrators see, and counts towards the lockout
    assert AccessFailureLog.objects.filter(username=administrator.username).count() == 3
    assert AccessAttempt.objects.get(username=administrator.username).failures_since_start == 3


def test_guessing_authenticator_codes_locks_the_username_out(client, staff, settings):
    # given an administrator with an authenticator, and the failure limit at three
    settings.TONGDAI_ADMIN_2FA = True
    settings.AXES_FAILURE_LIMIT = 3
    administrator = staff[Role.ADMINISTRATOR]
    two_factor.totp_enroll(actor=None, user=administrator)
    # when somebody with the password guesses three codes, then tries a fourth
    for n in range(3):
        _sign_in(client, administrator.username, PASSWORD, address=f"203.0.113.{n}", otp_token=f"12345{n}")
    fourth = _sign_in(client, administrator.username, PASSWORD, address="203.0.113.99", otp_token="000000")
    # then the username is locked out
    assert fourth.status_code == 429
    assert "_auth_user_id" not in client.session


# The outbox's retry command ----------------------------------------------------------------------------------


def test_outbox_retry_by_someone_who_may_not_retry_ends_with_the_reason(staff):
    # given a failed message
    message = outbox_enqueue(channel="log", recipient="ops", body="…", dedupe_key="k")
    OutboxMessage.objects.filter(pk=message.pk).update(status=OutboxStatus.FAILED, attempts=8, last_error="x")
    # when an agent is named as the one retrying it / then the command ends saying why, nothing retried
    with pytest.raises(CommandError, match=f"{staff[Role.AGENT].username} may not retry outbox messages"):
        call_command("outbox_retry", str(message.pk), "--by", staff[Role.AGENT].username)
    assert OutboxMessage.objects.get(pk=message.pk).status == OutboxStatus.FAILED
