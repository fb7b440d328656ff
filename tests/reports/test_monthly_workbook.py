"""The monthly workbook mailed to managers."""

import datetime as dt
import io
from decimal import Decimal

from django.utils import timezone, translation
from openpyxl import load_workbook

from billing import services as billing
from billing.models import RebateBand, RebateProgramme
from crm.models import OutboxMessage, Role
from customers.models import Contract
from reports import dashboard, monthly


def test_every_sheet_of_the_vietnamese_workbook_names_its_table(org, staff):
    # given a manager who reads the product in Vietnamese (the default language)
    with translation.override("vi"):
        content = monthly.monthly_report_xlsx(staff[Role.MANAGER], timezone.localdate())
        titles = [str(w.title) for w in dashboard.WIDGETS]
    workbook = load_workbook(io.BytesIO(content))
    # then each table's title ("Tỷ lệ đạt chỉ tiêu thời gian (SLA) theo đơn vị") can be found in the workbook:
    # as its sheet's name or in the sheet itself
    missing = []
    for title, sheet in zip(titles, workbook.worksheets, strict=True):
        cells = {str(c) for row in sheet.iter_rows(values_only=True) for c in row if c is not None}
        if sheet.title != title and title not in cells:
            missing.append((title, sheet.title))
    assert not missing, missing


def _programme_applied(org, make_customer, name):
    billing.tariffs_load_reference()
    month = dt.date(2025, 9, 1)
    customer = make_customer(org["home"])
    contract = Contract.objects.get(customer=customer)
    billing.reading_record(actor=None, contract=contract, period=month, value=200, source="handheld")
    billing.billing_run(actor=None, period=month)
    programme = RebateProgramme.objects.create(
        name=name, legal_basis="Nghị quyết 01", period_from=month, period_to=month
    )
    RebateBand.objects.create(programme=programme, from_kwh=0, percent=Decimal("10"))
    billing.rebate_apply(actor=None, programme=programme)
    return programme


def test_a_programme_name_pasted_with_a_control_character_does_not_stop_the_monthly_reports(
    org, make_customer, staff, make_staff
):
    # given a rebate programme whose name was pasted from a word processor with a vertical tab in it
    # (the admin's form keeps it: only NUL is refused), applied this month, and two managers
    _programme_applied(org, make_customer, "Giảm giá điện\x0bđợt 4")
    other = make_staff(Role.MANAGER, [org["other_company"]])
    other.email = "other@example.vn"
    other.save()
    manager = staff[Role.MANAGER]
    manager.email = "m@example.vn"
    manager.save()

    # the dashboard's own XLSX export of the table works (it drops the character)
    today = timezone.localdate()
    # when the month's reports are sent
    written = monthly.monthly_reports_send(month=today.replace(day=1))

    # then both managers get theirs
    assert written == 2
    assert OutboxMessage.objects.filter(dedupe_key__startswith="monthly-report:").count() == 2


def test_the_monthly_workbook_shows_a_pasted_name_without_its_control_character(org, make_customer, staff):
    # given a rebate programme whose name holds a vertical tab, applied this month
    _programme_applied(org, make_customer, "Giảm giá điện\x0bđợt 4")
    # when the manager's workbook of the month is built
    content = monthly.monthly_report_xlsx(staff[Role.MANAGER], timezone.localdate())
    # then the name is there, without the character a workbook cannot hold (as in the dashboard's own export)
    cells = {c for sheet in load_workbook(io.BytesIO(content)).worksheets
             for row in sheet.iter_rows(values_only=True) for c in row}  # fmt: skip
    assert "Giảm giá điệnđợt 4" in cells


def test_a_manager_whose_report_fails_is_logged_and_the_others_still_get_theirs(
    org, staff, make_staff, monkeypatch, caplog
):
    # given two managers with an email address, the first one's workbook failing
    manager = staff[Role.MANAGER]
    manager.email = "m@example.vn"
    manager.save()
    other = make_staff(Role.MANAGER, [org["other_company"]])
    other.email = "other@example.vn"
    other.save()
    build = monthly.monthly_report_workbook

    def failing(user, month):
        if user.pk == manager.pk:
            raise RuntimeError("workbook failed")
        return build(user, month)

    monkeypatch.setattr(monthly, "monthly_report_workbook", failing)
    month = timezone.localdate().replace(day=1)
    # when the month's reports are sent
    with caplog.at_level("ERROR", logger="tongdai.reports"):
        written = monthly.monthly_reports_send(month=month)
    # then the other manager gets theirs, the failure is logged, and a rerun sends the first one's
    assert written == 1
    assert list(OutboxMessage.objects.values_list("dedupe_key", flat=True)) == [
        monthly.dedupe_key(other.pk, month)
    ]
    assert f"manager {manager.pk} failed" in caplog.text
    monkeypatch.setattr(monthly, "monthly_report_workbook", build)
    assert monthly.monthly_reports_send(month=month) == 1
    assert OutboxMessage.objects.filter(dedupe_key=monthly.dedupe_key(manager.pk, month)).exists()


def test_the_vietnamese_workbook_gives_each_table_its_title_above_its_columns(org, staff):
    # given a manager reading the workbook in Vietnamese, where some titles are longer than a sheet's name
    with translation.override("vi"):
        content = monthly.monthly_report_xlsx(staff[Role.MANAGER], timezone.localdate())
        tables = dashboard.tables(staff[Role.MANAGER], *dashboard.month_bounds(timezone.localdate()))
        expected = [[str(t.title)] for t in tables], [list(t.columns) for t in tables]
    workbook = load_workbook(io.BytesIO(content))
    # then every sheet has its table's full title in row 1 (bold), its columns in row 2, frozen below them
    titles = [[c.value for c in sheet[1] if c.value is not None] for sheet in workbook.worksheets]
    columns = [[c.value for c in sheet[2]] for sheet in workbook.worksheets]
    assert (titles, columns) == expected
    assert {(sheet.freeze_panes, sheet["A1"].font.b) for sheet in workbook.worksheets} == {("B3", True)}
