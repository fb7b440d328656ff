"""Reads of the tickets app: what the customer card shows."""

from __future__ import annotations

import math

from django.urls import reverse
from django.utils import timezone
from django.utils.translation import gettext as _

from crm.scoping import scope_for
from tickets.models import Ticket


def card_open_tickets(*, customer, user) -> dict:
    """The customer's open tickets (within the user's scope), and the link to take a new one, prefilled."""
    tickets = (
        Ticket.objects.for_user(user)
        .open()
        .filter(customer=customer)
        .select_related("category", "unit")
        .order_by("-id")[:20]
    )
    rows = [
        [
            t.number,
            t.category.name,
            t.get_status_display(),
            t.unit.code,
            timezone.localtime(t.created_at).strftime("%d/%m/%Y %H:%M"),
            timezone.localtime(t.resolve_due).strftime("%d/%m/%Y %H:%M"),
        ]
        for t in tickets
    ]
    actions = []
    if user.has_perm("tickets.add_ticket"):
        actions.append(
            (_("New ticket"), f"{reverse('admin:tickets_ticket_add')}?customer={customer.pk}", "get")
        )
    return {
        "columns": [_("number"), _("category"), _("status"), _("unit"), _("received at"), _("resolve by")],
        "rows": rows,
        "actions": actions,
    }


def card_outages(*, customer, user) -> dict:
    """Open outages covering the customer's address, with a one-click "this call is about it"."""
    from tickets.services import incidents_for_customer

    scope = scope_for(user)
    incidents = [i for i in incidents_for_customer(customer) if scope.allows_unit(i.unit_id)]
    rows = [
        [
            i.cause,
            ", ".join(i.wards) or _("whole unit"),
            timezone.localtime(i.started_at).strftime("%d/%m/%Y %H:%M"),
            timezone.localtime(i.estimated_restore_at).strftime("%d/%m/%Y %H:%M")
            if i.estimated_restore_at
            else "—",
        ]
        for i in incidents
    ]
    actions = []
    if user.has_perm("tickets.add_ticket"):
        actions = [
            (
                _("Take the call as part of this outage: %(cause)s") % {"cause": i.cause},
                reverse("admin:tickets_ticket_report_outage", args=[i.pk, customer.pk]),
                "post",
            )
            for i in incidents
        ]
    return {
        "columns": [_("cause"), _("wards"), _("started at"), _("estimated restore at")],
        "rows": rows,
        "actions": actions,
    }


def breaches_by_unit(*, user, now=None) -> list[dict]:
    """Per unit in the user's scope: open tickets, breached ones by level, and those due within 30 minutes."""
    import datetime as dt

    from django.db.models import Count, Q

    now = now or timezone.now()
    soon = now + dt.timedelta(minutes=30)
    return list(
        Ticket.objects.for_user(user)
        .open()
        .values("unit__code", "unit__name")
        .annotate(
            open=Count("id"),
            breached=Count("id", filter=Q(escalation_level__gt=0)),
            level2=Count("id", filter=Q(escalation_level=2)),
            level3=Count("id", filter=Q(escalation_level=3)),
            due_soon=Count("id", filter=Q(escalation_level=0, next_check_at__lte=soon)),
        )
        .order_by("-breached", "-due_soon", "unit__code")
    )


def next_deadline(ticket: Ticket) -> tuple[str, object] | None:
    """The ticket's next target not yet met, from its stored deadlines: (what is due, when), the earliest
    first. None when the ticket is no longer open or every target is met; paused tickets are the caller's."""
    if not ticket.is_open:
        return None
    due = [
        (moment, label)
        for moment, met, label in (
            (ticket.acknowledge_due, ticket.acknowledged_at, _("acknowledge")),
            (ticket.contact_due, ticket.contacted_at, _("call the customer")),
            (ticket.resolve_due, ticket.resolved_at, _("resolve")),
        )
        if met is None
    ]
    if not due:
        return None
    moment, label = min(due, key=lambda d: d[0])
    return label, moment


def duration_text(delta) -> str:
    """A length of time as an agent reads it: ``2 d 3 h``, ``1 h 20 min``, ``12 min`` (in the active language)."""
    minutes = max(0, math.ceil(delta.total_seconds() / 60))  # started minutes: "1 min" until it is due
    days, rest = divmod(minutes, 24 * 60)
    hours, minutes = divmod(rest, 60)
    if days:
        return _("%(d)d d %(h)d h") % {"d": days, "h": hours}
    if hours:
        return _("%(h)d h %(m)d min") % {"h": hours, "m": minutes}
    return _("%(m)d min") % {"m": minutes}


WORK_TICKETS = "tickets.change_ticket"


def eligible_assignees(unit_ids):
    """The staff a ticket of these units may be given to: active, serving one of the units, and with a role
    (or rights) that works tickets. The one rule: the assign service checks it, the admin offers only them."""
    from django.contrib.auth import get_user_model

    users = get_user_model().objects.with_perm(WORK_TICKETS, backend="crm.auth.CachedModelBackend")
    return users.filter(is_active=True, staff_profile__units__in=list(unit_ids)).distinct()


def unit_wards(unit) -> list[str]:
    """The wards (phường, xã) a unit serves, as an incident names them: the reference list of the unit's
    district, else the wards its customers' addresses name."""
    from crm.reference_data import WARDS
    from customers.models import Customer

    listed = WARDS.get(unit.code)
    if listed:
        return list(listed)
    named = Customer.objects.filter(unit=unit).exclude(ward="").values_list("ward", flat=True)
    return sorted(set(named.distinct()[:500]))
