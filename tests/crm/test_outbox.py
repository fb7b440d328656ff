"""The outbox towards an SMS gateway: every request carries the message's id (a repeat is recognisable), an SMS
reads its subject first, and a failed message is given back to the delivery sweep from the admin or the
command line, each retry recorded."""

from __future__ import annotations

import datetime as dt
import http.server
import io
import json
import re
import threading
from pathlib import Path

import pytest
from django.core.management import CommandError, call_command
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils import timezone

from crm.models import OutboxMessage, OutboxRetry, OutboxStatus, Role
from crm.outbox import outbox_deliver, outbox_deliver_due, outbox_enqueue, outbox_retry, sms_text
from tickets.services import ticket_open, ticket_record_contact
from tickets.sla import sla_sweep

VN = dt.timezone(dt.timedelta(hours=7))


class FakeGateway:
    """An SMS gateway on a local port: records each request and answers the next status of ``answers``
    (200 once they run out)."""

    def __init__(self, answers=()):
        self.requests: list[dict] = []
        self.answers = list(answers)
        gateway = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_POST(self):
                body = self.rfile.read(int(self.headers["Content-Length"]))
                gateway.requests.append({"headers": dict(self.headers), "json": json.loads(body)})
                status = gateway.answers.pop(0) if gateway.answers else 200
                self.send_response(status)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args):
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/sms"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def close(self):
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def gateway(settings):
    fake = FakeGateway()
    settings.TONGDAI_NOTIFY_BACKENDS = {
        **settings.TONGDAI_NOTIFY_BACKENDS,
        "sms": "crm.outbox.HttpSmsBackend",
    }
    settings.TONGDAI_SMS_URL = fake.url
    settings.TONGDAI_SMS_TOKEN = "gateway-token"
    yield fake
    fake.close()


def sms(body="Mất điện", subject="", key=None):
    return outbox_enqueue(channel="sms", recipient="+84903999888", subject=subject, body=body, dedupe_key=key)


def test_the_gateway_request_carries_the_message_id_and_a_redelivery_carries_the_same(db, gateway):
    # given a message, and a gateway that takes the first request but answers it with an error
    message = sms(body="2026-0000001 [Mất điện] 12 Lê Lợi", subject="2026-0000001")
    gateway.answers = [503]
    # when the sweep delivers it, then retries it once it is due again
    assert outbox_deliver(message_id=message.pk) is False
    OutboxMessage.objects.filter(pk=message.pk).update(next_attempt_at=timezone.now())
    assert outbox_deliver_due() == 1
    # then both requests name the same message, in the body and in the headers
    assert len(gateway.requests) == 2
    for request in gateway.requests:
        assert request["json"] == {
            "id": message.pk, "to": "+84903999888", "text": "2026-0000001 [Mất điện] 12 Lê Lợi",
        }  # fmt: skip
        assert request["headers"]["Idempotency-Key"] == str(message.pk)
        assert request["headers"]["X-Message-Id"] == str(message.pk)
        assert request["headers"]["Authorization"] == "Bearer gateway-token"
    message.refresh_from_db()
    assert (message.status, message.attempts) == (OutboxStatus.SENT, 2)


def test_a_delivery_cut_off_before_it_was_recorded_is_repeated_with_the_same_id(db, gateway):
    # given a message the gateway took, whose worker was killed before it marked the message sent: the row is
    # left claimed (one attempt, a lease) and pending
    first, second = sms(body="một", key="a"), sms(body="hai", key="b")
    assert outbox_deliver(message_id=first.pk) is True
    OutboxMessage.objects.filter(pk=first.pk).update(
        status=OutboxStatus.PENDING, sent_at=None, attempts=1, next_attempt_at=timezone.now()
    )
    # when the lease has run out and the next sweep delivers what is due
    assert outbox_deliver_due() == 2
    # then the repeat names the first message again, and the other message has an id of its own
    ids = [(r["json"]["id"], r["headers"]["Idempotency-Key"], r["json"]["text"]) for r in gateway.requests]
    assert ids == [(first.pk, str(first.pk), "một"), (first.pk, str(first.pk), "một"),
                   (second.pk, str(second.pk), "hai")]  # fmt: skip


