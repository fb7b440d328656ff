"""The caches of permissions, scopes, units and the catalogue live in Django's cache, which every process shares:
a change made in one process is seen by the next read in any other, even one that had the old value."""

from __future__ import annotations

import pytest
from django.contrib.auth import get_user_model
from django.core.cache.backends.redis import RedisCache

from crm import shared_cache
from crm.models import Role
from crm.scoping import scope_for, unit_cached
from crm.services import staff_update
from tickets.api.serializers import active_category

REDIS_URL = "redis://127.0.0.1:6379/7"


def _fresh(user):
    """The user as the next request of another process loads them."""
    return get_user_model().objects.get(pk=user.pk)


@pytest.fixture
def kept(settings):
    settings.TONGDAI_AUTH_CACHE_SECONDS = 300


@pytest.mark.postgres
def test_a_role_change_in_one_process_reaches_another_process_through_redis(settings, staff, org, kept, monkeypatch):
    # given: two processes, each with its own client of the same Redis
    settings.CACHES = {
        "default": {"BACKEND": "django.core.cache.backends.redis.RedisCache", "LOCATION": REDIS_URL,
                    "KEY_PREFIX": "tongdai-test"}
    }  # fmt: skip
    other_process = RedisCache(REDIS_URL, {"KEY_PREFIX": "tongdai-test"})
    try:
        other_process.get("probe")
    except Exception as error:  # any failure to reach it
        pytest.skip(f"no Redis at {REDIS_URL}: {error}")
    other_process.clear()
    agent = staff[Role.AGENT]
    monkeypatch.setattr(shared_cache, "cache", lambda: other_process)
    assert scope_for(_fresh(agent)).unit_ids == {org["home"].pk}
    assert _fresh(agent).has_perm("tickets.add_ticket")
    # when: this process moves the agent to field crew in another unit
    monkeypatch.undo()
    staff_update(actor=None, user=agent, role=Role.FIELD_CREW, units=[org["sibling"]])
    # then: the other process's next read computes them again
    monkeypatch.setattr(shared_cache, "cache", lambda: other_process)
    assert scope_for(_fresh(agent)).unit_ids == {org["sibling"].pk}
    assert not _fresh(agent).has_perm("tickets.add_ticket")
    other_process.clear()


def test_a_role_change_is_seen_at_once_with_the_cache_on(staff, org, kept):
    agent = staff[Role.AGENT]
    assert _fresh(agent).has_perm("tickets.add_ticket")
    assert scope_for(_fresh(agent)).unit_ids == {org["home"].pk}
    staff_update(actor=None, user=agent, role=Role.FIELD_CREW, units=[org["sibling"]])
    assert not _fresh(agent).has_perm("tickets.add_ticket")
    assert scope_for(_fresh(agent)).unit_ids == {org["sibling"].pk}


def test_a_group_losing_a_permission_is_seen_at_once(staff, kept):
    from django.contrib.auth.models import Permission

    agent = staff[Role.AGENT]
    assert _fresh(agent).has_perm("customers.flag_nuisance")
    group = agent.groups.get()
    group.permissions.remove(Permission.objects.get(codename="flag_nuisance"))
    assert not _fresh(agent).has_perm("customers.flag_nuisance")


def test_a_merged_unit_is_seen_by_its_successors_staff_at_once(staff, org, make_staff, kept):
    # given
    home, sibling = org["home"], org["sibling"]
    dispatcher = make_staff(Role.DISPATCHER, [home])
    assert sibling.pk not in scope_for(_fresh(dispatcher)).unit_ids
    assert unit_cached(sibling.pk).successor_id is None
    # when: the sibling unit merges into home
    sibling.valid_to = sibling.valid_from
    sibling.successor = home
    sibling.save()
    # then
    assert sibling.pk in scope_for(_fresh(dispatcher)).unit_ids
    assert unit_cached(sibling.pk).successor_id == home.pk


def test_a_withdrawn_category_is_refused_at_once(catalogue, kept):
    billing = catalogue["billing"]
    assert active_category("billing") == billing
    billing.is_active = False
    billing.save()
    assert active_category("billing") is None


def test_nothing_is_kept_when_the_cache_is_off(staff, org, settings):
    settings.TONGDAI_AUTH_CACHE_SECONDS = 0
    scope_for(_fresh(staff[Role.AGENT]))
    assert shared_cache.cache().get(f"scope:{staff[Role.AGENT].pk}:False") is None


