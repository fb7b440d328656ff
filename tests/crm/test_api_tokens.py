"""API tokens: hashed, named, expiring, made and revoked by administrators in the admin, refused at once when
revoked or when their user is deactivated; bad tokens and busy users are throttled; no credentials is a 401."""

from __future__ import annotations

import datetime as dt
import importlib
import types

import pytest
from django.contrib.admin.models import ADDITION, DELETION, LogEntry
from django.core.exceptions import ValidationError
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils import timezone

from crm.models import ApiToken, Role
from crm.tasks import delete_expired_tokens
from crm.tokens import api_token_create, api_token_revoke

URL = "/api/v1/units/"


def _get(client, secret, address="10.0.0.1"):
    return client.get(URL, HTTP_AUTHORIZATION=f"Token {secret}", REMOTE_ADDR=address)


def _days(token) -> int:
    return round((token.expiry - token.created).total_seconds() / 86400)


def test_a_request_without_credentials_is_told_to_authenticate_with_a_token(client, db):
    # when
    response = client.get(URL)
    # then
    assert response.status_code == 401
    assert response["WWW-Authenticate"] == "Token"


def test_the_database_holds_no_usable_secret(client, staff):
    # given
    token, secret = api_token_create(actor=None, user=staff[Role.AGENT], name="Zalo gateway")
    # when
    stored = ApiToken.objects.filter(pk=token.pk).values().get()
    # then
    assert secret.startswith("tongdai_") and len(secret) == len("tongdai_") + 64
    assert not any(secret in str(value) for value in stored.values())
    assert secret.startswith(stored["token_key"]) and len(stored["token_key"]) == 15
    assert _get(client, secret).status_code == 200
    for column in ("digest", "token_key"):
        assert _get(client, stored[column]).status_code == 401


def test_a_token_has_a_name_and_an_expiry_and_is_refused_once_expired(client, staff, settings):
    # given
    settings.TONGDAI_API_TOKEN_DAYS = 30
    token, secret = api_token_create(actor=None, user=staff[Role.AGENT], name="website")
    assert (token.name, _days(token)) == ("website", 30)
    assert _get(client, secret).status_code == 200
    # when
    ApiToken.objects.filter(pk=token.pk).update(expiry=timezone.now() - dt.timedelta(seconds=1))
    # then
    assert _get(client, secret).status_code == 401


def test_a_token_is_checked_in_one_query_and_expired_ones_are_deleted_by_the_daily_job(client, staff):
    # given: the user's live token and two that expired (knox would read all three on every request)
    agent = staff[Role.AGENT]
    live, secret = api_token_create(actor=None, user=agent, name="website")
    expired = [api_token_create(actor=None, user=agent, name=f"old {n}")[0] for n in range(2)]
    ApiToken.objects.filter(pk__in=[t.pk for t in expired]).update(expiry=timezone.now() - dt.timedelta(days=1))
    # when
    with CaptureQueriesContext(connection) as queries:
        answer = _get(client, secret)
    # then: one query reads the token and its user; the expired tokens are still there, and refused
    assert answer.status_code == 200
    assert sum("crm_apitoken" in q["sql"] for q in queries.captured_queries) == 1
    assert ApiToken.objects.filter(user=agent).count() == 3
    # when: the daily job runs, twice
    assert delete_expired_tokens() == 2
    assert delete_expired_tokens() == 0
    # then: only the live token is left, and it still works
    assert list(ApiToken.objects.filter(user=agent).values_list("pk", flat=True)) == [live.pk]
    assert _get(client, secret).status_code == 200


def test_a_revoked_token_is_refused_at_once_although_its_user_was_cached(client, staff, settings):
    # given: a request kept the user's permissions and units in the shared cache
    settings.TONGDAI_AUTH_CACHE_SECONDS = 300
    token, secret = api_token_create(actor=None, user=staff[Role.AGENT], name="app")
    assert _get(client, secret).status_code == 200
    # when
    api_token_revoke(actor=staff[Role.ADMINISTRATOR], token=token)
    # then
    assert _get(client, secret).status_code == 401
    assert not ApiToken.objects.filter(pk=token.pk).exists()


def test_a_deactivated_user_is_refused_at_once_although_they_were_cached(client, staff, settings):
    # given
    settings.TONGDAI_AUTH_CACHE_SECONDS = 300
    agent = staff[Role.AGENT]
    _token, secret = api_token_create(actor=None, user=agent, name="app")
    assert _get(client, secret).status_code == 200
    # when
    agent.is_active = False
    agent.save(update_fields=["is_active"])
    # then: refused, and revoked with the deactivation
    response = _get(client, secret)
    assert response.status_code == 401
    assert response.json() == {"detail": "Invalid token."}
    assert not ApiToken.objects.filter(user=agent).exists()


