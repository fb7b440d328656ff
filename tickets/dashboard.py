"""The tickets' widgets on the managers' dashboard: requests by channel, category and unit, the electronic share,
SLA compliance (overall and by unit), open breaches, handling time, callback satisfaction and outage restore
times. Registered with ``crm.dashboard_widgets`` in ``TicketsConfig.ready``.

Each widget is one aggregate query (``GROUP BY``), and the six widgets about the tickets received share one:
the tickets of the period are read once per page, counted per (unit, channel, category) with the SLA counts
(``cube``), and the requests by channel, by category and by unit, the electronic share, the SLA compliance and
the SLA by unit are sums of that (a few hundred rows at most). Unit and category names come from those small
tables.

Which date puts a row in the period: tickets by ``created_at`` (received), interactions by ``started_at``,
callbacks by ``completed_at``, incidents by ``started_at``. Open breaches are the open tickets now, whatever the
period. The date ranges need indexes to cost what the period holds rather than what the tables hold (see
``bench/dashboard.py``): ``tickets_ticket (unit_id, created_at)`` and ``tickets_callback (completed_at)``.
"""

from __future__ import annotations

import datetime as dt

from django.conf import settings
from django.db.models import Avg, Count, F, OuterRef, Q, Subquery
from django.utils import timezone
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy, pgettext

from crm.dashboard_widgets import (
    Board,
    Widget,
    bar_chart,
    donut_chart,
    minutes,
    number,
    register,
    seconds,
    share,
)
from crm.scoping import scope_for
from tickets.models import Callback, CallbackOutcome, Category, Channel, Incident, Interaction, Status, Ticket

RESTORE_TARGET_MINUTES = 120  # "an outage is fixed within 2 hours" (DOMAIN.md)
SLA_TARGETS = ("acknowledge", "contact", "resolve")


def sla_target_percent() -> float:
    """The share of tickets meeting each time limit that the centre aims for (the line on the SLA chart)."""
    return float(settings.TONGDAI_SLA_TARGET_PERCENT)


# The SLA conditions: a target is reached when it was done or breached; met when done by its deadline. A ticket
# cancelled or marked a duplicate of another was closed without its remaining steps: it reaches a target only
# where that step was done (or missed in an earlier cycle), never by a breach flag alone, which the sweep may
# or may not have set before the ticket was closed (a repeat call is the same request as the one it repeats).
_SLA = {
    "acknowledge": ("acknowledged_at", "acknowledge_due", "acknowledge_breached"),
    "contact": ("contacted_at", "contact_due", "contact_breached"),
    "resolve": ("resolved_at", "resolve_due", "resolve_breached"),
}


# The deadline of a target missed in an earlier cycle of a reopened ticket (the acknowledge clock never starts
# again): such a ticket counts as reached and missed, whatever its current cycle did.
_MISSED_BEFORE = {"contact": "contact_missed_before", "resolve": "resolve_missed_before"}

# The statuses of a ticket closed without its remaining steps: their breach flags alone reach no target.
_CLOSED_WITHOUT_STEPS = (Status.CANCELLED, Status.DUPLICATE)


def sla_aggregates() -> dict[str, Count]:
    """Per target, the tickets whose deadline is reached (done, breached, or missed in an earlier cycle) and
    those that met it (done in time, and never missed before a reopen). A cancelled or duplicate ticket is
    reached only where the step was done or missed in an earlier cycle: its breach flag alone does not count.
    The one rule behind the overall and per-unit SLA figures and the monthly workbook."""
    aggregates = {}
    for target, (done, due, breached) in _SLA.items():
        breached_open = Q(**{breached: True}) & ~Q(status__in=_CLOSED_WITHOUT_STEPS)
        reached = Q(**{f"{done}__isnull": False}) | breached_open
        met = Q(**{f"{done}__isnull": False, f"{done}__lte": F(due)})
        if target in _MISSED_BEFORE:
            reached |= Q(**{f"{_MISSED_BEFORE[target]}__isnull": False})
            met &= Q(**{f"{_MISSED_BEFORE[target]}__isnull": True})
        aggregates[f"{target}_reached"] = Count("id", filter=reached)
        aggregates[f"{target}_met"] = Count("id", filter=met)
    return aggregates


