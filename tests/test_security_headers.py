"""The headers every answer carries: the Content-Security-Policy (strict: this site's scripts and styles only,
inline ones only with the response's nonce) and ``Cache-Control: private, no-store`` on everything that shows
people's data (the admin, the field page, the API, files); and no template of ours needs an inline script,
style attribute or event handler that the policy would block."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from django.conf import settings
from django.urls import reverse

from crm.models import Role
from crm.tokens import api_token_create
from tickets.services import ticket_open, work_order_create

POLICY = re.compile(
    r"default-src 'self'; script-src 'self' 'nonce-(?P<nonce>[\w-]{20,})'; style-src 'self' 'nonce-(?P=nonce)'; "
    r"object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'"
)


def test_a_page_carries_the_strict_policy_with_a_fresh_nonce_each_time(client):
    # given the admin's login page (its few inline blocks carry the nonce)
    # when it is asked for twice
    first, second = client.get("/admin/login/"), client.get("/admin/login/")
    # then each answer has the policy, without 'unsafe-inline' or 'unsafe-eval', with a nonce of its own
    nonces = []
    for response in (first, second):
        policy = response["Content-Security-Policy"]
        assert "unsafe" not in policy
        match = POLICY.fullmatch(policy)
        assert match, policy
        nonces.append(match["nonce"])
    assert nonces[0] != nonces[1]


def test_only_the_api_docs_add_data_images(client, staff):
    client.force_login(staff[Role.AGENT])
    docs = client.get("/api/docs/")
    script = client.get("/api/docs/", {"script": ""})
    assert docs.status_code == script.status_code == 200
    assert docs["Content-Security-Policy"].endswith("; img-src 'self' data:")
    assert "<script>" not in docs.text  # the start-up script is fetched from the page's own address
    assert script["Content-Type"] == "application/javascript"
    assert "SwaggerUIBundle(" in script.text
    assert "img-src" not in client.get("/admin/")["Content-Security-Policy"]


INLINE = {
    "an inline <script>": re.compile(r"<script(?![^>]*\bsrc=)[^>]*>", re.I),
    "a <style> block": re.compile(r"<style\b", re.I),
    "a style attribute": re.compile(r"\sstyle\s*=", re.I),
    "an event handler attribute": re.compile(r"\son[a-z]+\s*=", re.I),
    "a javascript: URL": re.compile(r"javascript:", re.I),
}


def test_no_template_of_ours_needs_what_the_policy_blocks():
    templates = sorted(Path(settings.BASE_DIR, "templates").rglob("*.html"))
    assert len(templates) > 15
    found = [
        f"{path.relative_to(settings.BASE_DIR)}: {what}"
        for path in templates
        for what, pattern in INLINE.items()
        if pattern.search(path.read_text())
    ]
    assert found == []


@pytest.fixture
def pages(client, staff, make_customer, catalogue):
    """Staff pages that show customers, and the API, as an administrator sees them (the field page as a crew)."""
    customer = make_customer()
    ticket = ticket_open(actor=None, category=catalogue["outage"], channel="phone", description="Mất điện",
                         customer=customer).ticket  # fmt: skip
    work_order_create(actor=None, ticket=ticket, crew=staff[Role.FIELD_CREW])
    return {
        "card": reverse("admin:customers_customer_card", args=[customer.pk]),
        "lookup": reverse("admin:customers_customer_lookup") + "?q=nguyen+van",  # a list (one exact match opens the card)
        "customers": reverse("admin:customers_customer_changelist"),
        "ticket": reverse("admin:tickets_ticket_change", args=[ticket.pk]),
        "api list": "/api/v1/customers/",
        "api card": f"/api/v1/customers/{customer.pk}/card/",
        "api lookup": f"/api/v1/customers/lookup?q={customer.code}",
        "api outages": f"/api/v1/outages/status?customer_code={customer.code}",
        "api not found": "/api/v1/customers/999999999/",
    }


def test_pages_and_api_answers_with_personal_data_are_never_stored(client, staff, pages):
    # given an administrator, who sees every customer
    client.force_login(staff[Role.ADMINISTRATOR])
    # when each page and API answer is asked for / then none may be kept by a cache
    for name, url in pages.items():
        response = client.get(url)
        assert response.status_code == (404 if name == "api not found" else 200), name
        directives = {d.strip() for d in response["Cache-Control"].split(",")}
        assert {"private", "no-store"} <= directives, (name, response["Cache-Control"])
    # and the field page, as a crew member
    client.force_login(staff[Role.FIELD_CREW])
    field = client.get("/field/")
    assert (field.status_code, field["Cache-Control"]) == (200, "private, no-store")


def test_refusals_and_the_integrations_intake_are_never_stored(client, staff, make_customer, catalogue):
    # given a token of an agent and a customer
    _token, token = api_token_create(actor=None, user=staff[Role.AGENT], name="website")
    customer = make_customer()
    # when the intake is posted with the token, and the API is asked without credentials
    taken = client.post(
        "/api/v1/tickets/",
        {"category": "outage", "channel": "app", "description": "x", "customer_code": customer.code},
        content_type="application/json",
        HTTP_AUTHORIZATION=f"Token {token}",
    )
    anonymous = client.get("/api/v1/customers/")
    # then neither answer may be kept
    assert (taken.status_code, taken["Cache-Control"]) == (201, "private, no-store")
    assert anonymous.status_code == 401
    assert anonymous["Cache-Control"] == "private, no-store"


def test_the_api_answers_json_even_to_a_browser(client, staff):
    # given a member of staff who opens an API address in the browser (which asks for HTML first)
    client.force_login(staff[Role.AGENT])
    # when
    response = client.get("/api/v1/units/", HTTP_ACCEPT="text/html,application/xhtml+xml,*/*;q=0.8")
    # then JSON, never DRF's browsable page with its inline styles that the policy refuses
    assert (response.status_code, response["Content-Type"]) == (200, "application/json")
    assert response.json()["results"] is not None


def test_static_files_keep_their_own_caching(client, settings):
    settings.WHITENOISE_USE_FINDERS = True  # read when the client's handler loads the middleware
    response = client.get(f"{settings.STATIC_URL}crm/admin.css")
    assert response.status_code == 200
    assert "no-store" not in response.get("Cache-Control", "")
