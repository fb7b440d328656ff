"""The REST API as an integrator sees it: a work order sent with a blank crew goes to the unit's dispatchers; a
JSON body holding half of a UTF-16 pair (``"\\ud800"``, valid JSON but no text) is refused where it is read, a
400 naming the field in the caller's language, on every endpoint and in the admin's JSON fields; what the API
answers ``null`` is ``nullable`` in the published schema; a call's start is refused before 2000 or ahead of
the clock; a dispute's claim is composed before its limit is counted."""

from __future__ import annotations

import datetime as dt
import json
import unicodedata

import pytest
from django.contrib.auth import get_user_model
from django.urls import reverse
from django.utils import timezone, translation
from django.utils.html import escape

from billing.api.serializers import DisputeInSerializer
from billing.models import Invoice, MeterReading, Payment, RebateProgramme
from core import json_input
from core.text import DESCRIPTION_MAX_CHARS
from crm.models import Role
from tests.core.test_json_depth import WRITING, api_endpoints, our_rows
from tickets.models import Interaction, Ticket, WorkOrder
from tickets.services import ticket_open

# -- A blank crew is the unit's dispatchers --------------------------------------------------------------------


@pytest.mark.parametrize("crew", ["", "   "])
def test_a_work_order_with_a_blank_crew_goes_to_the_dispatchers_not_a_500(
    client, staff, two_customers, catalogue, crew
):
    mine, _theirs = two_customers
    ticket = ticket_open(
        actor=None, category=catalogue["billing"], channel="phone", description="Hóa đơn cao", customer=mine
    ).ticket
    before = set(WorkOrder.objects.values_list("pk", flat=True))
    client.force_login(staff[Role.DISPATCHER])
    client.raise_request_exception = False
    response = client.post(
        f"/api/v1/tickets/{ticket.pk}/work-orders/", {"crew": crew, "note": "Đi kiểm tra"},
        content_type="application/json", HTTP_ACCEPT_LANGUAGE="vi",
    )  # fmt: skip
    assert response.status_code == 201, response.content[:300]
    assert response.json()["crew"] is None
    (created,) = WorkOrder.objects.exclude(pk__in=before)
    assert (created.pk, created.ticket_id, created.crew_id, created.note) == (
        response.json()["id"], ticket.pk, None, "Đi kiểm tra"
    )  # fmt: skip


@pytest.mark.parametrize("crew", ["", "   ", None])
def test_assigning_a_work_order_to_a_blank_crew_sends_it_back_to_the_dispatchers(
    client, staff, two_customers, crew
):
    mine, _theirs = two_customers
    order = WorkOrder.objects.filter(ticket__customer=mine).get()
    client.force_login(staff[Role.DISPATCHER])
    sent = client.post(
        f"/api/v1/work-orders/{order.pk}/assign/", {"crew": staff[Role.FIELD_CREW].username},
        content_type="application/json",
    )  # fmt: skip
    assert sent.status_code == 200, sent.content[:300]
    order.refresh_from_db()
    assert order.crew == staff[Role.FIELD_CREW]
    client.raise_request_exception = False
    response = client.post(
        f"/api/v1/work-orders/{order.pk}/assign/", {"crew": crew}, content_type="application/json",
        HTTP_ACCEPT_LANGUAGE="vi",
    )  # fmt: skip
    assert response.status_code == 200, response.content[:300]
    assert response.json()["crew"] is None
    order.refresh_from_db()
    assert order.crew is None


def test_a_crew_that_is_not_blank_is_still_looked_up(client, staff, two_customers):
    mine, _theirs = two_customers
    order = WorkOrder.objects.filter(ticket__customer=mine).get()
    client.force_login(staff[Role.DISPATCHER])
    refused = client.post(
        f"/api/v1/work-orders/{order.pk}/assign/", {"crew": " nobody-here "}, content_type="application/json"
    )
    assert refused.status_code == 400
    assert refused.json() == {
        "crew": ["No crew member with the username nobody-here among those you may send."]
    }
    order.refresh_from_db()
    assert order.crew is None


# -- Half of a UTF-16 pair in a JSON body ----------------------------------------------------------------------

INTAKE = {
    "category": "outage",
    "channel": "phone",
    "unit_code": "PE0100",
    "caller_name": "An",
    "description": "x",
}
SURROGATE = '"\\ud800"'  # as a client's JSON encoder writes it


def _with_surrogate(body: dict, field: str) -> str:
    return json.dumps({**body, field: "@@"}).replace('"@@"', SURROGATE)


