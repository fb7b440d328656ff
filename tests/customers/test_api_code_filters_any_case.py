"""The customers API's code filters read a code in any case, as ``?unit=`` and ``contracts/?customer=`` do; a
code naming no row the caller sees is the documented 400, not an empty list."""

import pytest

from crm.models import Role


@pytest.fixture
def clerk_client(client, staff):
    client.force_login(staff[Role.BILLING_CLERK])
    client.raise_request_exception = False
    return client


def test_customer_code_filters_read_a_code_in_any_case_as_the_other_code_filters_do(clerk_client, two_customers):
    mine = two_customers[0]
    by_customer = clerk_client.get("/api/v1/contracts/", {"customer": mine.code.lower()})
    assert [c["number"] for c in by_customer.json()["results"]] == [mine.contracts.get().number]
    for typed in (mine.code, mine.code.lower(), f" {mine.code.lower()} "):
        customers = clerk_client.get("/api/v1/customers/", {"code": typed})
        assert [c["code"] for c in customers.json()["results"]] == [mine.code], typed


def test_a_contract_number_filter_reads_the_number_in_any_case(clerk_client, two_customers):
    contract = two_customers[0].contracts.get()
    response = clerk_client.get("/api/v1/contracts/", {"number": contract.number.lower()})
    assert [c["number"] for c in response.json()["results"]] == [contract.number]


@pytest.mark.parametrize(
    ("path", "parameter", "what"),
    [("/api/v1/customers/", "code", "customer"), ("/api/v1/contracts/", "number", "contract")],
)
def test_a_code_of_a_row_the_caller_cannot_see_is_a_400_not_an_empty_list(clerk_client, two_customers, path,
                                                                          parameter, what):  # fmt: skip
    theirs = two_customers[1]  # another corporation's customer
    code = theirs.code if parameter == "code" else theirs.contracts.get().number
    response = clerk_client.get(path, {parameter: code.lower()})
    assert response.status_code == 400
    assert response.json() == {parameter: [f"No {what} with the code {code} among those you may see."]}


def test_the_meter_serial_filter_reads_a_serial_as_the_other_code_filters_do(clerk_client, org):
    from customers import services

    meter = services.meter_register(actor=None, unit=org["home"], serial="KHO-0009", kind="electronic")
    for typed in ("KHO-0009", " kho-0009 "):
        response = clerk_client.get("/api/v1/meters/", {"serial": typed})
        assert [m["serial"] for m in response.json()["results"]] == [meter.serial], typed
    refused = clerk_client.get("/api/v1/meters/", {"serial": "kho-0010"})
    assert refused.status_code == 400
    assert refused.json() == {"serial": ["No meter with the serial KHO-0010 among those you may see."]}
