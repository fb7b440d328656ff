"""The outbox's texts: the reason an interrupted message failed is written in the centre's language, an SMS does
not repeat a subject its body names, and a subject cut to its column ends at a separator with "…"."""

import datetime as dt

import pytest
from django.utils import timezone, translation
from django.utils.translation import gettext

import crm.outbox
from crm.models import OutboxMessage, OutboxStatus, Role
from crm.outbox import (
    INTERRUPTED,
    cut_subject,
    outbox_enqueue,
    outbox_fail_interrupted,
    outbox_write,
    sms_text,
)


def _interrupted_message(settings):
    settings.TONGDAI_OUTBOX_MAX_ATTEMPTS = 3
    message = outbox_enqueue(channel="sms", recipient="+84912100001", body="Khu vực đã có điện", dedupe_key="k")
    OutboxMessage.objects.filter(pk=message.pk).update(
        attempts=3, next_attempt_at=timezone.now() - dt.timedelta(seconds=1)
    )
    return message


def test_an_interrupted_message_keeps_its_reason_in_the_centres_language(db, settings, monkeypatch):
    # given a Vietnamese centre, a sweep run while English is active (an English-speaking administrator's
    # request), and a message whose last attempt never finished
    settings.LANGUAGE_CODE = "vi"
    message = _interrupted_message(settings)
    monkeypatch.setattr(crm.outbox, "gettext", lambda text: f"[{translation.get_language()}] {text}")
    # when the sweep marks it failed
    with translation.override("en"):
        assert outbox_fail_interrupted() == 1
    # then the reason kept is the translated text, in the centre's language
    message.refresh_from_db()
    assert (message.status, message.next_attempt_at, message.last_error) == (
        OutboxStatus.FAILED, None, f"[vi] {INTERRUPTED}",
    )  # fmt: skip


def test_the_outbox_page_shows_why_an_interrupted_message_failed(client, staff, settings):
    # given the sweep marked an interrupted message failed in a Vietnamese centre
    settings.LANGUAGE_CODE = "vi"
    message = _interrupted_message(settings)
    assert outbox_fail_interrupted() == 1
    with translation.override("vi"):
        reason = gettext(INTERRUPTED)
    message.refresh_from_db()
    assert message.last_error == reason
    # when an administrator opens it on the Vietnamese outbox page
    client.force_login(staff[Role.ADMINISTRATOR])
    page = client.get(f"/admin/crm/outboxmessage/{message.pk}/change/", HTTP_ACCEPT_LANGUAGE="vi")
    # then the page reads the reason as stored, and no longer the old English wording
    assert page.status_code == 200
    html = page.content.decode()
    assert "tin nhắn" in html.lower()
    assert reason in html
    assert "Delivery interrupted" not in html


@pytest.mark.parametrize(
    ("subject", "body", "text"),
    [
        ("", "body only", "body only"),
        ("2026-0000009", "2026-0000009: đã xử lý", "2026-0000009: đã xử lý"),
        ("Nhắc lịch", "Mai 8 giờ", "Nhắc lịch\nMai 8 giờ"),
        # the body names the subject: said once
        ("2026-0000001, 2026-0000002", "Đã có điện (mã yêu cầu 2026-0000001, 2026-0000002).",
         "Đã có điện (mã yêu cầu 2026-0000001, 2026-0000002)."),
        # a subject cut to its column: the body says it in full
        ("2026-0000001, 2026-0000002…", "Đã có điện.", "Đã có điện."),
        # an escalation's subject, which its body does not name, stays on the first line
        ("Escalation 2: 2026-0000003", "2026-0000003 [Mất điện]", "Escalation 2: 2026-0000003\n2026-0000003 [Mất điện]"),
    ],
)
def test_sms_text_says_the_subject_once_and_never_half(subject, body, text):
    assert sms_text(OutboxMessage(subject=subject, body=body)) == text


def test_a_long_subject_is_cut_after_a_whole_number():
    # given a subject naming 17 ticket numbers (236 characters)
    numbers = [f"2026-{n:07d}" for n in range(1, 18)]
    subject = ", ".join(numbers)
    # when it is cut to its 200-character column / then it ends after the last number that fits, with "…"
    cut = cut_subject(subject)
    assert cut == ", ".join(numbers[:14]) + "…"
    assert len(cut) == 195
    # and a subject that fits, or a word longer than the column, are kept or cut at the column
    assert cut_subject(", ".join(numbers[:14])) == ", ".join(numbers[:14])
    assert cut_subject("a" * 200) == "a" * 200
    assert cut_subject("x" * 250) == "x" * 199 + "…"
    assert cut_subject("a" * 199 + " b") == "a" * 199 + "…"


def test_the_outbox_writes_a_long_subject_cut_at_a_separator(db):
    # given a message whose subject is longer than its column
    subject = ", ".join(f"2026-{n:07d}" for n in range(1, 18))
    # when it is written
    outbox_write([OutboxMessage(channel="log", recipient="ops", subject=subject, body="…", dedupe_key="long")])
    # then it is stored cut after a whole number
    assert OutboxMessage.objects.get(dedupe_key="long").subject == cut_subject(subject)
    assert OutboxMessage.objects.get(dedupe_key="long").subject.endswith(", 2026-0000014…")
