"""Customers, contracts and meters in and out of the admin: imports through the services (preview, per-row
errors, all or nothing, "skip the bad rows"), streamed exports of the customer changelist."""

from __future__ import annotations

import csv
import datetime as dt
import io
import unicodedata

import openpyxl
import pytest
from django.conf import settings
from django.core.files.uploadedfile import SimpleUploadedFile
from django.db import connection
from django.http import StreamingHttpResponse
from django.test import override_settings
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils import timezone, translation

from crm.models import Role
from crm.services import staff_create
from customers import services
from customers.models import (
    Contract,
    Customer,
    CustomerEvent,
    CustomerEventKind,
    Meter,
    MeterAssignment,
)
from customers.resources import CustomerResource
from customers.selectors import lookup_customers
from tests.concurrency import in_another_connection
from tests.exported import by_column

CSV_FORMAT, XLSX_FORMAT = "0", "1"  # their places in the import form's format list


@pytest.fixture
def clerk(staff):
    return staff[Role.BILLING_CLERK]


@pytest.fixture
def clerk_client(client, clerk):
    client.force_login(clerk)
    return client


def csv_bytes(rows: list[dict]) -> bytes:
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=list(rows[0]))
    writer.writeheader()
    writer.writerows(rows)
    return out.getvalue().encode("utf-8")


def xlsx_bytes(rows: list[dict]) -> bytes:
    book = openpyxl.Workbook()
    sheet = book.active
    sheet.append(list(rows[0]))
    for row in rows:
        sheet.append(list(row.values()))
    out = io.BytesIO()
    book.save(out)
    return out.getvalue()


def preview(client, model: str, content: bytes, *, name="file.csv", file_format=CSV_FORMAT):
    return client.post(
        reverse(f"admin:customers_{model}_import"),
        {"import_file": SimpleUploadedFile(name, content), "format": file_format, "resource": "0"},
    )


def confirm(client, model: str, previewed, *, skip_bad_rows=False):
    data = dict(previewed.context["confirm_form"].initial)
    if skip_bad_rows:
        data["skip_bad_rows"] = "on"
    return client.post(reverse(f"admin:customers_{model}_process_import"), data)


def customer_row(**values) -> dict:
    row = {
        "code": "",
        "unit": "PE0100",
        "full_name": "Phạm Văn Bình",
        "national_id": "",
        "email": "",
        "street": "5 Nguyễn Huệ",
        "ward": "Phường Bến Nghé",
        "district": "",
        "province": "",
        "customer_type": "residential",
        "households": "1",
        "phones": "0903 555 666",
    }
    row.update(values)
    return row


def problems(response) -> list[tuple[int, list[str]]]:
    return [(p["row"], p["messages"]) for p in response.context["problems"]]


# Imports ----------------------------------------------------------------------------------------------


def test_preview_writes_nothing_and_confirm_writes_every_row_through_the_services(clerk_client, clerk, org):
    rows = [
        customer_row(full_name="Phạm Văn Bình", phones="0903 555 666; 028 3822 1234"),
        customer_row(code="pe01000000077", full_name="Lý Thị Cúc", customer_type="business", phones=""),
    ]
    # when the file is previewed
    previewed = preview(clerk_client, "customer", csv_bytes(rows))
    # then nothing is written and both rows are announced as new
    assert previewed.status_code == 200
    assert Customer.objects.count() == 0
    assert previewed.context["totals"]["new"] == 2
    assert previewed.context["problems"] == []
    # when the clerk confirms
    result = confirm(clerk_client, "customer", previewed)
    # then both customers exist as the services made them: a code, phones normalised, an event by the clerk
    assert result.status_code == 200
    assert result.context["written"] is True
    binh = Customer.objects.get(full_name="Phạm Văn Bình")
    cuc = Customer.objects.get(code="PE01000000077")
    assert binh.code == "PE01000000001"  # the unit's first code: row 2 is written before row 3
    assert binh.unit == org["home"] and cuc.unit == org["home"]
    assert list(binh.phones.order_by("-is_primary", "id").values_list("number", "is_primary")) == [
        ("+84903555666", True),
        ("+842838221234", False),
    ]
    assert cuc.customer_type == "business" and cuc.phones.count() == 0
    assert binh.district == org["home"].district  # the service's default
    assert "pham van binh" in binh.search_text
    assert list(
        CustomerEvent.objects.filter(kind=CustomerEventKind.CREATED)
        .order_by("id")
        .values_list("customer__code", "actor")
    ) == [("PE01000000001", clerk.pk), ("PE01000000077", clerk.pk)]


def test_bad_rows_are_listed_by_row_number_with_their_reasons_and_confirming_writes_nothing(
    clerk_client, org
):
    rows = [
        customer_row(full_name="Đúng Một"),
        customer_row(full_name="Sai Đơn Vị", unit=org["other_company"].code),
        customer_row(full_name="Sai Căn Cước", national_id="12345"),
        customer_row(full_name="Đúng Hai", phones="0903 777 888"),
        customer_row(full_name="Sai Điện Thoại", phones="12"),
    ]
    # when the file is previewed
    previewed = preview(clerk_client, "customer", csv_bytes(rows))
    # then each bad row is named with its spreadsheet row (the header is row 1) and its reason
    assert previewed.status_code == 200
    assert problems(previewed) == [
        (3, [f"Unit: {org['other_company'].code} is not in your units."]),
        (4, ["National ID: A national ID has 12 digits (citizen ID) or 9 digits (old ID card)."]),
        (6, ["Phones: 12: This does not look like a Vietnamese phone number."]),
    ]
    html = previewed.content.decode()
    assert '<td class="row-number">3</td>' in html
    assert f"Unit: {org['other_company'].code} is not in your units." in html
    assert "skip_bad_rows" in html  # the confirm step is offered, with the box to tick
    # when the clerk confirms without ticking "skip the bad rows"
    result = confirm(clerk_client, "customer", previewed)
    # then nothing at all is written, and the page says why
    assert result.status_code == 200
    assert result.context["written"] is False
    assert Customer.objects.count() == 0
    assert CustomerEvent.objects.count() == 0
    assert [p["row"] for p in result.context["problems"]] == [3, 4, 6]
    assert "Nothing was written" in result.content.decode()


