"""The pages staff use, in a real browser under the Content-Security-Policy: the login page, the admin's home,
the caller lookup, the customer card and a changelist (agent), the dashboard with its SVG charts (manager), the
API docs (Swagger UI) and the field crew's page. Each page is watched for ``securitypolicyviolation`` events
and for the console's CSP errors, and shows that its scripts and styles did their job."""

from __future__ import annotations

import pytest
from django.utils import timezone

from crm.models import Role
from tests.e2e.conftest import log_in, log_out, needs_chromium, with_password
from tickets.models import WorkOrder, WorkOrderStatus
from tickets.services import ticket_open, work_order_create

pytestmark = [needs_chromium, pytest.mark.django_db(transaction=True)]

# Runs in every document before the page's own scripts (Playwright's injection is not subject to the policy).
LISTEN = """
document.addEventListener("securitypolicyviolation", (e) => window.reportViolation({
  page: location.pathname, directive: e.violatedDirective, blocked: e.blockedURI,
  source: e.sourceFile, line: e.lineNumber, sample: e.sample,
}));
"""


class Watch:
    """What the browser reports on a page: CSP violations, console messages about the policy, script errors."""

    def __init__(self, page):
        self.violations: list[dict] = []
        self.console: list[str] = []
        self.errors: list[str] = []
        page.expose_function("reportViolation", lambda violation: self.violations.append(violation))
        page.add_init_script(LISTEN)
        page.on("console", self._console)
        page.on("pageerror", lambda error: self.errors.append(str(error)))

    def _console(self, message):
        text = message.text
        if "Content Security Policy" in text or "Refused to" in text:
            self.console.append(f"{message.type}: {text}")

    def assert_clean(self, page):
        page.wait_for_timeout(200)  # violation events are dispatched asynchronously
        assert (self.violations, self.console, self.errors) == ([], [], []), page.url


def theme_toggles(page) -> None:
    """The admin's theme script ran: it set the theme on load and cycles it on a click."""
    assert page.evaluate("document.documentElement.dataset.theme") == "auto"
    page.locator("button.theme-toggle").first.click()
    assert page.evaluate("document.documentElement.dataset.theme") == "dark"
    page.locator("button.theme-toggle").first.click()
    page.locator("button.theme-toggle").first.click()
    assert page.evaluate("document.documentElement.dataset.theme") == "auto"


def test_the_staff_pages_work_under_the_content_security_policy(
    live_server, browser, org, make_staff, make_customer, catalogue
):
    agent = with_password(make_staff(Role.AGENT, [org["home"]], username="agent-csp"), "a-good-pass-a")
    with_password(make_staff(Role.MANAGER, [org["home"]], username="manager-csp"), "a-good-pass-m")
    crew = with_password(make_staff(Role.FIELD_CREW, [org["home"]], username="crew-csp"), "a-good-pass-c")
    customer = make_customer(name="Nguyễn Văn An", phones=["0903 123 456"])
    tickets = [
        ticket_open(actor=agent, category=catalogue["outage"], channel=channel, description="Mất điện",
                    customer=customer, at=timezone.now()).ticket
        for channel in ("phone", "zalo")
    ]  # fmt: skip
    order = work_order_create(actor=None, ticket=tickets[0], crew=crew)

    context = browser.new_context(locale="en-US")
    page = context.new_page()
    page.set_default_timeout(15_000)
    watch = Watch(page)

    # The agent: the login page, the home page, the caller lookup, the card and the tickets' changelist.
    log_in(page, live_server, "agent-csp", "a-good-pass-a")
    watch.assert_clean(page)
    theme_toggles(page)
    page.fill("#caller-lookup-module input[name=q]", "nguyen van an")  # a list (one exact number opens the card)
    page.click("#caller-lookup-module input[type=submit]")
    page.wait_for_selector("#lookup-results")
    assert page.locator("#lookup-results").evaluate("t => getComputedStyle(t).width") == page.locator(
        "#lookup-results"
    ).evaluate("t => getComputedStyle(t.parentElement).width")  # the project's stylesheet: a full-width table
    watch.assert_clean(page)
    page.click(f"#lookup-results a:has-text('{customer.code}')")
    page.wait_for_selector("#card-code")
    assert page.inner_text("#card-code") == customer.code
    # the sidebar's filter (nav_sidebar.js) hides the models that do not match what is typed
    shown = "#nav-sidebar tr[class^=model-]:visible"
    before = page.locator(shown).count()
    page.fill("#nav-filter", "ticket")
    assert 0 < page.locator(shown).count() < before
    watch.assert_clean(page)
    # the new-ticket form from the card: its autocomplete widgets (select2) ask the server as one types
    page.click("#card-tickets a.button")
    page.wait_for_selector("#id_description")
    page.click("#id_unit + .select2-container")
    page.wait_for_selector(".select2-results__option:has-text('PE0100')")
    page.keyboard.press("Escape")
    watch.assert_clean(page)
    page.goto(f"{live_server.url}/admin/tickets/ticket/")
    page.click("#action-toggle")  # actions.js ticks every row and counts them
    assert page.locator("input.action-select:checked").count() == 2
    assert page.inner_text(".action-counter").startswith("2 of 2 selected")
    watch.assert_clean(page)

    # The API docs: Swagger UI loads its start-up script and the schema, and lists the operations.
    page.goto(f"{live_server.url}/api/docs/")
    page.wait_for_selector(".opblock-summary-path")
    assert page.locator(".opblock-summary-path", has_text="/api/v1/customers/lookup").count() >= 1
    watch.assert_clean(page)
    page.goto(f"{live_server.url}/admin/")
    log_out(page)

    # The manager: the dashboard's server-drawn SVG charts, coloured by its stylesheet.
    log_in(page, live_server, "manager-csp", "a-good-pass-m")
    page.goto(f"{live_server.url}/admin/dashboard/")
    chart = page.locator("#widget-channels svg.dash-chart")
    assert chart.locator("rect.dash-bar").count() == 2
    fill = chart.locator("rect.dash-bar").first.evaluate("r => getComputedStyle(r).fill")
    assert fill not in ("", "rgb(0, 0, 0)")  # black is an SVG's fill when no stylesheet applies
    theme_toggles(page)
    watch.assert_clean(page)
    log_out(page)

    # The field crew: the phone-sized page, styled by its own stylesheet, moves the work order on.
    log_in(page, live_server, "crew-csp", "a-good-pass-c")
    page.goto(f"{live_server.url}/field/")
    assert page.locator("header").evaluate("h => getComputedStyle(h).backgroundColor") == "rgb(65, 118, 144)"
    page.click(f"#order-{order.pk} button[value=acknowledged]")
    page.wait_for_load_state()
    order.refresh_from_db()
    assert order.status == WorkOrderStatus.ACKNOWLEDGED
    watch.assert_clean(page)
    assert WorkOrder.objects.filter(status=WorkOrderStatus.ACKNOWLEDGED).count() == 1
    context.close()