def test_an_sms_reads_its_subject_first_so_an_escalation_differs_from_the_intake_notice(
    catalogue, make_customer, make_staff, org, gateway
):
    # given a ticket routed to a dispatcher with a phone, and a supervisor of the company with a phone
    dispatcher = make_staff(Role.DISPATCHER, [org["home"]])
    dispatcher.staff_profile.phone = "+84903000001"
    dispatcher.staff_profile.save()
    supervisor = make_staff(Role.SUPERVISOR, [org["sibling"]])
    supervisor.staff_profile.phone = "+84903000002"
    supervisor.staff_profile.save()
    received = dt.datetime(2026, 6, 1, 14, tzinfo=VN)
    ticket = ticket_open(actor=None, category=catalogue["outage"], channel="phone", description="Mất điện",
                         customer=make_customer(), at=received).ticket  # fmt: skip
    ticket_record_contact(actor=None, ticket=ticket, at=received + dt.timedelta(minutes=2))
    # when the ticket is escalated to level 2 and every message is delivered
    sla_sweep(now=received + dt.timedelta(hours=1))
    assert outbox_deliver_due() == 3
    # then the escalation's SMS begins with its subject, so it never reads like the intake notice
    texts = {(r["json"]["to"], r["json"]["text"].split("\n")[0]) for r in gateway.requests}
    summary = OutboxMessage.objects.get(dedupe_key__contains=":routed:").body
    assert summary.startswith(ticket.number)
    assert texts == {
        ("+84903000001", summary),  # the intake notice: its body begins with its subject, sent as it is
        ("+84903000001", f"Escalation 1: {ticket.number}"),
        ("+84903000002", f"Escalation 2: {ticket.number}"),
    }
    level2 = next(r["json"]["text"] for r in gateway.requests if r["json"]["to"] == "+84903000002")
    escalation = OutboxMessage.objects.get(dedupe_key__contains=":escalation:2:")
    assert level2 == f"Escalation 2: {ticket.number}\n{escalation.body}"
    assert level2 != summary and "0903" not in level2 and ticket.customer.full_name not in level2


def test_sms_text_joins_subject_and_body():
    # given messages with and without a subject
    cases = [("", "body only"), ("2026-0000009", "2026-0000009: đã xử lý"), ("Nhắc lịch", "Mai 8 giờ")]
    # when their text is made / then
    assert [sms_text(OutboxMessage(subject=s, body=b)) for s, b in cases] == [
        "body only", "2026-0000009: đã xử lý", "Nhắc lịch\nMai 8 giờ",
    ]  # fmt: skip


def test_last_error_is_cleared_when_a_delivery_succeeds(db, gateway, settings):
    # given a message whose first delivery failed
    settings.TONGDAI_OUTBOX_MAX_ATTEMPTS = 3
    message = sms()
    gateway.answers = [500]
    assert outbox_deliver(message_id=message.pk) is False
    message.refresh_from_db()
    assert "500" in message.last_error
    # when it is delivered on the next attempt
    OutboxMessage.objects.filter(pk=message.pk).update(next_attempt_at=timezone.now())
    assert outbox_deliver(message_id=message.pk) is True
    # then it is sent with no error left
    message.refresh_from_db()
    assert (message.status, message.last_error, message.next_attempt_at) == (OutboxStatus.SENT, "", None)


def fail(message, *, attempts=8, error="HTTPError: HTTP Error 503: Service Unavailable"):
    OutboxMessage.objects.filter(pk=message.pk).update(
        status=OutboxStatus.FAILED, attempts=attempts, last_error=error, next_attempt_at=None
    )
    message.refresh_from_db()
    return message


def test_retry_gives_a_failed_message_back_to_the_sweep_and_records_who(db, staff, gateway):
    # given a failed message and one that was sent
    failed = fail(sms(key="f"))
    sent = sms(key="s")
    assert outbox_deliver(message_id=sent.pk) is True
    # when an administrator retries both
    admin_user = staff[Role.ADMINISTRATOR]
    retried = outbox_retry(actor=admin_user, source="admin", message_ids=[failed.pk, sent.pk])
    # then only the failed one is due again, with a fresh round of attempts, its last error kept for now
    assert retried == [failed.pk]
    failed.refresh_from_db()
    assert (failed.status, failed.attempts, failed.next_attempt_at, failed.last_error) == (
        OutboxStatus.PENDING, 0, None, "HTTPError: HTTP Error 503: Service Unavailable",
    )  # fmt: skip
    assert list(OutboxRetry.objects.values_list("message_id", "actor_id", "source", "previous_attempts",
                                                "previous_error")) == [
        (failed.pk, admin_user.pk, "admin", 8, "HTTPError: HTTP Error 503: Service Unavailable"),
    ]  # fmt: skip
    # and the sweep delivers it, with its own id, clearing the error
    gateway.requests.clear()
    assert outbox_deliver_due() == 1
    assert [r["json"]["id"] for r in gateway.requests] == [failed.pk]
    failed.refresh_from_db()
    assert (failed.status, failed.last_error) == (OutboxStatus.SENT, "")


