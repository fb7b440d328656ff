"""PostgreSQL's prepared statements, as deployed (``DATABASE_PREPARED_STATEMENTS``; the tests run with 5): a
statement run that many times on a connection is prepared there, the answers are the same, and each run is
still planned for its own values."""

from __future__ import annotations

import pytest
from django.db import connection

from crm.models import Role
from tickets.models import Ticket
from tickets.services import ticket_open


def _prepared() -> int:
    with connection.cursor() as cursor:
        cursor.execute("SELECT count(*) FROM pg_prepared_statements")
        return cursor.fetchone()[0]


@pytest.mark.postgres
def test_a_statement_run_five_times_is_prepared_and_answers_the_same(staff, make_customer, catalogue):
    if connection.vendor != "postgresql":
        pytest.skip("PostgreSQL's prepared statements")
    assert connection.settings_dict["OPTIONS"]["prepare_threshold"] == 5
    assert connection.settings_dict["OPTIONS"]["server_side_binding"] is True
    with connection.cursor() as cursor:
        cursor.execute("SHOW plan_cache_mode")
        assert cursor.fetchone()[0] == "force_custom_plan"  # never one plan for every unit's list
        cursor.execute("SHOW tongdai.allow_truncate")
        assert cursor.fetchone()[0] == "on"  # the tests' own option kept beside it
    customer = make_customer()
    before = _prepared()
    numbers = [
        ticket_open(actor=staff[Role.AGENT], category=catalogue["outage"], channel="app",
                    description=f"Mất điện lần {i}", customer=customer).ticket.number
        for i in range(6)
    ]  # fmt: skip
    assert _prepared() > before  # the intake's statements, prepared on this connection
    assert list(Ticket.objects.filter(customer=customer).order_by("number").values_list("number", flat=True)) == sorted(
        numbers
    )
