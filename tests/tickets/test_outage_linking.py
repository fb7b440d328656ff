"""Outage calls from every channel are linked to the open incident covering the caller's address, so restoring
the incident resolves them; the API also takes an explicit incident, checked."""

import unicodedata

import pytest
from django.urls import reverse
from django.utils import timezone

from crm.models import Role
from tickets.models import EventKind, Status, Ticket
from tickets.services import incident_open, incident_restore, ticket_open

URL = "/api/v1/tickets/"


def call(client, customer, **extra):
    payload = {"category": "outage", "channel": "zalo", "description": "Mất điện", "customer_code": customer.code}
    return client.post(URL, {**payload, **extra}, content_type="application/json")


def test_an_api_outage_call_is_linked_to_the_incident_and_restoring_resolves_it(
    client, staff, org, make_customer, catalogue
):
    inside = make_customer(ward="Phường Bến Nghé", phones=["0903 100 001"])
    outside = make_customer(ward="Phường Đa Kao", name="Lê Văn B", phones=["0903 100 002"])
    incident = incident_open(actor=None, unit=org["home"], cause="Sự cố trạm", wards=["Phường Bến Nghé"],
                             started_at=timezone.now())  # fmt: skip
    client.force_login(staff[Role.AGENT])
    linked = call(client, inside)
    other_ward = call(client, outside)
    billing = call(client, inside, category="billing")
    assert (linked.status_code, other_ward.status_code, billing.status_code) == (201, 201, 201)
    assert (linked.json()["incident"], other_ward.json()["incident"], billing.json()["incident"]) == (
        incident.pk, None, None,
    )  # fmt: skip
    ticket = Ticket.objects.get(number=linked.json()["number"])
    assert ticket.events.get(kind=EventKind.CREATED).after["incident"] == incident.pk
    assert incident_restore(actor=None, incident=incident)["resolved"] == 1
    assert Ticket.objects.get(pk=ticket.pk).status == Status.RESOLVED
    assert Ticket.objects.get(number=other_ward.json()["number"]).status == Status.NEW


def test_the_api_takes_an_explicit_incident_that_is_open_and_covers_the_customer(
    client, staff, org, make_customer, catalogue
):
    customer = make_customer(ward="Phường Bến Nghé")
    whole_unit = incident_open(actor=None, unit=org["home"], cause="Cắt điện", started_at=timezone.now())
    elsewhere = incident_open(actor=None, unit=org["home"], cause="Đứt dây", wards=["Phường Đa Kao"],
                              started_at=timezone.now())  # fmt: skip
    restored = incident_open(actor=None, unit=org["home"], cause="Cũ", started_at=timezone.now())
    incident_restore(actor=None, incident=restored)
    other_unit = incident_open(actor=None, unit=org["other_company"], cause="Xa", started_at=timezone.now())
    client.force_login(staff[Role.AGENT])
    listed = client.get("/api/v1/outages/status", {"customer_code": customer.code}).json()["incidents"]
    assert [i["id"] for i in listed] == [whole_unit.pk]
    before = Ticket.objects.count()
    for incident, extra in [
        (elsewhere, {}),
        (restored, {}),
        (whole_unit, {"category": "billing"}),
        (other_unit, {}),
    ]:
        response = call(client, customer, incident=incident.pk, **extra)
        assert response.status_code == 400, (incident.cause, response.content)
        assert "incident" in response.json()
    assert Ticket.objects.count() == before
    response = call(client, customer, incident=whole_unit.pk)
    assert response.status_code == 201 and response.json()["incident"] == whole_unit.pk


def test_every_intake_path_links_through_the_service(org, make_customer, catalogue, staff):
    """The admin's "new ticket" and the card call the service without an incident: it finds it."""
    customer = make_customer()
    incident = incident_open(actor=None, unit=org["home"], cause="Sự cố", started_at=timezone.now())
    ticket = ticket_open(actor=staff[Role.AGENT], category=catalogue["outage"], channel="phone",
                         description="Mất điện", customer=customer).ticket  # fmt: skip
    assert ticket.incident == incident
    unknown = ticket_open(actor=staff[Role.AGENT], category=catalogue["outage"], channel="phone",
                          description="Mất điện", caller_name="Khách lạ", unit=org["home"]).ticket  # fmt: skip
    assert unknown.incident is None  # no address to match: an agent links it from the ticket


def test_with_the_shared_cache_on_an_outage_opened_or_restored_reaches_the_next_call_and_the_card(
    client, staff, org, make_customer, catalogue, settings
):
    # given: the unit's open outages kept in the shared cache, and a call read when there were none
    settings.TONGDAI_AUTH_CACHE_SECONDS = 300
    customer = make_customer(ward="Phường Bến Nghé", phones=["0903 100 001"])
    client.force_login(staff[Role.AGENT])
    assert call(client, customer).json()["incident"] is None
    # when: an outage starts in the customer's ward
    incident = incident_open(actor=None, unit=org["home"], cause="Sự cố trạm", wards=["Phường Bến Nghé"],
                             started_at=timezone.now())  # fmt: skip
    # then: the next call is linked to it and the card shows it
    linked = call(client, customer)
    assert linked.json()["incident"] == incident.pk
    card = client.get(reverse("admin:customers_customer_card", args=[customer.pk]))
    assert "Sự cố trạm" in card.content.decode()
    # when: power is back
    incident_restore(actor=None, incident=incident)
    # then: the next call is not linked to the restored outage, and the card no longer shows it
    assert call(client, customer).json()["incident"] is None
    assert "Sự cố trạm" not in client.get(reverse("admin:customers_customer_card", args=[customer.pk])).content.decode()


def test_outage_call_links_to_the_incident_naming_the_customers_ward_written_in_another_case(
    client, staff, org, make_customer, catalogue
):
    customer = make_customer(ward="phường Bến Nghé")  # as a legacy import or a clerk wrote it
    incident = incident_open(actor=None, unit=org["home"], cause="Sự cố trạm", wards=["Phường Bến Nghé"],
                             started_at=timezone.now())  # fmt: skip
    client.force_login(staff[Role.AGENT])
    answer = call(client, customer)
    assert answer.status_code == 201
    assert answer.json()["incident"] == incident.pk
    assert incident_restore(actor=None, incident=incident)["resolved"] == 1


@pytest.mark.parametrize(
    ("ward", "covered"),
    [
        ("Phường Bến Nghé", True),
        ("phường bến nghé", True),
        ("PHƯỜNG BẾN NGHÉ", True),
        ("  Phường   Bến Nghé ", True),
        (unicodedata.normalize("NFD", "Phường Bến Nghé"), True),
        ("Phường Bến Thành", False),
        ("Bến Nghé", False),
    ],
)
def test_an_incident_covers_its_wards_however_the_customers_ward_is_spelled(org, ward, covered):
    incident = incident_open(actor=None, unit=org["home"], cause="Sự cố trạm",
                             wards=[unicodedata.normalize("NFD", "phường  Bến Nghé")],
                             started_at=timezone.now())  # fmt: skip
    assert incident.covers(unit_id=org["home"].pk, ward=ward) is covered
    assert incident.covers(unit_id=org["sibling"].pk, ward=ward) is False