def _sla_labels() -> dict[str, str]:
    return {
        "acknowledge": _("Acknowledge (3 min)"),
        "contact": _("Contact the customer (4 min)"),
        "resolve": _("Resolve"),
    }


# Queries ----------------------------------------------------------------------------------------------


def received(board: Board):
    """The tickets received in the period, within the scope."""
    return board.scoped(Ticket.objects.filter(created_at__gte=board.begin, created_at__lt=board.stop))


def cube(board: Board) -> list[dict]:
    """The tickets received in the period counted per (unit, channel, category), with the SLA counts: the
    one pass over the tickets behind six widgets, once per page. Grouped by ids only (names come from the small
    tables): grouping by the joined names costs about twice as much on a month of tickets."""
    return board.memo(
        f"{__name__}.cube",
        lambda: list(
            received(board)
            .values("unit_id", "channel", "category_id")
            .annotate(count=Count("id"), **sla_aggregates())
            .order_by()
        ),
    )


def _categories(board: Board) -> dict[int, tuple[str, str]]:
    return board.memo(
        f"{__name__}.categories",
        lambda: {c["id"]: (c["code"], c["name"]) for c in Category.objects.values("id", "code", "name")},
    )


def _sum_cube(board: Board, key: str) -> dict:
    """The cube's counts added up by one of its keys."""
    fields = ["count", *(f"{t}_{k}" for t in SLA_TARGETS for k in ("reached", "met"))]
    totals: dict = {}
    for row in cube(board):
        into = totals.setdefault(row[key], dict.fromkeys(fields, 0))
        for field in fields:
            into[field] += row[field]
    return totals


def requests_by_channel(board: Board) -> list[dict]:
    """``[{"channel", "label", "count"}]``, most used first."""
    rows = [
        {"channel": channel, "label": str(Channel(channel).label), "count": sums["count"]}
        for channel, sums in _sum_cube(board, "channel").items()
    ]
    return sorted(rows, key=lambda r: (-r["count"], r["channel"]))


def requests_by_category(board: Board) -> list[dict]:
    """``[{"category", "label", "count"}]``, most frequent first."""
    rows = []
    for category_id, sums in _sum_cube(board, "category_id").items():
        code, name = _categories(board)[category_id]
        rows.append({"category": code, "label": name, "count": sums["count"]})
    return sorted(rows, key=lambda r: (-r["count"], r["category"]))


def requests_by_unit(board: Board) -> list[dict]:
    """``[{"unit", "label", "count"}]``, busiest first."""
    rows = [
        {**board.unit(unit_id), "count": sums["count"]}
        for unit_id, sums in _sum_cube(board, "unit_id").items()
    ]
    return sorted(rows, key=lambda r: (-r["count"], r["unit"]))


def electronic_share(board: Board) -> dict:
    """``{"total", "electronic", "phone", "share"}``: every channel but the phone is electronic; ``share`` in
    percent, None without tickets."""
    rows = cube(board)
    total = sum(r["count"] for r in rows)
    phone = sum(r["count"] for r in rows if r["channel"] == "phone")
    return {"total": total, "electronic": total - phone, "phone": phone, "share": share(total - phone, total)}


def sla_compliance(board: Board) -> list[dict]:
    """Per time limit: ``{"target", "label", "reached", "met", "share"}``. Reached: done or breached (a ticket
    whose deadline is still ahead, or that was cancelled or marked a duplicate without that step, is not
    counted, breached or not); met: done by the deadline stored on the ticket."""
    labels = _sla_labels()
    rows = cube(board)
    result = []
    for target in SLA_TARGETS:
        reached = sum(r[f"{target}_reached"] for r in rows)
        met = sum(r[f"{target}_met"] for r in rows)
        result.append(
            {
                "target": target,
                "label": labels[target],
                "reached": reached,
                "met": met,
                "share": share(met, reached),
            }
        )
    return result


def sla_by_unit(board: Board) -> list[dict]:
    """Per unit: ``{"unit", "label", "<target>_reached", "<target>_met", "<target>"}`` (the share, %)."""
    rows = []
    for unit_id, sums in _sum_cube(board, "unit_id").items():
        row = board.unit(unit_id)
        for target in SLA_TARGETS:
            reached, met = sums[f"{target}_reached"], sums[f"{target}_met"]
            row.update({f"{target}_reached": reached, f"{target}_met": met, target: share(met, reached)})
        rows.append(row)
    return sorted(rows, key=lambda r: r["unit"])


