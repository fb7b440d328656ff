"""Imports that round-trip: every bad cell (a number, a choice, a yes/no, a date) is an error of its row
naming the row, the column's heading and the reason in the clerk's language, never a guess (``1,5`` read as
1) nor a Python error refusing the whole file; and a clerk's own export imports back with every row
unchanged, the CSV export's formula quote taken off again."""

from __future__ import annotations

import csv
import datetime as dt
import decimal
import io

import pytest
from django.urls import reverse
from django.utils import translation
from django.utils.text import capfirst

from core.exports import (
    ChoiceWidget,
    DecimalNumberWidget,
    FloatNumberWidget,
    WholeNumberWidget,
    YesNoWidget,
    _csv_cell,
    unquote_formula,
)
from crm.models import Role
from customers import services
from customers.models import Customer, CustomerEvent, Meter, MeterStatus
from tests.customers.test_import_export import (
    XLSX_FORMAT,
    confirm,
    csv_bytes,
    customer_row,
    preview,
    problems,
)

LANGUAGES = ["vi", "en"]

HOUSEHOLDS = {"vi": "Số hộ dùng chung công tơ", "en": "Households sharing the meter"}
WHOLE = {"vi": "phải là số nguyên, không phải “{}”.", "en": "must be a whole number, not “{}”."}


def whole_number_error(language: str, value: str) -> str:
    return f"{HOUSEHOLDS[language]}: {WHOLE[language].format(value)}"


@pytest.fixture
def speaking(client, staff):
    """The billing clerk's client in a language of the interface (the import page's messages follow it)."""
    client.force_login(staff[Role.BILLING_CLERK])

    def speak(language: str):
        client.cookies["django_language"] = language
        return client

    return speak


# Bad cells are errors of their rows -------------------------------------------------------------------


@pytest.mark.parametrize("language", LANGUAGES)
def test_a_word_or_a_decimal_in_the_households_column_is_an_error_of_its_row_and_nothing_is_written(
    speaking, org, language
):
    client = speaking(language)
    rows = [customer_row(full_name="Chữ", households="abc"), customer_row(full_name="Phẩy", households="1,5")]
    # when the file is previewed
    previewed = preview(client, "customer", csv_bytes(rows))
    # then each row is refused with its spreadsheet row, the column's heading and the reason, in the clerk's
    # language; not the whole file with a Python error
    assert previewed.status_code == 200
    assert problems(previewed) == [
        (2, [whole_number_error(language, "abc")]),
        (3, [whole_number_error(language, "1,5")]),
    ]
    assert previewed.context["base_problems"] == []
    assert dict(previewed.context["totals"]) == {
        "new": 0, "update": 0, "delete": 0, "skip": 0, "error": 0, "invalid": 2,
    }  # fmt: skip
    html = previewed.content.decode()
    assert '<td class="row-number">3</td>' in html
    assert whole_number_error(language, "1,5") in html
    # when the clerk confirms, even ticking "skip the bad rows"
    result = confirm(client, "customer", previewed, skip_bad_rows=True)
    # then nothing is written (1,5 did not become 1 household)
    assert result.status_code == 200
    assert Customer.objects.count() == 0
    assert CustomerEvent.objects.count() == 0
    assert [p["row"] for p in result.context["problems"]] == [2, 3]


