"""The service catalogue's rules (audit sla 1, 4, 5, 6, 7): the outage category is found by its flag and its code
is set once; an SLA policy starts at a moment to come, with one resolve target of at least 1 and its levels in
order, refused on the fields concerned; a category with no policy in force is refused on its field."""

from __future__ import annotations

import datetime as dt

import pytest
from django.core.exceptions import ValidationError
from django.urls import reverse
from django.utils import timezone

from crm.models import Role
from tickets.models import Category, SlaPolicy, Suspension, Ticket
from tickets.services import (
    catalogue_load_reference,
    incident_open,
    policy_in_force,
    sla_policy_create,
    ticket_open,
)


def policy_form(category, **changes):
    """The admin's add form of an SLA policy, starting on 1 January 2030 unless changed."""
    return {
        "category": category.pk, "valid_from_0": "01/01/2030", "valid_from_1": "00:00:00",
        "acknowledge_minutes": "3", "contact_minutes": "4", "callback_hours": "24",
        "escalate_level2_minutes": "30", "escalate_level3_minutes": "120", **changes,
    }  # fmt: skip


def form_errors(response) -> dict[str, list[str]]:
    return {name: list(errors) for name, errors in response.context["adminform"].form.errors.items()}


# 1: the outage category ---------------------------------------------------------------------------------


def test_the_code_of_a_category_is_set_once_the_admin_keeps_it(client, staff, catalogue):
    # given an administrator editing the outage category
    client.force_login(staff[Role.ADMINISTRATOR])
    outage = catalogue["outage"]
    # when they post another code with a new name
    answer = client.post(
        reverse("admin:tickets_category_change", args=[outage.pk]),
        {"code": "bao-mat-dien", "name": "Mất điện", "is_outage": "on", "is_active": "on"},
    )
    # then the name changed, the code (the loader's and the integrations' key) did not
    assert answer.status_code == 302
    outage.refresh_from_db()
    assert (outage.code, outage.name) == ("outage", "Mất điện")


def test_the_one_click_outage_call_finds_the_outage_category_by_its_flag(client, staff, org, make_customer, catalogue):
    # given an outage category whose code is not "outage" (data loaded before codes were set once)
    Category.objects.filter(pk=catalogue["outage"].pk).update(code="bao-mat-dien")
    customer = make_customer()
    incident = incident_open(actor=None, unit=org["home"], cause="Sự cố trạm", started_at=timezone.now())
    # when an agent takes the call with the customer card's one click
    client.force_login(staff[Role.AGENT])
    answer = client.post(reverse("admin:tickets_ticket_report_outage", args=[incident.pk, customer.pk]))
    # then the call is an outage ticket of that category, linked to the incident
    assert answer.status_code == 302
    ticket = Ticket.objects.get(customer=customer)
    assert (ticket.category_id, ticket.incident_id) == (catalogue["outage"].pk, incident.pk)


def test_without_an_active_outage_category_the_one_click_call_is_refused_in_words(
    client, staff, org, make_customer, catalogue
):
    Category.objects.filter(pk=catalogue["outage"].pk).update(is_active=False)
    customer = make_customer()
    incident = incident_open(actor=None, unit=org["home"], cause="Sự cố trạm", started_at=timezone.now())
    client.force_login(staff[Role.AGENT])
    answer = client.post(
        reverse("admin:tickets_ticket_report_outage", args=[incident.pk, customer.pk]), follow=True
    )
    assert answer.status_code == 200
    assert [str(m) for m in answer.context["messages"]] == [
        "The catalogue has no active outage category: ask an administrator to activate it."
    ]
    assert not Ticket.objects.filter(customer=customer).exists()


def test_the_catalogue_loader_makes_no_second_outage_category(catalogue):
    # given the outage category under another code (loaded before codes were set once)
    Category.objects.filter(pk=catalogue["outage"].pk).update(code="bao-mat-dien")
    # when the reference catalogue is loaded again (`make run`, every deploy)
    created = catalogue_load_reference()
    # then no second outage category appears
    assert created["categories"] == 0
    assert list(Category.objects.filter(is_outage=True).values_list("code", flat=True)) == ["bao-mat-dien"]


