"""``CompiledRepresentationMixin`` gives what DRF's own ``to_representation`` gives, for every kind of object."""

from types import SimpleNamespace

import pytest
from rest_framework import serializers

from core.api.serializers import CompiledRepresentationMixin
from crm.models import Role
from tickets import services
from tickets.api.serializers import TicketSerializer
from tickets.models import Ticket


def _drf(serializer_class, instance):
    return serializers.ModelSerializer.to_representation(serializer_class(instance), instance)


def test_a_ticket_is_represented_as_drf_represents_it(staff, make_customer, catalogue, org):
    customer = make_customer()
    known = services.ticket_open(actor=staff[Role.AGENT], category=catalogue["outage"], channel="zalo",
                                 description="Mất điện", customer=customer).ticket  # fmt: skip
    caller = services.ticket_open(actor=None, category=catalogue["billing"], channel="phone", description="Hóa đơn",
                                  caller_name="An", caller_phone="0903 111 222", unit=org["home"]).ticket  # fmt: skip
    services.ticket_assign(actor=staff[Role.SUPERVISOR], ticket=known, assignee=staff[Role.AGENT])
    services.ticket_change_status(actor=None, ticket=known, to="acknowledged")
    services.ticket_change_status(actor=None, ticket=known, to="resolved")
    tickets = list(Ticket.objects.select_related("category", "unit", "customer").order_by("id"))
    assert [t.pk for t in tickets] == [known.pk, caller.pk]
    agent = {"request": SimpleNamespace(user=staff[Role.AGENT])}  # sees phones in full, as DRF shows them
    for ticket in tickets:
        fast = TicketSerializer(ticket, context=agent).data
        assert fast == _drf(TicketSerializer, ticket)
    known_data, caller_data = (TicketSerializer(t, context=agent).data for t in tickets)
    assert (known_data["assignee"], known_data["customer_code"], known_data["status"]) == (
        staff[Role.AGENT].pk, customer.code, "resolved",
    )  # fmt: skip
    assert known_data["resolved_at"] is not None and known_data["callback_due"] is not None
    assert (caller_data["assignee"], caller_data["customer_code"], caller_data["resolved_at"]) == (
        None,
        None,
        None,
    )
    assert TicketSerializer.__dict__["_tongdai_plan"], "the ticket's fields are all plain: a plan is used"


def test_a_missing_related_object_without_default_and_other_fields_are_left_to_drf(staff, catalogue, org):
    ticket = services.ticket_open(actor=None, category=catalogue["outage"], channel="phone", description="x",
                                  caller_name="An", unit=org["home"]).ticket  # fmt: skip

    class Strict(CompiledRepresentationMixin, serializers.ModelSerializer):
        customer_code = serializers.CharField(source="customer.code")  # no default: DRF raises

        class Meta:
            model = Ticket
            fields = ["id", "customer_code"]

    class WithMethod(CompiledRepresentationMixin, serializers.ModelSerializer):
        shout = serializers.SerializerMethodField()

        class Meta:
            model = Ticket
            fields = ["id", "number", "shout"]

        def get_shout(self, obj) -> str:
            return obj.number.upper()

    with pytest.raises(AttributeError):
        Strict(ticket).to_representation(ticket)
    with pytest.raises(AttributeError):
        _drf(Strict, ticket)
    assert WithMethod(ticket).data == _drf(WithMethod, ticket) == {
        "id": ticket.pk, "number": ticket.number, "shout": ticket.number.upper()
    }  # fmt: skip
    assert WithMethod.__dict__["_tongdai_plan"] == []