@pytest.mark.parametrize("language", LANGUAGES)
def test_good_and_bad_rows_mixed_write_nothing_unless_the_bad_ones_are_skipped(speaking, org, language):
    client = speaking(language)
    rows = [
        customer_row(full_name="Đúng Một", households="2", is_nuisance=""),
        customer_row(full_name="Sai Số Hộ", households="1,5", is_nuisance=""),
        customer_row(full_name="Sai Loại", customer_type="hộ gia đình", is_nuisance=""),
        customer_row(full_name="Sai Cờ", is_nuisance="có lẽ"),
        customer_row(full_name="Đúng Hai", households=" 3 ", customer_type="Kinh doanh", is_nuisance="0"),
    ]
    content = csv_bytes(rows)
    previewed = preview(client, "customer", content)
    with translation.override(language):
        customer_type = Customer._meta.get_field("customer_type").verbose_name
        nuisance = Customer._meta.get_field("is_nuisance").verbose_name
        choices = {
            "vi": "“hộ gia đình” không thuộc các giá trị: residential (Sinh hoạt), business (Kinh doanh), "
            "production (Sản xuất), administrative (Hành chính), other (Khác).",
            "en": "“hộ gia đình” is not one of: residential (Residential), business (Business), "
            "production (Production), administrative (Administrative), other (Other).",
        }[language]
        yes_no = {
            "vi": "phải là 1 (có) hoặc 0 (không), không phải “có lẽ”.",
            "en": "must be 1 (yes) or 0 (no), not “có lẽ”.",
        }[language]
    # then the bad rows are listed, the good ones announced
    assert problems(previewed) == [
        (3, [whole_number_error(language, "1,5")]),
        (4, [f"{capfirst(customer_type)}: {choices}"]),
        (5, [f"{capfirst(nuisance)}: {yes_no}"]),
    ]
    assert previewed.context["totals"]["new"] == 2
    # when the clerk confirms as it is: all or nothing, so nothing
    refused = confirm(client, "customer", previewed)
    assert refused.context["written"] is False
    assert Customer.objects.count() == 0
    # when the clerk ticks "skip the bad rows": the good rows are written, with their values read right
    previewed = preview(client, "customer", content)
    result = confirm(client, "customer", previewed, skip_bad_rows=True)
    assert result.context["written"] is True
    assert list(Customer.objects.order_by("id").values_list("full_name", "households", "customer_type")) == [
        ("Đúng Một", 2, "residential"),
        ("Đúng Hai", 3, "business"),
    ]
    assert [p["row"] for p in result.context["problems"]] == [3, 4, 5]


def test_every_bad_cell_of_a_row_is_listed(speaking, org):
    client = speaking("vi")
    rows = [
        customer_row(households="hai", customer_type="nhà", is_nuisance="?", phones="12; 0903 555 666; 3")
    ]
    previewed = preview(client, "customer", csv_bytes(rows))
    with translation.override("vi"):
        bad_phone = translation.gettext("This does not look like a Vietnamese phone number.")
    assert problems(previewed) == [
        (
            2,
            [
                "Loại khách hàng: “nhà” không thuộc các giá trị: residential (Sinh hoạt), business (Kinh doanh), "
                "production (Sản xuất), administrative (Hành chính), other (Khác).",
                whole_number_error("vi", "hai"),
                "Khách hàng gọi quấy rối: phải là 1 (có) hoặc 0 (không), không phải “?”.",
                f"Số điện thoại: 12: {bad_phone}; 3: {bad_phone}",
            ],
        )
    ]
    assert Customer.objects.count() == 0


