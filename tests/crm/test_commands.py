import io
import json

from django.contrib.auth import get_user_model
from django.core.management import call_command
from django_q.models import Schedule

from crm.models import Role, StaffProfile
from customers import card_sections, demo


def test_setup_schedules_is_idempotent(db):
    call_command("setup_schedules", stdout=io.StringIO())
    first = list(Schedule.objects.values_list("name", "func", "schedule_type"))
    call_command("setup_schedules", stdout=io.StringIO())
    assert list(Schedule.objects.values_list("name", "func", "schedule_type")) == first
    assert ("tongdai: clear expired sessions", "crm.tasks.clear_expired_sessions", "D") in first


def test_setup_schedules_sets_up_the_oldest_of_a_name_added_twice_and_reports_the_other(db):
    # given the product's schedules, a copy of one added by hand in the admin (django-q2's names are not unique),
    # one the product declares removed, and another changed
    call_command("setup_schedules", stdout=io.StringIO())
    original = Schedule.objects.get(name="tongdai: deliver the outbox")
    copy = Schedule.objects.get(pk=original.pk)
    copy.pk = None
    copy.save()
    Schedule.objects.filter(name="tongdai: clear expired sessions").delete()
    Schedule.objects.filter(pk=original.pk).update(minutes=7)
    # when the command runs again
    out, err = io.StringIO(), io.StringIO()
    call_command("setup_schedules", stdout=out, stderr=err)
    # then every declared schedule is set up, the oldest of the two copies is brought back, the copy is left alone
    # and named, and the output says what was created, updated and kept
    assert Schedule.objects.filter(name="tongdai: clear expired sessions").count() == 1
    assert Schedule.objects.get(pk=original.pk).minutes == 1
    assert Schedule.objects.filter(name="tongdai: deliver the outbox").count() == 2
    assert f"left alone id(s) {copy.pk}" in err.getvalue()
    lines = out.getvalue().splitlines()
    assert "created: tongdai: clear expired sessions" in lines
    assert "updated: tongdai: deliver the outbox" in lines
    assert all(line.startswith(("created:", "updated:", "kept:")) for line in lines)
    assert sum(line.startswith("kept:") for line in lines) == len(lines) - 2


def test_demo_users_one_per_role_with_printed_passwords(org, tmp_path, settings):
    settings.BASE_DIR = tmp_path
    demo.seed(customers=50, seed=1, units=org["home"].company.units.active())
    out = io.StringIO()
    call_command("create_demo_users", stdout=out)
    stored = json.loads((tmp_path / "var" / "demo-credentials.json").read_text())
    assert set(StaffProfile.objects.values_list("role", flat=True)) == set(Role.values)
    for username, password in stored.items():
        user = get_user_model().objects.get(username=username)
        assert user.check_password(password)
        assert password in out.getvalue()
    again = io.StringIO()
    call_command("create_demo_users", stdout=again)
    assert get_user_model().objects.count() == len(Role.values)
    assert stored["agent"] in again.getvalue()
    agent = StaffProfile.objects.get(user__username="agent")
    assert {u.company.code for u in agent.units.all()} == {"PE01"}


def test_card_sections_show_what_a_provider_gives(org, make_customer, staff):
    from customers.selectors import customer_card

    customer = make_customer()
    previous = card_sections._providers["tickets"]
    card_sections.provide(
        "tickets", lambda customer, user: {"columns": ["number"], "rows": [[customer.code]]}
    )
    try:
        card = customer_card(user=staff[Role.AGENT], customer_id=customer.pk)
        tickets = next(s for s in card.sections if s.key == "tickets")
        assert tickets.provided and tickets.rows == [[customer.code]]
    finally:
        card_sections.provide("tickets", previous)
