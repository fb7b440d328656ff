"""The health check: 200 only with the database, the broker and a recent task-cluster heartbeat, 503 naming what
failed; the outbox's backlog; no authentication, no personal data, never cached."""

from __future__ import annotations

import datetime as dt
import io

import pytest
from django.core.management import call_command
from django.utils import timezone
from django_q.models import Schedule

from crm import health
from crm.models import ClusterHeartbeat, OutboxMessage
from crm.outbox import outbox_enqueue
from crm.services import cluster_heartbeat_record
from crm.tasks import cluster_heartbeat


@pytest.fixture
def beating(db):
    cluster_heartbeat()
    return ClusterHeartbeat.objects.get()


def test_healthy_answers_200_without_authentication_and_is_never_cached(client, beating):
    response = client.get("/health/")
    assert response.status_code == 200
    assert response["Content-Type"] == "application/json"
    assert response["Cache-Control"] == "no-store"
    body = response.json()
    assert body["status"] == "ok"
    assert body["failed"] == []
    assert {name: check["ok"] for name, check in body["checks"].items()} == {
        "database": True,
        "broker": True,
        "task_cluster": True,
    }
    assert body["checks"]["task_cluster"]["last_beat_seconds_ago"] <= 1
    assert body["outbox"] == {"backlog": 0, "oldest_due_seconds": 0}


def test_without_a_heartbeat_of_the_last_two_minutes_it_answers_503_naming_the_cluster(client, beating):
    ClusterHeartbeat.objects.update(beat_at=timezone.now() - dt.timedelta(minutes=2, seconds=5))
    response = client.get("/health/")
    assert response.status_code == 503
    body = response.json()
    assert (body["status"], body["failed"]) == ("fail", ["task_cluster"])
    assert body["checks"]["task_cluster"]["last_beat_seconds_ago"] == 125
    ClusterHeartbeat.objects.all().delete()
    response = client.get("/health/")
    assert (response.status_code, response.json()["failed"]) == (503, ["task_cluster"])


def test_a_broker_that_does_not_answer_is_a_503(client, beating, monkeypatch):
    class DeadBroker:
        def ping(self):
            raise ConnectionError("Connection refused")

    monkeypatch.setattr(health, "task_broker", lambda: DeadBroker())
    response = client.get("/health/")
    assert response.status_code == 503
    assert response.json()["failed"] == ["broker"]
    assert response.json()["checks"]["broker"] == {"ok": False, "error": "ConnectionError"}


def test_a_database_that_does_not_answer_is_a_503(client, beating, monkeypatch):
    from django.db import OperationalError

    def down():
        raise OperationalError("connection refused")

    monkeypatch.setitem(health.CHECKS, "database", down)
    response = client.get("/health/")
    assert response.status_code == 503
    assert response.json()["failed"] == ["database"]
    assert response.json()["outbox"] is None


def test_the_outbox_backlog_counts_due_unsent_messages_and_the_oldest_ones_age(client, beating):
    now = timezone.now()
    old = outbox_enqueue(channel="sms", recipient="+84903999888", subject="a", body="Nguyễn Văn An")
    outbox_enqueue(channel="sms", recipient="+84903999888", subject="b", body="b")
    later = outbox_enqueue(channel="sms", recipient="+84903999888", subject="c", body="c")
    sent = outbox_enqueue(channel="sms", recipient="+84903999888", subject="d", body="d")
    OutboxMessage.objects.filter(pk=old.pk).update(created_at=now - dt.timedelta(seconds=300))
    OutboxMessage.objects.filter(pk=later.pk).update(next_attempt_at=now + dt.timedelta(minutes=5))
    OutboxMessage.objects.filter(pk=sent.pk).update(status="sent", sent_at=now)
    response = client.get("/health/")
    assert response.status_code == 200
    outbox = response.json()["outbox"]
    assert outbox["backlog"] == 2
    assert 300 <= outbox["oldest_due_seconds"] <= 302
    # no personal data: neither the recipient nor a body
    assert b"+84903999888" not in response.content and "Nguyễn".encode() not in response.content


def test_the_heartbeat_is_scheduled_every_minute_and_keeps_one_row_per_node(db):
    call_command("setup_schedules", stdout=io.StringIO())
    schedule = Schedule.objects.get(func="crm.tasks.cluster_heartbeat")
    assert (schedule.schedule_type, schedule.minutes, schedule.repeats) == ("I", 1, -1)
    first = cluster_heartbeat_record(node="node-a")
    again = cluster_heartbeat_record(node="node-a")
    cluster_heartbeat_record(node="node-b")
    assert again.pk == first.pk and again.beat_at >= first.beat_at
    assert ClusterHeartbeat.objects.count() == 2


def test_a_plain_http_probe_is_not_redirected_to_https(client, beating, settings):
    settings.SECURE_SSL_REDIRECT = True
    assert client.get("/health/").status_code == 200
    assert client.get("/admin/login/").status_code == 301


def redis_broker(monkeypatch, url):
    """The broker as a cluster configured with ``Q_REDIS_URL`` builds it."""
    from django_q.conf import Conf

    monkeypatch.setattr(Conf, "ORM", None)
    monkeypatch.setattr(Conf, "REDIS", url)
    health.task_broker.cache_clear()


@pytest.fixture
def clear_broker():
    health.task_broker.cache_clear()
    yield
    health.task_broker.cache_clear()


def test_with_the_redis_broker_the_check_asks_redis(client, beating, monkeypatch, clear_broker):
    import redis

    url = "redis://127.0.0.1:6379/15"
    try:
        redis.Redis.from_url(url, socket_connect_timeout=1).ping()
    except redis.RedisError:
        pytest.skip("no Redis on 127.0.0.1:6379")
    redis_broker(monkeypatch, url)
    response = client.get("/health/")
    assert response.status_code == 200
    assert type(health.task_broker()).__name__ == "Redis"
    broker = response.json()["checks"]["broker"]
    assert broker["ok"] is True and isinstance(broker["queued_tasks"], int)
    # a Redis that does not answer fails the check
    redis_broker(monkeypatch, "redis://127.0.0.1:1/0")
    response = client.get("/health/")
    assert (response.status_code, response.json()["failed"]) == (503, ["broker"])