def test_a_request_asks_the_shared_cache_once_and_sees_a_change_made_between_requests(client, staff, org, kept,
                                                                                      monkeypatch):
    # given: an agent whose API requests read their permissions and scope from the shared cache
    from crm.tokens import api_token_create

    agent = staff[Role.AGENT]
    _token, secret = api_token_create(actor=None, user=agent, name="softphone")
    asks = []
    real = shared_cache.cache

    keys = []

    class Counting:
        def __getattr__(self, name):
            attribute = getattr(real(), name)
            if name in {"get", "get_many"}:
                asks.append(name)

                def asking(wanted, *args, **kwargs):
                    keys.extend([wanted] if isinstance(wanted, str) else wanted)
                    return attribute(wanted, *args, **kwargs)

                return asking
            return attribute

    monkeypatch.setattr(shared_cache, "cache", Counting)

    def units():
        answer = client.get("/api/v1/units/", HTTP_AUTHORIZATION=f"Token {secret}")
        assert answer.status_code == 200
        return {row["code"] for row in answer.json()["results"]}

    assert units() == {org["home"].code}  # the first request computes and stores what it needs
    # when: the next request finds it all in this process
    asks.clear()
    assert units() == {org["home"].code}
    # then: it asked the shared cache once (the generations, with the address's failed tokens), whatever the
    # number of values it read
    assert asks == ["get_many"]
    assert any(key.startswith("throttle_failed_token_") for key in keys)
    assert any(key.startswith("generation:") for key in keys)
    # when: another process moves the agent to the sibling unit (a new generation in the shared cache)
    staff_update(actor=None, user=agent, role=Role.AGENT, units=[org["sibling"]])
    # then: the next request sees it, although this process holds the old scope
    assert units() == {org["sibling"].code}


def test_a_change_made_during_a_request_is_seen_by_the_rest_of_that_request(staff, org, kept):
    # given: a request that has read the agent's scope
    agent = staff[Role.AGENT]
    with shared_cache.request_scope():
        assert scope_for(_fresh(agent)).unit_ids == {org["home"].pk}
        # when: the same request changes the agent's units
        staff_update(actor=None, user=agent, role=Role.AGENT, units=[org["sibling"]])
        # then
        assert scope_for(_fresh(agent)).unit_ids == {org["sibling"].pk}


def _model_names(app_list) -> list[tuple[str, str, bool]]:
    """Each model of the side bar: its app, its name and whether the user may add one."""
    return [(app["app_label"], model["name"], model["perms"]["add"]) for app in app_list for model in app["models"]]


def test_the_admin_side_bar_is_kept_and_follows_a_role_change_at_once(staff, org, kept):
    from django.contrib import admin as django_admin
    from django.test import RequestFactory
    from django.utils import translation

    admin_site = django_admin.site

    def side_bar(user, language):
        request = RequestFactory().get("/admin/")
        request.user = _fresh(user)
        with translation.override(language):
            kept_list = _model_names(admin_site.get_app_list(request))
            built = _model_names(django_admin.AdminSite.get_app_list(admin_site, request))  # Django's, unkept
            return kept_list, [(label, str(name), add) for label, name, add in built]

    agent = staff[Role.AGENT]
    # given: the agent's side bar, kept in English and in Vietnamese
    kept_en, built_en = side_bar(agent, "en")
    kept_vi, built_vi = side_bar(agent, "vi")
    assert kept_en == built_en and kept_vi == built_vi
    assert kept_en != kept_vi  # each language keeps its own names
    assert ("tickets", "Tickets", True) in kept_en
    built_again = []
    original = django_admin.AdminSite.get_app_list
    django_admin.AdminSite.get_app_list = lambda site, request, app_label=None: built_again.append(1) or original(
        site, request, app_label
    )
    try:
        request = RequestFactory().get("/admin/")
        request.user = _fresh(agent)
        with translation.override("en"):
            again = _model_names(admin_site.get_app_list(request))
    finally:
        django_admin.AdminSite.get_app_list = original
    assert again == kept_en and built_again == []  # read back from the cache: Django's list not built again
    # when: the agent becomes field crew
    staff_update(actor=None, user=agent, role=Role.FIELD_CREW, units=[org["home"]])
    # then: the next page shows the field crew's side bar, not the kept one
    after, built_after = side_bar(agent, "en")
    assert after == built_after
    assert after != kept_en
    assert ("tickets", "Tickets", False) in after  # field crew work tickets, never open them
