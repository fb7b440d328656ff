"""The admin's imports of customers, contracts and meters, as the clerk reads them:

- a column the import does not know (a heading typed differently from the export's, a typo) is named in the
  preview and nothing is written, not dropped in silence while every row is reported "unchanged";
- a CSV that cannot be read is refused saying what is wrong and where, as the readings import says it
  (``billing.imports``: "The file is not UTF-8 text.", "Line 3 has 4 columns where the header has 3."), not
  with the name of a Python exception and a hint to change the format (CSV, which is right);
- a bad row is named by its line in the file, as a spreadsheet opening the CSV numbers it: a blank line above
  it counts (as the readings import counts it), and is no row of the totals;
- a file naming one record on two rows: each row is checked against the record as it is (or as an earlier
  row of the file wrote it), never as an earlier, refused row left it in memory.
"""

from __future__ import annotations

import datetime as dt

import pytest
from django.utils import translation

from crm.models import Role
from customers import services
from customers.models import Contract, Customer
from tests.customers.test_import_export import (
    confirm,
    csv_bytes,
    customer_row,
    preview,
    problems,
)


@pytest.fixture
def clerk(staff):
    return staff[Role.BILLING_CLERK]


@pytest.fixture
def clerk_client(client, clerk):
    client.force_login(clerk)
    return client


# An unknown heading ----------------------------------------------------------------------------------------


def test_imports_a_column_with_an_unknown_heading_is_named_in_the_preview_not_dropped(
    clerk_client, org, make_customer
):
    customer = make_customer(name="Lê Thị Hoa")
    # The clerk's spreadsheet heads the e-mail column "E-mail" (the export says "Email"): the cell is the change.
    previewed = preview(
        clerk_client, "customer", csv_bytes([{"code": customer.code, "E-mail": "hoa@example.vn"}])
    )
    assert problems(previewed) == []
    [said] = previewed.context["base_problems"]
    assert said.startswith(
        "The file has columns this import does not know: E-mail. Head them as the export does ("
    )
    assert "Email" in said and "Full name" in said
    assert "confirm_form" not in previewed.context  # nothing to confirm: the file is refused whole
    customer.refresh_from_db()
    assert customer.email == ""


def test_imports_an_unknown_heading_is_refused_in_a_contracts_file_too_and_blank_headings_are_not(
    clerk_client, org, make_customer
):
    customer = make_customer()
    row = {"number": "", "customer": customer.code, "tariff_category": "residential", "purpose": "Sinh hoạt",
           "start_date": "2025-01-01", "Ghi chu": "x"}  # fmt: skip
    previewed = preview(clerk_client, "contract", csv_bytes([row]))
    [said] = previewed.context["base_problems"]
    assert "Ghi chu" in said
    before = Contract.objects.count()
    # A column without a heading (an empty cell of the header, as a spreadsheet saves a column it was given)
    # is nobody's column: not refused.
    data = csv_bytes([{**{k: v for k, v in row.items() if k != "Ghi chu"}, "": ""}])
    previewed = preview(clerk_client, "contract", data)
    assert previewed.context["base_problems"] == []
    assert Contract.objects.count() == before


# A file that cannot be read ---------------------------------------------------------------------------------


def _file_errors(previewed) -> list[str]:
    return list(previewed.context["form"].errors.get("import_file", []))


def test_imports_a_csv_not_in_utf8_is_refused_saying_so_not_naming_an_exception(clerk_client, org):
    # Excel's plain "CSV" on a Vietnamese Windows writes code page 1258 ("Đ" is the byte 0xD0).
    data = csv_bytes([customer_row(full_name="Đỗ Văn An")]).decode().encode("cp1258", "replace")
    errors = _file_errors(preview(clerk_client, "customer", data))
    assert errors == ["The file is not UTF-8 text: save it as CSV UTF-8 or as XLSX."]
    with translation.override("vi"):
        errors = _file_errors(preview(clerk_client, "customer", data))
    assert len(errors) == 1 and "UTF-8" in errors[0] and "UnicodeDecodeError" not in errors[0]
    assert Customer.objects.count() == 0


def test_imports_a_csv_line_with_a_cell_too_many_is_refused_naming_its_line(clerk_client, org):
    header, good, other, _end = csv_bytes([customer_row(), customer_row(full_name="Bùi Thị Lan")]).split(
        b"\r\n"
    )
    width = len(header.split(b","))
    # line 3 has a note typed one column past the last heading
    data = b"\r\n".join([header, good, other + ",ghi chú".encode(), b""])
    errors = _file_errors(preview(clerk_client, "customer", data))
    assert errors == [f"Line 3 has {width + 1} columns where the header has {width}."]
    assert Customer.objects.count() == 0