def _post(client, url, body, field):
    return client.post(
        url, _with_surrogate(body, field), content_type="application/json", HTTP_ACCEPT_LANGUAGE="vi"
    )


def refusal(code_point: int = 0xD800) -> list[str]:
    with translation.override("vi"):
        return [json_input.unpaired_surrogate_message(code_point)]


@pytest.mark.parametrize("field", ["channel", "priority", "category", "description", "caller_phone"])
def test_a_lone_surrogate_in_an_intake_field_is_a_400_naming_the_field(client, staff, catalogue, field):
    client.force_login(staff[Role.AGENT])
    client.raise_request_exception = False
    response = _post(client, "/api/v1/tickets/", INTAKE, field)
    assert response.status_code == 400, response.content[:200]
    assert response.json() == {field: refusal()}
    with translation.override("en"):  # the catalogue has it in Vietnamese
        assert refusal() != [json_input.unpaired_surrogate_message(0xD800)]
    assert Ticket.objects.count() == 0


def test_drfs_own_refusal_of_half_a_character_speaks_vietnamese():
    """What DRF's text fields say when a half character reaches them other than through a JSON body."""
    from rest_framework.exceptions import ValidationError
    from rest_framework.validators import ProhibitSurrogateCharactersValidator

    with translation.override("vi"), pytest.raises(ValidationError) as refused:
        ProhibitSurrogateCharactersValidator()("x\ud800")
    assert refused.value.detail == ["Không được chứa ký tự thay thế (surrogate): U+D800."]


def test_a_lone_surrogate_in_an_interactions_disposition_is_a_400_not_a_500(client, staff, org):
    client.force_login(staff[Role.AGENT])
    client.raise_request_exception = False
    body = {"channel": "phone", "started_at": "2025-10-01T08:00:00+07:00", "handling_seconds": 60}
    response = _post(client, "/api/v1/interactions/", body, "disposition")
    assert response.status_code == 400, response.content[:200]
    assert response.json() == {"disposition": refusal()}
    assert Interaction.objects.count() == 0


def test_a_lone_surrogate_in_a_payments_source_is_a_400_not_a_500(client, staff, two_customers):
    mine, _theirs = two_customers
    invoice = Invoice.objects.filter(customer=mine).first()
    before = list(Payment.objects.values_list("pk", "amount"))
    client.force_login(staff[Role.ADMINISTRATOR])
    client.raise_request_exception = False
    body = {"amount": 1000, "paid_at": "2025-10-01T08:00:00+07:00", "reference": "FT123"}
    response = _post(client, f"/api/v1/invoices/{invoice.pk}/payments/", body, "source")
    assert response.status_code == 400, response.content[:200]
    assert response.json() == {"source": refusal()}
    assert list(Payment.objects.values_list("pk", "amount")) == before


def test_a_lone_surrogate_in_a_readings_source_is_a_400_not_a_500(client, staff, two_customers):
    mine, _theirs = two_customers
    before = list(MeterReading.objects.values_list("pk", "value"))
    client.force_login(staff[Role.ADMINISTRATOR])
    client.raise_request_exception = False
    body = {"contract_number": mine.contracts.get().number, "period": "2025-10", "value": 10}
    response = _post(client, "/api/v1/readings/", body, "source")
    assert response.status_code == 400, response.content[:200]
    assert response.json() == {"source": refusal()}
    assert list(MeterReading.objects.values_list("pk", "value")) == before


def test_the_refusal_says_where_the_half_character_is_without_echoing_it():
    m = json_input.unpaired_surrogate_message
    cases = {
        '{"a": [1, {"b": "x\\uDC00y"}]}': {"a": {1: {"b": [m(0xDC00)]}}},
        '"\\ud800"': m(0xD800),  # a bare string: the refusal alone
        '{"\\udbff": 1, "a": "\\ud800"}': m(0xDBFF),  # a key cannot be named: the object's refusal
        '{"a": {"\\udfff": 2}, "b": "\\ud800"}': {"a": [m(0xDFFF)]},  # the first, in the document's order
    }
    for text, expected in cases.items():
        with pytest.raises(json_input.UnpairedSurrogate) as refused:
            json_input.loads(text)
        assert refused.value.detail == expected, text
        assert json.dumps(refused.value.detail, ensure_ascii=False).encode("utf-8")  # an answer can carry it
    # A whole character, as a pair of escapes or as itself, and a backslash written before "ud800", are text.
    assert json_input.loads('["\\ud83d\\ude00", "\U0001f600", "\\\\ud800"]') == ["\U0001f600"] * 2 + [
        "\\ud800"
    ]


