"""A job called off tells the right people: the unit's dispatchers when nobody is sent any more, whoever called it
off (the crew member, a colleague on /field/, a dispatcher through the API), and the order's own crew member when
someone else called it off; nobody is told "no crew is sent any more" while another crew still goes."""

from __future__ import annotations

from crm.models import OutboxMessage, Role
from tickets.models import Status, WorkOrderStatus
from tickets.services import (
    staff_of_unit,
    ticket_change_status,
    work_order_advance,
    work_order_create,
)


def _with_phone(user, phone):
    user.staff_profile.phone = phone
    user.staff_profile.save()
    return user


def _last_message_id() -> int:
    return OutboxMessage.objects.order_by("-pk").values_list("pk", flat=True).first() or 0


def _recipients_since(since: int) -> set[str]:
    return set(OutboxMessage.objects.filter(pk__gt=since).values_list("recipient", flat=True))


def test_a_crew_calling_off_the_last_order_left_to_the_dispatchers_tells_the_dispatchers(
    client, outage_ticket, staff
):
    # given the only order of a dispatched ticket, left to the unit's dispatchers ("the dispatchers decide"),
    # as /field/ shows it to every crew member of the unit
    _with_phone(staff[Role.DISPATCHER], "+84903999111")
    order = work_order_create(actor=staff[Role.DISPATCHER], ticket=outage_ticket)
    crew = staff[Role.FIELD_CREW]
    client.force_login(crew)
    # when a crew member calls it off from /field/ with a reason
    client.post("/field/", {"order": order.pk, "to": WorkOrderStatus.CANCELLED, "note": "Khách đã có điện"})
    order.refresh_from_db()
    outage_ticket.refresh_from_db()
    assert order.status == WorkOrderStatus.CANCELLED
    assert outage_ticket.status == Status.ACKNOWLEDGED  # nobody is sent any more
    # then the unit's dispatchers are told, to send a crew again, with who called it off and why
    called_off = OutboxMessage.objects.filter(dedupe_key__startswith=f"workorder:{order.pk}:called-off:")
    assert called_off.count() == len(staff_of_unit(outage_ticket.unit, Role.DISPATCHER)) > 0
    assert [m.body for m in called_off] == [
        f"Work order {outage_ticket.number}/{order.pk} was called off by {crew.username}: Khách đã có điện. "
        "No crew is sent any more."
    ]


def test_a_crew_calling_off_a_colleagues_last_order_tells_the_dispatchers_and_the_colleague(
    client, outage_ticket, staff, make_staff, org
):
    # given the only order of a ticket, sent to crew member A
    _with_phone(staff[Role.DISPATCHER], "+84903999111")
    a = _with_phone(make_staff(Role.FIELD_CREW, [org["home"]], username="to.an"), "+84903000041")
    order = work_order_create(actor=staff[Role.DISPATCHER], ticket=outage_ticket, crew=a)
    work_order_advance(actor=a, order=order, to=WorkOrderStatus.ACKNOWLEDGED)
    since = _last_message_id()
    # when crew member B (same unit, the order is on B's /field/ too) calls it off
    client.force_login(staff[Role.FIELD_CREW])
    client.post("/field/", {"order": order.pk, "to": WorkOrderStatus.CANCELLED, "note": "Trùng việc"})
    order.refresh_from_db()
    assert order.status == WorkOrderStatus.CANCELLED
    outage_ticket.refresh_from_db()
    assert outage_ticket.status == Status.ACKNOWLEDGED
    # then the dispatchers know nobody goes any more, and A knows they need not go
    assert {"+84903999111", "+84903000041"} <= _recipients_since(since)
    to_a = OutboxMessage.objects.get(dedupe_key=f"workorder:{order.pk}:off:{a.staff_profile.pk}")
    assert to_a.body == f"Work order {outage_ticket.number}/{order.pk} was called off: Trùng việc. You need not go."
    assert to_a.subject == f"{outage_ticket.number}: work order cancelled"


def test_a_crew_calling_off_one_of_two_orders_does_not_tell_the_dispatchers_nobody_goes(
    client, outage_ticket, staff, make_staff, org
):
    # given two crews sent to one ticket
    _with_phone(staff[Role.DISPATCHER], "+84903999111")
    crew = staff[Role.FIELD_CREW]
    first = work_order_create(actor=staff[Role.DISPATCHER], ticket=outage_ticket, crew=crew)
    other = make_staff(Role.FIELD_CREW, [org["home"]], username="to.binh")
    work_order_create(actor=staff[Role.DISPATCHER], ticket=outage_ticket, crew=other)
    since = _last_message_id()
    # when the first crew calls its own order off (the other crew still goes)
    client.force_login(crew)
    client.post("/field/", {"order": first.pk, "to": WorkOrderStatus.CANCELLED, "note": "Trùng lệnh"})
    outage_ticket.refresh_from_db()
    assert outage_ticket.status == Status.DISPATCHED
    # then the dispatchers are not told "No crew is sent any more": one still is; and the crew member who
    # called it off is not told of it either
    wrong = OutboxMessage.objects.filter(dedupe_key__startswith=f"workorder:{first.pk}:called-off:")
    assert list(wrong.values_list("body", flat=True)) == []
    assert OutboxMessage.objects.filter(pk__gt=since).count() == 0