def test_skipping_the_bad_rows_writes_the_others_and_lists_the_skipped_ones(clerk_client, org):
    rows = [
        customer_row(full_name="Đúng Một"),
        customer_row(full_name="Sai Đơn Vị", unit=org["other_company"].code),
        customer_row(full_name="Đúng Hai", phones="0903 777 888"),
        customer_row(full_name="", street=""),
    ]
    previewed = preview(clerk_client, "customer", csv_bytes(rows))
    # when the clerk ticks "skip the bad rows" and confirms
    result = confirm(clerk_client, "customer", previewed, skip_bad_rows=True)
    # then the good rows are written and the skipped ones are listed with their numbers and reasons
    assert result.status_code == 200
    assert result.context["written"] is True
    assert sorted(Customer.objects.values_list("full_name", flat=True)) == ["Đúng Hai", "Đúng Một"]
    assert problems(result) == [
        (3, [f"Unit: {org['other_company'].code} is not in your units."]),
        (
            5,
            [
                "Full name: This field cannot be blank.",
                "House number and street: This field cannot be blank.",
            ],
        ),
    ]
    html = result.content.decode()
    assert "These rows were skipped" in html
    assert "is not in your units" in html


def test_an_existing_customer_is_updated_by_customer_update_and_gains_new_phones(clerk_client, clerk, org):
    customer = services.customer_create(
        actor=None, unit=org["home"], full_name="Nguyễn Văn An", street="12 Lê Lợi", ward="Phường Bến Nghé",
        email="an@example.vn", phones=["0903 123 456"],
    )  # fmt: skip
    untouched = services.customer_create(
        actor=None, unit=org["home"], full_name="Trần Thị Hân", street="1 Hai Bà Trưng", ward="Phường Đa Kao"
    )
    rows = [
        # new street, email left blank (a blank cell changes nothing), a second phone
        customer_row(
            code=customer.code,
            full_name="Nguyễn Văn An",
            street="99 Lê Lợi",
            email="",
            phones="0903 123 456, 0912 000 111",
        ),
        # exactly as stored: reported unchanged
        customer_row(
            code=untouched.code,
            full_name="Trần Thị Hân",
            street="1 Hai Bà Trưng",
            ward="Phường Đa Kao",
            district=untouched.district,
            province=untouched.province,
            phones="",
        ),
    ]
    previewed = preview(clerk_client, "customer", csv_bytes(rows))
    assert previewed.context["totals"]["update"] == 1
    assert previewed.context["totals"]["skip"] == 1
    result = confirm(clerk_client, "customer", previewed)
    assert result.context["written"] is True
    customer.refresh_from_db()
    assert customer.street == "99 Lê Lợi"
    assert customer.email == "an@example.vn"
    assert sorted(customer.phones.values_list("number", flat=True)) == ["+84903123456", "+84912000111"]
    update = CustomerEvent.objects.get(customer=customer, kind=CustomerEventKind.UPDATED)
    assert (update.actor, update.before, update.after) == (
        clerk,
        {"street": "12 Lê Lợi"},
        {"street": "99 Lê Lợi"},
    )
    assert CustomerEvent.objects.filter(customer=customer, kind=CustomerEventKind.PHONE_ADDED).count() == 1
    assert (
        not CustomerEvent.objects.filter(customer=untouched).exclude(kind=CustomerEventKind.CREATED).exists()
    )


def test_the_nuisance_flag_and_the_unit_cannot_be_changed_by_an_import(clerk_client, org):
    customer = services.customer_create(
        actor=None, unit=org["home"], full_name="Nguyễn Văn An", street="12 Lê Lợi", ward="Phường Bến Nghé"
    )
    rows = [
        customer_row(full_name="Mới", is_nuisance="1"),
        customer_row(code=customer.code, full_name="Nguyễn Văn An", is_nuisance="1"),
        customer_row(code=customer.code, full_name="Nguyễn Văn An", unit=org["sibling"].code),
        customer_row(full_name="Không cờ", is_nuisance="0"),
    ]
    previewed = preview(clerk_client, "customer", csv_bytes(rows))
    flag = "Nuisance caller: The nuisance flag is set and cleared on the customer card, not by an import."
    assert problems(previewed) == [
        (2, [flag]),
        (3, [flag]),
        (4, [f"Unit: {org['sibling'].code} is not in your units."]),
    ]
    result = confirm(clerk_client, "customer", previewed, skip_bad_rows=True)
    assert list(Customer.objects.order_by("id").values_list("full_name", "is_nuisance")) == [
        ("Nguyễn Văn An", False),
        ("Không cờ", False),
    ]
    assert [p["row"] for p in result.context["problems"]] == [2, 3, 4]


def test_a_supervisor_serving_two_units_cannot_move_a_customer_between_them(client, org, make_staff):
    supervisor = make_staff(Role.BILLING_CLERK, [org["home"], org["sibling"]])
    customer = services.customer_create(
        actor=None, unit=org["home"], full_name="Nguyễn Văn An", street="12 Lê Lợi", ward="Phường Bến Nghé"
    )
    client.force_login(supervisor)
    rows = [customer_row(code=customer.code, full_name="Nguyễn Văn An", unit=org["sibling"].code)]
    previewed = preview(client, "customer", csv_bytes(rows))
    assert problems(previewed) == [(2, ["Unit: A customer cannot move to another unit by an import."])]


