"""Walks every registered admin page and API endpoint as every role: another unit's data is never listed,
never reachable by id and never changeable."""

from __future__ import annotations

import pytest
from django.apps import apps
from django.contrib import admin
from django.forms.models import model_to_dict
from django.urls import reverse

from billing.models import BillingRun, InvoiceCounter, PriceTable, RebateProgramme, VatRate
from crm.models import ApiToken, OutboxMessage, Role
from tests.admin_site import registered_admins
from tickets.models import Category, Holiday, SlaPolicy, Suspension
from tongdai.urls import router

ROLES = list(Role.values)


# Scoped by their admin's queryset rather than by a ScopedQuerySet manager: the path to their unit.
SCOPED_BY_ADMIN = {BillingRun: "unit"}


def scoped_admins():
    return [
        (model, admin.site.get_model_admin(model))
        for model in apps.get_models()
        if admin.site.is_registered(model)
        and (hasattr(model._default_manager, "for_user") or model in SCOPED_BY_ADMIN)
    ]


# The service catalogue and the tariffs belong to no unit: every role may read them, only administrators
# change them.
REFERENCE_DATA = {
    Category,
    SlaPolicy,
    Holiday,
    Suspension,
    PriceTable,
    VatRate,
    RebateProgramme,
    InvoiceCounter,
}


# Rows of every unit with no unit of their own (the outbox: messages to staff and customers of all units): only
# administrators, who see everything, may read them.
ADMINISTRATORS_ONLY = {OutboxMessage}
# Rows of a user rather than of a unit: each user sees their own, administrators all (tests/crm/test_api_tokens.py).
OWNED_BY_A_USER = {ApiToken}


def test_every_model_of_our_apps_in_admin_is_scoped_or_reference_data(client, staff):
    ours = {"crm", "customers", "tickets", "billing"}
    registered = {m for m, _a in registered_admins() if m._meta.app_label in ours}
    assert registered, "no admin registered"
    assert registered - REFERENCE_DATA - ADMINISTRATORS_ONLY - OWNED_BY_A_USER == {
        m for m, _a in scoped_admins() if m._meta.app_label in ours
    }
    for role, user in staff.items():
        for model in REFERENCE_DATA:
            can_change = user.has_perm(f"{model._meta.app_label}.change_{model._meta.model_name}")
            assert can_change is (role == Role.ADMINISTRATOR), (role, model)
        client.force_login(user)
        for model in ADMINISTRATORS_ONLY:
            opts = model._meta
            can_view = user.has_perm(f"{opts.app_label}.view_{opts.model_name}")
            assert can_view is (role == Role.ADMINISTRATOR), (role, model)
            changelist = client.get(reverse(f"admin:{opts.app_label}_{opts.model_name}_changelist"))
            assert changelist.status_code == (200 if role == Role.ADMINISTRATOR else 403), (role, model)


def foreign_rows(model, other_unit):
    """Rows of ``model`` that belong to ``other_unit`` (and to no unit the home staff serve)."""
    if model in SCOPED_BY_ADMIN:
        return list(model._default_manager.filter(**{f"{SCOPED_BY_ADMIN[model]}__in": [other_unit.pk]}))
    return list(model._default_manager.in_units([other_unit.pk]))


def snapshot(rows):
    return sorted((model_to_dict(r) for r in rows), key=lambda d: d["id"])


@pytest.mark.parametrize("role", ROLES)
def test_admin_never_shows_or_changes_another_units_rows(client, role, staff, two_customers, make_staff, settings):
    settings.TONGDAI_AUTH_CACHE_SECONDS = 300  # as served: the scopes and permissions from the shared cache
    _mine, theirs = two_customers
    make_staff(Role.AGENT, [theirs.unit])  # a staff profile of the other unit
    user = staff[role]
    client.force_login(user)
    for model, _model_admin in scoped_admins():
        opts = model._meta
        rows = foreign_rows(model, theirs.unit)
        if role == Role.ADMINISTRATOR:
            continue  # sees everything by design; the positive control is below
        assert rows, f"fixture has no {opts.model_name} of the other unit"
        before = snapshot(rows)
        changelist = client.get(reverse(f"admin:{opts.app_label}_{opts.model_name}_changelist"))
        if user.has_perm(f"{opts.app_label}.view_{opts.model_name}"):
            assert changelist.status_code == 200, (opts.model_name, changelist.status_code)
            listed = {obj.pk for obj in changelist.context["cl"].result_list}
            assert listed.isdisjoint({r.pk for r in rows}), (role, opts.model_name)
        else:
            assert changelist.status_code == 403
        for row in rows:
            change_url = reverse(f"admin:{opts.app_label}_{opts.model_name}_change", args=[row.pk])
            page = client.get(change_url)
            assert page.status_code in (302, 403, 404), (role, opts.model_name, page.status_code)
            if page.status_code == 302:
                assert page["Location"] == reverse("admin:index")
            posted = client.post(change_url, {"full_name": "Hacked", "name": "Hacked", "purpose": "Hacked"})
            assert posted.status_code in (302, 403, 404)
            if posted.status_code == 302:
                assert posted["Location"] == reverse("admin:index")
            delete_url = reverse(f"admin:{opts.app_label}_{opts.model_name}_delete", args=[row.pk])
            deleted = client.post(delete_url, {"post": "yes"})
            assert deleted.status_code in (302, 403, 404)
        assert snapshot(model._default_manager.filter(pk__in=[r.pk for r in rows])) == before, opts.model_name
    card = client.get(reverse("admin:customers_customer_card", args=[theirs.pk]))
    assert card.status_code == (404 if role != Role.ADMINISTRATOR else 200)
    lookup = client.get(reverse("admin:customers_customer_lookup"), {"q": theirs.code})
    if role == Role.ADMINISTRATOR:  # one exact match: its card opens
        assert lookup["Location"] == reverse("admin:customers_customer_card", args=[theirs.pk])
    else:
        assert lookup.status_code == 200
        assert [c.code for c in lookup.context["found"].customers] == []


