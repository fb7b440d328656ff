"""The outbox: side effects leave the system as rows written with the change, delivered by a task.

``outbox_write`` is the one writer of outbox rows (one message or a thousand, in one INSERT), called inside
the service's transaction; ``outbox_enqueue`` builds one message (with its attachment) and hands it to it, and
``staff_message`` is the one rule for how a member of staff is addressed (the message keeps who it is for and is
addressed again at each delivery: their new phone is used, and someone who has left is sent nothing); what a
message says is written in the centre's language (``in_centre_language``), never the clicking user's. Delivery is
the outbox worker (``manage.py outbox_worker``): a long-lived loop that delivers what is due, then waits
``TONGDAI_OUTBOX_POLL_SECONDS`` when nothing is; several workers may run, each message is claimed by one, for
``TONGDAI_OUTBOX_LEASE_SECONDS`` (longer than any send: every backend has a timeout). A failed delivery is
retried with a growing delay (a stored ``next_attempt_at``); after ``TONGDAI_OUTBOX_MAX_ATTEMPTS`` the message is
marked failed, as is one whose last attempt never finished (its worker stopped mid-send). The task cluster runs the same sweep every
minute (``crm.tasks.deliver_outbox``), so messages still leave if no worker runs.

A message that failed for good stays in the table with its ``last_error``; ``outbox_retry`` (the admin's
"Retry" action, ``manage.py outbox_retry``) gives it back to the sweep and records who did it.

Backends (``TONGDAI_NOTIFY_BACKENDS``, one per channel): ``LoggingBackend`` (the default), ``EmailBackend``
(Django's mail, each SMTP exchange within ``EMAIL_TIMEOUT``) and ``HttpSmsBackend`` (POSTs JSON to
``TONGDAI_SMS_URL`` with ``TONGDAI_SMS_TOKEN`` within ``TONGDAI_SMS_TIMEOUT``, the message's id in the body and
headers, so that a gateway can drop a delivery it has already taken). A backend's send ends well within the
claim's lease.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import mimetypes
import threading
import urllib.request
import uuid
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from pathlib import PurePath

from django.conf import settings
from django.core.files.base import ContentFile
from django.core.mail import EmailMessage
from django.db import DatabaseError, IntegrityError, close_old_connections, connection, transaction
from django.db.models import F, Q
from django.utils import timezone, translation
from django.utils.module_loading import import_string
from django.utils.translation import gettext, gettext_noop

from core.phones import is_mobile
from crm.models import OutboxChannel, OutboxMessage, OutboxRetry, OutboxRetrySource, OutboxStatus
from crm.permissions import require_everything

logger = logging.getLogger("tongdai.outbox")


# How the log names a phone: the customers app registers its rule (``customers.privacy.mask_phone``, the last
# 3 digits shown), which this layer may not import. Until one is registered no phone is named at all.
_mask_phone: Callable[[str], str] | None = None


def register_phone_mask(function: Callable[[str], str]) -> None:
    global _mask_phone
    _mask_phone = function


def logged_recipient(message: OutboxMessage) -> str:
    """A message's recipient as a log line may name it, never whole (the journal and the log shipper keep what
    is logged): a phone masked by the registered rule, an e-mail address by its domain only."""
    recipient = message.recipient or ""
    if message.channel == OutboxChannel.EMAIL and "@" in recipient:
        return "…@" + recipient.rpartition("@")[2]
    return _mask_phone(recipient) if _mask_phone is not None and recipient else "…"


class LoggingBackend:
    """Writes that the message would have left to the log: the default, so nothing leaves a machine by
    accident. The line names the message (its id, which the outbox's admin shows in full to those who may see
    it), its channel, its recipient masked (``logged_recipient``) and its body's length, never a subject or a
    body's text."""

    def send(self, message: OutboxMessage) -> None:
        logger.info(
            "outbox %s %s to %s (body of %d characters)",
            message.pk, message.channel, logged_recipient(message), len(message.body),
        )  # fmt: skip


class EmailBackend:
    """Django's mail (the default mailer of ``MAILERS``), with the message's attachment when it has one."""

    def send(self, message: OutboxMessage) -> None:
        email = EmailMessage(message.subject or message.body[:60], message.body, None, [message.recipient])
        if message.attachment:
            with message.attachment.open("rb") as stored:
                content = stored.read()
            name = message.attachment_name or PurePath(message.attachment.name or "attachment").name
            mimetype = mimetypes.guess_type(name)[0] or "application/octet-stream"
            email.attach(name, content, mimetype)
        email.send()


