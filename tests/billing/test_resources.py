"""Export columns of invoices and disputes: scoped rows, natural keys, one query for all rows."""

from __future__ import annotations

import csv
import io

import openpyxl
import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from billing.models import Dispute, Invoice
from billing.resources import DisputeResource, InvoiceResource
from core import exports
from crm.models import Role


@pytest.fixture
def clerk(staff):
    return staff[Role.BILLING_CLERK]


def columns(resource) -> list[str]:
    return [field.column_name for field in resource.get_export_fields()]


def test_invoices_export_only_the_users_units_by_natural_keys(clerk, two_customers):
    mine, _theirs = two_customers
    resource = InvoiceResource(user=clerk)
    queryset = Invoice.objects.for_user(clerk).order_by("id")
    with CaptureQueriesContext(connection) as ctx:
        rows = [
            dict(zip(columns(resource), r, strict=True)) for r in resource.export_rows(queryset)
        ]
    assert len(ctx) == 1  # contracts, customers, units and the adjusted invoice joined in
    expected = list(Invoice.objects.filter(customer=mine).order_by("id"))
    assert [r["number"] for r in rows] == [i.number for i in expected]
    assert {r["customer"] for r in rows} == {mine.code}
    assert {r["unit"] for r in rows} == {mine.unit.code}
    assert {r["contract"] for r in rows} == {mine.contracts.get().number}
    adjustment = next(i for i in expected if i.adjusts_id)
    assert next(r for r in rows if r["number"] == adjustment.number)["adjusts"] == adjustment.adjusts.number
    first = expected[0]
    assert rows[0]["total"] == str(first.total)
    assert rows[0]["period"] == first.period.isoformat()


def test_disputes_export_their_subjects_by_natural_keys(clerk, two_customers):
    mine, _theirs = two_customers
    resource = DisputeResource(user=clerk)
    queryset = Dispute.objects.for_user(clerk)
    with CaptureQueriesContext(connection) as ctx:
        rows = list(resource.export_rows(queryset))
    assert len(ctx) == 1
    dispute = Dispute.objects.get(customer=mine)
    assert [dict(zip(columns(resource), r, strict=True)) for r in rows] == [
        {
            "ticket": dispute.ticket.number,
            "customer": mine.code,
            "unit": mine.unit.code,
            "invoice": dispute.invoice.number,
            "reading_contract": mine.contracts.get().number,
            "reading_period": dispute.reading.period.isoformat(),
            "claim": "Chỉ số đọc sai",
            "status": dispute.status,
            "outcome": dispute.outcome,
            "opened_at": exports.MomentWidget().render(dispute.opened_at),
            "opened_by": dispute.opened_by.username,
            "resolved_at": exports.MomentWidget().render(dispute.resolved_at),
        }
    ]


def test_invoices_stream_to_csv_and_xlsx_with_the_same_columns(clerk, two_customers):
    resource = InvoiceResource(user=clerk)
    queryset = Invoice.objects.for_user(clerk).order_by("id")
    headers = resource.get_export_headers()
    text = (
        b"".join(exports.csv_chunks(headers, resource.export_rows(queryset))).decode().removeprefix("\ufeff")
    )
    from_csv = list(csv.reader(io.StringIO(text)))
    data = b"".join(exports.xlsx_chunks(headers, resource.export_rows(queryset, native=True)))
    from_xlsx = list(openpyxl.load_workbook(io.BytesIO(data)).worksheets[0].values)
    assert from_csv[0] == list(from_xlsx[0]) == headers
    assert len(from_csv) == len(from_xlsx) == queryset.count() + 1
    column = headers.index(resource.column_label(resource.fields["total"]))
    assert headers[column] == "Total"  # headed as people read it, in the interface's language
    assert [int(r[column]) for r in from_csv[1:]] == [r[column] for r in from_xlsx[1:]]


def test_these_resources_only_export(clerk):
    with pytest.raises(NotImplementedError):
        InvoiceResource(user=clerk).import_data(None)
