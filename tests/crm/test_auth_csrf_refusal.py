"""The API's refusal of a session request without its CSRF token is said in the caller's language (README, API:
errors in the caller's Accept-Language, Vietnamese by default), and refuses nothing else."""

import pytest
from django.middleware.csrf import get_token
from django.test import Client, RequestFactory
from django.utils import translation
from django.utils.translation import gettext

from crm.models import Role
from crm.tokens import api_token_create
from tickets.models import Ticket

URL = "/api/v1/tickets/"
REFUSAL = "The request lacks its CSRF token: reload the page and try again."


@pytest.fixture
def session_client(staff):
    client = Client(enforce_csrf_checks=True)
    client.force_login(staff[Role.AGENT])
    return client


@pytest.mark.parametrize("language", ["vi", "en"])
def test_auth_a_session_post_without_its_csrf_token_is_refused_in_the_callers_language(session_client, language):
    # when: a POST without the CSRF token, from a browser in that language
    response = session_client.post(URL, {}, content_type="application/json", HTTP_ACCEPT_LANGUAGE=language)
    # then: refused (403) with the project's reason in that language, DRF's English nowhere; nothing made
    assert response.status_code == 403
    with translation.override(language):
        expected = gettext(REFUSAL)
    assert response.json() == {"detail": expected}
    assert "CSRF Failed" not in expected and "CSRF cookie not set" not in expected
    assert not Ticket.objects.exists()


def test_auth_a_session_post_with_a_wrong_csrf_token_is_refused_the_same_way(session_client):
    session_client.cookies["csrftoken"] = "a" * 32
    response = session_client.post(
        URL, {}, content_type="application/json", HTTP_X_CSRFTOKEN="b" * 32, HTTP_ACCEPT_LANGUAGE="vi"
    )
    assert response.status_code == 403
    with translation.override("vi"):
        assert response.json() == {"detail": gettext(REFUSAL)}
    assert not Ticket.objects.exists()


def test_auth_a_session_post_with_its_csrf_token_passes_the_check(session_client):
    # given: the session's CSRF cookie and the same token in the header, as the admin's pages send it
    token = get_token(RequestFactory().get("/"))
    session_client.cookies["csrftoken"] = token
    # when: an empty ticket is sent
    response = session_client.post(URL, {}, content_type="application/json", HTTP_X_CSRFTOKEN=token)
    # then: past the CSRF check, refused by the ticket's own rules instead
    assert response.status_code == 400, response.content
    assert not Ticket.objects.exists()


def test_auth_a_token_post_needs_no_csrf_token(staff):
    # given: an integration with a token (no session, no cookie)
    _token, secret = api_token_create(actor=None, user=staff[Role.AGENT], name="website")
    client = Client(enforce_csrf_checks=True)
    # when
    response = client.post(URL, {}, content_type="application/json", HTTP_AUTHORIZATION=f"Token {secret}")
    # then: not a CSRF refusal (the ticket's own rules answer)
    assert response.status_code == 400, response.content