# What ends a subject that ``outbox_write`` cut to its column (at a separator, never inside a ticket number).
CUT = "…"
SUBJECT_LENGTH = 200


def cut_subject(subject: str) -> str:
    """A subject that fits its column: a longer one is cut at its last separator (a comma, a semicolon or a
    space) that leaves room for ``CUT``, never inside a word or a ticket number, and ends with ``CUT``."""
    if len(subject) <= SUBJECT_LENGTH:
        return subject
    head = subject[: SUBJECT_LENGTH - len(CUT) + 1]  # the character after the room, to see a separator there
    ends = [i for i, char in enumerate(head) if char in ",; " and i <= SUBJECT_LENGTH - len(CUT)]
    if ends:
        head = head[: ends[-1]]
    head = head[: SUBJECT_LENGTH - len(CUT)].rstrip(",; ")
    return head + CUT


def sms_text(message: OutboxMessage) -> str:
    """What an SMS says: the subject on the first line, then the body (a text message has no subject line of
    its own, and the subject is what tells an escalation from the intake notice with the same body). The body
    is sent alone when it already names the subject (a customer's restore notice names their tickets), and
    when the subject was cut to its column (``cut_subject``: the body says it in full): a Vietnamese SMS costs
    a part per 67 letters, and nothing is said twice or half."""
    subject, body = message.subject.strip(), message.body
    if not subject or subject in body or subject.endswith(CUT):
        return body
    return f"{subject}\n{body}"


class HttpSmsBackend:
    """An SMS gateway that takes ``{"id": …, "to": …, "text": …}`` as JSON with a bearer token.

    Every attempt at a message carries the same id (the outbox row's), in the body and in the
    ``Idempotency-Key`` and ``X-Message-Id`` headers: a delivery can be repeated (the task was stopped after the
    gateway took the message but before the row was marked sent), and the gateway drops the repeat."""

    def send(self, message: OutboxMessage) -> None:
        url = settings.TONGDAI_SMS_URL
        if not url:
            raise RuntimeError("TONGDAI_SMS_URL is not set")
        request = urllib.request.Request(
            url,
            data=json.dumps({"id": message.pk, "to": message.recipient, "text": sms_text(message)}).encode(),
            headers={
                "Content-Type": "application/json",
                "Authorization": f"Bearer {settings.TONGDAI_SMS_TOKEN}",
                "Idempotency-Key": str(message.pk),
                "X-Message-Id": str(message.pk),
            },
            method="POST",
        )
        with urllib.request.urlopen(request, timeout=settings.TONGDAI_SMS_TIMEOUT) as response:
            if response.status >= 300:
                raise RuntimeError(f"SMS gateway answered {response.status}")


def _backend(channel: str):
    path = settings.TONGDAI_NOTIFY_BACKENDS.get(channel, "crm.outbox.LoggingBackend")
    return import_string(path)()


@contextmanager
def in_centre_language() -> Iterator[None]:
    """Texts written for the outbox (a customer's SMS or e-mail, a notice to staff, and the record of what they
    were told) are in the centre's language, ``settings.LANGUAGE_CODE``, whoever's request writes them: a
    customer is not told in the language of the browser of the dispatcher who clicked. The one rule: every
    builder of a message's subject or body builds it inside ``with in_centre_language():`` (or is decorated with
    ``@in_centre_language()``). Refusals are built outside it: they answer the person who asked."""
    with translation.override(settings.LANGUAGE_CODE):
        yield


def staff_address(profile) -> tuple[str, str]:
    """How a member of staff is told: SMS to their phone when it is a mobile (``is_mobile``: a landline takes no
    SMS), else e-mail, else the log (the one rule)."""
    if is_mobile(profile.phone):
        return OutboxChannel.SMS, profile.phone
    if profile.user.email:
        return OutboxChannel.EMAIL, profile.user.email
    return OutboxChannel.LOG, profile.user.get_username()


def staff_message(profile, *, subject: str, body: str, dedupe_key: str | None = None) -> OutboxMessage:
    """An unsaved message to a member of staff (a ``StaffProfile``), addressed by ``staff_address``; written
    by ``outbox_write``. It keeps who it is for (``staff``): each delivery addresses it again
    (``_staff_readdress``)."""
    channel, recipient = staff_address(profile)
    return OutboxMessage(
        channel=channel, recipient=recipient, subject=subject, body=body, dedupe_key=dedupe_key,
        staff_id=profile.user_id,
    )  # fmt: skip


