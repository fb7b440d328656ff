"""The outbox: side effects leave the system as rows written with the change, delivered by a task.

``outbox_enqueue`` is called inside the service's transaction; after commit a django-q2 task delivers the
message through the backend configured for its channel. The task is the delivery sweep itself: a busy
process (hundreds of tickets a second in a storm) queues it at most once per ``TONGDAI_OUTBOX_KICK_MS`` and
once more at the end of that interval, never one task per message (``outbox_deliver_soon``). A failed
delivery is retried with a growing delay (the delay is a stored ``next_attempt_at`` that the periodic
``outbox_deliver_due`` sweep picks up, so a lost task loses nothing); after ``TONGDAI_OUTBOX_MAX_ATTEMPTS`` the message is marked failed.

A message that failed for good stays in the table with its ``last_error``; ``outbox_retry`` (the admin's
"Retry" action, ``manage.py outbox_retry``) gives it back to the sweep and records who did it.

Backends (``TONGDAI_NOTIFY_BACKENDS``, one per channel): ``LoggingBackend`` (the default), ``EmailBackend``
(Django's mail) and ``HttpSmsBackend`` (POSTs JSON to ``TONGDAI_SMS_URL`` with ``TONGDAI_SMS_TOKEN``, the
message's id in the body and headers, so that a gateway can drop a delivery it has already taken).
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import mimetypes
import threading
import time
import urllib.request
import uuid
from collections.abc import Iterable
from pathlib import PurePath

from django.conf import settings
from django.core.files.base import ContentFile
from django.core.mail import EmailMessage
from django.db import IntegrityError, connections, transaction
from django.db.models import F, Q
from django.utils import timezone
from django.utils.module_loading import import_string

from crm.models import OutboxChannel, OutboxMessage, OutboxRetry, OutboxRetrySource, OutboxStatus

logger = logging.getLogger("tongdai.outbox")


class LoggingBackend:
    """Writes the message to the log: the default, so nothing leaves a machine by accident."""

    def send(self, message: OutboxMessage) -> None:
        logger.info(
            "outbox %s %s to %s: %s %s",
            message.pk, message.channel, message.recipient, message.subject, message.body,
        )  # fmt: skip


class EmailBackend:
    """Django's mail (the default mailer of ``MAILERS``), with the message's attachment when it has one."""

    def send(self, message: OutboxMessage) -> None:
        email = EmailMessage(message.subject or message.body[:60], message.body, None, [message.recipient])
        if message.attachment:
            with message.attachment.open("rb") as stored:
                content = stored.read()
            name = message.attachment_name or PurePath(message.attachment.name).name
            mimetype = mimetypes.guess_type(name)[0] or "application/octet-stream"
            email.attach(name, content, mimetype)
        email.send()


def sms_text(message: OutboxMessage) -> str:
    """What an SMS says: the subject on the first line, then the body (a text message has no subject line of
    its own, and the subject is what tells an escalation from the intake notice with the same body). A body
    that already begins with its subject is sent as it is."""
    subject, body = message.subject.strip(), message.body
    if not subject or body.startswith(subject):
        return body
    return f"{subject}\n{body}"


class HttpSmsBackend:
    """An SMS gateway that takes ``{"id": …, "to": …, "text": …}`` as JSON with a bearer token.

    Every attempt at a message carries the same id (the outbox row's), in the body and in the
    ``Idempotency-Key`` and ``X-Message-Id`` headers: a delivery can be repeated (the task was stopped after the
    gateway took the message but before the row was marked sent), and the gateway drops the repeat."""

    def send(self, message: OutboxMessage) -> None:
        url = getattr(settings, "TONGDAI_SMS_URL", "")
        if not url:
            raise RuntimeError("TONGDAI_SMS_URL is not set")
        request = urllib.request.Request(
            url,
            data=json.dumps({"id": message.pk, "to": message.recipient, "text": sms_text(message)}).encode(),
            headers={
                "Content-Type": "application/json",
                "Authorization": f"Bearer {getattr(settings, 'TONGDAI_SMS_TOKEN', '')}",
                "Idempotency-Key": str(message.pk),
                "X-Message-Id": str(message.pk),
            },
            method="POST",
        )
        with urllib.request.urlopen(request, timeout=10) as response:
            if response.status >= 300:
                raise RuntimeError(f"SMS gateway answered {response.status}")


def _backend(channel: str):
    path = settings.TONGDAI_NOTIFY_BACKENDS.get(channel, "crm.outbox.LoggingBackend")
    return import_string(path)()


def outbox_enqueue(
    *,
    channel: str,
    recipient: str,
    body: str,
    subject: str = "",
    dedupe_key: str | None = None,
    attachment_name: str | None = None,
    attachment_content: bytes | None = None,
) -> OutboxMessage | None:
    """Write a message in the caller's transaction; deliver it after commit. A repeated ``dedupe_key`` is
    ignored (returns None), so a retried change never sends twice.

    ``attachment_content`` (with its ``attachment_name``) is stored in the default storage as the row is
    written, and sent with the message by backends that can (``EmailBackend``)."""
    if channel not in OutboxChannel.values:
        raise ValueError(f"Unknown channel {channel}")
    if not recipient:
        return None
    message = OutboxMessage(
        channel=channel, recipient=recipient, subject=subject[:200], body=body, dedupe_key=dedupe_key
    )
    if attachment_content is not None:
        name = (attachment_name or "attachment").strip()[:200]
        message.attachment_name = name
        # The stored name is never the given one (no collisions, no odd characters); the file is written by
        # the field's pre_save.
        message.attachment = ContentFile(attachment_content, name=uuid.uuid4().hex + PurePath(name).suffix)
    if dedupe_key:
        message.pk = _insert_unless_duplicate(message)
        if message.pk is None:
            if message.attachment:
                message.attachment.delete(save=False)  # stored for nothing: the first message has its own
            return None
    else:
        message.save(force_insert=True)
    if settings.TONGDAI_OUTBOX_DELIVER_ON_COMMIT:
        transaction.on_commit(outbox_deliver_soon)
    return message


def _insert_unless_duplicate(message: OutboxMessage) -> int | None:
    """Django's insert in a savepoint: a repeated ``dedupe_key`` is refused by the database's unique key."""
    try:
        with transaction.atomic():
            message.save(force_insert=True)
    except IntegrityError:
        if not OutboxMessage.objects.filter(dedupe_key=message.dedupe_key).exists():
            raise  # another constraint refused it
        return None
    return message.pk


_BROKER = None


def task_broker():
    """One django-q broker per process (its connection pool is reused; making one per task costs a connect)."""
    global _BROKER
    if _BROKER is None:
        from django_q.brokers import get_broker

        _BROKER = get_broker()
    return _BROKER


class _Kicker:
    """Queues the delivery sweep after a commit, at most once per interval in this process.

    The first commit of an interval queues it at once. A commit within the interval after that starts a timer
    for the interval's end (one at a time): the task it queues then runs after that commit too, so every
    committed message is swept by a task queued after it, without a task per message."""

    def __init__(self):
        self.lock = threading.Lock()
        self.last = float("-inf")
        self.timer: threading.Timer | None = None

    def __call__(self) -> None:
        interval = settings.TONGDAI_OUTBOX_KICK_MS / 1000
        now = time.monotonic()
        with self.lock:
            if self.timer is not None:
                return  # a task will be queued later than this commit
            wait = self.last + interval - now
            if wait > 0:
                self.timer = threading.Timer(wait, self._at_the_end_of_the_interval)
                self.timer.daemon = True
                self.timer.start()
                return
            self.last = now
        _enqueue_sweep()

    def _at_the_end_of_the_interval(self) -> None:
        with self.lock:
            self.timer = None
            self.last = time.monotonic()
        try:
            _enqueue_sweep()
        finally:
            connections.close_all()  # this thread's own, when the broker is the database

    def reset(self) -> None:
        with self.lock:
            if self.timer is not None:
                self.timer.cancel()
            self.timer, self.last = None, float("-inf")


outbox_deliver_soon = _Kicker()


def _enqueue_sweep() -> None:
    """Queue the delivery sweep. It runs after a commit, so a broker that is down must not turn a change that
    is already saved into an error: the minutely outbox sweep delivers what this task would have."""
    from django_q.tasks import async_task

    try:
        async_task("crm.tasks.deliver_outbox", broker=task_broker())
    except Exception:
        logger.exception("could not queue the outbox delivery; the minutely sweep will deliver")


def _retry_delay(attempts: int) -> dt.timedelta:
    return dt.timedelta(seconds=min(30 * 2 ** max(attempts - 1, 0), 3600))


def outbox_deliver(*, message_id: int) -> bool:
    """Deliver one message if it is still pending and due. Safe to run twice, and from two workers at once:
    the claim is a conditional update that only one can win."""
    now = timezone.now()
    lease = now + _retry_delay(1)
    claimed = OutboxMessage.objects.filter(
        Q(next_attempt_at__isnull=True) | Q(next_attempt_at__lte=now),
        pk=message_id,
        status=OutboxStatus.PENDING,
    ).update(attempts=F("attempts") + 1, next_attempt_at=lease)
    if not claimed:
        return False
    message = OutboxMessage.objects.get(pk=message_id)
    try:
        _backend(message.channel).send(message)
    except Exception as exc:  # a backend may fail in any way; the message keeps the reason
        failed = message.attempts >= settings.TONGDAI_OUTBOX_MAX_ATTEMPTS
        OutboxMessage.objects.filter(pk=message_id).update(
            last_error=f"{type(exc).__name__}: {exc}"[:2000],
            status=OutboxStatus.FAILED if failed else OutboxStatus.PENDING,
            next_attempt_at=None if failed else timezone.now() + _retry_delay(message.attempts),
        )
        logger.warning("outbox message %s failed (attempt %s): %s", message_id, message.attempts, exc)
        return False
    OutboxMessage.objects.filter(pk=message_id).update(
        status=OutboxStatus.SENT, sent_at=timezone.now(), next_attempt_at=None, last_error=""
    )
    return True


def outbox_deliver_due(*, limit: int = 500, passes: int = 20) -> int:
    """The delivery sweep: deliver what is pending and due (new messages, retries), ``limit`` at a time, until
    a pass finds fewer (at most ``passes``; the next sweep goes on). A message another sweep claimed, or that
    failed, is no longer due, so the passes end."""
    sent = 0
    for _pass in range(passes):
        now = timezone.now()
        due = list(
            OutboxMessage.objects.filter(
                Q(next_attempt_at__isnull=True) | Q(next_attempt_at__lte=now), status=OutboxStatus.PENDING
            )
            .order_by("id")
            .values_list("pk", flat=True)[:limit]
        )
        sent += sum(outbox_deliver(message_id=pk) for pk in due)
        if len(due) < limit:
            break
    return sent


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
    if settings.TONGDAI_OUTBOX_DELIVER_ON_COMMIT:
        transaction.on_commit(outbox_deliver_soon)
    return ids
