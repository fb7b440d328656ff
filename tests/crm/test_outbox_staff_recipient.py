"""A message to a member of staff keeps who it is for, and each delivery addresses it to them as they are then:
their new work phone once it changed, nobody once they have left (account deactivated), whether it is the first
attempt, an automatic retry, the admin's "Retry" or ``manage.py outbox_retry``. Messages to customers go where
they were written to."""

from __future__ import annotations

import pytest
from django.contrib.auth import get_user_model
from django.core.management import call_command
from django.db import connection
from django.db.models import ProtectedError
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils import translation

from crm.models import OutboxMessage, OutboxRetry, OutboxStatus, Role, StaffProfile
from crm.outbox import (
    outbox_deliver,
    outbox_deliver_due,
    outbox_enqueue,
    outbox_retry,
    outbox_write,
    staff_message,
)
from crm.services import staff_update
from tickets.services import ticket_open

User = get_user_model()
LEFT = "Not sent: the recipient has left (their account is deactivated)."


class Recorder:
    """A backend for every channel: records (channel, recipient) of each send, or fails while ``failing``."""

    sent: list[tuple[str, str]] = []
    failing = False

    def send(self, message):
        if Recorder.failing:
            raise ConnectionError("SMS gateway down")
        Recorder.sent.append((message.channel, message.recipient))


@pytest.fixture
def recorder(settings):
    Recorder.sent, Recorder.failing = [], False
    backend = f"{__name__}.Recorder"
    settings.TONGDAI_NOTIFY_BACKENDS = {"sms": backend, "email": backend, "log": backend}
    with translation.override("en"):
        yield Recorder


@pytest.fixture
def notice(org, make_staff, make_customer, catalogue):
    """A dispatcher of the home unit with a work phone, and the new-ticket notice written to them (the
    customer's code, phone and address), not yet delivered."""
    dispatcher = make_staff(Role.DISPATCHER, [org["home"]])
    staff_update(actor=None, user=dispatcher, role=Role.DISPATCHER, phone="0903 777 001")
    ticket_open(actor=None, category=catalogue["outage"], channel="phone", description="Mất điện",
                customer=make_customer(org["home"]))  # fmt: skip
    message = OutboxMessage.objects.get(recipient="+84903777001")
    return dispatcher, message


def _leave(user):
    User.objects.filter(pk=user.pk).update(is_active=False)


def _fail_once(message, recorder):
    """The first delivery fails (the gateway is down) and the message is failed for good (as at the last of its
    attempts)."""
    recorder.failing = True
    assert outbox_deliver(message_id=message.pk) is False
    OutboxMessage.objects.filter(pk=message.pk).update(status=OutboxStatus.FAILED, next_attempt_at=None)
    recorder.failing = False


def test_a_staff_message_keeps_who_it_is_for_and_a_customers_message_keeps_none(notice, make_customer, org):
    # given the dispatcher's notice, and a message to a customer
    dispatcher, message = notice
    to_customer = outbox_enqueue(channel="sms", recipient="+84903123456", body="Đã có điện", dedupe_key="c:1")
    # then the first is for the dispatcher, the second for nobody on the staff
    assert (message.staff_id, message.channel, message.recipient) == (dispatcher.pk, "sms", "+84903777001")
    assert to_customer.staff_id is None


def test_a_message_goes_to_the_phone_the_member_of_staff_has_at_delivery(notice, recorder):
    # given the notice written while the dispatcher had their old phone
    dispatcher, message = notice
    # when their work phone changes before the first delivery
    staff_update(actor=None, user=dispatcher, role=Role.DISPATCHER, phone="0903 777 003")
    outbox_deliver_due()
    # then it goes to the new phone, and the row says where it went
    assert recorder.sent == [("sms", "+84903777003")]
    message.refresh_from_db()
    assert (message.status, message.channel, message.recipient) == (OutboxStatus.SENT, "sms", "+84903777003")


def test_a_member_of_staff_without_a_phone_any_more_is_told_by_email(notice, recorder):
    # given the notice, and the dispatcher's e-mail
    dispatcher, _message = notice
    User.objects.filter(pk=dispatcher.pk).update(email="dispatcher@example.com")
    # when their work phone is removed before delivery
    StaffProfile.objects.filter(user=dispatcher).update(phone="")
    outbox_deliver_due()
    # then the address rule's next choice is used
    assert recorder.sent == [("email", "dispatcher@example.com")]


