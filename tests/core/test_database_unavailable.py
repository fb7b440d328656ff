"""While the database cannot be reached (a PostgreSQL restart), requests answer 503 with Retry-After (JSON on
the API, a short Vietnamese page elsewhere), never Django's HTML 500 page."""

from __future__ import annotations

import contextlib

import pytest
from django.db import IntegrityError, InterfaceError, OperationalError, connection
from django.test import Client, RequestFactory

from core.middleware import server_error
from crm.models import Role

MESSAGE_VI = "Hệ thống tạm thời gián đoạn (cơ sở dữ liệu). Vui lòng thử lại sau vài giây."


@contextlib.contextmanager
def failing_queries(table: str, error=OperationalError):
    """Every statement that names ``table`` fails as it would while the server restarts."""

    def wrapper(execute, sql, params, many, context):
        if table in sql:
            raise error("terminating connection due to administrator command")
        return execute(sql, params, many, context)

    with connection.execute_wrapper(wrapper):
        yield


@pytest.mark.parametrize("error", [OperationalError, InterfaceError])
def test_an_api_request_answers_json_503_with_retry_after(client, staff, error):
    client.force_login(staff[Role.AGENT])
    with failing_queries("crm_unit", error):
        response = client.get("/api/v1/units/")
    assert response.status_code == 503
    assert response["Content-Type"] == "application/json"
    assert response["Retry-After"] == "10"
    assert response.json() == {
        "detail": "The system is briefly unavailable (database). Please try again in a few seconds."
    }
    # the database back, the same request is answered
    assert client.get("/api/v1/units/").status_code == 200


def test_a_page_answers_a_short_vietnamese_503_with_retry_after(client, staff):
    client.force_login(staff[Role.FIELD_CREW])
    with failing_queries("tickets_workorder"):
        response = client.get("/field/", HTTP_ACCEPT_LANGUAGE="vi")
    assert response.status_code == 503
    assert response["Content-Type"] == "text/plain; charset=utf-8"
    assert response["Retry-After"] == "10"
    assert response.content.decode() == MESSAGE_VI
    assert response["Cache-Control"] == "private, no-store"


def test_an_error_of_the_data_is_not_taken_for_an_unavailable_database(client, staff):
    client.force_login(staff[Role.AGENT])
    with failing_queries("crm_unit", IntegrityError), pytest.raises(IntegrityError):
        client.get("/api/v1/units/")


def test_a_connection_error_outside_a_view_gets_the_503_too_and_other_errors_the_500_page(settings, db):
    settings.DEBUG = False
    request = RequestFactory().get("/api/v1/tickets/")
    try:
        raise OperationalError("the database system is starting up")
    except OperationalError:
        response = server_error(request)
    assert (response.status_code, response["Retry-After"]) == (503, "10")
    try:
        raise ValueError("a bug")
    except ValueError:
        response = server_error(RequestFactory().get("/admin/"))
    assert response.status_code == 500
    assert "Retry-After" not in response


def test_a_session_that_cannot_be_read_answers_503_through_the_error_handler(staff, settings):
    settings.DEBUG = False
    client = Client(raise_request_exception=False)
    client.force_login(staff[Role.AGENT])
    with failing_queries("django_session"):
        response = client.get("/admin/", HTTP_ACCEPT_LANGUAGE="vi")
    assert response.status_code == 503
    assert response.content.decode() == MESSAGE_VI
