"""The headers every answer carries: the Content-Security-Policy (strict: this site's scripts and styles only,
inline ones only with the response's nonce); and no template of ours needs an inline script, style attribute
or event handler that the policy would block."""

from __future__ import annotations

import re
from pathlib import Path

from django.conf import settings

from crm.models import Role

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