def test_the_admin_lists_failed_messages_and_retries_them_for_administrators_only(client, staff):
    # given two failed messages and a pending one
    one, two = fail(sms(key="1")), fail(sms(key="2", body="Khác"))
    pending = sms(key="3")
    url = reverse("admin:crm_outboxmessage_changelist")
    # when a supervisor, a manager or an agent opens the list, or posts the action
    for role in (Role.SUPERVISOR, Role.MANAGER, Role.AGENT):
        client.force_login(staff[role])
        assert client.get(url).status_code == 403
        refused = client.post(url, {"action": "retry", "_selected_action": [one.pk]})
        assert refused.status_code == 403
    # then nothing changed
    assert OutboxMessage.objects.filter(status=OutboxStatus.FAILED).count() == 2
    assert not OutboxRetry.objects.exists()
    # when an administrator filters the failed ones
    client.force_login(staff[Role.ADMINISTRATOR])
    listed = client.get(url, {"status__exact": "failed"})
    # then they are listed with their error, and the retry action is offered
    assert listed.status_code == 200
    assert [m.pk for m in listed.context["cl"].result_list] == [two.pk, one.pk]
    assert "HTTP Error 503" in listed.text
    assert "retry" in dict(listed.context["action_form"].fields["action"].choices)
    # when the administrator retries the first and the pending one
    done = client.post(url, {"action": "retry", "_selected_action": [one.pk, pending.pk]}, follow=True)
    # then the first is due again, recorded with who did it, and the others are as they were
    assert "1 message(s) given back to the delivery sweep." in done.text
    assert "Messages that had not failed were left alone." in done.text
    statuses = dict(OutboxMessage.objects.values_list("pk", "status"))
    assert statuses == {one.pk: "pending", two.pk: "failed", pending.pk: "pending"}
    assert list(OutboxRetry.objects.values_list("message_id", "actor__username", "source")) == [
        (one.pk, staff[Role.ADMINISTRATOR].username, "admin"),
    ]
    # and the message's page shows the retry, read-only
    page = client.get(reverse("admin:crm_outboxmessage_change", args=[one.pk]))
    assert page.status_code == 200 and staff[Role.ADMINISTRATOR].username in page.text
    assert (
        client.post(reverse("admin:crm_outboxmessage_change", args=[one.pk]), {"body": "x"}).status_code
        == 403
    )


def test_the_outbox_changelist_costs_the_same_queries_for_any_number_of_rows(client, staff):
    client.force_login(staff[Role.ADMINISTRATOR])
    url = reverse("admin:crm_outboxmessage_changelist")
    fail(sms(key="a"))
    with CaptureQueriesContext(connection) as few:
        assert client.get(url, {"status__exact": "failed"}).status_code == 200
    for i in range(30):
        fail(sms(key=f"more-{i}"))
    with CaptureQueriesContext(connection) as many:
        response = client.get(url, {"status__exact": "failed"})
    assert len(response.context["cl"].result_list) == 31
    assert len(many) == len(few)


def test_the_command_retries_by_id_or_every_failed_one_since_a_time(db, staff, capsys):
    # given three failed messages written at different times and a pending one
    old, recent, newest = fail(sms(key="o")), fail(sms(key="r")), fail(sms(key="n"))
    OutboxMessage.objects.filter(pk=old.pk).update(created_at=dt.datetime(2026, 4, 30, 23, tzinfo=VN))
    OutboxMessage.objects.filter(pk=recent.pk).update(created_at=dt.datetime(2026, 5, 1, 0, 30, tzinfo=VN))
    pending = sms(key="p")
    # when the command retries one by id (and names a message that has not failed), its user typed in capitals
    call_command("outbox_retry", str(newest.pk), str(pending.pk), "--by", staff[Role.ADMINISTRATOR].username.upper())  # any case
    # then only that one is due again
    out = capsys.readouterr().out
    assert f"left alone: {pending.pk}." in out
    assert f"1 message(s) given back to the delivery sweep: {newest.pk}." in out
    assert set(OutboxMessage.objects.filter(status="failed").values_list("pk", flat=True)) == {
        old.pk,
        recent.pk,
    }
    # when it retries every failed message written since 1 May (local time)
    call_command("outbox_retry", "--all-failed", "--since", "2026-05-01")
    # then the one of 30 April stays failed
    assert list(OutboxMessage.objects.filter(status="failed").values_list("pk", flat=True)) == [old.pk]
    assert list(
        OutboxRetry.objects.order_by("id").values_list("message_id", "actor__username", "source")
    ) == [
        (newest.pk, staff[Role.ADMINISTRATOR].username, "command"),
        (recent.pk, None, "command"),
    ]


