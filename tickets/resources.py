"""Export columns of tickets: natural keys only (ticket number, customer code, contract number, unit code,
category code, the assignee's username), never database ids. Tickets are taken through the intake service,
so there is no import."""

from __future__ import annotations

from import_export import fields

from core.exports import ScopedResource, natural_key_field
from customers import privacy
from tickets.models import Ticket


class TicketResource(ScopedResource):
    number = fields.Field(attribute="number", column_name="number", readonly=True)
    category = natural_key_field(Ticket, "category", "code")
    customer = natural_key_field(Ticket, "customer", "code")
    contract = natural_key_field(Ticket, "contract", "number")
    unit = natural_key_field(Ticket, "unit", "code")
    assignee = natural_key_field(Ticket, "assignee", "username")
    duplicate_of = natural_key_field(Ticket, "duplicate_of", "number")

    export_select_related = ("category", "customer", "contract", "unit", "assignee", "duplicate_of")
    export_reads = ("caller_phone",)  # dehydrate_caller_phone

    def __init__(self, user=None, **kwargs):
        super().__init__(user=user, **kwargs)
        self.seen = privacy.visibility(user)

    def dehydrate_caller_phone(self, ticket) -> str:
        return self.seen.phone(ticket.caller_phone)

    class Meta:
        model = Ticket
        fields = (
            "number", "status", "category", "channel", "priority", "customer", "contract", "unit",
            "caller_name", "caller_phone", "caller_address", "description", "assignee", "created_at",
            "acknowledge_due", "contact_due", "resolve_due", "callback_due", "callback_overdue_at", "acknowledged_at", "contacted_at",
            "resolved_at", "closed_at", "acknowledge_breached", "contact_breached", "resolve_breached",
            "escalation_level", "duplicate_of",
        )  # fmt: skip