def test_reactivating_an_account_does_not_bring_its_old_tokens_back(client, staff, settings):
    """A member of staff leaves (their account deactivated in the user admin) and comes back (reactivated): the
    tokens they had are gone with the deactivation; the integration needs a new one. Another user's token is
    untouched, and saving an inactive account again changes nothing more."""
    settings.TONGDAI_AUTH_CACHE_SECONDS = 300
    agent, clerk = staff[Role.AGENT], staff[Role.BILLING_CLERK]
    _token, secret = api_token_create(actor=None, user=agent, name="app")
    kept, other = api_token_create(actor=None, user=clerk, name="app")
    assert _get(client, secret).status_code == 200
    client.force_login(staff[Role.ADMINISTRATOR])
    change = reverse("admin:auth_user_change", args=[agent.pk])
    page = client.get(change)
    data = {k: v for k, v in page.context["adminform"].form.initial.items() if k in ("username", "first_name",
            "last_name", "email")}  # fmt: skip
    data.update({"is_staff": "on", "groups": [g.pk for g in agent.groups.all()], "date_joined_0": "2026-01-01",
                 "date_joined_1": "08:00:00"})  # fmt: skip
    assert client.post(change, data).status_code == 302
    agent.refresh_from_db()
    assert not agent.is_active and not ApiToken.objects.filter(user=agent).exists()
    client.post(change, {**data, "is_active": "on"})
    agent.refresh_from_db()
    client.logout()
    assert agent.is_active
    assert _get(client, secret).status_code == 401
    assert list(ApiToken.objects.values_list("pk", flat=True)) == [kept.pk]
    assert _get(client, other).status_code == 200


def test_bad_tokens_from_one_address_are_throttled_with_retry_after(client, staff):
    # given: the failed-token rate of the settings (10 a minute)
    _token, secret = api_token_create(actor=None, user=staff[Role.AGENT], name="app")
    # when
    answers = [_get(client, f"tongdai_{n:064d}").status_code for n in range(10)]
    blocked = _get(client, "tongdai_guess")
    # then
    assert answers == [401] * 10
    assert blocked.status_code == 429
    assert 1 <= int(blocked["Retry-After"]) <= 60
    assert _get(client, secret).status_code == 429  # not even the right token gets through from there
    assert _get(client, secret, address="10.0.0.2").status_code == 200


def test_a_user_past_the_api_rate_is_throttled_with_retry_after(client, staff, settings):
    # given
    settings.REST_FRAMEWORK = {
        **settings.REST_FRAMEWORK,
        "DEFAULT_THROTTLE_RATES": {**settings.REST_FRAMEWORK["DEFAULT_THROTTLE_RATES"], "user": "3/min"},
    }
    _token, secret = api_token_create(actor=None, user=staff[Role.AGENT], name="app")
    # when
    answers = [_get(client, secret) for _ in range(4)]
    # then
    assert [a.status_code for a in answers] == [200, 200, 200, 429]
    assert 1 <= int(answers[-1]["Retry-After"]) <= 60


def test_an_administrator_makes_a_token_in_the_admin_and_sees_its_secret_once(client, staff):
    # given
    administrator, agent = staff[Role.ADMINISTRATOR], staff[Role.AGENT]
    client.force_login(administrator)
    # when
    page = client.post(
        reverse("admin:crm_apitoken_add"), {"user": agent.pk, "name": "Zalo gateway", "days": "7"}
    )
    # then
    assert page.status_code == 200
    assert "no-store" in page["Cache-Control"]
    token = ApiToken.objects.get()
    secret = page.context["secret"]
    assert secret in page.content.decode()
    assert (token.user, token.name, token.created_by, _days(token)) == (
        agent,
        "Zalo gateway",
        administrator,
        7,
    )
    assert LogEntry.objects.filter(user=administrator, action_flag=ADDITION).count() == 1
    client.logout()
    assert _get(client, secret).status_code == 200
    client.force_login(administrator)
    listed = client.get(reverse("admin:crm_apitoken_changelist"))
    shown = client.get(reverse("admin:crm_apitoken_change", args=[token.pk]))
    assert shown.status_code == 200
    assert secret not in listed.content.decode() + shown.content.decode()


def test_an_administrator_cannot_make_a_token_for_an_account_that_holds_more(client, staff, django_user_model):
    # given: a superuser, whose token would act as a superuser
    root = django_user_model.objects.create_superuser("root", "root@example.org", "s3cret-root-pass")
    administrator = staff[Role.ADMINISTRATOR]
    client.force_login(administrator)
    # when
    page = client.post(reverse("admin:crm_apitoken_add"), {"user": root.pk, "name": "mine now", "days": "7"})
    # then: refused on the form, and by the service for any other caller
    assert page.status_code == 200
    assert "holds permissions you do not have" in str(page.context["adminform"].form.errors["user"])
    with pytest.raises(ValidationError):
        api_token_create(actor=administrator, user=root, name="mine now")
    assert not ApiToken.objects.exists()


