"""Reads of the tickets app: the unit that answers for an address, the outages covering it, what the customer
card shows and the ticket page's moves and timeline."""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass

from django.db import connections
from django.urls import reverse
from django.utils import timezone
from django.utils.translation import gettext as _

from crm import shared_cache
from crm.models import Role, Unit
from crm.scoping import merged_away, scope_for, unit_cached
from customers.models import Customer
from tickets.models import OPEN_STATUSES, Incident, Status, Ticket, due_soon


def current_unit(unit: Unit) -> Unit:
    """Follow merges that have taken effect (``crm.scoping.merged_away``): work for a merged unit goes to its
    successor."""
    today = timezone.localdate()
    seen = set()
    while merged_away(unit, today=today) and unit.pk not in seen:
        seen.add(unit.pk)
        successor = unit.successor
        if successor is None:
            break
        unit = successor
    return unit


def units_serving(unit_id: int) -> list[int]:
    """The units whose staff work the records of unit ``unit_id``: the unit itself and, once it was merged away,
    each unit that took it over down to the one serving now (``current_unit``): those whose records include
    this unit's (``crm.scoping.units_served_today``). A ticket received before a merge keeps its unit; the
    successor's dispatchers and crews see it, and are the ones sent it, told of it and escalated to."""
    return units_serving_unit(unit_cached(unit_id))


def units_serving_unit(unit: Unit) -> list[int]:
    """``units_serving`` of a unit already read (the card's customer's): no second read of it."""
    today = timezone.localdate()
    chain = [unit.pk]
    while merged_away(unit, today=today):
        successor_id = unit.successor_id
        if successor_id is None or successor_id in chain:
            break
        chain.append(successor_id)
        unit = unit_cached(successor_id)
    return sorted(chain)


def incidents_for_customer(customer: Customer, *, at=None) -> list[Incident]:
    """Open incidents covering the customer's address (their unit, and their ward when the incident names wards)
    that had started by ``at`` (now when not given), the latest started first. The unit serving the customer
    now enters new outages, and an outage still open in their own unit when it was merged away goes on taking
    their calls until restored: the open incidents of every unit of ``units_serving``. A planned outage entered
    ahead of its start does not affect the customer yet: a call before then is about something else."""
    at = at or timezone.now()
    found = [
        i
        for unit_id in units_serving_unit(customer.unit)
        for i in open_incidents_of_unit(unit_id)
        if i.started_at <= at and i.covers(unit_id=i.unit_id, ward=customer.ward)
    ]
    return sorted(found, key=lambda i: (i.started_at, i.pk), reverse=True)


def open_ticket_numbers(*, customer_id: int, category_id: int, besides: int, limit: int = 5) -> list[str]:
    """The numbers of the customer's open tickets of a category other than ``besides``, the latest first (at most
    ``limit``). One indexed query written out: intake asks it on every request, and the ORM's building of it
    cost five times its execution."""
    with connections["default"].cursor() as cursor:
        cursor.execute(
            _open_ticket_numbers_query(), [customer_id, category_id, besides, *OPEN_STATUSES, limit]
        )
        return [number for (number,) in cursor.fetchall()]


@functools.cache
def _open_ticket_numbers_query() -> str:
    quote = connections["default"].ops.quote_name
    columns = {field.name: str(field.column) for field in Ticket._meta.concrete_fields}

    def column(name: str) -> str:
        return quote(columns[name])

    return (
        f"SELECT {column('number')} FROM {quote(Ticket._meta.db_table)} WHERE {column('customer')} = %s "
        f"AND {column('category')} = %s AND {column('id')} <> %s "
        f"AND {column('status')} IN ({', '.join(['%s'] * len(OPEN_STATUSES))}) "
        f"ORDER BY {column('id')} DESC LIMIT %s"
    )


def open_incidents_of_unit(unit_id: int) -> list[Incident]:
    """The unit's open incidents, the latest started first, kept in the shared cache (an outage call and the card
    ask on every request; an incident opened or restored anywhere is seen by the next request)."""
    return shared_cache.remember(
        f"open_incidents:{unit_id}",
        (shared_cache.OUTAGES,),
        lambda: list(Incident.objects.open().filter(unit_id=unit_id).order_by("-started_at", "-id")),
    )


