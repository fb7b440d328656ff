"""What the browser tests share: Playwright driving the system's Chromium (headless), logging in and out of
the admin as a member of staff, and a database the live server's thread can see (``transaction=True``) that
is emptied after each test even when it holds issued invoices."""

from __future__ import annotations

import os
import shutil

import pytest

CHROMIUM = os.environ.get("TONGDAI_CHROMIUM") or shutil.which("chromium") or "/usr/bin/chromium"

needs_chromium = pytest.mark.skipif(
    not os.path.exists(CHROMIUM), reason=f"no Chromium at {CHROMIUM}: install Debian's chromium"
)


@pytest.fixture(autouse=True)
def issued_bills_flushable(request):
    """A test with ``django_db(transaction=True)`` is undone by deleting every row (Django's flush). On
    PostgreSQL that is a TRUNCATE, which the row triggers of ``billing`` do not see but the export log's
    statement trigger refuses; on SQLite it is a DELETE, which the triggers keeping issued invoices, audit
    records and the export log (with each export's units) append-only refuse. So before the flush those rows are removed with the
    triggers lifted for a moment (PostgreSQL: the export log's disabled in the same transaction; SQLite: the
    triggers dropped, then recreated exactly as they were, read from ``sqlite_master``)."""
    marker = request.node.get_closest_marker("django_db")
    if marker is None or not (marker.kwargs.get("transaction") or (marker.args and marker.args[0])):
        yield
        return
    request.getfixturevalue("transactional_db")  # set up first, so torn down (flushed) after this one
    yield
    from django.db import connection, transaction

    if connection.vendor == "postgresql":
        with transaction.atomic(), connection.cursor() as cursor:
            cursor.execute("SET CONSTRAINTS ALL IMMEDIATE")  # no foreign-key check left pending for the ALTERs
            for table in ("crm_exportlog_units", "crm_exportlog"):  # an export's units first
                cursor.execute(f"ALTER TABLE {table} DISABLE TRIGGER USER")
                cursor.execute(f"DELETE FROM {table}")
                cursor.execute(f"ALTER TABLE {table} ENABLE TRIGGER USER")
        return
    if connection.vendor != "sqlite":
        return
    with transaction.atomic(), connection.cursor() as cursor:
        cursor.execute(
            "SELECT name, sql FROM sqlite_master WHERE type = 'trigger' "
            "AND tbl_name IN ('billing_invoice', 'billing_invoiceline', 'billing_auditrecord', 'crm_exportlog', "
            "'crm_exportlog_units')"
        )
        triggers = cursor.fetchall()
        for name, _sql in triggers:
            cursor.execute(f'DROP TRIGGER "{name}"')
        cursor.execute("UPDATE billing_invoice SET status = 'draft' WHERE status IN ('issued', 'paid')")
        cursor.execute("DELETE FROM billing_auditrecord")
        cursor.execute("DELETE FROM crm_exportlog_units")
        cursor.execute("DELETE FROM crm_exportlog")
        for _name, sql in triggers:
            cursor.execute(sql)


@pytest.fixture
def browser(monkeypatch):
    from playwright.sync_api import sync_playwright

    # Playwright's sync API runs an event loop in this thread; the ORM calls of the test stay synchronous.
    monkeypatch.setenv("DJANGO_ALLOW_ASYNC_UNSAFE", "true")
    with sync_playwright() as p:
        browser = p.chromium.launch(
            executable_path=CHROMIUM,
            args=["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
                  "--disable-sync", "--no-first-run"],
        )  # fmt: skip
        yield browser
        browser.close()


@pytest.fixture
def page(browser):
    """A fresh page (its own cookies) in English that accepts downloads."""
    context = browser.new_context(locale="en-US", accept_downloads=True)
    page = context.new_page()
    page.set_default_timeout(15_000)
    yield page
    context.close()


def log_in(page, live_server, username: str, password: str) -> None:
    page.goto(f"{live_server.url}/admin/login/")
    page.fill("#id_username", username)
    page.fill("#id_password", password)
    page.click("input[type=submit]")
    page.wait_for_selector("#logout-form")


def log_out(page) -> None:
    page.click("#logout-form button[type=submit]")
    page.wait_for_url("**/admin/logout/")


def with_password(user, password: str):
    user.set_password(password)
    user.save(update_fields=["password"])
    return user