@pytest.mark.parametrize("role", ROLES)
def test_admin_lists_the_users_own_customer(client, role, staff, two_customers):
    mine, _theirs = two_customers
    client.force_login(staff[role])
    response = client.get(reverse("admin:customers_customer_changelist"))
    assert response.status_code == 200
    assert mine.pk in {c.pk for c in response.context["cl"].result_list}


def api_routes():
    return [(prefix, viewset) for prefix, viewset, _basename in router.registry]


@pytest.mark.parametrize("role", ROLES)
def test_api_never_shows_or_changes_another_units_rows(client, role, staff, two_customers, make_staff):
    mine, theirs = two_customers
    make_staff(Role.AGENT, [theirs.unit])
    user = staff[role]
    client.force_login(user)
    for prefix, viewset in api_routes():
        model = viewset.queryset.model
        rows = foreign_rows(model, theirs.unit)
        assert rows
        foreign = {r.pk for r in rows}
        listing = client.get(f"/api/v1/{prefix}/", {"page_size": 200})
        can_view = user.has_perm(f"{model._meta.app_label}.view_{model._meta.model_name}")
        if can_view:  # a role that may not read the model at all (an agent and the invoices) gets a 403
            assert listing.status_code == 200, (prefix, listing.status_code)
            ids = {item["id"] for item in listing.json()["results"]}
            if role == Role.ADMINISTRATOR:
                assert foreign <= ids
                continue
            assert ids.isdisjoint(foreign), (role, prefix)
        else:
            assert listing.status_code == 403, (role, prefix, listing.status_code)
        before = snapshot(rows)
        for row in rows:
            assert client.get(f"/api/v1/{prefix}/{row.pk}/").status_code == (404 if can_view else 403)
            assert client.patch(
                f"/api/v1/{prefix}/{row.pk}/", {"name": "x"}, content_type="application/json"
            ).status_code in (403, 404, 405)
            assert client.delete(f"/api/v1/{prefix}/{row.pk}/").status_code in (403, 404, 405)
        assert snapshot(model._default_manager.filter(pk__in=foreign)) == before
    assert client.get(f"/api/v1/customers/{theirs.pk}/card/").status_code == (
        200 if role == Role.ADMINISTRATOR else 404
    )
    found = client.get("/api/v1/customers/lookup", {"q": theirs.code}).json()["results"]
    assert [c["code"] for c in found] == ([theirs.code] if role == Role.ADMINISTRATOR else [])
    own = client.get("/api/v1/customers/lookup", {"q": mine.code}).json()["results"]
    assert [c["code"] for c in own] == [mine.code]


def test_anonymous_gets_nothing_from_the_api(client, two_customers):
    for prefix, _viewset in api_routes():
        assert client.get(f"/api/v1/{prefix}/").status_code in (401, 403)
    assert client.get("/api/v1/customers/lookup", {"q": "tran"}).status_code in (401, 403)


def test_autocomplete_offers_only_customers_in_scope(client, staff, two_customers):
    mine, _theirs = two_customers
    client.force_login(staff[Role.BILLING_CLERK])
    response = client.get(
        "/admin/autocomplete/",
        {
            "app_label": "customers",
            "model_name": "contract",
            "field_name": "customer",
            "term": "tran thi han",
        },
    )
    assert response.status_code == 200
    assert [int(r["id"]) for r in response.json()["results"]] == [mine.pk]
