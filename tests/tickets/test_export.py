"""The streamed ticket export of the changelist, and the streaming writers of ``core.exports``."""

from __future__ import annotations

import csv
import datetime as dt
import io
import zipfile
from unittest import mock

import openpyxl
import pytest
from django.db import connection
from django.db.models.query import QuerySet
from django.http import StreamingHttpResponse
from django.test import override_settings
from django.test.utils import CaptureQueriesContext
from django.urls import reverse

from core import exports
from crm.models import Role
from tests.exported import by_column
from tickets import services
from tickets.resources import TicketResource


@pytest.fixture
def tickets(org, make_customer, catalogue):
    """Three tickets of the home unit (one acknowledged), one of a sibling unit, one of another company."""

    def take(unit, name, phone, description):
        customer = make_customer(unit, name=name, phones=[phone])
        return services.ticket_open(
            actor=None,
            category=catalogue["outage"],
            channel="phone",
            description=description,
            customer=customer,
        ).ticket

    made = {
        "home_new": take(org["home"], "Nhà Một", "0903 000 001", "Mất điện cả khu"),
        "home_other": take(org["home"], "Nhà Hai", "0903 000 002", '=HYPERLINK("http://x")'),
        "home_acknowledged": take(org["home"], "Nhà Ba", "0903 000 003", "Chập điện"),
        "sibling": take(org["sibling"], "Bên Cạnh", "0903 000 004", "Cột nghiêng"),
        "other_company": take(org["other_company"], "Công Ty Khác", "0903 000 005", "Mất điện"),
    }
    services.ticket_change_status(actor=None, ticket=made["home_acknowledged"], to="acknowledged")
    return made


def export(client, query: str = "", file_format: str = "csv"):
    return client.post(reverse("admin:tickets_ticket_export_all") + query, {"file_format": file_format})


def read_csv(response) -> list[dict]:
    body = b"".join(response.streaming_content).decode("utf-8")
    return by_column(csv.DictReader(io.StringIO(body.removeprefix("\ufeff"))))


def test_an_agent_exports_the_tickets_of_their_unit_only_by_natural_keys(client, staff, tickets, org):
    client.force_login(staff[Role.AGENT])
    response = export(client)
    assert isinstance(response, StreamingHttpResponse)
    rows = read_csv(response)
    assert [r["number"] for r in rows] == [
        tickets["home_acknowledged"].number,
        tickets["home_other"].number,
        tickets["home_new"].number,
    ]
    first = rows[2]
    ticket = tickets["home_new"]
    assert (first["unit"], first["customer"], first["category"], first["status"], first["channel"]) == (
        "PE0100",
        ticket.customer.code,
        "outage",
        "new",
        "phone",
    )
    assert first["contract"] == "" and first["assignee"] == "" and first["duplicate_of"] == ""
    assert not any(value == str(ticket.pk) for value in first.values())
    # a description a spreadsheet would run as a formula is quoted
    assert rows[1]["description"] == '\'=HYPERLINK("http://x")'


def test_the_export_honours_the_status_and_unit_filters(client, org, make_staff, tickets):
    client.force_login(make_staff(Role.SUPERVISOR, [org["home"]]))  # sees the units of the company
    assert sorted(r["number"] for r in read_csv(export(client))) == sorted(
        t.number for key, t in tickets.items() if key != "other_company"
    )
    new_at_home = read_csv(export(client, f"?status__exact=new&unit={org['home'].pk}"))
    assert [r["number"] for r in new_at_home] == [tickets["home_other"].number, tickets["home_new"].number]
    sibling = read_csv(export(client, f"?unit={org['sibling'].pk}"))
    assert [r["number"] for r in sibling] == [tickets["sibling"].number]
    searched = read_csv(export(client, f"?q={tickets['sibling'].number}"))
    assert [r["number"] for r in searched] == [tickets["sibling"].number]


def test_the_export_reads_nothing_until_sent_and_then_in_chunks(client, staff, tickets):
    client.force_login(staff[Role.AGENT])
    chunk_sizes = []
    iterator = QuerySet.iterator

    def spy(queryset, chunk_size=None):
        if queryset.model._meta.model_name == "ticket":
            chunk_sizes.append(chunk_size)
        return iterator(queryset, chunk_size=chunk_size)

    with override_settings(TONGDAI_EXPORT_CHUNK_SIZE=2), mock.patch.object(QuerySet, "iterator", spy):
        with CaptureQueriesContext(connection) as asked:
            response = export(client)
        assert not [q for q in asked if 'FROM "tickets_ticket"' in q["sql"]]
        with CaptureQueriesContext(connection) as sent:
            rows = read_csv(response)
    assert len(rows) == 3
    assert chunk_sizes == [2]
    ticket_reads = [q["sql"] for q in sent if 'FROM "tickets_ticket"' in q["sql"]]
    assert len(ticket_reads) == 1  # one read with every column joined in: no query per row
    assert all(
        table in ticket_reads[0] for table in ('"customers_customer"', '"crm_unit"', '"tickets_category"')
    )


