"""manage.py create_staff and the staff service hold a new account's password to the site's password rules
(``AUTH_PASSWORD_VALIDATORS``, as the admin's staff form does): typed twice at a terminal, or read from an
environment variable named by --password-env; without a terminal the command says how, never a traceback."""

from __future__ import annotations

import io

import pytest
from django.contrib.auth import get_user_model
from django.core.exceptions import ValidationError
from django.core.management import CommandError, call_command

from crm.models import Role, StaffProfile
from crm.services import staff_create

GOOD_PASSWORD = "Dien-luc-9-Ben-Nghe"


def typed(monkeypatch, *answers):
    """The terminal's answers to getpass, in order (an exception is raised where one is given)."""
    queue = list(answers)

    def getpass(prompt=""):
        answer = queue.pop(0)
        if isinstance(answer, type):  # an exception class: the terminal closed (EOFError), or Ctrl-C
            raise answer
        return answer

    monkeypatch.setattr("getpass.getpass", getpass)
    return queue


def create_staff(**options):
    call_command("create_staff", "nv.moi", role="agent", badge="4711", units="PE0100", stdout=io.StringIO(),
                 **options)  # fmt: skip


def nobody_created():
    return not get_user_model().objects.filter(username__iexact="nv.moi").exists()


@pytest.mark.parametrize(
    ("password", "reason"),
    [("", "A password is needed"), ("123", "too short"), ("nv.moi", "too similar to the username")],
)
def test_create_staff_refuses_a_password_the_sites_rules_refuse(org, monkeypatch, password, reason):
    monkeypatch.setattr("getpass.getpass", lambda prompt="": password)
    with pytest.raises(CommandError, match=reason):
        create_staff()
    assert nobody_created()


def test_create_staff_without_a_terminal_is_a_clear_error_not_a_traceback(org, monkeypatch):
    def no_terminal(prompt=""):
        raise EOFError

    monkeypatch.setattr("getpass.getpass", no_terminal)
    with pytest.raises(CommandError, match=r"No password given.*--password-env"):
        create_staff()
    assert nobody_created()


def test_create_staff_asks_twice_and_refuses_two_different_passwords(org, monkeypatch):
    typed(monkeypatch, GOOD_PASSWORD, GOOD_PASSWORD + "x")
    with pytest.raises(CommandError, match="The two passwords differ"):
        create_staff()
    assert nobody_created()


def test_create_staff_stopped_at_the_second_prompt_creates_nothing(org, monkeypatch):
    typed(monkeypatch, GOOD_PASSWORD, KeyboardInterrupt)
    with pytest.raises(CommandError, match="No password given"):
        create_staff()
    assert nobody_created()


def test_create_staff_with_the_password_typed_twice(org, monkeypatch):
    left = typed(monkeypatch, GOOD_PASSWORD, GOOD_PASSWORD)
    create_staff()
    assert left == []
    user = get_user_model().objects.get(username="nv.moi")
    assert user.check_password(GOOD_PASSWORD)
    assert StaffProfile.objects.get(user=user).role == Role.AGENT


def test_create_staff_reads_the_password_from_the_variable_named(org, monkeypatch):
    def no_prompt(prompt=""):
        raise AssertionError("asked for a password")

    monkeypatch.setattr("getpass.getpass", no_prompt)
    monkeypatch.delenv("NEW_STAFF_PASSWORD", raising=False)
    with pytest.raises(CommandError, match=r"NEW_STAFF_PASSWORD \(--password-env\) is not set"):
        create_staff(password_env="NEW_STAFF_PASSWORD")
    monkeypatch.setenv("NEW_STAFF_PASSWORD", "12345678")
    with pytest.raises(CommandError, match="entirely numeric"):
        create_staff(password_env="NEW_STAFF_PASSWORD")
    assert nobody_created()
    monkeypatch.setenv("NEW_STAFF_PASSWORD", GOOD_PASSWORD)
    create_staff(password_env="NEW_STAFF_PASSWORD")
    assert get_user_model().objects.get(username="nv.moi").check_password(GOOD_PASSWORD)


@pytest.mark.parametrize("password", ["", "password", "Nguyen.Lan"])
def test_the_staff_service_refuses_a_weak_password_on_its_field(org, password):
    with pytest.raises(ValidationError) as refused:
        staff_create(actor=None, username="nv.lan", password=password, role=Role.AGENT, badge_number="4712",
                     units=[org["home"]], first_name="Nguyen", last_name="Lan")  # fmt: skip
    assert list(refused.value.error_dict) == ["password"]
    assert not get_user_model().objects.filter(username="nv.lan").exists()
    assert not StaffProfile.objects.filter(badge_number="4712").exists()


def test_create_staff_with_an_empty_username_is_a_clear_error(org, monkeypatch):
    # given a provisioning script whose username variable is empty
    monkeypatch.setenv("NEW_STAFF_PASSWORD", GOOD_PASSWORD)
    with pytest.raises(CommandError, match="username: A username is needed"):
        call_command("create_staff", "", role="agent", badge="4711", units="PE0100",
                     password_env="NEW_STAFF_PASSWORD", stdout=io.StringIO())  # fmt: skip
    assert get_user_model().objects.count() == 0


@pytest.mark.parametrize(
    ("username", "reason"),
    [
        ("nv lan", "Enter a valid username"),
        ("nv/lan", "Enter a valid username"),
        ("a" * 151, r"A username has at most 150 characters \(this one has 151\)"),
    ],
)
def test_create_staff_refuses_a_username_the_admin_refuses_before_asking_for_a_password(
    org, monkeypatch, username, reason
):
    def no_prompt(prompt=""):
        raise AssertionError("asked for a password")

    monkeypatch.setattr("getpass.getpass", no_prompt)
    with pytest.raises(CommandError, match=f"username: .*{reason}"):
        call_command("create_staff", username, role="agent", badge="4711", units="PE0100", stdout=io.StringIO())
    assert get_user_model().objects.count() == 0


def test_create_staff_refuses_an_email_that_is_not_one(org, monkeypatch):
    monkeypatch.setenv("NEW_STAFF_PASSWORD", GOOD_PASSWORD)
    with pytest.raises(CommandError, match=r"email: “nv\.lan@” is not an e-mail address"):
        create_staff(email="nv.lan@", password_env="NEW_STAFF_PASSWORD")
    assert nobody_created()


@pytest.mark.parametrize(
    ("username", "email", "field"),
    [("", "", "username"), ("nv lan", "", "username"), ("a" * 151, "", "username"), ("nv.lan", "nv.lan@", "email")],
)
def test_the_staff_service_refuses_a_username_or_email_the_admin_refuses_on_its_field(org, username, email, field):
    with pytest.raises(ValidationError) as refused:
        staff_create(actor=None, username=username, password=GOOD_PASSWORD, role=Role.AGENT, badge_number="4712",
                     units=[org["home"]], email=email)  # fmt: skip
    assert list(refused.value.error_dict) == [field]
    assert get_user_model().objects.count() == 0
    assert not StaffProfile.objects.filter(badge_number="4712").exists()


def test_the_staff_service_keeps_an_email_without_the_spaces_around_it(org):
    user = staff_create(actor=None, username="nv.lan", password=GOOD_PASSWORD, role=Role.AGENT, badge_number="4712",
                        units=[org["home"]], email="  nv.lan@example.vn ")  # fmt: skip
    assert get_user_model().objects.get(pk=user.pk).email == "nv.lan@example.vn"
