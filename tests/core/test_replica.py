"""Reports and exports read from the replica when one is configured; every other read and every write stays on
the primary. The tests run with a second database alias mirroring the test database (tests/settings.py)."""

from __future__ import annotations

import pytest
from django.db import connections
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils import timezone

from core.exports import ScopedResource
from core.routers import REPLICA, ReplicaRouter, in_replica_reads, on_replica, replica_reads
from crm.models import ExportLog, Role
from customers.models import Customer
from reports.monthly import monthly_report_workbook
from tickets.services import ticket_open


def test_the_router_sends_only_the_reports_reads_to_the_replica_and_only_when_it_is_on(settings):
    router = ReplicaRouter()
    settings.TONGDAI_REPLICA_READS = True
    assert router.db_for_read(Customer) is None  # an agent's read
    with replica_reads():
        assert router.db_for_read(Customer) == REPLICA
        assert router.db_for_write(Customer) is None  # writes never
    assert router.db_for_read(Customer) is None  # and only inside
    chunks = on_replica(router.db_for_read(Customer) for _ in range(2))
    assert list(chunks) == [REPLICA, REPLICA]  # a streamed response's rows, read while it is sent
    assert router.db_for_read(Customer) is None
    settings.TONGDAI_REPLICA_READS = False
    with replica_reads():
        assert router.db_for_read(Customer) is None  # no replica in use: the primary
    assert router.allow_migrate(REPLICA, "customers") is False
    assert router.allow_migrate("default", "customers") is True


@pytest.mark.django_db(transaction=True, databases=["default", REPLICA])
def test_the_dashboard_and_the_monthly_report_read_on_the_replica(
    client, settings, staff, make_customer, catalogue
):
    customer = make_customer()
    ticket_open(
        actor=None, category=catalogue["outage"], channel="phone", description="Mất điện", customer=customer
    )
    manager = staff[Role.MANAGER]
    client.force_login(manager)
    settings.TONGDAI_REPLICA_READS = True
    with (
        CaptureQueriesContext(connections[REPLICA]) as on_replica_db,
        CaptureQueriesContext(connections["default"]) as on_primary,
    ):
        page = client.get(reverse("dashboard"))
    assert page.status_code == 200
    assert any('"tickets_ticket"' in q["sql"] for q in on_replica_db.captured_queries)
    # the primary serves the session, the user and the form, not the widgets' tickets
    assert not any('FROM "tickets_ticket"' in q["sql"] for q in on_primary.captured_queries)
    month = timezone.localdate().replace(day=1)
    with CaptureQueriesContext(connections[REPLICA]) as on_replica_db:
        content, rows = monthly_report_workbook(manager, month)
    assert content[:2] == b"PK" and rows >= 1
    assert any('"tickets_ticket"' in q["sql"] for q in on_replica_db.captured_queries)
    settings.TONGDAI_REPLICA_READS = False
    with CaptureQueriesContext(connections[REPLICA]) as on_replica_db:
        assert client.get(reverse("dashboard")).status_code == 200
    assert on_replica_db.captured_queries == []  # off: all on the primary


def test_a_list_export_reads_its_rows_where_the_router_says_while_it_streams(
    client, settings, staff, make_customer, monkeypatch
):
    """The rows are read while the response is sent, inside ``replica_reads``: with a replica in use the
    router sends them there (the router's test above); here the test database serves them."""
    make_customer(name="Nguyễn Văn Xuất")
    manager = staff[Role.MANAGER]
    client.force_login(manager)
    routed = []
    original = ScopedResource.export_rows

    def export_rows(self, queryset, **kwargs):
        for row in original(self, queryset, **kwargs):
            routed.append(in_replica_reads())  # where each row was read
            yield row

    monkeypatch.setattr(ScopedResource, "export_rows", export_rows)
    response = client.post(reverse("admin:customers_customer_export_all"), {"file_format": "csv"})
    assert routed == []  # nothing read before the response is sent
    content = b"".join(response.streaming_content).decode()
    assert response.status_code == 200 and "Nguyễn Văn Xuất" in content
    assert routed == [True]
    assert ExportLog.objects.get().row_count == 1  # the log, a write, on the primary