def test_every_api_endpoint_refuses_half_a_character_with_the_field_and_writes_nothing(
    client, two_customers, settings
):
    settings.REST_FRAMEWORK = {  # some 60 requests in a few seconds: past the per-user rate
        **settings.REST_FRAMEWORK,
        "DEFAULT_THROTTLE_RATES": {**settings.REST_FRAMEWORK["DEFAULT_THROTTLE_RATES"], "user": None},
    }
    client.force_login(
        get_user_model().objects.create_superuser("root", "root@example.com", "s3cret-pass-word")
    )
    client.raise_request_exception = False
    before = our_rows()
    refused = 0
    for url, methods in api_endpoints():
        for method in set(WRITING) & methods:
            for field in ("note", "status", "crew", "reason"):
                body = _with_surrogate({"status": "resolved", "note": "x"}, field)
                response = getattr(client, method)(url, body, content_type="application/json",
                                                   HTTP_ACCEPT_LANGUAGE="vi")  # fmt: skip
                assert response.status_code == 400, (url, method, field, response.status_code)
                assert response.json() == {field: refusal()}, (url, method, field)
                refused += 1
    assert refused >= 4 * 19
    assert our_rows() == before


def test_the_admin_shows_half_a_character_in_a_json_field_as_a_form_error_and_writes_nothing(
    client, staff, org
):
    client.force_login(staff[Role.ADMINISTRATOR])
    for body in ('["residential", "\\ud800"]', '{"\\udc00": 1}'):
        form = {"name": "Giảm giá", "legal_basis": "Nghị quyết", "customer_types": body, "period_from": "2025-10-01",
                "period_to": "2025-10-01", "min_kwh": 0, "status": "draft", "bands-TOTAL_FORMS": 0,
                "bands-INITIAL_FORMS": 0, "bands-MIN_NUM_FORMS": 0, "bands-MAX_NUM_FORMS": 1000}  # fmt: skip
        response = client.post(reverse("admin:billing_rebateprogramme_add"), form, HTTP_ACCEPT_LANGUAGE="vi")
        assert response.status_code == 200, body
        code = 0xD800 if "ud800" in body else 0xDC00
        assert response.context["adminform"].form.errors["customer_types"] == refusal(code), body
        assert escape(body) in response.content.decode(), body  # shown again as typed, to correct
    assert not RebateProgramme.objects.exists()


# -- What the API answers null is nullable in the schema --------------------------------------------------------

NULL_IN_ANSWERS = [
    ("Ticket", "assignee"),
    ("Ticket", "incident"),
    ("Ticket", "customer_code"),
    ("WorkOrder", "crew"),  # its own description: "null: the unit's dispatchers"
    ("Interaction", "customer_code"),
    ("Interaction", "ticket_number"),
    ("Payment", "recorded_by"),
    ("Callback", "agent"),
    ("TicketNote", "author"),
    ("CustomerCard", "nuisance_set_at"),
    ("Dispute", "ticket_number"),
    ("Dispute", "invoice_number"),
    ("Invoice", "adjusts"),
    ("InvoiceDetail", "adjusts"),
]


@pytest.fixture
def schema(client, staff):
    client.force_login(staff[Role.ADMINISTRATOR])
    response = client.get("/api/schema/", HTTP_ACCEPT="application/vnd.oai.openapi+json")
    assert response.status_code == 200
    return response.json()


@pytest.mark.parametrize(("component", "field"), NULL_IN_ANSWERS)
def test_a_field_the_api_answers_null_is_nullable_in_the_schema(schema, component, field):
    declared = schema["components"]["schemas"][component]["properties"][field]
    assert declared.get("nullable") is True, declared


def _resolve(schema: dict, node: dict) -> dict:
    while "$ref" in node or ("allOf" in node and len(node["allOf"]) == 1):
        if "$ref" in node:
            node = schema["components"]["schemas"][node["$ref"].rsplit("/", 1)[1]]
        else:
            node = {**node, **_resolve(schema, node["allOf"][0]), "nullable": node.get("nullable")}
            node.pop("allOf", None)
    return node


def _nulls_not_declared(schema: dict, value, node: dict, where: str) -> list[str]:
    """The places in ``value`` (an answer) that are null where the schema ``node`` describing it says never."""
    node = _resolve(schema, node)
    if value is None:
        return [] if node.get("nullable") is True else [where]
    if isinstance(value, dict) and "properties" in node:
        return [
            place
            for key, child in value.items()
            for place in _nulls_not_declared(schema, child, node["properties"].get(key, {}), f"{where}.{key}")
        ]
    if isinstance(value, list) and "items" in node:
        return [
            place
            for child in value
            for place in _nulls_not_declared(schema, child, node["items"], f"{where}[]")
        ]
    return []


