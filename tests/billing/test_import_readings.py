"""The fast path for big reading files (``billing.imports``): the rules of ``reading_record``, set-based.

Runs on SQLite and on PostgreSQL (DATABASE_URL=postgres://…): the same tests, the vendor's own SQL."""

from __future__ import annotations

import csv
import datetime as dt
import io
from zoneinfo import ZoneInfo

import pytest
from django.core.exceptions import ValidationError
from django.core.files.uploadedfile import SimpleUploadedFile
from django.core.management import call_command
from django.db import connection
from django.urls import reverse
from django.utils import timezone

from billing import imports, rules
from billing import services as billing
from billing.models import AuditRecord, MeterReading, ReadingImport, ReadingStatus
from billing.tasks import run_reading_import
from crm.models import Role
from customers import services as customer_services
from customers.models import Contract, Meter, MeterKind
from tests.billing.conftest import NOV, OCT

JUL, AUG, SEP = dt.date(2025, 7, 1), dt.date(2025, 8, 1), dt.date(2025, 9, 1)
FULL = ("meter_serial", "contract_number", "period", "value", "taken_at", "source")


def csv_bytes(rows, header=("meter_serial", "period", "value")) -> bytes:
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(header)
    writer.writerows(rows)
    return out.getvalue().encode()


def run(data: bytes, **kw):
    """Import ``data``: the result and the refused lines as (line, reason) from the rejects CSV."""
    rejects = io.StringIO()
    result = imports.import_readings(stream=io.BytesIO(data), rejects_to=rejects, **kw)
    rows = list(csv.reader(io.StringIO(rejects.getvalue())))
    if rows:
        assert rows[0] == imports.REJECT_HEADER
    return result, [(int(r[0]), r[5]) for r in rows[1:]]


def serial(customer) -> str:
    return Meter.objects.get(
        assignments__contract__customer=customer, assignments__removed_at__isnull=True
    ).serial


def contract(customer) -> Contract:
    return Contract.objects.get(customer=customer)


def current(customer, period) -> MeterReading:
    return MeterReading.objects.current().get(contract__customer=customer, period=period)


def count_readings() -> int:
    return MeterReading.objects.count()


def replace_meter(customer, *, removal: int, install: int) -> Meter:
    """The meter replaced on 10 November 2025 (after October's reading)."""
    at = timezone.make_aware(dt.datetime(2025, 11, 10))
    old = Meter.objects.get(serial=serial(customer))
    customer_services.meter_remove(actor=None, meter=old, at=at, reading=removal, reason="Thay định kỳ")
    new = customer_services.meter_register(
        actor=None, unit=customer.unit, serial=f"N{customer.pk:05d}", kind=MeterKind.ELECTRONIC
    )
    customer_services.meter_install(actor=None, meter=new, contract=contract(customer), at=at,
                                    reading=install)  # fmt: skip
    return new


# The readings are those reading_record makes -----------------------------------------------------------------


def _history(read, customer, case: str) -> None:
    """Give a customer the history of a case, through the services."""
    if case in ("steady", "jump", "low_59", "low_60"):
        for period, value in ((JUL, 100), (AUG, 200), (SEP, 300), (OCT, 400)):
            read(customer, period, value)
    if case in ("low_59", "low_60"):
        return
    if case == "estimated":
        read(customer, JUL, 100)
        read(customer, AUG, 150)
        billing.reading_estimate(actor=None, contract=contract(customer), period=SEP)
        read(customer, OCT, 900)
    if case == "estimate_overshot":  # October estimated at 101 kWh (register 401) from three months of 100
        for period, value in ((JUL, 100), (AUG, 200), (SEP, 300)):
            read(customer, period, value)
        billing.reading_estimate(actor=None, contract=contract(customer), period=OCT)
    if case == "small":  # one cycle of 10 kWh
        read(customer, OCT, 10)
    if case == "half_even":  # one cycle of 45 kWh over September's 30 days: 46.5 expected over October
        read(customer, SEP, 45)
    if case == "replaced":
        read(customer, OCT, 500)
        replace_meter(customer, removal=520, install=10)
    if case == "replaced_install_1000":
        replace_meter(customer, removal=3, install=1000)


# (case, period imported, register)
CASES = [
    ("first", NOV, 120),  # no reading yet: from the reading at install (0)
    ("steady", NOV, 505),
    ("jump", NOV, 1400),  # 1,000 kWh against ~98 expected: flagged
    ("estimated", NOV, 1200),  # the estimated September is left out of the average
    ("estimate_overshot", NOV, 350),  # below October's estimate: October trued up to 350, November 0 kWh
    ("small", NOV, 69),  # 59 kWh, ~9.7 expected: kWh − expected ≤ 50, not flagged
    ("low_59", NOV, 459),
    ("low_60", NOV, 700),
    ("half_even", OCT, 245),  # 200 kWh against 46.5 expected: “about 46” (round half to even, as Python)
    ("replaced", NOV, 60),  # (520 − 500) + (60 − 10) = 70 kWh across the replacement
    ("replaced_install_1000", NOV, 1100),  # no reading before: from the new meter's reading at install
]


