"""Query budgets: every page an agent, a clerk or a manager waits on runs a stated number of queries at most,
so a section, a column or a filter that adds a query (an N+1 the first time a list grows) fails here, as
NetBox's tests do. The budgets are the counts of today's pages with a row of every model
(``rows_of_every_model``); the lists run the same count with more rows (``test_lists_do_not_grow_with_rows``).

A budget raised here is a decision: say in the commit why the page needs the query."""

from __future__ import annotations

import datetime as dt

import pytest
from django.db import connection
from django.test import RequestFactory
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils import timezone

from billing.services import billing_run, reading_record
from crm.admin_base import EstimatedCountPaginator
from crm.models import Role
from tests.admin_site import registered_admins
from tests.conftest import RISEN
from tests.test_changelists_everywhere import rows_of_every_model, walker  # noqa: F401  (a fixture)
from tickets.models import Ticket
from tickets.services import interaction_log, ticket_open, work_order_create

# Page → (queries as a superuser, as a supervisor of one unit) on SQLite; None: that user may not see the page.
# A supervisor's pages read their scope and permissions (the shared cache is off in the tests: its worst case).
# On PostgreSQL a changelist counted by the planner's estimate asks it in one more query.
BUDGETS = {
    "auth.Group": (5, None),
    "auth.User": (6, None),
    "axes.AccessAttempt": (8, None),
    "axes.AccessFailureLog": (8, None),
    "axes.AccessLog": (8, None),
    "billing.Adjustment": (5, 10),
    "billing.AnomalyBandCount": (5, 10),
    "billing.AuditRecord": (12, 16),  # one query per kind of record on the page, to name each record
    "billing.Payment": (5, 10),
    "billing.BillingJob": (4, 9),
    "billing.BillingRun": (5, 10),
    "billing.Dispute": (5, 10),
    "billing.Invoice": (5, 10),
    "billing.InvoiceCounter": (5, None),
    "billing.InvoiceLine": (5, 10),
    "billing.MeterReading": (5, 10),
    "billing.PriceTable": (5, 7),
    "billing.ReadingImport": (5, 10),
    "billing.RebateApplication": (6, 11),
    "billing.RebateProgramme": (5, 7),
    "billing.Refund": (5, 10),
    "billing.Reinspection": (5, 10),
    "billing.VatRate": (5, 7),
    "crm.ApiToken": (5, 7),
    "crm.Company": (5, 10),
    "crm.Corporation": (4, 9),
    "crm.ExportLog": (5, None),
    "crm.OutboxMessage": (4, None),
    "crm.StaffProfile": (4, 9),
    "crm.Unit": (5, 10),
    "customers.Contract": (5, 10),
    "customers.Customer": (5, 10),
    "customers.CustomerEvent": (4, 9),
    "customers.CustomerPhone": (4, 9),
    "customers.Meter": (5, 10),
    "customers.MeterAssignment": (5, 10),
    "django_q.Failure": (7, None),
    "django_q.OrmQ": (6, None),
    "django_q.Schedule": (6, None),
    "django_q.Success": (7, None),
    "otp_totp.TOTPDevice": (5, None),
    "tickets.Callback": (4, 9),
    "tickets.Category": (5, 7),
    "tickets.Holiday": (7, 9),
    "tickets.Incident": (5, 10),
    "tickets.Interaction": (5, 10),
    "tickets.SlaPolicy": (6, 8),
    "tickets.Suspension": (5, 7),
    "tickets.Ticket": (7, 12),
    "tickets.TicketEvent": (4, 9),
    "tickets.WorkOrder": (5, 10),
    "api:contract": (3, 8),
    "api:customer": (3, 8),
    "api:dispute": (3, 8),
    "api:interaction": (3, 8),
    "api:invoice": (3, 8),
    "api:meter": (3, 8),
    "api:reading": (3, 8),
    "api:ticket": (3, 8),
    "api:unit": (3, 8),
    "api:workorder": (3, 8),
    "card": (10, 15),  # with the unit read from the database: the tests keep no shared cache (production does)
    "dashboard": (13, 18),
    "lookup": (4, 9),  # the candidates' unit read from the database, as on the card
}

LATER = (RISEN + dt.timedelta(days=40)).replace(day=1)  # a month after the fixtures' bills

API_LISTS = [
    "unit", "customer", "contract", "meter", "ticket", "workorder", "interaction", "invoice", "reading", "dispute",
]  # fmt: skip


def count(client, url, params=None, status=200) -> int:
    with CaptureQueriesContext(connection) as queries:
        response = client.get(url, params or {})
    assert response.status_code == status, (url, response.status_code)
    return len(queries)


