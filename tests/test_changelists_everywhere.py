"""Walks every changelist of the admin site as a superuser and as scoped staff: each answers 200, its search box
finds nothing for a term no row holds and finds a row by a value of each of its search fields, and every choice
of every filter shown on the page answers 200."""

from __future__ import annotations

import datetime as dt

import pytest
from axes.models import AccessAttempt, AccessFailureLog, AccessLog
from django.contrib.auth import get_user_model
from django.test import RequestFactory
from django.urls import reverse
from django.utils import timezone
from django_otp.plugins.otp_totp.models import TOTPDevice
from django_q.models import OrmQ, Schedule, Task

from crm.models import Role
from crm.tokens import api_token_create
from tests.admin_site import registered_admins
from tickets.services import suspension_create

# Terms no row holds: a word, a code-like and a phone-like one (the customer search reads each differently).
ABSENT = ["zzzz", "abc", "PE9999999999", "0909 999 999"]

# The users walked: a superuser (every changelist, no scope) and scoped staff of one unit, who see the
# changelists their role may view, scoped to their unit.
WALKERS = ["superuser", Role.SUPERVISOR, Role.BILLING_CLERK]
# A filter's links followed: all of them, or of a long list (the units: hundreds for a superuser, links that
# differ only in the value) the first and the last FEW.
FEW = 4


def changelists():
    return registered_admins()


def changelist_url(model) -> str:
    return reverse(f"admin:{model._meta.app_label}_{model._meta.model_name}_changelist")


def field_path(search_field: str) -> str:
    """The model path a search field reads (``^name`` → ``name``, ``customer__code__exact`` → ``customer__code``)."""
    path = search_field.lstrip("^=@")
    for lookup in ("__exact", "__iexact", "__icontains", "__contains", "__istartswith", "__startswith"):
        path = path.removesuffix(lookup)
    return path


def values_of(model, pk, search_field: str) -> list[str]:
    values = model._default_manager.filter(pk=pk).values_list(field_path(search_field), flat=True)
    return [str(v) for v in values if v not in (None, "")]


@pytest.fixture

def rows_of_every_model(two_customers, staff, catalogue, org):
    """``two_customers`` has a row of nearly every model of ours; one row of each other registered model."""
    agent = staff[Role.AGENT]
    now = timezone.now()
    suspension_create(actor=None, category=catalogue["new-lv"], units=[org["home"]], starts_at=now,
                      ends_at=now + dt.timedelta(days=3), reason="Giãn cách")  # fmt: skip
    api_token_create(actor=staff[Role.ADMINISTRATOR], user=agent, name="Cổng Zalo", days=30)
    TOTPDevice.objects.create(user=staff[Role.ADMINISTRATOR], name="Điện thoại", confirmed=True)
    Schedule.objects.create(name="tongdai: SLA sweep", func="tickets.tasks.sweep_sla", minutes=1,
                            schedule_type=Schedule.MINUTES)  # fmt: skip
    for success in (True, False):
        Task.objects.create(id=f"task{success:d}", name=f"task-{success:d}", func="tickets.tasks.sweep_sla",
                            started=now, stopped=now, success=success, group="sweeps")  # fmt: skip
    OrmQ.objects.create(key="tongdai", payload="queued", lock=now + dt.timedelta(minutes=1))
    seen = {"username": agent.username, "ip_address": "203.0.113.7", "user_agent": "Firefox",
            "path_info": "/admin/login/"}  # fmt: skip
    AccessAttempt.objects.create(**seen, get_data="", post_data="", failures_since_start=1)
    AccessFailureLog.objects.create(**seen, locked_out=False)
    AccessLog.objects.create(**seen)
    missing = [model._meta.label for model, _a in changelists() if not model._default_manager.exists()]
    assert not missing, f"no row of {missing}"


def walker(kind, staff):
    if kind == "superuser":
        return get_user_model().objects.create_superuser("root", "root@example.com", "s3cret-pass-word")
    return staff[kind]


def followed(choices: list) -> list:
    return choices if len(choices) <= 2 * FEW else choices[:FEW] + choices[-FEW:]


def listed(response) -> list:
    return [obj.pk for obj in response.context["cl"].result_list]


@pytest.mark.parametrize("kind", WALKERS)
def test_every_changelist_searches_and_filters(client, kind, staff, rows_of_every_model, settings):
    # The walk changes no one's permissions: the side bar's list of apps is kept as served (the shared cache on),
    # not built again on each of the walk's several hundred pages.
    settings.TONGDAI_AUTH_CACHE_SECONDS = 300
    user = walker(kind, staff)
    client.force_login(user)
    as_user = RequestFactory().get("/")
    as_user.user = user
    walked = 0
    for model, model_admin in changelists():
        opts = model._meta
        if not model_admin.has_view_or_change_permission(as_user):
            continue
        url = changelist_url(model)
        page = client.get(url)
        assert page.status_code == 200, (kind, opts.label, page.status_code)
        walked += 1
        cl = page.context["cl"]
        assert cl.result_list or kind != "superuser", (opts.label, "a superuser sees every row")
        if model_admin.search_fields:
            for term in ABSENT:
                found = client.get(url, {"q": term})
                assert found.status_code == 200, (kind, opts.label, term, found.status_code)
                assert listed(found) == [], (kind, opts.label, term)
            row = cl.result_list[0] if cl.result_list else None
            searched = 0
            for search_field in model_admin.search_fields if row is not None else ():
                for value in values_of(model, row.pk, search_field)[:1]:
                    found = client.get(url, {"q": value})
                    assert found.status_code == 200, (kind, opts.label, search_field, value, found.status_code)
                    assert row.pk in listed(found), (kind, opts.label, search_field, value)
                    searched += 1
            assert row is None or searched, (kind, opts.label, "no search field holds a value")
        for spec in cl.filter_specs:
            for choice in followed(list(spec.choices(cl))):
                filtered = client.get(url + choice["query_string"])
                assert filtered.status_code == 200, (kind, opts.label, choice["query_string"], filtered.status_code)
    assert walked >= (len(registered_admins()) if kind == "superuser" else 10), (kind, walked)


def test_the_scoped_lists_row_checkbox_is_djangos_own_html(make_customer):
    """The changelists write the action checkbox directly (``ScopedAdmin.action_checkbox``): it must stay the
    HTML Django's widget renders, whatever the record's name holds."""
    from django.contrib import admin as django_admin

    customer = make_customer(name='Nguyễn "Văn" <An> & Co')
    model_admin = django_admin.site.get_model_admin(type(customer))
    assert model_admin.action_checkbox(customer) == django_admin.ModelAdmin.action_checkbox(model_admin, customer)
