"""Logs a machine reads: one JSON object a line (``LOG_FORMAT=json``, the default with DEBUG off), one line per
request and per task run by the cluster.

- ``JsonFormatter``: time (UTC, ISO 8601), level, logger, message, and every field passed in ``extra``; a
  request among them (Django's own lines on ``django.request`` and ``django.security.*`` pass one) is written as
  its method and path only, never with its query string.
- ``RequestLogMiddleware``: gives each request an id (the caller's ``X-Request-ID`` when it is a plain token of
  at most 128 characters, else a new one), returns it as ``X-Request-ID``, tags every log line written during
  the request with it, and logs the request on ``tongdai.request``: id, user id and username, method, path
  (never the query string, which carries what was searched: names, phones), status and duration.
- ``task_started``/``task_finished`` (django-q2's ``pre_execute`` and ``post_execute_in_worker`` signals): one
  line per task on ``tongdai.task``: its name, id, function, duration and success.
"""

from __future__ import annotations

import contextvars
import datetime as dt
import json
import logging
import re
import time
import uuid

from django.db import DatabaseError
from django.http import HttpRequest

request_logger = logging.getLogger("tongdai.request")
task_logger = logging.getLogger("tongdai.task")

REQUEST_ID = re.compile(r"[A-Za-z0-9._:-]{1,128}")
current_request_id: contextvars.ContextVar[str | None] = contextvars.ContextVar("request_id", default=None)

# The attributes every LogRecord has: anything else on a record came from ``extra``.
STANDARD_ATTRIBUTES = frozenset(vars(logging.LogRecord("", 0, "", 0, "", (), None))) | {"message", "asctime"}


class JsonFormatter(logging.Formatter):
    """One JSON object per record, on one line."""

    def format(self, record: logging.LogRecord) -> str:
        entry = {
            "time": dt.datetime.fromtimestamp(record.created, dt.UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        entry.update(
            (key, without_query(value))
            for key, value in vars(record).items()
            if key not in STANDARD_ATTRIBUTES and key != "msg"
        )
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        if record.stack_info:
            entry["stack"] = self.formatStack(record.stack_info)
        return json.dumps(entry, ensure_ascii=False, default=str)


def without_query(value):
    """A field as it may be logged: a request as its method and path (its query string carries what was
    searched: names, phones, national ids), anything else as it is."""
    if isinstance(value, HttpRequest):
        return f"{value.method} {value.path}"
    return value


class RequestIdFilter(logging.Filter):
    """Tags a record written while a request is answered with that request's id."""

    def filter(self, record: logging.LogRecord) -> bool:
        if not hasattr(record, "request_id"):
            request_id = current_request_id.get()
            if request_id is not None:
                record.request_id = request_id
        return True


def request_user(request) -> tuple[int | None, str | None]:
    """The signed-in user's id and username, or (None, None); never fails (the database may be down)."""
    user = getattr(request, "user", None)
    try:
        if user is not None and user.is_authenticated:
            return user.pk, user.get_username()
    except DatabaseError:
        pass
    return None, None


class RequestLogMiddleware:
    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        started = time.perf_counter()
        incoming = request.headers.get("X-Request-ID", "")
        request.request_id = incoming if REQUEST_ID.fullmatch(incoming) else uuid.uuid4().hex
        token = current_request_id.set(request.request_id)
        try:
            response = self.get_response(request)
            response["X-Request-ID"] = request.request_id
            duration_ms = round((time.perf_counter() - started) * 1000, 1)
            user_id, username = request_user(request)
            request_logger.log(
                logging.ERROR if response.status_code >= 500 else logging.INFO,
                "%s %s %s %.1f ms",
                request.method,
                request.path,
                response.status_code,
                duration_ms,
                extra={
                    "request_id": request.request_id,
                    "user_id": user_id,
                    "username": username,
                    "method": request.method,
                    "path": request.path,
                    "status": response.status_code,
                    "duration_ms": duration_ms,
                },
            )
            return response
        finally:
            current_request_id.reset(token)


STARTED_KEY = "tongdai_started"


def task_started(sender, func=None, task=None, **kwargs) -> None:
    if task is not None:
        task[STARTED_KEY] = time.perf_counter()


def task_finished(sender, func=None, task=None, **kwargs) -> None:
    if task is None:
        return
    started = task.pop(STARTED_KEY, None)
    duration_ms = round((time.perf_counter() - started) * 1000, 1) if started is not None else None
    success = bool(task.get("success", False))
    from core.task_registry import dotted_name

    func_name = dotted_name(task.get("func") or func)
    task_logger.log(
        logging.INFO if success else logging.WARNING,
        "task %s (%s) %s in %s ms",
        task.get("name"),
        func_name,
        "succeeded" if success else "failed",
        duration_ms,
        extra={
            "task_name": task.get("name"),
            "task_id": task.get("id"),
            "func": func_name,
            "duration_ms": duration_ms,
            "success": success,
        },
    )
