"""The outbox's delivery with several workers: a claim outlasts any send (every backend has a timeout), only the
attempt holding a message records its failure, and a message whose deliveries never finish ends failed."""

from __future__ import annotations

import datetime as dt
import json
import os
import subprocess
import sys
from pathlib import Path
from unittest import mock

import pytest
from django.conf import settings as django_settings
from django.utils import timezone
from django.utils.translation import gettext

from crm.models import OutboxMessage, OutboxStatus
from crm.outbox import INTERRUPTED, in_centre_language, outbox_deliver, outbox_deliver_due, outbox_enqueue

ROOT = Path(__file__).resolve().parents[2]


class SlowBackend:
    """A backend whose first send is slow (an SMTP server taking its time): while it is under way, ``delay``
    passes and another outbox worker runs its sweep. ``first_fails`` / ``second_fails``: that send then fails."""

    sends: list[int] = []
    delay = dt.timedelta(seconds=31)
    first_fails = False
    second_fails = False

    def send(self, message):
        SlowBackend.sends.append(message.pk)
        if len(SlowBackend.sends) == 1:
            later = timezone.now() + SlowBackend.delay
            with mock.patch("django.utils.timezone.now", return_value=later):
                outbox_deliver_due()  # the other worker
            if SlowBackend.first_fails:
                raise TimeoutError("the SMTP server stopped answering")
        elif SlowBackend.second_fails:
            raise ConnectionError("the SMTP server refused the connection")


@pytest.fixture
def slow_email(settings):
    SlowBackend.sends = []
    SlowBackend.delay = dt.timedelta(seconds=31)
    SlowBackend.first_fails = SlowBackend.second_fails = False
    settings.TONGDAI_NOTIFY_BACKENDS = {
        **settings.TONGDAI_NOTIFY_BACKENDS, "email": "tests.crm.test_outbox_delivery.SlowBackend",
    }  # fmt: skip
    return SlowBackend


def _email(key="report"):
    return outbox_enqueue(
        channel="email", recipient="manager@example.com", subject="Báo cáo tháng", body="…", dedupe_key=key
    )


def _past_the_lease():
    return dt.timedelta(seconds=django_settings.TONGDAI_OUTBOX_LEASE_SECONDS + 1)


def test_a_slow_delivery_is_not_delivered_again_by_another_worker_while_it_is_under_way(db, slow_email):
    # given a message, and a first worker whose delivery takes longer than 30 seconds
    message = _email()
    # when that worker delivers it while another worker's sweep runs 31 seconds later
    assert outbox_deliver(message_id=message.pk) is True
    # then the message left once (the claim outlasts the send) and is recorded sent by its one attempt
    assert slow_email.sends == [message.pk]
    message.refresh_from_db()
    assert (message.status, message.attempts, message.next_attempt_at) == (OutboxStatus.SENT, 1, None)


def test_a_worker_failing_after_its_claim_ran_out_does_not_put_a_sent_message_back_to_pending(db, slow_email):
    # given a first worker stalled past its claim, so that a second worker took the message and sent it
    slow_email.delay = _past_the_lease()
    slow_email.first_fails = True
    message = _email()
    # when the first worker's delivery then fails
    assert outbox_deliver(message_id=message.pk) is False
    # then the message stays sent by the second attempt: nothing is queued to send it a third time
    assert slow_email.sends == [message.pk, message.pk]
    message.refresh_from_db()
    assert (message.status, message.attempts, message.next_attempt_at, message.last_error) == (
        OutboxStatus.SENT, 2, None, "",
    )  # fmt: skip


def test_a_worker_succeeding_after_its_claim_ran_out_records_the_message_sent(db, slow_email):
    # given a first worker stalled past its claim, and a second worker whose delivery of the message failed
    slow_email.delay = _past_the_lease()
    slow_email.second_fails = True
    message = _email()
    # when the first worker's delivery then succeeds
    assert outbox_deliver(message_id=message.pk) is True
    # then the message is sent (it left), not retried for the second worker's failure
    message.refresh_from_db()
    assert (message.status, message.attempts, message.next_attempt_at, message.last_error) == (
        OutboxStatus.SENT, 2, None, "",
    )  # fmt: skip