def test_a_good_file_makes_the_readings_reading_record_makes(make_customer, read):
    imported, recorded = {}, {}
    for case, _period, _value in CASES:
        imported[case] = make_customer(name=f"Nhập {case}")
        recorded[case] = make_customer(name=f"Ghi {case}")
        for customer in (imported[case], recorded[case]):
            _history(read, customer, case)
    before = count_readings()
    data = csv_bytes([(serial(imported[case]), f"{period:%Y-%m}", value) for case, period, value in CASES])
    result, rejects = run(data, source="handheld")
    assert rejects == []
    assert (result.total, result.inserted, result.rejected, result.unchanged) == (
        len(CASES),
        len(CASES),
        0,
        0,
    )
    assert result.periods == ["2025-10", "2025-11"]
    assert count_readings() == before + len(CASES) + 1  # and October's estimate, trued up (the old one kept)
    for case, period, value in CASES:
        expected = billing.reading_record(
            actor=None, contract=contract(recorded[case]), period=period, value=value, source="handheld"
        )
        got = current(imported[case], period)
        fields = ("value", "previous_value", "kwh", "status", "flag_reason", "source")
        assert {f: getattr(got, f) for f in fields} == {f: getattr(expected, f) for f in fields}, case
        assert got.meter.serial == serial(imported[case])
        assert got.unit_id == imported[case].unit_id
    assert current(imported["replaced"], NOV).kwh == 70
    trued_up = (current(imported["estimate_overshot"], OCT), current(imported["estimate_overshot"], NOV))
    assert [(r.value, r.kwh, r.source) for r in trued_up] == [(350, 50, "estimated"), (350, 0, "handheld")]
    assert current(recorded["estimate_overshot"], OCT).value == 350
    assert current(imported["replaced"], NOV).previous_value == 10
    jump = current(imported["jump"], NOV)
    assert jump.status == ReadingStatus.FLAGGED
    assert jump.flag_reason == "1000 kWh against about 98 expected from the last cycles"
    assert current(imported["half_even"], OCT).flag_reason.startswith("200 kWh against about 46 ")
    assert current(imported["low_60"], NOV).status == ReadingStatus.FLAGGED
    assert current(imported["low_59"], NOV).status == ReadingStatus.VALID
    flagged = [case for case, period, _value in CASES if current(imported[case], period).status == "flagged"]
    assert flagged == ["jump", "low_60", "half_even"]
    assert result.flagged == len(flagged)
    record = AuditRecord.objects.get(action="reading.import")
    assert record.rows == len(CASES)
    assert record.after["inserted"] == len(CASES)


def test_a_file_of_two_months_reads_the_second_from_the_first(make_customer):
    customer = make_customer()
    data = csv_bytes([(serial(customer), "2025-11", 260), (serial(customer), "2025-10", 100)])
    result, rejects = run(data)
    assert (result.inserted, rejects) == (2, [])
    assert (current(customer, OCT).previous_value, current(customer, OCT).kwh) == (0, 100)
    assert (current(customer, NOV).previous_value, current(customer, NOV).kwh) == (100, 160)
    assert current(customer, NOV).source == "remote"  # the meter is remote-read and the file says nothing


# Bad lines -----------------------------------------------------------------------------------------------


@pytest.fixture
def bad_file(make_customer, read, org):
    people = {k: make_customer(name=f"Khách {k}") for k in "abcdefgh"}
    read(people["c"], OCT, 300)
    removed = make_customer(name="Khách gỡ công tơ")
    old_serial = serial(removed)
    replace_meter(removed, removal=5, install=0)
    s = {k: serial(c) for k, c in people.items()}
    n = {k: contract(c).number for k, c in people.items()}
    rows = [
        (s["a"], "", "2025-11", "150", "", ""),  # 2 good
        ("NOPE-0001", "", "2025-11", "10", "", ""),  # 3
        (s["b"], "", "2025-11", "-5", "", ""),  # 4
        (s["b"], "", "2025-11", "12.5", "", ""),  # 5
        (s["b"], "", "2025-13", "12", "", ""),  # 6
        (s["b"], "", "2025-11-15", "12", "", ""),  # 7
        (s["a"], "", "2025-11-01", "150", "", ""),  # 8 the same as line 2
        (s["b"], "", "2025-11", "40", "", ""),  # 9 and 10: two registers for one month
        (s["b"], "", "2025-11", "41", "", ""),  # 10
        (
            s["c"],
            "",
            "2025-11",
            "250",
            "",
            "",
        ),  # 11 below October's 300: a roll-over is not taken from a file
        (s["d"], "", "2025-11", "20", "", "drone"),  # 12
        (s["d"], "", "2025-11", "20", "yesterday", ""),  # 13
        ("", n["d"], "2025-11", "20", "", "photo"),  # 14 good, by contract number
        (s["e"], n["f"], "2025-11", "20", "", ""),  # 15
        (old_serial, "", "2025-11", "20", "", ""),  # 16
        ("", "", "2025-11", "20", "", ""),  # 17
        ("", "HD-NOPE", "2025-11", "20", "", ""),  # 18
        (s["e"].lower(), "", " 2025-11 ", " 30 ", "2025-11-30T08:15", "Handheld"),  # 19 good, local time
        (s["f"], n["f"], "2025-11", "35", "2025-11-30T08:15:00+00:00", ""),  # 20 good, UTC
        (s["g"], "", "2025-11", "35", "2025-02-30", ""),  # 21 no such day
    ]
    return people, csv_bytes(rows, header=FULL)


