"""The managers' dashboard's building blocks and its registry of widgets, so that the apps owning the data
(tickets, billing) provide their widgets without importing ``reports``.

A widget is a query over one period and the user's scope (its ``data``, a function of a ``Board``), the table
that the page, the CSV and XLSX exports and the monthly workbook show of it, and optionally an SVG chart. An app
registers its widgets in its ``AppConfig.ready`` (``register(widget)``); the page shows them in the order of
their ``position`` (``WIDGETS``), whichever app was loaded first.

``Board`` is one page's context: the user, the period (``start`` and ``end``, dates, both included, read as
local days; ``begin`` and ``stop``, the half-open range of aware datetimes), and optionally one unit. Every
widget reads through ``board.scoped(queryset)``, which keeps the rows of the user's scope (``crm.scoping``) and
of the chosen unit, so a unit outside the scope gives nothing. What several widgets share (one query over the
tickets behind six widgets, the unit names) is computed once per page: ``board.units`` and
``board.memo(key, compute)``.

Charts are inline SVG drawn by templates under ``templates/dashboard/`` (no JavaScript, nothing from the
internet); their colours come from ``reports/static/reports/dashboard.css``, which follows the admin's light
and dark themes.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from dataclasses import dataclass
from functools import cached_property
from typing import Any

from django.template.loader import render_to_string
from django.utils import formats, timezone
from django.utils.safestring import SafeString

from crm.scoping import scope_for


def month_bounds(day: dt.date) -> tuple[dt.date, dt.date]:
    """The first and last day of ``day``'s month."""
    first = day.replace(day=1)
    following = (first + dt.timedelta(days=32)).replace(day=1)
    return first, following - dt.timedelta(days=1)


def window(start: dt.date, end: dt.date) -> tuple[dt.datetime, dt.datetime]:
    """Local midnight of ``start`` and of the day after ``end``: a half-open range of aware datetimes."""
    zone = timezone.get_current_timezone()
    begin = dt.datetime.combine(start, dt.time.min, tzinfo=zone)
    stop = dt.datetime.combine(end + dt.timedelta(days=1), dt.time.min, tzinfo=zone)
    return begin, stop


def share(part: int, whole: int) -> float | None:
    """``part`` in percent of ``whole`` (one decimal), None when ``whole`` is 0."""
    return round(100 * part / whole, 1) if whole else None


def minutes(value: dt.timedelta | None) -> float | None:
    return None if value is None else round(value.total_seconds() / 60, 1)


def seconds(value: dt.timedelta | None) -> float | None:
    return None if value is None else round(value.total_seconds(), 1)


class Board:
    """The dashboard of one user for one period (and optionally one unit); what widgets share is read once."""

    def __init__(self, user, start: dt.date, end: dt.date, unit=None):
        self.user = user
        self.start, self.end = start, end
        self.unit_id = getattr(unit, "pk", unit)
        self.begin, self.stop = window(start, end)
        self._memo: dict[str, Any] = {}

    def scoped(self, queryset, unit_path: str = "unit"):
        """``queryset`` (of a model with a ``for_user`` manager) within the user's scope and the chosen unit;
        ``unit_path`` leads from its rows to their unit."""
        queryset = queryset.for_user(self.user)
        if self.unit_id is not None:
            return queryset.filter(**{f"{unit_path}_id": self.unit_id})
        if scope_for(self.user).everything:
            # Every unit, named: the same rows, but the indexes that lead with the unit (open tickets by unit
            # and status, interactions by unit and start) become usable (137 ms → 10 ms for the open breaches
            # of a million tickets).
            return queryset.filter(**{f"{unit_path}_id__in": sorted(self.units)})
        return queryset

    @cached_property
    def units(self) -> dict[int, tuple[str, str]]:
        """Code and name of the units in the user's scope (a small table)."""
        from crm.models import Unit

        return {
            u["id"]: (u["code"], u["name"])
            for u in Unit.objects.for_user(self.user).values("id", "code", "name")
        }

    def unit(self, unit_id: int) -> dict:
        """``{"unit": code, "label": "code – name"}`` of a unit of the scope."""
        code, name = self.units.get(unit_id, (str(unit_id), ""))
        return {"unit": code, "label": f"{code} – {name}" if name else code}

    def memo(self, key: str, compute: Callable[[], Any]) -> Any:
        """``compute()`` once per page under ``key`` (by convention the widget module's name and what it is)."""
        if key not in self._memo:
            self._memo[key] = compute()
        return self._memo[key]

    def data(self, widget: Widget) -> Any:
        return widget.data(self)


# Widgets and their registry ------------------------------------------------------------------------------


@dataclass(frozen=True)
class Table:
    """A widget's numbers: the columns and rows (raw values: int, float, str or None)."""

    key: str
    title: str
    columns: list[str]
    rows: list[list[Any]]


@dataclass(frozen=True)
class Widget:
    """``data(board)`` is the widget's query; ``table(data)`` gives its columns and rows, ``chart(data, title)``
    its SVG. ``position`` places it on the page (and in the monthly workbook): smallest first."""

    key: str
    title: Any  # lazy text
    position: int
    data: Callable[[Board], Any]
    table: Callable[[Any], tuple[list[str], list[list[Any]]]]
    chart: Callable[[Any, str], SafeString] | None = None
    note: Any = ""

    @property
    def method(self) -> str:
        """The name of the widget's query (``requests_by_channel``)."""
        return self.data.__name__


# The registered widgets in page order, and by key: both updated in place, so a module that imported them
# sees every widget registered later.
WIDGETS: list[Widget] = []
WIDGETS_BY_KEY: dict[str, Widget] = {}


def register(widget: Widget) -> None:
    """Show ``widget`` on the dashboard at its position; registering the same widget again changes nothing."""
    known = WIDGETS_BY_KEY.get(widget.key)
    if known is not None and known != widget:
        raise ValueError(f"A dashboard widget named {widget.key!r} is already registered")
    if any(w.method == widget.method and w.key != widget.key for w in WIDGETS):
        raise ValueError(f"A dashboard widget's query is already named {widget.method!r}")
    WIDGETS_BY_KEY[widget.key] = widget
    WIDGETS[:] = sorted(WIDGETS_BY_KEY.values(), key=lambda w: (w.position, w.key))


def unregister(key: str) -> None:
    del WIDGETS_BY_KEY[key]
    WIDGETS[:] = [w for w in WIDGETS if w.key != key]


def widget_table(board: Board, widget: Widget) -> Table:
    columns, rows = widget.table(board.data(widget))
    return Table(key=widget.key, title=str(widget.title), columns=[str(c) for c in columns], rows=rows)


# Charts: inline SVG ------------------------------------------------------------------------------------


def number(value, decimals: int = 0) -> str:
    """A number as the page shows it (grouped, localised), a dash for nothing."""
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
            "value": number(value, decimals),
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
            "label": label, "css": css, "value": number(value), "percent": number(100 * value / total, 1),
            "dash": _coordinate(length), "gap": _coordinate(circumference - length),
            "offset": _coordinate(-offset), "key_y": 48 + 30 * i, "text_y": 60 + 30 * i,
        })  # fmt: skip
        offset += length
    return _draw("dashboard/donut_chart.svg", {
        "chart_title": title, "centre": centre, "radius": radius, "stroke": stroke, "parts": drawn,
    })  # fmt: skip
