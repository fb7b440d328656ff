import pytest
from django.core.exceptions import ValidationError

from crm.models import Role
from tickets.models import EventKind, Status, WorkOrder, WorkOrderStatus
from tickets.services import ticket_open, work_order_advance, work_order_create


@pytest.fixture
def outage_ticket(catalogue, make_customer):
    return ticket_open(actor=None, category=catalogue["outage"], channel="phone", description="Mất điện",
                       customer=make_customer()).ticket  # fmt: skip


def test_a_work_order_dispatches_the_ticket_and_its_steps_drive_the_ticket(outage_ticket, staff):
    crew = staff[Role.FIELD_CREW]
    order = work_order_create(actor=staff[Role.DISPATCHER], ticket=outage_ticket, crew=crew)
    outage_ticket.refresh_from_db()
    assert outage_ticket.status == Status.DISPATCHED
    for step in (WorkOrderStatus.ACKNOWLEDGED, WorkOrderStatus.CONTACTED, WorkOrderStatus.ON_SITE):
        order = work_order_advance(actor=crew, order=order, to=step)
    outage_ticket.refresh_from_db()
    assert outage_ticket.contacted_at == order.contacted_at
    with pytest.raises(ValidationError):
        work_order_advance(actor=crew, order=order, to=WorkOrderStatus.DONE)  # needs a resolution code
    assert WorkOrder.objects.get(pk=order.pk).status == WorkOrderStatus.ON_SITE
    order = work_order_advance(actor=crew, order=order, to=WorkOrderStatus.DONE, resolution_code="fixed")
    outage_ticket.refresh_from_db()
    assert outage_ticket.status == Status.RESOLVED
    assert (
        outage_ticket.events.filter(kind=EventKind.STATUS, after__status="resolved").get().note
        == "Fault fixed"
    )
    assert order.contact_minutes is not None


def test_steps_cannot_be_skipped_and_a_crew_of_another_unit_is_refused(outage_ticket, staff, make_staff, org):
    order = work_order_create(actor=None, ticket=outage_ticket)
    with pytest.raises(ValidationError):
        work_order_advance(actor=None, order=order, to=WorkOrderStatus.ON_SITE)
    assert WorkOrder.objects.get(pk=order.pk).status == WorkOrderStatus.ISSUED
    stranger = make_staff(Role.FIELD_CREW, [org["other_company"]])
    with pytest.raises(ValidationError):
        work_order_create(actor=None, ticket=outage_ticket, crew=stranger)
    assert WorkOrder.objects.count() == 1


def test_the_field_page_lists_and_advances_the_units_orders(client, outage_ticket, staff):
    order = work_order_create(actor=None, ticket=outage_ticket)
    client.force_login(staff[Role.FIELD_CREW])
    page = client.get("/field/")
    assert page.status_code == 200
    assert outage_ticket.number in page.content.decode()
    assert b'name="viewport"' in page.content
    assert client.post("/field/", {"order": order.pk, "to": "acknowledged"}).status_code == 302
    assert WorkOrder.objects.get(pk=order.pk).status == WorkOrderStatus.ACKNOWLEDGED
    client.force_login(staff[Role.BILLING_CLERK])
    assert client.get("/field/").status_code == 403


def test_the_api_advances_a_work_order(client, outage_ticket, staff):
    order = work_order_create(actor=None, ticket=outage_ticket)
    client.force_login(staff[Role.FIELD_CREW])
    moved = client.post(f"/api/v1/work-orders/{order.pk}/advance/", {"to": "acknowledged"})
    assert moved.status_code == 200 and moved.json()["status"] == "acknowledged"
    refused = client.post(f"/api/v1/work-orders/{order.pk}/advance/", {"to": "done"})
    assert refused.status_code == 400
    assert WorkOrder.objects.get(pk=order.pk).status == WorkOrderStatus.ACKNOWLEDGED