# 4: a policy starts at a moment to come -------------------------------------------------------------------


def test_a_policy_cannot_be_backdated_over_tickets_already_taken(client, staff, catalogue, make_customer):
    # given a new-connection ticket taken yesterday under the policy in force (5 working days)
    taken = timezone.now() - dt.timedelta(days=1)
    ticket = ticket_open(actor=None, category=catalogue["new-lv"], channel="phone", description="Cấp điện",
                         customer=make_customer(), at=taken).ticket  # fmt: skip
    # when an administrator adds a policy "valid from" a week ago (2 working days)
    client.force_login(staff[Role.ADMINISTRATOR])
    week_ago = timezone.localtime(timezone.now() - dt.timedelta(days=7))
    answer = client.post(reverse("admin:tickets_slapolicy_add"), policy_form(
        catalogue["new-lv"], valid_from_0=f"{week_ago:%d/%m/%Y}", resolve_working_days="2",
    ))  # fmt: skip
    # then it is refused on its start, and the ticket's history still names the policy it was taken under
    assert answer.status_code == 200
    assert form_errors(answer) == {"valid_from": [
        "A new policy applies only from a moment to come: tickets already taken keep the time limits they were "
        "given. Choose a later start."
    ]}  # fmt: skip
    assert not SlaPolicy.objects.filter(resolve_working_days=2).exists()
    assert policy_in_force(category=catalogue["new-lv"], at=ticket.created_at).pk == ticket.policy_id


def test_a_policy_from_a_moment_to_come_is_added_and_applies_from_then(client, staff, catalogue):
    client.force_login(staff[Role.ADMINISTRATOR])
    answer = client.post(
        reverse("admin:tickets_slapolicy_add"), policy_form(catalogue["new-lv"], resolve_working_days="4")
    )
    assert answer.status_code == 302
    policy = SlaPolicy.objects.get(category=catalogue["new-lv"], resolve_working_days=4)
    assert timezone.localtime(policy.valid_from).date() == dt.date(2030, 1, 1)
    assert policy_in_force(category=catalogue["new-lv"], at=timezone.now()).pk != policy.pk
    assert policy_in_force(category=catalogue["new-lv"], at=policy.valid_from).pk == policy.pk


def test_the_policy_service_refuses_a_backdated_start_and_writes_nothing(staff, catalogue):
    before = SlaPolicy.objects.count()
    with pytest.raises(ValidationError) as refused:
        sla_policy_create(
            actor=staff[Role.ADMINISTRATOR], category=catalogue["billing"],
            valid_from=timezone.now() - dt.timedelta(minutes=5), resolve_minutes=60,
        )  # fmt: skip
    assert list(refused.value.message_dict) == ["valid_from"]
    assert SlaPolicy.objects.count() == before


# 6 and 7: bad catalogue input, refused with a reason on its field ------------------------------------------


@pytest.mark.parametrize(
    ("changes", "expected"),
    [
        ({}, {
            "resolve_minutes": ["Choose exactly one resolve target: in minutes or in working days."],
            "resolve_working_days": ["Choose exactly one resolve target: in minutes or in working days."],
        }),
        ({"resolve_minutes": "60", "resolve_working_days": "2"}, {
            "resolve_minutes": ["Choose exactly one resolve target: in minutes or in working days."],
            "resolve_working_days": ["Choose exactly one resolve target: in minutes or in working days."],
        }),
        ({"resolve_working_days": "2", "escalate_level3_minutes": "10"}, {
            "escalate_level3_minutes": ["Level 3 comes after level 2: at least 30 minutes after the first breach."],
        }),
        ({"resolve_working_days": "0"}, {
            "resolve_working_days": ["At least 1 working day: with 0, every ticket would be late when taken."],
        }),
        ({"resolve_minutes": "0"}, {
            "resolve_minutes": ["At least 1 minute: with 0, every ticket would be late when taken."],
        }),
        ({"resolve_working_days": "2", "acknowledge_minutes": "0", "contact_minutes": "0"}, {
            "acknowledge_minutes": ["At least 1 minute: with 0, every ticket would be late when taken."],
            "contact_minutes": ["At least 1 minute: with 0, every ticket would be late when taken."],
        }),
    ],
    ids=["no resolve target", "both resolve targets", "levels out of order", "0 working days", "0 minutes",
         "0 minutes to acknowledge and to call"],
)  # fmt: skip
def test_bad_policy_input_is_refused_on_its_field_with_a_reason(client, staff, catalogue, changes, expected):
    client.force_login(staff[Role.ADMINISTRATOR])
    before = SlaPolicy.objects.count()
    answer = client.post(reverse("admin:tickets_slapolicy_add"), policy_form(catalogue["new-lv"], **changes))
    assert answer.status_code == 200
    assert form_errors(answer) == expected
    assert SlaPolicy.objects.count() == before