EXPECTED_REJECTS = [
    (3, "Unknown meter serial."),
    (4, "The register is negative."),
    (5, "The register is not a whole number of kWh."),
    (6, "The period is not a month (YYYY-MM or YYYY-MM-01)."),
    (7, "The period is not a month (YYYY-MM or YYYY-MM-01)."),
    (8, "Duplicate of line 2."),
    (9, "Several lines for this contract and period with different registers (the first at line 9)."),
    (10, "Several lines for this contract and period with different registers (the first at line 9)."),
    (11, "The register (250) is below the previous reading (300). A roll-over cannot be asserted in a file: "
         "record that reading by hand."),
    (12, "Unknown source: remote, handheld, photo or estimated."),
    (13, "The time taken is not an ISO date and time."),
    (15, "The meter is not installed on that contract."),
    (16, "The meter is not installed on any contract."),
    (17, "No meter serial or contract number."),
    (18, "Unknown contract number."),
    (21, "The time taken is not an ISO date and time."),
]  # fmt: skip


def test_bad_lines_are_listed_with_their_reason_and_the_good_ones_go_in(bad_file):
    people, data = bad_file
    before = count_readings()
    result, rejects = run(data)
    assert rejects == EXPECTED_REJECTS
    assert [(r.line, r.reason) for r in result.rejects] == EXPECTED_REJECTS
    assert (result.total, result.inserted, result.rejected, result.unchanged) == (20, 4, 16, 0)
    assert count_readings() == before + 4
    assert (current(people["a"], NOV).value, current(people["a"], NOV).kwh) == (150, 150)
    assert current(people["d"], NOV).source == "photo"
    local = current(people["e"], NOV)
    assert local.source == "handheld"
    assert local.taken_at == dt.datetime(2025, 11, 30, 8, 15, tzinfo=ZoneInfo("Asia/Ho_Chi_Minh"))
    assert current(people["f"], NOV).taken_at == dt.datetime(2025, 11, 30, 8, 15, tzinfo=dt.UTC)
    assert not MeterReading.objects.filter(contract__customer__in=[people["b"], people["g"]]).exists()
    assert current(people["c"], OCT).value == 300  # untouched


def test_importing_the_same_file_again_changes_nothing(bad_file):
    people, data = bad_file
    first, first_rejects = run(data)
    readings = list(MeterReading.objects.order_by("pk").values_list("pk", "value", "kwh", "status"))
    audits = AuditRecord.objects.filter(action="reading.import").count()
    again, again_rejects = run(data)
    assert (again.total, again.inserted, again.unchanged, again.rejected) == (
        20,
        0,
        first.inserted,
        first.rejected,
    )
    assert again_rejects == first_rejects
    assert list(MeterReading.objects.order_by("pk").values_list("pk", "value", "kwh", "status")) == readings
    assert AuditRecord.objects.filter(action="reading.import").count() == audits + 1
    assert AuditRecord.objects.filter(action="reading.import").order_by("-pk").first().rows == 0
    # Another register for a period already read is refused: a correction is made on the reading itself.
    other, other_rejects = run(csv_bytes([(serial(people["a"]), "2025-11", 151)]))
    assert (other.inserted, other.unchanged, other.rejected) == (0, 0, 1)
    assert other_rejects == [
        (2, "This period is already read for the contract with another register (150): correct that reading "
            "instead.")
    ]  # fmt: skip


# All or nothing ----------------------------------------------------------------------------------------


def test_a_malformed_line_fails_the_whole_file_and_writes_nothing(make_customer):
    customer = make_customer()
    data = csv_bytes([(serial(customer), "2025-11", 10)]) + b"X1,2025-11,5,extra\n"
    before, audits = count_readings(), AuditRecord.objects.count()
    with pytest.raises(ValidationError):
        run(data)
    assert (count_readings(), AuditRecord.objects.count()) == (before, audits)