def pages(client, two_customers) -> dict[str, tuple[str, dict, int]]:
    """Every page budgeted: page → (url, query, expected status)."""
    found = {}
    for model, _model_admin in registered_admins():
        url = reverse(f"admin:{model._meta.app_label}_{model._meta.model_name}_changelist")
        found[model._meta.label] = (url, {}, 200)
    for name in API_LISTS:
        found["api:" + name] = (reverse(f"{name}-list"), {}, 200)
    mine = two_customers[0]
    found["card"] = (reverse("admin:customers_customer_card", args=[mine.pk]), {}, 200)
    # One match: the lookup opens the card (the agent's usual case).
    found["lookup"] = (reverse("admin:customers_customer_lookup"), {"q": "0903 111 222"}, 302)
    found["dashboard"] = (reverse("dashboard"), {}, 200)
    return found


@pytest.mark.parametrize("kind", ["superuser", Role.SUPERVISOR])
def test_every_page_keeps_its_query_budget(client, kind, staff, rows_of_every_model, two_customers):  # noqa: F811
    user = walker(kind, staff)
    client.force_login(user)
    as_user = RequestFactory().get("/")
    as_user.user = user
    column = 0 if kind == "superuser" else 1
    hidden = {m._meta.label for m, a in registered_admins() if not a.has_view_or_change_permission(as_user)}
    on_postgres = connection.vendor == "postgresql"
    estimated = {
        m._meta.label
        for m, a in registered_admins()
        if on_postgres and a.paginator is EstimatedCountPaginator
    }
    over, unbudgeted, walked = [], [], 0
    for page, (url, params, status) in pages(client, two_customers).items():
        if page in hidden:
            continue
        count(client, url, params, status)  # the first request warms what every later one reuses
        used = count(client, url, params, status)
        walked += 1
        budget = BUDGETS.get(page, (None, None))[column]
        if budget is not None and page in estimated:
            budget += 1  # PostgreSQL: the page's count is the planner's estimate, asked in a query of its own
        if budget is None:
            unbudgeted.append(f"{page}: {used}")
        elif used > budget:
            over.append(f"{page}: {used} queries, budget {budget}")
    assert over == [], "pages over their query budget (an added query, or an N+1):\n" + "\n".join(over)
    assert unbudgeted == [], "pages without a budget: add them to BUDGETS"
    assert walked >= 40 if kind == "superuser" else walked >= 30


GROWING = [
    "customers.Customer", "customers.Contract", "customers.Meter", "customers.MeterAssignment",
    "customers.CustomerPhone", "tickets.Ticket", "tickets.TicketEvent", "tickets.Interaction", "tickets.WorkOrder",
    "billing.Invoice", "billing.InvoiceLine", "billing.MeterReading", "billing.AuditRecord", "api:customer", "api:contract", "api:meter",
    "api:ticket", "api:interaction", "api:invoice", "api:reading", "card", "lookup", "dashboard",
]  # fmt: skip


def test_lists_do_not_grow_with_rows(client, staff, two_customers, make_customer, catalogue, org):
    """The lists an agent and a clerk use most run as many queries with five times the rows."""
    user = staff[Role.SUPERVISOR]
    client.force_login(user)
    every = pages(client, two_customers)

    def counts():
        return {page: count(client, *every[page]) for page in GROWING}

    counts()
    before = counts()
    agent = staff[Role.AGENT]
    for i in range(8):
        customer = make_customer(org["home"], name=f"Khách Hàng {i}", phones=[f"0903 555 1{i:02d}"])
        ticket = ticket_open(
            actor=agent,
            category=catalogue["outage"],
            channel="phone",
            description="Mất điện",
            customer=customer,
        ).ticket
        work_order_create(actor=None, ticket=ticket)
        now = timezone.now()
        interaction_log(actor=agent, channel="phone", started_at=now, ended_at=now, disposition="ticket",
                        unit=customer.unit, customer=customer, ticket=ticket)  # fmt: skip
        reading_record(
            actor=None, contract=customer.contracts.get(), period=LATER, value=100 + i, source="handheld"
        )
    outcome = billing_run(actor=None, period=LATER, unit=org["home"])
    assert outcome.invoices >= 8  # the rows really grew: bills, tickets, work orders, interactions
    assert Ticket.objects.filter(unit=org["home"]).count() >= 10
    after = counts()
    grew = {page: (before[page], after[page]) for page in GROWING if after[page] != before[page]}
    assert grew == {}
