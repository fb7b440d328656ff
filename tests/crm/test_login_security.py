"""Sign-in throttling (django-axes): a username, and a client address, are locked out after so many failures in a
row, the failures are logged, and an administrator unlocks them in the admin."""

from __future__ import annotations

from axes.models import AccessAttempt, AccessFailureLog
from django.urls import reverse

from crm.models import Role

LOGIN = "/admin/login/"
PASSWORD = "s3cret-pass-word"  # the conftest's staff password


def _sign_in(client, username, password, address="10.0.0.1"):
    return client.post(LOGIN, {"username": username, "password": password}, REMOTE_ADDR=address)


def _signed_in(client) -> bool:
    return "_auth_user_id" in client.session


def test_a_username_is_locked_out_after_the_failure_limit_even_with_the_right_password(client, staff, settings):
    # given
    agent = staff[Role.AGENT].username
    # when
    failures = [_sign_in(client, agent, f"guess-{n}", address=f"10.0.1.{n}").status_code for n in range(10)]
    right = _sign_in(client, agent, PASSWORD, address="10.0.2.1")
    # then
    assert failures == [200] * 9 + [429]
    assert right.status_code == 429
    assert "locked" in right.content.decode()
    assert right["Retry-After"] == str(15 * 60)
    assert not _signed_in(client)
    logged = AccessFailureLog.objects.filter(username=agent)
    assert (logged.count(), logged.filter(locked_out=True).count()) == (11, 2)


def test_an_address_is_locked_out_after_the_failure_limit_whatever_the_username(client, staff):
    # given: ten different usernames guessed from one address
    for n in range(10):
        _sign_in(client, f"nobody-{n}", "guess")
    # when
    from_there = _sign_in(client, staff[Role.MANAGER].username, PASSWORD)
    from_elsewhere = _sign_in(client, staff[Role.MANAGER].username, PASSWORD, address="10.9.9.9")
    # then
    assert from_there.status_code == 429
    assert from_elsewhere.status_code == 302 and _signed_in(client)


def test_an_administrator_unlocks_in_the_admin_in_vietnamese_and_the_user_signs_in_again(client, staff):
    # given
    agent = staff[Role.AGENT].username
    for n in range(10):
        _sign_in(client, agent, f"guess-{n}")
    assert _sign_in(client, agent, PASSWORD).status_code == 429
    client.force_login(staff[Role.ADMINISTRATOR])
    changelist = reverse("admin:axes_accessattempt_changelist")
    # when
    page = client.get(changelist, HTTP_ACCEPT_LANGUAGE="vi")
    unlocked = client.post(
        changelist,
        {"action": "unlock", "_selected_action": list(AccessAttempt.objects.values_list("pk", flat=True))},
    )
    client.logout()
    again = _sign_in(client, agent, PASSWORD)
    # then
    assert page.status_code == 200
    assert "Mở khóa người dùng và địa chỉ đã chọn" in page.content.decode()
    assert unlocked.status_code == 302
    assert not AccessAttempt.objects.exists()
    assert again.status_code == 302 and _signed_in(client)


def test_only_administrators_see_and_unlock_failed_sign_ins(client, staff):
    # given
    _sign_in(client, "someone", "guess")
    client.force_login(staff[Role.SUPERVISOR])
    # when
    page = client.get(reverse("admin:axes_accessattempt_changelist"))
    refused = client.post(
        reverse("admin:axes_accessattempt_changelist"),
        {"action": "unlock", "_selected_action": list(AccessAttempt.objects.values_list("pk", flat=True))},
    )
    # then
    assert page.status_code == 403
    assert refused.status_code == 403
    assert AccessAttempt.objects.count() == 1


def test_behind_a_proxy_the_address_is_the_one_the_proxy_saw(client, staff, settings):
    # given: one reverse proxy in front (every request comes from its address)
    settings.REST_FRAMEWORK = {**settings.REST_FRAMEWORK, "NUM_PROXIES": 1}
    for n in range(10):
        client.post(
            LOGIN, {"username": f"nobody-{n}", "password": "guess"},
            REMOTE_ADDR="10.0.0.254", HTTP_X_FORWARDED_FOR="203.0.113.7",
        )  # fmt: skip
    # when
    other_client = client.post(
        LOGIN, {"username": staff[Role.AGENT].username, "password": PASSWORD},
        REMOTE_ADDR="10.0.0.254", HTTP_X_FORWARDED_FOR="198.51.100.9",
    )  # fmt: skip
    # then
    assert set(AccessAttempt.objects.values_list("ip_address", flat=True)) == {"203.0.113.7"}
    assert other_client.status_code == 302