@pytest.mark.parametrize("language", LANGUAGES)
def test_every_number_choice_and_date_column_of_contracts_and_meters_gives_errors_of_their_rows(
    speaking, org, language
):
    client = speaking(language)
    customer = services.customer_create(
        actor=None, unit=org["home"], full_name="Nguyễn Văn An", street="12 Lê Lợi", ward="Phường Bến Nghé"
    )
    contract = services.contract_create(
        actor=None, customer=customer, purpose="Sinh hoạt", start_date=dt.date(2020, 1, 1), status="active"
    )
    base = {"number": "", "customer": customer.code, "tariff_category": "residential", "purpose": "Ở",
            "start_date": "2025-03-01", "end_date": "", "status": ""}  # fmt: skip
    rows = [
        {**base, "start_date": "31/02/2025"},
        {**base, "tariff_category": "bậc thang"},
        {**base, "status": "đang chạy"},
    ]
    previewed = preview(client, "contract", csv_bytes(rows))
    vi = language == "vi"
    assert problems(previewed) == [
        (2, ["Ngày bắt đầu: 31/02/2025 không phải là ngày hợp lệ (ghi theo dạng 2025-01-31)." if vi else
             "Start date: 31/02/2025 is not a date (write 2025-01-31)."]),
        (3, ["Loại giá: “bậc thang” không thuộc các giá trị: residential (Sinh hoạt (bậc thang)), business "
             "(Kinh doanh), production (Sản xuất), administrative (Hành chính sự nghiệp)." if vi else
             "Tariff category: “bậc thang” is not one of: residential (Residential (tiered)), business "
             "(Business), production (Production), administrative (Administrative and public services)."]),
        (4, ["Trạng thái: “đang chạy” không thuộc các giá trị: pending (Chờ hiệu lực), active (Đang hiệu "
             "lực), suspended (Tạm ngừng), terminated (Đã thanh lý)." if vi else
             "Status: “đang chạy” is not one of: pending (Pending), active (Active), suspended (Suspended), "
             "terminated (Terminated)."]),
    ]  # fmt: skip
    assert previewed.context["totals"]["error"] == 0

    base = {"unit": "PE0100", "kind": "electronic", "phases": "1", "manufacturer": "EMIC", "status": "",
            "contract": "", "installed_at": "", "reading_at_install": ""}  # fmt: skip
    install = {"contract": contract.number, "installed_at": "2025-03-01 08:30"}
    rows = [
        {**base, "serial": "NEW-0001", "phases": "2"},
        {**base, "serial": "NEW-0002", "kind": "số"},
        {**base, "serial": "NEW-0003", **install, "reading_at_install": "1,5"},
        {**base, "serial": "NEW-0004", **install, "reading_at_install": "mười"},
        {**base, "serial": "NEW-0005", **install, "installed_at": "hôm qua", "reading_at_install": "7"},
        {**base, "serial": "NEW-0006", "phases": "Ba pha", "kind": "Electronic"},
    ]
    previewed = preview(client, "meter", csv_bytes(rows))
    reading = "Chỉ số khi lắp" if vi else "Reading at installation"
    assert problems(previewed) == [
        (2, ["Số pha: “2” không thuộc các giá trị: 1 (Một pha), 3 (Ba pha)." if vi else
             "Phases: “2” is not one of: 1 (Single-phase), 3 (Three-phase)."]),
        (3, ["Loại: “số” không thuộc các giá trị: mechanical (Cơ khí), electronic (Điện tử), remote_read "
             "(Điện tử đo xa)." if vi else
             "Kind: “số” is not one of: mechanical (Mechanical), electronic (Electronic), remote_read "
             "(Remote-read electronic)."]),
        (4, [f"{reading}: {'phải là số nguyên, không phải “1,5”.' if vi else 'must be a whole number, not “1,5”.'}"]),
        (5, [f"{reading}: {'phải là số nguyên, không phải “mười”.' if vi else 'must be a whole number, not “mười”.'}"]),
        (6, ["Ngày lắp đặt: hôm qua không phải là ngày giờ hợp lệ (ghi theo dạng 2025-01-31 08:30)." if vi else
             "Installed at: hôm qua is not a date and time (write 2025-01-31 08:30)."]),
    ]  # fmt: skip
    # a choice written as its label, in any language, is read as the choice
    result = confirm(client, "meter", previewed, skip_bad_rows=True)
    assert result.context["written"] is True
    assert list(Meter.objects.values_list("serial", "phases", "kind", "status")) == [
        ("NEW-0006", 3, "electronic", MeterStatus.IN_STOCK)
    ]


# The widgets ------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("cell", "value"),
    [
        ("12", 12),
        (" 7 ", 7),
        ("-3", -3),
        (5, 5),
        (3.0, 3),
        (decimal.Decimal("4"), 4),
        ("", None),
        (None, None),
    ],
)
def test_a_whole_number_column_reads_digits_and_spreadsheet_whole_numbers(cell, value):
    assert WholeNumberWidget().clean(cell) == value


@pytest.mark.parametrize("cell", ["abc", "1,5", "1.5", "1.000", "1 000", "2.0", 1.5, True, "1e3", "１２"])
def test_a_whole_number_column_refuses_anything_else_in_the_clerks_language(cell):
    for language, message in (("vi", "phải là số nguyên"), ("en", "must be a whole number")):
        with translation.override(language), pytest.raises(ValueError, match=message):
            WholeNumberWidget().clean(cell)


@pytest.mark.parametrize(
    ("cell", "value"),
    [
        ("1,5", "1.5"), ("1.5", "1.5"), ("0,125", "0.125"), ("12,25", "12.25"), ("-2,5", "-2.5"),
        ("1500", "1500"), (2.5, "2.5"), (7, "7"), (decimal.Decimal("3.10"), "3.10"), ("1234,5678", "1234.5678"),
    ],
)  # fmt: skip
def test_a_decimal_column_reads_a_comma_or_a_point_when_it_can_mean_only_one_thing(cell, value):
    assert DecimalNumberWidget().clean(cell) == decimal.Decimal(value)


@pytest.mark.parametrize(
    ("cell", "message"),
    [
        ("1,500", "can be read two ways"), ("1.500", "can be read two ways"), ("1.234,5", "must be a number"),
        ("1,234.5", "must be a number"), ("abc", "must be a number"), ("1,", "must be a number"),
        (float("nan"), "must be a number"), (decimal.Decimal("NaN"), "must be a number"),
    ],
)  # fmt: skip
def test_a_decimal_column_refuses_an_ambiguous_or_grouped_number(cell, message):
    with translation.override("en"), pytest.raises(ValueError, match=message):
        DecimalNumberWidget().clean(cell)
    with translation.override("vi"), pytest.raises(ValueError, match=r"có thể hiểu theo hai cách|phải là số"):
        DecimalNumberWidget().clean(cell)