def _staff_readdress(message: OutboxMessage) -> str:
    """Address a message to a member of staff as they are now (their phone changed, their e-mail): the row and
    ``message`` take the address ``staff_address`` gives. Returns why it must not be sent at all ("" when it
    may): staff whose account is deactivated, or who no longer have a staff profile, have left and are sent
    nothing. A message to a customer (no ``staff``) is left as it was written."""
    user = message.staff
    if user is None:
        return ""
    profile = getattr(user, "staff_profile", None)
    if not user.is_active:
        return gettext("Not sent: the recipient has left (their account is deactivated).")
    if profile is None:
        return gettext("Not sent: the recipient has left (they no longer have a staff profile).")
    if message.attachment:  # a file (a monthly report) goes to their e-mail as it is now, or not at all
        if not user.email:
            return gettext("Not sent: the recipient has no e-mail address any more.")
        channel, recipient = str(OutboxChannel.EMAIL), user.email
    else:
        channel, recipient = staff_address(profile)
    if (channel, recipient) != (message.channel, message.recipient):
        OutboxMessage.objects.filter(pk=message.pk).update(channel=channel, recipient=recipient)
        message.channel, message.recipient = channel, recipient
    return ""


def outbox_write(messages: Iterable[OutboxMessage], *, with_id: bool = False) -> list[OutboxMessage]:
    """Write unsaved messages in the caller's transaction, in one INSERT (the one writer of outbox rows).

    A message without a recipient is dropped; a subject is cut to its column (``cut_subject``). A repeated
    ``dedupe_key`` is ignored by the database (a retried change never sends twice), and the messages are
    returned as given.
    ``with_id`` (one message, ``outbox_enqueue``): it comes back with its id, or the call returns ``[]`` when
    its key was a repeat (written in a savepoint so the database can say so)."""
    rows = []
    for message in messages:
        if message.channel not in OutboxChannel.values:
            raise ValueError(f"Unknown channel {message.channel}")
        if message.recipient:
            message.subject = cut_subject(message.subject)
            rows.append(message)
    if not with_id:
        OutboxMessage.objects.bulk_create(rows, batch_size=500, ignore_conflicts=True)
        return rows
    if len(rows) > 1:
        raise ValueError("with_id writes one message")
    for message in rows:
        try:
            with transaction.atomic():  # a savepoint: a repeated key is refused by the database's unique key
                OutboxMessage.objects.bulk_create([message])
        except IntegrityError:
            if (
                not message.dedupe_key
                or not OutboxMessage.objects.filter(dedupe_key=message.dedupe_key).exists()
            ):
                raise  # another constraint refused it
            if message.attachment:
                message.attachment.delete(save=False)  # stored for nothing: the first message has its own
            return []
    return rows


def outbox_enqueue(
    *,
    channel: str,
    recipient: str,
    body: str,
    subject: str = "",
    dedupe_key: str | None = None,
    attachment_name: str | None = None,
    attachment_content: bytes | None = None,
    staff=None,
) -> OutboxMessage | None:
    """Write one message in the caller's transaction (through ``outbox_write``); the outbox worker delivers it
    after commit. A repeated ``dedupe_key`` is ignored (returns None), so a retried change never sends twice.

    ``attachment_content`` (with its ``attachment_name``) is stored in the default storage as the row is
    written, and sent with the message by backends that can (``EmailBackend``). ``staff`` (a user): the member
    of staff it is for, addressed again at delivery as ``staff_message``'s are (a file goes by e-mail only)."""
    message = OutboxMessage(
        channel=channel, recipient=recipient, subject=subject, body=body, dedupe_key=dedupe_key,
        staff_id=getattr(staff, "pk", None),
    )  # fmt: skip
    if channel in OutboxChannel.values and recipient and attachment_content is not None:
        name = (attachment_name or "attachment").strip()[:200]
        message.attachment_name = name
        # The stored name is never the given one (no collisions, no odd characters); the file is written by
        # the field's pre_save.
        message.attachment = ContentFile(attachment_content, name=uuid.uuid4().hex + PurePath(name).suffix)
    written = outbox_write([message], with_id=True)
    return written[0] if written else None


_BROKER = None


def task_broker():
    """One django-q broker per process (its connection pool is reused; making one per task costs a connect)."""
    global _BROKER
    if _BROKER is None:
        from django_q.brokers import get_broker

        _BROKER = get_broker()
    return _BROKER


def _retry_delay(attempts: int) -> dt.timedelta:
    return dt.timedelta(seconds=min(30 * 2 ** max(attempts - 1, 0), 3600))


