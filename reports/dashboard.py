"""The managers' dashboard: what the centre did in a period, within the user's scope, and small SVG charts.

Every selector takes ``(user, start, end, unit=None)``: ``start`` and ``end`` are dates, both included, read as
local days (Asia/Ho_Chi_Minh); ``unit`` (a ``Unit`` or its id) narrows to one unit, and a unit outside the
user's scope gives nothing, because every query goes through ``for_user(user)`` (``crm.scoping``).

Each widget is one aggregate query (``GROUP BY``), and the six widgets about the tickets received share one:
the tickets of the period are read once, counted per (unit, channel, category) with the SLA counts, and the
requests by channel, by category and by unit, the electronic share, the SLA compliance and the SLA by unit
are sums of that (a few hundred rows at most). Unit and category names come from those small tables.
``Dashboard`` keeps each query's result for one page (``Dashboard(user, start, end, unit)``); the module-level
functions make a one-off ``Dashboard`` and are what tests and other callers use.

The date ranges need indexes to cost what the period holds rather than what the tables hold (see
``bench/dashboard.py``): ``tickets_ticket (unit_id, created_at)`` and ``tickets_callback (completed_at)``.

Which date puts a row in the period: tickets by ``created_at`` (received), interactions by ``started_at``,
callbacks by ``completed_at``, incidents by ``started_at``, refunds by ``created_at``, rebates by
``applied_at``, consumption bands by their billing ``period`` (the months that overlap the period). Open
breaches are the open tickets now, whatever the period.

Charts are inline SVG drawn by templates under ``templates/dashboard/`` (no JavaScript, nothing from the internet); their colours come from
``reports/static/reports/dashboard.css``, which follows the admin's light and dark themes.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from dataclasses import dataclass
from functools import cached_property
from typing import Any

from django.conf import settings
from django.db.models import Avg, Count, F, OuterRef, Q, Subquery, Sum
from django.template.loader import render_to_string
from django.utils import formats, timezone
from django.utils.safestring import SafeString
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy, pgettext

from crm.scoping import scope_for

RESTORE_TARGET_MINUTES = 120  # "an outage is fixed within 2 hours" (DOMAIN.md)
SLA_TARGETS = ("acknowledge", "contact", "resolve")


def sla_target_percent() -> float:
    """The share of tickets meeting each time limit that the centre aims for (the line on the SLA chart)."""
    return float(settings.TONGDAI_SLA_TARGET_PERCENT)


def month_bounds(day: dt.date) -> tuple[dt.date, dt.date]:
    """The first and last day of ``day``'s month."""
    first = day.replace(day=1)
    following = (first + dt.timedelta(days=32)).replace(day=1)
    return first, following - dt.timedelta(days=1)


def _window(start: dt.date, end: dt.date) -> tuple[dt.datetime, dt.datetime]:
    """Local midnight of ``start`` and of the day after ``end``: a half-open range of aware datetimes."""
    zone = timezone.get_current_timezone()
    begin = dt.datetime.combine(start, dt.time.min, tzinfo=zone)
    stop = dt.datetime.combine(end + dt.timedelta(days=1), dt.time.min, tzinfo=zone)
    return begin, stop


def _share(part: int, whole: int) -> float | None:
    return round(100 * part / whole, 1) if whole else None


def _minutes(value: dt.timedelta | None) -> float | None:
    return None if value is None else round(value.total_seconds() / 60, 1)


def _seconds(value: dt.timedelta | None) -> float | None:
    return None if value is None else round(value.total_seconds(), 1)


# The SLA conditions: a target is reached when it was done or breached; met when done by its deadline.
_SLA = {
    "acknowledge": ("acknowledged_at", "acknowledge_due", "acknowledge_breached"),
    "contact": ("contacted_at", "contact_due", "contact_breached"),
    "resolve": ("resolved_at", "resolve_due", "resolve_breached"),
}


