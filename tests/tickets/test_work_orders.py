import pytest
from django.core.exceptions import ValidationError

from crm.models import OutboxMessage, Role
from tickets.models import EventKind, Status, WorkOrder, WorkOrderStatus
from tickets.services import (
    callback_record,
    staff_of_unit,
    ticket_change_status,
    ticket_open,
    work_order_advance,
    work_order_create,
)


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


def test_the_field_page_gives_the_crew_the_customers_phone_to_call_beside_contacted(
    client, outage_ticket, staff, make_customer, catalogue, org
):
    """The crew calls the customer before going: the customer's primary phone is a tel: link (a tap calls
    it) in the order's form, next to "Customer contacted"; an unknown caller's own number likewise."""
    crew = staff[Role.FIELD_CREW]
    order = work_order_create(actor=None, ticket=outage_ticket, crew=crew)
    order = work_order_advance(actor=crew, order=order, to=WorkOrderStatus.ACKNOWLEDGED)
    stranger = ticket_open(
        actor=None, category=catalogue["outage"], channel="phone", description="Mất điện", unit=org["home"],
        caller_name="Lê Văn Tư", caller_phone="0912 345 678",
    ).ticket  # fmt: skip
    work_order_create(actor=None, ticket=stranger, crew=crew)
    client.force_login(crew)
    page = client.get("/field/").content.decode()
    block = page.split(f'id="order-{order.pk}"')[1].split('class="order"')[0]
    assert 'href="tel:+84903123456"' in block and "0903 123 456" in block
    assert block.index("tel:") < block.index('value="contacted"')
    assert 'href="tel:+84912345678"' in page


def test_the_field_page_never_dials_a_masked_phone(client, outage_ticket, make_staff, org):
    """Somebody working orders without the right to see phones in full sees the last digits, and no link."""
    from django.contrib.auth.models import Permission

    worker = make_staff(Role.FIELD_CREW, [org["home"]])
    worker.groups.clear()
    worker.user_permissions.add(
        Permission.objects.get(codename="change_workorder"), Permission.objects.get(codename="view_workorder")
    )
    work_order_create(actor=None, ticket=outage_ticket)
    client.force_login(worker)
    page = client.get("/field/").content.decode()
    assert outage_ticket.number in page
    assert "**** *** 456" in page and "tel:" not in page and "0903 123 456" not in page


def test_resolving_a_ticket_by_hand_calls_off_the_crew_sent_to_it(staff, make_customer, catalogue):
    """The customer rang back (the power is on) and the agent resolves the ticket from its page while a crew is
    still sent: the crew is told and its order cancelled, as on cancelling, marking a duplicate, re-routing or
    restoring an outage; it does not stay on /field/ after the ticket closes, nor resolve a later reopen."""
    crew, agent = staff[Role.FIELD_CREW], staff[Role.AGENT]
    ticket = ticket_open(actor=None, category=catalogue["outage"], channel="phone", description="Mất điện",
                         customer=make_customer()).ticket  # fmt: skip
    order = work_order_create(actor=None, ticket=ticket, crew=crew)
    work_order_advance(actor=crew, order=order, to=WorkOrderStatus.ACKNOWLEDGED)
    ticket = ticket_change_status(actor=agent, ticket=ticket, to=Status.RESOLVED, note="Khách báo đã có điện")
    order.refresh_from_db()
    assert order.status == WorkOrderStatus.CANCELLED
    assert list(WorkOrder.objects.for_user(crew).open()) == []
    told = OutboxMessage.objects.get(dedupe_key__startswith=f"workorder:{order.pk}:off:")
    assert "Khách báo đã có điện" in told.body and ticket.number in told.body
    event = ticket.events.filter(kind=EventKind.STATUS).latest("id")
    assert event.after == {"status": Status.RESOLVED, "work_orders_cancelled": [order.pk]}
    callback_record(actor=agent, ticket=ticket, reached=True, fix_score=5, attitude_score=5)
    ticket.refresh_from_db()
    assert ticket.status == Status.CLOSED
    assert WorkOrder.objects.get(pk=order.pk).status == WorkOrderStatus.CANCELLED


@pytest.fixture
def crew_in_vietnamese(client, staff):
    """The field crew member on /field/, their phone set to Vietnamese."""
    client.defaults["HTTP_ACCEPT_LANGUAGE"] = "vi"
    client.force_login(staff[Role.FIELD_CREW])
    return client


def _order_block(page: str, order: WorkOrder) -> str:
    return page.split(f'id="order-{order.pk}"')[1].split('class="order"')[0]


