"""One log line per request (request id, user, method, path without its query, status, duration) and per task;
the request id is returned as X-Request-ID; JSON lines with LOG_FORMAT=json."""

from __future__ import annotations

import json
import logging

import pytest
from django.core.exceptions import PermissionDenied
from django_q.tasks import async_task

from core.logs import JsonFormatter, RequestIdFilter, current_request_id
from crm.models import Role
from tests.crm.test_settings import run_manage


def request_records(caplog):
    return [r for r in caplog.records if r.name == "tongdai.request"]


def test_each_request_is_one_line_with_its_id_user_path_status_and_duration(client, staff, caplog):
    caplog.set_level(logging.INFO, logger="tongdai.request")
    agent = staff[Role.AGENT]
    client.force_login(agent)
    response = client.get("/api/v1/customers/lookup", {"q": "0903 123 456"})
    assert response.status_code == 200
    [record] = request_records(caplog)
    assert len(response["X-Request-ID"]) == 32
    assert record.request_id == response["X-Request-ID"]
    assert (record.user_id, record.username) == (agent.pk, agent.username)
    assert (record.method, record.path, record.status) == ("GET", "/api/v1/customers/lookup", 200)
    assert 0 < record.duration_ms < 60_000
    # what was searched (the query string) is never logged
    assert "0903" not in JsonFormatter().format(record)


def test_a_well_formed_incoming_request_id_is_kept_and_a_malformed_one_replaced(client, db, caplog):
    caplog.set_level(logging.INFO, logger="tongdai.request")
    kept = client.get("/health/", HTTP_X_REQUEST_ID="lb-7f3a.42")
    assert kept["X-Request-ID"] == "lb-7f3a.42"
    replaced = client.get("/health/", HTTP_X_REQUEST_ID="<script>\n" + "x" * 10)
    assert replaced["X-Request-ID"] != "<script>\n" + "x" * 10
    assert len(replaced["X-Request-ID"]) == 32
    assert client.get("/health/", HTTP_X_REQUEST_ID="a" * 129)["X-Request-ID"] != "a" * 129
    first, second, _third = request_records(caplog)
    assert (first.request_id, first.user_id, first.username) == ("lb-7f3a.42", None, None)
    assert second.request_id == replaced["X-Request-ID"]


def test_a_failing_request_is_logged_as_an_error_with_its_status(client, db, caplog, monkeypatch):
    from crm import health

    monkeypatch.setitem(health.CHECKS, "task_cluster", lambda: {"ok": False})
    caplog.set_level(logging.INFO, logger="tongdai.request")
    client.get("/health/")
    [record] = request_records(caplog)
    assert (record.status, record.levelname) == (503, "ERROR")


def test_each_task_is_one_line_with_its_name_duration_and_success(db, caplog):
    caplog.set_level(logging.INFO, logger="tongdai.task")
    async_task("crm.tasks.cluster_heartbeat", task_name="beat")
    with pytest.raises(PermissionDenied):  # a sync task's failure is raised here; the cluster records it
        async_task("crm.tasks.refused_task", "os.system", task_name="refused")
    ok, failed = [r for r in caplog.records if r.name == "tongdai.task"]
    assert (ok.task_name, ok.func, ok.success, ok.levelname) == ("beat", "crm.tasks.cluster_heartbeat", True, "INFO")
    assert ok.duration_ms >= 0
    assert (failed.task_name, failed.success, failed.levelname) == ("refused", False, "WARNING")


def test_the_json_formatter_writes_one_object_a_line_with_the_extra_fields():
    record = logging.LogRecord("tongdai.request", logging.INFO, __file__, 1, "GET %s", ("/x",), None)
    record.status = 200
    record.username = "Nguyễn"
    token = current_request_id.set("abc")
    try:
        RequestIdFilter().filter(record)
    finally:
        current_request_id.reset(token)
    line = JsonFormatter().format(record)
    assert "\n" not in line
    entry = json.loads(line)
    assert entry["message"] == "GET /x"
    assert (entry["level"], entry["logger"], entry["status"], entry["username"]) == (
        "INFO",
        "tongdai.request",
        200,
        "Nguyễn",
    )
    assert entry["request_id"] == "abc"
    assert entry["time"].endswith("+00:00")
    assert "args" not in entry and "msg" not in entry


def test_log_format_json_is_the_production_default_and_plain_can_be_chosen():
    production = {"DEBUG": "0", "SECRET_KEY": "k" * 50, "ALLOWED_HOSTS": "cskh.example.vn"}
    result = run_manage("check", env=production)
    assert result.returncode == 0, result.stderr
    lines = [json.loads(line) for line in result.stderr.splitlines() if line.strip()]
    assert lines and all({"time", "level", "logger", "message"} <= line.keys() for line in lines)
    plain = run_manage("check", env={**production, "LOG_FORMAT": "plain"})
    assert plain.stderr.strip() and not plain.stderr.lstrip().startswith("{")
    wrong = run_manage("check", env={**production, "LOG_FORMAT": "xml"})
    assert "LOG_FORMAT must be json or plain, not 'xml'" in wrong.stderr


class CollectJson(logging.Handler):
    """The JSON lines the product writes, as a list."""

    def __init__(self):
        super().__init__()
        self.setFormatter(JsonFormatter())
        self.lines: list[str] = []

    def emit(self, record):
        self.lines.append(self.format(record))


@pytest.fixture
def json_log():
    handler = CollectJson()
    root = logging.getLogger()
    root.addHandler(handler)
    old = root.level
    root.setLevel(logging.INFO)
    yield handler
    root.removeHandler(handler)
    root.setLevel(old)


def test_a_4xx_answer_logs_the_path_but_not_the_searched_phone_or_name(client, staff, json_log):
    client.force_login(staff[Role.AGENT])
    # A card that is not there (404), with the caller's phone and name still in the URL of the lookup page.
    response = client.get("/api/v1/customers/999999999/", {"q": "0903123456", "name": "Nguyễn Văn An"})
    assert response.status_code == 404
    logged = "\n".join(json_log.lines)
    assert "Not Found" in logged  # django.request's line is there
    assert "0903123456" not in logged
    assert "Nguy" not in logged
    [django_line] = [json.loads(line) for line in json_log.lines if '"logger": "django.request"' in line]
    assert django_line["request"] == "GET /api/v1/customers/999999999/"
    assert django_line["status_code"] == 404


def test_a_request_for_another_host_logs_no_query_either(client, db, json_log):
    # django.security.DisallowedHost is written before any view, with the request as it came
    response = client.get("/health/", {"q": "0903123456"}, HTTP_HOST="evil.example")
    assert response.status_code == 400
    security = [json.loads(line) for line in json_log.lines if '"logger": "django.security' in line]
    assert security and security[0]["request"] == "GET /health/"
    assert "0903123456" not in "\n".join(json_log.lines)