def test_a_local_administrator_cannot_unlock_a_superuser_being_guessed_at(client, django_user_model, local_administrator):
    """Someone guesses at the superuser's password until the username is locked out. A company's local
    administrator (who may not change a superuser's account, nor anyone's beyond their units) does not see the
    lockout, and selecting it anyway (a forged form) unlocks nothing, with a warning saying how many were left."""
    django_user_model.objects.create_superuser("root", "root@example.com", PASSWORD)
    for n in range(10):
        _sign_in(client, "root", f"guess-{n}", address=f"10.0.3.{n}")
    assert _sign_in(client, "root", "x").status_code == 429
    before = sorted(AccessAttempt.objects.values_list("pk", flat=True))
    client.force_login(local_administrator)
    changelist = reverse("admin:axes_accessattempt_changelist")
    listed = client.get(changelist)
    done = client.post(changelist, {"action": "unlock", "_selected_action": before}, follow=True)
    assert listed.status_code == 200 and listed.context["cl"].result_count == 0
    assert sorted(AccessAttempt.objects.values_list("pk", flat=True)) == before
    assert f"{len(before)} failed sign-ins were left locked" in done.content.decode()
    client.logout()
    assert _sign_in(client, "root", PASSWORD, address="10.0.9.9").status_code == 429


def test_unlocking_an_agent_guessed_at_from_the_same_address_as_the_superuser_leaves_the_superuser_locked(
    client, django_user_model, staff, org, local_administrator, settings
):
    """The same address guesses at the superuser and at an agent of the local administrator's company. The local
    administrator sees and unlocks the agent only: unlocking the agent's address forgets the agent's failures
    there, not the superuser's, so neither the superuser nor the address is unlocked by it."""
    settings.AXES_FAILURE_LIMIT = 3
    django_user_model.objects.create_superuser("root", "root@example.com", PASSWORD)
    agent = staff[Role.AGENT].username
    for n in range(3):
        _sign_in(client, "root", f"guess-{n}", address="10.0.4.1")
    _sign_in(client, agent, "guess", address="10.0.4.1")
    root_rows = sorted(AccessAttempt.objects.filter(username="root").values_list("pk", flat=True))
    client.force_login(local_administrator)
    changelist = reverse("admin:axes_accessattempt_changelist")
    listed = client.get(changelist)
    assert [a.username for a in listed.context["cl"].result_list] == [agent]
    client.post(changelist, {"action": "unlock", "_selected_action": [listed.context["cl"].result_list[0].pk]})
    assert not AccessAttempt.objects.filter(username=agent).exists()
    assert sorted(AccessAttempt.objects.filter(username="root").values_list("pk", flat=True)) == root_rows
    client.logout()
    assert _sign_in(client, "root", PASSWORD, address="10.0.9.9").status_code == 429
    assert _sign_in(client, agent, PASSWORD, address="10.0.4.1").status_code == 429  # the address is still locked


def test_an_administrator_unlocks_a_username_of_nobody_but_not_a_superuser(client, django_user_model, staff):
    """An administrator (who sees everything but is no superuser) lists and unlocks the failures of a username
    that names no account, not those of a superuser; a superuser unlocks both."""
    superuser = django_user_model.objects.create_superuser("root", "root@example.com", PASSWORD)
    _sign_in(client, "root", "guess", address="10.0.5.1")
    _sign_in(client, "nobody-at-all", "guess", address="10.0.5.2")
    changelist = reverse("admin:axes_accessattempt_changelist")
    client.force_login(staff[Role.ADMINISTRATOR])
    listed = client.get(changelist)
    assert [a.username for a in listed.context["cl"].result_list] == ["nobody-at-all"]
    client.post(changelist, {"action": "unlock", "_selected_action": list(AccessAttempt.objects.values_list("pk", flat=True))})
    assert list(AccessAttempt.objects.values_list("username", flat=True)) == ["root"]
    client.force_login(superuser)
    client.post(changelist, {"action": "unlock", "_selected_action": list(AccessAttempt.objects.values_list("pk", flat=True))})
    assert not AccessAttempt.objects.exists()