def test_a_dispatcher_whose_work_phone_is_a_landline_is_told_by_email(org, make_staff, make_customer, catalogue):
    # given a dispatcher whose work phone is a landline (typed 028.3822.1234), with an e-mail
    dispatcher = make_staff(Role.DISPATCHER, [org["home"]], username="dp.landline")
    User.objects.filter(pk=dispatcher.pk).update(email="dp.landline@example.vn")
    staff_update(actor=None, user=dispatcher, role=Role.DISPATCHER, phone="028.3822.1234")
    assert StaffProfile.objects.get(user=dispatcher).phone == "+842838221234"
    # when a ticket is opened in their unit
    ticket = ticket_open(actor=None, category=catalogue["outage"], channel="phone", description="Mất điện",
                         customer=make_customer(org["home"])).ticket  # fmt: skip
    # then the notice goes to their e-mail: no SMS reaches a landline
    told = OutboxMessage.objects.get(staff=dispatcher, subject=ticket.number)
    assert (told.channel, told.recipient) == ("email", "dp.landline@example.vn")


@pytest.mark.parametrize(
    ("email", "sent"), [("dispatcher@example.com", ("email", "dispatcher@example.com")), ("", None)]
)
def test_a_member_of_staff_whose_phone_became_a_landline_is_told_by_email_else_in_the_log(
    notice, recorder, email, sent
):
    # given the notice, written to the dispatcher's mobile
    dispatcher, message = notice
    User.objects.filter(pk=dispatcher.pk).update(email=email)
    # when their work phone becomes a landline before delivery
    staff_update(actor=None, user=dispatcher, role=Role.DISPATCHER, phone="(028) 3822 1234")
    outbox_deliver_due()
    # then it goes to their e-mail, or (without one) to the log under their username, once: never by SMS
    expected = sent or ("log", dispatcher.username)
    assert recorder.sent == [expected]
    message.refresh_from_db()
    assert (message.status, message.channel, message.recipient) == (OutboxStatus.SENT, *expected)


def test_a_message_to_a_member_of_staff_who_left_before_delivery_is_failed_and_not_sent(notice, recorder):
    # given the notice written while the dispatcher worked here
    dispatcher, message = notice
    # when they leave before it is delivered, and the sweep runs twice
    _leave(dispatcher)
    outbox_deliver_due()
    outbox_deliver_due()
    # then nothing is sent; the message is failed with the reason, after the one attempt, and not due again
    assert recorder.sent == []
    message.refresh_from_db()
    assert (message.status, message.attempts, message.next_attempt_at, message.last_error, message.sent_at) == (
        OutboxStatus.FAILED, 1, None, LEFT, None,
    )  # fmt: skip


def test_a_message_to_a_member_of_staff_whose_profile_was_removed_is_not_sent(notice, recorder):
    # given the notice, and the dispatcher's staff profile removed (the account itself still active)
    dispatcher, message = notice
    StaffProfile.objects.filter(user=dispatcher).delete()
    # when the sweep runs
    outbox_deliver_due()
    # then nothing is sent
    assert recorder.sent == []
    message.refresh_from_db()
    assert (message.status, message.last_error) == (
        OutboxStatus.FAILED, "Not sent: the recipient has left (they no longer have a staff profile).",
    )  # fmt: skip


def test_an_automatic_retry_is_not_sent_to_a_member_of_staff_who_left_after_the_first_attempt(
    notice, recorder
):
    # given the notice whose first delivery failed (it is pending, due again later)
    dispatcher, message = notice
    recorder.failing = True
    outbox_deliver(message_id=message.pk)
    recorder.failing = False
    # when the dispatcher leaves, then the next attempt is due and runs
    _leave(dispatcher)
    OutboxMessage.objects.filter(pk=message.pk).update(next_attempt_at=None)
    outbox_deliver_due()
    # then it is not sent, and failed with the reason
    assert recorder.sent == []
    message.refresh_from_db()
    assert (message.status, message.attempts, message.last_error) == (OutboxStatus.FAILED, 2, LEFT)


def test_a_retried_message_is_not_sent_to_a_member_of_staff_who_has_left(notice, staff, recorder):
    # given the notice that failed while the gateway was down
    dispatcher, message = notice
    _fail_once(message, recorder)
    # when the dispatcher leaves, then the administrator retries the failed messages
    _leave(dispatcher)
    assert outbox_retry(actor=staff[Role.ADMINISTRATOR], source="admin", message_ids=[message.pk]) == [
        message.pk
    ]
    outbox_deliver_due()
    # then the customer's phone and address are not sent to someone who has left
    assert recorder.sent == []
    message.refresh_from_db()
    assert (message.status, message.attempts, message.last_error) == (OutboxStatus.FAILED, 1, LEFT)


