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
