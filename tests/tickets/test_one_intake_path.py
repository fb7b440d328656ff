"""One intake path: tickets come in through the DRF view and the service, written by Django's own insert; no code
of the project reaches into private (leading underscore) APIs of Django, DRF or psycopg."""

import ast
import re
from pathlib import Path

from django.db import connection
from django.test.utils import CaptureQueriesContext

from crm.models import OutboxMessage, Role
from tickets.models import Ticket

ROOT = Path(__file__).resolve().parents[2]
# Documented parts of Django's public API despite their underscore.
PUBLIC = {"_meta", "_state", "_default_manager", "_base_manager", "_"}


def _project_files():
    for folder in ("tongdai", "core", "crm", "customers", "tickets", "billing", "reports", "bench"):
        for path in (ROOT / folder).rglob("*.py"):
            if "migrations" not in path.parts:
                yield path


def _defined_names(tree) -> set[str]:
    names = set()
    for node in ast.walk(tree):
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            names.add(node.name)
        elif isinstance(node, ast.Name) and isinstance(node.ctx, ast.Store):
            names.add(node.id)
        elif isinstance(node, ast.Attribute) and isinstance(node.ctx, ast.Store):
            names.add(node.attr)
        elif isinstance(node, ast.alias):
            names.add((node.asname or node.name).split(".")[0])
    return names


def test_no_private_api_of_django_drf_or_psycopg_is_used():
    """Every ``x._name`` read in the project names something the project defines itself (a def, a class, an
    assignment): what is left belongs to a library's object."""
    trees = {path: ast.parse(path.read_text(), str(path)) for path in _project_files()}
    ours = set().union(*(_defined_names(tree) for tree in trees.values()))
    found = [
        f"{path.relative_to(ROOT)}:{node.lineno} {ast.unparse(node)}"
        for path, tree in trees.items()
        for node in ast.walk(tree)
        if isinstance(node, ast.Attribute)
        and re.fullmatch(r"_[a-z]\w*", node.attr)
        and node.attr not in PUBLIC | ours
    ]
    assert found == []


def test_the_statement_helpers_are_gone():
    from core import db

    assert not hasattr(db, "insert_parts") and not hasattr(db, "prepared_cursor")


def test_api_intake_writes_the_ticket_with_djangos_own_insert(client, staff, make_customer, catalogue, dispatcher):
    customer = make_customer(phones=["0903 111 222"])
    client.force_login(staff[Role.AGENT])
    payload = {"category": "outage", "channel": "app", "description": "Mất điện", "customer_code": customer.code}
    with CaptureQueriesContext(connection) as queries:
        response = client.post("/api/v1/tickets/", payload, content_type="application/json")
    assert response.status_code == 201, response.content
    ticket = Ticket.objects.get(number=response.json()["number"])
    assert (ticket.customer, ticket.events.count()) == (customer, 1)
    assert OutboxMessage.objects.filter(dedupe_key=f"ticket:{ticket.pk}:routed:{dispatcher.staff_profile.pk}").exists()
    inserts = [q["sql"] for q in queries.captured_queries if q["sql"].startswith("INSERT")]
    assert not any(sql.startswith("WITH") for sql in inserts)
    assert [sql.split('"')[1] for sql in inserts if "tickets_ticketcounter" not in sql] == [
        "tickets_ticket", "tickets_ticketevent", "crm_outboxmessage",
    ]  # fmt: skip


def test_the_serializer_rules_are_the_ones_that_refuse(client, staff, catalogue):
    """A field the serializer refuses is refused: nothing answers beside the DRF view."""
    client.force_login(staff[Role.AGENT])
    before = Ticket.objects.count()
    response = client.post(
        "/api/v1/tickets/",
        {"category": "outage", "channel": "app", "description": "x" * 4001, "caller_name": "A", "unit_code": "PE0101"},
        content_type="application/json",
    )
    assert response.status_code == 400 and "description" in response.json()
    assert Ticket.objects.count() == before
