"""Admin forms and lists posted with values no page sends (a hand-edited request, a garbled search box): each is
refused on its field or as an invalid filter, the page drawn again, never a server error, and nothing is
written.

- A record field picked from a search box (``autocomplete_fields``) that comes back as letters, a unit's code,
  a NUL character, a number beyond the id column or the field sent twice (``crm.admin_base.RecordSearchSelect``).
- A choice of several units with a number beyond 64 bits (``crm.admin_base.RecordsChoiceField``): SQLite's
  adapter cannot take it.
- A public holiday at the calendar's edges (``tickets.services.holiday_day_check``).
- A list filtered at 01/01/0001, which has no UTC value on SQLite (``crm.admin_base.SafeChangeList``)."""

from __future__ import annotations

import datetime as dt

import pytest
from django.contrib.auth import get_user_model
from django.core.exceptions import ValidationError
from django.test import Client
from django.urls import reverse
from django.utils import timezone

from billing.models import RebateProgramme
from crm.models import ApiToken, Role, StaffProfile
from customers.models import Customer
from tickets import services
from tickets.models import Holiday, Suspension, Ticket

HUGE = "9" * 30  # beyond any id column (64 bits)


def _client(user) -> Client:
    client = Client(raise_request_exception=False)
    client.force_login(user)
    return client


@pytest.fixture
def root(db):
    return get_user_model().objects.create_superuser("root", "root@example.com", "s3cret-pass-word")


# Search boxes --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("value", ["abc", "1\x00", "\ufffd", "PE0100", HUGE, "-1", ["1", "abc"]])
def test_new_ticket_with_a_garbled_customer_is_refused_on_the_form(staff, catalogue, make_customer, value):
    make_customer()
    before = Ticket.objects.count()

    answer = _client(staff[Role.AGENT]).post(
        reverse("admin:tickets_ticket_add"),
        {"customer": value, "category": catalogue["new-lv"].pk, "channel": "phone", "priority": "normal",
         "description": "Mất điện"},
    )

    assert answer.status_code == 200, answer.status_code  # the form with its errors, not a 500
    form = answer.context["adminform"].form
    assert list(form.errors) == ["customer"]
    # Django's refusals: a NUL character is named as such, any other value is not one of the choices
    assert form.errors["customer"].as_data()[0].code in ("invalid_choice", "null_characters_not_allowed")
    assert "Mất điện" in answer.content.decode()  # what was typed is kept
    assert Ticket.objects.count() == before


def test_a_customer_picked_in_the_search_box_is_drawn_again_beside_another_fields_refusal(staff, make_customer):
    customer = make_customer()
    before = Ticket.objects.count()

    answer = _client(staff[Role.AGENT]).post(
        reverse("admin:tickets_ticket_add"),
        {"customer": str(customer.pk), "channel": "phone", "priority": "normal", "description": "x"},
    )

    assert answer.status_code == 200
    form = answer.context["adminform"].form
    assert "category" in form.errors and "customer" not in form.errors
    html = answer.content.decode()
    assert f'<option value="{customer.pk}" selected>{customer}</option>' in html  # the pick is not lost
    assert Ticket.objects.count() == before


def test_new_customer_with_a_garbled_unit_is_refused_on_the_form(staff, org):
    before = Customer.objects.count()

    answer = _client(staff[Role.BILLING_CLERK]).post(
        reverse("admin:customers_customer_add"),
        {"unit": "PE0100", "full_name": "Trần Thị Bình", "street": "1 Lê Lợi", "ward": "Phường Bến Nghé"},
    )

    assert answer.status_code == 200, answer.status_code
    assert "unit" in answer.context["adminform"].form.errors
    assert Customer.objects.count() == before


@pytest.mark.parametrize("value", ["abc", HUGE])
def test_an_api_token_for_a_garbled_user_is_refused_on_the_form(staff, value):
    """The token admin is not a scoped admin: its search box has the same guard."""
    before = ApiToken.objects.count()

    answer = _client(staff[Role.ADMINISTRATOR]).post(
        reverse("admin:crm_apitoken_add"), {"user": value, "name": "máy chủ báo cáo", "days": "30"}
    )

    assert answer.status_code == 200, answer.status_code
    assert "user" in answer.context["adminform"].form.errors
    assert ApiToken.objects.count() == before


# Choices of several units --------------------------------------------------------------------------------


def test_a_suspension_over_a_unit_id_beyond_64_bits_is_refused_on_the_form(staff, catalogue, org):
    start = timezone.localtime() + dt.timedelta(hours=1)
    end = start + dt.timedelta(days=1)

    answer = _client(staff[Role.ADMINISTRATOR]).post(
        reverse("admin:tickets_suspension_add"),
        {"category": catalogue["new-lv"].pk, "units": [org["home"].pk, HUGE],
         "starts_at_0": f"{start:%d/%m/%Y}", "starts_at_1": f"{start:%H:%M}",
         "ends_at_0": f"{end:%d/%m/%Y}", "ends_at_1": f"{end:%H:%M}", "reason": "Bảo trì"},
    )  # fmt: skip

    assert answer.status_code == 200, answer.status_code  # the form with the refusal, not a 500
    errors = answer.context["adminform"].form.errors
    assert list(errors) == ["units"]
    assert errors["units"].as_data()[0].code == "invalid_pk_value"
    assert errors["units"] == [f"“{HUGE}” is not a valid value."]
    assert not Suspension.objects.filter(reason="Bảo trì").exists()