def test_no_list_answers_null_where_the_schema_says_never(client, staff, two_customers, schema):
    """Every list of the API (and a customer's card), read with rows that leave their optional links empty: a
    null in an answer is a nullable field in the schema a client is generated from."""
    mine, _theirs = two_customers
    client.force_login(staff[Role.ADMINISTRATOR])
    read = 0
    for path, operations in schema["paths"].items():
        get = operations.get("get")
        if "{" in path or get is None or any(p.get("required") for p in get.get("parameters", [])):
            continue
        answered = _resolve(schema, get["responses"]["200"]["content"]["application/json"]["schema"])
        if "results" not in answered.get("properties", {}):
            continue  # not a list (the schema itself, the outage status)
        response = client.get(path)
        assert response.status_code == 200, path
        rows = response.json()["results"]
        assert rows, path  # the fixture fills every list
        assert _nulls_not_declared(schema, rows, answered["properties"]["results"], path) == []
        read += 1
    assert read >= 10
    card_path = "/api/v1/customers/{id}/card/"
    card_schema = schema["paths"][card_path]["get"]["responses"]["200"]["content"]["application/json"][
        "schema"
    ]
    card = client.get(card_path.replace("{id}", str(mine.pk))).json()
    assert card["nuisance_set_at"] is None
    assert _nulls_not_declared(schema, card, card_schema, "card") == []


def test_the_lists_do_answer_null_in_the_fields_the_schema_now_marks(client, staff, two_customers, schema):
    client.force_login(staff[Role.ADMINISTRATOR])
    tickets = client.get("/api/v1/tickets/").json()["results"]
    orders = client.get("/api/v1/work-orders/").json()["results"]
    invoices = client.get("/api/v1/invoices/").json()["results"]
    assert any(t["assignee"] is None for t in tickets) and any(t["incident"] is None for t in tickets)
    assert any(o["crew"] is None for o in orders)
    assert any(i["adjusts"] is None for i in invoices)


# -- A call's start ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("started_at", "message"),
    [
        ("1970-01-01T00:00:00+07:00", "A call cannot start before 01/01/2000: check the clock of the system that logged it."),
        ("1999-12-31T23:59:59+07:00", "A call cannot start before 01/01/2000: check the clock of the system that logged it."),
        ("1900-01-01T00:00:00+07:00", "A call cannot start before 01/01/2000: check the clock of the system that logged it."),
        ("ahead", "A call cannot start in the future."),
    ],
)  # fmt: skip
def test_a_call_starting_before_2000_or_ahead_of_the_clock_is_refused(
    client, staff, org, started_at, message
):
    if started_at == "ahead":
        started_at = (timezone.now() + dt.timedelta(minutes=10)).isoformat()
    client.force_login(staff[Role.AGENT])
    body = {
        "channel": "phone",
        "disposition": "information",
        "started_at": started_at,
        "handling_seconds": 60,
    }
    response = client.post("/api/v1/interactions/", body, content_type="application/json")
    assert response.status_code == 400, response.content[:300]
    assert response.json() == {"started_at": [message]}
    assert Interaction.objects.count() == 0


def test_a_call_from_the_first_moment_of_2000_to_now_is_logged(client, staff, org):
    client.force_login(staff[Role.AGENT])
    for started_at in ("2000-01-01T00:00:00+07:00", timezone.now().isoformat()):
        body = {
            "channel": "phone",
            "disposition": "information",
            "started_at": started_at,
            "handling_seconds": 0,
        }
        response = client.post("/api/v1/interactions/", body, content_type="application/json")
        assert response.status_code == 201, response.content[:300]
    first = Interaction.objects.order_by("started_at").first()
    assert first.started_at == dt.datetime(1999, 12, 31, 17, tzinfo=dt.UTC)
    assert Interaction.objects.count() == 2


# -- A dispute's claim ------------------------------------------------------------------------------------------


def test_a_dispute_claim_is_composed_before_its_limit_is_counted():
    claim = unicodedata.normalize(
        "NFD", "ệ" * DESCRIPTION_MAX_CHARS
    )  # three code points a letter, decomposed
    assert len(claim) == 3 * DESCRIPTION_MAX_CHARS
    field = DisputeInSerializer().fields["claim"]
    assert field.run_validation(claim) == "ệ" * DESCRIPTION_MAX_CHARS
    assert DisputeInSerializer(data={"claim": claim + "ệ"}).is_valid() is False