def test_another_units_customer_is_never_changed_by_an_import(clerk_client, org, make_customer):
    theirs = make_customer(org["other_corporation"], name="Trần Thị Hân")
    rows = [customer_row(code=theirs.code, full_name="Đổi Tên", unit=org["home"].code)]
    previewed = preview(clerk_client, "customer", csv_bytes(rows))
    result = confirm(clerk_client, "customer", previewed, skip_bad_rows=True)
    theirs.refresh_from_db()
    assert theirs.full_name == "Trần Thị Hân"
    assert problems(result) == [
        (2, [f"Customer code: A customer code of unit {org['home'].code} starts with {org['home'].code}."])
    ]


def test_an_xlsx_file_imports_like_a_csv(clerk_client, org):
    rows = [customer_row(full_name="Từ Excel", households=2, phones=903123456)]
    previewed = preview(
        clerk_client, "customer", xlsx_bytes(rows), name="khach.xlsx", file_format=XLSX_FORMAT
    )
    assert previewed.context["problems"] == []
    result = confirm(clerk_client, "customer", previewed)
    assert result.context["written"] is True
    customer = Customer.objects.get()
    assert (customer.full_name, customer.households) == ("Từ Excel", 2)
    assert list(customer.phones.values_list("number", flat=True)) == ["+84903123456"]


def test_an_unreadable_file_is_a_form_error_not_a_500(clerk_client, org):
    response = preview(clerk_client, "customer", b"\xff\xfe\x00garbage", file_format=XLSX_FORMAT)
    assert response.status_code == 200
    assert response.context["form"].errors["import_file"]
    assert Customer.objects.count() == 0


@override_settings(TONGDAI_IMPORT_MAX_ROWS=2)
def test_a_file_over_the_row_limit_is_refused_whole(clerk_client, org):
    rows = [customer_row(full_name=f"Khách {i}") for i in range(3)]
    previewed = preview(clerk_client, "customer", csv_bytes(rows))
    assert previewed.status_code == 200
    assert previewed.context["base_problems"] == [
        "The file has 3 rows; an import takes at most 2. Split the file."
    ]
    assert "confirm_form" not in previewed.context
    assert Customer.objects.count() == 0


def test_a_column_given_twice_is_refused_whole_not_half_read(clerk_client, org):
    content = (
        "code,unit,full_name,street,ward,phones,phones\n"
        ",PE0100,Phạm Văn Bình,5 Nguyễn Huệ,Phường Bến Nghé,0903 555 666,0903 555 777\n"
    ).encode()
    previewed = preview(clerk_client, "customer", content)
    assert previewed.status_code == 200
    assert previewed.context["base_problems"] == ["A column appears twice in the header: phones."]
    assert "confirm_form" not in previewed.context
    assert Customer.objects.count() == 0


def test_only_staff_who_may_add_or_change_customers_may_import(client, staff, org):
    client.force_login(staff[Role.AGENT])
    assert client.get(reverse("admin:customers_customer_import")).status_code == 403
    client.force_login(staff[Role.BILLING_CLERK])
    assert client.get(reverse("admin:customers_customer_import")).status_code == 200
    changelist = client.get(reverse("admin:customers_customer_changelist")).content.decode()
    assert reverse("admin:customers_customer_import") in changelist
    assert reverse("admin:customers_customer_export_all") in changelist


def test_contracts_are_signed_by_the_service_and_their_status_is_not_imported(clerk_client, clerk, org):
    customer = services.customer_create(
        actor=None, unit=org["home"], full_name="Nguyễn Văn An", street="12 Lê Lợi", ward="Phường Bến Nghé"
    )
    signed = services.contract_create(
        actor=None, customer=customer, purpose="Sinh hoạt", start_date=dt.date(2020, 1, 1)
    )
    base = {
        "number": "",
        "customer": customer.code,
        "tariff_category": "residential",
        "purpose": "Kinh doanh",
    }
    rows = [
        {**base, "start_date": "2025-03-01", "end_date": "", "status": "active"},
        {**base, "start_date": "01/04/2025", "end_date": "", "status": ""},
        {**base, "start_date": "2025-05-01", "end_date": "", "status": "terminated"},
        {**base, "start_date": "2025-06-01", "end_date": "2025-07-01", "status": ""},
        {**base, "number": signed.number, "purpose": "Sinh hoạt", "start_date": "2020-01-01", "end_date": "",
         "status": "pending"},
        {**base, "number": signed.number, "purpose": "Đổi mục đích", "start_date": "2020-01-01",
         "end_date": "", "status": "suspended"},
        {**base, "customer": "PE02000000001", "start_date": "2025-03-01", "end_date": "", "status": ""},
        {**base, "start_date": "31/31/2025", "end_date": "", "status": ""},
    ]  # fmt: skip
    previewed = preview(clerk_client, "contract", csv_bytes(rows))
    assert problems(previewed) == [
        (
            4,
            [
                "Status: A new contract is pending or active; suspend or terminate it with the contract actions."
            ],
        ),
        (5, ["End date: The end date is set when the contract is terminated."]),
        (
            7,
            [
                "Purpose of use: A signed contract cannot be changed by an import.",
                "Status: A contract's status changes through the contract actions, not by an import.",
            ],
        ),
        (8, ["Customer: There is no customer PE02000000001."]),
        (9, ["Start date: 31/31/2025 is not a date (write 2025-01-31)."]),
    ]
    assert previewed.context["totals"]["skip"] == 1  # row 6: the signed contract as it is
    result = confirm(clerk_client, "contract", previewed, skip_bad_rows=True)
    assert result.context["written"] is True
    assert list(Contract.objects.order_by("id").values_list("number", "start_date", "status", "purpose")) == [
        (signed.number, dt.date(2020, 1, 1), "pending", "Sinh hoạt"),
        (f"{customer.code}-02", dt.date(2025, 3, 1), "active", "Kinh doanh"),
        (f"{customer.code}-03", dt.date(2025, 4, 1), "pending", "Kinh doanh"),
    ]
    assert list(
        CustomerEvent.objects.filter(kind=CustomerEventKind.CONTRACT_CREATED, actor=clerk).values_list(
            "after__contract", flat=True
        )
    ) == [f"{customer.code}-02", f"{customer.code}-03"]