def test_a_suspension_over_units_that_exist_is_made(staff, catalogue, org):
    """The guard lets real ids through: the suspension is made over the two units picked."""
    start = timezone.localtime() + dt.timedelta(hours=1)
    end = start + dt.timedelta(days=1)

    answer = _client(staff[Role.ADMINISTRATOR]).post(
        reverse("admin:tickets_suspension_add"),
        {"category": catalogue["new-lv"].pk, "units": [org["home"].pk, org["sibling"].pk],
         "starts_at_0": f"{start:%d/%m/%Y}", "starts_at_1": f"{start:%H:%M}",
         "ends_at_0": f"{end:%d/%m/%Y}", "ends_at_1": f"{end:%H:%M}", "reason": "Bảo trì"},
    )  # fmt: skip

    assert answer.status_code == 302, answer.context["adminform"].form.errors
    suspension = Suspension.objects.get(reason="Bảo trì")
    assert set(suspension.units.values_list("pk", flat=True)) == {org["home"].pk, org["sibling"].pk}


def test_a_new_member_of_staff_over_a_unit_id_beyond_64_bits_is_refused_on_the_form(staff, org):
    before = StaffProfile.objects.count()

    answer = _client(staff[Role.ADMINISTRATOR]).post(
        reverse("admin:crm_staffprofile_add"),
        {"username": "an.nguyen", "password1": "s3cret-pass-word", "password2": "s3cret-pass-word",
         "badge_number": "77001", "role": Role.AGENT, "units": [org["home"].pk, HUGE]},
    )  # fmt: skip

    assert answer.status_code == 200, answer.status_code
    assert "units" in answer.context["adminform"].form.errors
    assert StaffProfile.objects.count() == before
    assert not get_user_model().objects.filter(username="an.nguyen").exists()


def test_a_rebate_programme_over_a_unit_id_beyond_64_bits_is_refused_on_the_form(root, org):
    before = RebateProgramme.objects.count()

    answer = _client(root).post(
        reverse("admin:billing_rebateprogramme_add"),
        {"name": "Hỗ trợ", "units": [HUGE], "period_from": "2026-01-01", "period_to": "2026-03-01",
         "min_kwh": "0", "customer_types": "[]",
         "bands-TOTAL_FORMS": "0", "bands-INITIAL_FORMS": "0"},
    )  # fmt: skip

    assert answer.status_code == 200, answer.status_code
    assert "units" in answer.context["adminform"].form.errors
    assert RebateProgramme.objects.count() == before


# Public holidays at the calendar's edges -----------------------------------------------------------------


@pytest.mark.parametrize("day", ["31/12/9999", "01/01/0001", "9999-12-31", "31/12/1899", "01/01/3000"])
def test_a_holiday_at_the_calendars_edge_is_refused_on_its_field(staff, catalogue, day):
    before = set(Holiday.objects.values_list("pk", "day"))

    answer = _client(staff[Role.ADMINISTRATOR]).post(
        reverse("admin:tickets_holiday_add"), {"day": day, "name": "Nghỉ bù"}
    )

    assert answer.status_code == 200, answer.status_code  # the form again, not a 500
    assert answer.context["adminform"].form.errors["day"] == ["Choose a day from 01/01/1900 to 31/12/2999."]
    assert set(Holiday.objects.values_list("pk", "day")) == before


def test_a_holiday_moved_to_year_one_is_refused_and_stays_where_it_was(staff, catalogue):
    actor = staff[Role.ADMINISTRATOR]
    holiday = services.holiday_save(actor=actor, day=dt.date(2031, 9, 2), name="Nghỉ bù 2031")

    answer = _client(actor).post(
        reverse("admin:tickets_holiday_change", args=[holiday.pk]), {"day": "01/01/0001", "name": "Nghỉ bù 2031"}
    )

    assert answer.status_code == 200, answer.status_code
    assert "day" in answer.context["adminform"].form.errors
    assert Holiday.objects.filter(name="Nghỉ bù 2031").get().day == dt.date(2031, 9, 2)


def test_holiday_save_refuses_a_day_beyond_the_calendar_on_its_field(staff, catalogue):
    before = set(Holiday.objects.values_list("pk", "day"))

    with pytest.raises(ValidationError) as refusal:
        services.holiday_save(actor=staff[Role.ADMINISTRATOR], day=dt.date(9999, 12, 31), name="Nghỉ bù")

    assert refusal.value.message_dict == {"day": ["Choose a day from 01/01/1900 to 31/12/2999."]}
    assert set(Holiday.objects.values_list("pk", "day")) == before


def test_a_holiday_on_the_last_day_allowed_is_kept(staff, catalogue):
    answer = _client(staff[Role.ADMINISTRATOR]).post(
        reverse("admin:tickets_holiday_add"), {"day": "31/12/2999", "name": "Nghỉ bù"}
    )

    assert answer.status_code == 302, answer.context["adminform"].form.errors
    assert Holiday.objects.get(day=dt.date(2999, 12, 31)).name == "Nghỉ bù"


# Lists filtered at year one ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("role", "url", "query"),
    [
        (Role.AGENT, "admin:crm_apitoken_changelist", "expiry__gte=0001-01-01"),
        (Role.BILLING_CLERK, "admin:billing_rebateprogramme_changelist", "created_at__lt=0001-01-01"),
        (None, "admin:crm_outboxmessage_changelist", "created_at__lt=0001-01-01"),
    ],
)
def test_a_list_filtered_at_year_one_is_not_a_server_error(staff, root, role, url, query):
    answer = _client(staff[role] if role else root).get(f"{reverse(url)}?{query}")

    # SQLite: Django's answer to a filter it cannot use, back to the list with ?e=1; PostgreSQL reads the value
    assert answer.status_code in (200, 302), answer.status_code
    if answer.status_code == 302:
        assert answer["Location"] == f"{reverse(url)}?e=1"
