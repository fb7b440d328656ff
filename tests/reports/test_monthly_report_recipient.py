"""The monthly report goes to the manager as they are at delivery: nothing to one who has left, to their
e-mail as it is now (never by SMS: it carries a workbook)."""

from __future__ import annotations

import datetime as dt
import io

import pytest
from django.utils import timezone
from openpyxl import load_workbook

from crm.models import OutboxMessage, OutboxStatus
from crm.outbox import outbox_deliver
from reports import monthly
from tickets import services

MONTH = monthly.previous_month()
RECEIVED = timezone.make_aware(dt.datetime.combine(MONTH.replace(day=10), dt.time(9, 0)))


class Recorder:
    """Records (channel, recipient, subject, attachment bytes) of each message sent."""

    sent: list[tuple[str, str, str, bytes | None]] = []

    def send(self, message):
        content = None
        if message.attachment:
            with message.attachment.open("rb") as stored:
                content = stored.read()
        Recorder.sent.append((message.channel, message.recipient, message.subject, content))


@pytest.fixture
def recorder(settings):
    Recorder.sent = []
    backend = f"{__name__}.Recorder"
    settings.TONGDAI_NOTIFY_BACKENDS = {"sms": backend, "email": backend, "log": backend}
    return Recorder


@pytest.fixture
def last_month(org, make_customer, catalogue):
    home = make_customer(org["home"], name="Một", phones=["0912 000 401"])
    far = make_customer(org["other_corporation"], name="Ba", phones=["0912 000 402"])
    for customer in (home, home, far):
        services.ticket_open(actor=None, category=catalogue["outage"], channel="phone", description="x",
                             customer=customer, at=RECEIVED)  # fmt: skip
    return org


def test_the_monthly_report_is_not_sent_to_a_manager_deactivated_before_delivery(last_month, manager, recorder):
    assert monthly.monthly_reports_send(month=MONTH) == 1
    message = OutboxMessage.objects.get(dedupe_key=monthly.dedupe_key(manager.pk, MONTH))
    assert message.staff_id == manager.pk
    manager.is_active = False  # the manager leaves before the outbox worker delivers it
    manager.save(update_fields=["is_active"])
    outbox_deliver(message_id=message.pk)
    assert recorder.sent == []
    message.refresh_from_db()
    assert (message.status, "has left" in message.last_error) == (OutboxStatus.FAILED, True)


def test_the_monthly_report_goes_to_the_managers_email_as_it_is_at_delivery(last_month, manager, recorder):
    manager.staff_profile.phone = "+84903111222"  # a work phone: a workbook still goes by e-mail
    manager.staff_profile.save(update_fields=["phone"])
    assert monthly.monthly_reports_send(month=MONTH) == 1
    message = OutboxMessage.objects.get(dedupe_key=monthly.dedupe_key(manager.pk, MONTH))
    manager.email = "lan.tran@example.vn"
    manager.save(update_fields=["email"])
    outbox_deliver(message_id=message.pk)
    ((channel, recipient, _subject, content),) = recorder.sent
    assert (channel, recipient) == ("email", "lan.tran@example.vn")
    assert load_workbook(io.BytesIO(content)).sheetnames  # the workbook went with it
    message.refresh_from_db()
    assert (message.status, message.recipient) == (OutboxStatus.SENT, "lan.tran@example.vn")


def test_the_monthly_report_is_not_sent_to_a_manager_without_an_email_any_more(last_month, manager, recorder):
    assert monthly.monthly_reports_send(month=MONTH) == 1
    message = OutboxMessage.objects.get(dedupe_key=monthly.dedupe_key(manager.pk, MONTH))
    manager.email = ""
    manager.save(update_fields=["email"])
    outbox_deliver(message_id=message.pk)
    assert recorder.sent == []
    message.refresh_from_db()
    assert (message.status, "no e-mail" in message.last_error) == (OutboxStatus.FAILED, True)