def test_meters_are_registered_and_installed_by_the_services_and_their_status_is_not_imported(
    clerk_client, org
):
    customer = services.customer_create(
        actor=None, unit=org["home"], full_name="Nguyễn Văn An", street="12 Lê Lợi", ward="Phường Bến Nghé"
    )
    contract = services.contract_create(
        actor=None, customer=customer, purpose="Sinh hoạt", start_date=dt.date(2020, 1, 1), status="active"
    )
    stocked = services.meter_register(actor=None, unit=org["home"], serial="KHO-0001", kind="electronic")
    base = {"unit": "PE0100", "kind": "electronic", "phases": "1", "manufacturer": "EMIC", "status": ""}
    none = {"contract": "", "installed_at": "", "reading_at_install": ""}
    rows = [
        {**base, "serial": "new-0001", **none},
        {**base, "serial": "NEW-0002", "contract": contract.number, "installed_at": "2025-03-01 08:30",
         "reading_at_install": "12"},
        {**base, "serial": "NEW-0003", **none, "status": "faulty"},
        {**base, "serial": "NEW-0004", "unit": org["other_company"].code, **none},
        {**base, "serial": "NEW-0005", "contract": contract.number, "installed_at": "",
         "reading_at_install": ""},
        {**base, "serial": stocked.serial, "kind": "electronic", "phases": "1", "manufacturer": "",
         "contract": "", "installed_at": "", "reading_at_install": "", "status": "in_stock"},
    ]  # fmt: skip
    previewed = preview(clerk_client, "meter", csv_bytes(rows))
    assert problems(previewed) == [
        (4, ["Status: A meter's status follows its installation and removal; an import cannot set it."]),
        (5, [f"Unit: {org['other_company'].code} is not in your units."]),
        (
            6,
            [  # row 2 hangs NEW-0002 on that contract first
                f"Contract: Contract {contract.number} already has meter NEW-0002 installed; remove it first.",
                "Installed at: Give the time the meter was installed.",
                "Reading at installation: Give the meter's reading at install.",
            ],
        ),
    ]
    assert (previewed.context["totals"]["new"], previewed.context["totals"]["skip"]) == (2, 1)
    result = confirm(clerk_client, "meter", previewed, skip_bad_rows=True)
    assert result.context["written"] is True
    assert list(Meter.objects.order_by("id").values_list("serial", "status")) == [
        ("KHO-0001", "in_stock"),
        ("NEW-0001", "in_stock"),
        ("NEW-0002", "installed"),
    ]
    assignment = MeterAssignment.objects.get()
    assert (assignment.meter.serial, assignment.contract, assignment.reading_at_install) == (
        "NEW-0002",
        contract,
        12,
    )
    assert timezone.localtime(assignment.installed_at).strftime("%Y-%m-%d %H:%M") == "2025-03-01 08:30"


def test_a_meter_in_stock_is_installed_by_an_import_naming_its_contract(clerk_client, org):
    customer = services.customer_create(
        actor=None, unit=org["home"], full_name="Nguyễn Văn An", street="12 Lê Lợi", ward="Phường Bến Nghé"
    )
    contract = services.contract_create(
        actor=None, customer=customer, purpose="Sinh hoạt", start_date=dt.date(2020, 1, 1), status="active"
    )
    meter = services.meter_register(actor=None, unit=org["home"], serial="KHO-0001", kind="electronic")
    rows = [{"serial": meter.serial, "contract": contract.number, "installed_at": "2025-03-01 08:30",
             "reading_at_install": "7"}]  # fmt: skip
    previewed = preview(clerk_client, "meter", csv_bytes(rows))
    assert previewed.context["totals"]["update"] == 1
    confirm(clerk_client, "meter", previewed)
    meter.refresh_from_db()
    assert meter.status == "installed"
    assert MeterAssignment.objects.get().contract == contract


# Exports ----------------------------------------------------------------------------------------------


def export(client, query: str = "", file_format: str = "csv"):
    return client.post(reverse("admin:customers_customer_export_all") + query, {"file_format": file_format})


def read_csv(response) -> list[dict]:
    body = b"".join(response.streaming_content).decode("utf-8")
    assert body.startswith("\ufeff")
    return by_column(csv.DictReader(io.StringIO(body[1:])))


def test_the_export_holds_only_the_users_units_with_natural_keys(clerk_client, org, make_customer):
    mine = make_customer(org["home"], name="Của Tôi", phones=["0903 111 222", "0903 111 333"])
    make_customer(org["other_company"], name="Của Họ", phones=["0903 333 444"])
    response = export(clerk_client)
    assert isinstance(response, StreamingHttpResponse)
    assert response["Content-Type"] == "text/csv; charset=utf-8"
    rows = read_csv(response)
    assert rows == [
        {
            "code": mine.code,
            "unit": "PE0100",
            "full_name": "Của Tôi",
            "national_id": "",
            "email": "",
            "street": "12 Lê Lợi",
            "ward": "Phường Bến Nghé",
            "district": mine.district,
            "province": mine.province,
            "customer_type": "residential",
            "households": "1",
            "phones": "+84903111222, +84903111333",
            "is_nuisance": "0",
            "created_at": timezone.localtime(mine.created_at).strftime("%Y-%m-%d %H:%M:%S"),
            "updated_at": timezone.localtime(mine.updated_at).strftime("%Y-%m-%d %H:%M:%S"),
        }
    ]


