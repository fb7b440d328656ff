"""The exports read plain values (``values_list`` of the exported columns, one query per chunk) and give
exactly the cells django-import-export gives from model instances (``export_field``: the dehydrate methods,
the widgets' rendering): headings in Vietnamese, money as whole đồng, dates and times in Vietnam's time,
masked identifiers, formulas escaped in CSV. Their queries do not grow with the rows."""

from __future__ import annotations

import csv
import datetime as dt
import io
import random
import re
import zipfile

import openpyxl
import pytest
from django.db import connection, transaction
from django.test.utils import CaptureQueriesContext, override_settings
from django.urls import reverse
from django.utils import timezone, translation

from billing.models import Dispute, Invoice
from billing.resources import DisputeResource, InvoiceResource
from core import exports
from crm.models import ExportLog, ExportStatus, Role
from customers.models import Contract, Customer, Meter
from customers.resources import ContractResource, CustomerResource, MeterResource
from tickets.models import Ticket
from tickets.resources import TicketResource
from tickets.services import ticket_open

RESOURCES = [
    (InvoiceResource, Invoice), (DisputeResource, Dispute), (CustomerResource, Customer),
    (ContractResource, Contract), (MeterResource, Meter), (TicketResource, Ticket),
]  # fmt: skip


def by_instances(resource, queryset, native: bool) -> list[list]:
    """The rows as django-import-export makes them: each cell ``export_field`` of a model instance."""
    fields = resource.get_export_fields()
    return [[resource.export_field(f, obj, force_native_type=native) for f in fields] for obj in queryset]


@pytest.mark.parametrize("role", [Role.BILLING_CLERK, Role.AGENT, Role.ADMINISTRATOR])
@pytest.mark.parametrize(("resource_class", "model"), RESOURCES, ids=[r.__name__ for r, _m in RESOURCES])
def test_every_list_exports_the_cells_export_field_gives_from_instances(
    staff, two_customers, role, resource_class, model
):
    user = staff[role]
    resource = resource_class(user=user)
    queryset = model.objects.for_user(user).order_by("-pk")
    assert queryset.exists()
    with translation.override("vi"):
        for native in (False, True):
            assert resource._export_plan(native) is not None  # read as values, not as instances
            assert [list(row) for row in resource.export_rows(queryset, native=native)] == by_instances(
                resource, queryset, native
            )


def test_the_invoice_csv_is_the_one_made_from_instances_cell_for_cell(staff, two_customers):
    mine, _theirs = two_customers
    clerk = staff[Role.BILLING_CLERK]
    resource = InvoiceResource(user=clerk)
    queryset = Invoice.objects.for_user(clerk).order_by("id")
    with translation.override("vi"):
        headers = resource.get_export_headers()
        fast = b"".join(exports.csv_chunks(headers, resource.export_rows(queryset)))
        slow = b"".join(exports.csv_chunks(headers, resource._instance_rows(queryset, False, 2000)))
    assert fast == slow
    rows = list(csv.reader(io.StringIO(fast.decode("utf-8").removeprefix("\ufeff"))))
    assert rows[0][:3] == ["Số", "Loại", "Hợp đồng mua bán điện"]
    assert rows[0][10:13] == ["Số tiền chưa thuế GTGT", "Thuế GTGT", "Tổng cộng"]
    first = Invoice.objects.filter(customer=mine).order_by("id").first()
    cells = dict(zip(rows[0], rows[1], strict=True))
    assert cells["Số"] == first.number
    assert cells["Khách hàng"] == mine.code
    assert cells["Tổng cộng"] == str(first.total)  # whole đồng, no separators
    assert cells["Kỳ hóa đơn"] == "2025-10-01"
    local = timezone.localtime(first.issued_at)
    assert cells["Thời điểm lập"] == local.strftime("%Y-%m-%d %H:%M:%S")  # Vietnam's time


