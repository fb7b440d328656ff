"""Input people type, or links they edit, that the admin and the API must refuse with the reason (never guess,
never a server error): whole numbers with thousands dots (``10.000`` is ten thousand in Vietnamese, which
Django's and DRF's integer fields read as ten), and list filters whose values are no unit, no group or no
year."""

from __future__ import annotations

import pytest
from django.contrib import admin
from django.contrib.auth import get_user_model
from django.core.exceptions import ValidationError
from django.test import RequestFactory
from django.urls import reverse
from rest_framework import serializers

from core.numbers import WholeNumberField, WholeNumberSerializerField
from crm.models import Role
from tickets.models import SlaPolicy

VI = {"HTTP_ACCEPT_LANGUAGE": "vi"}


@pytest.mark.parametrize("typed", ["10.000", "10,000", "10 000", "1.5", "abc", "10.", "١٠"])
def test_a_whole_number_with_anything_but_digits_is_refused_in_a_form(typed):
    field = WholeNumberField(min_value=0)
    with pytest.raises(ValidationError) as refused:
        field.clean(typed)
    assert refused.value.messages == [
        "Type the number with digits only, without dots, commas or spaces (10000)."
    ]


@pytest.mark.parametrize(("typed", "number"), [("10000", 10000), (" 10000 ", 10000), ("0", 0), ("+7", 7)])
def test_a_whole_number_typed_with_digits_is_read_as_typed(typed, number):
    assert WholeNumberField(min_value=0).clean(typed) == number


@pytest.mark.parametrize("sent", ["10.000", "10,000", "10 000", "1.5", 1.5])
def test_a_whole_number_with_anything_but_digits_is_refused_by_the_api(sent):
    field = WholeNumberSerializerField(min_value=0)
    with pytest.raises(serializers.ValidationError) as refused:
        field.run_validation(sent)
    assert "digits only" in str(refused.value.detail[0])


@pytest.mark.parametrize(("sent", "number"), [(10000, 10000), ("10000", 10000), (10000.0, 10000)])
def test_a_whole_number_sent_as_a_number_or_digits_is_read_by_the_api(sent, number):
    assert WholeNumberSerializerField(min_value=0).run_validation(sent) == number


def test_the_admins_model_forms_read_their_integer_fields_as_whole_numbers(db):
    user = get_user_model().objects.create_superuser("root", "root@example.com", "s3cret-pass-word")
    request = RequestFactory().get("/")
    request.user = user
    form = admin.site.get_model_admin(SlaPolicy).get_form(request)()
    assert isinstance(form.fields["acknowledge_minutes"], WholeNumberField)
    assert isinstance(form.fields["callback_hours"], WholeNumberField)


def test_a_refusal_of_djangos_own_whole_number_reads_as_vietnamese():
    from django.forms import IntegerField
    from django.utils import translation

    with translation.override("vi"):
        with pytest.raises(ValidationError) as refused:
            IntegerField().clean("abc")
        assert refused.value.messages == ["Nhập một số nguyên."]


# List filters whose values are nothing the list offers -----------------------------------------------------


def test_the_user_lists_role_filter_with_a_value_that_is_no_group_shows_nobody(client, db):
    client.force_login(get_user_model().objects.create_superuser("root", "root@example.com", "s3cret-pass-word"))
    for value in ("abc", "1.5", "99999999999999999999"):
        response = client.get(reverse("admin:auth_user_changelist"), {"group": value}, **VI)
        assert response.status_code == 200
        assert list(response.context["cl"].result_list) == []


@pytest.mark.parametrize(
    ("role", "changelist"),
    [(Role.AGENT, "admin:tickets_ticket_changelist"), (Role.BILLING_CLERK, "admin:billing_invoice_changelist"),
     (Role.BILLING_CLERK, "admin:customers_contract_changelist")],
)  # fmt: skip
def test_the_unit_filter_with_a_value_that_is_no_unit_of_the_user_shows_nothing(client, staff, org, role, changelist):
    client.force_login(staff[role])
    for value in ("99999999999999999999", "abc", str(org["other_corporation"].pk)):
        response = client.get(reverse(changelist), {"unit": value}, **VI)
        assert response.status_code == 200, value
        assert list(response.context["cl"].result_list) == []


def test_a_date_hierarchy_year_out_of_range_is_an_invalid_filter_not_a_server_error(client, staff):
    client.force_login(staff[Role.AGENT])
    response = client.get(reverse("admin:tickets_holiday_changelist"), {"day__year": "99999999999999999999"}, **VI)
    assert response.status_code == 302 and response["Location"].endswith("?e=1")
    client.force_login(get_user_model().objects.create_superuser("root", "root@example.com", "s3cret-pass-word"))
    response = client.get(
        reverse("admin:axes_accessattempt_changelist"), {"attempt_time__year": "99999999999999999999"}, **VI
    )
    assert response.status_code == 302 and response["Location"].endswith("?e=1")
