"""The managers' monthly report: the workbook, the outbox email with its attachment, reruns, the schedule."""

import datetime as dt
import io

import pytest
from django.core import mail
from django.core.files.storage import default_storage
from django.core.management import call_command
from django.utils import timezone
from django_q.models import Schedule
from openpyxl import load_workbook

from crm.models import OutboxMessage, Role
from crm.outbox import outbox_deliver, outbox_enqueue
from reports import dashboard, tasks
from reports import monthly as reports
from tickets import services

MONTH = reports.previous_month()
RECEIVED = timezone.make_aware(dt.datetime.combine(MONTH.replace(day=10), dt.time(9, 0)))
XLSX = reports.XLSX_TYPE


@pytest.fixture
def last_month(org, make_customer, catalogue, staff):
    """Last month: two phone tickets and one by app in the home unit, one in another corporation."""
    home = make_customer(org["home"], name="Một", phones=["0912 000 401"])
    far = make_customer(org["other_corporation"], name="Ba", phones=["0912 000 402"])
    for customer, channel in [(home, "phone"), (home, "phone"), (home, "app"), (far, "zalo")]:
        services.ticket_open(actor=None, category=catalogue["outage"], channel=channel, description="x",
                             customer=customer, at=RECEIVED)  # fmt: skip
    services.interaction_log(
        actor=staff[Role.AGENT], channel="phone", started_at=RECEIVED, ended_at=RECEIVED + dt.timedelta(seconds=90),
        disposition="ticket", unit=org["home"],
    )  # fmt: skip
    return org


def _outbox_files() -> list[str]:
    folder = f"outbox/{timezone.now():%Y/%m}"
    return default_storage.listdir(folder)[1] if default_storage.exists(folder) else []


def test_the_workbook_has_one_sheet_per_dashboard_table_with_the_numbers(last_month, manager):
    content = reports.monthly_report_xlsx(manager, MONTH)

    workbook = load_workbook(io.BytesIO(content))
    assert workbook.sheetnames == [str(w.title) for w in dashboard.WIDGETS]
    channels = [list(r) for r in workbook["Requests by channel"].iter_rows(min_row=2, values_only=True)]
    assert channels == [["channel", "requests"], ["Phone", 2], ["Mobile app", 1]]
    assert [r[0] for r in workbook["Requests by channel"].iter_rows(max_row=1, values_only=True)] == [
        "Requests by channel"
    ]
    assert [list(r) for r in workbook["Handled electronically"].iter_rows(min_row=2, values_only=True)] == [
        ["requests", "electronic", "phone", "electronic share (%)"],
        [3, 1, 2, 33.3],
    ]
    handling = [list(r) for r in workbook["Average handling time"].iter_rows(min_row=2, values_only=True)]
    assert handling[1:] == [["Phone", 1, 90.0], ["All channels", 1, 90.0]]


def test_the_task_mails_each_manager_the_workbook_once(last_month, manager, staff, settings):
    settings.TONGDAI_NOTIFY_BACKENDS = {
        **settings.TONGDAI_NOTIFY_BACKENDS,
        "email": "crm.outbox.EmailBackend",
    }
    # the staff fixture's manager has no email address: logged and skipped
    files_before = set(_outbox_files())

    first = tasks.send_monthly_reports(f"{MONTH:%Y-%m}")
    again = tasks.send_monthly_reports(f"{MONTH:%Y-%m}")

    assert (first, again) == (1, 0)
    message = OutboxMessage.objects.get(dedupe_key__startswith="monthly-report:")
    assert message.dedupe_key == f"monthly-report:{manager.pk}:{MONTH:%Y-%m}"
    assert (message.channel, message.recipient) == ("email", "lan@example.vn")
    assert message.attachment_name == f"tongdai-report-{MONTH:%Y-%m}.xlsx"
    assert message.attachment.name.startswith(f"outbox/{timezone.now():%Y/%m}/")
    assert set(_outbox_files()) - files_before == {message.attachment.name.rsplit("/", 1)[1]}  # one file
    with message.attachment.open("rb") as stored:
        workbook = load_workbook(io.BytesIO(stored.read()))
    assert workbook["Requests by unit"]["B3"].value == 3  # the manager's scope only

    assert outbox_deliver(message_id=message.pk) is True

    assert len(mail.outbox) == 1
    sent = mail.outbox[0]
    assert sent.to == ["lan@example.vn"] and f"{MONTH:%m/%Y}" in sent.subject
    [(name, content, mimetype)] = sent.attachments
    assert (name, mimetype) == (message.attachment_name, XLSX)
    assert load_workbook(io.BytesIO(content)).sheetnames[0] == "Requests by channel"


