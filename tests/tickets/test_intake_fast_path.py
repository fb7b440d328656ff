"""The fast path of POST /api/v1/tickets/ (``tickets.api.intake``): it takes the integrations' token requests and
answers exactly as the DRF view does; whatever it does not take, the DRF view answers, and nothing is written
twice or half."""

import json

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from rest_framework import serializers
from rest_framework.authtoken.models import Token

from crm.models import OutboxMessage, Role, StaffProfile
from tickets.api import intake
from tickets.api.serializers import TicketInSerializer, TicketSerializer
from tickets.models import Ticket, TicketEvent

URL = "/api/v1/tickets/"


@pytest.fixture
def taken(monkeypatch):
    """Records, per request, whether the fast path answered it (True) or handed it to the DRF view (False)."""
    record = []
    take = intake.take

    def spy(request, allow):
        response = take(request, allow)
        record.append(response is not None)
        return response

    monkeypatch.setattr(intake, "take", spy)
    return record


def _token(user) -> str:
    return Token.objects.create(user=user).key


def _post(client, token, payload, **headers):
    body = payload if isinstance(payload, str | bytes) else json.dumps(payload)
    return client.post(
        URL, body, content_type="application/json", HTTP_AUTHORIZATION=f"Token {token}", **headers
    )


# An unknown caller's request, routed to the home unit by its code.
UNKNOWN_CALLER = {
    "category": "outage",
    "channel": "phone",
    "description": "x",
    "unit_code": "PE0100",
    "caller_name": "An",
}


def _written():
    return (Ticket.objects.count(), TicketEvent.objects.count(), OutboxMessage.objects.count())


def test_a_token_request_is_taken_and_answered_as_the_drf_view_answers(
    client, staff, make_customer, catalogue, dispatcher, taken, monkeypatch
):
    customer = make_customer(phones=["0903 111 222"])
    token = _token(staff[Role.AGENT])
    payload = {"category": " outage ", "channel": "zalo", "description": "  Mất điện  ", "customer_code": customer.code,
               "priority": "urgent", "ignored": [1, 2]}  # fmt: skip

    fast = _post(client, token, payload, HTTP_IDEMPOTENCY_KEY="zalo-1")
    assert taken == [True]
    ticket = Ticket.objects.get(idempotency_key="zalo-1")
    assert (ticket.customer, ticket.unit, ticket.category, ticket.priority, ticket.description) == (
        customer, customer.unit, catalogue["outage"], "urgent", "Mất điện",
    )  # fmt: skip
    assert ticket.created_by == staff[Role.AGENT]
    assert TicketEvent.objects.filter(ticket=ticket, kind="created").count() == 1
    dispatchers = StaffProfile.objects.filter(role=Role.DISPATCHER, units=customer.unit).count()
    assert dispatchers >= 1
    assert (
        OutboxMessage.objects.filter(dedupe_key__startswith=f"ticket:{ticket.pk}:routed:").count()
        == dispatchers
    )

    # The same request through the DRF view: a second ticket of the same category, so the warning shows too.
    monkeypatch.setattr(intake, "take", lambda request, allow: None)
    slow = _post(client, token, payload, HTTP_IDEMPOTENCY_KEY="zalo-2")
    other = Ticket.objects.get(idempotency_key="zalo-2")
    assert (fast.status_code, slow.status_code) == (201, 201)
    for header in ("Content-Type", "Allow", "Content-Language"):
        assert fast[header] == slow[header], header
    # The DRF view tries the session first, so its answer also varies with the cookie; this one does not.
    assert fast["Vary"] == slow["Vary"].replace(", Cookie", "") == "Accept, Accept-Language"
    assert fast.json() == {**json.loads(json.dumps(TicketSerializer(ticket).data)), "warnings": []}
    expected = {**json.loads(json.dumps(TicketSerializer(other).data)),
                "warnings": [f"The customer already has an open ticket of this category: {ticket.number}"]}  # fmt: skip
    assert slow.json() == expected
    assert set(fast.json()) == set(slow.json())


def test_the_fast_path_gives_the_drf_views_warning_and_honours_the_idempotency_key(
    client, staff, make_customer, catalogue, dispatcher, taken
):
    customer = make_customer()
    token = _token(staff[Role.AGENT])
    payload = {
        "category": "outage",
        "channel": "app",
        "description": "Mất điện",
        "customer_code": customer.code,
    }
    first = _post(client, token, payload, HTTP_IDEMPOTENCY_KEY="app-9")
    written = _written()
    again = _post(client, token, payload, HTTP_IDEMPOTENCY_KEY="app-9")
    assert taken == [True, True]
    assert (first.status_code, again.status_code) == (201, 200)
    assert again.json()["number"] == first.json()["number"]
    assert _written() == written  # the retry wrote nothing
    third = _post(client, token, payload)
    assert third.status_code == 201
    assert third.json()["warnings"] == [
        f"The customer already has an open ticket of this category: {first.json()['number']}"
    ]