def test_a_failure_after_the_insert_writes_nothing(make_customer, monkeypatch):
    customer = make_customer()

    def broken(**kw):
        assert (
            MeterReading.objects.filter(contract__customer=customer).count() == 1
        )  # inserted, not committed
        raise RuntimeError("disk full")

    monkeypatch.setattr(imports, "audit", broken)
    before = count_readings()
    with pytest.raises(RuntimeError):
        run(csv_bytes([(serial(customer), "2025-11", 10)]))
    assert count_readings() == before


def test_a_dry_run_counts_and_writes_nothing(bad_file):
    _people, data = bad_file
    before, audits = count_readings(), AuditRecord.objects.count()
    result, rejects = run(data, dry_run=True)
    assert (result.dry_run, result.inserted, result.rejected) == (True, 4, 16)
    assert rejects == EXPECTED_REJECTS
    assert (count_readings(), AuditRecord.objects.count()) == (before, audits)


def test_a_reading_recorded_meanwhile_fails_the_import_cleanly(make_customer, monkeypatch):
    customer = make_customer()
    real = imports._insert_sql

    def racing(params):  # someone records the same month between the checks and the insert
        billing.reading_record(actor=None, contract=contract(customer), period=NOV, value=7, source="photo")
        return real(params)

    monkeypatch.setattr(imports, "_insert_sql", racing)
    with pytest.raises(ValidationError, match="recorded meanwhile"):
        run(csv_bytes([(serial(customer), "2025-11", 10)]))
    assert not MeterReading.objects.filter(contract__customer=customer).exists()


# Units --------------------------------------------------------------------------------------------------


def test_a_clerk_cannot_import_into_another_unit(make_customer, org, staff):
    clerk = staff[Role.BILLING_CLERK]
    mine = make_customer(org["home"])
    theirs = make_customer(org["other_corporation"], phones=["0903 999 888"])
    data = csv_bytes([(serial(mine), "2025-11", 10), (serial(theirs), "2025-11", 10)])
    result, rejects = run(data, actor=clerk)
    assert (result.inserted, rejects) == (1, [(3, "The contract is not in one of your units.")])
    assert not MeterReading.objects.filter(contract__customer=theirs).exists()
    assert current(mine, NOV).reader == clerk
    with pytest.raises(ValidationError):
        run(data, actor=clerk, unit=org["other_corporation"])
    with pytest.raises(ValidationError):
        imports.reading_import_create(actor=clerk, upload=SimpleUploadedFile("r.csv", data),
                                      unit=org["other_corporation"])  # fmt: skip
    with pytest.raises(ValidationError):  # one of theirs must be named
        imports.reading_import_create(actor=clerk, upload=SimpleUploadedFile("r.csv", data), unit=None)


def test_an_import_for_a_unit_refuses_the_other_units_lines(make_customer, org):
    mine = make_customer(org["home"])
    sibling = make_customer(org["sibling"], phones=["0903 777 666"])
    data = csv_bytes([(serial(mine), "2025-11", 10), (serial(sibling), "2025-11", 10)])
    result, rejects = run(data, unit=org["home"], period=NOV)
    assert result.inserted == 1
    assert rejects == [(3, f"The contract is not in the import's unit ({org['home'].code}).")]
    _result, rejects = run(csv_bytes([(serial(mine), "2025-12", 20)]), period=NOV)
    assert rejects == [(2, "The line is for another month than the import's (11/2025).")]
    no_period = csv_bytes([(serial(mine), 30)], header=("meter_serial", "value"))
    with pytest.raises(ValidationError):
        run(no_period)  # no period in the file nor for the import
    assert run(no_period, period=dt.date(2025, 12, 1))[0].inserted == 1


# The admin upload and the background task ------------------------------------------------------------------