def test_a_cell_a_spreadsheet_would_run_is_escaped_and_phones_and_negative_amounts_are_not(
    staff, make_customer, org
):
    administrator = staff[Role.ADMINISTRATOR]  # sees the phones whole
    make_customer(org["home"], name='=HYPERLINK("http://x")', street="@SUM(A1)", phones=["0903 123 456"])
    make_customer(org["home"], name="Lê Văn Bình", street="-12 Lê Lợi", phones=["0903 123 457"])
    resource = CustomerResource(user=administrator)
    queryset = Customer.objects.order_by("id")
    with translation.override("vi"):
        headers = resource.get_export_headers()
        data = b"".join(exports.csv_chunks(headers, resource.export_rows(queryset)))
        slow = b"".join(exports.csv_chunks(headers, resource._instance_rows(queryset, False, 2000)))
    assert data == slow
    rows = [
        dict(zip(headers, r, strict=True))
        for r in csv.reader(io.StringIO(data.decode().removeprefix("\ufeff")))
    ][1:]
    assert rows[0]["Họ và tên"] == '\'=HYPERLINK("http://x")'
    assert rows[0]["Số nhà, đường phố"] == "'@SUM(A1)"
    assert rows[0]["Số điện thoại"] == "+84903123456"
    assert rows[1]["Số nhà, đường phố"] == "'-12 Lê Lợi"  # text, not a number: escaped
    assert rows[1]["Họ và tên"] == "Lê Văn Bình"
    assert exports._csv_cell("-125000") == "-125000" and exports._csv_cell("+84903123456") == "+84903123456"


def test_the_xlsx_cells_are_the_values_themselves(staff, two_customers):
    mine, _theirs = two_customers
    clerk = staff[Role.BILLING_CLERK]
    resource = InvoiceResource(user=clerk)
    queryset = Invoice.objects.for_user(clerk).order_by("id")
    with translation.override("vi"):
        headers = resource.get_export_headers()
        data = b"".join(exports.xlsx_chunks(headers, resource.export_rows(queryset, native=True)))
    sheet = list(openpyxl.load_workbook(io.BytesIO(data)).worksheets[0].values)
    first = Invoice.objects.filter(customer=mine).order_by("id").first()
    cells = dict(zip(sheet[0], sheet[1], strict=True))
    assert cells["Số"] == first.number
    assert cells["Tổng cộng"] == first.total
    assert cells["Kỳ hóa đơn"] == dt.datetime(2025, 10, 1)
    issued = timezone.localtime(first.issued_at).replace(tzinfo=None)  # Vietnam's time, to the millisecond
    assert abs(cells["Thời điểm lập"] - issued) < dt.timedelta(milliseconds=1)
    assert len(sheet) == queryset.count() + 1


def _queries(user, resource_class, model, chunk_size: int) -> int:
    resource = resource_class(user=user)
    queryset = model.objects.for_user(user).order_by("-pk")
    with override_settings(TONGDAI_EXPORT_CHUNK_SIZE=chunk_size), CaptureQueriesContext(connection) as ctx:
        rows = list(resource.export_rows(queryset))
    assert len(rows) == queryset.count()
    return len(ctx)


@pytest.mark.parametrize(("resource_class", "model"), RESOURCES, ids=[r.__name__ for r, _m in RESOURCES])
def test_the_exports_queries_do_not_grow_with_the_rows(
    staff, org, make_customer, two_customers, resource_class, model
):
    administrator = staff[Role.ADMINISTRATOR]
    few = _queries(administrator, resource_class, model, 2000)
    for n in range(6):
        make_customer(org["home"], name=f"Khách {n}", phones=[f"0903 000 50{n}", f"0903 000 60{n}"])
    assert _queries(administrator, resource_class, model, 2000) == few


@pytest.mark.django_db(transaction=True)
def test_an_export_outside_a_transaction_reads_in_one_it_ends_also_when_stopped_early(
    staff, org, make_customer
):
    """Outside a transaction the export opens one (so PostgreSQL streams the server-side cursor instead of
    storing every row first) and closes it when the rows end or the download stops."""
    for n in range(3):
        make_customer(org["home"], name=f"Khách {n}", phones=[f"0903 000 70{n}"])
    resource = CustomerResource(user=staff[Role.ADMINISTRATOR])
    assert transaction.get_autocommit()
    rows = resource.export_rows(Customer.objects.order_by("id"), chunk_size=1)
    next(rows)
    assert connection.in_atomic_block
    rows.close()
    assert transaction.get_autocommit() and not connection.in_atomic_block
    assert len(list(resource.export_rows(Customer.objects.order_by("id"), chunk_size=1))) == 3
    assert transaction.get_autocommit() and not connection.in_atomic_block


