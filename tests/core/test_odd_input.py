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
from tests.billing.conftest import read, tariffs  # noqa: F401  (fixtures)
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


# Money typed as the admin writes it --------------------------------------------------------------------------


@pytest.fixture
def issued_bill(make_customer, read):  # noqa: F811  (the billing fixture)
    import time

    from billing import services as billing
    from billing.models import Invoice
    from tests.billing.conftest import OCT

    customer = make_customer()
    read(customer, OCT, 250)
    billing.billing_run(actor=None, period=OCT, unit=customer.unit)
    billing.invoices_issue(actor=None, period=OCT, unit=customer.unit)
    time.sleep(1.1)  # a payment's time, typed to the second, is not before the issue
    return Invoice.objects.get(customer=customer, period=OCT)


def test_a_payment_typed_as_the_page_writes_money_is_refused_not_recorded_as_a_thousandth(
    client, staff, issued_bill
):
    from django.utils import timezone

    from billing.models import Payment

    client.force_login(staff[Role.BILLING_CLERK])
    typed = {"paid_at": timezone.localtime().strftime("%d/%m/%Y %H:%M:%S"), "source": "counter"}
    response = client.post(reverse("admin:billing_invoice_pay", args=[issued_bill.pk]),
                           {**typed, "amount": "10.000", "reference": "QUAY-0001"}, **VI)  # fmt: skip
    assert response.status_code == 200 and not Payment.objects.exists()
    assert response.context["form"].errors["amount"] == [
        "Nhập số chỉ bằng chữ số, không có dấu chấm, dấu phẩy hay khoảng trắng (10000)."
    ]
    client.post(reverse("admin:billing_invoice_pay", args=[issued_bill.pk]),
                {**typed, "amount": "10000", "reference": "QUAY-0001"}, **VI)  # fmt: skip
    assert list(Payment.objects.values_list("amount", flat=True)) == [10000]


def test_the_payments_api_refuses_a_dotted_amount(client, staff, issued_bill):
    from billing.models import Payment

    client.force_login(staff[Role.BILLING_CLERK])
    response = client.post(
        f"/api/v1/invoices/{issued_bill.pk}/payments/",
        {"amount": "10.000", "paid_at": "2025-11-05T09:00:00+07:00", "source": "bank", "reference": "NH-1"},
        content_type="application/json",
    )
    assert response.status_code == 400 and "amount" in response.json()
    assert not Payment.objects.exists()


def test_the_printable_bill_heads_its_vat_rate_columns_in_vietnamese(client, staff, issued_bill):
    client.force_login(staff[Role.BILLING_CLERK])
    page = client.get(reverse("admin:billing_invoice_print", args=[issued_bill.pk]), **VI).content.decode()
    assert "VAT %" not in page and "thuế suất GTGT (%)" in page