@pytest.mark.parametrize(
    ("args", "error"),
    [
        ([], "Name the messages to retry by id, or give --all-failed"),
        (["1", "--all-failed"], "Name the messages to retry by id, or give --all-failed"),
        (["--all-failed", "--since", "yesterday"], "--since takes a date or a date and time"),
        (["--all-failed", "--since", "2026-13-01"], "--since takes a date or a date and time"),
        (["--all-failed", "--by", "nobody"], "There is no user 'nobody'"),
        (["99999999999999999999"], "an id is from 1 to 9223372036854775807, not 99999999999999999999"),
        (["0"], "an id is from 1 to"),
        (["x1"], "an id is a whole number, not 'x1'"),
    ],
)
def test_the_command_refuses_bad_input_and_changes_nothing(db, args, error):
    # given a failed message
    failed = fail(sms())
    # when the command is called wrongly
    with pytest.raises(CommandError, match=error):
        call_command("outbox_retry", *args)
    # then the message is still failed and no retry is recorded
    failed.refresh_from_db()
    assert (failed.status, OutboxRetry.objects.count()) == (OutboxStatus.FAILED, 0)


@pytest.mark.parametrize(
    ("poll", "shown"), [("nan", "nan"), ("inf", "inf"), ("-inf", "-inf"), ("0", "0"), ("-1", "-1"), ("3601", "3601")]
)
def test_the_worker_refuses_a_poll_that_is_not_a_number_of_seconds_above_0_and_starts_nothing(
    db, monkeypatch, poll, shown
):
    # nan would make every wait return at once (a loop on the database), inf cannot be waited for, 0 is a loop
    started = []
    monkeypatch.setattr(
        "crm.management.commands.outbox_worker.outbox_worker",
        lambda *, poll, stop, once=False: started.append(poll) or 0,
    )
    with pytest.raises(CommandError, match=f"--poll must be a number of seconds above 0 and at most 3600, not {shown}$"):
        call_command("outbox_worker", f"--poll={poll}", stdout=io.StringIO(), stderr=io.StringIO())
    assert started == []
    call_command("outbox_worker", "--once", "--poll", "3600", stdout=io.StringIO())
    assert started == [3600.0]


def test_outbox_rows_have_one_writer_and_staff_one_address_rule():
    """Only ``crm.outbox`` writes outbox rows (``outbox_write``) and decides how staff are addressed: a second
    writer or a copied address rule elsewhere fails here."""
    root = Path(__file__).resolve().parents[2]
    writes = re.compile(
        r"OutboxMessage\.objects\.(bulk_create|create|get_or_create|update_or_create)\b|INSERT INTO \"?crm_outboxmessage",
        re.I,
    )
    address = re.compile(r"profile\.phone[\s\S]{0,120}OutboxChannel\.SMS")
    found = []
    for app in ("core", "crm", "customers", "tickets", "billing", "reports", "tongdai"):
        for path in (root / app).rglob("*.py"):
            if "migrations" in path.parts or path == root / "crm" / "outbox.py":
                continue
            text = path.read_text()
            found += [f"{path.relative_to(root)}: writes outbox rows" for _ in writes.finditer(text)]
            found += [f"{path.relative_to(root)}: addresses staff" for _ in address.finditer(text)]
    assert found == []


def test_a_local_administrator_neither_lists_nor_retries_the_outbox_of_every_unit(
    client, org, make_customer, catalogue, local_administrator, staff
):
    """The outbox holds every unit's messages, customers' phones and addresses included: it is for staff who see
    everything. A company's local administrator (the administrators' group over one company) is refused the
    list, a message's page and the retry, and nothing changes; the administrator lists it."""
    from tickets.services import ticket_add_note

    theirs = make_customer(org["other_corporation"], phones=["0903 333 444"])
    ticket = ticket_open(
        actor=None, category=catalogue["billing"], channel="phone", description="x", customer=theirs
    ).ticket
    ticket_add_note(actor=None, ticket=ticket, body="Chúng tôi sẽ gọi lại", to_customer=True)
    message = OutboxMessage.objects.get(recipient="+84903333444")
    failed = fail(sms(key="local"))
    url = reverse("admin:crm_outboxmessage_changelist")
    client.force_login(local_administrator)
    listed = client.get(url)
    page = client.get(reverse("admin:crm_outboxmessage_change", args=[message.pk]))
    retried = client.post(url, {"action": "retry", "_selected_action": [failed.pk]})
    index = client.get(reverse("admin:index"))
    assert (listed.status_code, page.status_code, retried.status_code) == (403, 403, 403)
    assert "+84903333444" not in listed.content.decode()
    assert reverse("admin:crm_outboxmessage_changelist") not in index.content.decode()
    failed.refresh_from_db()
    assert failed.status == OutboxStatus.FAILED and not OutboxRetry.objects.exists()
    client.force_login(staff[Role.ADMINISTRATOR])
    assert "+84903333444" in client.get(url).content.decode()