def test_the_export_honours_the_changelist_filters(client, org, make_staff, make_customer):
    supervisor = make_staff(Role.SUPERVISOR, [org["home"]])  # sees every unit of the company
    home = make_customer(org["home"], name="Nhà", phones=["0903 000 001"])
    sibling = make_customer(org["sibling"], name="Bên Cạnh", phones=["0903 000 002"])
    business = make_customer(
        org["sibling"], name="Doanh Nghiệp", phones=["0903 000 003"], customer_type="business"
    )
    make_customer(org["other_company"], name="Công Ty Khác", phones=["0903 000 004"])
    client.force_login(supervisor)
    everything = read_csv(export(client))
    assert sorted(r["code"] for r in everything) == sorted([home.code, sibling.code, business.code])
    by_unit = read_csv(export(client, f"?unit={org['sibling'].pk}"))
    assert [r["code"] for r in by_unit] == [
        business.code,
        sibling.code,
    ]  # the changelist's order: newest first
    by_type = read_csv(export(client, f"?unit={org['sibling'].pk}&customer_type__exact=business"))
    assert [r["code"] for r in by_type] == [business.code]
    searched = read_csv(export(client, "?q=doanh+nghiep"))
    assert [r["code"] for r in searched] == [business.code]


def test_the_export_streams_reading_the_rows_in_chunks(clerk_client, org, make_customer):
    made = [make_customer(org["home"], name=f"Khách {i}", phones=[f"0903 000 00{i}"]) for i in range(5)]
    with override_settings(TONGDAI_EXPORT_CHUNK_SIZE=2):
        # when the export is asked for, nothing is read yet: the rows are read while the body is sent
        with CaptureQueriesContext(connection) as asked:
            response = export(clerk_client)
        assert not any("customers_customer" in q["sql"] and "phone" not in q["sql"] for q in asked)
        with CaptureQueriesContext(connection) as sent:
            rows = read_csv(response)
    assert [r["code"] for r in rows] == [c.code for c in reversed(made)]
    # The phones come with the rows (a subquery of the one SELECT), never a query of their own.
    assert not [q for q in sent if q["sql"].lstrip().startswith('SELECT "customers_customerphone"')]
    assert [r["phones"][-3:] for r in rows] == [f"00{i}" for i in reversed(range(5))]


def test_the_exported_phones_come_primary_first_then_in_the_order_they_were_added(clerk_client, org, make_customer):
    customer = make_customer(org["home"], phones=["0903 000 111", "0903 000 222", "0903 000 333"])
    customer.phones.update(is_primary=False)
    customer.phones.filter(number="+84903000333").update(is_primary=True)
    other = make_customer(org["home"], name="Không Số", phones=[])
    rows = {r["code"]: r for r in read_csv(export(clerk_client))}
    assert [p[-3:] for p in rows[customer.code]["phones"].split(", ")] == ["333", "111", "222"]
    assert rows[other.code]["phones"] == ""


def test_the_xlsx_export_opens_in_openpyxl_with_the_right_rows(clerk_client, org, make_customer):
    mine = make_customer(org["home"], name="Của Tôi", phones=["0903 111 222"], customer_type="business")
    make_customer(org["other_company"], name="Của Họ", phones=["0903 333 444"])
    response = export(clerk_client, file_format="xlsx")
    assert isinstance(response, StreamingHttpResponse)
    assert response["Content-Disposition"].startswith('attachment; filename="customers-')
    book = openpyxl.load_workbook(io.BytesIO(b"".join(response.streaming_content)))
    rows = list(book.worksheets[0].values)
    assert rows[0] == tuple(CustomerResource().get_export_headers())
    assert len(rows) == 2
    (row,) = by_column([dict(zip(rows[0], rows[1], strict=True))])
    assert (row["code"], row["unit"], row["full_name"], row["customer_type"]) == (
        mine.code,
        "PE0100",
        "Của Tôi",
        "business",
    )
    assert (row["households"], row["is_nuisance"], row["phones"]) == (1, False, "+84903111222")
    # a spreadsheet keeps times to the millisecond or so
    assert abs(row["created_at"] - timezone.localtime(mine.created_at).replace(tzinfo=None)) < dt.timedelta(
        milliseconds=5
    )


def test_the_export_selected_actions_export_the_chosen_rows(clerk_client, org, make_customer):
    one = make_customer(org["home"], name="Một", phones=["0903 000 001"])
    make_customer(org["home"], name="Hai", phones=["0903 000 002"])
    response = clerk_client.post(
        reverse("admin:customers_customer_changelist"),
        {"action": "export_selected_csv", "_selected_action": [one.pk]},
    )
    assert isinstance(response, StreamingHttpResponse)
    assert [r["code"] for r in read_csv(response)] == [one.code]


def test_an_exported_file_imports_back_as_unchanged_rows(clerk_client, org, make_customer):
    make_customer(org["home"], name="Một", phones=["0903 000 001"])
    make_customer(org["home"], name="Hai", phones=["0903 000 002", "0903 000 003"])
    body = b"".join(export(clerk_client).streaming_content)
    previewed = preview(clerk_client, "customer", body)
    assert previewed.context["problems"] == []
    assert dict(previewed.context["totals"]) == {
        "new": 0, "update": 0, "delete": 0, "skip": 2, "error": 0, "invalid": 0,
    }  # fmt: skip


def test_the_export_needs_the_view_permission(client, org):
    nobody = staff_create(
        actor=None,
        username="no-role", password="s3cret-pass-word", role=Role.AGENT, badge_number="9999", units=[]
    )
    nobody.groups.clear()
    client.force_login(nobody)
    assert client.get(reverse("admin:customers_customer_export_all")).status_code == 403
    assert export(client).status_code == 403


def test_the_export_page_offers_the_formats_and_keeps_the_filters(clerk_client, org):
    response = clerk_client.get(
        reverse("admin:customers_customer_export_all") + "?customer_type__exact=business"
    )
    assert response.status_code == 200
    html = response.content.decode()
    assert 'action="?customer_type__exact=business"' in html
    assert [c[0] for c in response.context["form"].fields["file_format"].choices] == ["csv", "xlsx"]


def test_a_bad_filter_sends_the_export_back_to_the_list(clerk_client, org):
    response = export(clerk_client, "?no_such_field=1")
    assert response.status_code == 302
    assert response["Location"].endswith("?e=1")


