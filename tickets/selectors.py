"""Reads of the tickets app: what the customer card shows."""

from __future__ import annotations

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


def time_left(due, *, now=None) -> str:
    """How long until ``due`` ("3 h 20 min left") or since it passed ("overdue by 12 min"), for the agent's eye."""
    if due is None:
        return "—"
    now = now or timezone.now()
    seconds = int((due - now).total_seconds())
    minutes = abs(seconds) // 60
    days, rest = divmod(minutes, 24 * 60)
    hours, mins = divmod(rest, 60)
    parts = []
    if days:
        parts.append(_("%(n)d d") % {"n": days})
    if hours:
        parts.append(_("%(n)d h") % {"n": hours})
    if mins or not parts:
        parts.append(_("%(n)d min") % {"n": mins})
    span = " ".join(parts[:2])
    return (_("%(span)s left") if seconds >= 0 else _("overdue by %(span)s")) % {"span": span}


def callbacks_due(*, user, limit: int = 200) -> list[Ticket]:
    """Resolved tickets of the user's units awaiting the centre's callback (a finished callback closes them),
    the earliest deadline first, each with its attempts so far and the phone to call."""
    from customers import privacy
    from customers.normalise import display_phone
    from tickets.models import Callback, Status

    tickets = list(
        Ticket.objects.for_user(user)
        .filter(status=Status.RESOLVED)
        .select_related("customer", "category", "unit")
        .prefetch_related("customer__phones")
        .order_by("callback_due", "id")[:limit]
    )
    attempts = dict(
        Callback.objects.filter(ticket__in=[t.pk for t in tickets]).values_list("ticket_id", "attempts")
    )
    seen = privacy.visibility(user)
    now = timezone.now()
    for ticket in tickets:
        phone = ticket.caller_phone or next(
            (p.number for p in (ticket.customer.phones.all() if ticket.customer else []) if p.is_primary), ""
        )
        ticket.phone_shown = seen.phone(display_phone(phone)) if phone else "—"
        ticket.attempts = attempts.get(ticket.pk, 0)
        ticket.callback_left = time_left(ticket.callback_due, now=now)
        ticket.callback_overdue = ticket.callback_due is not None and ticket.callback_due < now
    return tickets


def ticket_phone_shown(ticket: Ticket, user) -> str:
    """The phone to call about ``ticket`` (the caller's, else the customer's primary), as ``user`` may see it."""
    from customers import privacy
    from customers.normalise import display_phone

    phone = ticket.caller_phone
    if not phone and ticket.customer_id:
        phone = ticket.customer.phones.filter(is_primary=True).values_list("number", flat=True).first() or ""
    return privacy.visibility(user).phone(display_phone(phone)) if phone else "—"