def test_the_admin_upload_runs_the_import_and_shows_its_counts(
    client, staff, make_customer, read, make_staff, org, django_capture_on_commit_callbacks
):
    clerk = staff[Role.BILLING_CLERK]
    customers = [make_customer(org["home"], name=f"Khách {i}", phones=[f"0903 100 00{i}"]) for i in range(3)]
    read(customers[0], OCT, 100)
    data = csv_bytes(
        [(serial(customers[0]), "2025-11", 180), (serial(customers[1]), "2025-11", 50),
         (serial(customers[2]), "2025-11", -1), ("NOPE-0002", "2025-11", 5)]
    )  # fmt: skip
    client.force_login(clerk)
    listing = client.get(reverse("admin:billing_meterreading_changelist"))
    assert reverse("admin:billing_readingimport_upload") in listing.content.decode()
    assert reverse("admin:billing_readingimport_add") in client.get(reverse("admin:index")).content.decode()
    assert client.get(reverse("admin:billing_readingimport_add"))["Location"] == reverse(
        "admin:billing_readingimport_upload"
    )
    page = client.get(reverse("admin:billing_readingimport_upload"))
    assert page.status_code == 200
    assert [u.pk for u in page.context["form"].fields["unit"].queryset] == [org["home"].pk]
    with django_capture_on_commit_callbacks(execute=True):
        response = client.post(
            reverse("admin:billing_readingimport_upload"),
            {"file": SimpleUploadedFile("november.csv", data, content_type="text/csv"), "unit": org["home"].pk,
             "period": "2025-11", "source": "", "skip_bad_lines": "on"},
        )  # fmt: skip
    item = ReadingImport.objects.get()
    assert response.status_code == 302
    assert response["Location"] == reverse("admin:billing_readingimport_status", args=[item.pk])
    assert (item.status, item.uploaded_by, item.unit, item.period) == ("done", clerk, org["home"], NOV)
    assert (item.rows_total, item.rows_inserted, item.rows_unchanged, item.rows_rejected) == (4, 2, 0, 2)
    assert item.started_at and item.finished_at and item.rejects_file
    assert (current(customers[0], NOV).kwh, current(customers[1], NOV).kwh) == (80, 50)
    audit = AuditRecord.objects.get(action="reading.import")
    assert (audit.object_type, audit.object_id, audit.unit_id, audit.rows) == ("readingimport", item.pk,
                                                                              org["home"].pk, 2)  # fmt: skip
    status = client.get(response["Location"])
    assert status.status_code == 200
    text = status.content.decode()
    assert (
        'id="rows-inserted">2<' in text and 'id="rows-rejected">2<' in text and 'id="rows-total">4<' in text
    )
    assert "The register is negative." in text and "Unknown meter serial." in text
    download = client.get(reverse("admin:billing_readingimport_rejects", args=[item.pk]))
    lines = b"".join(download.streaming_content).decode().splitlines()
    assert lines[0] == ",".join(imports.REJECT_HEADER) and len(lines) == 3
    # Another unit's clerk does not see it; the administrator's pages show it.
    other = make_staff(Role.BILLING_CLERK, [org["other_corporation"]])
    client.force_login(other)
    assert client.get(response["Location"]).status_code == 404
    assert client.get(reverse("admin:billing_readingimport_rejects", args=[item.pk])).status_code == 404
    client.force_login(staff[Role.ADMINISTRATOR])
    assert client.get(reverse("admin:billing_readingimport_change", args=[item.pk])).status_code == 200
    changelist = client.get(reverse("admin:billing_readingimport_changelist"))
    assert item.pk in {i.pk for i in changelist.context["cl"].result_list}


def test_all_or_nothing_a_file_with_bad_lines_writes_nothing_but_lists_them(bad_file):
    people, data = bad_file
    before = count_readings()
    result, rejects = run(data, all_or_nothing=True)
    assert rejects == EXPECTED_REJECTS  # still listed, with their reasons
    assert (result.total, result.rejected, result.inserted, result.written) == (20, 16, 0, False)
    assert count_readings() == before
    assert not AuditRecord.objects.filter(action="reading.import").exists()
    # A clean file goes in whole under the same rule.
    clean, _ = run(
        csv_bytes([(serial(people["a"]), "", "2025-11", "150", "", "")], header=FULL), all_or_nothing=True
    )
    assert (clean.inserted, clean.rejected, clean.written) == (1, 0, True)
    assert count_readings() == before + 1


def test_an_xlsx_workbook_imports_like_the_same_csv(make_customer, read):
    from openpyxl import Workbook

    customers = [make_customer(name=f"Khách {i}") for i in range(3)]
    read(customers[0], OCT, 100)
    book = Workbook()
    sheet = book.active
    sheet.append(["meter_serial", "period", "value", "taken_at"])
    sheet.append([serial(customers[0]), "2025-11", 180, dt.datetime(2025, 11, 30, 8, 15)])
    sheet.append([serial(customers[1]), "2025-11", 50.0, None])  # a number cell that Excel made a float
    sheet.append([serial(customers[2]), "2025-11", -3, None])
    buffer = io.BytesIO()
    book.save(buffer)
    buffer.seek(0)
    rejects = io.StringIO()
    result = imports.import_readings(stream=imports.csv_stream(buffer, "november.XLSX"), rejects_to=rejects)
    assert (result.total, result.inserted, result.rejected) == (3, 2, 1)
    assert (current(customers[0], NOV).kwh, current(customers[1], NOV).kwh) == (80, 50)
    assert current(customers[0], NOV).taken_at == dt.datetime(2025, 11, 30, 8, 15,
                                                              tzinfo=ZoneInfo("Asia/Ho_Chi_Minh"))  # fmt: skip
    assert "The register is negative." in rejects.getvalue()
    with pytest.raises(ValidationError, match="XLSX"):
        imports.csv_stream(io.BytesIO(b"not a workbook"), "readings.xlsx")