def test_the_admin_refuses_a_token_for_a_deactivated_user_with_a_message(client, staff):
    # given
    agent = staff[Role.AGENT]
    agent.is_active = False
    agent.save(update_fields=["is_active"])
    client.force_login(staff[Role.ADMINISTRATOR])
    # when
    page = client.post(reverse("admin:crm_apitoken_add"), {"user": agent.pk, "name": "app", "days": "7"})
    # then
    assert page.status_code == 200
    assert page.context["adminform"].form.errors == {
        "user": ["This user is deactivated: a token of theirs would not work."]
    }
    assert not ApiToken.objects.exists()


def test_an_administrator_revokes_tokens_in_the_admin(client, staff, settings):
    # given
    settings.TONGDAI_AUTH_CACHE_SECONDS = 300
    administrator = staff[Role.ADMINISTRATOR]
    token, secret = api_token_create(actor=None, user=staff[Role.AGENT], name="app")
    _kept, kept_secret = api_token_create(actor=None, user=staff[Role.AGENT], name="website")
    assert _get(client, secret).status_code == 200
    client.force_login(administrator)
    # when
    response = client.post(
        reverse("admin:crm_apitoken_changelist"), {"action": "revoke", "_selected_action": [token.pk]}
    )
    # then
    assert response.status_code == 302
    assert list(ApiToken.objects.values_list("name", flat=True)) == ["website"]
    assert LogEntry.objects.filter(user=administrator, action_flag=DELETION).count() == 1
    client.logout()
    assert _get(client, secret).status_code == 401
    assert _get(client, kept_secret).status_code == 200


def test_a_user_sees_their_own_tokens_and_no_one_elses(client, staff):
    # given
    agent, manager = staff[Role.AGENT], staff[Role.MANAGER]
    mine, _secret = api_token_create(actor=None, user=agent, name="my softphone")
    theirs, _other = api_token_create(actor=None, user=manager, name="reports")
    client.force_login(agent)
    # when
    listed = client.get(reverse("admin:crm_apitoken_changelist"))
    other = client.get(reverse("admin:crm_apitoken_change", args=[theirs.pk]))
    revoke = client.post(
        reverse("admin:crm_apitoken_changelist"), {"action": "revoke", "_selected_action": [mine.pk]}
    )
    # then
    assert [t.pk for t in listed.context["cl"].result_list] == [mine.pk]
    assert other.status_code == 302 and other["Location"] == reverse("admin:index")
    assert revoke.status_code == 200  # no such action for them: nothing happens
    assert ApiToken.objects.count() == 2
    assert client.get(reverse("admin:crm_apitoken_add")).status_code == 403


def test_plain_tokens_of_before_become_hashed_tokens_that_keep_working(client, staff):
    # given: DRF's plain token table as it was before tokens were hashed
    migration = importlib.import_module("crm.migrations.0006_api_tokens")
    agent = staff[Role.AGENT]
    plain = "0123456789abcdef0123456789abcdef01234567"
    with connection.cursor() as cursor:
        cursor.execute(
            "CREATE TABLE authtoken_token (key varchar(40) PRIMARY KEY, created timestamp, user_id integer)"
        )
        cursor.execute("INSERT INTO authtoken_token VALUES (%s, %s, %s)", [plain, timezone.now(), agent.pk])
    editor = types.SimpleNamespace(connection=connection, execute=lambda sql: connection.cursor().execute(sql))
    # when
    from django.apps import apps

    migration.hash_the_plain_tokens(apps, editor)
    # then
    assert "authtoken_token" not in connection.introspection.table_names()
    token = ApiToken.objects.get()
    assert (token.user, token.name, token.token_key) == (agent, "token from before hashing", plain[:15])
    assert plain not in token.digest
    assert 89 <= (token.expiry - timezone.now()).days <= 90
    assert _get(client, plain).status_code == 200


@pytest.mark.parametrize("role", [Role.AGENT, Role.MANAGER, Role.ADMINISTRATOR])
def test_every_role_may_see_tokens_and_only_administrators_make_them(staff, role):
    user = staff[role]
    assert user.has_perm("crm.view_apitoken")
    assert user.has_perm("crm.add_apitoken") is (role == Role.ADMINISTRATOR)
    assert user.has_perm("crm.delete_apitoken") is (role == Role.ADMINISTRATOR)