def test_the_export_is_headed_in_the_interface_language_and_imports_back_in_either(
    clerk_client, org, make_customer
):
    make_customer(org["home"], name="Một", phones=["0903 000 001"])
    clerk_client.cookies["django_language"] = "vi"
    body = b"".join(export(clerk_client).streaming_content)
    headings = next(csv.reader(io.StringIO(body.decode("utf-8").removeprefix("\ufeff"))))
    with translation.override("vi"):
        expected = CustomerResource().get_export_headers()
    assert headings == expected
    assert "Đơn vị" in headings and "Số điện thoại" in headings and "code" not in headings
    for language in ("vi", "en"):  # the clerk's interface may be in either language when importing it
        clerk_client.cookies["django_language"] = language
        previewed = preview(clerk_client, "customer", body)
        assert previewed.context["problems"] == []
        assert dict(previewed.context["totals"])["skip"] == 1, language


def test_export_all_matching_a_search_writes_every_match_not_the_best_the_page_shows(
    clerk_client, org, make_customer, settings
):
    """The list's search shows the best matches (the caller lookup, bounded); "export all matching customers"
    with that search writes every customer the search finds, by the same way of reading the text."""
    settings.TONGDAI_LOOKUP_LIMIT = 2
    names = [make_customer(org["home"], name="Trần Văn Bình", street=f"{i} Lê Lợi", phones=[]) for i in range(3)]
    make_customer(org["home"], name="Trần Văn Bảo", street="9 Lê Lợi", phones=[])  # not a match
    elsewhere = make_customer(org["other_corporation"], name="Trần Văn Bình", phones=[])  # not the clerk's
    page = clerk_client.get(reverse("admin:customers_customer_changelist"), {"q": "Trần Văn Bình"})
    assert len(page.context["cl"].result_list) == 2  # the page: the best two, with a note that more match
    rows = read_csv(export(clerk_client, "?q=Trần Văn Bình"))
    assert sorted(r["code"] for r in rows) == sorted(c.code for c in names)
    assert elsewhere.code not in {r["code"] for r in rows}
    # An identifier is read as the lookup reads it: the phone's customer only.
    caller = make_customer(org["home"], name="Lê Thị Hoa", phones=["0903 222 333"])
    assert [r["code"] for r in read_csv(export(clerk_client, "?q=0903222333"))] == [caller.code]


def test_an_unusable_search_sends_the_export_back_to_the_list(clerk_client, org):
    assert export(clerk_client, "?q=%20%2C%2C").status_code == 302


def test_a_file_imported_back_refuses_a_row_whose_customer_somebody_changed_since_the_export(
    clerk_client, clerk, org, make_customer, make_staff
):
    """Clerk A exports the customers to fix a street in a spreadsheet; meanwhile clerk B corrects a customer's
    e-mail on its page. A's file imported back would put the old e-mail back: its row is refused with the
    reason (as the customer's page refuses a stale save), and the other rows are imported as usual."""
    changed = make_customer(org["home"], name="Nguyễn Văn An", phones=[])
    untouched = make_customer(org["home"], name="Lê Thị Hoa", phones=[])
    services.customer_update(actor=None, customer=changed, changes={"email": "an.cu@example.vn"})
    an_hour_ago = timezone.now() - dt.timedelta(hours=1)
    Customer.objects.update(updated_at=an_hour_ago)  # the last change before the export
    rows = read_csv(export(clerk_client))
    assert {r["code"] for r in rows} == {changed.code, untouched.code} and all(r["updated_at"] for r in rows)
    other_clerk = make_staff(Role.BILLING_CLERK, [org["home"]])
    services.customer_update(actor=other_clerk, customer=changed, changes={"email": "an.moi@example.vn"})
    for row in rows:
        row["street"] = "99 Lê Lợi"
    previewed = preview(clerk_client, "customer", csv_bytes(rows))
    (row_number, messages), = problems(previewed)
    assert "after the file was exported" in messages[0]
    assert rows[row_number - 2]["code"] == changed.code
    # A spreadsheet program that kept only the minute: the same rule, at the minute.
    by_minute = [dict(r, updated_at=r["updated_at"][:16]) for r in rows]
    assert problems(preview(clerk_client, "customer", csv_bytes(by_minute))) == [(row_number, messages)]
    confirm(clerk_client, "customer", previewed, skip_bad_rows=True)
    changed.refresh_from_db()
    untouched.refresh_from_db()
    assert (changed.email, untouched.street) == ("an.moi@example.vn", "99 Lê Lợi")
    assert changed.street != "99 Lê Lợi"


def test_a_file_naming_one_customer_twice_is_not_refused_as_changed_by_somebody_else(clerk_client, org, make_customer):
    customer = make_customer(org["home"], name="Nguyễn Văn An", phones=[])
    (row,) = read_csv(export(clerk_client))
    first = dict(row, street="1 Lê Lợi")
    second = dict(first, email="an@example.vn")
    previewed = preview(clerk_client, "customer", csv_bytes([first, second]))
    assert problems(previewed) == []
    confirm(clerk_client, "customer", previewed)
    customer.refresh_from_db()
    assert (customer.street, customer.email) == ("1 Lê Lợi", "an@example.vn")


MEANWHILE = (
    "Updated at: Somebody changed this customer at {at:%d/%m/%Y %H:%M:%S}, while this file was being imported; "
    "nothing of this row was written. Export the customer again and make the change there."
)


def _saved_meanwhile(monkeypatch, save) -> dict:
    """``save`` (another clerk's) runs once, right after the import read the customer and checked its row."""
    original = CustomerResource.check_row
    done: dict = {}

    def check_row_then_another_clerk_saves(self, instance, row, **kw):
        plan = original(self, instance, row, **kw)
        if not done:
            done.update(save(instance))
        return plan

    monkeypatch.setattr(CustomerResource, "check_row", check_row_then_another_clerk_saves)
    return done