def test_the_admin_upload_dry_runs_and_refuses_a_file_with_bad_lines_by_default(
    client, staff, make_customer, org, django_capture_on_commit_callbacks
):
    clerk = staff[Role.BILLING_CLERK]
    good, bad = make_customer(org["home"]), make_customer(org["home"])
    data = csv_bytes([(serial(good), "2025-11", 70), (serial(bad), "2025-11", -1)])
    client.force_login(clerk)
    before = count_readings()
    for options in ({"dry_run": "on", "skip_bad_lines": "on"}, {}):
        with django_capture_on_commit_callbacks(execute=True):
            response = client.post(
                reverse("admin:billing_readingimport_upload"),
                {"file": SimpleUploadedFile("r.csv", data, content_type="text/csv"), "unit": org["home"].pk,
                 "period": "2025-11", "source": "", **options},
            )  # fmt: skip
        item = ReadingImport.objects.order_by("-pk").first()
        assert response.status_code == 302 and item.status == "done"
        assert count_readings() == before  # nothing written either way
        page = client.get(response["Location"]).content.decode()
        assert 'id="import-outcome"' in page and "The register is negative." in page
        if options:  # the dry run shows what the import would make
            assert (item.dry_run, item.rows_inserted, item.rows_rejected) == (True, 1, 1)
            assert "Nothing was written" in page
        else:  # unticked "skip the bad lines": one bad line refuses the file
            assert (item.dry_run, item.skip_bad_lines, item.rows_inserted, item.rows_rejected) == (
                False,
                False,
                0,
                1,
            )
            assert "nothing was written" in page
    assert not AuditRecord.objects.filter(action="reading.import").exists()


def test_the_upload_form_offers_only_the_clerks_units(client, staff, org, django_capture_on_commit_callbacks):
    client.force_login(staff[Role.BILLING_CLERK])
    with django_capture_on_commit_callbacks(execute=True):
        response = client.post(
            reverse("admin:billing_readingimport_upload"),
            {"file": SimpleUploadedFile("r.csv", b"meter_serial,period,value\n"), "unit": org["other_corporation"].pk},
        )  # fmt: skip
    assert response.status_code == 200
    assert "unit" in response.context["form"].errors
    assert not ReadingImport.objects.exists()
    client.force_login(staff[Role.AGENT])  # an agent does not import readings
    assert client.get(reverse("admin:billing_readingimport_upload")).status_code == 403


def test_the_task_runs_an_import_once_and_a_bad_file_fails_it(make_customer, org, staff):
    clerk = staff[Role.BILLING_CLERK]
    customer = make_customer(org["home"])
    data = csv_bytes([(serial(customer), "2025-11", 42)])
    item = imports.reading_import_create(
        actor=clerk, upload=SimpleUploadedFile("r.csv", data), unit=org["home"]
    )
    assert item.status == "queued" and item.bytes_total == len(data)
    assert run_reading_import(item.pk)["inserted"] == 1
    assert run_reading_import(item.pk) is None  # done: a second delivery does nothing
    item.refresh_from_db()
    assert (item.status, item.rows_inserted, item.phase, item.rejects_file.name) == ("done", 1, "done", "")
    bad = imports.reading_import_create(actor=clerk, upload=SimpleUploadedFile("bad.csv", b"serial;kwh\n1;2\n"),
                                        unit=org["home"])  # fmt: skip
    outcome = run_reading_import(bad.pk)
    bad.refresh_from_db()
    assert outcome["status"] == "failed" and bad.status == "failed"
    assert "header needs" in bad.error
    assert MeterReading.objects.filter(contract__customer=customer).count() == 1


def test_a_running_import_is_taken_over_only_when_it_went_quiet(make_customer, org):
    item = imports.reading_import_create(
        actor=None, upload=SimpleUploadedFile("r.csv", b"meter_serial,period,value\n")
    )
    ReadingImport.objects.filter(pk=item.pk).update(status="running", started_at=timezone.now(),
                                                    progress_at=timezone.now())  # fmt: skip
    assert run_reading_import(item.pk) is None  # another worker is on it
    ReadingImport.objects.filter(pk=item.pk).update(progress_at=timezone.now() - imports.LEASE * 2)
    assert run_reading_import(item.pk)["status"] == "done"


# The command ----------------------------------------------------------------------------------------------