def test_imports_a_csv_line_with_a_cell_too_few_is_refused_naming_its_line(clerk_client, org):
    header, good, _end = csv_bytes([customer_row()]).split(b"\r\n")
    width = len(header.split(b","))
    short = b",".join(good.split(b",")[:-1])
    data = b"\r\n".join([header, good, b"", short, b""])  # the short line is line 4: the blank line counts
    errors = _file_errors(preview(clerk_client, "customer", data))
    assert errors == [f"Line 4 has {width - 1} columns where the header has {width}."]
    assert Customer.objects.count() == 0


# Line numbers ---------------------------------------------------------------------------------------------


def test_imports_a_bad_row_after_a_blank_line_is_named_by_its_line_in_the_file(clerk_client, org):
    header, good, bad, _end = csv_bytes([customer_row(), customer_row(customer_type="nope")]).split(b"\r\n")
    # line 1 the header, line 2 a customer, line 3 left blank, line 4 the bad customer type
    data = b"\r\n".join([header, good, b"", bad, b""])
    previewed = preview(clerk_client, "customer", data)
    assert [row for row, _messages in problems(previewed)] == [4]
    # the blank line is no row: neither new, nor updated, nor unchanged
    assert (previewed.context["totals"]["new"], previewed.context["totals"]["skip"]) == (1, 0)
    result = confirm(clerk_client, "customer", previewed, skip_bad_rows=True)
    assert result.context["written"] is True
    assert list(Customer.objects.values_list("full_name", flat=True)) == ["Phạm Văn Bình"]


def test_imports_a_quoted_cell_over_two_lines_is_one_row_and_the_next_keeps_its_number(clerk_client, org):
    rows = [customer_row(street="5 Nguyễn Huệ\nTầng 2"), customer_row(customer_type="nope")]
    previewed = preview(clerk_client, "customer", csv_bytes(rows))
    # the quoted street spans the file's lines 2 and 3: the bad row is the spreadsheet's row 3
    assert [row for row, _messages in problems(previewed)] == [3]
    assert Customer.objects.count() == 0


# One record on two rows -----------------------------------------------------------------------------------


def _signed_contract(org):
    customer = services.customer_create(
        actor=None, unit=org["home"], full_name="Nguyễn Văn An", street="12 Lê Lợi", ward="Phường Bến Nghé"
    )
    signed = services.contract_create(
        actor=None, customer=customer, purpose="Sinh hoạt", start_date=dt.date(2020, 1, 1)
    )
    return customer, signed


def test_imports_a_refused_row_does_not_make_the_next_row_of_the_same_contract_refused(clerk_client, org):
    customer, signed = _signed_contract(org)
    row = {"number": signed.number, "customer": customer.code, "tariff_category": "residential",
           "purpose": "Sinh hoạt", "start_date": "2020-01-01", "end_date": "", "status": ""}  # fmt: skip
    rows = [
        {**row, "purpose": "Kinh doanh"},
        row,
    ]  # line 2 asks a change (refused); line 3 is the contract as it is
    previewed = preview(clerk_client, "contract", csv_bytes(rows))
    assert problems(previewed) == [(2, ["Purpose of use: A signed contract cannot be changed by an import."])]
    assert previewed.context["totals"]["skip"] == 1
    confirm(clerk_client, "contract", previewed, skip_bad_rows=True)
    assert Contract.objects.get().purpose == "Sinh hoạt"


def test_imports_a_refused_customer_row_leaves_the_next_rows_before_as_the_customer_is(
    clerk_client, org, make_customer
):
    customer = make_customer(name="Lê Thị Hoa")
    rows = [
        {"code": customer.code, "customer_type": "nope", "street": "1 Hai Bà Trưng"},  # refused: a bad cell
        {"code": customer.code, "customer_type": "", "street": ""},  # the customer as it is
    ]
    previewed = preview(clerk_client, "customer", csv_bytes(rows))
    assert [row for row, _messages in problems(previewed)] == [2]
    assert previewed.context["totals"]["skip"] == 1
    customer.refresh_from_db()
    street = customer.street
    confirm(clerk_client, "customer", previewed, skip_bad_rows=True)
    customer.refresh_from_db()
    assert customer.street == street != "1 Hai Bà Trưng"


def test_imports_a_written_row_is_what_a_later_row_of_the_same_customer_sees(
    clerk_client, org, make_customer
):
    customer = make_customer(name="Lê Thị Hoa")
    rows = [
        {"code": customer.code, "street": "1 Hai Bà Trưng"},  # written
        {"code": customer.code, "street": "1 Hai Bà Trưng"},  # the same again: unchanged after line 2
    ]
    previewed = preview(clerk_client, "customer", csv_bytes(rows))
    assert problems(previewed) == []
    assert (previewed.context["totals"]["update"], previewed.context["totals"]["skip"]) == (1, 1)
    result = confirm(clerk_client, "customer", previewed)
    assert (result.context["totals"]["update"], result.context["totals"]["skip"]) == (1, 1)
    customer.refresh_from_db()
    assert customer.street == "1 Hai Bà Trưng"