def card_open_tickets(*, customer, user) -> dict:
    """The customer's open tickets (within the user's scope), and the link to take a new one, prefilled."""
    # Plain values of the six columns shown (the agent waits on the card: no model instances to build).
    tickets = (
        Ticket.objects.for_user(user)
        .open()
        .filter(customer_id=customer.pk)
        .order_by("-id")
        .values_list("number", "category__name", "status", "unit__code", "created_at", "resolve_due")[:20]
    )
    statuses = dict(Status.choices)
    rows = [
        [
            number,
            category,
            str(statuses.get(status, status)),
            unit,
            timezone.localtime(created_at).strftime("%d/%m/%Y %H:%M"),
            timezone.localtime(resolve_due).strftime("%d/%m/%Y %H:%M"),
        ]
        for number, category, status, unit, created_at, resolve_due in tickets
    ]
    actions = []
    if user.has_perm("tickets.add_ticket"):
        actions.append((_("New ticket"), new_ticket_url(customer=customer), "get"))
    return {
        "columns": [_("number"), _("category"), _("status"), _("unit"), _("received at"), _("resolve by")],
        "rows": rows,
        "actions": actions,
    }


def new_ticket_url(*, customer) -> str:
    """The admin's new ticket for ``customer``, prefilled with their primary phone (the card puts the caller's
    own number there when the call came with one) and their contract when they have only one in force."""
    from urllib.parse import urlencode

    from customers.models import ContractStatus

    params = {"customer": customer.pk, "channel": "phone"}
    # The card has read the phones and contracts (``card_phones``, ``card_contracts``); elsewhere one query each.
    phones = getattr(customer, "card_phones", None)
    phones = customer.phones.all() if phones is None else phones
    phone = next((p.number for p in phones if p.is_primary), None)
    if phone:
        params["caller_phone"] = phone
    contracts = getattr(customer, "card_contracts", None)
    contracts = customer.contracts.all() if contracts is None else contracts
    contracts = [c.pk for c in contracts if c.status != ContractStatus.TERMINATED]
    if len(contracts) == 1:
        params["contract"] = contracts[0]
    return f"{reverse('admin:tickets_ticket_add')}?{urlencode(params)}"