def test_a_repeated_key_with_an_attachment_writes_one_row_and_keeps_one_file(db):
    files_before = set(_outbox_files())
    first = outbox_enqueue(channel="email", recipient="a@example.vn", body="b", dedupe_key="k:1",
                           attachment_name="báo cáo.xlsx", attachment_content=b"one")  # fmt: skip
    second = outbox_enqueue(channel="email", recipient="a@example.vn", body="b", dedupe_key="k:1",
                            attachment_name="báo cáo.xlsx", attachment_content=b"two")  # fmt: skip
    plain = outbox_enqueue(channel="email", recipient="a@example.vn", body="no file")
    keyless = outbox_enqueue(channel="email", recipient="a@example.vn", body="b", attachment_name="x.csv",
                             attachment_content=b"a;b")  # fmt: skip

    assert second is None
    stored = OutboxMessage.objects.get(pk=first.pk)
    assert stored.attachment_name == "báo cáo.xlsx" and stored.attachment.name.endswith(".xlsx")
    with stored.attachment.open("rb") as f:
        assert f.read() == b"one"
    assert set(_outbox_files()) - files_before == {
        stored.attachment.name.rsplit("/", 1)[1],
        OutboxMessage.objects.get(pk=keyless.pk).attachment.name.rsplit("/", 1)[1],
    }  # the second message's file was removed with it
    assert not OutboxMessage.objects.get(pk=plain.pk).attachment
    with OutboxMessage.objects.get(pk=keyless.pk).attachment.open("rb") as f:
        assert f.read() == b"a;b"


def test_the_email_backend_sends_a_message_without_attachment_as_before(db, settings):
    settings.TONGDAI_NOTIFY_BACKENDS = {
        **settings.TONGDAI_NOTIFY_BACKENDS,
        "email": "crm.outbox.EmailBackend",
    }
    message = outbox_enqueue(channel="email", recipient="b@example.vn", subject="S", body="Body")

    assert outbox_deliver(message_id=message.pk) is True
    assert (mail.outbox[0].subject, mail.outbox[0].body, mail.outbox[0].attachments) == ("S", "Body", [])


def test_the_schedule_is_declared_and_fires_from_the_first_at_seven(db):
    call_command("setup_schedules", stdout=io.StringIO())
    schedule = Schedule.objects.get(name="tongdai: monthly reports to managers")
    assert (schedule.func, schedule.schedule_type, schedule.minutes) == (
        "reports.tasks.send_monthly_reports_when_due", "I", 15,
    )  # fmt: skip

    def local(day, hour):
        return timezone.make_aware(dt.datetime(2026, 12, day, hour, 0))

    assert reports.monthly_reports_due(local(1, 6)) is None
    assert reports.monthly_reports_due(local(1, 7)) == dt.date(2026, 11, 1)
    assert reports.monthly_reports_due(local(3, 23)) == dt.date(2026, 11, 1)  # catching up
    assert reports.monthly_reports_due(local(4, 7)) is None
    assert reports.monthly_reports_due(timezone.make_aware(dt.datetime(2027, 1, 1, 7, 5))) == dt.date(
        2026, 12, 1
    )


def test_the_scheduled_entry_point_sends_nothing_outside_its_window(last_month, manager, monkeypatch):
    monkeypatch.setattr(reports, "monthly_reports_due", lambda now=None: None)
    assert tasks.send_monthly_reports_when_due() == 0
    monkeypatch.setattr(reports, "monthly_reports_due", lambda now=None: MONTH)
    assert tasks.send_monthly_reports_when_due() == 1
    assert tasks.send_monthly_reports_when_due() == 0
    assert OutboxMessage.objects.filter(dedupe_key__startswith="monthly-report:").count() == 1


def test_text_that_looks_like_a_formula_stays_text(db, monkeypatch):
    from reports.admin_views import _cell

    table = dashboard.Table(key="rebates", title="Bill reductions", columns=["programme", "invoices"],
                            rows=[["=HYPERLINK(\"http://x\")", 3]])  # fmt: skip
    monkeypatch.setattr(dashboard, "tables", lambda user, start, end, unit=None: [table])

    sheet = load_workbook(io.BytesIO(reports.monthly_report_xlsx(None, MONTH)))["Bill reductions"]

    assert (sheet["A3"].value, sheet["A3"].data_type, sheet["B3"].value) == ('=HYPERLINK("http://x")', "s", 3)
    assert (_cell("\t=1+1"), _cell("\r=1+1")) == ("'\t=1+1", "'\r=1+1")  # as the list exports quote them
    assert (_cell("=1+1"), _cell("-x"), _cell(-5), _cell(None), _cell("Quận 1")) == (
        "'=1+1",
        "'-x",
        -5,
        "",
        "Quận 1",
    )
