"""Bad input the API refuses with a clear 400 in the caller's language, changing nothing: a body in a charset
that is no text, a date at the end of the calendar, DRF's own refusals in Vietnamese, a NUL in a query, filters
by code and strict booleans, a cursor the list did not give, a register with digits too many, and an
idempotent retry of a ticket that has since gone to another unit."""

import json

import pytest

from billing.models import MeterReading
from crm.models import Role
from customers import services as customer_services
from tickets.models import Interaction, Ticket

INTAKE = {"category": "outage", "channel": "phone", "unit_code": "PE0100", "caller_name": "An", "description": "x"}


# 1 ------------------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("charset", ["rot13", "zlib", "bz2"])
def test_a_json_body_with_a_non_text_charset_is_a_400_not_a_500(client, staff, catalogue, charset):
    client.force_login(staff[Role.AGENT])
    client.raise_request_exception = False
    response = client.generic(
        "POST", "/api/v1/tickets/", json.dumps(INTAKE).encode(), content_type=f"application/json; charset={charset}"
    )
    assert response.status_code == 400, response.content[:200]
    assert response.json()["detail"]
    assert Ticket.objects.count() == 0


# 2 ------------------------------------------------------------------------------------------------------------
def test_an_interaction_starting_at_the_end_of_the_calendar_is_a_400_not_a_500(client, staff, org):
    client.force_login(staff[Role.AGENT])
    client.raise_request_exception = False
    response = client.post(
        "/api/v1/interactions/",
        {"channel": "phone", "disposition": "ticket", "started_at": "9999-12-31T23:59:59+07:00",
         "handling_seconds": 60},
        content_type="application/json",
    )  # fmt: skip
    assert response.status_code == 400, response.content[:200]
    assert "started_at" in response.json()
    assert Interaction.objects.count() == 0


# 3 ------------------------------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("body", "field", "english"),
    [
        ({**INTAKE, "priority": None}, "priority", "This field may not be null."),
        ({**INTAKE, "description": ["x"]}, "description", "Not a valid string."),
        ({**INTAKE, "channel": "fax"}, "channel", '"fax" is not a valid choice.'),
        ({**INTAKE, "category": "nope"}, "category", "Object with code=nope does not exist."),
        ({**INTAKE, "incident": "abc"}, "incident", "A valid integer is required."),
        ({**INTAKE, "description": "x" * 4001}, "description", "Ensure this field has no more than 4000 characters."),
        ([INTAKE], "non_field_errors", "Invalid data. Expected a dictionary, but got list."),
    ],
)
def test_drf_field_refusals_speak_vietnamese(client, staff, catalogue, body, field, english):
    client.force_login(staff[Role.AGENT])
    response = client.post(
        "/api/v1/tickets/", json.dumps(body), content_type="application/json", HTTP_ACCEPT_LANGUAGE="vi"
    )
    assert response.status_code == 400
    assert response.json()[field] != [english]  # the English text, untranslated, to a Vietnamese caller
    assert Ticket.objects.count() == 0


# 4 ------------------------------------------------------------------------------------------------------------
def test_outage_status_with_a_nul_in_the_customer_code_is_a_400(client, staff, org):
    client.force_login(staff[Role.AGENT])
    client.raise_request_exception = False
    response = client.get("/api/v1/outages/status/?customer_code=PE01%00")
    assert response.status_code == 400, response.content[:200]  # on PostgreSQL this query is a 500
    assert "customer_code" in response.json()


# 5 ------------------------------------------------------------------------------------------------------------
def test_the_interactions_unit_filter_takes_a_units_code_like_every_other_list(client, staff, org):
    client.force_login(staff[Role.AGENT])
    assert client.get("/api/v1/tickets/?unit=PE0100").status_code == 200  # the other lists: by code
    by_code = client.get("/api/v1/interactions/?unit=PE0100")
    assert by_code.status_code == 200, by_code.json()
    other = client.get(f"/api/v1/interactions/?unit={org['other_corporation'].code}")
    assert other.status_code == 400  # a unit the caller may not see is named as such, not an empty list


def test_the_interactions_unit_filter_does_not_take_other_units_ids(client, staff, org):
    client.force_login(staff[Role.AGENT])
    response = client.get(f"/api/v1/interactions/?unit={org['other_corporation'].pk}")
    assert response.status_code == 400  # not an empty list: no oracle of which ids exist


