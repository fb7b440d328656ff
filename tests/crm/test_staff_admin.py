"""An administrator adds a member of staff in the admin: the account, the role's group and the units, made by
``staff_create`` with the administrator as its actor. Every refusal (a password the site's rules refuse, two
different passwords, a taken username, a unit the administrator does not serve, a role without the right)
changes nothing; a service's refusal during an admin action comes back as a message, not a 403 page."""

from __future__ import annotations

import pytest
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Permission
from django.contrib.messages import get_messages
from django.urls import reverse

from crm.models import OutboxMessage, OutboxStatus, Role, StaffProfile
from crm.permissions import NotAllowed
from crm.roles import group_name
from crm.services import staff_create

User = get_user_model()
ADD = "admin:crm_staffprofile_add"
GOOD_PASSWORD = "Dien-luc-9-Ben-Nghe"


def form(unit, **changes) -> dict:
    data = {
        "username": "nv.lan",
        "password1": GOOD_PASSWORD,
        "password2": GOOD_PASSWORD,
        "first_name": "Lan",
        "last_name": "Trần Thị",
        "email": "lan@example.vn",
        "badge_number": "CSKH-0420",
        "role": Role.AGENT,
        "units": [str(unit.pk)],
        "phone": "0903 555 111",
    }
    data.update(changes)
    return data


def supervisor_who_adds_staff(make_staff, org):
    """A supervisor of the home unit's company given the right to add staff (administrators serve every
    unit): the units they may give are their company's."""
    user = make_staff(Role.SUPERVISOR, [org["home"]])
    user.user_permissions.add(Permission.objects.get(codename="add_staffprofile"))
    return User.objects.get(pk=user.pk)  # permissions read afresh


def staff_rows() -> tuple:
    return (User.objects.count(), StaffProfile.objects.count())


def test_an_administrator_adds_a_member_of_staff_with_role_units_and_account(client, staff, org):
    administrator = staff[Role.ADMINISTRATOR]
    client.force_login(administrator)
    page = client.get(reverse(ADD))
    assert page.status_code == 200 and 'name="password2"' in page.content.decode()
    response = client.post(reverse(ADD), form(org["home"]))
    assert response.status_code == 302, response.content.decode()[:2000]
    user = User.objects.get(username="nv.lan")
    profile = user.staff_profile
    assert (profile.role, profile.badge_number, [u.code for u in profile.units.all()]) == (
        Role.AGENT, "CSKH-0420", [org["home"].code]
    )  # fmt: skip
    assert list(user.groups.values_list("name", flat=True)) == [group_name(Role.AGENT)]
    assert user.is_staff and user.check_password(GOOD_PASSWORD) and user.last_name == "Trần Thị"


@pytest.mark.parametrize(
    ("changes", "field", "says"),
    [
        ({"password2": "another-Pass-77"}, "password2", "The two passwords differ."),
        ({"password1": "123", "password2": "123"}, "password1", "This password is too short."),
        ({"username": "taken"}, "username", "A user with this username already exists."),
        ({"badge_number": "TAKEN-1"}, "badge_number", "already exists"),
    ],
)
def test_a_bad_new_member_of_staff_is_refused_on_the_form_and_nothing_is_made(
    client, staff, org, make_staff, changes, field, says
):
    make_staff(Role.AGENT, [org["home"]], username="taken")
    StaffProfile.objects.filter(user__username="taken").update(badge_number="TAKEN-1")
    before = staff_rows()
    client.force_login(staff[Role.ADMINISTRATOR])
    response = client.post(reverse(ADD), form(org["home"], **changes), HTTP_ACCEPT_LANGUAGE="en")
    assert response.status_code == 200
    errors = response.context["adminform"].form.errors
    assert says in " ".join(errors.get(field, [])), errors
    assert staff_rows() == before


def test_staff_create_refuses_an_actor_without_the_right_or_a_unit_they_do_not_serve(staff, org, make_staff):
    before = staff_rows()
    with pytest.raises(NotAllowed):
        staff_create(actor=staff[Role.MANAGER], username="x1", password=GOOD_PASSWORD, role=Role.AGENT,
                     badge_number="X-1", units=[org["home"]])  # fmt: skip
    local_admin = supervisor_who_adds_staff(make_staff, org)
    before = staff_rows()
    with pytest.raises(NotAllowed, match="unit you do not serve"):
        staff_create(actor=local_admin, username="x2", password=GOOD_PASSWORD, role=Role.AGENT,
                     badge_number="X-2", units=[org["other_corporation"]])  # fmt: skip
    assert staff_rows() == before
    made = staff_create(actor=local_admin, username="x3", password=GOOD_PASSWORD, role=Role.AGENT,
                        badge_number="X-3", units=[org["home"]])  # fmt: skip
    assert made.staff_profile.units.get() == org["home"]


def test_the_add_page_offers_only_the_units_the_user_serves(client, org, make_staff):
    local_admin = supervisor_who_adds_staff(make_staff, org)
    client.force_login(local_admin)
    choices = client.get(reverse(ADD)).context["adminform"].form.fields["units"].queryset
    assert org["home"] in choices and org["other_corporation"] not in choices
    before = staff_rows()
    response = client.post(reverse(ADD), form(org["other_corporation"]))
    assert response.status_code == 200 and "units" in response.context["adminform"].form.errors
    assert staff_rows() == before