def _production_settings(**env):
    """The product's settings as a production process reads them (DEBUG off), with ``env`` set."""
    clean = {k: v for k, v in os.environ.items() if not k.startswith(("EMAIL_", "TONGDAI_", "DEBUG"))}
    code = (
        "import json, tongdai.settings as s; print(json.dumps([s.MAILERS, s.TONGDAI_OUTBOX_LEASE_SECONDS]))"
    )
    return subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=60,
        env={**clean, "DEBUG": "0", "SECRET_KEY": "k" * 50, "EMAIL_HOST": "smtp.example.vn", **env},
    )  # fmt: skip


def test_smtp_mail_has_a_timeout_well_within_the_claim():
    # given production's settings (Django's SMTP mail)
    # when they are read
    result = _production_settings()
    # then each SMTP exchange is allowed EMAIL_TIMEOUT (30 s), and a claim lasts ten minutes
    mailers_setting, lease = json.loads(result.stdout)
    assert mailers_setting["default"]["OPTIONS"] == {"host": "smtp.example.vn", "timeout": 30}
    assert lease == 600


def test_a_claim_shorter_than_the_slowest_send_is_refused_at_start():
    # given a claim of a minute beside an SMTP timeout of 30 seconds / when the settings are read
    result = _production_settings(TONGDAI_OUTBOX_LEASE_SECONDS="60")
    # then the process refuses to start, saying why
    assert result.returncode != 0
    assert "TONGDAI_OUTBOX_LEASE_SECONDS (60) must be at least ten times EMAIL_TIMEOUT (30)" in result.stderr


class WorkerKilled(BaseException):
    """A worker stopped mid-delivery: the row is claimed and its result never recorded (the task cluster's
    timeout kills a task stuck in a send; a deploy restarts the outbox worker)."""


class KilledBackend:
    def send(self, message):
        raise WorkerKilled


def test_a_message_whose_deliveries_never_finish_is_marked_failed_at_the_max_attempts(db, settings):
    # given a message whose every delivery is cut off
    settings.TONGDAI_OUTBOX_MAX_ATTEMPTS = 3
    settings.TONGDAI_NOTIFY_BACKENDS = {
        **settings.TONGDAI_NOTIFY_BACKENDS, "sms": "tests.crm.test_outbox_delivery.KilledBackend",
    }  # fmt: skip
    message = outbox_enqueue(channel="sms", recipient="+84903999888", body="Mất điện", dedupe_key="k")
    # when the sweep takes it up again each time its claim has run out, ten times
    tried = 0
    for _ in range(10):
        claim_ran_out = timezone.now() - dt.timedelta(seconds=1)
        OutboxMessage.objects.filter(pk=message.pk, status=OutboxStatus.PENDING).update(
            next_attempt_at=claim_ran_out
        )
        try:
            outbox_deliver_due()
        except WorkerKilled:
            tried += 1
    # then it was tried TONGDAI_OUTBOX_MAX_ATTEMPTS times and is marked failed, with the reason (for "Retry")
    assert tried == 3
    message.refresh_from_db()
    with in_centre_language():
        interrupted = gettext(INTERRUPTED)  # in the centre's language, as the administrators read it
    assert (message.status, message.attempts, message.next_attempt_at, message.last_error) == (
        OutboxStatus.FAILED, 3, None, interrupted,
    )  # fmt: skip


def test_a_message_at_the_max_attempts_is_not_failed_while_its_last_claim_lasts(db, settings):
    # given a message whose last attempt is under way (claimed, its claim not run out)
    settings.TONGDAI_OUTBOX_MAX_ATTEMPTS = 3
    message = outbox_enqueue(channel="log", recipient="ops", body="…", dedupe_key="k")
    claim = timezone.now() + dt.timedelta(minutes=5)
    OutboxMessage.objects.filter(pk=message.pk).update(attempts=3, next_attempt_at=claim)
    # when a sweep runs, and when the message is delivered directly
    assert outbox_deliver_due() == 0
    assert outbox_deliver(message_id=message.pk) is False
    # then it is left to that attempt: still pending, nothing changed
    message.refresh_from_db()
    assert (message.status, message.attempts, message.next_attempt_at, message.last_error) == (
        OutboxStatus.PENDING, 3, claim, "",
    )  # fmt: skip