def test_what_the_fast_path_does_not_take_the_drf_view_answers_and_nothing_is_written(
    client, staff, make_customer, catalogue, two_customers, taken
):
    _mine, theirs = two_customers
    token = _token(staff[Role.AGENT])
    crew = staff[Role.FIELD_CREW]
    assert not crew.has_perm("tickets.add_ticket")
    crew_token = _token(crew)
    good = UNKNOWN_CALLER
    before = _written()
    cases = [
        (_post(client, "not-a-token", good), 403, "detail"),  # DRF: 403, its first scheme being the session
        (_post(client, crew_token, good), 403, "detail"),
        (_post(client, token, "{not json"), 400, "detail"),
        (_post(client, token, '{"category": "outage", "description": NaN}'), 400, "detail"),
        (_post(client, token, {**good, "category": "nope"}), 400, "category"),
        (_post(client, token, {**good, "channel": "fax"}), 400, "channel"),
        (_post(client, token, {**good, "description": "   "}), 400, "description"),
        (_post(client, token, {**good, "description": "x" * 4001}), 400, "description"),
        (_post(client, token, {**good, "description": "a\x00b"}), 400, "description"),
        (_post(client, token, {**good, "customer_code": theirs.code}), 400, "customer_code"),
        (_post(client, token, {**good, "caller_phone": "abc"}), 400, "caller_phone"),
        (_post(client, token, {**good, "unit_code": ""}), 400, "unit"),
        (_post(client, token, good, HTTP_IDEMPOTENCY_KEY="k" * 101), 400, "Idempotency-Key"),
        (
            _post(client, token, {**good, "description": "x" * 3_000_000}),
            413,
            "detail",
        ),  # over the body limit
    ]
    assert taken == [False] * len(cases)
    for response, status, field in cases:
        assert response.status_code == status, response.content[:300]
        assert field in response.json(), response.content
    assert _written() == before


def test_a_session_or_a_form_goes_to_the_drf_view(client, staff, catalogue, taken):
    good = UNKNOWN_CALLER
    agent = staff[Role.AGENT]
    token = _token(agent)
    form = client.post(URL, good, HTTP_AUTHORIZATION=f"Token {token}")  # multipart
    client.force_login(agent)
    session = client.post(URL, good, content_type="application/json", HTTP_AUTHORIZATION=f"Token {token}")
    assert taken == [False, False]
    assert (form.status_code, session.status_code) == (201, 201)
    assert Ticket.objects.count() == 2


GOOD = {"category": "outage", "channel": "sms", "description": "Mất điện"}


@pytest.mark.parametrize(
    "payload",
    [
        GOOD,
        {
            **GOOD,
            "priority": "urgent",
            "caller_name": "  An  ",
            "caller_phone": "0903 111 222",
            "other": None,
        },
        {**GOOD, "category": " outage", "customer_code": " pe01 ", "contract_number": "", "unit_code": ""},
        {**GOOD, "caller_address": "x" * 300},
        {**GOOD, "caller_address": "x" * 301},
        {**GOOD, "caller_name": "x" * 201},
        {**GOOD, "description": ""},
        {**GOOD, "description": "\t\n"},
        {**GOOD, "description": "\ud800"},
        {**GOOD, "description": 12},
        {**GOOD, "description": None},
        {**GOOD, "description": ["x"]},
        {**GOOD, "customer_code": 4411},
        {**GOOD, "caller_name": True},
        {**GOOD, "priority": None},
        {**GOOD, "priority": ""},
        {**GOOD, "priority": "URGENT"},
        {**GOOD, "channel": "Zalo"},
        {**GOOD, "category": "OUTAGE"},
        {k: v for k, v in GOOD.items() if k != "channel"},
        {k: v for k, v in GOOD.items() if k != "description"},
        ["not", "an", "object"],
    ],
)
def test_the_fast_paths_field_rules_accept_only_what_the_serializer_accepts_and_give_its_values(
    payload, catalogue
):
    fast = intake._validated(payload)
    try:
        drf = dict(TicketInSerializer().to_internal_value(payload))
    except serializers.ValidationError:
        drf = None
    if fast is not None:
        assert fast == drf
    if payload in (GOOD, {**GOOD, "caller_address": "x" * 300}):
        assert fast is not None  # the common request is taken


def test_the_fast_path_reads_the_same_rows_as_the_drf_view(
    client, staff, make_customer, catalogue, dispatcher, settings, monkeypatch
):
    settings.TONGDAI_AUTH_CACHE_SECONDS = 30
    customers = [make_customer(), make_customer(), make_customer()]
    token = _token(staff[Role.AGENT])
    payload = {"category": "outage", "channel": "app", "description": "Mất điện"}
    _post(client, token, {**payload, "customer_code": customers[0].code})  # fills the process's caches
    monkeypatch.setattr(intake, "take", lambda request, allow: None)
    with CaptureQueriesContext(connection) as through_drf:
        assert _post(client, token, {**payload, "customer_code": customers[1].code}).status_code == 201
    monkeypatch.undo()
    with CaptureQueriesContext(connection) as fast:
        assert _post(client, token, {**payload, "customer_code": customers[2].code}).status_code == 201
    assert len(fast) == len(through_drf), [q["sql"][:80] for q in fast]