def _due(now: dt.datetime) -> Q:
    return Q(next_attempt_at__isnull=True) | Q(next_attempt_at__lte=now)


# What a message whose last attempt never finished keeps as its error when it is marked failed (translated, in
# the centre's language, by ``outbox_fail_interrupted``).
INTERRUPTED = gettext_noop("Not sent: delivery was interrupted (the last attempt never finished).")


def outbox_deliver(*, message_id: int) -> bool:
    """Deliver one message if it is still pending, due and below ``TONGDAI_OUTBOX_MAX_ATTEMPTS``. Safe to run
    twice, and from two workers at once: the claim is a conditional update that only one can win.

    The claim (one attempt) lasts ``TONGDAI_OUTBOX_LEASE_SECONDS``, longer than any send the backends' timeouts
    allow, so no other worker takes the message meanwhile; a claim whose worker stopped mid-send runs out and
    the message is due again. A failure is recorded only by the attempt that still holds the message; a success
    by any attempt while the message is pending (it has left): a worker stalled past its claim never puts a sent
    message back to pending.

    A message to a member of staff goes to their address as it is now (``_staff_readdress``); one to someone
    who has left is not sent: it is marked failed with the reason, and no sweep tries it again."""
    now = timezone.now()
    with transaction.atomic():  # the claim and the attempt it took, read under the row's lock
        claimed = OutboxMessage.objects.filter(
            _due(now),
            pk=message_id,
            status=OutboxStatus.PENDING,
            attempts__lt=settings.TONGDAI_OUTBOX_MAX_ATTEMPTS,
        ).update(
            attempts=F("attempts") + 1,
            next_attempt_at=now + dt.timedelta(seconds=settings.TONGDAI_OUTBOX_LEASE_SECONDS),
        )
        if not claimed:
            return False
        message = OutboxMessage.objects.select_related("staff__staff_profile").get(pk=message_id)
        refused = _staff_readdress(message)
    pending = OutboxMessage.objects.filter(pk=message_id, status=OutboxStatus.PENDING)
    if refused:
        pending.filter(attempts=message.attempts).update(
            status=OutboxStatus.FAILED, next_attempt_at=None, last_error=refused
        )
        logger.warning("outbox message %s not sent: %s", message_id, refused)
        return False
    try:
        _backend(message.channel).send(message)
    except Exception as exc:  # a backend may fail in any way; the message keeps the reason
        failed = message.attempts >= settings.TONGDAI_OUTBOX_MAX_ATTEMPTS
        recorded = pending.filter(attempts=message.attempts).update(
            last_error=f"{type(exc).__name__}: {exc}"[:2000],
            status=OutboxStatus.FAILED if failed else OutboxStatus.PENDING,
            next_attempt_at=None if failed else timezone.now() + _retry_delay(message.attempts),
        )
        logger.warning(
            "outbox message %s failed (attempt %s%s): %s",
            message_id, message.attempts, "" if recorded else ", already taken over by a later attempt", exc,
        )  # fmt: skip
        return False
    if not pending.update(
        status=OutboxStatus.SENT, sent_at=timezone.now(), next_attempt_at=None, last_error=""
    ):
        logger.warning(
            "outbox message %s sent by attempt %s after its claim ran out; it was already sent or failed",
            message_id, message.attempts,
        )  # fmt: skip
    return True


def outbox_fail_interrupted(*, now: dt.datetime | None = None) -> int:
    """Mark failed the pending messages whose last attempt (at ``TONGDAI_OUTBOX_MAX_ATTEMPTS``) never finished
    and whose claim has run out, so that "Retry" sees them instead of their sitting pending for ever. A
    conditional update: safe with several sweeps at once. Returns how many.

    The reason kept is written in the centre's language (``in_centre_language``), as the other reasons a
    message was not sent are: the administrators of the outbox read it."""
    with in_centre_language():
        reason = gettext(INTERRUPTED)
    return OutboxMessage.objects.filter(
        status=OutboxStatus.PENDING,
        next_attempt_at__lte=now or timezone.now(),
        attempts__gte=settings.TONGDAI_OUTBOX_MAX_ATTEMPTS,
    ).update(status=OutboxStatus.FAILED, next_attempt_at=None, last_error=reason)


# The stop of the outbox worker whose loop runs in this context (``outbox_worker``), which the sweep it calls
# heeds without being handed it.
_worker_stop: ContextVar[threading.Event | None] = ContextVar("outbox_worker_stop", default=None)