def test_a_suspension_ending_before_it_starts_is_refused_on_its_end(client, staff, catalogue, org):
    client.force_login(staff[Role.ADMINISTRATOR])
    answer = client.post(reverse("admin:tickets_suspension_add"), {
        "category": catalogue["new-lv"].pk, "units": [org["home"].pk], "starts_at_0": "02/01/2030",
        "starts_at_1": "00:00:00", "ends_at_0": "01/01/2030", "ends_at_1": "00:00:00", "reason": "Giãn cách",
    })  # fmt: skip
    assert answer.status_code == 200
    assert form_errors(answer) == {"ends_at": ["A suspension ends after it starts."]}
    assert not Suspension.objects.exists()


def test_the_constraints_refuse_with_a_reason_not_their_name(catalogue):
    """The database's constraints are the backstop: their message says what is wrong."""
    policy = SlaPolicy(category=catalogue["new-lv"], valid_from=timezone.now() + dt.timedelta(days=1),
                       escalate_level2_minutes=30, escalate_level3_minutes=10)  # fmt: skip
    with pytest.raises(ValidationError) as refused:
        policy.validate_constraints()
    assert sorted(refused.value.messages) == [
        "Choose exactly one resolve target: in minutes or in working days.",
        "Level 3 comes after level 2.",
    ]
    now = timezone.now()
    with pytest.raises(ValidationError) as refused:
        Suspension(category=catalogue["new-lv"], starts_at=now, ends_at=now, reason="x").validate_constraints()
    assert refused.value.messages == ["A suspension ends after it starts."]


# 5: a category with no policy in force ----------------------------------------------------------------------


@pytest.fixture
def solar(db):
    """An active category whose first policy starts next month."""
    category = Category.objects.create(code="solar", name="Điện mặt trời mái nhà")
    SlaPolicy.objects.create(category=category, valid_from=timezone.now() + dt.timedelta(days=30),
                             resolve_working_days=5)  # fmt: skip
    return category


def test_a_category_without_a_policy_in_force_is_refused_on_the_form_keeping_what_was_typed(
    client, staff, catalogue, org, solar
):
    # when an agent takes a call of that category in the new-ticket form
    client.force_login(staff[Role.AGENT])
    answer = client.post(reverse("admin:tickets_ticket_add"), {
        "category": solar.pk, "channel": "phone", "priority": "normal", "description": "Lắp điện mặt trời",
        "unit": org["home"].pk, "caller_phone": "0903 123 456",
    })  # fmt: skip
    # then the form comes back with the refusal on the category and what was typed; no ticket is taken
    assert answer.status_code == 200
    assert form_errors(answer) == {"category": ["The category Điện mặt trời mái nhà has no time limits in force."]}
    assert "Lắp điện mặt trời" in answer.content.decode()
    assert not Ticket.objects.exists()


def test_the_api_names_the_category_when_it_has_no_policy_in_force(client, staff, catalogue, make_customer, solar):
    client.force_login(staff[Role.AGENT])
    answer = client.post("/api/v1/tickets/", {"category": "solar", "channel": "app", "description": "Lắp đặt",
                                              "customer_code": make_customer().code},
                         content_type="application/json")  # fmt: skip
    assert answer.status_code == 400
    assert answer.json() == {"category": ["The category Điện mặt trời mái nhà has no time limits in force."]}
    assert not Ticket.objects.exists()