def test_the_command_imports_a_file_and_writes_the_rejects_beside_it(make_customer, tmp_path):
    customer = make_customer()
    path = tmp_path / "readings.csv"
    path.write_bytes(csv_bytes([(serial(customer), "2025-11", 77), ("NOPE-0003", "2025-11", 1)]))
    out = io.StringIO()
    call_command("import_readings", str(path), "--period", "2025-11", "--source", "photo", stdout=out)
    assert "2 lines: 1 inserted (0 flagged), 0 unchanged, 1 rejected" in out.getvalue()
    assert "line 3 NOPE-0003: Unknown meter serial." in out.getvalue()
    rejects = list(csv.reader((tmp_path / "readings.csv.rejects.csv").open()))
    assert rejects == [imports.REJECT_HEADER, ["3", "NOPE-0003", "", "2025-11", "1", "Unknown meter serial."]]
    assert current(customer, NOV).source == "photo"
    out = io.StringIO()
    call_command("import_readings", str(path), "--dry-run", stdout=out)
    assert (
        "Dry run (nothing written): 2 lines: 0 inserted (0 flagged), 1 unchanged, 1 rejected"
        in out.getvalue()
    )


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_on_postgresql_the_progress_is_written_while_the_import_runs(org, make_customer, monkeypatch):
    if connection.vendor != "postgresql":
        pytest.skip("progress from a second connection is a PostgreSQL feature")
    customer = make_customer(org["home"])
    item = imports.reading_import_create(
        actor=None, upload=SimpleUploadedFile("r.csv", csv_bytes([(serial(customer), "2025-11", 9)]))
    )
    seen = []
    real = imports._ProgressWriter.__call__

    def spy(self, phase, **counts):
        real(self, phase, **counts)
        if self.conn is not None:  # what another session sees, while the import's transaction is open
            row = self.conn.execute(
                "SELECT phase FROM billing_readingimport WHERE id = %s", [item.pk]
            ).fetchone()
            seen.append(row[0])

    monkeypatch.setattr(imports._ProgressWriter, "__call__", spy)
    assert run_reading_import(item.pk)["inserted"] == 1
    assert {"copy", "validate", "compute", "insert"} <= set(seen)
    item.refresh_from_db()
    assert (item.status, item.rows_total, item.rows_inserted) == ("done", 1, 1)


# What a clerk's own file holds: a date typed into a workbook, a blank line, a cell a spreadsheet would run


def _serial(customer):
    return Meter.objects.get(assignments__contract__customer=customer, assignments__removed_at__isnull=True).serial


def test_a_period_typed_as_a_date_in_a_workbook_is_read_as_its_month(make_customer, tariffs):
    from openpyxl import Workbook

    customer = make_customer(name="Khách A")
    book = Workbook()
    book.active.append(["meter_serial", "period", "value"])
    book.active.append([_serial(customer), dt.date(2025, 11, 1), 120])  # Excel keeps it as a date cell
    buffer = io.BytesIO()
    book.save(buffer)
    buffer.seek(0)
    rejects = io.StringIO()
    result = imports.import_readings(stream=imports.csv_stream(buffer, "nov.xlsx"), rejects_to=rejects)
    assert (result.inserted, result.rejected) == (1, 0), rejects.getvalue()
    assert MeterReading.objects.get(contract__customer=customer).period == NOV


def test_the_refused_lines_file_runs_no_formula_and_names_each_line_as_the_file_does(make_customer, tariffs):
    data = (
        b"meter_serial,period,value\r\n\r\n=2+5*cmd|' /C calc'!A0,2025-11,1\r\n@SUM(1),2025-11,1\r\n"
    )
    rejects = io.StringIO()
    result = imports.import_readings(stream=io.BytesIO(data), rejects_to=rejects)
    assert result.rejected == 2
    assert [r.line for r in result.rejects] == [3, 4]  # the blank line 2 counted
    rows = list(csv.reader(io.StringIO(rejects.getvalue())))
    assert [row[:2] for row in rows[1:]] == [["3", "'=2+5*cmd|' /C calc'!A0"], ["4", "'@SUM(1)"]]
    assert not MeterReading.objects.exists()


@pytest.mark.parametrize("chunk", [1, 2, 3, 7, 1 << 16])
def test_a_blank_line_is_a_row_of_empty_cells_for_copy_whatever_the_chunks(monkeypatch, chunk):
    monkeypatch.setattr(imports, "CHUNK", chunk)
    text = b"\r\nA,1,2\r\n\r\n\nB,3,4\n\n"
    parts = list(imports._blank_lines_filled(io.BytesIO(text), b",,"))
    assert b"".join(part for part, _read in parts) == b",,\r\nA,1,2\r\n,,\r\n,,\nB,3,4\n,,\n"
    assert sum(read for _part, read in parts) == len(text)


# Months not yet come, and blank lines --------------------------------------------------------------------


def test_a_line_for_a_month_not_yet_come_is_refused_as_reading_record_refuses_it(make_customer, tariffs):
    """``reading_record`` (the API, the admin) refuses a month after the current one
    (``billing.rules.future_refusal``); a file's line for it is refused with the same words, the others go in."""
    early, on_time = make_customer(), make_customer()
    this_month = rules.current_period()
    next_month = rules.month_end(this_month)
    data = csv_bytes(
        [(serial(early), f"{next_month:%Y-%m}", 150), (serial(on_time), f"{this_month:%Y-%m}", 150)]
    )
    result, rejects = run(data)
    assert rejects == [(2, "A period in the future cannot be read.")]
    assert (result.inserted, result.rejected, result.periods) == (1, 1, [f"{this_month:%Y-%m}"])
    assert not MeterReading.objects.filter(contract__customer=early).exists()
    assert current(on_time, this_month).value == 150
    with pytest.raises(ValidationError) as refused:  # the API's and the admin's words
        billing.reading_record(
            actor=None, contract=contract(early), period=next_month, value=150, source="handheld"
        )
    assert refused.value.message_dict == {"period": ["A period in the future cannot be read."]}