def handling_time(board: Board) -> dict:
    """``{"count", "avg_seconds", "by_channel": [{"channel", "label", "count", "avg_seconds"}]}`` of the
    interactions (calls and messages) started in the period."""
    rows = (
        board.scoped(Interaction.objects.filter(started_at__gte=board.begin, started_at__lt=board.stop))
        .values("channel")
        .annotate(count=Count("id"), avg=Avg(F("ended_at") - F("started_at")))
        .order_by("-count", "channel")
    )
    by_channel = [
        {
            "channel": r["channel"],
            "label": str(Channel(r["channel"]).label),
            "count": r["count"],
            "avg_seconds": seconds(r["avg"]),
        }
        for r in rows
    ]
    count = sum(r["count"] for r in by_channel)
    weighted = sum(r["count"] * (r["avg_seconds"] or 0) for r in by_channel)
    return {
        "count": count,
        "avg_seconds": round(weighted / count, 1) if count else None,
        "by_channel": by_channel,
    }


def completed_callbacks(board: Board):
    """The callbacks completed in the period, within the scope: one per resolution, so a reopened ticket's
    earlier surveys keep counting in the period they were answered."""
    callbacks = Callback.objects.filter(completed_at__gte=board.begin, completed_at__lt=board.stop)
    if board.unit_id is None and scope_for(board.user).everything:
        return callbacks
    # The scope, through the callback's ticket, as a subquery per callback of the period (one primary-key
    # probe each): as a join, PostgreSQL hashes every ticket of the scope, i.e. reads the whole table.
    visible = Ticket.objects.for_user(board.user).filter(pk=OuterRef("ticket_id"))
    if board.unit_id is not None:
        visible = visible.filter(unit_id=board.unit_id)
    return callbacks.alias(visible=Subquery(visible.values("pk")[:1])).filter(visible__isnull=False)


def satisfaction(board: Board) -> dict:
    """The callbacks completed in the period: ``{"responses", "unreachable", "avg_fix", "avg_attitude"}``
    (scores 1–5, None without responses)."""
    row = completed_callbacks(board).aggregate(
        responses=Count("id", filter=Q(outcome=CallbackOutcome.SURVEYED)),
        unreachable=Count("id", filter=Q(outcome=CallbackOutcome.UNREACHABLE)),
        avg_fix=Avg("fix_score"),
        avg_attitude=Avg("attitude_score"),
    )
    return {
        "responses": row["responses"],
        "unreachable": row["unreachable"],
        "avg_fix": None if row["avg_fix"] is None else round(float(row["avg_fix"]), 2),
        "avg_attitude": None if row["avg_attitude"] is None else round(float(row["avg_attitude"]), 2),
    }


def open_breaches(board: Board) -> list[dict]:
    """The open tickets now, per unit: ``{"unit", "label", "open", "breached", "acknowledge", "contact",
    "resolve", "level2", "level3"}`` (breached: escalation level above 0; the three targets by their breach
    flags), most breached first. Not limited to the period: the queue as it stands."""
    keys = ("open", "breached", "acknowledge", "contact", "resolve", "level2", "level3")
    rows = (
        board.scoped(Ticket.objects.open())
        .values("unit_id")
        .annotate(
            open=Count("id"),
            breached=Count("id", filter=Q(escalation_level__gt=0)),
            acknowledge=Count("id", filter=Q(acknowledge_breached=True)),
            contact=Count("id", filter=Q(contact_breached=True)),
            resolve=Count("id", filter=Q(resolve_breached=True)),
            level2=Count("id", filter=Q(escalation_level=2)),
            level3=Count("id", filter=Q(escalation_level=3)),
        )
        .order_by()
    )
    result = [{**board.unit(r["unit_id"]), **{k: r[k] for k in keys}} for r in rows]
    return sorted(result, key=lambda r: (-r["breached"], r["unit"]))


