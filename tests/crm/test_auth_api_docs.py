"""The API docs page sends someone not signed in (or whose session owes its second-factor code) to the sign-in
page, as the field page does; the schema keeps the API's 401."""

from urllib.parse import quote

import pytest
from django.urls import reverse

from crm.models import Role
from crm.tokens import api_token_create


def _sent_to_sign_in(response, path):
    return response.status_code == 302 and response["Location"] == f"{reverse('admin:login')}?next={quote(path)}"


@pytest.mark.parametrize("query", ["", "?script"])
def test_auth_the_api_docs_page_sends_a_signed_out_visitor_to_sign_in(client, db, query):
    # when: someone not signed in opens the docs page (or its start-up script) in a Vietnamese browser
    response = client.get(reverse("api-docs") + query, HTTP_ACCEPT_LANGUAGE="vi")
    # then: sent to the sign-in page, and back to the docs after it
    assert _sent_to_sign_in(response, reverse("api-docs") + query), response.get("Location")


def test_auth_a_session_owing_its_second_factor_is_sent_to_sign_in(client, staff, settings):
    # given: an administrator's session opened without the authenticator's code
    settings.TONGDAI_ADMIN_2FA = True
    client.force_login(staff[Role.ADMINISTRATOR])
    # when
    response = client.get(reverse("api-docs"))
    # then
    assert _sent_to_sign_in(response, reverse("api-docs"))


def test_auth_a_token_alone_does_not_open_the_docs_page_but_reads_the_schema(client, staff):
    # given: an integration's token and no session
    _token, secret = api_token_create(actor=None, user=staff[Role.AGENT], name="website")
    header = {"HTTP_AUTHORIZATION": f"Token {secret}"}
    # then: the page is for a browser signed in; the schema answers the token as the API does
    assert _sent_to_sign_in(client.get(reverse("api-docs"), **header), reverse("api-docs"))
    assert client.get(reverse("schema"), HTTP_ACCEPT="application/json", **header).status_code == 200


def test_auth_the_schema_still_answers_401_to_a_signed_out_caller(client, db):
    response = client.get(reverse("schema"), HTTP_ACCEPT="application/json")
    assert response.status_code == 401


def test_auth_a_signed_in_member_of_staff_reads_the_docs_page(client, staff):
    client.force_login(staff[Role.AGENT])
    response = client.get(reverse("api-docs"))
    assert response.status_code == 200
    assert "swagger-ui" in response.content.decode()