def _sla_aggregates() -> dict[str, Count]:
    aggregates = {}
    for target, (done, due, breached) in _SLA.items():
        aggregates[f"{target}_reached"] = Count(
            "id", filter=Q(**{f"{done}__isnull": False}) | Q(**{breached: True})
        )
        aggregates[f"{target}_met"] = Count(
            "id", filter=Q(**{f"{done}__isnull": False, f"{done}__lte": F(due)})
        )
    return aggregates


def _sla_labels() -> dict[str, str]:
    return {
        "acknowledge": _("Acknowledge (3 min)"),
        "contact": _("Contact the customer (4 min)"),
        "resolve": _("Resolve"),
    }


class Dashboard:
    """The dashboard of one user for one period (and optionally one unit); each query runs at most once."""

    def __init__(self, user, start: dt.date, end: dt.date, unit=None):
        self.user = user
        self.start, self.end = start, end
        self.unit_id = getattr(unit, "pk", unit)
        self.begin, self.stop = _window(start, end)

    def _scoped(self, queryset, unit_path: str = "unit"):
        queryset = queryset.for_user(self.user)
        if self.unit_id is not None:
            return queryset.filter(**{f"{unit_path}_id": self.unit_id})
        if scope_for(self.user).everything:
            # Every unit, named: the same rows, but the indexes that lead with the unit (open tickets by unit
            # and status, interactions by unit and start) become usable (137 ms → 10 ms for the open breaches
            # of a million tickets).
            return queryset.filter(**{f"{unit_path}_id__in": sorted(self._units)})
        return queryset

    def _tickets(self):
        from tickets.models import Ticket

        return self._scoped(Ticket.objects.filter(created_at__gte=self.begin, created_at__lt=self.stop))

    # Queries ------------------------------------------------------------------------------------------

    @cached_property
    def _cube(self) -> list[dict]:
        """The tickets received in the period counted per (unit, channel, category), with the SLA counts: the
        one pass over the tickets behind six widgets. Grouped by ids only (names come from the small tables
        below): grouping by the joined names costs about twice as much on a month of tickets."""
        return list(
            self._tickets()
            .values("unit_id", "channel", "category_id")
            .annotate(count=Count("id"), **_sla_aggregates())
            .order_by()
        )

    @cached_property
    def _units(self) -> dict[int, tuple[str, str]]:
        """Code and name of the units in the user's scope (a small table)."""
        from crm.models import Unit

        return {
            u["id"]: (u["code"], u["name"])
            for u in Unit.objects.for_user(self.user).values("id", "code", "name")
        }

    @cached_property
    def _categories(self) -> dict[int, tuple[str, str]]:
        from tickets.models import Category

        return {c["id"]: (c["code"], c["name"]) for c in Category.objects.values("id", "code", "name")}

    def _unit(self, unit_id: int) -> dict:
        code, name = self._units.get(unit_id, (str(unit_id), ""))
        return {"unit": code, "label": f"{code} – {name}" if name else code}

    def _sum_cube(self, key: str) -> dict:
        """The cube's counts added up by one of its keys."""
        fields = ["count", *(f"{t}_{k}" for t in SLA_TARGETS for k in ("reached", "met"))]
        totals: dict = {}
        for row in self._cube:
            into = totals.setdefault(row[key], dict.fromkeys(fields, 0))
            for field in fields:
                into[field] += row[field]
        return totals

    # Widgets ------------------------------------------------------------------------------------------

    def requests_by_channel(self) -> list[dict]:
        """``[{"channel", "label", "count"}]``, most used first."""
        from tickets.models import Channel

        rows = [
            {"channel": channel, "label": str(Channel(channel).label), "count": sums["count"]}
            for channel, sums in self._sum_cube("channel").items()
        ]
        return sorted(rows, key=lambda r: (-r["count"], r["channel"]))

    def requests_by_category(self) -> list[dict]:
        """``[{"category", "label", "count"}]``, most frequent first."""
        rows = []
        for category_id, sums in self._sum_cube("category_id").items():
            code, name = self._categories[category_id]
            rows.append({"category": code, "label": name, "count": sums["count"]})
        return sorted(rows, key=lambda r: (-r["count"], r["category"]))

    def requests_by_unit(self) -> list[dict]:
        """``[{"unit", "label", "count"}]``, busiest first."""
        rows = [
            {**self._unit(unit_id), "count": sums["count"]}
            for unit_id, sums in self._sum_cube("unit_id").items()
        ]
        return sorted(rows, key=lambda r: (-r["count"], r["unit"]))

    def electronic_share(self) -> dict:
        """``{"total", "electronic", "phone", "share"}``: every channel but the phone is electronic;
        ``share`` in percent, None without tickets."""
        total = sum(r["count"] for r in self._cube)
        phone = sum(r["count"] for r in self._cube if r["channel"] == "phone")
        return {
            "total": total,
            "electronic": total - phone,
            "phone": phone,
            "share": _share(total - phone, total),
        }

    def sla_compliance(self) -> list[dict]:
        """Per time limit: ``{"target", "label", "reached", "met", "share"}``. Reached: done or breached (a
        ticket whose deadline is still ahead, or that was closed without that step, is not counted); met:
        done by the deadline stored on the ticket."""
        labels = _sla_labels()
        result = []
        for target in SLA_TARGETS:
            reached = sum(r[f"{target}_reached"] for r in self._cube)
            met = sum(r[f"{target}_met"] for r in self._cube)
            result.append(
                {
                    "target": target,
                    "label": labels[target],
                    "reached": reached,
                    "met": met,
                    "share": _share(met, reached),
                }
            )
        return result

    def sla_by_unit(self) -> list[dict]:
        """Per unit: ``{"unit", "label", "<target>_reached", "<target>_met", "<target>"}`` (the share, %)."""
        rows = []
        for unit_id, sums in self._sum_cube("unit_id").items():
            row = self._unit(unit_id)
            for target in SLA_TARGETS:
                reached, met = sums[f"{target}_reached"], sums[f"{target}_met"]
                row.update({f"{target}_reached": reached, f"{target}_met": met, target: _share(met, reached)})
            rows.append(row)
        return sorted(rows, key=lambda r: r["unit"])

    def handling_time(self) -> dict:
        """``{"count", "avg_seconds", "by_channel": [{"channel", "label", "count", "avg_seconds"}]}`` of the
        interactions (calls and messages) started in the period."""
        from tickets.models import Channel, Interaction

        rows = (
            self._scoped(Interaction.objects.filter(started_at__gte=self.begin, started_at__lt=self.stop))
            .values("channel")
            .annotate(count=Count("id"), avg=Avg(F("ended_at") - F("started_at")))
            .order_by("-count", "channel")
        )
        by_channel = [
            {
                "channel": r["channel"],
                "label": str(Channel(r["channel"]).label),
                "count": r["count"],
                "avg_seconds": _seconds(r["avg"]),
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

    def _callbacks(self):
        """The callbacks completed in the period, within the scope."""
        from tickets.models import Callback, Ticket

        callbacks = Callback.objects.filter(completed_at__gte=self.begin, completed_at__lt=self.stop)
        if self.unit_id is None and scope_for(self.user).everything:
            return callbacks
        # The scope, through the callback's ticket, as a subquery per callback of the period (one primary-key
        # probe each): as a join, PostgreSQL hashes every ticket of the scope, i.e. reads the whole table.
        visible = Ticket.objects.for_user(self.user).filter(pk=OuterRef("ticket_id"))
        if self.unit_id is not None:
            visible = visible.filter(unit_id=self.unit_id)
        return callbacks.alias(visible=Subquery(visible.values("pk")[:1])).filter(visible__isnull=False)

    def satisfaction(self) -> dict:
        """The callbacks completed in the period: ``{"responses", "unreachable", "avg_fix",
        "avg_attitude"}`` (scores 1–5, None without responses)."""
        from tickets.models import CallbackOutcome

        row = self._callbacks().aggregate(
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

    def open_breaches(self) -> list[dict]:
        """The open tickets now, per unit: ``{"unit", "label", "open", "breached", "acknowledge",
        "contact", "resolve", "level2", "level3"}`` (breached: escalation level above 0; the three targets
        by their breach flags), most breached first. Not limited to the period: the queue as it stands."""
        from tickets.models import Ticket

        keys = ("open", "breached", "acknowledge", "contact", "resolve", "level2", "level3")
        rows = (
            self._scoped(Ticket.objects.open())
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
        result = [{**self._unit(r["unit_id"]), **{k: r[k] for k in keys}} for r in rows]
        return sorted(result, key=lambda r: (-r["breached"], r["unit"]))

    def outages(self) -> dict:
        """Outage incidents started in the period against the 2-hour restore target: ``{"count",
        "restored", "within_2h", "avg_restore_minutes", "by_unit": [same per unit, with "unit", "label"]}``."""
        from tickets.models import Incident

        limit = dt.timedelta(minutes=RESTORE_TARGET_MINUTES)
        rows = (
            self._scoped(Incident.objects.filter(started_at__gte=self.begin, started_at__lt=self.stop))
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
                "avg_restore_minutes": _minutes(r["avg"]),
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

    def anomaly_bands(self) -> dict:
        """The consumption rises counted by the anomaly job for the billing periods (months) that overlap
        the period, summed: ``{"periods", "compared", "below_30", "from_30", "from_50", "from_100",
        "from_300", "held"}``."""
        from billing.models import AnomalyBandCount

        fields = ("compared", "below_30", "from_30", "from_50", "from_100", "from_300", "held")
        row = self._scoped(
            AnomalyBandCount.objects.filter(period__gte=self.start.replace(day=1), period__lte=self.end)
        ).aggregate(periods=Count("period", distinct=True), **{f"sum_{f}": Sum(f) for f in fields})
        return {"periods": row["periods"], **{f: row[f"sum_{f}"] or 0 for f in fields}}

    def refunds(self) -> dict:
        """Refunds owed after adjustments made in the period: ``{"count", "amount", "settled",
        "settled_amount"}`` (đồng)."""
        from billing.models import Refund

        row = self._scoped(
            Refund.objects.filter(created_at__gte=self.begin, created_at__lt=self.stop)
        ).aggregate(
            n=Count("id"),
            total=Sum("amount"),
            n_settled=Count("id", filter=Q(settled_at__isnull=False)),
            total_settled=Sum("amount", filter=Q(settled_at__isnull=False)),
        )
        return {
            "count": row["n"],
            "amount": row["total"] or 0,
            "settled": row["n_settled"],
            "settled_amount": row["total_settled"] or 0,
        }

    def rebates(self) -> dict:
        """Bill reductions applied in the period, per programme: ``{"count", "amount", "vat", "by_programme":
        [{"programme", "count", "amount", "vat"}]}`` (đồng, before VAT and the VAT on it)."""
        from billing.models import RebateApplication

        rows = (
            self._scoped(
                RebateApplication.objects.filter(applied_at__gte=self.begin, applied_at__lt=self.stop),
                "invoice__unit",
            )
            .values("programme__name")
            .annotate(n=Count("id"), total=Sum("amount"), total_vat=Sum("vat"))
            .order_by("programme__name")
        )
        by_programme = [
            {"programme": r["programme__name"], "count": r["n"], "amount": r["total"], "vat": r["total_vat"]}
            for r in rows
        ]
        return {
            "count": sum(r["count"] for r in by_programme),
            "amount": sum(r["amount"] for r in by_programme),
            "vat": sum(r["vat"] for r in by_programme),
            "by_programme": by_programme,
        }


# One-off selectors: (user, start, end, unit=None) -> the widget's data --------------------------------


def _selector(name: str) -> Callable:
    def select(user, start: dt.date, end: dt.date, unit=None):
        return getattr(Dashboard(user, start, end, unit), name)()

    select.__name__ = select.__qualname__ = name
    select.__doc__ = getattr(Dashboard, name).__doc__
    return select


requests_by_channel = _selector("requests_by_channel")
requests_by_category = _selector("requests_by_category")
requests_by_unit = _selector("requests_by_unit")
electronic_share = _selector("electronic_share")
sla_compliance = _selector("sla_compliance")
sla_by_unit = _selector("sla_by_unit")
handling_time = _selector("handling_time")
satisfaction = _selector("satisfaction")
open_breaches = _selector("open_breaches")
outages = _selector("outages")
anomaly_bands = _selector("anomaly_bands")
refunds = _selector("refunds")
rebates = _selector("rebates")


# Charts: inline SVG ------------------------------------------------------------------------------------


def _number(value, decimals: int = 0) -> str:
    if value is None:
        return "—"
    return formats.number_format(value, decimal_pos=decimals, use_l10n=True, force_grouping=True)


def _draw(template: str, context: dict[str, Any]) -> SafeString:
    """The chart's SVG from its template (autoescaped), without the template's surrounding whitespace."""
    return SafeString(render_to_string(template, context).strip())


def _coordinate(value: float) -> str:
    text = f"{value:.2f}".rstrip("0").rstrip(".")
    return "0" if text == "-0" else text


def bar_chart(
    bars: list[tuple[str, float | None]],
    *,
    title: str,
    maximum: float | None = None,
    line: float | None = None,
    line_label: str = "",
    bad: Callable[[float], bool] | None = None,
    suffix: str = "",
    decimals: int = 0,
    width: int = 680,
) -> SafeString:
    """Horizontal bars, one per ``(label, value)``, with an optional vertical reference line (a target or
    a limit); bars for which ``bad(value)`` is true get the ``bad`` class. The geometry is computed here and
    drawn by ``templates/dashboard/bar_chart.svg``, so every label is escaped by the template engine."""
    if not bars:
        return SafeString("")
    row, label_w, value_w, top = 22, 250, 90, 18 if line is not None else 4
    plot_w = width - label_w - value_w
    values = [v for _label, v in bars if v is not None]
    scale_max = maximum or max([*values, line or 0, 1])
    height = top + row * len(bars) + 4
    drawn = []
    for i, (label, value) in enumerate(bars):
        y = top + i * row
        length = 0 if value is None else max(plot_w * min(value, scale_max) / scale_max, 1 if value else 0)
        drawn.append({
            "label": label,
            "short": label if len(label) <= 34 else label[:33] + "…",
            "css": "dash-bar bad" if value is not None and bad is not None and bad(value) else "dash-bar",
            "y": y + 3,
            "text_y": y + 15,
            "length": _coordinate(length),
            "value_x": _coordinate(label_w + length + 4),
            "value": _number(value, decimals),
        })  # fmt: skip
    reference = None
    if line is not None:
        x = label_w + plot_w * min(line, scale_max) / scale_max
        reference = {"x": _coordinate(x), "y2": height - 2, "label": line_label}
    return _draw("dashboard/bar_chart.svg", {
        "chart_title": title, "width": width, "height": height, "bars": drawn, "line": reference,
        "label_w": label_w, "label_x": label_w - 6, "bar_h": row - 6, "suffix": suffix,
    })  # fmt: skip


def donut_chart(parts: list[tuple[str, int, str]], *, title: str, centre: str) -> SafeString:
    """A ring split into ``(label, value, css class)`` parts, the ``centre`` text inside, a legend beside;
    drawn by ``templates/dashboard/donut_chart.svg``."""
    total = sum(v for _l, v, _c in parts)
    if not total:
        return SafeString("")
    radius, stroke, circumference = 60, 26, 2 * 3.14159265 * 60
    drawn, offset = [], 0.0
    for i, (label, value, css) in enumerate(parts):
        length = circumference * value / total
        drawn.append({
            "label": label, "css": css, "value": _number(value), "percent": _number(100 * value / total, 1),
            "dash": _coordinate(length), "gap": _coordinate(circumference - length),
            "offset": _coordinate(-offset), "key_y": 48 + 30 * i, "text_y": 60 + 30 * i,
        })  # fmt: skip
        offset += length
    return _draw("dashboard/donut_chart.svg", {
        "chart_title": title, "centre": centre, "radius": radius, "stroke": stroke, "parts": drawn,
    })  # fmt: skip


# Widgets: what the page, the CSV exports and the monthly workbook show ----------------------------------


@dataclass(frozen=True)
class Table:
    """A widget's numbers: the columns and rows (raw values: int, float, str or None)."""

    key: str
    title: str
    columns: list[str]
    rows: list[list[Any]]


@dataclass(frozen=True)
class Widget:
    key: str
    title: Any  # lazy text
    method: str  # of Dashboard
    table: Callable[[Any], tuple[list[str], list[list[Any]]]]
    chart: Callable[[Any, str], SafeString] | None = None
    note: Any = ""


def _channel_table(data):
    return [_("channel"), _("requests")], [[r["label"], r["count"]] for r in data]


def _category_table(data):
    return [_("category"), _("requests")], [[r["label"], r["count"]] for r in data]


def _unit_table(data):
    return [_("unit"), _("requests")], [[r["label"], r["count"]] for r in data]


def _electronic_table(data):
    return (
        [_("requests"), _("electronic"), _("phone"), _("electronic share (%)")],
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


_BANDS = (
    ("below_30", gettext_lazy("< 30%")),
    ("from_30", gettext_lazy("30–50%")),
    ("from_50", gettext_lazy("50–100%")),
    ("from_100", gettext_lazy("100–300%")),
    ("from_300", gettext_lazy("≥ 300%")),
)


def _anomaly_table(data):
    columns = [
        _("billing periods"),
        _("customers compared"),
        *[str(label) for _k, label in _BANDS],
        _("invoices held"),
    ]
    return columns, [[data["periods"], data["compared"], *[data[k] for k, _l in _BANDS], data["held"]]]


def _refund_table(data):
    return (
        [_("refunds"), _("amount (đồng)"), _("settled"), _("settled amount (đồng)")],
        [[data["count"], data["amount"], data["settled"], data["settled_amount"]]],
    )


def _rebate_table(data):
    rows = [[r["programme"], r["count"], r["amount"], r["vat"]] for r in data["by_programme"]]
    if data["by_programme"]:
        rows.append([_("All programmes"), data["count"], data["amount"], data["vat"]])
    return [
        _("programme"),
        _("invoices"),
        _("reduction before VAT (đồng)"),
        _("VAT on the reduction (đồng)"),
    ], rows


def _counts_chart(data, title):
    return bar_chart([(r["label"], r["count"]) for r in data], title=title)


def _electronic_chart(data, title):
    return donut_chart(
        [
            (_("Electronic channels"), data["electronic"], "dash-part-a"),
            (_("Phone"), data["phone"], "dash-part-b"),
        ],
        title=title,
        centre=f"{_number(data['share'], 1)}%",
    )


def _sla_chart(data, title):
    target = sla_target_percent()
    return bar_chart(
        [(r["label"], r["share"]) for r in data],
        title=title,
        maximum=100,
        line=target,
        line_label=_("target %(p)s%%") % {"p": _number(target)},
        bad=lambda v: v < target,
        suffix="%",
        decimals=1,
    )


def _sla_unit_chart(data, title):
    target = sla_target_percent()
    return bar_chart(
        [(r["label"], r["resolve"]) for r in data],
        title=title,
        maximum=100,
        line=target,
        line_label=_("target %(p)s%%") % {"p": _number(target)},
        bad=lambda v: v < target,
        suffix="%",
        decimals=1,
    )


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


def _anomaly_chart(data, title):
    return bar_chart([(str(label), data[k]) for k, label in _BANDS] if data["compared"] else [], title=title)


def _refund_chart(data, title):
    return bar_chart(
        [(_("Settled"), data["settled_amount"]), (_("Not settled"), data["amount"] - data["settled_amount"])]
        if data["count"]
        else [],
        title=title,
        suffix=" đ",
    )


def _rebate_chart(data, title):
    return bar_chart([(r["programme"], r["amount"]) for r in data["by_programme"]], title=title, suffix=" đ")


WIDGETS: list[Widget] = [
    Widget("channels", gettext_lazy("Requests by channel"), "requests_by_channel", _channel_table, _counts_chart),
    Widget("electronic", gettext_lazy("Handled electronically"), "electronic_share", _electronic_table,
           _electronic_chart, gettext_lazy("Every channel except the phone.")),
    Widget("categories", gettext_lazy("Requests by category"), "requests_by_category", _category_table,
           _counts_chart),
    Widget("units", gettext_lazy("Requests by unit"), "requests_by_unit", _unit_table, _counts_chart),
    Widget("sla", gettext_lazy("SLA compliance"), "sla_compliance", _sla_table, _sla_chart,
           gettext_lazy("Share of the tickets received in the period whose time limit was met, among those "
                        "where it was done or breached.")),
    Widget("sla_units", gettext_lazy("SLA compliance by unit"), "sla_by_unit", _sla_unit_table, _sla_unit_chart,
           gettext_lazy("The chart shows the resolve time limit; the table all three.")),
    Widget("breaches", gettext_lazy("Open breaches"), "open_breaches", _breaches_table, _breaches_chart,
           gettext_lazy("Open tickets now, whatever the period.")),
    Widget("handling", gettext_lazy("Average handling time"), "handling_time", _handling_table, _handling_chart,
           gettext_lazy("Calls and messages handled by the agents.")),
    Widget("satisfaction", gettext_lazy("Callback satisfaction"), "satisfaction", _satisfaction_table,
           _satisfaction_chart, gettext_lazy("Callbacks completed in the period; average scores from 1 to 5.")),
    Widget("outages", gettext_lazy("Outage restore times"), "outages", _outage_table, _outage_chart,
           gettext_lazy("Incidents started in the period; the target is 2 hours.")),
    Widget("anomalies", gettext_lazy("Consumption rises by band"), "anomaly_bands", _anomaly_table,
           _anomaly_chart, gettext_lazy("Billing periods overlapping the period.")),
    Widget("refunds", gettext_lazy("Refunds"), "refunds", _refund_table, _refund_chart),
    Widget("rebates", gettext_lazy("Bill reductions"), "rebates", _rebate_table, _rebate_chart),
]  # fmt: skip
WIDGETS_BY_KEY = {w.key: w for w in WIDGETS}


def widget_table(board: Dashboard, widget: Widget) -> Table:
    columns, rows = widget.table(getattr(board, widget.method)())
    return Table(key=widget.key, title=str(widget.title), columns=[str(c) for c in columns], rows=rows)


def tables(user, start: dt.date, end: dt.date, unit=None) -> list[Table]:
    """Every widget's table for the user's scope (the monthly workbook's sheets)."""
    board = Dashboard(user, start, end, unit)
    return [widget_table(board, widget) for widget in WIDGETS]


def display(value) -> str:
    """A table cell as the page shows it: numbers grouped (with the decimals they were rounded to), a dash for
    nothing."""
    if value is None:
        return "—"
    if isinstance(value, bool) or not isinstance(value, int | float):
        return str(value)
    decimals = 0 if isinstance(value, int) else max(1, len(repr(value).partition(".")[2]))
    return _number(value, min(decimals, 2))