def test_a_float_column_reads_like_a_decimal_column():
    assert [FloatNumberWidget().clean(c) for c in ("1,5", "0.25", 3, "")] == [1.5, 0.25, 3.0, None]
    with translation.override("vi"), pytest.raises(ValueError, match="có thể hiểu theo hai cách"):
        FloatNumberWidget().clean("2,500")


def test_a_choice_is_read_from_its_value_or_its_label_in_either_language():
    widget = ChoiceWidget([(1, "Single-phase"), (3, "Three-phase")])
    assert [widget.clean(cell) for cell in ("1", 3, 3.0, "three-phase", "")] == [1, 3, 3, 3, ""]
    kinds = ChoiceWidget(Meter._meta.get_field("kind").choices)
    assert [kinds.clean(cell) for cell in ("electronic", "ELECTRONIC", "Điện tử", "Electronic")] == [
        "electronic"
    ] * 4
    with translation.override("vi"), pytest.raises(ValueError, match="“2” không thuộc các giá trị"):
        widget.clean("2")


def test_a_yes_no_column_never_reads_a_word_as_no():
    widget = YesNoWidget()
    assert [widget.clean(c) for c in ("1", "0", 1, 0, True, False, "TRUE", "có", "Không", "")] == [
        True, False, True, False, True, False, True, True, False, None,
    ]  # fmt: skip
    with translation.override("vi"), pytest.raises(ValueError, match="phải là 1 \\(có\\) hoặc 0 \\(không\\)"):
        widget.clean("có lẽ")


@pytest.mark.parametrize(
    "text",
    ["=SUM(A1)", "@cmd", "-Trần", "+Lan", "\tTab", "'=x", "''=x", "'Bác Ba'", "'", "", "+84903000001", "-5",
     "Nguyễn", "'+84903000001"],
)  # fmt: skip
def test_the_import_takes_back_exactly_the_quote_the_csv_export_puts(text):
    assert unquote_formula(_csv_cell(text)) == text


# Export, then import: nothing changes ------------------------------------------------------------------


NAMES = ["=SUM(A1)", "@Bác Ba", "-Trần Văn Tư", "+Lan", "'=HYPERLINK(1)", "'Bác Năm'", "Nguyễn Văn An"]


def export(client, file_format: str) -> bytes:
    response = client.post(reverse("admin:customers_customer_export_all"), {"file_format": file_format})
    return b"".join(response.streaming_content)


@pytest.mark.parametrize("language", LANGUAGES)
@pytest.mark.parametrize("file_format", ["csv", "xlsx"])
def test_an_exported_list_imports_back_with_every_row_unchanged(
    speaking, org, make_customer, language, file_format
):
    client = speaking(language)
    for i, name in enumerate(NAMES):
        make_customer(org["home"], name=name, phones=[f"0903 000 00{i}", f"028 3822 123{i}"])
    before = dict(Customer.objects.values_list("code", "full_name"))
    events = CustomerEvent.objects.count()
    body = export(client, file_format)
    if file_format == "csv":
        # the export quotes what a spreadsheet would run, and a quote before such a text
        cells = [row[2] for row in csv.reader(io.StringIO(body.decode("utf-8").removeprefix("\ufeff")))][1:]
        assert sorted(cells) == sorted(
            [
                "'=SUM(A1)",
                "'@Bác Ba",
                "'-Trần Văn Tư",
                "'+Lan",
                "''=HYPERLINK(1)",
                "'Bác Năm'",
                "Nguyễn Văn An",
            ]
        )
        previewed = preview(client, "customer", body)
    else:
        previewed = preview(client, "customer", body, name="khach.xlsx", file_format=XLSX_FORMAT)
    # then every row is unchanged: nothing to update, the quotes are not written into the names
    assert previewed.context["problems"] == []
    assert dict(previewed.context["totals"]) == {
        "new": 0, "update": 0, "delete": 0, "skip": len(NAMES), "error": 0, "invalid": 0,
    }  # fmt: skip
    result = confirm(client, "customer", previewed)
    assert result.context["written"] is True
    assert dict(Customer.objects.values_list("code", "full_name")) == before
    assert CustomerEvent.objects.count() == events
