"""A request Django will not read gets the API's JSON answer with its reason, and writes nothing."""

import json

from crm.models import Role
from tickets.models import Ticket

URL = "/api/v1/tickets/"
REQUEST = {"category": "outage", "channel": "phone", "unit_code": "PE0100", "caller_name": "An"}


def test_a_body_over_the_limit_is_a_413_with_the_limit_and_writes_nothing(client, staff, catalogue, settings):
    settings.DATA_UPLOAD_MAX_MEMORY_SIZE = 10_000
    client.force_login(staff[Role.AGENT])
    body = json.dumps({**REQUEST, "description": "x" * 20_000})

    response = client.post(URL, body, content_type="application/json")

    assert response.status_code == 413
    assert response["Content-Type"] == "application/json"
    assert response.json() == {"detail": "The request body is larger than 10,000 bytes; send less."}
    assert Ticket.objects.count() == 0
    # The same request within the limit is taken: the refusal was the size, nothing else.
    small = client.post(
        URL, json.dumps({**REQUEST, "description": "x" * 100}), content_type="application/json"
    )
    assert small.status_code == 201, small.content
    assert Ticket.objects.count() == 1


def test_a_form_with_too_many_fields_is_a_400_with_a_message(client, staff, catalogue, settings):
    settings.DATA_UPLOAD_MAX_NUMBER_FIELDS = 10
    client.force_login(staff[Role.AGENT])
    form = {**REQUEST, "description": "x", **{f"extra{i}": "1" for i in range(20)}}

    response = client.post(URL, form)

    assert response.status_code == 400
    assert response.json() == {"detail": "The request has too many fields or files."}
    assert Ticket.objects.count() == 0