def _street_only(customer) -> list[dict]:
    # A file that only moves the customer to a new street (the e-mail cell left blank: "change nothing").
    return [customer_row(code=customer.code, unit="PE0100", full_name="Nguyễn Văn An", street="99 Lê Lợi",
                         email="", phones="0903 123 456")]  # fmt: skip


def test_an_import_row_sets_only_its_cells_and_is_refused_when_the_customer_changed_while_importing(
    clerk_client, staff, org, monkeypatch
):
    """The import read the customer, then a clerk saved a new e-mail before the import wrote its row: the row
    (which does not touch the e-mail) is refused as changed meanwhile, nothing of it written, the e-mail kept."""
    customer = services.customer_create(
        actor=None, unit=org["home"], full_name="Nguyễn Văn An", street="12 Lê Lợi", ward="Phường Bến Nghé",
        email="an@example.vn", phones=["0903 123 456"],
    )  # fmt: skip
    previewed = preview(clerk_client, "customer", csv_bytes(_street_only(customer)))
    assert problems(previewed) == []
    _saved_meanwhile(monkeypatch, lambda instance: {"saved": services.customer_update(
        actor=staff[Role.SUPERVISOR], customer=Customer.objects.get(pk=instance.pk),
        changes={"email": "an.moi@example.vn"}, reason="Khách báo e-mail mới",
    )})  # fmt: skip
    # (skipping the bad rows: the clerk's save, made in the import's own connection here, is kept with them)
    confirmed = confirm(clerk_client, "customer", previewed, skip_bad_rows=True)
    assert confirmed.context["written"] is True
    customer.refresh_from_db()
    assert (customer.email, customer.street) == ("an.moi@example.vn", "12 Lê Lợi")
    assert problems(confirmed) == [(2, [MEANWHILE.format(at=timezone.localtime(customer.updated_at))])]
    assert not customer.events.filter(kind=CustomerEventKind.UPDATED, actor=staff[Role.BILLING_CLERK]).exists()


def test_an_import_row_without_a_change_meanwhile_writes_only_the_columns_it_sets(clerk_client, org):
    customer = services.customer_create(
        actor=None, unit=org["home"], full_name="Nguyễn Văn An", street="12 Lê Lợi", ward="Phường Bến Nghé",
        email="an@example.vn", phones=["0903 123 456"],
    )  # fmt: skip
    rows = [{"code": customer.code, "street": "99 Lê Lợi", "email": ""}]  # no unit, ward… column at all
    previewed = preview(clerk_client, "customer", csv_bytes(rows))
    assert problems(previewed) == []
    confirm(clerk_client, "customer", previewed)
    customer.refresh_from_db()
    assert (customer.street, customer.email, customer.ward) == ("99 Lê Lợi", "an@example.vn", "Phường Bến Nghé")
    (event,) = customer.events.filter(kind=CustomerEventKind.UPDATED)
    assert (event.before, event.after) == ({"street": "12 Lê Lợi"}, {"street": "99 Lê Lợi"})


on_postgres = pytest.mark.skipif(
    "postgresql" not in settings.DATABASES["default"]["ENGINE"], reason="two connections at once: PostgreSQL"
)


@on_postgres
def test_an_import_confirmed_while_a_clerk_saves_the_customer_does_not_put_back_what_the_clerk_changed(
    transactional_db, client, staff, org, monkeypatch
):
    """The same with the clerk's save in another connection (PostgreSQL: two connections at once), committed
    after the import read the customer and before it wrote the row."""
    importer, other = staff[Role.BILLING_CLERK], staff[Role.SUPERVISOR]
    customer = services.customer_create(
        actor=None, unit=org["home"], full_name="Nguyễn Văn An", street="12 Lê Lợi", ward="Phường Bến Nghé",
        email="an@example.vn", phones=["0903 123 456"],
    )  # fmt: skip
    client.force_login(importer)
    previewed = preview(client, "customer", csv_bytes(_street_only(customer)))
    assert problems(previewed) == []
    saved_meanwhile = _saved_meanwhile(monkeypatch, lambda instance: in_another_connection(
        lambda: services.customer_update(
            actor=other, customer=Customer.objects.get(pk=instance.pk), changes={"email": "an.moi@example.vn"},
            reason="Khách báo e-mail mới",
        )
    ))  # fmt: skip
    confirmed = confirm(client, "customer", previewed)
    assert "error" not in saved_meanwhile, saved_meanwhile.get("error")
    customer.refresh_from_db()
    # The clerk's e-mail stays (the file did not touch it), and the row is refused, not written over it.
    assert (customer.email, customer.street) == ("an.moi@example.vn", "12 Lê Lợi")
    assert problems(confirmed) == [(2, [MEANWHILE.format(at=timezone.localtime(customer.updated_at))])]


# Odd text in the cells ----------------------------------------------------------------------------------


def test_a_name_and_address_typed_in_decomposed_unicode_are_stored_composed(clerk_client, clerk, org):
    """A spreadsheet typed with Unikey's "Unicode tổ hợp" (or saved on macOS) holds each accent as a code
    point of its own. Typed text is stored composed on every path (``core.text``): the lookup's tier 2
    ("accents as typed") and everything that compares names rely on it."""
    name, street, ward = "Trần Thị Hằng", "12 Lê Lợi", "Phường Bến Nghé"
    nfd = {"full_name": unicodedata.normalize("NFD", name), "street": unicodedata.normalize("NFD", street),
           "ward": unicodedata.normalize("NFD", ward)}  # fmt: skip
    assert nfd["full_name"] != name
    previewed = preview(clerk_client, "customer", csv_bytes([customer_row(**nfd)]))
    assert previewed.context["problems"] == []
    confirm(clerk_client, "customer", previewed)
    customer = Customer.objects.get()
    assert (customer.full_name, customer.street, customer.ward) == (name, street, ward)
    # the caller lookup finds her by her name with its accents as typed (tier 2), not only accent-blind
    found = lookup_customers(user=clerk, query=name)
    assert [(c.pk, c.match) for c in found.customers] == [(customer.pk, "accents")]
    # a file changing her address, decomposed again, stores it composed (``customer_update``)
    (row,) = read_csv(export(clerk_client))
    row["street"] = unicodedata.normalize("NFD", "7 Đồng Khởi")
    previewed = preview(clerk_client, "customer", csv_bytes([row]))
    assert previewed.context["problems"] == []
    confirm(clerk_client, "customer", previewed)
    customer.refresh_from_db()
    assert (customer.full_name, customer.street) == (name, "7 Đồng Khởi")