def test_a_month_not_yet_come_is_refused_before_a_duplicate_or_a_lower_register(make_customer, tariffs):
    """The future month is the line's first fault: it is not counted as a duplicate of an earlier line, nor
    checked against the registers of the months already read."""
    customer = make_customer()
    billing.reading_record(actor=None, contract=contract(customer), period=NOV, value=300, source="handheld")
    next_month = rules.month_end(rules.current_period())
    data = csv_bytes([(serial(customer), f"{next_month:%Y-%m}", 10), (serial(customer), f"{next_month:%Y-%m}", 20),
                      (serial(customer), "2025-11", 300)])  # fmt: skip
    result, rejects = run(data)
    assert rejects == [(line, "A period in the future cannot be read.") for line in (2, 3)]
    assert (result.inserted, result.unchanged, result.rejected) == (0, 1, 2)
    assert list(MeterReading.objects.filter(contract__customer=customer).values_list("period", "value")) == [
        (NOV, 300)
    ]


def test_an_import_for_a_month_not_yet_come_is_refused_whole_on_its_period(
    make_customer, org, staff, tariffs
):
    customer = make_customer(org["home"])
    next_month = rules.month_end(rules.current_period())
    data = csv_bytes([(serial(customer), 150)], header=("meter_serial", "value"))
    with pytest.raises(ValidationError) as refused:
        run(data, period=next_month)
    assert refused.value.message_dict == {"period": ["A period in the future cannot be read."]}
    with pytest.raises(ValidationError) as refused:
        imports.reading_import_create(actor=staff[Role.BILLING_CLERK], upload=SimpleUploadedFile("r.csv", data),
                                      unit=org["home"], period=next_month)  # fmt: skip
    assert refused.value.message_dict == {"period": ["A period in the future cannot be read."]}
    assert not ReadingImport.objects.exists()
    assert not MeterReading.objects.exists()
    result, rejects = run(data, period=rules.current_period())  # the current month is read
    assert (result.inserted, rejects) == (1, [])


def test_the_last_month_of_the_calendar_is_refused_on_the_period_also_when_queued(make_customer, org):
    """December 9999 has no next month a date can hold: ``period_bounds`` refuses it on ``period``, and an
    import queued with it fails with that reason (not an OverflowError)."""
    customer = make_customer(org["home"])
    data = csv_bytes([(serial(customer), 150)], header=("meter_serial", "value"))
    last, out_of_range = dt.date(9999, 12, 1), "The period is out of range (the last month is 11/9999)."
    with pytest.raises(ValidationError) as refused:
        billing.period_bounds(last)
    assert refused.value.message_dict == {"period": [out_of_range]}
    assert billing.period_bounds(dt.date(9999, 11, 1)) == (dt.date(9999, 11, 1), last)
    with pytest.raises(ValidationError, match="out of range"):
        run(data, period=last)
    item = ReadingImport.objects.create(file=SimpleUploadedFile("r.csv", data), period=last,
                                        created_at=timezone.now())  # fmt: skip
    assert run_reading_import(item.pk) == {"status": "failed", "error": out_of_range}
    item.refresh_from_db()
    assert (item.status, item.error) == ("failed", out_of_range)
    assert not MeterReading.objects.exists()


@pytest.mark.parametrize("blank", ["", ",,", " , ,  ", '"","",""'])
def test_a_line_of_empty_cells_is_a_blank_line_not_a_refused_one(make_customer, tariffs, blank):
    """A spreadsheet saved as CSV writes its emptied rows as ``,,``: a blank line on both databases (COPY reads
    the empty cells as NULL), not a refused one that would refuse a whole file in the admin. The lines keep
    their numbers in the file."""
    customer = make_customer()
    data = (f"meter_serial,period,value\r\n{blank}\r\n{serial(customer)},2025-10,150\r\n{blank}\r\n"
            "NOPE-0001,2025-10,1\r\n").encode()  # fmt: skip
    result, rejects = run(data)
    assert rejects == [(5, "Unknown meter serial.")]
    assert (result.total, result.inserted) == (2, 1)
    result, rejects = run(data.replace(b"NOPE-0001,2025-10,1\r\n", b""), all_or_nothing=True)
    assert (result.inserted, result.unchanged, rejects) == (0, 1, [])
    assert current(customer, OCT).value == 150
