"""Dates typed day first as in Vietnam (03/11/2025 is 3 November, 25/11/2025 a date), links whose prefilled
values were edited by hand (the form opens without them, never a server error), and a work phone typed as
people write it."""

from __future__ import annotations

import datetime as dt

import pytest
from django.contrib.auth import get_user_model
from django.urls import reverse
from django.utils import timezone

from crm.models import Role
from tickets.models import Incident, Interaction

GOOD_PASSWORD = "Dien-luc-9-Ben-Nghe"


@pytest.fixture
def client(client):
    client.defaults["HTTP_ACCEPT_LANGUAGE"] = "vi"
    return client


def _log_call(client, customer, day: str):
    return client.post(
        reverse("admin:tickets_interaction_add"),
        {"channel": "phone", "disposition": "information", "customer": customer.pk, "handling_seconds": "60",
         "started_at_0": day, "started_at_1": "10:00:00"},
        follow=True,
    )  # fmt: skip


@pytest.mark.parametrize("language", ["vi", "en"])
@pytest.mark.parametrize(("typed", "day"), [("03/11/2025", dt.date(2025, 11, 3)), ("25/11/2025", dt.date(2025, 11, 25)),
                                            ("2025-11-03", dt.date(2025, 11, 3))])  # fmt: skip
def test_a_call_logged_with_its_day_typed_day_first_is_logged_on_that_day(client, staff, make_customer, typed, day,
                                                                          language):  # fmt: skip
    client.defaults["HTTP_ACCEPT_LANGUAGE"] = language
    client.force_login(staff[Role.AGENT])
    response = _log_call(client, make_customer(), typed)
    assert response.status_code == 200
    assert timezone.localtime(Interaction.objects.get().started_at).date() == day


def test_an_outage_started_on_a_day_typed_day_first_starts_that_day(client, staff, org):
    client.force_login(staff[Role.SUPERVISOR])
    client.post(
        reverse("admin:tickets_incident_add"),
        {"unit": org["home"].pk, "cause": "Sự cố trạm biến áp", "started_at_0": "03/11/2025",
         "started_at_1": "10:00:00"},
    )  # fmt: skip
    assert timezone.localtime(Incident.objects.get().started_at) == timezone.make_aware(dt.datetime(2025, 11, 3, 10))


@pytest.mark.parametrize(
    ("page", "query", "role"),
    [
        ("admin:tickets_ticket_add", "customer=abc", Role.AGENT),  # the card's "New ticket" link, garbled
        ("admin:tickets_ticket_add", "contract=1.5", Role.AGENT),
        ("admin:tickets_ticket_add", "unit=abc", Role.AGENT),
        ("admin:tickets_interaction_add", "started_at=abc", Role.AGENT),
        ("admin:tickets_interaction_add", "ticket=abc", Role.AGENT),
        ("admin:tickets_incident_add", "unit=abc", Role.SUPERVISOR),
    ],
)
def test_a_prefilled_form_whose_link_was_edited_opens_without_that_value(client, staff, page, query, role):
    client.force_login(staff[role])
    response = client.get(f"{reverse(page)}?{query}")
    assert response.status_code == 200
    name, value = query.split("=")
    assert response.context["adminform"].form.initial.get(name) != value  # left out (or filled in as usual)


def test_the_cards_new_ticket_link_still_fills_in_the_customer(client, staff, make_customer):
    customer = make_customer()
    client.force_login(staff[Role.AGENT])
    response = client.get(f"{reverse('admin:tickets_ticket_add')}?customer={customer.pk}")
    assert response.context["adminform"].form.initial["customer"] == str(customer.pk)


def test_a_work_phone_in_an_international_spelling_is_taken(client, staff, org):
    client.force_login(staff[Role.ADMINISTRATOR])
    response = client.post(
        reverse("admin:crm_staffprofile_add"),
        {"username": "nv.hoa", "password1": GOOD_PASSWORD, "password2": GOOD_PASSWORD, "first_name": "Hoa",
         "last_name": "Lê", "email": "", "badge_number": "CSKH-0777", "role": Role.DISPATCHER,
         "units": [str(org["home"].pk)], "phone": "+84 (28) 3822 1234"},
    )  # fmt: skip
    assert response.status_code == 302, response.context["adminform"].form.errors
    assert get_user_model().objects.get(username="nv.hoa").staff_profile.phone == "+842838221234"
