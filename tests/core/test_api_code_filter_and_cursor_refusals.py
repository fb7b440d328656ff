"""Bad filter values and forged cursors on the lists of /api/v1/ are 400s naming the parameter, never 500s."""

import base64

import pytest

from crm.models import Role


@pytest.fixture
def agent_client(client, staff):
    client.force_login(staff[Role.AGENT])
    client.raise_request_exception = False
    return client


@pytest.mark.parametrize(
    ("url", "parameter", "message"),
    [
        ("/api/v1/units/?company=PE01%25", "company", "No company with the code PE01% among those you may see."),
        ("/api/v1/tickets/?unit=50%25", "unit", "No unit with the code 50% among those you may see."),
        ("/api/v1/contracts/?customer=%25", "customer", "No customer with the code % among those you may see."),
        ("/api/v1/customers/?code=%25(x)s", "code", "No customer with the code %(X)S among those you may see."),
        ("/api/v1/work-orders/?crew=%25d", "crew",
         "No crew member with the username %d among those you may see."),
    ],
)  # fmt: skip
def test_a_percent_sign_in_a_code_filter_is_a_400_naming_the_parameter_not_a_500(
    agent_client, org, url, parameter, message
):
    response = agent_client.get(url)
    assert response.status_code == 400, response.content[:200]
    assert response.json() == {parameter: [message]}


@pytest.mark.parametrize(("lst", "role"), [("customers", Role.AGENT), ("tickets", Role.AGENT),
                                           ("invoices", Role.BILLING_CLERK)])  # fmt: skip
@pytest.mark.parametrize("position", [b"abc", b"1.5", b"--5", "\u00b2".encode(), b"9" * 30])
def test_a_cursor_with_a_position_that_is_no_id_is_a_400_not_a_500(client, staff, lst, role, position):
    client.force_login(staff[role])
    client.raise_request_exception = False
    forged = base64.b64encode(b"p=" + position).decode()
    response = client.get(f"/api/v1/{lst}/", {"cursor": forged})
    assert response.status_code == 400, response.content[:200]
    assert response.json() == {
        "cursor": ["This cursor is not one the list gave: start again from the first page."]
    }


def test_a_cursor_the_list_gave_still_turns_the_page(client, staff, make_customer, org):
    made = [make_customer(org["home"]) for _ in range(3)]
    client.force_login(staff[Role.AGENT])
    first = client.get("/api/v1/customers/", {"page_size": 2}).json()
    second = client.get(first["next"]).json()
    seen = [c["code"] for c in first["results"] + second["results"]]
    assert seen == [c.code for c in sorted(made, key=lambda c: -c.pk)]
