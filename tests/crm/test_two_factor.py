"""Administrators and superusers sign in to the admin with a code from their authenticator app (django-otp,
TOTP); staff sessions last a shift and end with the browser."""

from __future__ import annotations

import datetime as dt
import io

import pytest
from django.contrib.sessions.models import Session
from django.core.management import call_command
from django.urls import reverse
from django.utils import timezone
from django_otp.oath import totp

from crm import two_factor
from crm.models import Role

LOGIN = "/admin/login/"
PASSWORD = "s3cret-pass-word"


@pytest.fixture
def two_factor_on(settings):
    settings.TONGDAI_ADMIN_2FA = True


def _code(device, shift: int = 0) -> str:
    return f"{totp(device.bin_key, step=device.step, t0=device.t0 - shift * device.step, digits=device.digits):06d}"


def _sign_in(client, user, code=""):
    return client.post(LOGIN, {"username": user.username, "password": PASSWORD, "otp_token": code})


def test_an_administrator_signs_in_only_with_the_code_of_their_authenticator(client, staff, two_factor_on):
    # given
    administrator = staff[Role.ADMINISTRATOR]
    device = two_factor.totp_enroll(actor=None, user=administrator)
    # when
    without = _sign_in(client, administrator)
    wrong = _sign_in(client, administrator, "000000" if _code(device) != "000000" else "111111")
    right_too_soon = _sign_in(client, administrator, _code(device))  # each failure makes the next wait
    device.refresh_from_db()
    device.throttle_reset()
    right = _sign_in(client, administrator, _code(device))
    # then
    assert without.status_code == 200
    assert without.context["form"].non_field_errors() == ["Type the code your authenticator app shows."]
    assert wrong.status_code == 200
    assert "This code is wrong" in wrong.context["form"].non_field_errors()[0]
    assert right_too_soon.status_code == 200
    assert right.status_code == 302
    assert client.get(reverse("admin:index")).status_code == 200


def test_a_superuser_needs_the_code_too(client, db, django_user_model, two_factor_on):
    root = django_user_model.objects.create_superuser("root", "root@example.org", PASSWORD)
    device = two_factor.totp_enroll(actor=None, user=root)
    assert _sign_in(client, root).status_code == 200
    assert _sign_in(client, root, _code(device)).status_code == 302


def test_an_administrator_without_an_authenticator_is_told_who_enrols_one(client, staff, two_factor_on):
    # when
    page = _sign_in(client, staff[Role.ADMINISTRATOR])
    # then
    assert page.status_code == 200
    assert f"manage.py otp_enroll {staff[Role.ADMINISTRATOR].username}" in page.content.decode()
    assert "_auth_user_id" not in client.session


def test_other_roles_sign_in_with_their_password(client, staff, two_factor_on):
    assert _sign_in(client, staff[Role.AGENT]).status_code == 302
    assert client.get(reverse("admin:index")).status_code == 200


def test_a_session_opened_without_the_code_does_not_open_the_admin(client, staff, two_factor_on):
    # given
    client.force_login(staff[Role.ADMINISTRATOR])
    # when
    page = client.get(reverse("admin:crm_unit_changelist"))
    # then
    assert page.status_code == 302
    assert page["Location"].startswith(reverse("admin:login"))


def test_otp_enroll_prints_the_secret_the_uri_and_the_qr_code(staff, two_factor_on):
    # given
    out = io.StringIO()
    # when
    call_command("otp_enroll", staff[Role.ADMINISTRATOR].username.upper(), stdout=out)  # a username in any case
    # then
    device = staff[Role.ADMINISTRATOR].totpdevice_set.get()
    printed = out.getvalue()
    assert two_factor.secret_base32(device) in printed
    assert "otpauth://totp/tongdai%3A" in printed
    assert "█" in printed  # the QR code, drawn with block characters
    again = io.StringIO()
    call_command("otp_enroll", staff[Role.ADMINISTRATOR].username, "--replace", stdout=again)
    assert staff[Role.ADMINISTRATOR].totpdevice_set.get().key != device.key


def test_a_staff_session_lasts_a_shift_and_ends_with_the_browser(client, staff):
    # when
    response = _sign_in(client, staff[Role.AGENT])
    # then
    assert response.status_code == 302
    assert client.session.get_expiry_age() == 10 * 3600
    assert client.session.get_expire_at_browser_close() is True
    cookie = response.cookies["sessionid"]
    assert (cookie["max-age"], cookie["expires"]) == ("", "")
    stored = Session.objects.get(session_key=client.session.session_key)
    assert abs(stored.expire_date - (timezone.now() + dt.timedelta(hours=10))) < dt.timedelta(minutes=1)


def test_the_demo_users_command_prints_what_the_demo_administrator_needs(org, tmp_path, settings, two_factor_on):
    # given
    from customers import demo

    settings.BASE_DIR = tmp_path
    demo.seed(customers=20, seed=1, units=org["home"].company.units.active())
    out = io.StringIO()
    # when
    call_command("create_demo_users", stdout=out)
    # then
    from django.contrib.auth import get_user_model

    administrator = get_user_model().objects.get(username="admin")
    device = administrator.totpdevice_set.get()
    assert two_factor.secret_base32(device) in out.getvalue()
    assert "otpauth://totp/" in out.getvalue()


def test_a_session_that_owes_its_second_factor_is_signed_out_of_the_api_and_the_field_page(
    client, org, make_staff, make_customer, two_factor_on
):
    from crm.services import staff_update

    # given: an agent signed in with a password, then raised to administrator
    mine, theirs = make_customer(), make_customer(org["other_corporation"])
    user = make_staff(Role.AGENT, [org["home"]])
    assert _sign_in(client, user).status_code == 302
    assert mine.code in client.get("/api/v1/customers/", {"code": mine.code}).content.decode()
    staff_update(actor=None, user=user, role=Role.ADMINISTRATOR, units=[])
    # when / then: the same session reads nothing until the code is given
    api = client.get("/api/v1/customers/", {"code": theirs.code})
    assert api.status_code in (401, 403)
    assert theirs.code not in api.content.decode()
    field = client.get(reverse("field-work-orders"))
    assert field.status_code == 302 and "login" in field["Location"]
    assert client.get(reverse("admin:index")).status_code == 302
    # signed in again with the code: every page answers
    device = two_factor.totp_enroll(actor=None, user=user)
    assert _sign_in(client, user, _code(device)).status_code == 302
    assert theirs.code in client.get("/api/v1/customers/", {"code": theirs.code}).content.decode()
    assert client.get(reverse("field-work-orders")).status_code == 200