def card_outages(*, customer, user) -> dict:
    """Open outages covering the customer's address, with a one-click "this call is about it"."""
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
    """Per unit in the user's scope: open tickets, breached ones by level, and those due soon (``due_soon``)."""
    from django.db.models import Count, Q

    now = now or timezone.now()
    return list(
        Ticket.objects.for_user(user)
        .open()
        .values("unit_id", "unit__code", "unit__name")  # the id: each row's links open that unit's queue
        .annotate(
            open=Count("id"),
            breached=Count("id", filter=Q(escalation_level__gt=0)),
            level2=Count("id", filter=Q(escalation_level=2)),
            level3=Count("id", filter=Q(escalation_level=3)),
            due_soon=Count("id", filter=due_soon(now)),
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
# The roles that work tickets, the only ones a ticket is given to: an administrator or a manager may hold the
# right to change tickets, but working them is not their job.
TICKET_ROLES = (Role.AGENT, Role.SUPERVISOR, Role.DISPATCHER, Role.FIELD_CREW)


def eligible_assignees(unit_ids):
    """The staff a ticket of these units may be given to: active, serving one of the units (or the unit that
    took it over, ``units_serving``), of a role that works tickets (``TICKET_ROLES``) and with the right to.
    The one rule: the assign service checks it, the admin offers only them."""
    from django.contrib.auth import get_user_model

    serving = sorted({served for unit_id in unit_ids for served in units_serving(unit_id)})
    users = get_user_model().objects.with_perm(WORK_TICKETS, backend="crm.auth.CachedModelBackend")
    return users.filter(
        is_active=True, staff_profile__role__in=TICKET_ROLES, staff_profile__units__in=serving
    ).distinct()


def crews_of_unit(unit_id: int):
    """The field crew members a work order of this unit may be sent to: active accounts of the field-crew role
    serving the unit (or the unit that took it over, ``units_serving``), by username (the work order services
    refuse anyone else)."""
    from django.contrib.auth import get_user_model

    from crm.models import Role

    return (
        get_user_model()
        .objects.filter(
            is_active=True, staff_profile__role=Role.FIELD_CREW, staff_profile__units__in=units_serving(unit_id)
        )
        .distinct()
        .order_by("username")
    )


def crew_label(user) -> str:
    """A crew member as a dispatcher picks them: name and username."""
    name = user.get_full_name()
    return f"{name} ({user.get_username()})" if name else user.get_username()


def crew_choices(unit_id: int) -> list[tuple[str, str]]:
    """The choice of "Send a crew": the unit's dispatchers decide (empty value), or one of its crew members."""
    return [
        ("", _("The unit's dispatchers decide")),
        *((str(u.pk), crew_label(u)) for u in crews_of_unit(unit_id)),
    ]


def crew_pickable_by(user):
    """The accounts ``user`` may name as a work order's crew member, on the admin's pages and in the API alike:
    the staff of the units they see (``StaffProfile.objects.for_user``), as the user admin lists them. Anyone
    else is "no such crew member", so that trying ids or usernames tells nothing of other companies' staff;
    whether one of these may be sent is the work order services' to say."""
    from django.contrib.auth import get_user_model

    from crm.models import StaffProfile

    return get_user_model().objects.filter(staff_profile__in=StaffProfile.objects.for_user(user))


@dataclass
class WorkOrderRow:
    """One work order on its ticket's page: whom it is with, whether its reader may open its page (it is scoped
    by the order's unit, which a re-routed ticket left behind) and, when it may move, whom it may go to."""

    pk: int
    status: str
    status_label: str
    issued_at: object
    crew_id: int | None
    crew_shown: str
    crew_choices: list[tuple[str, str]]
    openable: bool


def ticket_work_orders(*, ticket: Ticket, user) -> list[WorkOrderRow]:
    """The ticket's work orders for its page, newest first: each with its crew and, for an open one and a user
    who sends crews, the crew members it may be given to instead."""
    from tickets.models import WorkOrder, WorkOrderStatus

    orders = WorkOrder.objects.filter(ticket_id=ticket.pk).select_related("crew").order_by("-id")
    scope = scope_for(user)
    sends = user.has_perm("tickets.add_workorder") and scope.allows_unit(ticket.unit_id)
    views = user.has_perm("tickets.view_workorder")
    choices_by_unit: dict[int, list[tuple[str, str]]] = {}
    rows = []
    for order in orders:
        is_open = order.status not in (WorkOrderStatus.DONE, WorkOrderStatus.CANCELLED)
        if sends and is_open and order.unit_id not in choices_by_unit:
            choices_by_unit[order.unit_id] = crew_choices(order.unit_id)
        rows.append(
            WorkOrderRow(
                pk=order.pk,
                status=order.status,
                status_label=str(WorkOrderStatus(order.status).label),
                issued_at=order.issued_at,
                crew_id=order.crew_id,
                crew_shown=crew_label(order.crew) if order.crew else _("the unit's dispatchers"),
                crew_choices=choices_by_unit.get(order.unit_id, []) if sends and is_open else [],
                openable=views and scope.allows_unit(order.unit_id),
            )
        )
    return rows


def unit_wards(unit) -> list[str]:
    """The wards (phường, xã) a unit serves, as an incident names them: the reference list of the unit's
    district, else the wards its customers' addresses name."""
    from crm.reference_data import wards
    from customers.models import Customer

    listed = wards().get(unit.code)
    if listed:
        return list(listed)
    named = Customer.objects.filter(unit=unit).exclude(ward="").values_list("ward", flat=True)
    return sorted(set(named.distinct()[:500]))


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
    # Each ticket's callback of its current cycle (a reopened ticket keeps those of its earlier resolutions).
    attempts = {
        (ticket_id, cycle): n
        for ticket_id, cycle, n in Callback.objects.filter(ticket__in=[t.pk for t in tickets]).values_list(
            "ticket_id", "cycle", "attempts"
        )
    }
    seen = privacy.visibility(user)
    now = timezone.now()
    for ticket in tickets:
        phone = ticket.caller_phone or next(
            (p.number for p in (ticket.customer.phones.all() if ticket.customer else []) if p.is_primary), ""
        )
        ticket.phone_shown = seen.phone(display_phone(phone)) if phone else "—"
        ticket.attempts = attempts.get((ticket.pk, ticket.cycle), 0)
        ticket.callback_left = time_left(ticket.callback_due, now=now)
        ticket.callback_overdue = ticket.callback_due is not None and ticket.callback_due < now
    return tickets


def ticket_phone_shown(ticket: Ticket, user) -> str:
    """The phone to call about ``ticket`` (the caller's, else the customer's primary), as ``user`` may see it."""
    from customers import privacy
    from customers.normalise import display_phone

    phone = ticket.caller_phone
    if not phone and ticket.customer is not None:
        phone = ticket.customer.phones.filter(is_primary=True).values_list("number", flat=True).first() or ""
    return privacy.visibility(user).phone(display_phone(phone)) if phone else "—"


# The ticket page: its moves, clocks and timeline ---------------------------------------------------------


@dataclass
class Move:
    """A button on the ticket page: what it does, and what the service needs with it."""

    key: str
    label: str
    needs_note: bool = False  # a reason the service requires
    takes_note: bool = False  # an optional one
    needs_duplicate: bool = False
    link: str = ""  # a move made on a page of its own (the callback survey)
    crew_choices: list[tuple[str, str]] | None = None  # "Send a crew": whom to (value, label); "" is nobody
    incident_choices: list[tuple[str, str]] | None = None  # "Part of an outage": which one (value, label)


def ticket_moves(*, ticket: Ticket, user) -> list[Move]:
    """The moves ``user`` may make on ``ticket`` now: its status allows them (``services.TRANSITIONS``) and
    the user holds the permission. The services check again when the button is pressed."""
    from tickets.models import Status
    from tickets.services import TRANSITIONS

    if not user.has_perm("tickets.change_ticket"):
        return []
    allowed = TRANSITIONS.get(ticket.status, set())
    moves = []
    if ticket.is_open and ticket.assignee_id != user.pk and serves(user, ticket.unit_id):
        moves.append(Move("take", _("Take (assign to me)")))
    if Status.ACKNOWLEDGED in allowed:
        moves.append(Move("acknowledge", _("Acknowledge")))
    if ticket.is_open and ticket.contacted_at is None:
        moves.append(Move("contact", _("The unit has called the customer")))
    if ticket.is_open and user.has_perm("tickets.add_workorder"):
        moves.append(Move("send_crew", _("Send a crew (work order)"), takes_note=True,
                          crew_choices=crew_choices(ticket.unit_id)))  # fmt: skip
    if ticket.is_open and ticket.category.is_outage:
        outages = outages_to_link(ticket=ticket, user=user)
        if outages:
            moves.append(Move("link_outage", _("Part of an outage"), incident_choices=[
                (str(i.pk), outage_label(i)) for i in outages
            ]))  # fmt: skip
    if Status.IN_PROGRESS in allowed:
        if ticket.status == Status.PENDING_CUSTOMER:
            moves.append(Move("resume", _("Resume (the customer has answered)")))
        else:
            moves.append(Move("start", _("Start work")))
    if Status.PENDING_CUSTOMER in allowed:
        moves.append(Move("pending", _("Wait for the customer (stops the clocks)"), takes_note=True))
    if Status.RESOLVED in allowed:
        moves.append(Move("resolve", _("Resolve"), takes_note=True))
    if ticket.status == Status.RESOLVED and user.has_perm("tickets.add_callback"):
        moves.append(Move("callback", _("Call back: survey"),
                          link=reverse("admin:tickets_ticket_callback", args=[ticket.pk])))  # fmt: skip
    if Status.REOPENED in allowed:
        moves.append(Move("reopen", _("Reopen"), needs_note=True))
    if Status.DUPLICATE in allowed:
        moves.append(Move("duplicate", _("Mark as a duplicate of"), needs_duplicate=True))
    if Status.CANCELLED in allowed:
        moves.append(Move("cancel", _("Cancel"), needs_note=True))
    return moves


def outages_to_link(*, ticket: Ticket, user) -> list[Incident]:
    """The outages an outage call taken before they were entered may be linked to from its page: the open ones
    covering the customer's address that had started by the time of the call, or of its last reopen
    (``current_call_at``, the time ``ticket_link_incident`` judges by: a call before an outage's start is about
    something else), for an unknown caller those of the ticket's unit and of the units that took it over
    (``units_serving``), of the units the user serves, besides the one it is part of. The service checks again
    when it is linked."""
    from tickets.services import current_call_at

    called_at = current_call_at(ticket)
    if ticket.customer is not None:
        found = incidents_for_customer(ticket.customer, at=called_at)
    else:
        found = [
            i
            for unit_id in units_serving(ticket.unit_id)
            for i in open_incidents_of_unit(unit_id)
            if i.started_at <= called_at
        ]
    scope = scope_for(user)
    return [i for i in found if i.pk != ticket.incident_id and scope.allows_unit(i.unit_id)]


def outage_label(incident: Incident) -> str:
    """An outage as a dispatcher picks it: its number, cause, wards and start."""
    start = timezone.localtime(incident.started_at).strftime("%d/%m/%Y %H:%M")
    return f"#{incident.pk} {incident.cause} ({', '.join(incident.wards) or _('whole unit')}; {start})"


def serves(user, unit_id: int) -> bool:
    """Whether ``user`` (a user or their id) works the records of unit ``unit_id``: they serve it, or the unit
    that took it over (``units_serving``)."""
    from crm.models import StaffProfile

    return StaffProfile.objects.filter(user=user, units__in=units_serving(unit_id)).exists()


def ticket_clocks(*, ticket: Ticket, now=None) -> list[dict]:
    """Each deadline of the ticket: when it falls, and whether it was met, passed, is paused or how long is left
    (one already passed when the ticket was set pending is late, not paused: it keeps its moment). A ticket no
    longer open stops its clocks ("—" for a deadline never met), but for the callback's, which runs while the
    resolved ticket waits for its call."""
    from tickets.models import Status

    now = now or timezone.now()
    paused = ticket.status == Status.PENDING_CUSTOMER
    rows = []
    clocks = (  # label, due, done, breached, runs while the ticket is resolved
        (_("acknowledge by"), ticket.acknowledge_due, ticket.acknowledged_at, ticket.acknowledge_breached, False),
        (_("contact the customer by"), ticket.contact_due, ticket.contacted_at, ticket.contact_breached, False),
        (_("resolve by"), ticket.resolve_due, ticket.resolved_at, ticket.resolve_breached, False),
        (_("call back by"), ticket.callback_due, ticket.closed_at if ticket.callback_due else None, False, True),
    )  # fmt: skip
    for label, due, done, breached, runs_when_resolved in clocks:
        if due is None:
            continue
        if done is not None:
            state = (_("done late, at %(at)s") if done > due or breached else _("done at %(at)s")) % {
                "at": timezone.localtime(done).strftime("%d/%m/%Y %H:%M")
            }
            late = done > due or breached
        elif not ticket.is_open and not (runs_when_resolved and ticket.status == Status.RESOLVED):
            state, late = "—", breached
        elif paused and ticket.paused_at is not None and due <= ticket.paused_at:
            # Missed before the pause: it keeps its moment, late whatever the customer does.
            state, late = time_left(due, now=now), True
        elif paused:
            state, late = _("paused: waiting for the customer"), breached
        else:
            state, late = time_left(due, now=now), breached or due < now
        rows.append({"label": label, "due": due, "state": state, "late": late})
    return rows


def ticket_timeline(*, ticket: Ticket) -> list[dict]:
    """What happened to the ticket, oldest first: who, when, what (a status move named by its labels)."""
    from tickets.models import Status

    def status_label(value):
        return Status(value).label if value in Status.values else value

    rows = []
    for event in ticket.events.select_related("actor").order_by("at", "id"):
        what = event.get_kind_display()
        if event.kind == "status" and "status" in event.after:
            what = f"{status_label(event.before.get('status', ''))} → {status_label(event.after['status'])}"
            if event.after.get("duplicate_of"):
                what = _("%(move)s (of %(number)s)") % {"move": what, "number": event.after["duplicate_of"]}
        elif event.kind == "escalated" and event.level:
            what = _("Escalated to level %(n)d") % {"n": event.level}
        elif event.kind == "assigned" and "work_order" in event.after:
            what = _("Work order given to %(who)s") % {
                "who": event.after.get("crew") or _("the unit's dispatchers")
            }
        rows.append({
            "at": event.at,
            "who": (event.actor.get_full_name() or event.actor.get_username()) if event.actor else _("system"),
            "kind": event.kind,
            "what": what,
            "note": event.note,
        })  # fmt: skip
    return rows