def test_a_dispatcher_calling_off_a_crews_order_tells_the_crew_member(client, outage_ticket, staff, make_staff, org):
    # given an order sent to crew member A, who acknowledged it and is on the way
    a = _with_phone(make_staff(Role.FIELD_CREW, [org["home"]], username="to.an"), "+84903000041")
    order = work_order_create(actor=staff[Role.DISPATCHER], ticket=outage_ticket, crew=a)
    work_order_advance(actor=a, order=order, to=WorkOrderStatus.ACKNOWLEDGED)
    since = _last_message_id()
    # when the dispatcher calls the order off through the API (POST …/advance/ to cancelled, with the reason)
    client.force_login(staff[Role.DISPATCHER])
    response = client.post(f"/api/v1/work-orders/{order.pk}/advance/", {"to": "cancelled", "note": "Gửi nhầm"})
    assert response.status_code == 200
    # then A is told they need not go, as when the ticket is cancelled or the order given to someone else
    assert "+84903000041" in _recipients_since(since)


def test_a_dispatcher_calling_off_the_last_order_tells_the_other_dispatchers_not_themselves(
    client, outage_ticket, staff, make_staff, org
):
    # given two dispatchers of the unit, and the only order of a ticket, sent to crew member A
    me = _with_phone(staff[Role.DISPATCHER], "+84903999111")
    colleague = _with_phone(make_staff(Role.DISPATCHER, [org["home"]]), "+84903999112")
    a = _with_phone(make_staff(Role.FIELD_CREW, [org["home"]], username="to.an"), "+84903000041")
    order = work_order_create(actor=me, ticket=outage_ticket, crew=a)
    since = _last_message_id()
    # when one dispatcher calls it off through the API
    client.force_login(me)
    response = client.post(f"/api/v1/work-orders/{order.pk}/advance/", {"to": "cancelled", "note": "Gửi nhầm"})
    assert response.status_code == 200
    # then the ticket waits for a crew again, the other dispatcher and A are told; the one who did it is not
    outage_ticket.refresh_from_db()
    assert outage_ticket.status == Status.ACKNOWLEDGED
    assert _recipients_since(since) == {"+84903999112", "+84903000041"}
    told = OutboxMessage.objects.get(dedupe_key=f"workorder:{order.pk}:called-off:{colleague.staff_profile.pk}")
    assert f"called off by {me.username}: Gửi nhầm" in told.body


def test_the_crew_calling_off_its_own_order_of_a_pending_ticket_tells_the_dispatchers(
    outage_ticket, staff
):
    # given a ticket waiting for the customer with one crew sent (a pending ticket keeps its status)
    crew, dispatcher = staff[Role.FIELD_CREW], _with_phone(staff[Role.DISPATCHER], "+84903999111")
    ticket_change_status(actor=dispatcher, ticket=outage_ticket, to=Status.ACKNOWLEDGED)
    ticket_change_status(actor=dispatcher, ticket=outage_ticket, to=Status.PENDING_CUSTOMER)
    order = work_order_create(actor=dispatcher, ticket=outage_ticket, crew=crew)
    since = _last_message_id()
    # when the crew calls its only order off
    work_order_advance(actor=crew, order=order, to=WorkOrderStatus.CANCELLED, note="Khách hẹn mai")
    # then the ticket stays pending, and the dispatchers are told nobody is sent (not the crew, who did it)
    outage_ticket.refresh_from_db()
    assert outage_ticket.status == Status.PENDING_CUSTOMER
    assert _recipients_since(since) == {"+84903999111"}
    assert not OutboxMessage.objects.filter(dedupe_key__startswith=f"workorder:{order.pk}:off:").exists()


def test_a_refused_call_off_tells_nobody(client, outage_ticket, staff, make_staff, org):
    # given an order sent to crew member A
    a = _with_phone(make_staff(Role.FIELD_CREW, [org["home"]], username="to.an"), "+84903000041")
    order = work_order_create(actor=staff[Role.DISPATCHER], ticket=outage_ticket, crew=a)
    since = _last_message_id()
    # when the dispatcher calls it off without a reason
    client.force_login(staff[Role.DISPATCHER])
    response = client.post(f"/api/v1/work-orders/{order.pk}/advance/", {"to": "cancelled", "note": " "})
    # then it is refused on the note, the order still goes and nobody is told anything
    assert response.status_code == 400
    assert response.json() == {"note": ["Say why."]}
    order.refresh_from_db()
    assert order.status == WorkOrderStatus.ISSUED
    assert _recipients_since(since) == set()