# 6 ------------------------------------------------------------------------------------------------------------
def test_a_malformed_is_nuisance_filter_is_a_400_not_the_whole_list(client, staff, make_customer):
    calm = make_customer(name="Lê Văn Bình", phones=["0903 555 666"])
    nuisance = make_customer(name="Phạm Văn Cường", phones=["0903 777 888"])
    customer_services.customer_flag_nuisance(actor=None, customer=nuisance, reason="Gọi quấy rối")
    client.force_login(staff[Role.AGENT])
    assert [c["code"] for c in client.get("/api/v1/customers/?is_nuisance=true").json()["results"]] == [
        nuisance.code
    ]
    response = client.get("/api/v1/customers/?is_nuisance=yes")
    codes = [c["code"] for c in response.json().get("results", [])] if response.status_code == 200 else []
    assert calm.code not in codes  # not every customer, the filter dropped
    assert response.status_code == 400


# 7 ------------------------------------------------------------------------------------------------------------
def test_a_malformed_cursor_is_a_400_in_the_callers_language(client, staff, org):
    client.force_login(staff[Role.AGENT])
    response = client.get("/api/v1/tickets/?cursor=abc", HTTP_ACCEPT_LANGUAGE="vi")
    assert response.status_code == 400
    assert response.json() != {"detail": "Invalid cursor"}


# 8 ------------------------------------------------------------------------------------------------------------
def test_a_reading_whose_kwh_does_not_fit_the_column_is_a_400(client, org, make_customer, make_staff):
    from billing import services as billing

    billing.tariffs_load_reference()
    customer = make_customer()
    contract = customer.contracts.get()
    client.force_login(make_staff(Role.BILLING_CLERK, [org["home"]]))
    client.raise_request_exception = False
    response = client.post(
        "/api/v1/readings/",
        {"contract_number": contract.number, "period": "2025-10-01", "value": 10**12, "source": "handheld"},
        content_type="application/json",
    )
    # value is within the serializer's max (10**12) but kwh (PositiveIntegerField, < 2**31) is not:
    # SQLite stores it, PostgreSQL raises "integer out of range" (a 500).
    assert response.status_code == 400, response.content[:300]
    assert not MeterReading.objects.filter(contract=contract).exists()


# 9 ------------------------------------------------------------------------------------------------------------
def test_an_idempotent_retry_does_not_show_a_ticket_now_outside_the_callers_units(client, staff, org, catalogue):
    from tickets import services as ticket_services

    client.force_login(staff[Role.AGENT])
    body = json.dumps({**INTAKE, "caller_phone": "0903 123 456"})
    first = client.post("/api/v1/tickets/", body, content_type="application/json", HTTP_IDEMPOTENCY_KEY="k")
    assert first.status_code == 201
    ticket = Ticket.objects.get()
    ticket_services.ticket_reroute(actor=None, ticket=ticket, unit=org["other_corporation"], reason="Sai địa bàn")
    assert client.get(f"/api/v1/tickets/{ticket.pk}/").status_code == 404  # out of the agent's scope now

    retry = client.post("/api/v1/tickets/", body, content_type="application/json", HTTP_IDEMPOTENCY_KEY="k")
    # its number, which the first answer gave, and nothing of what the ticket holds now
    assert retry.status_code == 200
    assert retry.json() == {
        "number": ticket.number, "detail": "Taken before; the ticket is now with another unit."
    }
    assert Ticket.objects.count() == 1


def test_a_level_that_is_not_a_whole_number_is_refused_not_an_empty_list(client, staff, org):
    client.force_login(staff[Role.AGENT])
    assert client.get("/api/v1/tickets/?escalation_level=1").status_code == 200
    refused = client.get("/api/v1/tickets/?escalation_level=1.5")
    assert refused.status_code == 400
    assert "escalation_level" in refused.json()


def test_a_length_refusal_speaks_each_callers_language_whoever_was_refused_first(client, staff, catalogue):
    """The intake serializer's fields are built once and copied for each request: a refusal's message formatted
    for an English caller must not answer a Vietnamese one afterwards, nor the other way round."""
    client.force_login(staff[Role.AGENT])
    body = json.dumps({**INTAKE, "description": "x" * 4001})
    answers = {}
    for language in ("en", "vi", "en", "vi"):
        response = client.post("/api/v1/tickets/", body, content_type="application/json",
                               HTTP_ACCEPT_LANGUAGE=language)  # fmt: skip
        assert response.status_code == 400
        answers.setdefault(language, set()).add(response.json()["description"][0])
    assert answers["en"] == {"Ensure this field has no more than 4000 characters."}
    assert len(answers["vi"]) == 1 and answers["vi"] != answers["en"]
    assert Ticket.objects.count() == 0
