"""A username is one person whatever its case (README, Organisation and roles): the sign-in reads it in any case,
its failures count towards one lockout whatever the case typed, and the database refuses a second account whose
username differs only in case (Django's createsuperuser compares usernames exactly)."""

from __future__ import annotations

import pytest
from axes.models import AccessAttempt
from django.contrib.auth import get_user_model
from django.core.management import call_command
from django.db import IntegrityError, transaction

from crm.models import Role

LOGIN = "/admin/login/"
PASSWORD = "s3cret-pass-word"  # the conftest's staff password


def _sign_in(client, username, password, address="10.0.0.1"):
    return client.post(LOGIN, {"username": username, "password": password}, REMOTE_ADDR=address)


def test_a_member_of_staff_signs_in_with_their_username_in_another_case(client, staff):
    agent = staff[Role.AGENT]
    response = _sign_in(client, agent.username.upper(), PASSWORD)
    assert response.status_code == 302
    assert client.session["_auth_user_id"] == str(agent.pk)


def test_a_wrong_password_is_still_refused_in_any_case(client, staff):
    agent = staff[Role.AGENT]
    response = _sign_in(client, agent.username.title(), "not-the-password")
    assert response.status_code == 200 and "_auth_user_id" not in client.session


def test_failures_in_every_case_count_towards_one_lockout(client, staff):
    agent = staff[Role.AGENT].username
    spellings = [agent, agent.upper(), agent.title()]
    failures = [
        _sign_in(client, spellings[n % 3], f"guess-{n}", address=f"10.0.1.{n}").status_code for n in range(10)
    ]
    assert failures == [200] * 9 + [429]
    assert _sign_in(client, agent, PASSWORD, address="10.0.2.1").status_code == 429
    assert set(AccessAttempt.objects.values_list("username", flat=True)) == {agent.lower()}


def test_a_second_account_of_one_username_in_another_case_is_refused_by_the_database(staff):
    agent = staff[Role.AGENT]
    users = get_user_model().objects.count()
    with pytest.raises(IntegrityError), transaction.atomic():
        get_user_model().objects.create_user(username=agent.username.upper(), password="another-pass-1")
    with pytest.raises(IntegrityError), transaction.atomic():
        call_command(
            "createsuperuser", username=agent.username.title(), email="", interactive=False, verbosity=0
        )  # fmt: skip
    assert get_user_model().objects.count() == users