def outbox_deliver_due(*, limit: int = 500, passes: int = 20, stop: threading.Event | None = None) -> int:
    """The delivery sweep: mark failed what was interrupted at its last attempt (``outbox_fail_interrupted``),
    then deliver what is pending and due (new messages, retries), ``limit`` at a time, until a pass finds fewer
    (at most ``passes``; the next sweep goes on). A message another sweep claimed, or that failed, is no longer
    due, so the passes end. Once ``stop`` (by default the stop of the worker running this sweep) is set, on the
    worker's SIGTERM, no other message is started: the one being sent is finished, the rest stay pending,
    untouched, for the next sweep."""
    if stop is None:
        stop = _worker_stop.get()
    outbox_fail_interrupted()
    sent = 0
    for _pass in range(passes):
        if stop is not None and stop.is_set():
            break
        due = list(
            OutboxMessage.objects.filter(
                _due(timezone.now()),
                status=OutboxStatus.PENDING,
                attempts__lt=settings.TONGDAI_OUTBOX_MAX_ATTEMPTS,
            )
            .order_by("id")
            .values_list("pk", flat=True)[:limit]
        )
        for pk in due:
            if stop is not None and stop.is_set():
                return sent
            sent += outbox_deliver(message_id=pk)
        if len(due) < limit:
            break
    return sent


def outbox_worker(*, poll: float, stop: threading.Event, once: bool = False) -> int:
    """The outbox worker's loop (``manage.py outbox_worker``): deliver what is due; when nothing was, wait
    ``poll`` seconds (or until ``stop`` is set). Each pass starts on a usable connection (a database that went
    away is reconnected, ``CONN_MAX_AGE`` is kept). Once ``stop`` is set (SIGTERM) the message being sent is
    finished and no other one is started. ``once``: one pass. Returns the messages sent."""
    sent = 0
    heeded = _worker_stop.set(stop)  # the sweep starts no other message once ``stop`` is set
    try:
        while not stop.is_set():
            _usable_connections()
            try:
                delivered = outbox_deliver_due()
            except DatabaseError:
                logger.exception("outbox worker: the database is unavailable; trying again")
                delivered = 0
            sent += delivered
            if once:
                break
            if not delivered:
                stop.wait(poll)
    finally:
        _worker_stop.reset(heeded)
    _usable_connections()
    return sent


def _usable_connections() -> None:
    """Drop the connections that went away or outlived ``CONN_MAX_AGE`` (Django reconnects on the next query),
    as a request's end does; never one that a caller's transaction holds."""
    if not connection.in_atomic_block:
        close_old_connections()


@transaction.atomic
def outbox_retry(
    *,
    actor,
    source: str,
    message_ids: Iterable[int] | None = None,
    since: dt.datetime | None = None,
) -> list[int]:
    """Give failed messages back to the delivery sweep: each is due at once, with a fresh round of attempts.

    ``message_ids`` names the messages (any that are not failed are left alone); without it every failed
    message is retried. ``since`` keeps only the messages written since then. Each message retried gets an
    ``OutboxRetry`` row (who, from where, when, the attempts and error it had); ``last_error`` stays until a
    delivery succeeds. Returns the ids retried, in order."""
    require_everything(actor, "crm.retry_outboxmessage")  # the whole country's messages
    if source not in OutboxRetrySource.values:
        raise ValueError(f"Unknown source {source}")
    failed = OutboxMessage.objects.filter(status=OutboxStatus.FAILED)
    if message_ids is not None:
        failed = failed.filter(pk__in=list(message_ids))
    if since is not None:
        failed = failed.filter(created_at__gte=since)
    # Locked, so two retries at once (two administrators, the admin and the command) record one retry each.
    messages = list(failed.select_for_update().order_by("id").only("id", "attempts", "last_error"))
    if not messages:
        return []
    now = timezone.now()
    ids = [m.pk for m in messages]
    OutboxMessage.objects.filter(pk__in=ids, status=OutboxStatus.FAILED).update(
        status=OutboxStatus.PENDING, attempts=0, next_attempt_at=None
    )
    OutboxRetry.objects.bulk_create(
        OutboxRetry(
            message_id=m.pk, actor=actor if getattr(actor, "pk", None) else None, source=source, at=now,
            previous_attempts=m.attempts, previous_error=m.last_error,
        )
        for m in messages
    )  # fmt: skip
    logger.info(
        "outbox messages %s given back to the delivery sweep by %s (%s)",
        ", ".join(map(str, ids)), getattr(actor, "username", None) or "-", source,
    )  # fmt: skip
    return ids