def test_the_field_page_offers_every_open_order_a_cancel_with_a_reason(crew_in_vietnamese, staff, outage_ticket):
    # given an order sent to the crew member and one left to the unit's dispatchers
    mine = work_order_create(actor=staff[Role.DISPATCHER], ticket=outage_ticket, crew=staff[Role.FIELD_CREW])
    theirs = work_order_create(actor=staff[Role.DISPATCHER], ticket=outage_ticket)
    work_order_advance(actor=staff[Role.FIELD_CREW], order=mine, to=WorkOrderStatus.ACKNOWLEDGED)
    # when the crew opens the page
    page = crew_in_vietnamese.get("/field/").content.decode()
    # then each open order has a cancel button with a required reason of at most 2,000 characters
    for order in (mine, theirs):
        block = _order_block(page, order)
        assert f'value="{WorkOrderStatus.CANCELLED}"' in block
        assert 'name="note" maxlength="2000" required' in block
        assert f'<label for="cancel-note-{order.pk}">' in block


def test_the_crew_calls_off_the_last_open_order_with_a_reason(crew_in_vietnamese, staff, outage_ticket):
    # given the only order of a dispatched ticket, acknowledged by its crew
    crew = staff[Role.FIELD_CREW]
    order = work_order_create(actor=staff[Role.DISPATCHER], ticket=outage_ticket, crew=crew)
    work_order_advance(actor=crew, order=order, to=WorkOrderStatus.ACKNOWLEDGED)
    # when the crew calls it off from the page, saying why
    response = crew_in_vietnamese.post(
        "/field/", {"order": order.pk, "to": WorkOrderStatus.CANCELLED, "note": "  Khách báo đã có điện  "}
    )
    # then the order is cancelled with the reason, and gone from the page
    assert response.status_code == 302
    order.refresh_from_db()
    assert (order.status, order.note) == (WorkOrderStatus.CANCELLED, "Khách báo đã có điện")
    assert f'id="order-{order.pk}"' not in crew_in_vietnamese.get("/field/").content.decode()
    # and the ticket is back with the dispatchers (acknowledged), its event saying why no crew is sent
    outage_ticket.refresh_from_db()
    assert outage_ticket.status == Status.ACKNOWLEDGED
    event = outage_ticket.events.filter(kind=EventKind.STATUS).latest("id")
    assert event.before == {"status": Status.DISPATCHED}
    assert event.after == {"status": Status.ACKNOWLEDGED, "work_orders_cancelled": [order.pk]}
    assert event.actor == crew
    assert event.note.endswith(": Khách báo đã có điện")
    # and the unit's dispatchers are told, to send a crew again
    told = OutboxMessage.objects.filter(dedupe_key__startswith=f"workorder:{order.pk}:called-off:")
    assert told.count() == len(staff_of_unit(outage_ticket.unit, Role.DISPATCHER)) > 0
    assert all("Khách báo đã có điện" in m.body for m in told)


def test_a_crew_calling_off_one_of_two_orders_leaves_the_ticket_dispatched(crew_in_vietnamese, staff,
                                                                          outage_ticket):  # fmt: skip
    # given two crews sent to one ticket
    first = work_order_create(actor=staff[Role.DISPATCHER], ticket=outage_ticket, crew=staff[Role.FIELD_CREW])
    second = work_order_create(actor=staff[Role.DISPATCHER], ticket=outage_ticket)
    # when one order is called off from the page
    crew_in_vietnamese.post("/field/", {"order": first.pk, "to": WorkOrderStatus.CANCELLED, "note": "Trùng lệnh"})
    # then only that order is cancelled: the other crew still goes
    assert WorkOrder.objects.get(pk=first.pk).status == WorkOrderStatus.CANCELLED
    assert WorkOrder.objects.get(pk=second.pk).status == WorkOrderStatus.ISSUED
    outage_ticket.refresh_from_db()
    assert outage_ticket.status == Status.DISPATCHED


@pytest.mark.parametrize(
    ("note", "said"),
    [
        ("", "Hãy nêu lý do."),
        ("   ", "Hãy nêu lý do."),
        ("x" * 2001, "Tối đa 2000 ký tự (văn bản này có 2001)."),
    ],
)
def test_calling_off_an_order_without_a_reason_or_with_too_long_a_one_is_refused(
    crew_in_vietnamese, staff, outage_ticket, note, said
):
    # given an order sent to the crew
    order = work_order_create(actor=staff[Role.DISPATCHER], ticket=outage_ticket, crew=staff[Role.FIELD_CREW])
    events, messages = outage_ticket.events.count(), OutboxMessage.objects.count()
    # when the crew calls it off with no reason, or a reason over 2,000 characters
    response = crew_in_vietnamese.post(
        "/field/", {"order": order.pk, "to": WorkOrderStatus.CANCELLED, "note": note}, follow=True
    )
    # then the page says why in Vietnamese, next to the order's number
    shown = [str(m) for m in response.context["messages"]]
    assert shown == [f"{order}: {said}"]
    assert said in response.content.decode()
    # and nothing changed: the order still open on the page, the ticket still dispatched, nobody told
    order.refresh_from_db()
    assert (order.status, order.note) == (WorkOrderStatus.ISSUED, "")
    assert f'id="order-{order.pk}"' in response.content.decode()
    outage_ticket.refresh_from_db()
    assert outage_ticket.status == Status.DISPATCHED
    assert (outage_ticket.events.count(), OutboxMessage.objects.count()) == (events, messages)