def test_the_xlsx_export_opens_in_openpyxl_with_the_right_rows(client, staff, tickets):
    client.force_login(staff[Role.AGENT])
    response = export(client, file_format="xlsx")
    assert response["Content-Type"] == exports.XLSX_CONTENT_TYPE
    book = openpyxl.load_workbook(io.BytesIO(b"".join(response.streaming_content)))
    sheet = book.worksheets[0]
    rows = list(sheet.values)
    assert rows[0] == tuple(TicketResource().get_export_headers())
    by_number = {row[0]: by_column([dict(zip(rows[0], row, strict=True))])[0] for row in rows[1:]}
    assert sorted(by_number) == sorted(t.number for key, t in tickets.items() if key.startswith("home"))
    acknowledged = by_number[tickets["home_acknowledged"].number]
    assert acknowledged["status"] == "acknowledged"
    assert acknowledged["escalation_level"] == 0
    assert acknowledged["acknowledge_breached"] is False
    assert isinstance(acknowledged["created_at"], dt.datetime)
    # text that looks like a formula stays text in the workbook
    assert by_number[tickets["home_other"].number]["description"] == '=HYPERLINK("http://x")'


def test_the_export_selected_action_streams_the_chosen_tickets(client, staff, tickets):
    client.force_login(staff[Role.AGENT])
    response = client.post(
        reverse("admin:tickets_ticket_changelist"),
        {"action": "export_selected_xlsx", "_selected_action": [tickets["home_new"].pk]},
    )
    assert isinstance(response, StreamingHttpResponse)
    rows = list(openpyxl.load_workbook(io.BytesIO(b"".join(response.streaming_content))).worksheets[0].values)
    assert [row[0] for row in rows[1:]] == [tickets["home_new"].number]


def test_the_changelist_links_the_export_with_its_filters(client, staff, tickets):
    client.force_login(staff[Role.AGENT])
    html = client.get(reverse("admin:tickets_ticket_changelist") + "?status__exact=new").content.decode()
    assert reverse("admin:tickets_ticket_export_all") + "?status__exact=new" in html


# The writers ------------------------------------------------------------------------------------------


def test_the_xlsx_writer_continues_on_a_new_sheet_past_the_row_limit(monkeypatch):
    monkeypatch.setattr(exports, "XLSX_ROWS_PER_SHEET", 2)
    rows = [[i, f"dòng {i}", dt.date(2025, 1, i), None, True] for i in range(1, 6)]
    data = b"".join(
        exports.xlsx_chunks(["n", "text", "day", "empty", "flag"], iter(rows), sheet_name="tickets")
    )
    assert zipfile.ZipFile(io.BytesIO(data)).testzip() is None
    book = openpyxl.load_workbook(io.BytesIO(data))
    assert book.sheetnames == ["tickets", "tickets 2", "tickets 3"]
    assert [list(s.values) for s in book.worksheets] == [
        [("n", "text", "day", "empty", "flag"), (1, "dòng 1", dt.datetime(2025, 1, 1), None, True),
         (2, "dòng 2", dt.datetime(2025, 1, 2), None, True)],
        [("n", "text", "day", "empty", "flag"), (3, "dòng 3", dt.datetime(2025, 1, 3), None, True),
         (4, "dòng 4", dt.datetime(2025, 1, 4), None, True)],
        [("n", "text", "day", "empty", "flag"), (5, "dòng 5", dt.datetime(2025, 1, 5), None, True)],
    ]  # fmt: skip


def test_the_xlsx_writer_sends_bytes_before_the_last_row_is_read():
    produced = []

    def rows():
        for i in range(20_000):
            produced.append(i)
            yield [i, "x" * 20]

    chunks = exports.xlsx_chunks(["n", "text"], rows())
    first = next(chunks)
    assert first.startswith(b"PK")
    assert len(produced) < 20_000
    rest = b"".join(chunks)
    assert len(list(openpyxl.load_workbook(io.BytesIO(first + rest)).worksheets[0].values)) == 20_001


def test_the_xlsx_writer_drops_characters_xml_cannot_hold():
    data = b"".join(exports.xlsx_chunks(["text"], iter([["a\x00b\x1fc <&> d"]])))
    assert list(openpyxl.load_workbook(io.BytesIO(data)).worksheets[0].values) == [("text",), ("abc <&> d",)]


def test_the_csv_writer_sends_pieces_of_the_buffer_size():
    with override_settings(TONGDAI_EXPORT_BUFFER_BYTES=100):
        chunks = list(exports.csv_chunks(["n"], ([str(i) * 10] for i in range(50))))
    assert len(chunks) > 5
    assert all(len(chunk) < 200 for chunk in chunks)
    lines = b"".join(chunks).decode("utf-8").removeprefix("\ufeff").splitlines()
    assert lines[:3] == ["n", "0000000000", "1111111111"] and len(lines) == 51