def test_the_csv_is_what_csv_writer_writes_of_the_escaped_cells_whatever_the_cells():
    """Batches of plain text cells are joined by commas without the writer: the same bytes, checked on
    random rows with every character the writer quotes or the escaping looks at, None and numbers."""
    rng = random.Random(3)
    special = ["a", " ", ",", '"', "\r", "\n", "=", "+", "-", "@", "\t", "'", "1", "ệ", "\x00"]

    def cell(plain: bool):
        if not plain and rng.random() < 0.1:
            return rng.choice([None, rng.randint(-5, 5)])
        return "".join(rng.choice("abệ1 " if plain else special) for _ in range(rng.randint(0, 5)))

    for _trial in range(1500):
        plain, width = rng.random() < 0.5, rng.randint(0, 4)
        rows = [[cell(plain) for _ in range(width)] for _ in range(rng.randint(1, 5))]
        expected = io.StringIO()
        expected.write("\ufeff")
        writer = csv.writer(expected)
        writer.writerow(["h"])
        writer.writerows([[exports._csv_cell(v) for v in row] for row in rows])
        assert b"".join(exports.csv_chunks(["h"], iter(rows))) == expected.getvalue().encode(), rows


# A text of more leading apostrophes than Python's recursion limit (a ticket's description takes 4,000
# characters) before a formula: the quoting looked at one apostrophe per call and broke the stream midway.
QUOTES = "'" * 1200 + "=1+1"


@pytest.fixture
def quoted_ticket(catalogue, make_customer, org):
    customer = make_customer(org["home"])
    return ticket_open(
        actor=None, category=catalogue["billing"], channel="app", description=QUOTES, customer=customer
    ).ticket


def _streamed(response) -> bytes:
    assert response.status_code == 200, response.status_code
    return b"".join(response.streaming_content)  # whole, not broken after its first bytes


def test_a_ticket_description_of_many_apostrophes_exports_whole_as_csv(client, staff, quoted_ticket):
    client.force_login(staff[Role.SUPERVISOR])
    client.raise_request_exception = False
    response = client.post(reverse("admin:tickets_ticket_export_all"), {"file_format": "csv"})
    rows = list(csv.reader(io.StringIO(_streamed(response).decode("utf-8").removeprefix("\ufeff"))))
    assert len(rows) == 2
    # the export's rule: a text whose apostrophes come before a formula gets one apostrophe more
    assert "'" + QUOTES in rows[1]
    assert not ExportLog.objects.filter(status=ExportStatus.INCOMPLETE).exists()
    assert ExportLog.objects.get().row_count == 1


def test_a_ticket_description_of_many_apostrophes_exports_whole_as_xlsx(client, staff, quoted_ticket):
    client.force_login(staff[Role.SUPERVISOR])
    client.raise_request_exception = False
    response = client.post(reverse("admin:tickets_ticket_export_all"), {"file_format": "xlsx"})
    with zipfile.ZipFile(io.BytesIO(_streamed(response))) as archive:
        sheet = archive.read("xl/worksheets/sheet1.xml").decode()
    assert "'" + QUOTES in sheet
    assert Ticket.objects.filter(pk=quoted_ticket.pk, description=QUOTES).exists()


def test_a_clerks_own_export_of_such_a_cell_imports_back_unchanged():
    """The imports take the export's quote off again (``unquote_formula``, every row of an admin import)."""
    exported = exports.csv_cell(QUOTES)
    assert exported == "'" + QUOTES  # one apostrophe more
    assert exports.unquote_formula(exported) == QUOTES
    # and a text of apostrophes alone, or before a plain word or a signed number, is left as it is
    for text in ("'" * 5000, "'" * 5000 + "Bác Ba", "'" * 5000 + "+84 903 123 456"):
        assert exports.csv_cell(text) == text
        assert exports.unquote_formula(text) == text


def test_leading_apostrophes_are_read_as_before_whatever_follows_them():
    """The quoting strips the leading apostrophes at once: for any text it decides as looking at them one by
    one did (a reference written here the old way, for texts short enough for it)."""

    def one_by_one(value: str) -> bool:
        while value[:1] == "'":
            value = value[1:]
        if not value:
            return False
        return value[0] in "=@\t\r+-" and (
            value[0] in "=@\t\r" or not re.fullmatch(r"[+-][0-9 .,()/+-]*", value)
        )

    rng = random.Random(7)
    alphabet = ["'", "'", "=", "+", "-", "@", "\t", "\r", "1", " ", ".", "a", "ệ"]
    for _trial in range(3000):
        text = "".join(rng.choice(alphabet) for _ in range(rng.randint(0, 8)))
        assert exports._needs_quote(text) is one_by_one(text), repr(text)
        assert exports.csv_cell(text) == ("'" + text if one_by_one(text) else text)