def test_a_service_refusal_during_an_admin_action_is_a_message_on_the_page(client, staff, monkeypatch):
    """The admin let the action through; the service refused its actor: the user reads why, on the list they
    acted from, and nothing changed."""
    message = OutboxMessage.objects.create(channel="sms", recipient="0903123456", body="x",
                                           status=OutboxStatus.FAILED, attempts=5)  # fmt: skip

    def refuse(**kwargs):
        raise NotAllowed("Không được phép làm việc này.")

    monkeypatch.setattr("crm.admin.outbox_retry", refuse)
    client.force_login(staff[Role.ADMINISTRATOR])
    url = reverse("admin:crm_outboxmessage_changelist")
    response = client.post(url, {"action": "retry", "_selected_action": [str(message.pk)]})
    assert response.status_code == 302 and response["Location"] == url
    assert [str(m) for m in get_messages(response.wsgi_request)] == ["Không được phép làm việc này."]
    message.refresh_from_db()
    assert (message.status, message.attempts) == (OutboxStatus.FAILED, 5)


def test_a_page_the_admin_itself_refuses_stays_403(client, staff):
    client.force_login(staff[Role.AGENT])
    assert client.post(reverse(ADD), {}).status_code == 403


def test_removing_a_staff_profile_takes_the_role_away_so_the_account_sees_and_changes_nothing(
    client, staff, make_customer, catalogue, django_user_model
):
    """An administrator leaves: a superuser removes their staff profile in the admin (the README counts a removed
    profile as someone who has left) while the account stays active. The role's group goes with the profile:
    the account no longer reads every unit's outbox (customers' phones and addresses) nor changes the national
    catalogue (a holiday), and nothing is written."""
    from tickets.models import Holiday
    from tickets.services import ticket_add_note, ticket_open

    customer = make_customer(phones=["0903 123 456"])
    ticket = ticket_open(
        actor=None, category=catalogue["billing"], channel="phone", description="x", customer=customer
    ).ticket
    ticket_add_note(actor=None, ticket=ticket, body="Chúng tôi sẽ gọi lại", to_customer=True)
    assert OutboxMessage.objects.filter(recipient="+84903123456").exists()
    admin_user = staff[Role.ADMINISTRATOR]
    superuser = django_user_model.objects.create_superuser("root", "root@example.com", "s3cret-pass-word")
    client.force_login(superuser)
    profile = StaffProfile.objects.get(user=admin_user)
    response = client.post(reverse("admin:crm_staffprofile_delete", args=[profile.pk]), {"post": "yes"})
    assert response.status_code == 302 and not StaffProfile.objects.filter(user=admin_user).exists()
    admin_user.refresh_from_db()
    assert admin_user.is_active and not admin_user.groups.exists()

    client.force_login(admin_user)
    outbox = client.get(reverse("admin:crm_outboxmessage_changelist"))
    added = client.post(reverse("admin:tickets_holiday_add"), {"day": "2030-01-02", "name": "Nghỉ bù"})
    assert (outbox.status_code, added.status_code) == (403, 403)
    assert "+84903123456" not in outbox.content.decode()
    assert not Holiday.objects.filter(name="Nghỉ bù").exists()


def test_an_account_left_without_a_profile_but_in_the_administrators_group_changes_no_national_data(
    client, staff, django_user_model
):
    """An account put in the administrators' group by hand, without a staff profile, sees nothing
    (``crm.scoping``): the outbox and the national catalogue refuse it although it holds their permissions."""
    from django.contrib.auth.models import Group

    from tickets.models import Holiday

    account = django_user_model.objects.create_user("no.profile", password="s3cret-pass-word", is_staff=True)
    account.groups.add(Group.objects.get(name=group_name(Role.ADMINISTRATOR)))
    account = django_user_model.objects.get(pk=account.pk)
    assert account.has_perm("tickets.add_holiday")
    client.force_login(account)
    outbox = client.get(reverse("admin:crm_outboxmessage_changelist"))
    added = client.post(reverse("admin:tickets_holiday_add"), {"day": "2030-01-02", "name": "Nghỉ bù"})
    assert (outbox.status_code, added.status_code) == (403, 403)
    assert not Holiday.objects.exists()


def test_staff_delete_is_held_to_the_rule_of_changing_the_account_and_refused_changes_nothing(
    staff, org, make_staff
):
    """A company's supervisor given the right to delete profiles may not remove the administrator's: refused,
    the profile and its group stay."""
    from crm.services import staff_delete

    supervisor = make_staff(Role.SUPERVISOR, [org["home"]])
    supervisor.user_permissions.add(Permission.objects.get(codename="delete_staffprofile"))
    supervisor = User.objects.get(pk=supervisor.pk)
    administrator = staff[Role.ADMINISTRATOR]
    with pytest.raises(NotAllowed):
        staff_delete(actor=supervisor, profile=administrator.staff_profile)
    assert StaffProfile.objects.filter(user=administrator).exists()
    assert list(administrator.groups.values_list("name", flat=True)) == [group_name(Role.ADMINISTRATOR)]
