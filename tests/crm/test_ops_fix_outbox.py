"""The outbox worker stops after the message it is sending (SIGTERM), and the default logging backend never logs
a full phone number, e-mail address or a message's text."""

from __future__ import annotations

import logging
import threading

import pytest

from crm import outbox
from crm.models import OutboxMessage, OutboxStatus
from crm.outbox import outbox_deliver_due, outbox_enqueue, outbox_worker

BACKEND = "tests.crm.test_ops_fix_outbox.StoppedDuringSend"


class StoppedDuringSend:
    """A backend during whose ``stop_at``-th send the service manager sends SIGTERM (the handler sets ``stop``)."""

    stop: threading.Event | None = None
    stop_at = 1
    sends: list[int] = []

    def send(self, message):
        StoppedDuringSend.sends.append(message.pk)
        if len(StoppedDuringSend.sends) == StoppedDuringSend.stop_at:
            StoppedDuringSend.stop.set()


@pytest.fixture
def stopped_during_send(settings):
    settings.TONGDAI_NOTIFY_BACKENDS = {**settings.TONGDAI_NOTIFY_BACKENDS, "email": BACKEND}
    stop = threading.Event()
    StoppedDuringSend.stop, StoppedDuringSend.sends, StoppedDuringSend.stop_at = stop, [], 1
    return stop


def _backlog(count: int) -> list[int]:
    return [
        outbox_enqueue(channel="email", recipient=f"m{i}@example.com", subject="s", body="b").pk
        for i in range(count)
    ]


def test_sigterm_stops_the_worker_after_the_message_it_is_sending(db, stopped_during_send):
    # given a backlog of five e-mails (the SMTP server was down; each send may take up to EMAIL_TIMEOUT)
    ids = _backlog(5)
    # when SIGTERM arrives while the first is being sent
    assert outbox_worker(poll=1, stop=stopped_during_send) == 1
    # then that message is finished and sent, and no other one was started
    assert StoppedDuringSend.sends == ids[:1]
    assert OutboxMessage.objects.get(pk=ids[0]).status == OutboxStatus.SENT
    rest = OutboxMessage.objects.filter(pk__in=ids[1:])
    assert sorted(rest.filter(status=OutboxStatus.PENDING, attempts=0).values_list("pk", flat=True)) == ids[1:]


def test_sigterm_during_a_later_send_leaves_the_rest_untouched(db, stopped_during_send):
    ids = _backlog(5)
    StoppedDuringSend.stop_at = 3
    assert outbox_worker(poll=1, stop=stopped_during_send) == 3
    assert StoppedDuringSend.sends == ids[:3]
    assert OutboxMessage.objects.filter(status=OutboxStatus.SENT).count() == 3
    assert OutboxMessage.objects.filter(status=OutboxStatus.PENDING, attempts=0).count() == 2


def test_a_stop_between_passes_starts_no_other_pass(db, stopped_during_send):
    # the last message of a full pass is the one in hand: the next pass is not started
    ids = _backlog(4)
    StoppedDuringSend.stop_at = 2
    assert outbox_deliver_due(limit=2, stop=stopped_during_send) == 2
    assert StoppedDuringSend.sends == ids[:2]
    assert OutboxMessage.objects.filter(status=OutboxStatus.PENDING, attempts=0).count() == 2


def test_a_stop_set_before_the_sweep_sends_nothing(db, stopped_during_send):
    _backlog(2)
    stopped_during_send.set()
    assert outbox_deliver_due(stop=stopped_during_send) == 0
    assert outbox_worker(poll=1, stop=stopped_during_send) == 0
    assert StoppedDuringSend.sends == []
    assert OutboxMessage.objects.filter(status=OutboxStatus.PENDING, attempts=0).count() == 2


def test_without_a_stop_the_sweep_still_delivers_the_whole_backlog(db, stopped_during_send):
    # the cluster's minutely sweep passes no stop: a stop set by a backend does not concern it
    ids = _backlog(3)
    assert outbox_deliver_due(limit=2) == 3
    assert StoppedDuringSend.sends == ids


# The logging backend ------------------------------------------------------------------------------------------


@pytest.fixture
def logging_backends(settings):
    settings.TONGDAI_NOTIFY_BACKENDS = {
        **settings.TONGDAI_NOTIFY_BACKENDS, "sms": "crm.outbox.LoggingBackend", "email": "crm.outbox.LoggingBackend",
    }  # fmt: skip


def _logged(caplog) -> str:
    return "\n".join(record.getMessage() for record in caplog.records if record.name == "tongdai.outbox")


BODY = "Yêu cầu PE01-000123 đã được tiếp nhận."


def test_the_default_outbox_backend_does_not_log_a_customers_full_phone(db, logging_backends, caplog):
    message = outbox_enqueue(channel="sms", recipient="0912345678", subject="Tiếp nhận", body=BODY)
    with caplog.at_level(logging.INFO, logger="tongdai.outbox"):
        assert outbox_deliver_due() == 1
    logged = _logged(caplog)
    assert f"outbox {message.pk} sms to " in logged
    assert f"(body of {len(BODY)} characters)" in logged
    assert "0912345678" not in logged and "345678" not in logged
    assert BODY not in logged and "Tiếp nhận" not in logged


def test_the_log_names_a_phone_masked_by_the_registered_rule(db, logging_backends, caplog, monkeypatch):
    from customers.privacy import mask_phone

    monkeypatch.setattr(outbox, "_mask_phone", None)
    outbox.register_phone_mask(mask_phone)
    message = outbox_enqueue(channel="sms", recipient="+84912345678", body=BODY)
    with caplog.at_level(logging.INFO, logger="tongdai.outbox"):
        assert outbox_deliver_due() == 1
    assert _logged(caplog) == f"outbox {message.pk} sms to {mask_phone('+84912345678')} (body of {len(BODY)} characters)"
    assert mask_phone("+84912345678").endswith("678") and "912345" not in mask_phone("+84912345678")


def test_the_log_names_an_email_recipient_by_its_domain_only(db, logging_backends, caplog):
    message = outbox_enqueue(channel="email", recipient="nguyen.van.a@example.vn", subject="Báo cáo", body="b")
    with caplog.at_level(logging.INFO, logger="tongdai.outbox"):
        assert outbox_deliver_due() == 1
    assert _logged(caplog) == f"outbox {message.pk} email to …@example.vn (body of 1 characters)"
    assert OutboxMessage.objects.get(pk=message.pk).status == OutboxStatus.SENT


def test_a_sweep_after_the_worker_returned_no_longer_heeds_its_stop(db, stopped_during_send):
    # the worker's stop holds for the sweeps it runs, not for a later sweep in the same thread (a task)
    ids = _backlog(3)
    assert outbox_worker(poll=1, stop=stopped_during_send) == 1
    assert stopped_during_send.is_set()
    assert outbox_deliver_due() == 2
    assert StoppedDuringSend.sends == ids


def test_the_customers_app_registers_its_phone_mask_for_the_outbox_log(db, logging_backends, caplog):
    from customers.privacy import mask_phone

    message = outbox_enqueue(channel="sms", recipient="+84912345678", body=BODY)
    with caplog.at_level(logging.INFO, logger="tongdai.outbox"):
        assert outbox_deliver_due() == 1
    assert f"outbox {message.pk} sms to {mask_phone('+84912345678')} (body" in _logged(caplog)
