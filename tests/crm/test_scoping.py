import datetime as dt

from django.contrib.auth.models import AnonymousUser
from django.utils import timezone

from crm.models import Role, Unit
from crm.scoping import role_scope, scope_for, units_served_today
from crm.services import staff_update
from customers.models import Customer
from tests.organisation import merge


def test_unit_staff_see_only_their_units(org, staff):
    for role in (Role.AGENT, Role.DISPATCHER, Role.FIELD_CREW, Role.BILLING_CLERK):
        assert set(Unit.objects.for_user(staff[role])) == {org["home"]}, role


def test_supervisor_sees_every_unit_of_their_company(org, staff):
    seen = set(Unit.objects.for_user(staff[Role.SUPERVISOR]).values_list("code", flat=True))
    assert seen == set(Unit.objects.filter(company__code="PE01").values_list("code", flat=True))
    assert org["sibling"].code in seen
    assert org["other_company"].code not in seen


def test_manager_sees_their_corporation(org, staff):
    seen = Unit.objects.for_user(staff[Role.MANAGER])
    assert set(seen) == set(Unit.objects.filter(company__corporation__code="EVNHCMC"))
    assert org["other_company"] in seen
    assert org["other_corporation"] not in seen


def test_administrator_and_superuser_see_everything(org, staff, django_user_model):
    superuser = django_user_model.objects.create_superuser("root", "r@example.com", "pw")
    for user in (staff[Role.ADMINISTRATOR], superuser):
        assert Unit.objects.for_user(user).count() == Unit.objects.count()


def test_no_profile_inactive_or_anonymous_see_nothing(org, staff, django_user_model):
    plain = django_user_model.objects.create_user("plain", password="pw", is_staff=True)
    inactive = staff[Role.AGENT]
    inactive.is_active = False
    for user in (plain, inactive, AnonymousUser()):
        assert Unit.objects.for_user(user).count() == 0


def test_staff_of_a_merged_unit_see_the_predecessors_records(org, make_staff, make_customer):
    successor = org["other_corporation"]
    predecessor = successor.predecessors.first()
    # A customer of the predecessor's time (registered before the merge; no new one is registered there now).
    old = make_customer(successor, name="Hồ Văn Tư", phones=["0905 000 001"])
    Customer.objects.filter(pk=old.pk).update(unit=predecessor, code=predecessor.code + old.code[6:])
    agent = make_staff(Role.AGENT, [successor])
    assert old in Customer.objects.for_user(agent)
    assert scope_for(agent).allows_unit(predecessor.pk)


def test_scope_follows_a_role_change(org, staff):
    agent = staff[Role.AGENT]
    assert Unit.objects.for_user(agent).count() == 1
    staff_update(actor=None, user=agent, role=Role.SUPERVISOR)
    assert Unit.objects.for_user(agent).count() == Unit.objects.filter(company__code="PE01").count()
    assert agent.groups.get().name == "tongdai: supervisor"


def test_companies_and_corporations_are_scoped_without_duplicates(org, staff):
    from crm.models import Company, Corporation

    supervisor = staff[Role.SUPERVISOR]
    assert list(Company.objects.for_user(supervisor).values_list("code", flat=True)) == ["PE01"]
    assert list(Corporation.objects.for_user(staff[Role.MANAGER]).values_list("code", flat=True)) == [
        "EVNHCMC"
    ]


def test_a_merge_dated_ahead_shows_the_units_records_to_the_successors_staff_only_from_its_day(
    org, make_customer, make_staff
):
    # given a customer of the sibling unit, and a merge of the sibling into home entered for tomorrow
    home, sibling = org["home"], org["sibling"]
    theirs = make_customer(sibling, phones=["0903 222 333"])
    agent = make_staff(Role.AGENT, [home])
    merge(sibling, home, timezone.localdate() + dt.timedelta(days=1))
    # then home's agent neither sees the customer nor has the sibling in scope
    assert not Customer.objects.for_user(agent).filter(pk=theirs.pk).exists()
    assert not scope_for(agent).allows_unit(sibling.pk)
    # and once the sibling's last day has passed, they do (a new request, a new user object)
    merge(sibling, home, timezone.localdate() - dt.timedelta(days=1))
    agent = type(agent).objects.get(pk=agent.pk)
    assert Customer.objects.for_user(agent).filter(pk=theirs.pk).exists()


def test_the_units_a_unit_serves_today_follow_chains_of_merges_that_have_taken_effect(org):
    from tickets.selectors import current_unit, units_serving

    # given A merged into B yesterday, B into C last year, D into C tomorrow
    active = Unit.objects.filter(company__corporation__code="EVNHCMC", valid_to__isnull=True, predecessors=None)
    a, b, c, d = active.order_by("code")[:4]
    today = timezone.localdate()
    merge(a, b, today - dt.timedelta(days=1))
    merge(b, c, today - dt.timedelta(days=365))
    merge(d, c, today + dt.timedelta(days=1))
    # then C serves its own records and A's and B's, not yet D's; A's records are served by A, B and C
    assert units_served_today([c.pk]) == {a.pk, b.pk, c.pk}
    assert units_served_today([b.pk]) == {a.pk, b.pk}
    assert units_served_today([d.pk]) == {d.pk}
    assert units_serving(a.pk) == sorted([a.pk, b.pk, c.pk]) and current_unit(a) == c
    assert units_serving(d.pk) == [d.pk] and current_unit(d) == d
    # and a clerk of C has the same units in scope
    assert role_scope(Role.BILLING_CLERK, [c]).unit_ids == {a.pk, b.pk, c.pk}