def test_the_admins_retry_action_does_not_send_to_a_member_of_staff_who_has_left(
    client, notice, staff, recorder
):
    # given the failed notice, and the dispatcher gone
    dispatcher, message = notice
    _fail_once(message, recorder)
    _leave(dispatcher)
    client.force_login(staff[Role.ADMINISTRATOR])
    # when an administrator retries it from the outbox list, and the sweep runs
    response = client.post(reverse("admin:crm_outboxmessage_changelist"),
                           {"action": "retry", "_selected_action": [message.pk]})  # fmt: skip
    outbox_deliver_due()
    # then the retry is recorded, and nothing is sent
    assert response.status_code == 302
    assert OutboxRetry.objects.filter(message=message).count() == 1
    assert recorder.sent == []
    message.refresh_from_db()
    assert (message.status, message.last_error) == (OutboxStatus.FAILED, LEFT)


def test_the_retry_command_sends_to_the_current_phone_of_a_member_of_staff(notice, recorder, capsys):
    # given the failed notice, and the dispatcher's work phone changed since (the old SIM handed back)
    dispatcher, message = notice
    _fail_once(message, recorder)
    staff_update(actor=None, user=dispatcher, role=Role.DISPATCHER, phone="0903 777 003")
    # when it is retried from the command line and the sweep runs
    call_command("outbox_retry", str(message.pk))
    outbox_deliver_due()
    # then it goes to the phone they have now, not to the old number
    assert recorder.sent == [("sms", "+84903777003")]


def test_a_retried_message_to_a_member_of_staff_goes_to_their_current_phone(notice, staff, recorder):
    # given the failed notice
    dispatcher, message = notice
    _fail_once(message, recorder)
    # when their work phone is changed and the administrator retries
    staff_update(actor=None, user=dispatcher, role=Role.DISPATCHER, phone="0903 777 003")
    outbox_retry(actor=staff[Role.ADMINISTRATOR], source="admin", message_ids=[message.pk])
    outbox_deliver_due()
    # then it goes to the phone they have now
    assert recorder.sent == [("sms", "+84903777003")]
    message.refresh_from_db()
    assert (message.status, message.recipient, message.last_error) == (OutboxStatus.SENT, "+84903777003", "")


def test_a_message_to_a_customer_goes_where_it_was_written_to(db, recorder):
    # given a message to a customer's phone that failed once
    message = outbox_enqueue(channel="sms", recipient="+84903123456", body="Đã có điện", dedupe_key="c:1")
    _fail_once(message, recorder)
    # when it is retried and delivered
    outbox_retry(actor=None, source="command", message_ids=[message.pk])
    outbox_deliver_due()
    # then it goes to that phone
    assert recorder.sent == [("sms", "+84903123456")]


def test_delivering_a_staff_message_costs_the_queries_of_a_customers_message(notice, recorder):
    # given the dispatcher's notice and a message to a customer
    _dispatcher, message = notice
    to_customer = outbox_enqueue(channel="sms", recipient="+84903123456", body="Đã có điện", dedupe_key="c:1")
    # when each is delivered
    with CaptureQueriesContext(connection) as for_staff:
        assert outbox_deliver(message_id=message.pk) is True
    with CaptureQueriesContext(connection) as for_customer:
        assert outbox_deliver(message_id=to_customer.pk) is True
    # then the member of staff is read with the message, in the same query
    assert len(for_staff) == len(for_customer)


def test_a_repeated_staff_message_is_still_written_once(org, make_staff):
    # given a dispatcher
    dispatcher = make_staff(Role.DISPATCHER, [org["home"]])
    profile = StaffProfile.objects.select_related("user").get(user=dispatcher)
    # when the same message is written twice (a retried change)
    for _ in range(2):
        outbox_write([staff_message(profile, subject="T1", body="…", dedupe_key="ticket:1:routed")])
    # then there is one row, for them
    assert list(OutboxMessage.objects.values_list("dedupe_key", "staff_id")) == [
        ("ticket:1:routed", dispatcher.pk)
    ]


def test_an_account_with_messages_is_deactivated_not_deleted(notice):
    # given the dispatcher's notice
    dispatcher, message = notice
    # when somebody deletes their account
    with pytest.raises(ProtectedError):
        User.objects.get(pk=dispatcher.pk).delete()
    # then the account and the message stay
    assert User.objects.filter(pk=dispatcher.pk).exists()
    assert OutboxMessage.objects.filter(pk=message.pk, staff=dispatcher).exists()
