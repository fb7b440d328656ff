from django.db import connection
from django.test.utils import CaptureQueriesContext

from crm.models import Role


def test_lookup_api_finds_by_any_phone_spelling(client, staff, make_customer):
    customer = make_customer(name="Nguyễn Văn An", phones=["0903 123 456"])
    client.force_login(staff[Role.AGENT])
    response = client.get("/api/v1/customers/lookup", {"q": "84-903-123-456"})
    assert response.status_code == 200
    body = response.json()
    assert body["count"] == 1
    assert body["truncated"] is False
    assert body["results"][0]["code"] == customer.code
    assert body["results"][0]["match"] == "phone"
    assert body["results"][0]["unit_code"] == "PE0100"


def test_lookup_api_trailing_slash_is_optional(client, staff, make_customer):
    make_customer()
    client.force_login(staff[Role.AGENT])
    assert client.get("/api/v1/customers/lookup/", {"q": "nguyen"}).json()["count"] == 1


def test_lookup_api_no_match_is_an_empty_list(client, staff, make_customer):
    make_customer()
    client.force_login(staff[Role.AGENT])
    body = client.get("/api/v1/customers/lookup", {"q": "khong ai"}).json()
    assert body["results"] == []
    assert body["count"] == 0


def test_lookup_api_malformed_input_is_a_400_with_a_message(client, staff, org):
    client.force_login(staff[Role.AGENT])
    for params, key in [({"q": ""}, "q"), ({}, "q"), ({"q": "@@@"}, "q"), ({"q": "x" * 500}, "q"),
                        ({"q": "an", "limit": "abc"}, "limit"), ({"q": "an", "limit": "0"}, "limit")]:  # fmt: skip
        response = client.get("/api/v1/customers/lookup", params)
        assert response.status_code == 400, params
        assert response.json()[key], params


def test_card_api_returns_contracts_with_meters_and_sections(client, staff, make_customer):
    customer = make_customer(phones=["0903 123 456", "028 3822 1234"])
    client.force_login(staff[Role.AGENT])
    body = client.get(f"/api/v1/customers/{customer.pk}/card/").json()
    assert body["customer"]["code"] == customer.code
    assert [p["number"] for p in body["phones"]] == ["+84903123456", "+842838221234"]
    assert body["contracts"][0]["meters"][0]["remote_read"] is True
    assert [s["key"] for s in body["sections"]] == ["tickets", "invoices", "outages"]


def test_card_api_for_a_non_number_is_a_404(client, staff, org):
    client.force_login(staff[Role.AGENT])
    assert client.get("/api/v1/customers/abc/card/").status_code == 404
    assert client.get("/api/v1/customers/999999/card/").status_code == 404


def test_customer_list_filters_by_unit_type_and_phone(client, staff, make_customer, org):
    business = make_customer(name="Công ty TNHH Minh Long", customer_type="business", phones=["0903 000 111"])
    make_customer(name="Lê Văn Tám", phones=["0903 000 222"])
    client.force_login(staff[Role.SUPERVISOR])
    by_type = client.get("/api/v1/customers/", {"customer_type": "business"}).json()["results"]
    assert [c["code"] for c in by_type] == [business.code]
    by_phone = client.get("/api/v1/customers/", {"phone": "84 903 000 111"}).json()["results"]
    assert [c["code"] for c in by_phone] == [business.code]
    by_unit = client.get("/api/v1/customers/", {"unit": org["home"].code}).json()["results"]
    assert len(by_unit) == 2


def test_list_endpoints_take_the_same_number_of_queries_for_few_and_many_rows(
    client, staff, make_customer, org
):
    client.force_login(staff[Role.SUPERVISOR])
    make_customer(name="Một", phones=["0903 000 001"])
    endpoints = ["/api/v1/customers/", "/api/v1/contracts/", "/api/v1/meters/", "/api/v1/units/"]
    few = {}
    for url in endpoints:
        with CaptureQueriesContext(connection) as ctx:
            assert client.get(url).status_code == 200
        few[url] = len(ctx)
    for i in range(5):
        make_customer(unit=org["sibling"], name=f"Người {i}", phones=[f"0903 100 00{i}"])
    for url in endpoints:
        with CaptureQueriesContext(connection) as ctx:
            response = client.get(url)
        assert response.status_code == 200
        assert len(ctx) == few[url], url
        # session, user, two permission reads, three for the scope, one for the page: nothing per row
        assert len(ctx) <= 8, (url, [q["sql"][:100] for q in ctx.captured_queries])


def test_schema_and_docs_are_served_without_internet(client, staff):
    client.force_login(staff[Role.AGENT])
    schema = client.get("/api/schema/", HTTP_ACCEPT="application/json")
    assert schema.status_code == 200
    paths = schema.json()["paths"]
    assert any(p.startswith("/api/v1/customers/lookup") for p in paths), sorted(paths)
    assert any(p.startswith("/api/v1/tickets") for p in paths)
    docs = client.get("/api/docs/")
    assert docs.status_code == 200
    html = docs.content.decode()
    assert "swagger-ui" in html
    assert "cdn" not in html.lower()