def outages(board: Board) -> dict:
    """Outage incidents started in the period against the 2-hour restore target: ``{"count", "restored",
    "within_2h", "avg_restore_minutes", "by_unit": [same per unit, with "unit", "label"]}``. A planned outage
    called off before its start never happened: it is not counted (``Incident.objects.happened()``); nor is
    one entered ahead of its start until it has started (it takes no calls before then)."""
    limit = dt.timedelta(minutes=RESTORE_TARGET_MINUTES)
    started = Incident.objects.happened().filter(
        started_at__gte=board.begin, started_at__lt=board.stop, started_at__lte=timezone.now()
    )
    rows = (
        board.scoped(started)
        .values("unit__code", "unit__name")
        .annotate(
            count=Count("id"),
            restored=Count("id", filter=Q(restored_at__isnull=False)),
            within_2h=Count("id", filter=Q(restored_at__lte=F("started_at") + limit)),
            avg=Avg(F("restored_at") - F("started_at")),
        )
        .order_by("unit__code")
    )
    by_unit = [
        {
            "unit": r["unit__code"],
            "label": f"{r['unit__code']} – {r['unit__name']}",
            "count": r["count"],
            "restored": r["restored"],
            "within_2h": r["within_2h"],
            "avg_restore_minutes": minutes(r["avg"]),
        }
        for r in rows
    ]
    restored = sum(r["restored"] for r in by_unit)
    weighted = sum(r["restored"] * (r["avg_restore_minutes"] or 0) for r in by_unit)
    return {
        "count": sum(r["count"] for r in by_unit),
        "restored": restored,
        "within_2h": sum(r["within_2h"] for r in by_unit),
        "avg_restore_minutes": round(weighted / restored, 1) if restored else None,
        "by_unit": by_unit,
    }


# Tables -----------------------------------------------------------------------------------------------


def _channel_table(data):
    return [_("channel"), _("requests")], [[r["label"], r["count"]] for r in data]


def _category_table(data):
    return [_("category"), _("requests")], [[r["label"], r["count"]] for r in data]


def _unit_table(data):
    return [_("unit"), _("requests")], [[r["label"], r["count"]] for r in data]


def _electronic_table(data):
    return (
        [_("requests"), _("electronic"), pgettext("channel", "phone"), _("electronic share (%)")],
        [[data["total"], data["electronic"], data["phone"], data["share"]]],
    )


def _sla_table(data):
    return (
        [_("time limit"), _("reached"), _("met"), _("compliance (%)")],
        [[r["label"], r["reached"], r["met"], r["share"]] for r in data],
    )


def _sla_unit_table(data):
    short = {"acknowledge": _("acknowledge"), "contact": _("contact"), "resolve": _("resolve")}
    columns = [_("unit")]
    for target in SLA_TARGETS:
        columns += [
            _("%(target)s: reached") % {"target": short[target]},
            _("%(target)s: met") % {"target": short[target]},
            _("%(target)s (%%)") % {"target": short[target]},
        ]
    rows = [
        [r["label"], *[r[f"{t}{s}"] for t in SLA_TARGETS for s in ("_reached", "_met", "")]] for r in data
    ]
    return columns, rows


def _handling_table(data):
    rows = [[r["label"], r["count"], r["avg_seconds"]] for r in data["by_channel"]]
    if data["by_channel"]:
        rows.append([_("All channels"), data["count"], data["avg_seconds"]])
    return [_("channel"), _("interactions"), _("average handling time (s)")], rows


def _satisfaction_table(data):
    return (
        [_("responses"), _("unreachable"), _("satisfaction with the fix (1–5)"), _("satisfaction with the staff (1–5)")],
        [[data["responses"], data["unreachable"], data["avg_fix"], data["avg_attitude"]]],
    )  # fmt: skip


def _breaches_table(data):
    columns = [
        _("unit"), _("open"), _("breached"), _("acknowledge breached"), _("contact breached"),
        _("resolve breached"), _("escalated to supervisors"), _("escalated to managers"),
    ]  # fmt: skip
    keys = ("open", "breached", "acknowledge", "contact", "resolve", "level2", "level3")
    return columns, [[r["label"], *[r[k] for k in keys]] for r in data]


def _outage_table(data):
    columns = [
        _("unit"),
        _("incidents"),
        _("restored"),
        _("restored within 2 hours"),
        _("average restore (min)"),
    ]
    keys = ("count", "restored", "within_2h", "avg_restore_minutes")
    rows = [[r["label"], *[r[k] for k in keys]] for r in data["by_unit"]]
    if data["by_unit"]:
        rows.append([_("All units"), *[data[k] for k in keys]])
    return columns, rows