def test_a_nul_character_in_a_cell_is_an_error_of_its_row_that_can_be_skipped(clerk_client, org):
    """The admin's own form refuses a NUL ("Null characters are not allowed."); the import refuses it as a
    bad cell of its row, on both databases (PostgreSQL's driver would fail the row as an *error*, which
    "skip the bad rows" cannot skip)."""
    rows = [customer_row(full_name="Lê Văn\x00 An"), customer_row(full_name="Phạm Văn Bình")]
    previewed = preview(clerk_client, "customer", csv_bytes(rows))
    assert previewed.context["totals"]["error"] == 0
    assert previewed.context["totals"]["invalid"] == 1
    assert problems(previewed) == [(2, ["Full name: Null characters are not allowed."])]
    assert Customer.objects.count() == 0
    # the clerk skips the bad row: the good one is written, the bad one is not
    confirm(clerk_client, "customer", previewed, skip_bad_rows=True)
    assert list(Customer.objects.values_list("full_name", flat=True)) == ["Phạm Văn Bình"]


def test_a_nul_character_in_a_key_cell_refuses_its_row_not_the_file(clerk_client, org, make_customer):
    """The keys of a file are looked up all at once before its rows are read: a NUL in a customer's code or a
    unit's code is its row's fault, and the other rows (an update of an existing customer among them) go in."""
    customer = make_customer(org["home"], name="Nguyễn Văn An", phones=[])
    rows = [
        customer_row(code=customer.code + "\x00", full_name="Tên Bị Hỏng"),
        customer_row(unit="PE01\x0000", full_name="Lê Văn Cường"),
        customer_row(code=customer.code, full_name="Nguyễn Văn Anh", phones=""),
        customer_row(full_name="Phạm Văn Bình"),
    ]
    previewed = preview(clerk_client, "customer", csv_bytes(rows))
    assert previewed.context["totals"]["error"] == 0
    assert [(row, len(messages)) for row, messages in problems(previewed)] == [(2, 1), (3, 1)]
    assert all("Null characters are not allowed." in problems(previewed)[i][1][0] for i in (0, 1))
    confirm(clerk_client, "customer", previewed, skip_bad_rows=True)
    customer.refresh_from_db()
    assert customer.full_name == "Nguyễn Văn Anh"
    assert sorted(Customer.objects.values_list("full_name", flat=True)) == ["Nguyễn Văn Anh", "Phạm Văn Bình"]


def test_a_nul_character_in_a_contract_or_meter_file_refuses_only_its_row(clerk_client, org):
    customer = services.customer_create(
        actor=None, unit=org["home"], full_name="Nguyễn Văn An", street="12 Lê Lợi", ward="Phường Bến Nghé"
    )
    contract = {"number": "", "customer": customer.code, "tariff_category": "residential", "start_date": "2025-03-01",
                "end_date": "", "status": ""}  # fmt: skip
    rows = [{**contract, "number": "X\x00", "purpose": "Sinh hoạt"}, {**contract, "customer": customer.code + "\x00",
            "purpose": "Sinh hoạt"}, {**contract, "purpose": "Kinh\x00 doanh"}, {**contract, "purpose": "Kinh doanh"}]  # fmt: skip
    previewed = preview(clerk_client, "contract", csv_bytes(rows))
    assert problems(previewed) == [
        (2, ["Contract number: Null characters are not allowed."]),
        (3, ["Customer: Null characters are not allowed."]),
        (4, ["Purpose of use: Null characters are not allowed."]),
    ]
    confirm(clerk_client, "contract", previewed, skip_bad_rows=True)
    assert list(Contract.objects.values_list("number", "purpose")) == [(f"{customer.code}-01", "Kinh doanh")]
    meter = {"unit": "PE0100", "kind": "electronic", "phases": "1", "status": "", "contract": "", "installed_at": "",
             "reading_at_install": ""}  # fmt: skip
    rows = [{**meter, "serial": "NEW\x00-0001", "manufacturer": "EMIC"},
            {**meter, "serial": "NEW-0002", "manufacturer": "EMIC", "contract": "PE01\x00"},
            {**meter, "serial": "NEW-0003", "manufacturer": "EMIC"}]  # fmt: skip
    previewed = preview(clerk_client, "meter", csv_bytes(rows))
    assert [row for row, _messages in problems(previewed)] == [2, 3]
    confirm(clerk_client, "meter", previewed, skip_bad_rows=True)
    assert list(Meter.objects.values_list("serial", flat=True)) == ["NEW-0003"]


def test_a_file_separated_by_semicolons_is_refused_whole_with_the_reason(clerk_client, org):
    """Excel in a Vietnamese locale saves "CSV" with semicolons: the file is refused as such, not each row for
    a unit it seems not to give."""
    content = "code;unit;full_name;street;ward\n;PE0100;Phạm Văn Bình;5 Nguyễn Huệ;Phường Bến Nghé\n".encode()
    previewed = preview(clerk_client, "customer", content)
    assert previewed.context["base_problems"] == [
        "The file's columns are separated by semicolons: save it as CSV with commas, or as XLSX."
    ]
    assert "confirm_form" not in previewed.context
    # a name with a semicolon in a file separated by commas is no such file
    previewed = preview(clerk_client, "customer", csv_bytes([customer_row(street="5; Nguyễn Huệ")]))
    assert problems(previewed) == []
    assert Customer.objects.count() == 0
