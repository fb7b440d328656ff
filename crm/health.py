"""The health check for load balancers and monitoring: ``GET /health/``, without authentication.

It answers 200 only when the database answers, the task broker answers (django-q2's: the ORM queue table on
the database by default, Redis when ``Q_REDIS_URL`` is set) and a task cluster ran its heartbeat task in the
last ``HEARTBEAT_MAX_AGE``; otherwise 503, naming the checks that failed. It also says how many outbox
messages are due and unsent (the backlog) and how long the oldest of them has waited. It shows no personal
data, and no cache may keep it.
"""

from __future__ import annotations

import datetime as dt
import functools
import logging

from django.db import DatabaseError, connection
from django.db.models import Count, Min, Q
from django.db.models.functions import Coalesce
from django.http import JsonResponse
from django.utils import timezone
from django.views.decorators.http import require_GET

logger = logging.getLogger("tongdai.health")

HEARTBEAT_MAX_AGE = dt.timedelta(minutes=2)


@functools.cache
def task_broker():
    """One broker per process (building one per request would open a Redis connection each time)."""
    from django_q.brokers import get_broker

    return get_broker()


def check_database() -> dict:
    with connection.cursor() as cursor:
        cursor.execute("SELECT 1")
        cursor.fetchone()
    return {"ok": True}


def check_broker() -> dict:
    broker = task_broker()
    broker.ping()
    # The ORM broker's ping answers without asking anything: counting its queue reads its table.
    return {"ok": True, "queued_tasks": broker.queue_size()}


def check_cluster() -> dict:
    from crm.models import ClusterHeartbeat

    last = ClusterHeartbeat.objects.order_by("-beat_at").values_list("beat_at", flat=True).first()
    if last is None:
        return {"ok": False, "error": "no task cluster heartbeat yet"}
    age = (timezone.now() - last).total_seconds()
    return {"ok": age <= HEARTBEAT_MAX_AGE.total_seconds(), "last_beat_seconds_ago": round(age)}


def outbox_backlog() -> dict:
    """Messages pending and due (new, or whose next attempt's time has come), and the age of the oldest: a
    message is due from its next attempt's time, or from when it was written."""
    from crm.models import OutboxMessage, OutboxStatus

    now = timezone.now()
    figures = OutboxMessage.objects.filter(
        Q(next_attempt_at__isnull=True) | Q(next_attempt_at__lte=now), status=OutboxStatus.PENDING
    ).aggregate(count=Count("pk"), oldest=Min(Coalesce("next_attempt_at", "created_at")))
    oldest = figures["oldest"]
    return {
        "backlog": figures["count"],
        "oldest_due_seconds": max(0, round((now - oldest).total_seconds())) if oldest else 0,
    }


CHECKS = {"database": check_database, "broker": check_broker, "task_cluster": check_cluster}


@require_GET
def health(request):
    checks: dict[str, dict] = {}
    for name, check in CHECKS.items():
        try:
            checks[name] = check()
        except Exception as exc:  # any failure of a dependency is what this page reports
            logger.warning("health check %s failed: %s", name, exc)
            checks[name] = {"ok": False, "error": exc.__class__.__name__}
    outbox = None
    if checks["database"]["ok"]:
        try:
            outbox = outbox_backlog()
        except DatabaseError as exc:
            checks["database"] = {"ok": False, "error": exc.__class__.__name__}
    failed = [name for name, result in checks.items() if not result["ok"]]
    body = {"status": "fail" if failed else "ok", "failed": failed, "checks": checks, "outbox": outbox}
    response = JsonResponse(body, status=503 if failed else 200)
    response["Cache-Control"] = "no-store"
    return response