# Charts -----------------------------------------------------------------------------------------------


def _counts_chart(data, title):
    return bar_chart([(r["label"], r["count"]) for r in data], title=title)


def _electronic_chart(data, title):
    return donut_chart(
        [
            (_("Electronic channels"), data["electronic"], "dash-part-a"),
            (_("Phone"), data["phone"], "dash-part-b"),
        ],
        title=title,
        centre=f"{number(data['share'], 1)}%",
    )


def _against_sla_target(bars, title):
    """Shares in percent as bars, with the centre's SLA target as the line they are read against."""
    target = sla_target_percent()
    return bar_chart(
        bars,
        title=title,
        maximum=100,
        line=target,
        line_label=_("target %(p)s%%") % {"p": number(target)},
        bad=lambda v: v < target,
        suffix="%",
        decimals=1,
    )


def _sla_chart(data, title):
    return _against_sla_target([(r["label"], r["share"]) for r in data], title)


def _sla_unit_chart(data, title):
    return _against_sla_target([(r["label"], r["resolve"]) for r in data], title)


def _handling_chart(data, title):
    return bar_chart(
        [(r["label"], r["avg_seconds"]) for r in data["by_channel"]],
        title=title,
        suffix=" " + pgettext("seconds, unit", "s"),
        decimals=0,
    )


def _satisfaction_chart(data, title):
    return bar_chart(
        [(_("Fix"), data["avg_fix"]), (_("Staff attitude"), data["avg_attitude"])]
        if data["responses"]
        else [],
        title=title,
        maximum=5,
        decimals=2,
    )


def _breaches_chart(data, title):
    return bar_chart([(r["label"], r["breached"]) for r in data], title=title, bad=lambda v: v > 0)


def _outage_chart(data, title):
    return bar_chart(
        [(r["label"], r["avg_restore_minutes"]) for r in data["by_unit"] if r["restored"]],
        title=title,
        line=RESTORE_TARGET_MINUTES,
        line_label=_("2 hours"),
        bad=lambda v: v > RESTORE_TARGET_MINUTES,
        suffix=" " + _("min"),
    )


WIDGETS: list[Widget] = [
    Widget("channels", gettext_lazy("Requests by channel"), 10, requests_by_channel, _channel_table, _counts_chart),
    Widget("electronic", gettext_lazy("Handled electronically"), 20, electronic_share, _electronic_table,
           _electronic_chart, gettext_lazy("Every channel except the phone.")),
    Widget("categories", gettext_lazy("Requests by category"), 30, requests_by_category, _category_table,
           _counts_chart),
    Widget("units", gettext_lazy("Requests by unit"), 40, requests_by_unit, _unit_table, _counts_chart),
    Widget("sla", gettext_lazy("SLA compliance"), 50, sla_compliance, _sla_table, _sla_chart,
           gettext_lazy("Share of the tickets received in the period whose time limit was met, among those "
                        "where it was done or breached. A ticket cancelled or marked a duplicate counts only "
                        "where the step was done.")),
    Widget("sla_units", gettext_lazy("SLA compliance by unit"), 60, sla_by_unit, _sla_unit_table, _sla_unit_chart,
           gettext_lazy("The chart shows the resolve time limit; the table all three.")),
    Widget("breaches", gettext_lazy("Open breaches"), 70, open_breaches, _breaches_table, _breaches_chart,
           gettext_lazy("Open tickets now, whatever the period.")),
    Widget("handling", gettext_lazy("Average handling time"), 80, handling_time, _handling_table, _handling_chart,
           gettext_lazy("Calls and messages handled by the agents.")),
    Widget("satisfaction", gettext_lazy("Callback satisfaction"), 90, satisfaction, _satisfaction_table,
           _satisfaction_chart, gettext_lazy("Callbacks completed in the period; average scores from 1 to 5.")),
    Widget("outages", gettext_lazy("Outage restore times"), 100, outages, _outage_table, _outage_chart,
           gettext_lazy("Incidents started in the period; the target is 2 hours.")),
]  # fmt: skip


def register_widgets() -> None:
    """Put the tickets' widgets on the dashboard (``TicketsConfig.ready``)."""
    for widget in WIDGETS:
        register(widget)
